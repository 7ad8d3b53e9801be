// nn/layers.h — the standard layers. Each owns its parameters (official names and layouts) and
// has a forward(); the math lives in nn/functional.h and autograd/functions.h.
//
// Layouts follow PyTorch so official checkpoints load unchanged:
//   Linear.weight [out, in] (y = x·Wᵀ + b), Embedding.weight [num, dim],
//   CausalConv1d.weight [C, 1, K] (depthwise), norm weights [dim].
// Default initialisation is PyTorch's (spec §1); the LM re-initialises some of it (nn/init.h).
#pragma once
#include <cstdint>

#include "nn/functional.h"
#include "nn/module.h"

namespace ssm::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen);
  Tensor forward(const Tensor& x) const;  // [.., in] -> [.., out]
  // split(forward(x), sizes, -1) as one node without a bias (autograd's matmul_parts: the parts' gradients
  // joined once, in the GEMMs' dtype); the sizes add up to out.
  std::vector<Tensor> forward_parts(const Tensor& x, const std::vector<int64_t>& sizes) const;
  Tensor weight;                          // [out, in]
  Tensor bias;                            // [out], or undefined
};

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, Generator& gen);  // N(0, 1), as PyTorch
  Tensor forward(const Tensor& ids) const;                          // ids [..] -> [.., dim]
  Tensor weight;                                                    // [num, dim]
};

class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;
  Tensor weight;  // [dim], ones
  double eps;
};

// The Mamba output norm (spec §1): normalises x·silu(z) (or x, then gates) in groups.
class GatedRMSNorm : public Module {
 public:
  GatedRMSNorm(int64_t dim, double eps = 1e-5, int64_t group_size = 0, bool norm_before_gate = false);
  Tensor forward(const Tensor& x, const Tensor& z) const;
  Tensor weight;  // [dim], ones
  double eps;
  int64_t group_size;
  bool norm_before_gate;
};

class CausalConv1d : public Module {
 public:
  CausalConv1d(int64_t channels, int64_t kernel_size, bool bias, Generator& gen);
  Tensor forward(const Tensor& x, bool silu = false) const;  // [B, L, C] -> [B, L, C], then SiLU if asked
  Tensor weight;                                             // [C, 1, K]
  Tensor bias;                                               // [C], or undefined
};

class Dropout : public Module {
 public:
  explicit Dropout(double p) : p(p) {}
  Tensor forward(const Tensor& x, Generator& gen) const { return dropout(x, p, is_training(), gen); }
  double p;
};

// The official GatedMLP (a SwiGLU): fc1 gives [value, gate], out = fc2(value · silu(gate)).
// hidden = d_intermediate rounded up to a multiple of `multiple_of` (128 in the official LM).
class GatedMLP : public Module {
 public:
  GatedMLP(int64_t d_model, int64_t d_intermediate, Generator& gen, int64_t multiple_of = 128);
  Tensor forward(const Tensor& x) const;
  int64_t hidden;
  std::shared_ptr<Linear> fc1;  // [2·hidden, d_model], no bias
  std::shared_ptr<Linear> fc2;  // [d_model, hidden], no bias
};

}  // namespace ssm::nn
