// autograd/functions_linalg.cpp — matmul and its backward.
//
// For out = a·b with a [.., M, K] and b [.., K, N]:
//   da = g·bᵀ   [.., M, N]·[.., N, K]
//   db = aᵀ·g   [.., K, M]·[.., M, N]
// The transposes are views (swapped strides); the GEMM reads them in place. Broadcast batch dims
// are summed back with sum_to. A 2-d weight shared by a batch of activations (the usual linear
// layer, a [B, L, K] input times a [K, N] weight) gets its gradient as ONE product over all B·L
// rows rather than B small ones that are then summed.
#include "autograd/functions.h"

namespace ssm {

using Grads = std::vector<Tensor>;

// Both operands have rank >= 2 here.
static Tensor matmul_batched(const Tensor& a, const Tensor& b) {
  return record("matmul", {a, b}, op::matmul(a, b), {a, b}, [](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    const Tensor& a = s[0];
    const Tensor& b = s[1];
    Grads grads(2);
    if (n.needs_input_grad(0)) grads[0] = op::sum_to(op::matmul(g, b.transpose(-1, -2)), a.shape());
    if (n.needs_input_grad(1)) {
      if (b.dim() == 2 && a.dim() > 2) {  // shared weight: fold the batch into the rows
        const int64_t K = a.size(-1), N = g.size(-1), rows = numel(Shape(a.shape().begin(), a.shape().end() - 1));
        grads[1] = op::matmul(a.reshape({rows, K}).transpose(0, 1), g.reshape({rows, N}));
      } else {
        grads[1] = op::sum_to(op::matmul(a.transpose(-1, -2), g), b.shape());
      }
    }
    return grads;
  });
}

// NumPy's rules for 1-d operands: a vector on the left is a row, on the right a column, and the
// added dimension is removed from the result.
Tensor matmul(const Tensor& a, const Tensor& b) {
  SSM_CHECK(a.defined() && b.defined(), "matmul: got an undefined tensor");
  SSM_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least one dimension, got ", a.describe(),
            " and ", b.describe());
  const Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  Tensor out = matmul_batched(a2, b2);
  if (b.dim() == 1) out = squeeze(out, -1);
  if (a.dim() == 1) out = squeeze(out, a2.dim() == 2 && b.dim() == 1 ? 0 : -2);
  return out;
}

}  // namespace ssm
