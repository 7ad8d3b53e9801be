// ssm/mamba3_rates.cpp — see mamba3_rates.h. Forward and backward are one pass over (row = (b, t), h);
// tensors on a CUDA device run the same math as kernels (cuda/mamba3_rates.cu).
#include "ssm/mamba3_rates.h"

#include <array>

#include "autograd/node.h"
#include "ssm/fused_device.h"
#include "ssm/rows_in_place.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm {
namespace {

// One row (b, t) of the forward, h = 0..H−1: a function of its own with __restrict pointers, so that the
// compiler inlines rates_of into the h loop and vectorises it (float: σ and softplus make no library
// call); inside parallel_for's lambda it did neither.
template <class T>
void rates_of_row(int64_t H, const T* __restrict dd_dt, const T* __restrict dd_A, const T* __restrict trap,
                  const T* __restrict dt_bias, T A_floor, T* __restrict adt, T* __restrict gamma, T* __restrict eta,
                  T* __restrict DT) {
  for (int64_t h = 0; h < H; ++h) {
    const mamba3::Rates<T> r = mamba3::rates_of(dd_dt[h] + dt_bias[h], dd_A[h], trap[h], A_floor);
    adt[h] = r.A * r.DT;
    gamma[h] = r.gamma;
    eta[h] = r.eta;
    DT[h] = r.DT;
  }
}

// One row of the backward, the forward's twin: g_adt, g_γ, g_η, g_DT point at the row's incoming
// gradients (a row of zeros where a rate had none), d_dt, d_a, d_trap at its outputs.
template <class T>
void rate_grads_of_row(int64_t H, const T* __restrict dd_dt, const T* __restrict dd_A, const T* __restrict trap,
                       const T* __restrict dt_bias, T A_floor, const T* __restrict g_adt,
                       const T* __restrict g_gamma, const T* __restrict g_eta, const T* __restrict g_DT,
                       T* __restrict d_dt, T* __restrict d_a, T* __restrict d_trap) {
  for (int64_t h = 0; h < H; ++h) {
    const mamba3::RateGrads<T> d = mamba3::rate_grads(dd_dt[h] + dt_bias[h], dd_A[h], trap[h], A_floor, g_adt[h],
                                                      g_gamma[h], g_eta[h], g_DT[h]);
    d_dt[h] = d.dt_in;
    d_a[h] = d.a_in;
    d_trap[h] = d.trap;
  }
}

// An incoming gradient as rows H apart, or one row of zeros read again for every row (step 0).
template <class T>
struct GradRows {
  const T* data;
  int64_t step;
  const T* row(int64_t r) const { return data + r * step; }
};

// The pointers of dd_dt, dd_A, trap (token rows read in place, each its own row stride: ssm/rows_in_place.h)
// and dt_bias.
template <class T>
struct RateRows {
  const T *dt, *a, *trap, *bias;
  int64_t dt_stride, a_stride, trap_stride;
  RateRows(const Tensor& dt_t, const Tensor& a_t, const Tensor& trap_t, const Tensor& bias_t)
      : dt(dt_t.data<T>()), a(a_t.data<T>()), trap(trap_t.data<T>()), bias(bias_t.data<T>()),
        dt_stride(row_stride(dt_t, 1)), a_stride(row_stride(a_t, 1)), trap_stride(row_stride(trap_t, 1)) {}
  const T* dt_row(int64_t row) const { return dt + row * dt_stride; }
  const T* a_row(int64_t row) const { return a + row * a_stride; }
  const T* trap_row(int64_t row) const { return trap + row * trap_stride; }
#if SSM_WITH_CUDA
  cuda::RateInputs<T> cuda(int64_t rows, int64_t H, double A_floor) const {
    return {rows, H, dt, a, trap, dt_stride, a_stride, trap_stride, bias, static_cast<T>(A_floor)};
  }
#endif
};

class RatesFunction final : public Function {
 public:
  explicit RatesFunction(double A_floor) : Function("mamba3_rates"), A_floor_(A_floor) {}

