// ssm/rotary.cpp — see rotary.h. Forward and backward are the same loop over (batch, t, r, h) rows:
// the backward rotates by −θ (Rotᵀ) and accumulates the angle gradient from the saved output.
#include "ssm/rotary.h"

#include <cmath>

#include "autograd/node.h"
#include "tensor/ops.h"

namespace ssm {
namespace {

struct RotarySizes {
  int64_t rows_per_angle_row;  // R ranks share the angles of one (batch, t)
  int64_t H, N, S;
  int64_t rows;                // batch·L·R·H
  int64_t first(int64_t m, RotaryPairing p) const { return p == RotaryPairing::Adjacent ? 2 * m : m; }
  int64_t second(int64_t m, RotaryPairing p) const { return p == RotaryPairing::Adjacent ? 2 * m + 1 : m + N / 2; }
  // the angle row of x row `row` = ((b·L + t)·R + r)·H + h  →  (b·L + t)·H + h
  int64_t angle_row(int64_t row) const {
    const int64_t h = row % H, time = row / (H * rows_per_angle_row);
    return time * H + h;
  }
};

RotarySizes sizes_of(const Tensor& x, const Tensor& angles) {
  return {x.size(2), x.size(3), x.size(4), angles.size(3), x.numel() / x.size(4)};
}

// out = Rot(sign·θ) in, row by row (sign −1 is Rotᵀ)
template <class T>
void rotate_rows(const RotarySizes& s, RotaryPairing p, const T* angles, const T* in, T* out, T sign) {
  for (int64_t row = 0; row < s.rows; ++row) {
    const T* theta = angles + s.angle_row(row) * s.S;
    const T* src = in + row * s.N;
    T* dst = out + row * s.N;
    for (int64_t n = 0; n < s.N; ++n) dst[n] = src[n];
    for (int64_t m = 0; m < s.S; ++m) {
      const T c = std::cos(theta[m]), sn = sign * std::sin(theta[m]);
      const T a = src[s.first(m, p)], b = src[s.second(m, p)];
      dst[s.first(m, p)] = a * c - b * sn;
      dst[s.second(m, p)] = a * sn + b * c;
    }
  }
}

class RotaryFunction final : public Function {
 public:
  explicit RotaryFunction(RotaryPairing pairing) : Function("rotate_pairs"), pairing_(pairing) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor x = in[0].contiguous(), angles = in[1].contiguous();
    const RotarySizes s = sizes_of(x, angles);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), "rotate_pairs", [&](auto tag) {
      using T = decltype(tag);
      rotate_rows<T>(s, pairing_, angles.data<T>(), x.data<T>(), y.data<T>(), T(1));
    });
    save_for_backward({y, angles});
    return {y};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto saved_tensors = saved();
    const Tensor &y = saved_tensors[0], &angles = saved_tensors[1];
    const Tensor dy = grad_out[0].contiguous();
    const RotarySizes s = sizes_of(y, angles);
    Tensor dx = Tensor::empty(y.shape(), y.dtype()), dangles = op::zeros_like(angles);
    dispatch_float(y.dtype(), "rotate_pairs", [&](auto tag) {
      using T = decltype(tag);
      rotate_rows<T>(s, pairing_, angles.data<T>(), dy.data<T>(), dx.data<T>(), T(-1));
      const T *py = y.data<T>(), *pdy = dy.data<T>();
      T* pdtheta = dangles.data<T>();
      for (int64_t row = 0; row < s.rows; ++row)
        for (int64_t m = 0; m < s.S; ++m) {
          const int64_t a = row * s.N + s.first(m, pairing_), b = row * s.N + s.second(m, pairing_);
          pdtheta[s.angle_row(row) * s.S + m] += py[a] * pdy[b] - py[b] * pdy[a];
        }
    });
    return {dx, dangles};
  }

 private:
  RotaryPairing pairing_;
};

}  // namespace

Tensor rotate_pairs(const Tensor& x, const Tensor& angles, RotaryPairing pairing) {
  SSM_CHECK(x.defined() && angles.defined(), "rotate_pairs: undefined input");
  SSM_CHECK(x.dim() == 5, "rotate_pairs: x must be [batch, L, R, H, N], got ", x.describe());
  SSM_CHECK(angles.dim() == 4 && angles.size(0) == x.size(0) && angles.size(1) == x.size(1) &&
                angles.size(2) == x.size(3) && 2 * angles.size(3) <= x.size(4),
            "rotate_pairs: angles must be [", x.size(0), ", ", x.size(1), ", ", x.size(3), ", S ≤ ", x.size(4) / 2,
            "], got ", angles.describe());
  SSM_CHECK(pairing == RotaryPairing::Adjacent || x.size(4) % 2 == 0, "rotate_pairs: half-split pairs need an even N");
  SSM_CHECK(angles.dtype() == x.dtype() && x.device().is_cpu() && angles.device().is_cpu(),
            "rotate_pairs: x and angles must be cpu tensors of one dtype, got ", x.describe(), " and ",
            angles.describe());
  return apply(std::make_shared<RotaryFunction>(pairing), {x, angles})[0];
}

}  // namespace ssm
