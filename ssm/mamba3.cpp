// ssm/mamba3.cpp — see mamba3.h. The forward follows spec §3.3–§3.7 step by step: ordinary autograd ops
// around the fused nodes, each in its own file (rates, keys and queries, values, the scan, the output gate).
#include "ssm/mamba3.h"

#include <cmath>
#include <numbers>

#include "autograd/functions.h"
#include "ssm/mamba3_angles.h"
#include "ssm/mamba3_keys.h"
#include "ssm/mamba3_output.h"
#include "ssm/mamba3_rates.h"
#include "ssm/mamba3_scan.h"
#include "ssm/mamba3_values.h"

namespace ssm {
namespace {

// θ mod 2π, elementwise (the angle state's range; cos and sin do not change, §6.16)
Tensor wrap_angle(const Tensor& theta) {
  const double two_pi = 2 * std::numbers::pi;
  const Tensor wide = theta.to(DType::Float64);  // on theta's device, no host round trip
  return op::sub(wide, op::mul(op::floor(op::mul(wide, 1.0 / two_pi)), two_pi)).to(theta.dtype());
}

}  // namespace

Mamba3::Mamba3(int64_t d_model, const MixerConfig& cfg, Generator& gen)
    : Mixer(d_model, cfg),
      rank(cfg.rank()),
      angles(cfg.num_rope_angles()),
      is_mimo(cfg.is_mimo),
      is_outproj_norm(cfg.is_outproj_norm),
      A_floor(cfg.A_floor) {
  const int64_t H = heads, R = rank, N = d_state, P = headdim;
  dt_bias = register_parameter("dt_bias", initial_dt_bias(H, cfg, gen));
  B_bias = register_parameter("B_bias", Tensor::ones({H, R, N}));
  C_bias = register_parameter("C_bias", Tensor::ones({H, R, N}));
  if (is_mimo) {
    mimo_x = register_parameter("mimo_x", op::mul(Tensor::ones({H, R, P}), 1.0 / static_cast<double>(R)));
    mimo_z = register_parameter("mimo_z", Tensor::ones({H, R, P}));
    mimo_o = register_parameter("mimo_o", op::mul(Tensor::ones({H, R, P}), 1.0 / static_cast<double>(R)));
  }
  D = register_parameter("D", Tensor::ones({H}));
  in_proj = register_module(
      "in_proj", std::make_shared<nn::Linear>(d_model, 2 * d_inner + 2 * N * groups * R + 3 * H + angles, false, gen));
  B_norm = register_module("B_norm", std::make_shared<nn::RMSNorm>(N, 1e-5));
  C_norm = register_module("C_norm", std::make_shared<nn::RMSNorm>(N, 1e-5));
  if (is_outproj_norm)  // rmsnorm over each head's P channels, then ⊙ silu(z) (norm_before_gate = true)
    norm = register_module("norm", std::make_shared<nn::GatedRMSNorm>(d_inner, 1e-5, P, true));
  out_proj = register_module("out_proj", std::make_shared<nn::Linear>(d_inner, d_model, false, gen));
}

std::unique_ptr<MixerCache> Mamba3::empty_cache(int64_t batch) const {
  const DType dtype = in_proj->weight.dtype();
  const Device device = in_proj->weight.device();
  auto cache = std::make_unique<Mamba3Cache>();
  cache->angle = Tensor::zeros({batch, heads, angles}, dtype, device);
  cache->ssm = Tensor::zeros({batch, heads, headdim, d_state}, dtype, device);
  cache->k = Tensor::zeros({batch, rank, heads, d_state}, dtype, device);
  cache->v = Tensor::zeros({batch, heads, headdim}, dtype, device);
  return cache;
}

Tensor Mamba3::values(const Tensor& x) const { return is_mimo ? mamba3_values(x, mimo_x) : unsqueeze(x, -3); }

// §3.6/§3.7 with the output-projection norm (o = h q̃ + D v already formed):
//   MIMO y = Σ_r φ_r ⊙ rmsnorm_P(o_r) ⊙ w_h ⊙ silu(z ⊙ ζ_r);  SISO y = rmsnorm_P(o) ⊙ w ⊙ silu(z)
// (without the norm the fused mamba3_output_gate does all of it)
Tensor Mamba3::normed_gate(const Tensor& o, const Tensor& z) const {
  const int64_t batch = o.size(0), L = o.size(1);
  if (!is_mimo) return norm->forward(reshape(o, {batch, L, d_inner}), reshape(z, {batch, L, d_inner}));
  // RMSNorm over P of each (t, h, r), weight w_h = norm.weight[h·P:(h+1)·P]
  const Tensor o_r = reshape(nn::rms_norm(reshape(o, {batch, L, rank, d_inner}), norm->weight, norm->eps, headdim),
                             o.shape());
  const Tensor z_r = unsqueeze(z, 2) * permute(mimo_z, {1, 0, 2});
  const Tensor y = sum(o_r * silu(z_r) * permute(mimo_o, {1, 0, 2}), {2});  // contract the ranks
  return reshape(y, {batch, L, d_inner});
}

Tensor Mamba3::forward(const Tensor& u, MixerCache* cache_base) const {
  auto* cache = static_cast<Mamba3Cache*>(cache_base);
  if (fused_step(u, cache)) return out_proj->forward(decode_step(in_proj->forward(u), *cache));
  const int64_t batch = u.size(0), L = u.size(1), H = heads, P = headdim, RGN = rank * groups * d_state;
  // §3.3 step 1: [z | x | B | C | dd_dt | dd_A | trap | ang]
  const auto parts = in_proj->forward_parts(u, {d_inner, d_inner, RGN, RGN, H, H, H, angles});
  const Tensor z = reshape(parts[0], {batch, L, H, P}), x = reshape(parts[1], {batch, L, H, P});
  const Tensor &dd_dt = parts[4], &dd_A = parts[5], &trap = parts[6], &ang = parts[7];
  // steps 2–4: A = min(−f(dd_A), −A_floor), DT = softplus(dd_dt + dt_bias), γ = DT·σ, η = DT·(1−σ), one node
  const Mamba3Rates rates = mamba3_rates(dd_dt, dd_A, trap, dt_bias, A_floor);
  const Tensor &DT = rates.DT, &adt = rates.adt, &gamma = rates.gamma, &eta = rates.eta;
  // step 7: θ_{t,h} = θ_init + Σ_{τ≤t} π·tanh(ang_τ)·DT_{τ,h}
  Tensor theta = cumsum(mamba3_angle_steps(DT, ang), 1);  // [b, L, H, S]
  if (cache) theta = theta + unsqueeze(cache->angle, 1);
  // steps 5, 6, 8: normalised, biased keys (from B) and queries (from C) per head, rotated by θ
  // (SISO adjacent pairs, MIMO half-split; §3.4)
  const RotaryPairing pairing = is_mimo ? RotaryPairing::HalfSplit : RotaryPairing::Adjacent;
  const Tensor k = mamba3_keys(parts[2], B_norm->weight, B_bias, theta, pairing, B_norm->eps);
  const Tensor q = mamba3_keys(parts[3], C_norm->weight, C_bias, theta, pairing, C_norm->eps);
  const Tensor v = values(x);  // [b, L, R, H, P]
  // the scan (§3.5/§3.6), from the cache's state when there is one
  Tensor h0, k_prev, v_prev;
  if (cache) {
    h0 = cache->ssm;
    k_prev = cache->k;
    v_prev = values(cache->v);
  }
  const ScanOutput scan = chunked_scan(u)
                              ? mamba3_scan_chunked(q, k, v, adt, gamma, eta, h0, k_prev, v_prev, chunk_size)
                              : mamba3_scan_reference(q, k, v, adt, gamma, eta, h0, k_prev, v_prev);
  // o_{t,r} = h_t q̃_{t,r} + D·v_{t,r}, then the gate (and rank contraction) and out_proj (§3.7)
  const Tensor y = is_outproj_norm ? normed_gate(scan.y + v * reshape(D, {H, 1}), z)
                                   : reshape(mamba3_output_gate(scan.y, x, z, D, mimo_x, mimo_z, mimo_o),
                                             {batch, L, d_inner});
  if (cache) {  // the four final states of §3.8, written in place (ssm/mixer.h)
    cache->angle.copy_(wrap_angle(theta.detach().select(1, L - 1)));
    cache->ssm.copy_(scan.final_state.detach());
    cache->k.copy_(k.detach().select(1, L - 1));
    cache->v.copy_(x.detach().select(1, L - 1));
  }
  return out_proj->forward(y);
}

}  // namespace ssm