  // in = {dd_dt, dd_A, trap, dt_bias} → {adt, γ, η, DT}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    // dd_dt, dd_A and trap are column ranges of in_proj's output: both devices read them in place
    const Tensor dt = rows_readable(in[0], 1), a = rows_readable(in[1], 1), trap = rows_readable(in[2], 1),
                 dt_bias = in[3].contiguous();
    const int64_t rows = in[0].size(0) * in[0].size(1), H = in[0].size(2);
    std::vector<Tensor> out;
    for (int i = 0; i < 4; ++i) out.push_back(Tensor::empty(in[0].shape(), in[0].dtype(), in[0].device()));
    save_for_backward({dt, a, trap, dt_bias});
    dispatch_float(dt_bias.dtype(), "mamba3_rates", [&](auto tag) {
      using T = decltype(tag);
      const RateRows<T> in_rows(dt, a, trap, dt_bias);
      T *adt = out[0].data<T>(), *gamma = out[1].data<T>(), *eta = out[2].data<T>(), *DT = out[3].data<T>();
      if (!dt_bias.device().is_cpu()) {
#if SSM_WITH_CUDA
        cuda::mamba3_rates_forward<T>(in_rows.cuda(rows, H, A_floor_), adt, gamma, eta, DT);
#endif
        return;
      }
      const T floor = static_cast<T>(A_floor_);
      cpu::parallel_for(rows, rows * H * 20, [&](int64_t row) {
        rates_of_row(H, in_rows.dt_row(row), in_rows.a_row(row), in_rows.trap_row(row), in_rows.bias, floor,
                     adt + row * H, gamma + row * H, eta + row * H, DT + row * H);
      });
    });
    return out;
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &dt = s[0], &a = s[1], &trap = s[2], &dt_bias = s[3];
    const int64_t rows = dt.size(0) * dt.size(1), H = dt.size(2);
    const Shape shape{dt.size(0), dt.size(1), H};
    Tensor d_dt = Tensor::empty(shape, dt.dtype(), dt.device()), d_a = Tensor::empty(shape, dt.dtype(), dt.device()),
           d_trap = Tensor::empty(shape, dt.dtype(), dt.device());
    std::vector<Tensor> g;
    for (const Tensor& t : grad_out) g.push_back(t.defined() ? t.contiguous() : Tensor());
    dispatch_float(dt.dtype(), "mamba3_rates", [&](auto tag) {
      using T = decltype(tag);
      const RateRows<T> in_rows(dt, a, trap, dt_bias);
      T *out_dt = d_dt.data<T>(), *out_a = d_a.data<T>(), *out_trap = d_trap.data<T>();
      if (!dt.device().is_cpu()) {
#if SSM_WITH_CUDA
        const auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };  // null: zeros
        cuda::mamba3_rates_backward<T>(in_rows.cuda(rows, H, A_floor_), ptr(g[0]), ptr(g[1]), ptr(g[2]), ptr(g[3]),
                                       out_dt, out_a, out_trap);
#endif
        return;
      }
      const std::vector<T> zero_row(static_cast<size_t>(H), T(0));
      std::array<GradRows<T>, 4> in_grads;
      for (size_t i = 0; i < 4; ++i)
        in_grads[i] = g[i].defined() ? GradRows<T>{g[i].data<T>(), H} : GradRows<T>{zero_row.data(), 0};
      const T floor = static_cast<T>(A_floor_);
      cpu::parallel_for(rows, rows * H * 30, [&](int64_t row) {
        rate_grads_of_row(H, in_rows.dt_row(row), in_rows.a_row(row), in_rows.trap_row(row), in_rows.bias, floor,
                          in_grads[0].row(row), in_grads[1].row(row), in_grads[2].row(row), in_grads[3].row(row),
                          out_dt + row * H, out_a + row * H, out_trap + row * H);
      });
    });
    return {d_dt, d_a, d_trap, op::sum(d_dt, {0, 1})};
  }

 private:
  double A_floor_;
};

}  // namespace

Mamba3Rates mamba3_rates(const Tensor& dd_dt, const Tensor& dd_A, const Tensor& trap, const Tensor& dt_bias,
                         double A_floor) {
  SSM_CHECK(dd_dt.defined() && dd_A.defined() && trap.defined() && dt_bias.defined(), "mamba3_rates: undefined input");
  SSM_CHECK(dd_dt.dim() == 3 && dd_A.shape() == dd_dt.shape() && trap.shape() == dd_dt.shape(),
            "mamba3_rates: dd_dt, dd_A and trap must be one [batch, L, H] shape, got ", dd_dt.describe(), ", ",
            dd_A.describe(), ", ", trap.describe());
  SSM_CHECK(dt_bias.shape() == Shape{dd_dt.size(2)}, "mamba3_rates: dt_bias must be [", dd_dt.size(2), "], got ",
            dt_bias.describe());
  for (const Tensor& t : {dd_A, trap, dt_bias})
    SSM_CHECK(t.dtype() == dd_dt.dtype(), "mamba3_rates: ", t.describe(), " does not match dd_dt's dtype (",
              dd_dt.describe(), ")");
  check_fused_device("mamba3_rates", dd_dt, {dd_A, trap, dt_bias});
  const auto out = apply(std::make_shared<RatesFunction>(A_floor), {dd_dt, dd_A, trap, dt_bias});
  return {out[0], out[1], out[2], out[3]};
}

}  // namespace ssm
