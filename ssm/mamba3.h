// ssm/mamba3.h — the Mamba-3 block (spec §3), SISO and MIMO: in_proj → per-token decay A, step DT and
// trapezoid gate → normalised, biased, rotated keys/queries → the exponential-trapezoidal scan →
// D skip, gate (and MIMO rank contraction) → out_proj. No conv, no A_log.
// Parameter names and layouts are the official state_dict's (§3.2):
//   dt_bias [H], B_bias [H, R, N], C_bias [H, R, N], (MIMO) mimo_x/mimo_z/mimo_o [H, R, P], D [H],
//   in_proj.weight [2·d_inner + 2·N·G·R + 3·H + S, d_model], B_norm.weight [N], C_norm.weight [N],
//   (is_outproj_norm) norm.weight [d_inner], out_proj.weight [d_model, d_inner]
#pragma once
#include "nn/layers.h"
#include "ssm/mixer.h"

namespace ssm {

// The decoding state of one layer (§3.9).
struct Mamba3Cache : MixerCache {
  Tensor angle;  // [batch, H, S]     θ of the last token, mod 2π
  Tensor ssm;    // [batch, H, P, N]  h of the last token (without its pending η-term)
  Tensor k;      // [batch, R, H, N]  k̃ of the last token (rotated, biased)
  Tensor v;      // [batch, H, P]     raw x of the last token (before the MIMO up-projection)
};

class Mamba3 : public Mixer {
 public:
  Mamba3(int64_t d_model, const MixerConfig& cfg, Generator& gen);
  Tensor forward(const Tensor& u, MixerCache* cache = nullptr) const override;
  std::unique_ptr<MixerCache> empty_cache(int64_t batch) const override;
  // Whether forward(u, cache) takes the fused decoding step (ssm/mamba3_step.cpp): one token with a cache,
  // no gradients, the chunked (fast) scan path; with or without the output-projection norm. It runs the
  // mixer between in_proj and out_proj in one pass per (sequence, head) — a loop on the CPU, one kernel
  // on a GPU — instead of ~45 tensor ops.
  bool fused_step(const Tensor& u, const MixerCache* cache) const;

  const int64_t rank, angles;  // R (1 for SISO) and S, the rotary angles per head
  const bool is_mimo, is_outproj_norm;
  const double A_floor;
  Tensor dt_bias, B_bias, C_bias, mimo_x, mimo_z, mimo_o, D;  // mimo_* undefined for SISO
  std::shared_ptr<nn::Linear> in_proj;
  std::shared_ptr<nn::RMSNorm> B_norm, C_norm;
  std::shared_ptr<nn::GatedRMSNorm> norm;  // only with is_outproj_norm
  std::shared_ptr<nn::Linear> out_proj;

 private:
  Tensor values(const Tensor& x) const;  // x [.., H, P] → v [.., R, H, P] = x ⊙ ψ_r (SISO: x)
  Tensor normed_gate(const Tensor& o, const Tensor& z) const;  // o [b, L, R, H, P], z [b, L, H, P] → [b, L, d_inner]
  Tensor decode_step(const Tensor& zxbcdt, Mamba3Cache& cache) const;  // see fused_step
};

}  // namespace ssm
