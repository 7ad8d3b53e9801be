// nn/conv1d.cpp — the depthwise causal convolution of Mamba-2, as one autograd node.
//
// x [B, L, C] is left-padded with K-1 zero steps (xp [B, L+K-1, C]) so that tap j of output t
// reads xp[t + j]:
//   out[b, t, c] = bias[c] + Σ_j w[c, 0, j] · xp[b, t + j, c]
// Backward, with g = d(loss)/d(out):
//   dxp[b, t + j, c] += g[b, t, c] · w[c, 0, j]   (then drop the padding: dx = dxp[:, K-1:, :])
//   dw[c, 0, j]       = Σ_{b,t} g[b, t, c] · xp[b, t + j, c]
//   dbias[c]          = Σ_{b,t} g[b, t, c]
// K is small (4), so each sum over taps is K whole-tensor multiply-adds.
#include "nn/functional.h"

namespace ssm::nn {
namespace {

class CausalConv1dFunction final : public Function {
 public:
  CausalConv1dFunction() : Function("causal_conv1d") {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &x = in[0], &w = in[1], &bias = in[2];
    const int64_t L = x.size(1), K = w.size(2);
    const Tensor xp = padded(x, K);
    const Tensor out = op::zeros_like(x);
    if (bias.defined()) op::add_(out, bias);
    for (int64_t j = 0; j < K; ++j) op::add_(out, op::mul(xp.narrow(1, j, L), tap(w, j)));
    save_for_backward({xp, w});
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &xp = s[0], &w = s[1];
    const Tensor& g = grad_out[0];
    const int64_t L = g.size(1), K = w.size(2);
    std::vector<Tensor> grads(3);
    if (needs_input_grad(0)) {
      const Tensor dxp = op::zeros_like(xp);
      for (int64_t j = 0; j < K; ++j) op::add_(dxp.narrow(1, j, L), op::mul(g, tap(w, j)));
      grads[0] = dxp.narrow(1, K - 1, L).contiguous();
    }
    if (needs_input_grad(1)) {
      std::vector<Tensor> taps;
      for (int64_t j = 0; j < K; ++j) taps.push_back(op::sum(op::mul(g, xp.narrow(1, j, L)), {0, 1}));  // [C]
      grads[1] = op::stack(taps, 1).view(w.shape());
    }
    if (needs_input_grad(2)) grads[2] = op::sum(g, {0, 1});
    return grads;
  }

 private:
  static Tensor padded(const Tensor& x, int64_t K) {
    const Tensor zeros = Tensor::zeros({x.size(0), K - 1, x.size(2)}, x.dtype(), x.device());
    return op::cat({zeros, x}, 1);
  }
  static Tensor tap(const Tensor& w, int64_t j) { return w.select(2, j).select(1, 0); }  // w[:, 0, j], [C]
};

}  // namespace

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  SSM_CHECK(x.defined() && weight.defined(), "causal_conv1d: undefined input");
  SSM_CHECK(x.dim() == 3, "causal_conv1d: input must be [batch, length, channels], got ", x.describe());
  const int64_t C = x.size(2);
  SSM_CHECK(weight.dim() == 3 && weight.size(0) == C && weight.size(1) == 1 && weight.size(2) >= 1,
            "causal_conv1d: weight must be [", C, ", 1, K], got ", weight.describe());
  SSM_CHECK(!bias.defined() || bias.shape() == Shape{C}, "causal_conv1d: bias must be [", C, "], got ",
            bias.describe());
  return apply(std::make_shared<CausalConv1dFunction>(), {x, weight, bias})[0];
}

}  // namespace ssm::nn
