// ssm/mamba3_rates.cpp — see mamba3_rates.h. Forward and backward are one pass over (row = (b, t), h);
// tensors on a CUDA device run the same math as kernels (cuda/mamba3_rates.cu).
#include "ssm/mamba3_rates.h"

#include <array>

#include "autograd/node.h"
#include "ssm/fused_device.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm {
namespace {

// dd_dt, dd_A and trap are column ranges of in_proj's output: rows (b, t) evenly spaced, each row's H
// values contiguous. Both devices read such a view in place, `stride` values from row to row; anything
// else is made contiguous first.
struct StepRows {
  Tensor t;
  int64_t stride;
};
StepRows step_rows(const Tensor& x) {
  const Strides& st = x.strides();
  if (st[2] == 1 && st[0] == x.size(1) * st[1]) return {x, st[1]};
  const Tensor c = x.contiguous();
  return {c, c.size(2)};
}

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

class RatesFunction final : public Function {
 public:
  explicit RatesFunction(double A_floor) : Function("mamba3_rates"), A_floor_(A_floor) {}

  // in = {dd_dt, dd_A, trap, dt_bias} → {adt, γ, η, DT}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const StepRows dt = step_rows(in[0]), a = step_rows(in[1]), trap = step_rows(in[2]);
    const Tensor dt_bias = in[3].contiguous();
    const int64_t rows = in[0].size(0) * in[0].size(1), H = in[0].size(2);
    std::vector<Tensor> out;
    for (int i = 0; i < 4; ++i) out.push_back(Tensor::empty(in[0].shape(), in[0].dtype(), in[0].device()));
    save_for_backward({dt.t, a.t, trap.t, dt_bias});
    strides_ = {dt.stride, a.stride, trap.stride};
    dispatch_float(dt_bias.dtype(), "mamba3_rates", [&](auto tag) {
      using T = decltype(tag);
      const T *p_dt = dt.t.data<T>(), *p_a = a.t.data<T>(), *p_trap = trap.t.data<T>(), *bias = dt_bias.data<T>();
      T *adt = out[0].data<T>(), *gamma = out[1].data<T>(), *eta = out[2].data<T>(), *DT = out[3].data<T>();
      if (!dt_bias.device().is_cpu()) {
#if SSM_WITH_CUDA
        cuda::mamba3_rates_forward<T>(inputs<T>(rows, H, p_dt, p_a, p_trap, bias), adt, gamma, eta, DT);
#endif
        return;
      }
      const T floor = static_cast<T>(A_floor_);
      cpu::parallel_for(rows, rows * H * 20, [&](int64_t row) {
        rates_of_row(H, p_dt + row * dt.stride, p_a + row * a.stride, p_trap + row * trap.stride, bias, floor,
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
      const T *p_dt = dt.data<T>(), *p_a = a.data<T>(), *p_trap = trap.data<T>(), *bias = dt_bias.data<T>();
      T *out_dt = d_dt.data<T>(), *out_a = d_a.data<T>(), *out_trap = d_trap.data<T>();
      if (!dt.device().is_cpu()) {
#if SSM_WITH_CUDA
        const auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };  // null: zeros
        cuda::mamba3_rates_backward<T>(inputs<T>(rows, H, p_dt, p_a, p_trap, bias), ptr(g[0]), ptr(g[1]),
                                       ptr(g[2]), ptr(g[3]), out_dt, out_a, out_trap);
#endif
        return;
      }
      const std::vector<T> zero_row(static_cast<size_t>(H), T(0));
      std::array<GradRows<T>, 4> in_grads;
      for (size_t i = 0; i < 4; ++i)
        in_grads[i] = g[i].defined() ? GradRows<T>{g[i].data<T>(), H} : GradRows<T>{zero_row.data(), 0};
      const T floor = static_cast<T>(A_floor_);
      cpu::parallel_for(rows, rows * H * 30, [&](int64_t row) {
        rate_grads_of_row(H, p_dt + row * strides_[0], p_a + row * strides_[1], p_trap + row * strides_[2], bias,
                          floor, in_grads[0].row(row), in_grads[1].row(row), in_grads[2].row(row),
                          in_grads[3].row(row), out_dt + row * H, out_a + row * H, out_trap + row * H);
      });
    });
    return {d_dt, d_a, d_trap, op::sum(d_dt, {0, 1})};
  }

 private:
#if SSM_WITH_CUDA
  template <class T>
  cuda::RateInputs<T> inputs(int64_t rows, int64_t H, const T* dt, const T* a, const T* trap, const T* bias) const {
    return {rows, H, dt, a, trap, strides_[0], strides_[1], strides_[2], bias, static_cast<T>(A_floor_)};
  }
#endif

  double A_floor_;
  std::array<int64_t, 3> strides_{};  // the row strides of dd_dt, dd_A, trap as saved
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
