// ssm/ssd_scan_chunked.cpp — the chunked Mamba-2 SSD scan and its chunked adjoint (spec §2.4, §2.6).
//
// In the generic form of §2.4 (per batch and head): Q_t = C_t, K_t = B_t, V_t = dt_t x_t, a_t = dt_t A.
// Per chunk (chunk-local t, s = 0..q−1, q ≤ chunk_size; a short last chunk equals the spec's zero padding):
//   cs_t = Σ_{τ≤t} a_τ,  T = cs_{q−1},  Λ_ts = exp(seg_ts) for s ≤ t (seg_ts = Σ_{s<τ≤t} a_τ, built by a
//   running sum so it stays exact),  M = (Q Kᵀ) ⊙ Λ,
//   Y_t = M V + e^{cs_t} S_c Q_t,  S_{c+1} = e^T S_c + Σ_s e^{T−cs_s} V_s K_sᵀ,  y = Y + D x.
// Forward keeps S_c (one P×N state per chunk and head) for backward, which walks the chunks in reverse
// carrying dS = ∂ℒ/∂S_{c+1} and follows §2.6 steps 1–5, then maps back to x, dt, A, B, C, D.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ssm/ssd_scan_function.h"

namespace ssm {
namespace {


// Chunk-local quantities for one (batch, head, chunk), shared by forward and backward.
template <class T>
struct ChunkLocal {
  int64_t q = 0;
  std::vector<T> a, cs, seg;  // a_t, cs_t, seg_ts (q×q, row t, col s; only s ≤ t used)
  std::vector<T> V;           // V_t = dt_t x_t (q×P)

  void build(const SsdSizes& s, int64_t b, int64_t h, int64_t t0, int64_t len, const T* x, const T* dt, const T* A) {
    q = len;
    a.assign(q, T(0));
    cs.assign(q, T(0));
    seg.assign(q * q, T(0));
    V.assign(q * s.P, T(0));
    T run = 0;
    for (int64_t t = 0; t < q; ++t) {
      const T step = dt[(b * s.L + t0 + t) * s.H + h];
      a[t] = step * A[h];
      run += a[t];
      cs[t] = run;
      const T* xt = x + ((b * s.L + t0 + t) * s.H + h) * s.P;
      for (int64_t p = 0; p < s.P; ++p) V[t * s.P + p] = step * xt[p];
    }
    for (int64_t si = 0; si < q; ++si) {
      T acc = 0;
      seg[si * q + si] = 0;
      for (int64_t t = si + 1; t < q; ++t) {
        acc += a[t];
        seg[t * q + si] = acc;
      }
    }
  }
};

struct ChunkedKernel {
  static constexpr const char* name = "ssd_scan_chunked";
  static int64_t stored_states(const SsdSizes& s) { return s.nchunks + 1; }  // S_0 .. S_nchunks

