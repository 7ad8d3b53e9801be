// ssm/mamba3_scan_reference.cpp — the sequential Mamba-3 scan and its adjoint (spec §3.5, §3.6, §3.10).
//
// Per batch and head, with kv_t = Σ_r v_{t,r} k̃_{t,r}ᵀ (P×N) and kv_{−1} built from (v_prev, k_prev):
//   h_t     = α_t h_{t−1} + β_t kv_{t−1} + γ_t kv_t,   α_t = exp(adt_t),  β_t = α_t η_t     (§3.6)
//   y_{t,r} = h_t q̃_{t,r}                                                              (no D: the block adds it)
// Forward stores every state h_{−1} .. h_{L−1} (the reference trades memory for plainness).
//
// Backward is the sequential adjoint of §3.10 restricted to the scan's own inputs. h_t reaches the loss
// through y_t, through h_{t+1} (times α_{t+1}) and, at t = L−1, as the final state; kv_t reaches it through
// h_t (times γ_t) and h_{t+1} (times β_{t+1}). So step t+1 hands two carries back to step t:
//   G_from_next = α_{t+1} G_{t+1}   (dh_final at t = L−1)     dkv_from_next = β_{t+1} G_{t+1}   (0 at t = L−1)
// and, walking t = L−1 .. 0:
//   G_t       = G_from_next + Σ_r dy_{t,r} q̃_{t,r}ᵀ                      = ∂ℒ/∂h_t
//   dkv_t     = γ_t G_t + dkv_from_next                                 = ∂ℒ/∂kv_t
//   dq̃_{t,r}  = h_tᵀ dy_{t,r}      dv_{t,r} = dkv_t k̃_{t,r}      dk̃_{t,r} = dkv_tᵀ v_{t,r}
//   dγ_t      = <G_t, kv_t>            = Σ_r v_{t,r}ᵀ G_t k̃_{t,r}
//   dη_t      = α_t <G_t, kv_{t−1}>    (∂h_t/∂η_t = α_t kv_{t−1})
//   dadt_t    = α_t <G_t, h_{t−1}> + β_t <G_t, kv_{t−1}>   (α_t and β_t = α_t η_t both carry exp(adt_t))
// The token before the call is one more kv: dh0 = α_0 G_0, and dkv_{−1} = β_0 G_0 gives dk_prev, dv_prev.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ssm/mamba3_scan_function.h"
#include "tensor/cpu/dot.h"
#include "tensor/cpu/parallel.h"

