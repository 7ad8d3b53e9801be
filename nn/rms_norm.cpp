// nn/rms_norm.cpp — RMSNorm and the gated RMSNorm of the Mamba blocks, one autograd node each, forward and
// backward side by side.
//
// Per group of n channels (spec §1), u the normalised input:
//   r = (mean(u²) + eps)^(-1/2),   y = u · r · w
// The gate z (same shape as x) enters before the norm or after it (spec §1, "Gated RMSNorm"):
//   no gate:            u = x,            y = x·r·w
//   gate before norm:   u = x ⊙ silu(z),  y = u·r·w                (Mamba-2: norm_before_gate = false)
//   gate after norm:    u = x,            y = x·r·w ⊙ silu(z)      (norm_before_gate = true)
// Backward, with ĝ = dy (⊙ silu(z) when the gate is after the norm) the gradient reaching u·r·w and
// gw = ĝ · w the gradient reaching the normalised û = u·r:
//   du = r · (gw − u · r² · mean(gw · u))       (the mean over the same group)
//   dw = Σ_rows ĝ · u · r
//   gate before:  dx = du ⊙ silu(z),  dz = du ⊙ x ⊙ silu'(z)
//   gate after:   dx = du,            dz = dy ⊙ (u·r·w) ⊙ silu'(z)
//   with silu'(z) = σ(z) · (1 + z · (1 − σ(z))).
// Saved for backward: x, z, w and r (one value per group); u and the gate are recomputed.
//
// Both directions are one pass over the rows: on the CPU the loops below (rms_rows_forward /
// rms_rows_backward), on a GPU their twin kernels (cuda/rms_norm.cu). Written as tensor ops they were
// ~6 passes forward and ~10 backward over activations the size of the residual stream (and as many
// kernel launches on a GPU; the gate added four more each way); the tests hold both forms to that
// composition of ops.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>
#include <vector>

#include "nn/functional.h"
#include "tensor/cpu/row_blocks.h"
#include "tensor/cpu/sigmoid.h"
#if SSM_WITH_CUDA
#include "cuda/nn_fused.h"
#endif

namespace ssm::nn {
namespace {

enum class Gate { None, BeforeNorm, AfterNorm };

// Rows of width D in groups of n: (r, y) from x (and the gate z), w. r is one value per (row, group).
// The mean of squares is summed in double, as op::mean sums float32. With the gate before the norm, y
// holds u until the group's r is known.
template <class T, Gate G>
void rms_rows_forward(int64_t rows, int64_t D, int64_t n, T eps, const T* x, const T* z, const T* w, T* r, T* y) {
  const int64_t groups = D / n;
  cpu::parallel_for(rows, rows * D * (G == Gate::None ? 3 : 8), [&](int64_t i) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t at = i * D + g * n;
      const T *__restrict xg = x + at, *__restrict wg = w + g * n, *__restrict zg = z ? z + at : nullptr;
      T* __restrict yg = y + at;  // (__restrict: the loops vectorise without run-time overlap checks)
      if constexpr (G == Gate::BeforeNorm)
        for (int64_t k = 0; k < n; ++k) yg[k] = xg[k] * cpu::silu(zg[k]);
      const T* ug = G == Gate::BeforeNorm ? yg : xg;  // u
      double squares = 0;
      for (int64_t k = 0; k < n; ++k) squares += double(ug[k]) * double(ug[k]);
      const T rg = T(1) / std::sqrt(T(squares / double(n)) + eps);
      r[i * groups + g] = rg;
      for (int64_t k = 0; k < n; ++k) {
        yg[k] = ug[k] * rg * wg[k];
        if constexpr (G == Gate::AfterNorm) yg[k] *= cpu::silu(zg[k]);
      }
    }
  });
}