  template <class T>
  static void forward(const SsdSizes& s, const T* x, const T* dt, const T* A, const T* B, const T* C, const T* D,
                          const T* h0, T* y, T* states) {
    const int64_t PN = s.P * s.N, P = s.P, N = s.N;
    ChunkLocal<T> cl;
    std::vector<T> S(PN), QK;
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const int64_t g = s.group_of(h);
        for (int64_t i = 0; i < PN; ++i) S[i] = h0[(b * s.H + h) * PN + i];
        for (int64_t c = 0; c < s.nchunks; ++c) {
          T* Sc = states + ((b * (s.nchunks + 1) + c) * s.H + h) * PN;
          for (int64_t i = 0; i < PN; ++i) Sc[i] = S[i];
          const int64_t t0 = c * s.Q, q = std::min(s.Q, s.L - t0);
          cl.build(s, b, h, t0, q, x, dt, A);
          auto Kp = [&](int64_t t) { return B + ((b * s.L + t0 + t) * s.G + g) * N; };
          auto Qp = [&](int64_t t) { return C + ((b * s.L + t0 + t) * s.G + g) * N; };
          for (int64_t t = 0; t < q; ++t) {
            const T* Qt = Qp(t);
            const T* xt = x + ((b * s.L + t0 + t) * s.H + h) * P;
            T* yt = y + ((b * s.L + t0 + t) * s.H + h) * P;
            const T et = std::exp(cl.cs[t]);
            for (int64_t p = 0; p < P; ++p) {  // Y_off + D x
              T acc = 0;
              for (int64_t n = 0; n < N; ++n) acc += S[p * N + n] * Qt[n];
              yt[p] = et * acc + D[h] * xt[p];
            }
            for (int64_t si = 0; si <= t; ++si) {  // Y_diag = M V
              const T* Ks = Kp(si);
              T qk = 0;
              for (int64_t n = 0; n < N; ++n) qk += Qt[n] * Ks[n];
              const T m = qk * std::exp(cl.seg[t * q + si]);
              for (int64_t p = 0; p < P; ++p) yt[p] += m * cl.V[si * P + p];
            }
          }
          const T eT = std::exp(cl.cs[q - 1]);
          for (int64_t i = 0; i < PN; ++i) S[i] *= eT;
          for (int64_t si = 0; si < q; ++si) {  // + Σ_s e^{T−cs_s} V_s K_sᵀ
            const T w = std::exp(cl.seg[(q - 1) * q + si]);
            const T* Ks = Kp(si);
            for (int64_t p = 0; p < P; ++p)
              for (int64_t n = 0; n < N; ++n) S[p * N + n] += w * cl.V[si * P + p] * Ks[n];
          }
        }
        T* Slast = states + ((b * (s.nchunks + 1) + s.nchunks) * s.H + h) * PN;
        for (int64_t i = 0; i < PN; ++i) Slast[i] = S[i];
      }
  }