namespace ssm {
namespace {

// One token's keys and values at one (batch, head): rank r is at k + r·H·N and v + r·H·P.
template <class T>
struct TokenKV {
  T* k;
  T* v;
};

// Token t of (k, v); t = −1 is the token before the call, (k_prev, v_prev). Works for gradients too,
// which share the inputs' layouts.
template <class T>
TokenKV<T> token_at(const Mamba3Sizes& s, T* k, T* v, T* k_prev, T* v_prev, int64_t b, int64_t t, int64_t h) {
  if (t < 0) return {k_prev + s.prev_key_offset(b, 0, h), v_prev + s.prev_value_offset(b, 0, h)};
  return {k + s.key_offset(b, t, 0, h), v + s.value_offset(b, t, 0, h)};
}

// h_t of (batch b, head h) for t = −1 .. L−1 in states [batch, L + 1, H, P, N].
template <class T>
T* state_at(const Mamba3Sizes& s, T* states, int64_t b, int64_t t, int64_t h) {
  return states + ((b * (s.L + 1) + t + 1) * s.H + h) * s.P * s.N;
}

// M += weight · kv, kv = Σ_r v_r k_rᵀ
template <class T>
void add_outer_products(const Mamba3Sizes& s, T weight, TokenKV<const T> tok, T* M) {
  for (int64_t r = 0; r < s.R; ++r) {
    const T *kr = tok.k + r * s.key_rank_stride(), *vr = tok.v + r * s.value_rank_stride();
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t n = 0; n < s.N; ++n) M[p * s.N + n] += weight * vr[p] * kr[n];
  }
}

// <G, kv> = Σ_r v_rᵀ G k_r
template <class T>
T dot_with_outer_products(const Mamba3Sizes& s, const T* G, TokenKV<const T> tok) {
  T total = 0;
  for (int64_t r = 0; r < s.R; ++r) {
    const T *kr = tok.k + r * s.key_rank_stride(), *vr = tok.v + r * s.value_rank_stride();
    for (int64_t p = 0; p < s.P; ++p) total += vr[p] * cpu::dot(G + p * s.N, kr, s.N);  // v_p (G k_r)_p
  }
  return total;
}

// Adjoint of kv = Σ_r v_r k_rᵀ given dkv = ∂ℒ/∂kv: dv_r += dkv k_r, dk_r += dkvᵀ v_r.
template <class T>
void backprop_outer_products(const Mamba3Sizes& s, const T* dkv, TokenKV<const T> tok, TokenKV<T> grad) {
  for (int64_t r = 0; r < s.R; ++r) {
    const T *kr = tok.k + r * s.key_rank_stride(), *vr = tok.v + r * s.value_rank_stride();
    T *dkr = grad.k + r * s.key_rank_stride(), *dvr = grad.v + r * s.value_rank_stride();
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t n = 0; n < s.N; ++n) {
        dvr[p] += dkv[p * s.N + n] * kr[n];
        dkr[n] += dkv[p * s.N + n] * vr[p];
      }
  }
}

// y_r = M q_r for every rank (q_r at q + r·H·N, y_r at y + r·H·P)
template <class T>
void read_out(const Mamba3Sizes& s, const T* M, const T* q, T* y) {
  for (int64_t r = 0; r < s.R; ++r) {
    const T* qr = q + r * s.key_rank_stride();
    T* yr = y + r * s.value_rank_stride();
    for (int64_t p = 0; p < s.P; ++p) yr[p] = cpu::dot(M + p * s.N, qr, s.N);
  }
}

// Adjoint of read_out: G += Σ_r dy_r q_rᵀ (∂ℒ/∂M), dq_r += Mᵀ dy_r.
template <class T>
void backprop_read_out(const Mamba3Sizes& s, const T* M, const T* q, const T* dy, T* G, T* dq) {
  for (int64_t r = 0; r < s.R; ++r) {
    const T *qr = q + r * s.key_rank_stride(), *dyr = dy + r * s.value_rank_stride();
    T* dqr = dq + r * s.key_rank_stride();
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t n = 0; n < s.N; ++n) {
        G[p * s.N + n] += dyr[p] * qr[n];
        dqr[n] += M[p * s.N + n] * dyr[p];
      }
  }
}

struct ReferenceKernel {
  static constexpr const char* name = "mamba3_scan_reference";
  static constexpr bool runs_on_cuda = false;  // run_*_scan rejects CUDA tensors
  static constexpr bool writes_every_gradient = false;  // it accumulates into zeroed gradients
  static int64_t stored_states(const Mamba3Sizes& s) { return s.L + 1; }  // h_{-1}, h_0, ..., h_{L-1}

  template <class T>
  static void forward(const Mamba3Sizes& s, const T* q, const T* k, const T* v, const T* adt, const T* gamma,
                      const T* eta, const T* h0, const T* k_prev, const T* v_prev, T* y, T* states) {
    const int64_t PN = s.P * s.N;
    // (batch, head) sequences are independent: in parallel (what a decoding step, L = 1, runs on)
    cpu::parallel_for(s.batch * s.H, s.batch * s.H * s.L * PN * s.R * 4, [&](int64_t bh) {
      const int64_t b = bh / s.H, h = bh % s.H;
      std::copy(h0 + s.state_offset(b, h), h0 + s.state_offset(b, h) + PN, state_at(s, states, b, -1, h));
      for (int64_t t = 0; t < s.L; ++t) {
        const T* prev = state_at(s, states, b, t - 1, h);
        T* cur = state_at(s, states, b, t, h);
        const int64_t i = s.scalar_offset(b, t, h);
        const T alpha = std::exp(adt[i]), beta = alpha * eta[i];
        for (int64_t e = 0; e < PN; ++e) cur[e] = alpha * prev[e];
        add_outer_products(s, beta, token_at(s, k, v, k_prev, v_prev, b, t - 1, h), cur);
        add_outer_products(s, gamma[i], token_at(s, k, v, k_prev, v_prev, b, t, h), cur);
        read_out(s, cur, q + s.key_offset(b, t, 0, h), y + s.value_offset(b, t, 0, h));
      }
    });
  }

