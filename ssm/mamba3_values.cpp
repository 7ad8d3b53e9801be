// ssm/mamba3_values.cpp — see mamba3_values.h. On the CPU, forward and backward walk the same (row, r, h, p)
// loops, and dψ is summed per row block (tensor/cpu/row_blocks.h), so its bits do not depend on the thread
// count; on a CUDA device the same node runs cuda/mamba3_values.cu.
#include "ssm/mamba3_values.h"

#include "autograd/functions.h"
#include "ssm/rows_in_place.h"
#include "tensor/cpu/row_blocks.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

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
    const bool on_cpu = in[0].device().is_cpu();
    // The CPU loops read a contiguous x; the GPU reads in_proj's column range where it lies.
    const Tensor x = on_cpu ? in[0].contiguous() : rows_readable(in[0], 2), psi = in[1].contiguous();
    const ValueSizes s = sizes_of(x, psi);
    Shape shape = x.shape();
    shape.insert(shape.end() - 2, s.R);
    Tensor v = Tensor::empty(shape, x.dtype(), x.device());
    save_for_backward({x, psi});
    if (on_cpu) forward_cpu(x, psi, s, v);
    else forward_cuda(x, psi, s, v);
    return {v};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const std::vector<Tensor> c = saved();
    const Tensor &x = c[0], &psi = c[1];
    const Tensor dv = grad_out[0].contiguous();
    const ValueSizes s = sizes_of(x, psi);
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    const Tensor dpsi = x.device().is_cpu() ? backward_cpu(x, psi, dv, s, dx) : backward_cuda(x, psi, dv, s, dx);
    return {dx, dpsi.view(psi.shape())};
  }

 private:
  static void forward_cpu(const Tensor& x, const Tensor& psi, const ValueSizes& s, Tensor& v) {
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
  }

  // dx, and dψ [H, R, P] as the sum of per-row-block partials
  static Tensor backward_cpu(const Tensor& x, const Tensor& psi, const Tensor& dv, const ValueSizes& s, Tensor& dx) {
    const int64_t HRP = s.H * s.R * s.P;
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
    return op::sum(partial, {0});
  }

#if SSM_WITH_CUDA
  static cuda::ValuesLayout layout_of(const Tensor& x, const ValueSizes& s) {
    return {s.rows, s.R, s.H, s.P, row_stride(x, 2)};
  }

  static void forward_cuda(const Tensor& x, const Tensor& psi, const ValueSizes& s, Tensor& v) {
    dispatch_float(x.dtype(), "mamba3_values", [&](auto tag) {
      using T = decltype(tag);
      cuda::mamba3_values_forward<T>(layout_of(x, s), x.data<T>(), psi.data<T>(), v.data<T>());
    });
  }

  // dx, and dψ [H, R, P] as the sum of the kernel's per-chunk partials
  static Tensor backward_cuda(const Tensor& x, const Tensor& psi, const Tensor& dv, const ValueSizes& s, Tensor& dx) {
    const Tensor partial = Tensor::empty({cuda::param_row_chunks(s.rows), s.H, s.R, s.P}, x.dtype(), x.device());
    dispatch_float(x.dtype(), "mamba3_values", [&](auto tag) {
      using T = decltype(tag);
      cuda::mamba3_values_backward<T>(layout_of(x, s), x.data<T>(), psi.data<T>(), dv.data<T>(), dx.data<T>(),
                                      partial.data<T>());
    });
    return op::sum(partial, {0});
  }
#else  // a build without CUDA: no tensor can be on a GPU
  [[noreturn]] static void no_cuda() { throw Error("mamba3_values: this build has no CUDA backend"); }
  static void forward_cuda(const Tensor&, const Tensor&, const ValueSizes&, Tensor&) { no_cuda(); }
  static Tensor backward_cuda(const Tensor&, const Tensor&, const Tensor&, const ValueSizes&, Tensor&) { no_cuda(); }
#endif
};

}  // namespace

Tensor mamba3_values(const Tensor& x, const Tensor& psi) {
  SSM_CHECK(x.defined() && psi.defined(), "mamba3_values: undefined input");
  SSM_CHECK(psi.dim() == 3 && x.dim() >= 2 && x.size(-2) == psi.size(0) && x.size(-1) == psi.size(2),
            "mamba3_values: x must be [.., H, P] and psi [H, R, P], got ", x.describe(), " and ", psi.describe());
  SSM_CHECK(x.dtype() == psi.dtype() && x.device() == psi.device(), "mamba3_values: ", x.describe(), " and ",
            psi.describe(), " must share dtype and device");
  return apply(std::make_shared<ValuesFunction>(), {x, psi})[0];
}

}  // namespace ssm
