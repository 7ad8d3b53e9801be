// nn/rms_norm.cpp — RMSNorm as one autograd node, forward and backward side by side.
//
// Per group of n channels (spec §1):  r = (mean(x²) + eps)^(-1/2),  y = x · r · w.
// Backward, with gw = dy · w (the gradient reaching the normalised x̂ = x·r):
//   dx = r · (gw - x · r² · mean(gw · x))       (the mean over the same group)
//   dw = Σ_rows dy · x · r
// Saved for backward: x, w and r (one value per group); x̂ is recomputed.
//
// Both directions are one pass over the rows: on the CPU the loops below (rms_rows_forward /
// rms_rows_backward), on a GPU their twin kernels (cuda/rms_norm.cu). Written as tensor ops they were
// ~6 passes forward and ~10 backward over activations the size of the residual stream (and as many
// kernel launches on a GPU); the tests hold both forms to that composition of ops.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "nn/functional.h"
#include "tensor/cpu/row_blocks.h"
#if SSM_WITH_CUDA
#include "cuda/nn_fused.h"
#endif

namespace ssm::nn {
namespace {

// Rows of width D in groups of n: (r, y) from x, w. r is one value per (row, group). The mean of
// squares is summed in double, as op::mean sums float32.
template <class T>
void rms_rows_forward(int64_t rows, int64_t D, int64_t n, T eps, const T* x, const T* w, T* r, T* y) {
  const int64_t G = D / n;
  cpu::parallel_for(rows, rows * D * 3, [&](int64_t i) {
    for (int64_t g = 0; g < G; ++g) {
      const T* xg = x + i * D + g * n;
      double squares = 0;
      for (int64_t k = 0; k < n; ++k) squares += double(xg[k]) * double(xg[k]);
      const T rg = T(1) / std::sqrt(T(squares / double(n)) + eps);
      r[i * G + g] = rg;
      T* yg = y + i * D + g * n;
      const T* wg = w + g * n;
      for (int64_t k = 0; k < n; ++k) yg[k] = xg[k] * rg * wg[k];
    }
  });
}

// dx = r (gw − x r² mean(gw·x)) with gw = dy·w, per group;  dw = Σ_rows dy·x·r, summed per fixed row
// block (tensor/cpu/row_blocks.h) so its bits do not depend on the thread count. dx or dw may be null.
template <class T>
void rms_rows_backward(int64_t rows, int64_t D, int64_t n, const T* x, const T* w, const T* r, const T* dy, T* dx,
                       T* dw) {
  const int64_t G = D / n;
  std::vector<T> partial(dw ? cpu::kRowBlocks * D : 0, T(0));
  cpu::for_row_blocks(rows, rows * D * 6, [&](int64_t block, int64_t row_begin, int64_t row_end) {
    T* dw_block = dw ? partial.data() + block * D : nullptr;
    for (int64_t i = row_begin; i < row_end; ++i)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t at = i * D + g * n;
        const T *xg = x + at, *dyg = dy + at, *wg = w + g * n;
        const T rg = r[i * G + g];
        if (dx) {
          double gw_x = 0;
          for (int64_t k = 0; k < n; ++k) gw_x += double(dyg[k] * wg[k]) * double(xg[k]);
          const T scale = rg * rg * T(gw_x / double(n));
          for (int64_t k = 0; k < n; ++k) dx[at + k] = rg * (dyg[k] * wg[k] - xg[k] * scale);
        }
        if (dw_block)
          for (int64_t k = 0; k < n; ++k) dw_block[g * n + k] += dyg[k] * (xg[k] * rg);
      }
  });
  if (dw) {
    std::fill(dw, dw + D, T(0));
    for (int64_t block = 0; block < cpu::kRowBlocks; ++block)
      for (int64_t j = 0; j < D; ++j) dw[j] += partial[block * D + j];
  }
}

class RMSNormFunction final : public Function {
 public:
  RMSNormFunction(double eps, int64_t group_size) : Function("rms_norm"), eps_(eps), group_size_(group_size) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor x = in[0].contiguous(), w = in[1].contiguous();
    const int64_t D = x.size(-1), n = width(x), rows = x.numel() / D;
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    Tensor r = Tensor::empty({rows, D / n}, x.dtype(), x.device());
    dispatch_float(x.dtype(), "rms_norm", [&](auto tag) {
      using T = decltype(tag);
      if (x.device().is_cpu()) {
        rms_rows_forward<T>(rows, D, n, static_cast<T>(eps_), x.data<T>(), w.data<T>(), r.data<T>(), y.data<T>());
        return;
      }
#if SSM_WITH_CUDA
      cuda::rms_norm_forward<T>(rows, D, n, eps_, x.data<T>(), w.data<T>(), r.data<T>(), y.data<T>());
#endif
    });
    save_for_backward({x, w, r});
    return {y};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &x = s[0], &w = s[1], &r = s[2];
    const Tensor dy = grad_out[0].contiguous();
    const int64_t D = x.size(-1), n = width(x), rows = x.numel() / D;
    Tensor dx = needs_input_grad(0) ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
    Tensor dw = needs_input_grad(1) ? Tensor::empty(w.shape(), w.dtype(), w.device()) : Tensor();
    dispatch_float(x.dtype(), "rms_norm", [&](auto tag) {
      using T = decltype(tag);
      const auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
      if (x.device().is_cpu()) {
        rms_rows_backward<T>(rows, D, n, x.data<T>(), w.data<T>(), r.data<T>(), dy.data<T>(), ptr(dx), ptr(dw));
        return;
      }
#if SSM_WITH_CUDA
      // dw as per-row-block partial sums, folded in a fixed order
      const Tensor dw_partial =
          dw.defined() ? Tensor::empty({cuda::rms_norm_row_blocks(rows), D}, x.dtype(), x.device()) : Tensor();
      cuda::rms_norm_backward<T>(rows, D, n, x.data<T>(), w.data<T>(), r.data<T>(), dy.data<T>(), ptr(dx),
                                 ptr(dw_partial));
      if (dw.defined()) dw = op::sum(dw_partial, {0});
#endif
    });
    return {dx, dw};
  }

 private:
  int64_t width(const Tensor& x) const { return group_size_ > 0 ? group_size_ : x.size(-1); }  // n

  double eps_;
  int64_t group_size_;
};

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps, int64_t group_size) {
  SSM_CHECK(x.defined() && weight.defined(), "rms_norm: undefined input");
  SSM_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1), "rms_norm: weight ",
            weight.describe(), " does not match the last dimension of ", x.describe());
  const int64_t D = x.size(-1);
  SSM_CHECK(group_size >= 0 && (group_size == 0 || D % group_size == 0), "rms_norm: group size ", group_size,
            " does not divide the width ", D);
  return apply(std::make_shared<RMSNormFunction>(eps, group_size), {x, weight})[0];
}

Tensor gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& weight, double eps, int64_t group_size,
                      bool norm_before_gate) {
  SSM_CHECK(z.defined() && z.shape() == x.shape(), "gated_rms_norm: gate ", z.describe(), " must match input ",
            x.describe());
  if (norm_before_gate) return mul(rms_norm(x, weight, eps, group_size), silu(z));
  return rms_norm(mul(x, silu(z)), weight, eps, group_size);
}

}  // namespace ssm::nn
