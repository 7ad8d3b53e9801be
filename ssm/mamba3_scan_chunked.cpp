// ssm/mamba3_scan_chunked.cpp — the chunked Mamba-3 scan and its chunked adjoint (spec §3.8, §3.10).
//
// Unrolled, the input (v_s, k̃_s) reaches h_t (t > s) twice — through γ_s at step s and through β_{s+1}
// at step s+1 — and both paths decay by exp(Σ_{τ=s+1}^{t} ADT_τ) (β_{s+1} = α_{s+1}η_{s+1}). So the
// trapezoid is the generic SSD (ssm/ssd_chunk_core.h) with rows (t, r) and a two-term key weight:
//   Q = q̃,  K_s = w_s·k̃_s with w_s = γ_s + η_{s+1} (η_L := 0 at the end of the call),  V = v,  a = ADT,
//   S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ                      (the previous token's pending term)
// with one exception: on the diagonal (s = t) only γ_t applies, because the η-part enters one step
// later. The core's mask includes the diagonal, so the excess is subtracted afterwards:
//   y_{t,r} −= η_{t+1} Σ_{r'} (q̃_{t,r}·k̃_{t,r'}) v_{t,r'}
// The final state S_nchunks is h_{L−1} (w_{L−1} = γ_{L−1}: the pending η_L term is the next call's).
//
// Backward (per batch and head): undo the diagonal correction, run the core's chunked adjoint with the
// same Q, K, V, a, S_0, then map the generic gradients back:
//   dk̃_s += w_s dK_s,   dw_s = Σ_r <dK_{s,r}, k̃_{s,r}>,   dγ_s += dw_s,   dη_{s+1} += dw_s (s+1 < L)
//   dh_init = dS_0,  dη_0 += Σ_r v_prev,rᵀ dS_0 k_prev,r,  dk_prev,r = η_0 dS_0ᵀ v_prev,r,  dv_prev,r = η_0 dS_0 k_prev,r
// Sequences (batch × head) are independent and write disjoint gradient slices: one parallel loop over them.
// CUDA tensors take the GPU path of ssm/scan_cuda.h (the same mapping as tensor ops around the GPU core).
#include <vector>

#include "ssm/mamba3_scan_function.h"
#include "ssm/scan_cuda.h"
#include "ssm/ssd_chunk_core.h"
#include "tensor/cpu/parallel.h"

namespace ssm {
namespace {

// One (batch, head) sequence seen through the core's strided views, plus its scratch: the weighted
// keys K = w·k̃ and the initial state S_0. Built the same way by forward and backward.
template <class T>
struct HeadSequence {
  const Mamba3Sizes& s;
  int64_t b, h;
  const T *q, *k, *v, *adt, *gamma, *eta, *h0, *k_prev, *v_prev;
  std::vector<T>& weighted_keys;  // [L·R, N]
  std::vector<T>& s0;             // [P, N]

  T eta_next(int64_t t) const { return t + 1 < s.L ? eta[s.scalar_offset(b, t + 1, h)] : T(0); }
  T key_weight(int64_t t) const { return gamma[s.scalar_offset(b, t, h)] + eta_next(t); }  // w_t
  const T* key(int64_t t, int64_t r) const { return k + s.key_offset(b, t, r, h); }
  const T* query(int64_t t, int64_t r) const { return q + s.key_offset(b, t, r, h); }
  const T* value(int64_t t, int64_t r) const { return v + s.value_offset(b, t, r, h); }

  ssd::ChunkProblem<T> build() {
    const int64_t rows = s.L * s.R;
    weighted_keys.resize(rows * s.N);
    for (int64_t t = 0; t < s.L; ++t) {
      const T w = key_weight(t);
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t n = 0; n < s.N; ++n) weighted_keys[(t * s.R + r) * s.N + n] = w * key(t, r)[n];
    }
    // S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ
    s0.assign(h0 + s.state_offset(b, h), h0 + s.state_offset(b, h) + s.P * s.N);
    const T eta0 = eta[s.scalar_offset(b, 0, h)];
    for (int64_t r = 0; r < s.R; ++r) {
      const T *kp = k_prev + s.prev_key_offset(b, r, h), *vp = v_prev + s.prev_value_offset(b, r, h);
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t n = 0; n < s.N; ++n) s0[p * s.N + n] += eta0 * vp[p] * kp[n];
    }
    ssd::ChunkProblem<T> problem;
    problem.steps = s.L;
    problem.rank = s.R;
    problem.N = s.N;
    problem.P = s.P;
    problem.chunk = s.Q;
    problem.q = {q + s.key_offset(b, 0, 0, h), s.key_rank_stride()};  // row (t, r) is H·N after (t, r−1)
    problem.k = {weighted_keys.data(), s.N};
    problem.v = {v + s.value_offset(b, 0, 0, h), s.value_rank_stride()};
    problem.a = {adt + s.scalar_offset(b, 0, h), s.H};
    return problem;
  }
};

// Multiply-adds of one call, roughly (the state products dominate): parallel_for's threshold.
int64_t scan_work(const Mamba3Sizes& s) { return s.batch * s.H * s.L * s.R * (s.P * s.N + s.Q * (s.P + s.N)); }

