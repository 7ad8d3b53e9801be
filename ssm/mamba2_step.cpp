// ssm/mamba2_step.cpp — Mamba2::decode_step: one decoding step between in_proj and the gated norm (spec §2.5),
// on raw rows; on a CUDA device the same two passes are two kernels (cuda/mamba2_step.cu).
//
// forward() at L = 1 does this with ~25 tensor ops per layer on a few hundred numbers each (cat, conv,
// split, reshape, softplus, the scan's set-up): on the CPU allocation and dispatch cost more than the
// arithmetic, and on a GPU each op is a kernel launch. For one token of sequence b:
//   1. per channel c of (x, B, C): shift conv_state left by one, the new xBC in the last column, and
//      xBC'_c = silu(bias_c + Σ_k w[c, 0, k] · conv_state[k, c])                                  (§2.2 step 2)
//   2. per head h (group g = h / (H/G)): dt = softplus(dt_raw + dt_bias), α = exp(dt · A), A = −exp(A_log),
//      h ← α h + dt · x_h B_gᵀ,   y_h = h C_g + D x_h                                               (§2.3)
// The channels of B and C are shared by a group's heads, so pass 1 finishes before pass 2 starts.
// tests/test_mamba2_step.cpp checks it against forward() at L = 1 step after step; the model tests
// check decoding against the full forward.
#include <cmath>
#include <vector>

#include "autograd/grad_mode.h"
#include "ssm/mamba2.h"
#include "tensor/cpu/dot.h"
#include "tensor/cpu/parallel.h"
#include "tensor/cpu/scalar_math.h"
#include "tensor/cpu/sigmoid.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm {

bool Mamba2::fused_step(const Tensor& u, const MixerCache* cache) const {
  return cache != nullptr && u.size(1) == 1 && !GradMode::enabled() &&
         scan_path == ScanPath::Chunked;  // the reference path stays the readable composition of ops
}

Tensor Mamba2::decode_step(const Tensor& zxbcdt, Mamba2Cache& cache) const {
  const int64_t batch = zxbcdt.size(0), H = heads, P = headdim, N = d_state, G = groups;
  const int64_t K = conv1d->weight.size(2), C = conv_dim, width = zxbcdt.size(2);
  const Tensor in = zxbcdt.contiguous();
  Tensor y = Tensor::empty({batch, 1, d_inner}, in.dtype(), in.device());
  Tensor act = Tensor::empty({batch, C}, in.dtype(), in.device());  // xBC' of pass 1
  std::vector<Tensor> params;  // contiguous copies where needed, kept alive for the passes
  for (const Tensor& t : {conv1d->weight, conv1d->bias, dt_bias, A_log, D})
    params.push_back(t.defined() ? t.contiguous() : Tensor());
  dispatch_float(in.dtype(), "mamba2 decode step", [&](auto tag) {
    using T = decltype(tag);
    const T *rows = in.data<T>(), *w = params[0].data<T>(), *dt_b = params[2].data<T>(),
            *A_log_h = params[3].data<T>(), *d_skip = params[4].data<T>();
    const T* conv_bias = params[1].defined() ? params[1].data<T>() : nullptr;
    T *conv_state = cache.conv.data<T>(), *state = cache.ssm.data<T>(), *xbc = act.data<T>(), *out = y.data<T>();
    if (!in.device().is_cpu()) {
#if SSM_WITH_CUDA
      cuda::mamba2_decode_step<T>({batch, H, P, N, G, K, C, width, d_inner, rows, w, conv_bias, dt_b, A_log_h, d_skip,
                                   conv_state, state, xbc, out});
#endif
      return;
    }
    // 1. the conv step, every channel of every sequence
    cpu::parallel_for(batch, batch * C * (K + 8), [&](int64_t b) {
      const T* xBC_new = rows + b * width + d_inner;  // this token's row: [z | xBC | dt]
      T* window = conv_state + b * K * C;              // [K, C], oldest first
      for (int64_t k = 0; k + 1 < K; ++k)
        for (int64_t c = 0; c < C; ++c) window[k * C + c] = window[(k + 1) * C + c];
      for (int64_t c = 0; c < C; ++c) window[(K - 1) * C + c] = xBC_new[c];
      T* xbc_b = xbc + b * C;
      for (int64_t c = 0; c < C; ++c) {
        T a = conv_bias ? conv_bias[c] : T(0);
        for (int64_t k = 0; k < K; ++k) a += w[c * K + k] * window[k * C + c];
        xbc_b[c] = cpu::silu(a);
      }
    });
    // 2. the SSD recurrence, per (sequence, head)
    cpu::parallel_for(batch * H, batch * H * P * N * 4, [&](int64_t bh) {
      const int64_t b = bh / H, h = bh % H, g = h / (H / G);
      const T *x = xbc + b * C + h * P, *B = xbc + b * C + d_inner + g * N, *C_g = B + G * N;
      const T dt = cpu::softplus_of(rows[b * width + d_inner + C + h] + dt_b[h]);
      const T alpha = std::exp(-std::exp(A_log_h[h]) * dt);
      T* S = state + bh * P * N;  // [P, N]
      for (int64_t p = 0; p < P; ++p) {
        T* row = S + p * N;
        const T dt_x = dt * x[p];
        for (int64_t n = 0; n < N; ++n) row[n] = alpha * row[n] + dt_x * B[n];
        out[b * d_inner + h * P + p] = cpu::dot(row, C_g, N) + d_skip[h] * x[p];
      }
    });
  });
  return y;
}

}  // namespace ssm
