// autograd/functions_linalg.cpp — matmul and its backward, exact or through bfloat16 (autocast).
//
// For out = a·b with a [.., M, K] and b [.., K, N]:
//   da = g·bᵀ   [.., M, N]·[.., N, K]
//   db = aᵀ·g   [.., K, M]·[.., M, N]
// The transposes are views (swapped strides); the GEMM reads them in place. Broadcast batch dims
// are summed back with sum_to. A 2-d weight shared by a batch of activations (the usual linear
// layer, a [B, L, K] input times a [K, N] weight) gets its gradient as ONE product over all B·L
// rows rather than B small ones that are then summed. bf16_matmul runs the same three products on
// bfloat16 operands with float32 accumulation and float32 results.
#include "autograd/functions.h"

namespace ssm {
namespace {

using Grads = std::vector<Tensor>;
using Product = Tensor (*)(const Tensor&, const Tensor&);

Tensor exact_product(const Tensor& x, const Tensor& y) { return op::matmul(x, y); }

// bfloat16 operands, float32 accumulation and product: cuBLAS's mixed GEMM on a GPU; on the CPU (no bf16
// GEMM) the float32 product of the rounded operands, the same numbers up to the order of the sums.
Tensor bf16_product(const Tensor& x16, const Tensor& y16) {
  if (!x16.device().is_cpu()) return op::matmul(x16, y16, DType::Float32);
  return op::matmul(x16.to(DType::Float32), y16.to(DType::Float32));
}

// da and db of out = a·b (the formulas above) for the incoming gradient g, with `product` as the GEMM.
Grads matmul_grads(const Tensor& g, const Tensor& a, const Tensor& b, const Node& n, Product product) {
  Grads grads(2);
  if (n.needs_input_grad(0)) grads[0] = op::sum_to(product(g, b.transpose(-1, -2)), a.shape());
  if (n.needs_input_grad(1)) {
    if (b.dim() == 2 && a.dim() > 2) {  // shared weight: fold the batch into the rows
      const int64_t K = a.size(-1), N = g.size(-1), rows = numel(Shape(a.shape().begin(), a.shape().end() - 1));
      grads[1] = product(a.reshape({rows, K}).transpose(0, 1), g.reshape({rows, N}));
    } else {
      grads[1] = op::sum_to(product(a.transpose(-1, -2), g), b.shape());
    }
  }
  return grads;
}

// Both operands have rank >= 2 here.
Tensor matmul_batched(const Tensor& a, const Tensor& b) {
  return record("matmul", {a, b}, op::matmul(a, b), {a, b}, [](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    return matmul_grads(g, s[0], s[1], n, exact_product);
  });
}

// The same with a and b (float32) rounded to bfloat16 for the GEMMs, forward and backward: the node keeps
// the rounded copies (half the bytes of the originals), and the incoming gradient is rounded too.
Tensor bf16_matmul_batched(const Tensor& a, const Tensor& b) {
  const Tensor a16 = a.to(DType::BFloat16), b16 = b.to(DType::BFloat16);
  return record("bf16_matmul", {a, b}, bf16_product(a16, b16), {a16, b16}, [](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    return matmul_grads(g.to(DType::BFloat16), s[0], s[1], n, bf16_product);
  });
}

// NumPy's rules for 1-d operands: a vector on the left is a row, on the right a column, and the
// added dimension is removed from the result.
Tensor with_vector_rules(const Tensor& a, const Tensor& b, Tensor (*batched)(const Tensor&, const Tensor&)) {
  SSM_CHECK(a.defined() && b.defined(), "matmul: got an undefined tensor");
  SSM_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least one dimension, got ", a.describe(),
            " and ", b.describe());
  const Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  Tensor out = batched(a2, b2);
  if (b.dim() == 1) out = squeeze(out, -1);
  if (a.dim() == 1) out = squeeze(out, a2.dim() == 2 && b.dim() == 1 ? 0 : -2);
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) { return with_vector_rules(a, b, matmul_batched); }

Tensor bf16_matmul(const Tensor& a, const Tensor& b) {
  SSM_CHECK(a.defined() && b.defined() && a.dtype() == DType::Float32 && b.dtype() == DType::Float32,
            "bf16_matmul: needs float32 operands, got ", a.describe(), " and ", b.describe());
  return with_vector_rules(a, b, bf16_matmul_batched);
}

}  // namespace ssm
