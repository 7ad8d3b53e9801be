// nn/cross_entropy.cpp — softmax cross-entropy with loss masking, as one autograd node.
//
// For row i with target t_i (rows with t_i = ignore_index are masked out, m_i = 0, else 1):
//   loss = (1/M) Σ_i m_i (logsumexp(z_i) - z_i[t_i]),   M = Σ_i m_i
// logsumexp subtracts the row max first, so large logits never overflow.
// Backward (g = d(total)/d(loss), a scalar):
//   dz_i = g · m_i / M · (softmax(z_i) - onehot(t_i))
// Saved: the logits, the per-row logsumexp, the targets, m_i and max(M, 1); the softmax is recomputed
// from them rather than stored (it is as large as the logits).
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

// Per row i of z [N, V] with target t_i: kept_i = 0 where t_i is the ignore index (lse_i = row_loss_i = 0
// too), else kept_i = 1, lse_i = logsumexp(z_i) (the max first, then the sum of e^{z − max}) and
// row_loss_i = lse_i − z_i[t_i]. Targets are in range (checked by cross_entropy()).
template <class T>
void ce_rows_forward(int64_t N, int64_t V, const T* z, const int64_t* target, int64_t ignore_index, T* lse,
                     T* row_loss, T* kept) {
  cpu::parallel_for(N, N * V * 4, [&](int64_t i) {
    lse[i] = row_loss[i] = kept[i] = T(0);
    if (target[i] == ignore_index) return;
    const T* zi = z + i * V;
    T max = zi[0];
#pragma omp simd reduction(max : max)  // the reductions vectorise only when allowed to; lane order is fixed
    for (int64_t v = 1; v < V; ++v) max = std::max(max, zi[v]);
    T sum = 0;  // every term is in (0, 1] and one of them is 1: no cancellation, float sums are enough
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < V; ++v) sum += exp_of(zi[v] - max);
    lse[i] = max + std::log(sum);
    row_loss[i] = lse[i] - zi[target[i]];
    kept[i] = T(1);
  });
}

// dz_i = g · kept_i / count · (softmax(z_i) − onehot(t_i)), count = max(M, 1); ignored rows get exact zeros.
template <class T>
void ce_rows_backward(int64_t N, int64_t V, const T* z, const int64_t* target, const T* lse, const T* kept,
                      const T* count, const T* g, T* dz) {
  const T per_row = *g / *count;
  cpu::parallel_for(N, N * V * 4, [&](int64_t i) {
    const T scale = per_row * kept[i];
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

  // Per row (CPU loop or GPU kernel): lse, the loss term and m_i; then loss = Σ_i row_loss_i / max(M, 1)
  // as two sums on the logits' device, so a GPU step never waits here for the count.
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    input_shape_ = in[0].shape();
    const Tensor z = in[0].reshape({-1, in[0].size(-1)}).contiguous();  // [N, V]
    const Tensor targets = in[1].to(z.device()).to(DType::Int64).reshape({-1}).contiguous();
    const int64_t N = z.size(0), V = z.size(1);
    const Tensor lse = Tensor::empty({N}, z.dtype(), z.device()), row_loss = Tensor::empty({N}, z.dtype(), z.device()),
                 kept = Tensor::empty({N}, z.dtype(), z.device());
    dispatch_float(z.dtype(), "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      if (z.device().is_cpu()) {
        ce_rows_forward<T>(N, V, z.data<T>(), targets.data<int64_t>(), ignore_index_, lse.data<T>(),
                           row_loss.data<T>(), kept.data<T>());
        return;
      }
#if SSM_WITH_CUDA  // the GPU twin (cuda/cross_entropy.cu); without CUDA there are no GPU tensors
      cuda::cross_entropy_forward<T>(N, V, z.data<T>(), targets.data<int64_t>(), ignore_index_, lse.data<T>(),
                                     row_loss.data<T>(), kept.data<T>());
#endif
    });
    const Tensor count = op::clamp(op::sum(kept), 1.0, std::numeric_limits<double>::infinity());  // max(M, 1)
    save_for_backward({z, lse, targets, kept, count});
    return {op::div(op::sum(row_loss), count)};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto s = saved();
    const Tensor &z = s[0], &lse = s[1], &targets = s[2], &kept = s[3], &count = s[4];
    const Tensor g = grad_out[0].to(z.dtype()).contiguous();  // where the loss is: read by the loop or kernel
    Tensor dz = Tensor::empty(z.shape(), z.dtype(), z.device());
    dispatch_float(z.dtype(), "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      const int64_t N = z.size(0), V = z.size(1);
      if (z.device().is_cpu()) {
        ce_rows_backward<T>(N, V, z.data<T>(), targets.data<int64_t>(), lse.data<T>(), kept.data<T>(),
                            count.data<T>(), g.data<T>(), dz.data<T>());
        return;
      }
#if SSM_WITH_CUDA
      cuda::cross_entropy_backward<T>(N, V, z.data<T>(), targets.data<int64_t>(), lse.data<T>(), kept.data<T>(),
                                      count.data<T>(), g.data<T>(), dz.data<T>());
#endif
    });
    return {dz.view(input_shape_), Tensor()};
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
  // For the CPU loops the targets are range-checked here; a GPU kernel checks them as it reads them
  // (cuda/index_fault.cuh) rather than this copying them back and stalling the queue.
  if (logits.device().is_cpu())
    for (int64_t t : targets.to_vector<int64_t>())
      SSM_CHECK(t == ignore_index || (t >= 0 && t < V), "cross_entropy: target ", t, " is outside [0, ", V,
                ") and is not the ignore index ", ignore_index);
  return apply(std::make_shared<CrossEntropyFunction>(ignore_index), {logits, targets})[0];
}

}  // namespace ssm::nn
