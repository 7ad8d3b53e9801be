// ssm/mamba3_values.cpp — see mamba3_values.h. Forward and backward walk the same (row, r, h, p) loops;
// dψ is summed per row block (tensor/cpu/row_blocks.h), so its bits do not depend on the thread count.
#include "ssm/mamba3_values.h"

#include "autograd/functions.h"
#include "tensor/cpu/row_blocks.h"

namespace ssm {
namespace {

struct ValueSizes {
  int64_t rows, R, H, P;
  int64_t x_offset(int64_t row, int64_t h) const { return (row * H + h) * P; }
  int64_t v_offset(int64_t row, int64_t r, int64_t h) const { return ((row * R + r) * H + h) * P; }
  int64_t psi_offset(int64_t h, int64_t r) const { return (h * R + r) * P; }
};

ValueSizes sizes_of(const Tensor& x, const Tensor& psi) {
  return {x.numel() / (psi.size(0) * psi.size(2)), psi.size(1), psi.size(0), psi.size(2)};
}

class ValuesFunction final : public Function {
 public:
  ValuesFunction() : Function("mamba3_values") {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor x = in[0].contiguous(), psi = in[1].contiguous();
    const ValueSizes s = sizes_of(x, psi);
    Shape shape = x.shape();
    shape.insert(shape.end() - 2, s.R);
    Tensor v = Tensor::empty(shape, x.dtype());
    save_for_backward({x, psi});
    dispatch_float(x.dtype(), "mamba3_values", [&](auto tag) {
      using T = decltype(tag);
      const T *px = x.data<T>(), *ppsi = psi.data<T>();
      T* pv = v.data<T>();
      cpu::parallel_for(s.rows, s.rows * s.R * s.H * s.P, [&](int64_t row) {
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t h = 0; h < s.H; ++h) {
            const T *xh = px + s.x_offset(row, h), *psi_hr = ppsi + s.psi_offset(h, r);
            T* vh = pv + s.v_offset(row, r, h);
            for (int64_t p = 0; p < s.P; ++p) vh[p] = xh[p] * psi_hr[p];
          }
      });
    });
    return {v};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const std::vector<Tensor> c = saved();
    const Tensor &x = c[0], &psi = c[1];
    const Tensor dv = grad_out[0].contiguous();
    const ValueSizes s = sizes_of(x, psi);
    const int64_t HRP = s.H * s.R * s.P;
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    Tensor partial = Tensor::zeros({cpu::kRowBlocks, HRP}, x.dtype());  // per block: dψ [H, R, P]
    dispatch_float(x.dtype(), "mamba3_values", [&](auto tag) {
      using T = decltype(tag);
      const T *px = x.data<T>(), *ppsi = psi.data<T>(), *pdv = dv.data<T>();
      T* pdx = dx.data<T>();
      cpu::for_row_blocks(s.rows, s.rows * HRP * 2, [&](int64_t block, int64_t row_begin, int64_t row_end) {
        T* dpsi = partial.data<T>() + block * HRP;
        for (int64_t row = row_begin; row < row_end; ++row)
          for (int64_t h = 0; h < s.H; ++h) {
            const T* xh = px + s.x_offset(row, h);
            T* dxh = pdx + s.x_offset(row, h);
            for (int64_t p = 0; p < s.P; ++p) dxh[p] = 0;
            for (int64_t r = 0; r < s.R; ++r) {
              const T *dvh = pdv + s.v_offset(row, r, h), *psi_hr = ppsi + s.psi_offset(h, r);
              T* dpsi_hr = dpsi + s.psi_offset(h, r);
              for (int64_t p = 0; p < s.P; ++p) {
                dxh[p] += dvh[p] * psi_hr[p];
                dpsi_hr[p] += dvh[p] * xh[p];
              }
            }
          }
      });
    });
    return {dx, op::sum(partial, {0}).view(psi.shape())};
  }
};

}  // namespace

Tensor mamba3_values(const Tensor& x, const Tensor& psi) {
  SSM_CHECK(x.defined() && psi.defined(), "mamba3_values: undefined input");
  SSM_CHECK(psi.dim() == 3 && x.dim() >= 2 && x.size(-2) == psi.size(0) && x.size(-1) == psi.size(2),
            "mamba3_values: x must be [.., H, P] and psi [H, R, P], got ", x.describe(), " and ", psi.describe());
  SSM_CHECK(x.dtype() == psi.dtype() && x.device() == psi.device(), "mamba3_values: ", x.describe(), " and ",
            psi.describe(), " must share dtype and device");
  if (!x.device().is_cpu()) return unsqueeze(x, -3) * permute(psi, {1, 0, 2});
  return apply(std::make_shared<ValuesFunction>(), {x, psi})[0];
}

}  // namespace ssm
