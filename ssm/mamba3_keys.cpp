// ssm/mamba3_keys.cpp — see mamba3_keys.h. Forward and backward walk the same (row = (b, t), r, g, h)
// loops; backward recomputes the normalised row and the rotated keys instead of saving them.
// Tensors on a CUDA device run the same loops as kernels (cuda/mamba3_keys.cu).
#include "ssm/mamba3_keys.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/node.h"
#include "ssm/fused_device.h"
#include "ssm/key_row.h"
#include "ssm/partial_sums.h"
#include "ssm/rows_in_place.h"
#include "tensor/cpu/row_blocks.h"
#include "tensor/cpu/sincos.h"
#include "tensor/cpu/vector_clones.h"
#include "tensor/ops.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm {
namespace {

struct KeySizes {
  int64_t rows, R, G, H, N;  // rows = batch · L
  int64_t raw_stride;        // between raw's token rows, read in place (ssm/rows_in_place.h); draw is contiguous
  RotaryPairs pairs;
  int64_t heads_per_group() const { return H / G; }
  int64_t raw_offset(int64_t row, int64_t r, int64_t g) const { return row * raw_stride + (r * G + g) * N; }
  int64_t draw_offset(int64_t row, int64_t r, int64_t g) const { return ((row * R + r) * G + g) * N; }
  int64_t out_offset(int64_t row, int64_t r, int64_t h) const { return ((row * R + r) * H + h) * N; }
  int64_t theta_offset(int64_t row, int64_t h) const { return (row * H + h) * pairs.S; }
};

KeySizes sizes_of(const Tensor& raw, const Tensor& bias, const Tensor& theta, RotaryPairing pairing) {
  const int64_t H = bias.size(0), R = bias.size(1), N = bias.size(2);
  return {raw.size(0) * raw.size(1), R, raw.size(2) / (R * N), H, N, row_stride(raw, 1), {pairing, N, theta.size(3)}};
}

#if SSM_WITH_CUDA
cuda::KeysLayout cuda_layout(const KeySizes& s, double eps) {
  return {s.rows, s.R, s.G, s.H, s.N, s.pairs.S, s.raw_stride, s.pairs.pairing == RotaryPairing::HalfSplit, eps};
}
#endif

// One row's rotations (b, t) as full-width coefficients, so that rotating a key is elementwise work over its
// N lanes, which vectorises, rather than a loop over its S pairs:
//   Rot(θ) x = c ⊙ x + s ⊙ swap(x),   Rot(θ)ᵀ x = c ⊙ x − s ⊙ swap(x)   (swap: RotaryPairs::swap_lanes)
// where pair m = (a, b) has c_a = c_b = cos θ_m, s_a = −sin θ_m, s_b = sin θ_m (y_a = x_a cos θ − x_b sin θ,
// y_b = x_a sin θ + x_b cos θ), and lanes outside the pairs keep c = 1, s = 0. The row's H·S angles go
// through one vectorised sin/cos loop (cpu::sin_cos; libm's sincosf was a call per angle); they serve the R
// ranks' keys, and in the backward their gradients too.
template <class T>
struct RowRotations {
  const KeySizes& s;
  std::vector<T> c, sn, cos_angle, sin_angle;  // c, s [H, N]; cos θ, sin θ [H, S]
  explicit RowRotations(const KeySizes& sizes)
      : s(sizes), c(sizes.H * sizes.N, T(1)), sn(sizes.H * sizes.N, T(0)), cos_angle(sizes.H * sizes.pairs.S),
        sin_angle(sizes.H * sizes.pairs.S) {}
  void compute(const T* theta, int64_t row) {
    const int64_t S = s.pairs.S, count = s.H * S;
    const T* __restrict angle = theta + s.theta_offset(row, 0);
    T *__restrict cos_a = cos_angle.data(), *__restrict sin_a = sin_angle.data();
    for (int64_t i = 0; i < count; ++i) cpu::sin_cos(angle[i], sin_a[i], cos_a[i]);
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t m = 0; m < S; ++m) {
        const int64_t a = h * s.N + s.pairs.first(m), b = h * s.N + s.pairs.second(m);
        c[a] = c[b] = cos_a[h * S + m];
        sn[a] = -sin_a[h * S + m];
        sn[b] = sin_a[h * S + m];
      }
  }
  const T* cos_of(int64_t h) const { return &c[h * s.N]; }
  const T* sin_of(int64_t h) const { return &sn[h * s.N]; }
};

// One normalised raw row (b, t, r, g): ρ, x̂, n = x̂ ⊙ w and swap(n), the latter two shared by the group's heads.
template <class T>
struct NormalisedRow {
  std::vector<T> xhat, n, n_swapped;
  T rho = 0;
  explicit NormalisedRow(int64_t N) : xhat(N), n(N), n_swapped(N) {}
  void compute(const KeySizes& s, const T* raw, const T* w, double eps) {
    rho = normalise(raw, s.N, eps, xhat.data());
    for (int64_t i = 0; i < s.N; ++i) n[i] = xhat[i] * w[i];
    s.pairs.swap_lanes(n.data(), n_swapped.data());
  }
};