// The backward of the header, per group; dw summed per fixed row block (tensor/cpu/row_blocks.h) so its
// bits do not depend on the thread count. dx, dz or dw may be null (dz always is without a gate).
template <class T, Gate G>
void rms_rows_backward(int64_t rows, int64_t D, int64_t n, const T* x, const T* z, const T* w, const T* r,
                       const T* dy, T* dx, T* dz, T* dw) {
  const int64_t groups = D / n;
  std::vector<T> partial(dw ? cpu::kRowBlocks * D : 0, T(0));
  cpu::for_row_blocks(rows, rows * D * (G == Gate::None ? 6 : 14), [&](int64_t block, int64_t row_begin,
                                                                       int64_t row_end) {
    T* dw_block = dw ? partial.data() + block * D : nullptr;
    // with a gate: the group's u and ĝ (without, they are x and dy themselves); du when dx is not wanted
    std::vector<T> gated(G == Gate::None ? 0 : n), du(n);
    for (int64_t i = row_begin; i < row_end; ++i)
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t at = i * D + g * n;
        const T *xg = x + at, *dyg = dy + at, *wg = w + g * n;
        const T rg = r[i * groups + g];
        if constexpr (G == Gate::BeforeNorm)
          for (int64_t k = 0; k < n; ++k) gated[k] = xg[k] * cpu::silu(z[at + k]);
        if constexpr (G == Gate::AfterNorm)
          for (int64_t k = 0; k < n; ++k) gated[k] = dyg[k] * cpu::silu(z[at + k]);
        const T* u = G == Gate::BeforeNorm ? gated.data() : xg;
        const T* g_hat = G == Gate::AfterNorm ? gated.data() : dyg;
        if (dx || dz) {
          double gw_u = 0;
          for (int64_t k = 0; k < n; ++k) gw_u += double(g_hat[k] * wg[k]) * double(u[k]);
          const T scale = rg * rg * T(gw_u / double(n));
          // du lands in dx (its own scratch when only dz is wanted); then one plain loop per gate output,
          // no branch inside, so each vectorises, σ included
          T* du_g = dx ? dx + at : du.data();
          for (int64_t k = 0; k < n; ++k) du_g[k] = rg * (g_hat[k] * wg[k] - u[k] * scale);
          if constexpr (G == Gate::AfterNorm) {
            if (dz)
              for (int64_t k = 0; k < n; ++k) dz[at + k] = dyg[k] * (u[k] * rg * wg[k]) * cpu::silu_slope(z[at + k]);
          }
          if constexpr (G == Gate::BeforeNorm) {
            if (dz)
              for (int64_t k = 0; k < n; ++k) dz[at + k] = du_g[k] * xg[k] * cpu::silu_slope(z[at + k]);
            if (dx)
              for (int64_t k = 0; k < n; ++k) dx[at + k] *= cpu::silu(z[at + k]);
          }
        }
        if (dw_block)
          for (int64_t k = 0; k < n; ++k) dw_block[g * n + k] += g_hat[k] * (u[k] * rg);
      }
  });
  if (dw) {
    std::fill(dw, dw + D, T(0));
    for (int64_t block = 0; block < cpu::kRowBlocks; ++block)
      for (int64_t j = 0; j < D; ++j) dw[j] += partial[block * D + j];
  }
}

// fn(std::integral_constant<Gate, G>) for the gate's run-time place.
template <class Fn>
void with_gate(Gate gate, Fn&& fn) {
  switch (gate) {
    case Gate::None: return fn(std::integral_constant<Gate, Gate::None>{});
    case Gate::BeforeNorm: return fn(std::integral_constant<Gate, Gate::BeforeNorm>{});
    case Gate::AfterNorm: return fn(std::integral_constant<Gate, Gate::AfterNorm>{});
  }
}

class RMSNormFunction final : public Function {
 public:
  RMSNormFunction(double eps, int64_t group_size, Gate gate)
      : Function(gate == Gate::None ? "rms_norm" : "gated_rms_norm"), eps_(eps), group_size_(group_size),
        gate_(gate) {}

