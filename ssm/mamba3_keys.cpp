// ssm/mamba3_keys.cpp — see mamba3_keys.h. Forward and backward walk the same (row = (b, t), r, g, h)
// loops; backward recomputes the normalised row and the rotated keys instead of saving them.
// Tensors on a CUDA device run the same loops as kernels (cuda/mamba3_keys.cu).
#include "ssm/mamba3_keys.h"

#include <cmath>
#include <vector>

#include "autograd/node.h"
#include "ssm/fused_device.h"
#include "ssm/key_row.h"
#include "ssm/partial_sums.h"
#include "tensor/cpu/row_blocks.h"
#include "tensor/ops.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm {
namespace {

struct KeySizes {
  int64_t rows, R, G, H, N;  // rows = batch · L
  RotaryPairs pairs;
  int64_t heads_per_group() const { return H / G; }
  int64_t raw_offset(int64_t row, int64_t r, int64_t g) const { return ((row * R + r) * G + g) * N; }
  int64_t out_offset(int64_t row, int64_t r, int64_t h) const { return ((row * R + r) * H + h) * N; }
  int64_t theta_offset(int64_t row, int64_t h) const { return (row * H + h) * pairs.S; }
};

KeySizes sizes_of(const Tensor& raw, const Tensor& bias, const Tensor& theta, RotaryPairing pairing) {
  const int64_t H = bias.size(0), R = bias.size(1), N = bias.size(2);
  return {raw.size(0) * raw.size(1), R, raw.size(2) / (R * N), H, N, {pairing, N, theta.size(3)}};
}

#if SSM_WITH_CUDA
cuda::KeysLayout cuda_layout(const KeySizes& s, double eps) {
  return {s.rows, s.R, s.G, s.H, s.N, s.pairs.S, s.pairs.pairing == RotaryPairing::HalfSplit, eps};
}
#endif

// cos θ and sin θ of every head's angles at one row (b, t), computed once for the R ranks' keys and,
// in the backward, for the rotation of their gradients too.
template <class T>
struct RowRotations {
  const KeySizes& s;
  std::vector<T> cos_theta, sin_theta;  // [H, S]
  explicit RowRotations(const KeySizes& sizes)
      : s(sizes), cos_theta(sizes.H * sizes.pairs.S), sin_theta(sizes.H * sizes.pairs.S) {}
  void compute(const T* theta, int64_t row) {
    for (int64_t h = 0; h < s.H; ++h)
      s.pairs.cos_sin(theta + s.theta_offset(row, h), &cos_theta[h * s.pairs.S], &sin_theta[h * s.pairs.S]);
  }
  // dst = Rot(sign·θ_h) src
  void rotate(int64_t h, const T* src, T* dst, T sign = T(1)) const {
    s.pairs.rotate(src, &cos_theta[h * s.pairs.S], &sin_theta[h * s.pairs.S], dst, sign);
  }
};

// k̃ = Rot(θ_h)(x̂ ⊙ w + bias_row) into out
template <class T>
void rotated_key(const KeySizes& s, const T* xhat, const T* w, const T* bias_row, const RowRotations<T>& rot,
                 int64_t h, T* out) {
  scale_and_bias(xhat, w, bias_row, s.N, out);
  rot.rotate(h, out, out);
}

class KeysFunction final : public Function {
 public:
  KeysFunction(RotaryPairing pairing, double eps) : Function("mamba3_keys"), pairing_(pairing), eps_(eps) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor raw = in[0].contiguous(), w = in[1].contiguous(), bias = in[2].contiguous(),
                 theta = in[3].contiguous();
    const KeySizes s = sizes_of(raw, bias, theta, pairing_);
    Tensor out = Tensor::empty({raw.size(0), raw.size(1), s.R, s.H, s.N}, raw.dtype(), raw.device());
    save_for_backward({raw, w, bias, theta});
    if (!raw.device().is_cpu()) {
#if SSM_WITH_CUDA
      dispatch_float(raw.dtype(), "mamba3_keys", [&](auto tag) {
        using T = decltype(tag);
        cuda::mamba3_keys_forward<T>(cuda_layout(s, eps_), raw.data<T>(), w.data<T>(), bias.data<T>(), theta.data<T>(),
                                     out.data<T>());
      });
#endif
      return {out};
    }
    dispatch_float(raw.dtype(), "mamba3_keys", [&](auto tag) {
      using T = decltype(tag);
      const T *praw = raw.data<T>(), *pw = w.data<T>(), *pbias = bias.data<T>(), *ptheta = theta.data<T>();
      T* pout = out.data<T>();
      cpu::parallel_for(s.rows, s.rows * s.R * s.H * s.N * 4, [&](int64_t row) {
        std::vector<T> xhat(s.N);
        RowRotations<T> rot(s);
        rot.compute(ptheta, row);
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t g = 0; g < s.G; ++g) {
            normalise(praw + s.raw_offset(row, r, g), s.N, eps_, xhat.data());
            for (int64_t h = g * s.heads_per_group(); h < (g + 1) * s.heads_per_group(); ++h)
              rotated_key(s, xhat.data(), pw, pbias + (h * s.R + r) * s.N, rot, h, pout + s.out_offset(row, r, h));
          }
      });
    });
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const std::vector<Tensor> c = saved();
    const Tensor &raw = c[0], &w = c[1], &bias = c[2], &theta = c[3];
    const Tensor dout = grad_out[0].contiguous();
    const KeySizes s = sizes_of(raw, bias, theta, pairing_);
    const int64_t HRN = s.H * s.R * s.N;
    if (!raw.device().is_cpu()) return backward_cuda(s, raw, w, bias, theta, dout);
    Tensor draw = Tensor::empty(raw.shape(), raw.dtype()), dtheta = op::zeros_like(theta);
    Tensor partial = Tensor::zeros({cpu::kRowBlocks, s.N + HRN}, raw.dtype());  // per block: dw [N], dbias [H, R, N]
    dispatch_float(raw.dtype(), "mamba3_keys", [&](auto tag) {
      using T = decltype(tag);
      const T *praw = raw.data<T>(), *pw = w.data<T>(), *pbias = bias.data<T>(), *ptheta = theta.data<T>();
      const T* pdout = dout.data<T>();
      T *pdraw = draw.data<T>(), *pdtheta = dtheta.data<T>();
      cpu::for_row_blocks(s.rows, s.rows * s.R * s.H * s.N * 8, [&](int64_t block, int64_t row_begin, int64_t row_end) {
        T* dw = partial.data<T>() + block * (s.N + HRN);
        T* dbias = dw + s.N;
        std::vector<T> xhat(s.N), key(s.N), dkey(s.N), dn(s.N);
        RowRotations<T> rot(s);
        for (int64_t row = row_begin; row < row_end; ++row) {
          rot.compute(ptheta, row);
          for (int64_t r = 0; r < s.R; ++r)
            for (int64_t g = 0; g < s.G; ++g) {
              const int64_t raw_at = s.raw_offset(row, r, g);
              const T rho = normalise(praw + raw_at, s.N, eps_, xhat.data());
              for (int64_t n = 0; n < s.N; ++n) dn[n] = 0;
              for (int64_t h = g * s.heads_per_group(); h < (g + 1) * s.heads_per_group(); ++h) {
                const T* dk_rot = pdout + s.out_offset(row, r, h);
                T* bias_grad = dbias + (h * s.R + r) * s.N;
                rotated_key(s, xhat.data(), pw, pbias + (h * s.R + r) * s.N, rot, h, key.data());
                s.pairs.add_angle_grad(key.data(), dk_rot, pdtheta + s.theta_offset(row, h));
                rot.rotate(h, dk_rot, dkey.data(), T(-1));  // dk = Rot(θ)ᵀ dk̃
                for (int64_t n = 0; n < s.N; ++n) {
                  bias_grad[n] += dkey[n];
                  dn[n] += dkey[n];
                }
              }
              // through n = x̂ ⊙ w and the RMS normalisation
              T mean_dxhat_xhat = 0;
              for (int64_t n = 0; n < s.N; ++n) {
                dw[n] += dn[n] * xhat[n];
                mean_dxhat_xhat += dn[n] * pw[n] * xhat[n];
              }
              mean_dxhat_xhat /= T(s.N);
              for (int64_t n = 0; n < s.N; ++n)
                pdraw[raw_at + n] = rho * (dn[n] * pw[n] - xhat[n] * mean_dxhat_xhat);
            }
        }
      });
    });
    const Tensor totals = op::sum(partial, {0});
    return {draw, totals.narrow(0, 0, s.N).contiguous(), totals.narrow(0, s.N, HRN).view(bias.shape()).contiguous(),
            dtheta};
  }

 private:
  // The kernels write per-unit partials of dw and dbias (rows padded with zeros for the two-stage sum).
  std::vector<Tensor> backward_cuda(const KeySizes& s, const Tensor& raw, [[maybe_unused]] const Tensor& w,
                                    const Tensor& bias, const Tensor& theta, [[maybe_unused]] const Tensor& dout) const {
    const Device device = raw.device();
    const int64_t units = s.rows * s.R * s.G;
    Tensor draw = Tensor::empty(raw.shape(), raw.dtype(), device), dtheta = Tensor::empty(theta.shape(), raw.dtype(), device);
    const PartialRows unit_split = split_partial_rows(units), row_split = split_partial_rows(s.rows);
    const Tensor dw_partial = Tensor::zeros({unit_split.padded(), s.N}, raw.dtype(), device),
                 dbias_partial = Tensor::zeros({row_split.padded(), s.H * s.R * s.N}, raw.dtype(), device),
                 rho = Tensor::empty({units}, raw.dtype(), device);
#if SSM_WITH_CUDA
    dispatch_float(raw.dtype(), "mamba3_keys", [&](auto tag) {
      using T = decltype(tag);
      cuda::mamba3_keys_backward<T>(cuda_layout(s, eps_), raw.data<T>(), w.data<T>(), bias.data<T>(), theta.data<T>(),
                                    dout.data<T>(), draw.data<T>(), dtheta.data<T>(), dw_partial.data<T>(),
                                    dbias_partial.data<T>(), rho.data<T>());
    });
#endif
    return {draw, sum_partial_rows(dw_partial, unit_split), sum_partial_rows(dbias_partial, row_split).view(bias.shape()),
            dtheta};
  }

  RotaryPairing pairing_;
  double eps_;
};

}  // namespace