// k̃ = Rot(θ_h)(n + bias) = c ⊙ (n + bias) + s ⊙ (swap(n) + swap(bias)) into out
template <class T>
void rotated_key(int64_t N, const T* __restrict c, const T* __restrict sn, const NormalisedRow<T>& x,
                 const T* __restrict bias, const T* __restrict bias_swapped, T* __restrict out) {
  const T *__restrict n = x.n.data(), *__restrict ns = x.n_swapped.data();
  for (int64_t i = 0; i < N; ++i) out[i] = c[i] * (n[i] + bias[i]) + sn[i] * (ns[i] + bias_swapped[i]);
}

// The CPU loops' inputs: the saved tensors' data, and swap(bias) of every bias row [H, R, N].
template <class T>
struct KeyInputs {
  const KeySizes& s;
  const T *raw, *w, *bias, *theta;
  std::vector<T> bias_swapped;
  double eps;
  KeyInputs(const KeySizes& sizes, const Tensor& raw_t, const Tensor& w_t, const Tensor& bias_t,
            const Tensor& theta_t, double eps_)
      : s(sizes), raw(raw_t.data<T>()), w(w_t.data<T>()), bias(bias_t.data<T>()), theta(theta_t.data<T>()),
        bias_swapped(bias_t.numel()), eps(eps_) {
    for (int64_t row = 0; row < s.H * s.R; ++row) s.pairs.swap_lanes(bias + row * s.N, &bias_swapped[row * s.N]);
  }
  int64_t bias_offset(int64_t h, int64_t r) const { return (h * s.R + r) * s.N; }
};

// The forward of rows [row_begin, row_end).
template <class T>
SSM_VECTOR_CLONES void keys_forward_rows(const KeyInputs<T>& in, int64_t row_begin, int64_t row_end, T* out) {
  const KeySizes& s = in.s;
  NormalisedRow<T> x(s.N);
  RowRotations<T> rot(s);
  for (int64_t row = row_begin; row < row_end; ++row) {
    rot.compute(in.theta, row);
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t g = 0; g < s.G; ++g) {
        x.compute(s, in.raw + s.raw_offset(row, r, g), in.w, in.eps);
        for (int64_t h = g * s.heads_per_group(); h < (g + 1) * s.heads_per_group(); ++h)
          rotated_key(s.N, rot.cos_of(h), rot.sin_of(h), x, in.bias + in.bias_offset(h, r),
                      &in.bias_swapped[in.bias_offset(h, r)], out + s.out_offset(row, r, h));
      }
  }
}

// The backward of rows [row_begin, row_end): their draw and dθ, and their terms of dw [N] and dbias [H, R, N]
// added to the row block's partial sums.
template <class T>
SSM_VECTOR_CLONES void keys_backward_rows(const KeyInputs<T>& in, const T* dout, int64_t row_begin, int64_t row_end,
                                          T* draw, T* dtheta, T* dw, T* dbias) {
  const KeySizes& s = in.s;
  const int64_t N = s.N;
  NormalisedRow<T> x(N);
  RowRotations<T> rot(s);
  std::vector<T> key(N), dk_swapped(N), dn(N);
  for (int64_t row = row_begin; row < row_end; ++row) {
    rot.compute(in.theta, row);
    std::fill(dtheta + s.theta_offset(row, 0), dtheta + s.theta_offset(row + 1, 0), T(0));
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t g = 0; g < s.G; ++g) {
        x.compute(s, in.raw + s.raw_offset(row, r, g), in.w, in.eps);
        std::fill(dn.begin(), dn.end(), T(0));
        for (int64_t h = g * s.heads_per_group(); h < (g + 1) * s.heads_per_group(); ++h) {
          const T* __restrict dk_rot = dout + s.out_offset(row, r, h);
          const T *__restrict c = rot.cos_of(h), *__restrict sn = rot.sin_of(h), *__restrict dks = dk_swapped.data();
          T *__restrict bias_grad = dbias + in.bias_offset(h, r), *__restrict dn_acc = dn.data();
          rotated_key(N, c, sn, x, in.bias + in.bias_offset(h, r), &in.bias_swapped[in.bias_offset(h, r)], key.data());
          s.pairs.add_angle_grad(key.data(), dk_rot, dtheta + s.theta_offset(row, h));
          s.pairs.swap_lanes(dk_rot, dk_swapped.data());
          for (int64_t n = 0; n < N; ++n) {
            const T dk = c[n] * dk_rot[n] - sn[n] * dks[n];  // dk = Rot(θ)ᵀ dk̃
            bias_grad[n] += dk;
            dn_acc[n] += dk;
          }
        }
        // through n = x̂ ⊙ w and the RMS normalisation
        T mean_dxhat_xhat = 0;
        for (int64_t n = 0; n < N; ++n) {
          dw[n] += dn[n] * x.xhat[n];
          mean_dxhat_xhat += dn[n] * in.w[n] * x.xhat[n];
        }
        mean_dxhat_xhat /= T(N);
        T* draw_row = draw + s.draw_offset(row, r, g);
        for (int64_t n = 0; n < N; ++n) draw_row[n] = x.rho * (dn[n] * in.w[n] - x.xhat[n] * mean_dxhat_xhat);
      }
  }
}