struct ChunkedKernel {
  static constexpr const char* name = "mamba3_scan_chunked";
  static int64_t stored_states(const Mamba3Sizes& s) { return s.nchunks + 1; }  // S_0 .. S_nchunks
  static constexpr bool runs_on_cuda = true;

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
    const int64_t kept = stored_states(s);
    cpu::parallel_for(s.batch * s.H, scan_work(s), [&](int64_t i) {
      thread_local std::vector<T> weighted_keys, s0;
      const int64_t b = i / s.H, h = i % s.H;
      HeadSequence<T> seq{s, b, h, q, k, v, adt, gamma, eta, h0, k_prev, v_prev, weighted_keys, s0};
      const ssd::ChunkProblem<T> problem = seq.build();
      T* y_head = y + s.value_offset(b, 0, 0, h);
      ssd::chunk_forward(problem, s0.data(), ssd::RowsView<T>{y_head, s.value_rank_stride()},
                         states + s.state_offset(b * kept, h), s.H * s.P * s.N);
      // diagonal correction: y_{t,r} −= η_{t+1} Σ_{r'} (q̃_{t,r}·k̃_{t,r'}) v_{t,r'}
      for (int64_t t = 0; t + 1 < s.L; ++t) {
        const T eta_next = seq.eta_next(t);
        for (int64_t r = 0; r < s.R; ++r) {
          T* yt = y + s.value_offset(b, t, r, h);
          for (int64_t r2 = 0; r2 < s.R; ++r2) {
            const T e = cpu::dot(seq.query(t, r), seq.key(t, r2), s.N);
            const T* vt = seq.value(t, r2);
            for (int64_t p = 0; p < s.P; ++p) yt[p] -= eta_next * e * vt[p];
          }
        }
      }
    });
  }

  template <class T>
  static void backward(const Mamba3Sizes& s, const T* q, const T* k, const T* v, const T* adt, const T* gamma,
                       const T* eta, const T* h0, const T* k_prev, const T* v_prev, const T* states, const T* dy,
                       const T* dh_final, T* dq, T* dk, T* dv, T* dadt, T* dgamma, T* deta, T* dh0, T* dk_prev,
                       T* dv_prev) {
    const int64_t kept = stored_states(s), PN = s.P * s.N;
    cpu::parallel_for(s.batch * s.H, scan_work(s), [&](int64_t i) {
      thread_local std::vector<T> weighted_keys, s0, d_weighted_keys;
      const int64_t b = i / s.H, h = i % s.H;
      HeadSequence<T> seq{s, b, h, q, k, v, adt, gamma, eta, h0, k_prev, v_prev, weighted_keys, s0};
      const ssd::ChunkProblem<T> problem = seq.build();
      const auto at = [&](T* base, int64_t t) { return base + s.scalar_offset(b, t, h); };

      // the diagonal correction, backwards
      for (int64_t t = 0; t + 1 < s.L; ++t) {
        const T eta_next = seq.eta_next(t);
        T d_eta_next = 0;
        for (int64_t r = 0; r < s.R; ++r) {
          const T* dyt = dy + s.value_offset(b, t, r, h);
          for (int64_t r2 = 0; r2 < s.R; ++r2) {
            const T e = cpu::dot(seq.query(t, r), seq.key(t, r2), s.N);
            const T dy_v = cpu::dot(dyt, seq.value(t, r2), s.P);
            T* dvt = dv + s.value_offset(b, t, r2, h);
            for (int64_t p = 0; p < s.P; ++p) dvt[p] -= eta_next * e * dyt[p];
            const T de = -eta_next * dy_v;
            T *dqt = dq + s.key_offset(b, t, r, h), *dkt = dk + s.key_offset(b, t, r2, h);
            for (int64_t n = 0; n < s.N; ++n) {
              dqt[n] += de * seq.key(t, r2)[n];
              dkt[n] += de * seq.query(t, r)[n];
            }
            d_eta_next -= e * dy_v;
          }
        }
        *at(deta, t + 1) += d_eta_next;
      }

      // the generic chunked adjoint: dQ, dV, da straight into the gradients, dK and dS_0 to scratch
      d_weighted_keys.assign(s.L * s.R * s.N, T(0));  // accumulated into, like the other gradients
      ssd::ChunkGrads<T> grads;
      grads.dq = {dq + s.key_offset(b, 0, 0, h), s.key_rank_stride()};
      grads.dk = {d_weighted_keys.data(), s.N};
      grads.dv = {dv + s.value_offset(b, 0, 0, h), s.value_rank_stride()};
      grads.da = {dadt + s.scalar_offset(b, 0, h), s.H};
      grads.ds0 = dh0 + s.state_offset(b, h);  // dh_init = dS_0
      grads.accumulate = true;                 // on top of the diagonal terms (and zeros elsewhere)
      ssd::chunk_backward(problem, states + s.state_offset(b * kept, h), s.H * PN,
                          ssd::RowsView<const T>{dy + s.value_offset(b, 0, 0, h), s.value_rank_stride()},
                          dh_final + s.state_offset(b, h), grads);

      // K_s = w_s k̃_s  ⇒  dk̃_s += w_s dK_s;  dw_s = Σ_r <dK_{s,r}, k̃_{s,r}> feeds γ_s and η_{s+1}
      for (int64_t t = 0; t < s.L; ++t) {
        const T w = seq.key_weight(t);
        T dw = 0;
        for (int64_t r = 0; r < s.R; ++r) {
          const T* dK = d_weighted_keys.data() + (t * s.R + r) * s.N;
          T* dkt = dk + s.key_offset(b, t, r, h);
          for (int64_t n = 0; n < s.N; ++n) dkt[n] += w * dK[n];
          dw += cpu::dot(dK, seq.key(t, r), s.N);
        }
        *at(dgamma, t) += dw;
        if (t + 1 < s.L) *at(deta, t + 1) += dw;
      }

      // S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ
      const T* dS0 = dh0 + s.state_offset(b, h);
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
      *at(deta, 0) += d_eta0;
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
