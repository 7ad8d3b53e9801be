// tests/model_test_helpers.h — small language models of every kind and the helpers the model tests share
// (CPU tests in test_ssm_blocks.cpp, GPU tests in test_cuda_models.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "autograd/grad_mode.h"
#include "ssm/lm.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace ssm::testing {

struct Variant {
  const char* name;
  const char* json;
};

// small models of every kind; groups > 1, an MLP, rope 1.0 and the output-projection norm are covered
inline const Variant kVariants[] = {
    {"mamba2", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba2", "d_state": 8,
       "headdim": 8, "ngroups": 2, "chunk_size": 4}})"},
    {"mamba3-siso", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "d_intermediate": 24, "ssm_cfg": {"layer":
       "Mamba3", "d_state": 8, "headdim": 8, "chunk_size": 4}})"},
    {"mamba3-siso-norm-rope1", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3",
       "d_state": 8, "headdim": 8, "rope_fraction": 1.0, "is_outproj_norm": true, "chunk_size": 3}})"},
    {"mamba3-mimo", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3", "d_state": 8,
       "headdim": 8, "ngroups": 2, "is_mimo": true, "mimo_rank": 3, "chunk_size": 4}})"},
    {"mamba3-mimo-norm", R"({"d_model": 16, "n_layer": 1, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3",
       "d_state": 8, "headdim": 4, "is_mimo": true, "mimo_rank": 2, "is_outproj_norm": true, "chunk_size": 5}})"},
};

// The official init has symmetric values (ones, 1/R) that can hide a mix-up: perturb every parameter.
inline void perturb(MambaLM& model, Generator& gen) {
  NoGradGuard no_grad;
  for (const Tensor& p : model.parameters()) op::add_(p, op::normal(p.shape(), 0, 0.2, gen));
}

inline Tensor random_tokens(int64_t batch, int64_t L, int64_t vocab, Generator& gen) {
  std::vector<int64_t> ids(batch * L);
  const auto u = op::uniform({batch * L}, 0, static_cast<double>(vocab), gen, DType::Float64).to_vector<double>();
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(u[i]);
  return Tensor::from_vector(ids, {batch, L});
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) { return op::max(op::abs(op::sub(a, b))).item<double>(); }

}  // namespace ssm::testing
