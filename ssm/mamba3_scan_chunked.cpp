// ssm/mamba3_scan_chunked.cpp — the chunked Mamba-3 scan and its chunked adjoint (spec §3.8, §3.10).
//
// Unrolled, the input (v_s, k̃_s) reaches h_t (t > s) twice — through γ_s at step s and through β_{s+1}
// at step s+1 — and both paths decay by exp(Σ_{τ=s+1}^{t} ADT_τ) (β_{s+1} = α_{s+1}η_{s+1}). So the
// trapezoid is the generic SSD (ssm/ssd_core.h) with rows (t, r) and a two-term key weight:
//   Q = q̃,  K_s = w_s·k̃_s with w_s = γ_s + η_{s+1} (η_L := 0 at the end of the call),  V = v,  a = ADT,
//   S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ                      (the previous token's pending term)
// with one exception: on the diagonal (s = t) only γ_t applies, because the η-part enters one step
// later. The core's mask includes the diagonal, so the excess is subtracted afterwards:
//   y_{t,r} −= η_{t+1} Σ_{r'} (q̃_{t,r}·k̃_{t,r'}) v_{t,r'}
// The final state S_nchunks is h_{L−1} (w_{L−1} = γ_{L−1}: the pending η_L term is the next call's).
//
// Backward: run the core's chunked adjoint (per batch and head) with the same Q, K, V, a, S_0, then map
// the generic gradients back and undo the diagonal correction (token by token, for the same sequence):
//   dk̃_s += w_s dK_s,   dw_s = Σ_r <dK_{s,r}, k̃_{s,r}>,   dγ_s += dw_s,   dη_{s+1} += dw_s (s+1 < L)
//   dh_init = dS_0,  dη_0 += Σ_r v_prev,rᵀ dS_0 k_prev,r,  dk_prev,r = η_0 dS_0ᵀ v_prev,r,  dv_prev,r = η_0 dS_0 k_prev,r
// Sequences (batch × head) are independent and write disjoint gradient slices: parallel loops over them,
// every output computed the same way whatever the thread count.
// CUDA tensors take the GPU path of ssm/scan_cuda.h (the same mapping as tensor ops around the GPU core).
#include <algorithm>
#include <vector>

#include "ssm/mamba3_scan_function.h"
#include "ssm/scan_cuda.h"
#include "ssm/ssd_core.h"
#include "tensor/cpu/parallel.h"

namespace ssm {
namespace {

// Per-token helpers. The scan's (b, t, h) values are scalars; a head's rows of k, q, v, y and their
// gradients are H·N (or H·P) values apart in memory, so a cold walk over one head's time steps would wait
// on memory at every row. Everything that is elementwise over (t, r, h) — the diagonal correction, the dK
// mapping — therefore walks a sequence's tokens right after the chunk core (which prefetches its rows) has
// walked them: one sequence's rows (~200 KB at the ~1M model's training shape) are then still in L2,
// where a separate pass over all tokens and heads read them back from memory.
template <class T>
struct TokenScalars {
  const Mamba3Sizes& s;
  const T *gamma, *eta;

  T eta_next(int64_t b, int64_t t, int64_t h) const { return t + 1 < s.L ? eta[s.scalar_offset(b, t + 1, h)] : T(0); }
  T key_weight(int64_t b, int64_t t, int64_t h) const {  // w_t = γ_t + η_{t+1}
    return gamma[s.scalar_offset(b, t, h)] + eta_next(b, t, h);
  }
};

// The key weights w = γ + η_next of every (b, t, h), in the layout of γ [batch, L, H]; the chunk core
// scales the keys by them as it loads a chunk's rows (K = w·k̃ is never written out).
template <class T>
std::vector<T> key_weights(const Mamba3Sizes& s, const TokenScalars<T>& ts) {
  std::vector<T> weights(static_cast<size_t>(s.batch * s.L * s.H));
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t t = 0; t < s.L; ++t)
      for (int64_t h = 0; h < s.H; ++h) weights[s.scalar_offset(b, t, h)] = ts.key_weight(b, t, h);
  return weights;
}

// S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ  (P×N, row-major) for sequence (b, h).
template <class T>
void initial_state(const Mamba3Sizes& s, int64_t b, int64_t h, const T* eta, const T* h0, const T* k_prev,
                   const T* v_prev, T* s0) {
  const T* hi = h0 + s.state_offset(b, h);
  std::copy(hi, hi + s.P * s.N, s0);
  const T eta0 = eta[s.scalar_offset(b, 0, h)];
  for (int64_t r = 0; r < s.R; ++r) {
    const T *kp = k_prev + s.prev_key_offset(b, r, h), *vp = v_prev + s.prev_value_offset(b, r, h);
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t n = 0; n < s.N; ++n) s0[p * s.N + n] += eta0 * vp[p] * kp[n];
  }
}

