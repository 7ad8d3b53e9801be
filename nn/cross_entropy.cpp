// nn/cross_entropy.cpp — softmax cross-entropy with loss masking, as one autograd node.
//
// For row i with target t_i (rows with t_i = ignore_index are masked out, m_i = 0, else 1):
//   loss = (1/M) Σ_i m_i (logsumexp(z_i) - z_i[t_i]),   M = Σ_i m_i
// logsumexp subtracts the row max first, so large logits never overflow.
// Backward (g = d(total)/d(loss), a scalar):
//   dz_i = g · m_i / M · (softmax(z_i) - onehot(t_i))
// Saved: the logits, the per-row logsumexp, the (safe) targets and the row weights m_i / M; the
// softmax is recomputed from them rather than stored (it is as large as the logits).
#include "nn/functional.h"

#include <limits>

namespace ssm::nn {
namespace {

class CrossEntropyFunction final : public Function {
 public:
  explicit CrossEntropyFunction(int64_t ignore_index) : Function("cross_entropy"), ignore_index_(ignore_index) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    input_shape_ = in[0].shape();
    const int64_t V = in[0].size(-1);
    const Tensor logits = in[0].reshape({-1, V});                 // [N, V]
    const Tensor targets = in[1].to(in[0].device()).to(DType::Int64).reshape({-1, 1});  // [N, 1], beside the logits
    const Tensor ignored = op::eq(targets, op::scalar_like(targets, static_cast<double>(ignore_index_)));
    const Tensor safe_targets = op::where(ignored, op::scalar_like(targets, 0.0), targets);
    const Tensor kept = op::sub(op::ones_like(ignored), ignored).to(logits.dtype());  // m_i, [N, 1]
    // m_i / max(M, 1): 0 for every row when all are ignored; computed on the targets' device, so a GPU
    // step never waits here for the count
    const Tensor count = op::clamp(op::sum(kept), 1.0, std::numeric_limits<double>::infinity());
    const Tensor row_weight = op::div(kept, count);                                   // m_i / M

    const Tensor lse = op::logsumexp(logits, {1}, /*keepdim=*/true);                  // [N, 1]
    const Tensor picked = op::gather(logits, 1, safe_targets);                        // z_i[t_i]
    save_for_backward({logits, lse, safe_targets, row_weight});
    return {op::sum(op::mul(op::sub(lse, picked), row_weight))};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &logits = s[0], &lse = s[1], &targets = s[2], &row_weight = s[3];
    const Tensor scale = op::mul(row_weight, grad_out[0]);                             // g · m_i / M, [N, 1]
    const Tensor softmax_part = op::mul(op::exp(op::sub(logits, lse)), scale);
    const Tensor onehot_part = op::scatter_add(logits.shape(), 1, targets, op::neg(scale));
    return {op::add(softmax_part, onehot_part).view(input_shape_), Tensor()};
  }

 private:
  int64_t ignore_index_;
  Shape input_shape_;  // logits' shape, [.., V]
};

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  SSM_CHECK(logits.defined() && targets.defined(), "cross_entropy: undefined input");
  SSM_CHECK(logits.dtype() == DType::Float32 || logits.dtype() == DType::Float64,
            "cross_entropy: logits must be float32 or float64, got ", logits.describe());
  SSM_CHECK(is_integer(targets.dtype()), "cross_entropy: targets must be int32 or int64, got ", targets.describe());
  SSM_CHECK(logits.dim() >= 1, "cross_entropy: logits must have a class dimension, got ", logits.describe());
  const Shape leading(logits.shape().begin(), logits.shape().end() - 1);
  SSM_CHECK(targets.shape() == leading, "cross_entropy: targets ", targets.describe(), " must have shape ",
            shape_str(leading), " for logits ", logits.describe());
  const int64_t V = logits.size(-1);
  // Host targets are range-checked here; on a GPU the gather kernel checks them (cuda/index.cu) rather
  // than this copying them back and stalling the queue.
  if (targets.device().is_cpu())
    for (int64_t t : targets.to_vector<int64_t>())
      SSM_CHECK(t == ignore_index || (t >= 0 && t < V), "cross_entropy: target ", t, " is outside [0, ", V,
                ") and is not the ignore index ", ignore_index);
  return apply(std::make_shared<CrossEntropyFunction>(ignore_index), {logits, targets})[0];
}

}  // namespace ssm::nn