class KeysFunction final : public Function {
 public:
  KeysFunction(RotaryPairing pairing, double eps) : Function("mamba3_keys"), pairing_(pairing), eps_(eps) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    // raw (B or C) is a column range of in_proj's output. The GPU kernels read it in place; the CPU loops
    // read a contiguous copy: read in place (with MIMO's x in mamba3_values), the ~1M training step measured
    // ~3% slower on one thread. A token row of raw is R·G·N values (128 bytes there) a few KB apart; the
    // copy's tight loop streams them faster than the keys' loops, which stall on each row's first touch.
    const Tensor raw = in[0].device().is_cpu() ? in[0].contiguous() : rows_readable(in[0], 1), w = in[1].contiguous(),
                 bias = in[2].contiguous(), theta = in[3].contiguous();
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
      const KeyInputs<T> inputs(s, raw, w, bias, theta, eps_);
      T* pout = out.data<T>();
      cpu::for_row_blocks(s.rows, s.rows * s.R * s.H * s.N * 4, [&](int64_t, int64_t row_begin, int64_t row_end) {
        keys_forward_rows(inputs, row_begin, row_end, pout);
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
    Tensor draw = Tensor::empty(raw.shape(), raw.dtype()), dtheta = Tensor::empty(theta.shape(), raw.dtype());
    Tensor partial = Tensor::zeros({cpu::kRowBlocks, s.N + HRN}, raw.dtype());  // per block: dw [N], dbias [H, R, N]
    dispatch_float(raw.dtype(), "mamba3_keys", [&](auto tag) {
      using T = decltype(tag);
      const KeyInputs<T> inputs(s, raw, w, bias, theta, eps_);
      cpu::for_row_blocks(s.rows, s.rows * s.R * s.H * s.N * 8, [&](int64_t block, int64_t row_begin, int64_t row_end) {
        T* dw = partial.data<T>() + block * (s.N + HRN);
        keys_backward_rows(inputs, dout.data<T>(), row_begin, row_end, draw.data<T>(), dtheta.data<T>(), dw, dw + s.N);
      });
    });
    const Tensor totals = op::sum(partial, {0});
    return {draw, totals.narrow(0, 0, s.N).contiguous(), totals.narrow(0, s.N, HRN).view(bias.shape()).contiguous(),
            dtheta};
  }

 private:
  // The kernels write per-block partials of dw and dbias (cuda/mamba3_keys.cu), summed here in a fixed order
  // (rows padded with zeros for the two-stage sum).
  std::vector<Tensor> backward_cuda([[maybe_unused]] const KeySizes& s, [[maybe_unused]] const Tensor& raw,
                                    [[maybe_unused]] const Tensor& w, [[maybe_unused]] const Tensor& bias,
                                    [[maybe_unused]] const Tensor& theta, [[maybe_unused]] const Tensor& dout) const {
#if SSM_WITH_CUDA
    const Device device = raw.device();
    const cuda::KeysLayout layout = cuda_layout(s, eps_);
    std::vector<Tensor> grads;
    dispatch_float(raw.dtype(), "mamba3_keys", [&](auto tag) {
      using T = decltype(tag);
      const int64_t slots = cuda::keys_backward_slots<T>(layout);
      const Tensor draw = Tensor::empty(raw.shape(), raw.dtype(), device),
                   dtheta = Tensor::empty(theta.shape(), raw.dtype(), device);
      const PartialRows block_split = split_partial_rows(slots * s.R * s.G), slot_split = split_partial_rows(slots);
      const Tensor dw_partial = Tensor::zeros({block_split.padded(), s.N}, raw.dtype(), device),
                   dbias_partial = Tensor::zeros({slot_split.padded(), s.H * s.R * s.N}, raw.dtype(), device),
                   rho = Tensor::empty({s.rows * s.R * s.G}, raw.dtype(), device);
      cuda::mamba3_keys_backward<T>(layout, slots, raw.data<T>(), w.data<T>(), bias.data<T>(), theta.data<T>(),
                                    dout.data<T>(), draw.data<T>(), dtheta.data<T>(), dw_partial.data<T>(),
                                    dbias_partial.data<T>(), rho.data<T>());
      grads = {draw, sum_partial_rows(dw_partial, block_split),
               sum_partial_rows(dbias_partial, slot_split).view(bias.shape()), dtheta};
    });
    return grads;
#else
    throw Error("mamba3_keys: a tensor on a GPU in a build without CUDA");
#endif
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