// The generic problem of sequence (b, h): rows (t, r) of one head, H·N (H·P) values apart, keys k̃ weighted
// by w (key_weights).
template <class T>
ssd::ChunkProblem<T> head_problem(const Mamba3Sizes& s, int64_t b, int64_t h, const T* q, const T* k,
                                  const T* weights, const T* v, const T* adt) {
  ssd::ChunkProblem<T> problem;
  problem.steps = s.L;
  problem.rank = s.R;
  problem.N = s.N;
  problem.P = s.P;
  problem.chunk = s.Q;
  problem.q = {q + s.key_offset(b, 0, 0, h), s.key_rank_stride()};  // row (t, r) is H·N after (t, r−1)
  problem.k = {k + s.key_offset(b, 0, 0, h), s.key_rank_stride()};
  problem.v = {v + s.value_offset(b, 0, 0, h), s.value_rank_stride()};
  problem.a = {adt + s.scalar_offset(b, 0, h), s.H};
  problem.k_weight = {weights + s.scalar_offset(b, 0, h), s.H};
  return problem;
}

// A grow-only buffer of the calling thread for the gradient dK of one sequence's weighted keys, so that
// steady-state calls do not allocate.
template <class T>
T* key_scratch(int64_t n) {
  thread_local std::vector<T> buffer;
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(static_cast<size_t>(n));
  return buffer.data();
}

// Multiply-adds of one call, roughly (the state products dominate): parallel_for's threshold.
int64_t scan_work(const Mamba3Sizes& s) { return s.batch * s.H * s.L * s.R * (s.P * s.N + s.Q * (s.P + s.N)); }

// The diagonal correction of sequence (b, h): y_{t,r} −= η_{t+1} Σ_{r'} (q̃_{t,r}·k̃_{t,r'}) v_{t,r'}
// (η_L = 0: the last token has none).
template <class T>
void subtract_diagonal_excess(const Mamba3Sizes& s, const TokenScalars<T>& ts, int64_t b, int64_t h, const T* q,
                              const T* k, const T* v, T* y) {
  const int64_t N = s.N, P = s.P;  // locals and __restrict: the loops vectorise
  for (int64_t t = 0; t + 1 < s.L; ++t) {
    const T eta_next = ts.eta_next(b, t, h);
    for (int64_t r = 0; r < s.R; ++r) {
      const T* qt = q + s.key_offset(b, t, r, h);
      T* __restrict yt = y + s.value_offset(b, t, r, h);
      for (int64_t r2 = 0; r2 < s.R; ++r2) {
        const T c = eta_next * cpu::dot(qt, k + s.key_offset(b, t, r2, h), N);
        const T* __restrict vt = v + s.value_offset(b, t, r2, h);
        for (int64_t p = 0; p < P; ++p) yt[p] -= c * vt[p];
      }
    }
  }
}

