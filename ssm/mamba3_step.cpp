// ssm/mamba3_step.cpp — Mamba3::decode_step: one decoding step, everything between in_proj and out_proj in
// one pass per (sequence, head); on a CUDA device the same pass is one kernel (cuda/mamba3_step.cu).
//
// A decoding step could be forward() at L = 1, but that is ~45 tensor ops per layer on a few hundred
// numbers each: on the CPU allocation, views and dispatch cost more than the arithmetic, and on the GPU
// each op is a kernel launch (or a graph node) of a few microseconds. This is the same math (spec
// §3.3–§3.8) on raw rows, for
// one token of sequence b at head h (g its group, ψ, ζ, φ = mimo_x, mimo_z, mimo_o; all ones for SISO):
//   A = min(−f(dd_A), −A_floor),  DT = softplus(dd_dt + dt_bias),  γ = DT·σ(trap),  η = DT − γ   (§3.3 2–4)
//   θ = θ_prev + π·tanh(ang)·DT                                                                (step 7)
//   k̃_r = Rot(θ)(rmsnorm(B_{r,g}) ⊙ w_B + B_bias_{h,r}),  q̃_r the same from C                  (5, 6, 8)
//   v_r = x ⊙ ψ_r,  v_prev,r = x_prev ⊙ ψ_r
//   h ← α h + β Σ_r v_prev,r k̃_prev,rᵀ + γ Σ_r v_r k̃_rᵀ,   α = e^{A·DT},  β = α η                (§3.6)
//   o_r = h q̃_r + D v_r,   y = Σ_r φ_r ⊙ o_r ⊙ silu(z ⊙ ζ_r)                                       (§3.7)
//   with the output-projection norm, o_r is first normalised over the head's P channels and weighted:
//   o_r ← o_r · (mean_p(o_r²) + eps)^(−1/2) ⊙ w_h                                    (Mamba3::normed_gate)
// and leaves θ mod 2π, h, k̃ and x in the cache (§3.8). tests/test_mamba3_step.cpp checks it against
// forward() at L = 1 step after step; the model tests check decoding against the full forward.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "autograd/grad_mode.h"
#include "ssm/key_row.h"
#include "ssm/mamba3.h"
#include "ssm/mamba3_rates.h"
#include "ssm/rank_params.h"
#include "ssm/rotary.h"
#include "tensor/cpu/dot.h"
#include "tensor/cpu/parallel.h"
#include "tensor/cpu/sigmoid.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm {
namespace {

// θ mod 2π in float64, as forward()'s wrap_angle does it
template <class T>
T wrapped(T theta) {
  const double two_pi = 2 * std::numbers::pi, wide = theta;
  return static_cast<T>(wide - std::floor(wide * (1.0 / two_pi)) * two_pi);
}

}  // namespace

bool Mamba3::fused_step(const Tensor& u, const MixerCache* cache) const {
  return cache != nullptr && u.size(1) == 1 && !GradMode::enabled() &&
         scan_path == ScanPath::Chunked;  // the reference path stays the readable composition of ops
}

