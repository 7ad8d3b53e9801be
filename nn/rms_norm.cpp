// nn/rms_norm.cpp — RMSNorm as one autograd node, forward and backward side by side.
//
// Per group of n channels (spec §1):  r = (mean(x²) + eps)^(-1/2),  y = x · r · w.
// Backward, with gw = dy · w (the gradient reaching the normalised x̂ = x·r):
//   dx = r · (gw - x · r² · mean(gw · x))       (the mean over the same group)
//   dw = Σ_rows dy · x · r
// Saved for backward: x, w and r (one value per group); x̂ is recomputed.
#include <utility>

#include "nn/functional.h"

namespace ssm::nn {
namespace {

class RMSNormFunction final : public Function {
 public:
  RMSNormFunction(double eps, int64_t group_size) : Function("rms_norm"), eps_(eps), group_size_(group_size) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor& x = in[0];
    const Tensor& w = in[1];
    const Tensor xg = grouped(x);                                          // [.., G, n]
    const Tensor r = op::rsqrt(op::add(op::mean(op::square(xg), {-1}, true), eps_));  // [.., G, 1]
    save_for_backward({x, w, r});
    return {op::mul(op::mul(xg, r).view(x.shape()), w)};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &x = s[0], &w = s[1], &r = s[2];
    const Tensor& dy = grad_out[0];
    const Tensor xg = grouped(x);
    Tensor dx, dw;
    if (needs_input_grad(0)) {
      const Tensor gw = grouped(op::mul(dy, w));
      const Tensor dot = op::mean(op::mul(gw, xg), {-1}, true);           // mean(gw · x) per group
      dx = op::mul(r, op::sub(gw, op::mul(xg, op::mul(op::square(r), dot)))).view(x.shape());
    }
    if (needs_input_grad(1)) dw = op::sum_to(op::mul(dy, op::mul(xg, r).view(x.shape())), w.shape());
    return {dx, dw};
  }

 private:
  // x [.., D] viewed as [.., D/n, n]
  Tensor grouped(const Tensor& x) const {
    const int64_t D = x.size(-1), n = group_size_ > 0 ? group_size_ : D;
    Shape shape(x.shape().begin(), x.shape().end() - 1);
    shape.push_back(D / n);
    shape.push_back(n);
    return x.reshape(shape);
  }

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
