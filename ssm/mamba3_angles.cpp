// ssm/mamba3_angles.cpp — see mamba3_angles.h. One pass over the rows (b, t) each way; the forward keeps
// π·tanh(ang) [rows, S] for the backward. Tensors on a CUDA device run the same math as kernels
// (cuda/mamba3_angles.cu).
#include "ssm/mamba3_angles.h"

#include <cmath>
#include <numbers>

#include "autograd/node.h"
#include "ssm/fused_device.h"
#include "ssm/rows_in_place.h"
#include "tensor/cpu/parallel.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm {
namespace {

class AngleStepsFunction final : public Function {
 public:
  AngleStepsFunction() : Function("mamba3_angle_steps") {}

  // in = {DT, ang} → {ω}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor DT = in[0].contiguous(), ang = rows_readable(in[1], 1);
    const int64_t batch = DT.size(0), L = DT.size(1), H = DT.size(2), S = ang.size(2), rows = batch * L;
    Tensor omega = Tensor::empty({batch, L, H, S}, DT.dtype(), DT.device());
    Tensor scaled = Tensor::empty({batch, L, S}, DT.dtype(), DT.device());  // π·tanh(ang)
    dispatch_float(DT.dtype(), "mamba3_angle_steps", [&](auto tag) {
      using T = decltype(tag);
      const T *dt = DT.data<T>(), *raw = ang.data<T>();
      T *w = omega.data<T>(), *pt = scaled.data<T>();
      const int64_t raw_stride = row_stride(ang, 1);
      if (!DT.device().is_cpu()) {
#if SSM_WITH_CUDA
        cuda::mamba3_angle_steps_forward<T>({rows, H, S, raw_stride}, dt, raw, w, pt);
#endif
        return;
      }
      cpu::parallel_for(rows, rows * (H + 20) * S, [&](int64_t row) {
        T* pt_row = pt + row * S;
        for (int64_t m = 0; m < S; ++m) pt_row[m] = std::numbers::pi_v<T> * std::tanh(raw[row * raw_stride + m]);
        for (int64_t h = 0; h < H; ++h)
          for (int64_t m = 0; m < S; ++m) w[(row * H + h) * S + m] = dt[row * H + h] * pt_row[m];
      });
    });
    save_for_backward({DT, scaled});
    return {omega};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &DT = s[0], &scaled = s[1];
    const Tensor d_omega = grad_out[0].contiguous();
    const int64_t batch = DT.size(0), L = DT.size(1), H = DT.size(2), S = scaled.size(2), rows = batch * L;
    Tensor d_DT = Tensor::empty(DT.shape(), DT.dtype(), DT.device());
    Tensor d_ang = Tensor::empty(scaled.shape(), DT.dtype(), DT.device());
    dispatch_float(DT.dtype(), "mamba3_angle_steps", [&](auto tag) {
      using T = decltype(tag);
      const T *dt = DT.data<T>(), *pt = scaled.data<T>(), *dw = d_omega.data<T>();
      T *out_dt = d_DT.data<T>(), *out_ang = d_ang.data<T>();
      if (!DT.device().is_cpu()) {
#if SSM_WITH_CUDA
        cuda::mamba3_angle_steps_backward<T>({rows, H, S, 0}, dt, pt, dw, out_dt, out_ang);
#endif
        return;
      }
      constexpr T pi = std::numbers::pi_v<T>;
      cpu::parallel_for(rows, rows * H * S * 4, [&](int64_t row) {
        const T *dw_row = dw + row * H * S, *pt_row = pt + row * S, *dt_row = dt + row * H;
        for (int64_t h = 0; h < H; ++h) {
          T sum = 0;
          for (int64_t m = 0; m < S; ++m) sum += dw_row[h * S + m] * pt_row[m];
          out_dt[row * H + h] = sum;
        }
        for (int64_t m = 0; m < S; ++m) {
          T sum = 0;
          for (int64_t h = 0; h < H; ++h) sum += dw_row[h * S + m] * dt_row[h];
          out_ang[row * S + m] = (pi - pt_row[m] * pt_row[m] / pi) * sum;  // π(1 − tanh²) = π − (π tanh)²/π
        }
      });
    });
    return {d_DT, d_ang};
  }
};

}  // namespace

Tensor mamba3_angle_steps(const Tensor& DT, const Tensor& ang) {
  SSM_CHECK(DT.defined() && ang.defined(), "mamba3_angle_steps: undefined input");
  SSM_CHECK(DT.dim() == 3 && ang.dim() == 3 && ang.size(0) == DT.size(0) && ang.size(1) == DT.size(1),
            "mamba3_angle_steps: DT must be [batch, L, H] and ang [batch, L, S], got ", DT.describe(), " and ",
            ang.describe());
  SSM_CHECK(ang.dtype() == DT.dtype(), "mamba3_angle_steps: ", ang.describe(), " does not match DT's dtype (",
            DT.describe(), ")");
  check_fused_device("mamba3_angle_steps", DT, {ang});
  return apply(std::make_shared<AngleStepsFunction>(), {DT, ang})[0];
}

}  // namespace ssm
