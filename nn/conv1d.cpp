// nn/conv1d.cpp — the depthwise causal convolution of Mamba-2, optionally followed by SiLU, as one
// autograd node.
//
// x [B, L, C], weight [C, 1, K]; tap j of output t reads the input K−1−j steps back (zeros before t = 0):
//   a[b, t, c]   = bias[c] + Σ_j w[c, 0, j] · x[b, t − (K−1) + j, c]
//   out[b, t, c] = silu(a[b, t, c])   (or a itself without the activation)
// Backward, with g = d(loss)/d(out) and ga = g · silu'(a) the gradient reaching a (ga = g without SiLU):
//   dx[b, s, c]  = Σ_j ga[b, s + (K−1) − j, c] · w[c, 0, j]   (terms past the end of the sequence drop)
//   dw[c, 0, j]  = Σ_{b,t} ga[b, t, c] · x[b, t − (K−1) + j, c]
//   dbias[c]     = Σ_{b,t} ga[b, t, c]
// Saved for backward: x, w and bias; a is recomputed (K multiply-adds) rather than stored.
//
// On the CPU these are the loops below, rows of C channels at a time (the channels are contiguous, so
// the inner loops vectorise); on a GPU their twin kernels (cuda/conv1d.cu). Both directions are one
// pass (two backward: ga and the weight sums, then dx). Written as tensor ops they were K + 1 passes
// forward and ~3K backward, plus SiLU's own pass each way.
#include <algorithm>
#include <vector>

#include "nn/functional.h"
#include "tensor/cpu/row_blocks.h"
#include "tensor/cpu/sigmoid.h"
#if SSM_WITH_CUDA
#include "cuda/nn_fused.h"
#endif

namespace ssm::nn {
namespace {

// The shapes and the weights laid out for the row loops: taps [K, C] (w[c, 0, j] at taps[j·C + c]).
template <class T>
struct ConvRows {
  int64_t L, C, K;
  const T* taps;
  const T* bias;  // [C] or null

