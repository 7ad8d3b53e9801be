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

#include "autograd/node.h"
#include "ssm/ssd_scan.h"
#include "tensor/ops.h"

namespace ssm {
namespace {

struct Sizes {
  int64_t batch, L, H, P, G, N;
  int64_t group_of(int64_t h) const { return h / (H / G); }
};

class SsdScanReference final : public Function {
 public:
  SsdScanReference() : Function("ssd_scan_reference") {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor x = in[0].contiguous(), dt = in[1].contiguous(), A = in[2].contiguous(), B = in[3].contiguous(),
                 C = in[4].contiguous(), D = in[5].contiguous();
    const Sizes s = sizes(x, B);
    const Tensor h0 = in[6].defined() ? in[6].contiguous() : Tensor::zeros({s.batch, s.H, s.P, s.N}, x.dtype());
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    Tensor states = Tensor::empty({s.batch, s.L + 1, s.H, s.P, s.N}, x.dtype());  // states[:, t+1] = h_t
    dispatch_float(x.dtype(), "ssd_scan_reference", [&](auto tag) {
      using T = decltype(tag);
      run_forward<T>(s, x.data<T>(), dt.data<T>(), A.data<T>(), B.data<T>(), C.data<T>(), D.data<T>(), h0.data<T>(),
                     y.data<T>(), states.data<T>());
    });
    save_for_backward({x, dt, A, B, C, D, states});
    return {y, states.select(1, s.L).contiguous()};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto saved_tensors = saved();
    const Tensor &x = saved_tensors[0], &dt = saved_tensors[1], &A = saved_tensors[2], &B = saved_tensors[3],
                 &C = saved_tensors[4], &D = saved_tensors[5], &states = saved_tensors[6];
    const Sizes s = sizes(x, B);
    const Tensor dy = grad_out[0].contiguous(), dh_final = grad_out[1].contiguous();
    std::vector<Tensor> grads = {op::zeros_like(x), op::zeros_like(dt), op::zeros_like(A), op::zeros_like(B),
                                 op::zeros_like(C), op::zeros_like(D),
                                 Tensor::zeros({s.batch, s.H, s.P, s.N}, x.dtype())};
    dispatch_float(x.dtype(), "ssd_scan_reference", [&](auto tag) {
      using T = decltype(tag);
      run_backward<T>(s, x.data<T>(), dt.data<T>(), A.data<T>(), B.data<T>(), C.data<T>(), D.data<T>(),
                      states.data<T>(), dy.data<T>(), dh_final.data<T>(), grads[0].data<T>(), grads[1].data<T>(),
                      grads[2].data<T>(), grads[3].data<T>(), grads[4].data<T>(), grads[5].data<T>(),
                      grads[6].data<T>());
    });
    if (!needs_input_grad(6)) grads[6] = Tensor();
    return grads;
  }

 private:
  static Sizes sizes(const Tensor& x, const Tensor& B) {
    return {x.size(0), x.size(1), x.size(2), x.size(3), B.size(2), B.size(3)};
  }

  template <class T>
  static void run_forward(const Sizes& s, const T* x, const T* dt, const T* A, const T* B, const T* C, const T* D,
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
  static void run_backward(const Sizes& s, const T* x, const T* dt, const T* A, const T* B, const T* C, const T* D,
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
  check_ssd_inputs(x, dt, A, B, C, D, initial_state);
  const auto out = apply(std::make_shared<SsdScanReference>(), {x, dt, A, B, C, D, initial_state});
  return {out[0], out[1]};
}

}  // namespace ssm