Tensor Mamba3::decode_step(const Tensor& zxbcdt, Mamba3Cache& cache) const {
  const int64_t batch = zxbcdt.size(0), H = heads, P = headdim, N = d_state, R = rank, G = groups, S = angles;
  const int64_t width = zxbcdt.size(2), RGN = R * G * N;
  const Tensor in = zxbcdt.contiguous();
  Tensor y = Tensor::empty({batch, 1, d_inner}, in.dtype(), in.device());
  std::vector<Tensor> params;  // contiguous copies where needed, kept alive for the loop
  const Tensor norm_weight = is_outproj_norm ? norm->weight : Tensor();
  const double eps_norm = is_outproj_norm ? norm->eps : 0.0;
  for (const Tensor& t :
       {dt_bias, B_bias, C_bias, D, B_norm->weight, C_norm->weight, mimo_x, mimo_z, mimo_o, norm_weight})
    params.push_back(t.defined() ? t.contiguous() : Tensor());
  if (!in.device().is_cpu()) {  // the same step as one kernel (cuda/mamba3_step.cu)
#if SSM_WITH_CUDA
    dispatch_float(in.dtype(), "mamba3 decode step", [&](auto tag) {
      using T = decltype(tag);
      const auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
      cuda::mamba3_decode_step<T>({batch, H, P, N, R, G, S, width, is_mimo, B_norm->eps, C_norm->eps, A_floor,
                                   eps_norm, in.data<T>(), ptr(params[0]), ptr(params[1]), ptr(params[2]),
                                   ptr(params[3]), ptr(params[4]), ptr(params[5]), ptr(params[6]), ptr(params[7]),
                                   ptr(params[8]), ptr(params[9]), cache.angle.data<T>(), cache.ssm.data<T>(),
                                   cache.k.data<T>(), cache.v.data<T>(), y.data<T>()});
    });
#endif
    return y;
  }
  dispatch_float(in.dtype(), "mamba3 decode step", [&](auto tag) {
    using T = decltype(tag);
    const T *rows = in.data<T>(), *dt_b = params[0].data<T>(), *b_bias = params[1].data<T>(),
            *c_bias = params[2].data<T>(), *d_skip = params[3].data<T>(), *w_b = params[4].data<T>(),
            *w_c = params[5].data<T>();
    const RankParams<T> rp(params[6], params[7], params[8], H * R * P);
    const T* w_norm = is_outproj_norm ? params[9].data<T>() : nullptr;
    // per (sequence, head) scratch: cos θ, sin θ [S], x̂ [N], this token's keys k̃ and queries q̃ [R, N],
    // and with the norm the read-outs o [R, P]
    const int64_t scratch_size = 2 * S + N + 2 * R * N + (w_norm ? R * P : 0);
    std::vector<T> scratch(batch * H * scratch_size);
    T *angle = cache.angle.data<T>(), *state = cache.ssm.data<T>(), *k_cache = cache.k.data<T>(),
      *x_cache = cache.v.data<T>(), *out = y.data<T>();
    const RotaryPairs pairs{is_mimo ? RotaryPairing::HalfSplit : RotaryPairing::Adjacent, N, S};
    const double eps_b = B_norm->eps, eps_c = C_norm->eps, floor_A = A_floor;
    cpu::parallel_for(batch * H, batch * H * R * P * N * 4, [&](int64_t bh) {
      const int64_t b = bh / H, h = bh % H, g = h / (H / G);
      // this token's in_proj row: [z | x | B | C | dd_dt | dd_A | trap | ang]
      const T* row = rows + b * width;
      const T *z = row + h * P, *x = row + d_inner + h * P, *B_raw = row + 2 * d_inner, *C_raw = B_raw + RGN;
      const T *dd_dt = C_raw + RGN, *dd_A = dd_dt + H, *trap = dd_A + H, *ang = trap + H;
      // §3.3 steps 2–4 (ssm/mamba3_rates.h)
      const mamba3::Rates<T> rate = mamba3::rates_of(dd_dt[h] + dt_b[h], dd_A[h], trap[h], T(floor_A));
      const T DT = rate.DT, gamma = rate.gamma;
      const T alpha = std::exp(rate.A * DT), beta = alpha * rate.eta;

      T *cos_t = scratch.data() + bh * scratch_size, *sin_t = cos_t + S, *xhat = sin_t + S;
      T *keys = xhat + N, *queries = keys + R * N, *o_rows = queries + R * N;
      // φ_r ⊙ o ⊙ silu(z ⊙ ζ_r) at channel p, as mamba3_output_gate evaluates it
      const auto gated = [&](T o, int64_t r, int64_t p) {
        const int64_t at = (h * R + r) * P + p;
        const T gate_in = z[p] * rp.zeta[at];
        return rp.phi[at] * o * gate_in * cpu::sigmoid(gate_in);
      };
      T* theta_cache = angle + (b * H + h) * S;
      for (int64_t s = 0; s < S; ++s) {  // step 7; the rotation uses θ itself, the cache keeps θ mod 2π
        const T theta = theta_cache[s] + DT * (std::tanh(ang[s]) * T(std::numbers::pi));
        cos_t[s] = std::cos(theta);
        sin_t[s] = std::sin(theta);
        theta_cache[s] = wrapped(theta);
      }
      for (int64_t r = 0; r < R; ++r) {  // steps 5, 6, 8
        const int64_t raw_at = (r * G + g) * N, bias_at = (h * R + r) * N;
        normalise(B_raw + raw_at, N, eps_b, xhat);
        scale_and_bias(xhat, w_b, b_bias + bias_at, N, keys + r * N);
        pairs.rotate(keys + r * N, cos_t, sin_t, keys + r * N);
        normalise(C_raw + raw_at, N, eps_c, xhat);
        scale_and_bias(xhat, w_c, c_bias + bias_at, N, queries + r * N);
        pairs.rotate(queries + r * N, cos_t, sin_t, queries + r * N);
      }

      // §3.6: the state, from the previous token's keys and x (still in the cache) and this token's
      T* hs = state + (b * H + h) * P * N;
      T* x_prev = x_cache + (b * H + h) * P;
      const auto k_prev = [&](int64_t r) { return k_cache + ((b * R + r) * H + h) * N; };
      for (int64_t p = 0; p < P; ++p) {
        T* hp = hs + p * N;
        for (int64_t n = 0; n < N; ++n) hp[n] *= alpha;
        for (int64_t r = 0; r < R; ++r) {
          const T psi_rp = rp.psi[(h * R + r) * P + p];
          const T old_weight = beta * x_prev[p] * psi_rp, new_weight = gamma * x[p] * psi_rp;
          const T *kp = k_prev(r), *kn = keys + r * N;
          for (int64_t n = 0; n < N; ++n) hp[n] += old_weight * kp[n] + new_weight * kn[n];
        }
        // §3.7: read out each rank and add the D skip; without the norm, gate and contract the ranks at once
        T y_p = 0;
        for (int64_t r = 0; r < R; ++r) {
          const int64_t at = (h * R + r) * P + p;
          const T o = cpu::dot(hp, queries + r * N, N) + d_skip[h] * rp.psi[at] * x[p];
          if (w_norm) o_rows[r * P + p] = o;
          else y_p += gated(o, r, p);
        }
        if (!w_norm) out[b * d_inner + h * P + p] = y_p;
      }
      if (w_norm) {  // the output-projection norm over each rank's P read-outs, then the gate
        T* out_h = out + b * d_inner + h * P;
        std::fill(out_h, out_h + P, T(0));
        for (int64_t r = 0; r < R; ++r) {
          const T* o_r = o_rows + r * P;
          const T rho = T(1) / std::sqrt(cpu::dot(o_r, o_r, P) / T(P) + T(eps_norm));
          for (int64_t p = 0; p < P; ++p) out_h[p] += gated(o_r[p] * rho * w_norm[h * P + p], r, p);
        }
      }
      // §3.8: this token's keys and x become the previous token's
      for (int64_t r = 0; r < R; ++r) std::copy(keys + r * N, keys + (r + 1) * N, k_prev(r));
      std::copy(x, x + P, x_prev);
    });
  });
  return y;
}

}  // namespace ssm