  template <class T>
  static void backward(const SsdSizes& s, const T* x, const T* dt, const T* A, const T* B, const T* C, const T* D,
                           const T* states, const T* dy, const T* dh_final, T* dx, T* ddt, T* dA, T* dB, T* dC, T* dD,
                           T* dh0) {
    const int64_t PN = s.P * s.N, P = s.P, N = s.N;
    ChunkLocal<T> cl;
    std::vector<T> dS(PN), dSc(PN), dV, dcs, da;
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const int64_t g = s.group_of(h);
        for (int64_t i = 0; i < PN; ++i) dS[i] = dh_final[(b * s.H + h) * PN + i];
        for (int64_t c = s.nchunks - 1; c >= 0; --c) {
          const T* Sc = states + ((b * (s.nchunks + 1) + c) * s.H + h) * PN;
          const int64_t t0 = c * s.Q, q = std::min(s.Q, s.L - t0);
          cl.build(s, b, h, t0, q, x, dt, A);
          dV.assign(q * P, T(0));
          dcs.assign(q, T(0));
          da.assign(q, T(0));
          auto bo = [&](int64_t t) { return ((b * s.L + t0 + t) * s.G + g) * N; };
          auto xo = [&](int64_t t) { return ((b * s.L + t0 + t) * s.H + h) * P; };
          const T eT = std::exp(cl.cs[q - 1]);
          T dT = 0;

          // 1. state update S_{c+1} = e^T S_c + Σ_s e^{T−cs_s} V_s K_sᵀ
          for (int64_t si = 0; si < q; ++si) {
            const T w = std::exp(cl.seg[(q - 1) * q + si]);
            const T* Ks = B + bo(si);
            T* dKs = dB + bo(si);
            const T* Vs = &cl.V[si * P];
            T gs = 0;
            for (int64_t p = 0; p < P; ++p) {
              T dSK = 0;
              for (int64_t n = 0; n < N; ++n) dSK += dS[p * N + n] * Ks[n];
              dV[si * P + p] += w * dSK;
              gs += Vs[p] * dSK;
            }
            for (int64_t n = 0; n < N; ++n) {
              T acc = 0;
              for (int64_t p = 0; p < P; ++p) acc += dS[p * N + n] * Vs[p];
              dKs[n] += w * acc;
            }
            gs *= w;
            dcs[si] -= gs;
            dT += gs;
          }
          T dS_dot_S = 0;
          for (int64_t i = 0; i < PN; ++i) {
            dS_dot_S += dS[i] * Sc[i];
            dSc[i] = eT * dS[i];
          }
          dT += eT * dS_dot_S;

          // 2. Y_off_t = e^{cs_t} S_c Q_t
          for (int64_t t = 0; t < q; ++t) {
            const T et = std::exp(cl.cs[t]);
            const T* Qt = C + bo(t);
            T* dQt = dC + bo(t);
            const T* dYt = dy + xo(t);
            for (int64_t n = 0; n < N; ++n) {
              T acc = 0;
              for (int64_t p = 0; p < P; ++p) acc += Sc[p * N + n] * dYt[p];
              dQt[n] += et * acc;
            }
            T dYSQ = 0;
            for (int64_t p = 0; p < P; ++p) {
              T SQ = 0;
              for (int64_t n = 0; n < N; ++n) {
                dSc[p * N + n] += et * dYt[p] * Qt[n];
                SQ += Sc[p * N + n] * Qt[n];
              }
              dYSQ += dYt[p] * SQ;
            }
            dcs[t] += et * dYSQ;
          }

          // 3. Y_diag = ((Q Kᵀ) ⊙ Λ) V
          for (int64_t t = 0; t < q; ++t) {
            const T* Qt = C + bo(t);
            T* dQt = dC + bo(t);
            const T* dYt = dy + xo(t);
            for (int64_t si = 0; si <= t; ++si) {
              const T* Ks = B + bo(si);
              T* dKs = dB + bo(si);
              const T lam = std::exp(cl.seg[t * q + si]);
              T qk = 0, dM = 0;
              for (int64_t n = 0; n < N; ++n) qk += Qt[n] * Ks[n];
              for (int64_t p = 0; p < P; ++p) dM += dYt[p] * cl.V[si * P + p];
              const T M = qk * lam;
              for (int64_t p = 0; p < P; ++p) dV[si * P + p] += M * dYt[p];
              const T dMl = dM * lam;
              for (int64_t n = 0; n < N; ++n) {
                dQt[n] += dMl * Ks[n];
                dKs[n] += dMl * Qt[n];
              }
              const T xi = dM * M;
              dcs[t] += xi;
              dcs[si] -= xi;
            }
          }

          // 4. dcs_{q−1} += dT; da_τ = Σ_{t≥τ} dcs_t
          dcs[q - 1] += dT;
          T run = 0;
          for (int64_t t = q - 1; t >= 0; --t) {
            run += dcs[t];
            da[t] = run;
          }

          // Map back to Mamba-2: V_t = dt_t x_t, a_t = dt_t A, y = Y + D x.
          for (int64_t t = 0; t < q; ++t) {
            const T step = dt[(b * s.L + t0 + t) * s.H + h];
            const T* xt = x + xo(t);
            const T* dyt = dy + xo(t);
            T* dxt = dx + xo(t);
            T xdV = 0;
            for (int64_t p = 0; p < P; ++p) {
              dxt[p] += D[h] * dyt[p] + step * dV[t * P + p];
              xdV += xt[p] * dV[t * P + p];
              dD[h] += dyt[p] * xt[p];
            }
            ddt[(b * s.L + t0 + t) * s.H + h] += xdV + A[h] * da[t];
            dA[h] += step * da[t];
          }

          // 5. carry dS to the previous chunk
          dS.swap(dSc);
        }
        for (int64_t i = 0; i < PN; ++i) dh0[(b * s.H + h) * PN + i] = dS[i];
      }
  }
};

}  // namespace

ScanOutput ssd_scan_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                            const Tensor& D, const Tensor& initial_state, int64_t chunk_size) {
  return run_ssd_scan<ChunkedKernel>(x, dt, A, B, C, D, initial_state, chunk_size);
}

}  // namespace ssm