// The per-token gradients of sequence (b, h), from dK = ∂ℒ/∂K of its weighted keys (rows (t, r), N apart);
// token t writes dγ_t and dη_{t+1}:
//   K_s = w_s k̃_s  ⇒  dk̃_s = w_s dK_s,  dw_s = Σ_r <dK_{s,r}, k̃_{s,r}> feeds γ_s and η_{s+1};
//   the diagonal correction, with e_{t,r,r'} = q̃_{t,r}·k̃_{t,r'} and de = −η_{t+1}(do_{t,r}·v_{t,r'}):
//   dv_{t,r'} −= η_{t+1} e do_{t,r},  dq̃_{t,r} += de k̃_{t,r'},  dk̃_{t,r'} += de q̃_{t,r},
//   dη_{t+1} −= Σ_{r,r'} e (do_{t,r}·v_{t,r'}).
template <class T>
void token_grads(const Mamba3Sizes& s, const TokenScalars<T>& ts, int64_t b, int64_t h, const T* d_weighted_keys,
                 const T* q, const T* k, const T* v, const T* dy, T* dq, T* dk, T* dv, T* dgamma, T* deta) {
  const int64_t N = s.N, P = s.P;  // locals and __restrict: the loops vectorise
  for (int64_t t = 0; t < s.L; ++t) {
    const T w = ts.key_weight(b, t, h), eta_next = ts.eta_next(b, t, h);
    T dw = 0, d_eta_next = 0;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t off = s.key_offset(b, t, r, h);
      const T* __restrict dK = d_weighted_keys + (t * s.R + r) * N;
      T* __restrict dkr = dk + off;
      for (int64_t n = 0; n < N; ++n) dkr[n] = w * dK[n];
      dw += cpu::dot(dK, k + off, N);
    }
    if (t + 1 < s.L)
      for (int64_t r = 0; r < s.R; ++r) {
        const T *__restrict qt = q + s.key_offset(b, t, r, h), *__restrict dyt = dy + s.value_offset(b, t, r, h);
        T* __restrict dqt = dq + s.key_offset(b, t, r, h);
        for (int64_t r2 = 0; r2 < s.R; ++r2) {
          const T* __restrict kt = k + s.key_offset(b, t, r2, h);
          const T e = cpu::dot(qt, kt, N);
          const T dy_v = cpu::dot(dyt, v + s.value_offset(b, t, r2, h), P);
          T* __restrict dvt = dv + s.value_offset(b, t, r2, h);
          const T dv_scale = eta_next * e;
          for (int64_t p = 0; p < P; ++p) dvt[p] -= dv_scale * dyt[p];
          const T de = -eta_next * dy_v;
          T* __restrict dkt = dk + s.key_offset(b, t, r2, h);
          for (int64_t n = 0; n < N; ++n) {
            dqt[n] += de * kt[n];
            dkt[n] += de * qt[n];
          }
          d_eta_next -= e * dy_v;
        }
      }
    dgamma[s.scalar_offset(b, t, h)] = dw;
    if (t + 1 < s.L) deta[s.scalar_offset(b, t + 1, h)] = dw + d_eta_next;
  }
}

struct ChunkedKernel {
  static constexpr const char* name = "mamba3_scan_chunked";
  static int64_t stored_states(const Mamba3Sizes& s) { return s.nchunks + 1; }  // S_0 .. S_nchunks
  static constexpr bool runs_on_cuda = true;
  // The core overwrites dq, dv, dadt and dh0, the per-token pass dk, dγ and dη_{t≥1}; backward() zeroes
  // the rest (dη_0, dk_prev, dv_prev) before it adds to them.
  static constexpr bool writes_every_gradient = true;

  static scan_cuda::ScanForward cuda_forward(const Mamba3Sizes& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& adt, const Tensor& gamma, const Tensor& eta,
                                             const Tensor& h0, const Tensor& k_prev, const Tensor& v_prev) {
    return scan_cuda::mamba3_forward(s, q, k, v, adt, gamma, eta, h0, k_prev, v_prev);
  }
  static std::vector<Tensor> cuda_backward(const Mamba3Sizes& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                           const Tensor& adt, const Tensor& gamma, const Tensor& eta,
                                           const Tensor& h0, const Tensor& k_prev, const Tensor& v_prev,
                                           const Tensor& states, const Tensor& dy, const Tensor& dh_final) {
    return scan_cuda::mamba3_backward(s, q, k, v, adt, gamma, eta, h0, k_prev, v_prev, states, dy, dh_final);
  }

