// nn/cross_entropy.cpp — softmax cross-entropy with loss masking, as one autograd node.
//
// For row i with target t_i (rows with t_i = ignore_index are masked out, m_i = 0, else 1):
//   loss = (1/M) Σ_i m_i (logsumexp(z_i) - z_i[t_i]),   M = Σ_i m_i
// logsumexp subtracts the row max first, so large logits never overflow.
// Backward (g = d(total)/d(loss), a scalar):
//   dz_i = g · m_i / M · (softmax(z_i) - onehot(t_i))
// Saved: the logits, the per-row logsumexp, the (safe) targets and the row weights m_i / M; the
// softmax is recomputed from them rather than stored (it is as large as the logits).
//
// Each direction is one pass over the rows: on the CPU the loops below (ce_rows_forward /
// ce_rows_backward), on a GPU their twin kernels (cuda/cross_entropy.cu). As tensor ops the loss was ~5
// passes over the [N, V] logits forward and ~6 backward (the head's logits are the largest activation
// of a small model); the tests hold both forms to that composition of ops.
#include "nn/functional.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/cpu/parallel.h"
#include "tensor/cpu/sigmoid.h"
#if SSM_WITH_CUDA
#include "cuda/nn_fused.h"
#endif

namespace ssm::nn {
namespace {

// e^x: float without a library call (tensor/cpu/sigmoid.h, ~1 ulp; x ≤ 0 here, below −87 it reads e^−87,
// nothing beside the row's largest term), double with std::exp (its gradient checks want every digit).
inline float exp_of(float x) { return cpu::exp_clamped(x); }
inline double exp_of(double x) { return std::exp(x); }

// Per row i of z [N, V]: lse_i = logsumexp(z_i) (the max first, then the sum of e^{z − max});
// rows with weight 0 (ignored) are skipped. Returns Σ_i weight_i (lse_i − z_i[t_i]), summed in row order.
template <class T>
double ce_rows_forward(int64_t N, int64_t V, const T* z, const int64_t* target, const T* weight, T* lse) {
  std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
  cpu::parallel_for(N, N * V * 4, [&](int64_t i) {
    lse[i] = T(0);
    if (weight[i] == T(0)) return;
    const T* zi = z + i * V;
    T max = zi[0];
#pragma omp simd reduction(max : max)  // the reductions vectorise only when allowed to; lane order is fixed
    for (int64_t v = 1; v < V; ++v) max = std::max(max, zi[v]);
    T sum = 0;  // every term is in (0, 1] and one of them is 1: no cancellation, float sums are enough
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < V; ++v) sum += exp_of(zi[v] - max);
    lse[i] = max + std::log(sum);
    row_loss[i] = double(weight[i]) * double(lse[i] - zi[target[i]]);
  });
  double total = 0;
  for (const double l : row_loss) total += l;
  return total;
}

// dz_i = g · weight_i · (softmax(z_i) − onehot(t_i)); ignored rows (weight 0) get exact zeros.
template <class T>
void ce_rows_backward(int64_t N, int64_t V, const T* z, const int64_t* target, const T* weight, const T* lse, T g,
                      T* dz) {
  cpu::parallel_for(N, N * V * 4, [&](int64_t i) {
    const T scale = g * weight[i];
    T* dzi = dz + i * V;
    if (scale == T(0)) {
      std::fill(dzi, dzi + V, T(0));
      return;
    }
    const T* zi = z + i * V;
    for (int64_t v = 0; v < V; ++v) dzi[v] = exp_of(zi[v] - lse[i]) * scale;
    dzi[target[i]] -= scale;
  });
}

class CrossEntropyFunction final : public Function {
 public:
  explicit CrossEntropyFunction(int64_t ignore_index) : Function("cross_entropy"), ignore_index_(ignore_index) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    input_shape_ = in[0].shape();
    const int64_t V = in[0].size(-1);
    const Tensor logits = in[0].reshape({-1, V});                 // [N, V]
    if (!logits.device().is_cpu()) return forward_gpu(logits.contiguous(), in[1]);
    const Tensor targets = in[1].to(Device::cpu()).to(DType::Int64).reshape({-1, 1});  // [N, 1]
    const Tensor ignored = op::eq(targets, op::scalar_like(targets, static_cast<double>(ignore_index_)));
    const Tensor safe_targets = op::where(ignored, op::scalar_like(targets, 0.0), targets);
    const Tensor kept = op::sub(op::ones_like(ignored), ignored).to(logits.dtype());  // m_i, [N, 1]
    // m_i / max(M, 1): 0 for every row when all are ignored
    const Tensor count = op::clamp(op::sum(kept), 1.0, std::numeric_limits<double>::infinity());
    const Tensor row_weight = op::div(kept, count);                                   // m_i / M

    const Tensor z = logits.contiguous(), safe = safe_targets.contiguous(), weight = row_weight.contiguous();
    Tensor lse = Tensor::empty({z.size(0), 1}, z.dtype());
    double total = 0;
    dispatch_float(z.dtype(), "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      total = ce_rows_forward<T>(z.size(0), V, z.data<T>(), safe.data<int64_t>(), weight.data<T>(), lse.data<T>());
    });
    save_for_backward({z, lse, safe, weight});
    return {Tensor::full({}, total, z.dtype())};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor& logits = s[0];
    Tensor dz = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
    dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      const int64_t N = logits.size(0), V = logits.size(1);
      if (logits.device().is_cpu()) {  // saved: z, lse, targets, m_i / M
        ce_rows_backward<T>(N, V, logits.data<T>(), s[2].data<int64_t>(), s[3].data<T>(), s[1].data<T>(),
                            static_cast<T>(grad_out[0].item<double>()), dz.data<T>());
        return;
      }
#if SSM_WITH_CUDA  // saved: z, lse, targets, m_i, max(M, 1); g stays on the device
      const Tensor g = grad_out[0].to(logits.dtype()).contiguous();
      cuda::cross_entropy_backward<T>(N, V, logits.data<T>(), s[2].data<int64_t>(), s[1].data<T>(), s[3].data<T>(),
                                      s[4].data<T>(), g.data<T>(), dz.data<T>());
#endif
    });
    return {dz.view(input_shape_), Tensor()};
  }

 private:
  // The GPU form: one kernel gives each row's lse, loss term and m_i (cuda/cross_entropy.cu), then the
  // loss is Σ_i row_loss_i / max(M, 1) as two device sums — nothing here waits for the GPU.
  std::vector<Tensor> forward_gpu(const Tensor& z, const Tensor& targets_in) {
    const Tensor targets = targets_in.to(z.device()).to(DType::Int64).reshape({-1}).contiguous();
    const int64_t N = z.size(0);
    Tensor lse = Tensor::empty({N}, z.dtype(), z.device()), row_loss = Tensor::empty({N}, z.dtype(), z.device());
    Tensor kept = Tensor::empty({N}, z.dtype(), z.device());
#if SSM_WITH_CUDA
    dispatch_float(z.dtype(), "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      cuda::cross_entropy_forward<T>(N, z.size(1), z.data<T>(), targets.data<int64_t>(), ignore_index_, lse.data<T>(),
                                     row_loss.data<T>(), kept.data<T>());
    });
#endif
    const Tensor count = op::clamp(op::sum(kept), 1.0, std::numeric_limits<double>::infinity());  // max(M, 1)
    save_for_backward({z, lse, targets, kept, count});
    return {op::div(op::sum(row_loss), count)};
  }

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
