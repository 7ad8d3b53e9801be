// ssm/mamba2.h — the Mamba-2 block (spec §2): in_proj → causal conv + SiLU over (x, B, C) → SSD scan
// → gated RMSNorm → out_proj. Parameter names and layouts are the official state_dict's (§2.1):
//   dt_bias [H], A_log [H], D [H], in_proj.weight [2·d_inner + 2·G·N + H, d_model],
//   conv1d.weight [conv_dim, 1, d_conv], conv1d.bias [conv_dim], norm.weight [d_inner],
//   out_proj.weight [d_model, d_inner]       (conv_dim = d_inner + 2·G·N)
#pragma once
#include "nn/layers.h"
#include "ssm/mixer.h"

namespace ssm {

// The decoding state of one layer (§2.5).
struct Mamba2Cache : MixerCache {
  Tensor conv;  // [batch, d_conv, conv_dim]: the last d_conv pre-conv (x, B, C) columns, oldest first
  Tensor ssm;   // [batch, H, P, N]
};

class Mamba2 : public Mixer {
 public:
  Mamba2(int64_t d_model, const MixerConfig& cfg, Generator& gen);
  Tensor forward(const Tensor& u, MixerCache* cache = nullptr) const override;
  std::unique_ptr<MixerCache> empty_cache(int64_t batch) const override;
  // Whether forward(u, cache) takes the fused decoding step (ssm/mamba2_step.cpp): one token with a cache,
  // no gradients, the chunked (fast) scan path. It runs the conv and the SSD recurrence between in_proj
  // and the gated norm in two passes — loops on the CPU, two kernels on a GPU — instead of ~25 tensor ops.
  bool fused_step(const Tensor& u, const MixerCache* cache) const;

  const int64_t conv_dim;  // d_inner + 2·G·N: the channels convolved together (x, B, C)
  Tensor dt_bias, A_log, D;
  std::shared_ptr<nn::Linear> in_proj;
  std::shared_ptr<nn::CausalConv1d> conv1d;
  std::shared_ptr<nn::GatedRMSNorm> norm;
  std::shared_ptr<nn::Linear> out_proj;

 private:
  // zxbcdt [batch, 1, width] (in_proj's output) → y + D x [batch, 1, d_inner], the cache advanced a token
  Tensor decode_step(const Tensor& zxbcdt, Mamba2Cache& cache) const;  // see fused_step
};

}  // namespace ssm