  template <class T>
  static void backward(const Mamba3Sizes& s, const T* q, const T* k, const T* v, const T* adt, const T* gamma,
                       const T* eta, const T* /*h0: states[−1] holds it*/, const T* k_prev, const T* v_prev,
                       const T* states, const T* dy, const T* dh_final, T* dq, T* dk, T* dv, T* dadt, T* dgamma,
                       T* deta, T* dh0, T* dk_prev, T* dv_prev) {
    const int64_t PN = s.P * s.N;
    std::vector<T> G(PN), dkv(PN), G_from_next(PN), dkv_from_next(PN);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const T* dh_final_bh = dh_final + s.state_offset(b, h);
        G_from_next.assign(dh_final_bh, dh_final_bh + PN);
        dkv_from_next.assign(PN, T(0));
        for (int64_t t = s.L - 1; t >= 0; --t) {
          const T* prev = state_at(s, states, b, t - 1, h);
          const T* cur = state_at(s, states, b, t, h);
          const int64_t i = s.scalar_offset(b, t, h);
          const T alpha = std::exp(adt[i]), beta = alpha * eta[i];
          const TokenKV<const T> now = token_at(s, k, v, k_prev, v_prev, b, t, h);
          const TokenKV<const T> before = token_at(s, k, v, k_prev, v_prev, b, t - 1, h);

          G = G_from_next;
          backprop_read_out(s, cur, q + s.key_offset(b, t, 0, h), dy + s.value_offset(b, t, 0, h), G.data(),
                            dq + s.key_offset(b, t, 0, h));
          for (int64_t e = 0; e < PN; ++e) dkv[e] = gamma[i] * G[e] + dkv_from_next[e];
          backprop_outer_products(s, dkv.data(), now, token_at(s, dk, dv, dk_prev, dv_prev, b, t, h));

          const T G_dot_kv_before = dot_with_outer_products(s, G.data(), before);
          T G_dot_prev = 0;
          for (int64_t e = 0; e < PN; ++e) G_dot_prev += G[e] * prev[e];
          dgamma[i] += dot_with_outer_products(s, G.data(), now);
          deta[i] += alpha * G_dot_kv_before;
          dadt[i] += alpha * G_dot_prev + beta * G_dot_kv_before;

          for (int64_t e = 0; e < PN; ++e) {
            G_from_next[e] = alpha * G[e];
            dkv_from_next[e] = beta * G[e];
          }
        }
        std::copy(G_from_next.begin(), G_from_next.end(), dh0 + s.state_offset(b, h));
        backprop_outer_products(s, dkv_from_next.data(), token_at(s, k, v, k_prev, v_prev, b, -1, h),
                                token_at(s, dk, dv, dk_prev, dv_prev, b, -1, h));
      }
  }
};

}  // namespace

ScanOutput mamba3_scan_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& adt,
                                 const Tensor& gamma, const Tensor& eta, const Tensor& initial_state,
                                 const Tensor& k_prev, const Tensor& v_prev) {
  return run_mamba3_scan<ReferenceKernel>(q, k, v, adt, gamma, eta, initial_state, k_prev, v_prev,
                                          /*chunk_size=*/1);
}

}  // namespace ssm