Tensor mamba3_keys(const Tensor& raw, const Tensor& norm_weight, const Tensor& bias, const Tensor& theta,
                   RotaryPairing pairing, double eps) {
  SSM_CHECK(raw.defined() && norm_weight.defined() && bias.defined() && theta.defined(),
            "mamba3_keys: undefined input");
  SSM_CHECK(bias.dim() == 3, "mamba3_keys: bias must be [H, R, N], got ", bias.describe());
  const int64_t H = bias.size(0), R = bias.size(1), N = bias.size(2);
  SSM_CHECK(norm_weight.shape() == Shape{N}, "mamba3_keys: norm weight must be [", N, "], got ",
            norm_weight.describe());
  SSM_CHECK(raw.dim() == 3 && raw.size(2) % (R * N) == 0 && H % (raw.size(2) / (R * N)) == 0,
            "mamba3_keys: raw must be [batch, L, R·G·N] with R = ", R, ", N = ", N, " and G dividing ", H,
            " heads, got ", raw.describe());
  SSM_CHECK(theta.dim() == 4 && theta.size(0) == raw.size(0) && theta.size(1) == raw.size(1) && theta.size(2) == H &&
                2 * theta.size(3) <= N,
            "mamba3_keys: theta must be [", raw.size(0), ", ", raw.size(1), ", ", H, ", S ≤ ", N / 2, "], got ",
            theta.describe());
  SSM_CHECK(pairing == RotaryPairing::Adjacent || N % 2 == 0, "mamba3_keys: half-split pairs need an even N");
  for (const Tensor& t : {norm_weight, bias, theta})
    SSM_CHECK(t.dtype() == raw.dtype(), "mamba3_keys: ", t.describe(), " must have raw's dtype ",
              dtype_name(raw.dtype()));
  check_fused_device("mamba3_keys", raw, {norm_weight, bias, theta});
  return apply(std::make_shared<KeysFunction>(pairing, eps), {raw, norm_weight, bias, theta})[0];
}

}  // namespace ssm