  template <class T>
  static void forward(const Mamba3Sizes& s, const T* q, const T* k, const T* v, const T* adt, const T* gamma,
                      const T* eta, const T* h0, const T* k_prev, const T* v_prev, T* y, T* states) {
    const int64_t kept = stored_states(s), PN = s.P * s.N;
    const TokenScalars<T> ts{s, gamma, eta};
    const std::vector<T> weights = key_weights(s, ts);
    cpu::parallel_for(s.batch * s.H, scan_work(s), [&](int64_t i) {
      const int64_t b = i / s.H, h = i % s.H;
      T* s0 = states + s.state_offset(b * kept, h);  // S_0 is kept, and the core reads it from there
      initial_state(s, b, h, eta, h0, k_prev, v_prev, s0);
      ssd::sequence_forward(head_problem(s, b, h, q, k, weights.data(), v, adt), s0,
                            ssd::RowsView<T>{y + s.value_offset(b, 0, 0, h), s.value_rank_stride()}, s0, s.H * PN);
      subtract_diagonal_excess(s, ts, b, h, q, k, v, y);
    });
  }
  template <class T>
  static void backward(const Mamba3Sizes& s, const T* q, const T* k, const T* v, const T* adt, const T* gamma,
                       const T* eta, const T* /*h0: S_0 is kept in states*/, const T* k_prev, const T* v_prev,
                       const T* states, const T* dy,
                       const T* dh_final, T* dq, T* dk, T* dv, T* dadt, T* dgamma, T* deta, T* dh0, T* dk_prev,
                       T* dv_prev) {
    const int64_t kept = stored_states(s), PN = s.P * s.N;
    const TokenScalars<T> ts{s, gamma, eta};
    const std::vector<T> weights = key_weights(s, ts);
    const int64_t prev_keys = s.batch * s.R * s.H * s.N, prev_values = s.batch * s.R * s.H * s.P;
    std::fill(dk_prev, dk_prev + prev_keys, T(0));
    std::fill(dv_prev, dv_prev + prev_values, T(0));

    // The generic chunked adjoint, per sequence: dQ, dV, da, dS_0 straight into the gradients (which it
    // overwrites), dK to the thread's scratch. Then the initial state S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ:
    //   dh_init = dS_0,  dη_0 = Σ_r v_prev,rᵀ dS_0 k_prev,r,  dk_prev,r = η_0 dS_0ᵀ v_prev,r,  dv_prev,r = η_0 dS_0 k_prev,r
    // and last the per-token gradients of the sequence (token_grads), while its rows are still in cache.
    cpu::parallel_for(s.batch * s.H, scan_work(s), [&](int64_t i) {
      const int64_t b = i / s.H, h = i % s.H;
      T* d_weighted_keys = key_scratch<T>(s.L * s.R * s.N);  // ∂ℒ/∂K of this sequence, rows (t, r) N apart
      ssd::ChunkGrads<T> grads;
      grads.dq = {dq + s.key_offset(b, 0, 0, h), s.key_rank_stride()};
      grads.dk = {d_weighted_keys, s.N};
      grads.dv = {dv + s.value_offset(b, 0, 0, h), s.value_rank_stride()};
      grads.da = {dadt + s.scalar_offset(b, 0, h), s.H};
      grads.ds0 = dh0 + s.state_offset(b, h);
      ssd::sequence_backward(head_problem(s, b, h, q, k, weights.data(), v, adt),
                             states + s.state_offset(b * kept, h), s.H * PN,
                             ssd::RowsView<const T>{dy + s.value_offset(b, 0, 0, h), s.value_rank_stride()},
                             dh_final + s.state_offset(b, h), grads);

      const T* dS0 = grads.ds0;
      const T eta0 = eta[s.scalar_offset(b, 0, h)];
      T d_eta0 = 0;
      for (int64_t r = 0; r < s.R; ++r) {
        const T *kp = k_prev + s.prev_key_offset(b, r, h), *vp = v_prev + s.prev_value_offset(b, r, h);
        T *dkp = dk_prev + s.prev_key_offset(b, r, h), *dvp = dv_prev + s.prev_value_offset(b, r, h);
        for (int64_t p = 0; p < s.P; ++p) {
          const T dS0_kp = cpu::dot(dS0 + p * s.N, kp, s.N);  // (dS_0 k_prev)_p
          dvp[p] += eta0 * dS0_kp;
          d_eta0 += vp[p] * dS0_kp;
          for (int64_t n = 0; n < s.N; ++n) dkp[n] += eta0 * dS0[p * s.N + n] * vp[p];
        }
      }
      deta[s.scalar_offset(b, 0, h)] = d_eta0;
      token_grads(s, ts, b, h, d_weighted_keys, q, k, v, dy, dq, dk, dv, dgamma, deta);
    });
  }
};

}  // namespace

ScanOutput mamba3_scan_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& adt,
                               const Tensor& gamma, const Tensor& eta, const Tensor& initial_state,
                               const Tensor& k_prev, const Tensor& v_prev, int64_t chunk_size) {
  return run_mamba3_scan<ChunkedKernel>(q, k, v, adt, gamma, eta, initial_state, k_prev, v_prev, chunk_size);
}

}  // namespace ssm