  // a of row (b, t) = row b·L + t, into a_row [C]
  void pre_activation(const T* x, int64_t row, T* a_row) const {
    const int64_t t = row % L;
    for (int64_t c = 0; c < C; ++c) a_row[c] = bias ? bias[c] : T(0);
    for (int64_t j = std::max<int64_t>(0, K - 1 - t); j < K; ++j) {
      const T* x_src = x + (row - (K - 1) + j) * C;
      const T* w_j = taps + j * C;
      for (int64_t c = 0; c < C; ++c) a_row[c] += w_j[c] * x_src[c];
    }
  }
};

template <class T>
void conv_rows_forward(const ConvRows<T>& conv, int64_t rows, bool silu, const T* x, T* out) {
  cpu::parallel_for(rows, rows * conv.C * (2 * conv.K + (silu ? 8 : 0)), [&](int64_t row) {
    T* out_row = out + row * conv.C;
    conv.pre_activation(x, row, out_row);
    if (silu)
      for (int64_t c = 0; c < conv.C; ++c) out_row[c] = cpu::silu(out_row[c]);
  });
}

// Pass 1: ga (written to g_pre when SiLU is on; it is g itself otherwise) and, per fixed row block
// (tensor/cpu/row_blocks.h: the same bits for any thread count), the partial sums of dw and dbias:
// partial [kRowBlocks, K + 1, C], tap j's sums in row j and the bias's in row K.
// Pass 2: dx from ga.
template <class T>
void conv_rows_backward(const ConvRows<T>& conv, int64_t rows, bool silu, const T* x, const T* g, T* g_pre,
                        T* partial, T* dx) {
  const int64_t L = conv.L, C = conv.C, K = conv.K;
  const T* ga = silu ? g_pre : g;
  cpu::for_row_blocks(rows, rows * C * (2 * K + 10), [&](int64_t block, int64_t row_begin, int64_t row_end) {
    T* sums = partial + block * (K + 1) * C;
    std::fill(sums, sums + (K + 1) * C, T(0));
    std::vector<T> a_row(silu ? C : 0);
    for (int64_t row = row_begin; row < row_end; ++row) {
      const T* ga_row = g + row * C;
      if (silu) {
        conv.pre_activation(x, row, a_row.data());
        T* out = g_pre + row * C;
        for (int64_t c = 0; c < C; ++c) out[c] = ga_row[c] * cpu::silu_slope(a_row[c]);
        ga_row = out;
      }
      const int64_t t = row % L;
      for (int64_t j = std::max<int64_t>(0, K - 1 - t); j < K; ++j) {
        const T* x_src = x + (row - (K - 1) + j) * C;
        for (int64_t c = 0; c < C; ++c) sums[j * C + c] += ga_row[c] * x_src[c];
      }
      for (int64_t c = 0; c < C; ++c) sums[K * C + c] += ga_row[c];
    }
  });
  if (!dx) return;
  cpu::parallel_for(rows, rows * C * 2 * K, [&](int64_t row) {
    T* dx_row = dx + row * C;
    std::fill(dx_row, dx_row + C, T(0));
    const int64_t t = row % L;
    for (int64_t j = K - 1; j >= 0 && t + (K - 1) - j < L; --j) {  // j = K−1 first: output s itself
      const T* ga_dst = ga + (row + (K - 1) - j) * C;
      const T* w_j = conv.taps + j * C;
      for (int64_t c = 0; c < C; ++c) dx_row[c] += ga_dst[c] * w_j[c];
    }
  });
}

class CausalConv1dFunction final : public Function {
 public:
  explicit CausalConv1dFunction(bool silu) : Function(silu ? "causal_conv1d_silu" : "causal_conv1d"), silu_(silu) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor x = in[0].contiguous(), &w = in[1], bias = in[2].defined() ? in[2].contiguous() : Tensor();
    const Tensor taps = taps_of(w);
    const int64_t rows = x.size(0) * x.size(1);
    Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
    dispatch_float(x.dtype(), name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      const ConvRows<T> conv = layout<T>(x, taps, bias);
      if (x.device().is_cpu()) {
        conv_rows_forward(conv, rows, silu_, x.data<T>(), out.data<T>());
        return;
      }
#if SSM_WITH_CUDA
      cuda::causal_conv1d_forward<T>(rows, conv.L, conv.C, conv.K, x.data<T>(), conv.taps, conv.bias, silu_,
                                     out.data<T>());
#endif
    });
    save_for_backward({x, w, bias});
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &x = s[0], taps = taps_of(s[1]), &bias = s[2];
    const Tensor g = grad_out[0].contiguous();
    const int64_t rows = x.size(0) * x.size(1), C = x.size(2), K = taps.size(0);
    const Tensor g_pre = silu_ ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
    const Tensor dx = needs_input_grad(0) ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
    Tensor partial;  // [blocks, K + 1, C]: the taps' sums, then the bias's
    dispatch_float(x.dtype(), name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      const ConvRows<T> conv = layout<T>(x, taps, bias);
      T* g_pre_ptr = g_pre.defined() ? g_pre.data<T>() : nullptr;
      T* dx_ptr = dx.defined() ? dx.data<T>() : nullptr;
      if (x.device().is_cpu()) {
        partial = Tensor::empty({cpu::kRowBlocks, K + 1, C}, x.dtype(), x.device());
        conv_rows_backward(conv, rows, silu_, x.data<T>(), g.data<T>(), g_pre_ptr, partial.data<T>(), dx_ptr);
        return;
      }
#if SSM_WITH_CUDA
      partial = Tensor::empty({cuda::causal_conv1d_row_blocks(rows), K + 1, C}, x.dtype(), x.device());
      cuda::causal_conv1d_backward<T>(rows, conv.L, C, K, x.data<T>(), conv.taps, conv.bias, silu_, g.data<T>(),
                                      g_pre_ptr, partial.data<T>(), dx_ptr);
#endif
    });
    const Tensor sums = op::sum(partial, {0});  // [K + 1, C], folded in block order
    std::vector<Tensor> grads(3);
    grads[0] = dx;
    if (needs_input_grad(1)) grads[1] = sums.narrow(0, 0, K).transpose(0, 1).contiguous().view({C, 1, K});
    if (needs_input_grad(2)) grads[2] = sums.select(0, K).contiguous();
    return grads;
  }

 private:
  static Tensor taps_of(const Tensor& w) {  // [C, 1, K] → [K, C]
    return w.select(1, 0).transpose(0, 1).contiguous();
  }
  template <class T>
  static ConvRows<T> layout(const Tensor& x, const Tensor& taps, const Tensor& bias) {
    return {x.size(1), x.size(2), taps.size(0), taps.data<T>(), bias.defined() ? bias.data<T>() : nullptr};
  }

  bool silu_;
};

}  // namespace

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu) {
  SSM_CHECK(x.defined() && weight.defined(), "causal_conv1d: undefined input");
  SSM_CHECK(x.dim() == 3, "causal_conv1d: input must be [batch, length, channels], got ", x.describe());
  const int64_t C = x.size(2);
  SSM_CHECK(weight.dim() == 3 && weight.size(0) == C && weight.size(1) == 1 && weight.size(2) >= 1,
            "causal_conv1d: weight must be [", C, ", 1, K], got ", weight.describe());
  SSM_CHECK(!bias.defined() || bias.shape() == Shape{C}, "causal_conv1d: bias must be [", C, "], got ",
            bias.describe());
  for (const Tensor& t : {weight, bias})
    SSM_CHECK(!t.defined() || (t.device() == x.device() && t.dtype() == x.dtype()), "causal_conv1d: ",
              t.describe(), " does not match the input ", x.describe());
  return apply(std::make_shared<CausalConv1dFunction>(silu), {x, weight, bias})[0];
}

}  // namespace ssm::nn
