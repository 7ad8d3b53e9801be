// ssm/ssd_scan_reference.cpp — the sequential Mamba-2 scan and its adjoint (spec §2.3, §2.6).
//
// Forward stores every state h_t (the reference trades memory for plainness; the chunked path
// keeps one state per chunk). Backward walks time in reverse carrying G = ∂ℒ/∂h_t:
//   G      = G_next + dy_t C_tᵀ
//   dC_t  += h_tᵀ dy_t              dx_t = D·dy_t + dt_t · G B_t
//   dB_t  += dt_t · Gᵀ x_t          ddt_t = x_tᵀ G B_t + A · a_t · <G, h_{t−1}>
//   dA    += dt_t · a_t · <G, h_{t−1}>,   dD += <dy_t, x_t>,   G_next = a_t · G
// and finally ∂ℒ/∂h_{−1} = G_next. dB and dC of a group sum over the heads that read it.
#include <cmath>

#include "ssm/ssd_scan_function.h"

namespace ssm {
namespace {

struct ReferenceKernel {
  static constexpr const char* name = "ssd_scan_reference";
  static constexpr bool runs_on_cuda = false;  // run_*_scan rejects CUDA tensors
  static int64_t stored_states(const SsdSizes& s) { return s.L + 1; }  // h_{-1}, h_0, ..., h_{L-1}

  template <class T>
  static void forward(const SsdSizes& s, const T* x, const T* dt, const T* A, const T* B, const T* C, const T* D,
                          const T* h0, T* y, T* states) {
    const int64_t PN = s.P * s.N;
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const int64_t g = s.group_of(h);
        T* state0 = states + ((b * (s.L + 1)) * s.H + h) * PN;
        for (int64_t i = 0; i < PN; ++i) state0[i] = h0[(b * s.H + h) * PN + i];
        for (int64_t t = 0; t < s.L; ++t) {
          const T* prev = states + ((b * (s.L + 1) + t) * s.H + h) * PN;
          T* cur = states + ((b * (s.L + 1) + t + 1) * s.H + h) * PN;
          const T step = dt[(b * s.L + t) * s.H + h];
          const T decay = std::exp(step * A[h]);                          // a_t
          const T* xt = x + ((b * s.L + t) * s.H + h) * s.P;
          const T* Bt = B + ((b * s.L + t) * s.G + g) * s.N;
          const T* Ct = C + ((b * s.L + t) * s.G + g) * s.N;
          T* yt = y + ((b * s.L + t) * s.H + h) * s.P;
          for (int64_t p = 0; p < s.P; ++p) {
            T out = D[h] * xt[p];
            for (int64_t n = 0; n < s.N; ++n) {
              cur[p * s.N + n] = decay * prev[p * s.N + n] + step * xt[p] * Bt[n];  // h_t
              out += cur[p * s.N + n] * Ct[n];                                        // (h_t C_t)_p
            }
            yt[p] = out;
          }
        }
      }
  }

  template <class T>
  static void backward(const SsdSizes& s, const T* x, const T* dt, const T* A, const T* B, const T* C, const T* D,
                           const T* states, const T* dy, const T* dh_final, T* dx, T* ddt, T* dA, T* dB, T* dC, T* dD,
                           T* dh0) {
    const int64_t PN = s.P * s.N;
    std::vector<T> G(PN);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const int64_t g = s.group_of(h);
        std::vector<T> G_next(dh_final + (b * s.H + h) * PN, dh_final + (b * s.H + h + 1) * PN);
        for (int64_t t = s.L - 1; t >= 0; --t) {
          const T* prev = states + ((b * (s.L + 1) + t) * s.H + h) * PN;      // h_{t-1}
          const T* cur = states + ((b * (s.L + 1) + t + 1) * s.H + h) * PN;   // h_t
          const T step = dt[(b * s.L + t) * s.H + h];
          const T decay = std::exp(step * A[h]);
          const int64_t xo = ((b * s.L + t) * s.H + h) * s.P, bo = ((b * s.L + t) * s.G + g) * s.N;
          const T *xt = x + xo, *Bt = B + bo, *Ct = C + bo, *dyt = dy + xo;
          T *dxt = dx + xo, *dBt = dB + bo, *dCt = dC + bo;

          T G_dot_prev = 0, x_G_B = 0;
          for (int64_t p = 0; p < s.P; ++p) {
            T GB = 0;  // (G B_t)_p
            for (int64_t n = 0; n < s.N; ++n) {
              const T Gpn = G_next[p * s.N + n] + dyt[p] * Ct[n];  // G = G_next + dy_t C_tᵀ
              G[p * s.N + n] = Gpn;
              dCt[n] += cur[p * s.N + n] * dyt[p];
              dBt[n] += step * Gpn * xt[p];
              GB += Gpn * Bt[n];
              G_dot_prev += Gpn * prev[p * s.N + n];
            }
            dxt[p] += D[h] * dyt[p] + step * GB;
            x_G_B += xt[p] * GB;
            dD[h] += dyt[p] * xt[p];
          }
          ddt[(b * s.L + t) * s.H + h] += x_G_B + A[h] * decay * G_dot_prev;
          dA[h] += step * decay * G_dot_prev;
          for (int64_t i = 0; i < PN; ++i) G_next[i] = decay * G[i];
        }
        for (int64_t i = 0; i < PN; ++i) dh0[(b * s.H + h) * PN + i] = G_next[i];
      }
  }
};

}  // namespace

ScanOutput ssd_scan_reference(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                              const Tensor& D, const Tensor& initial_state) {
  return run_ssd_scan<ReferenceKernel>(x, dt, A, B, C, D, initial_state, /*chunk_size=*/1);
}

}  // namespace ssm