  // in = {x, z (undefined without a gate), w}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor x = in[0].contiguous(), z = gate_input(in[1]), w = in[2].contiguous();
    const int64_t D = x.size(-1), n = width(x), rows = x.numel() / D;
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    Tensor r = Tensor::empty({rows, D / n}, x.dtype(), x.device());
    dispatch_float(x.dtype(), name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      if (x.device().is_cpu()) {
        with_gate(gate_, [&](auto place) {
          rms_rows_forward<T, place()>(rows, D, n, static_cast<T>(eps_), x.data<T>(), ptr<T>(z), w.data<T>(),
                                       r.data<T>(), y.data<T>());
        });
        return;
      }
#if SSM_WITH_CUDA
      cuda::rms_norm_forward<T>(rows, D, n, eps_, x.data<T>(), ptr<T>(z), gate_ == Gate::BeforeNorm, w.data<T>(),
                                r.data<T>(), y.data<T>());
#endif
    });
    save_for_backward({x, z, w, r});
    return {y};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &x = s[0], &z = s[1], &w = s[2], &r = s[3];
    const Tensor dy = grad_out[0].contiguous();
    const int64_t D = x.size(-1), n = width(x), rows = x.numel() / D;
    Tensor dx = needs_input_grad(0) ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
    Tensor dz = z.defined() && needs_input_grad(1) ? Tensor::empty(z.shape(), z.dtype(), z.device()) : Tensor();
    Tensor dw = needs_input_grad(2) ? Tensor::empty(w.shape(), w.dtype(), w.device()) : Tensor();
    dispatch_float(x.dtype(), name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      if (x.device().is_cpu()) {
        with_gate(gate_, [&](auto place) {
          rms_rows_backward<T, place()>(rows, D, n, x.data<T>(), ptr<T>(z), w.data<T>(), r.data<T>(), dy.data<T>(),
                                        ptr<T>(dx), ptr<T>(dz), ptr<T>(dw));
        });
        return;
      }
#if SSM_WITH_CUDA
      // dw as per-row-block partial sums, folded in a fixed order
      const Tensor dw_partial =
          dw.defined() ? Tensor::empty({cuda::rms_norm_row_blocks(rows), D}, x.dtype(), x.device()) : Tensor();
      cuda::rms_norm_backward<T>(rows, D, n, x.data<T>(), ptr<T>(z), gate_ == Gate::BeforeNorm, w.data<T>(),
                                 r.data<T>(), dy.data<T>(), ptr<T>(dx), ptr<T>(dz), ptr<T>(dw_partial));
      if (dw.defined()) dw = op::sum(dw_partial, {0});
#endif
    });
    return {dx, dz, dw};
  }

 private:
  int64_t width(const Tensor& x) const { return group_size_ > 0 ? group_size_ : x.size(-1); }  // n
  Tensor gate_input(const Tensor& z) const { return gate_ == Gate::None ? Tensor() : z.contiguous(); }
  template <class T>
  static T* ptr(const Tensor& t) {
    return t.defined() ? t.data<T>() : nullptr;
  }

  double eps_;
  int64_t group_size_;
  Gate gate_;
};

// Checks the shapes and applies the node.
Tensor normalise(const char* op, const Tensor& x, const Tensor& z, const Tensor& weight, double eps,
                 int64_t group_size, Gate gate) {
  SSM_CHECK(x.defined() && weight.defined(), op, ": undefined input");
  SSM_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1), op, ": weight ", weight.describe(),
            " does not match the last dimension of ", x.describe());
  SSM_CHECK(gate == Gate::None || (z.defined() && z.shape() == x.shape()), op, ": gate ", z.describe(),
            " must match input ", x.describe());
  const int64_t D = x.size(-1);
  SSM_CHECK(group_size >= 0 && (group_size == 0 || D % group_size == 0), op, ": group size ", group_size,
            " does not divide the width ", D);
  return apply(std::make_shared<RMSNormFunction>(eps, group_size, gate), {x, z, weight})[0];
}

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps, int64_t group_size) {
  return normalise("rms_norm", x, Tensor(), weight, eps, group_size, Gate::None);
}

Tensor gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& weight, double eps, int64_t group_size,
                      bool norm_before_gate) {
  return normalise("gated_rms_norm", x, z, weight, eps, group_size,
                   norm_before_gate ? Gate::AfterNorm : Gate::BeforeNorm);
}

}  // namespace ssm::nn
