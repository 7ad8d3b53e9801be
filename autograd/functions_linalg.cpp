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

// out = a·b for a weight b [K, N], handed out as out's parts along its last dimension (views), as one node.
// backward copies the parts' gradients once, straight into g in the dtype the GEMMs take (bfloat16 with
// bf16 = true), then runs matmul_grads. A split node behind a product node would assemble a float32 g that
// the product's backward then rounds in a second full pass: the Mamba blocks split in_proj's output eight
// ways, and at the 130M model's 8 × 2048 tokens each of the two passes took ~0.25 ms a layer (ncu).
class MatmulPartsFunction final : public Function {
 public:
  MatmulPartsFunction(std::vector<int64_t> sizes, bool bf16)
      : Function(bf16 ? "bf16_matmul_parts" : "matmul_parts"), sizes_(std::move(sizes)), bf16_(bf16) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor a = bf16_ ? in[0].to(DType::BFloat16) : in[0], b = bf16_ ? in[1].to(DType::BFloat16) : in[1];
    save_for_backward({a, b});  // the rounded copies under bf16, as bf16_matmul keeps
    const Tensor out = product()(a, b);
    g_dtype_ = bf16_ ? DType::BFloat16 : out.dtype();
    return op::split(out, sizes_, -1);
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_parts) override {
    const auto s = saved();
    return matmul_grads(op::cat(grad_parts, -1, g_dtype_), s[0], s[1], *this, product());
  }

 private:
  Product product() const { return bf16_ ? bf16_product : exact_product; }
  std::vector<int64_t> sizes_;
  bool bf16_;
  DType g_dtype_ = DType::Float32;
};

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

std::vector<Tensor> matmul_parts(const Tensor& a, const Tensor& b, const std::vector<int64_t>& sizes, bool bf16) {
  SSM_CHECK(a.defined() && b.defined() && a.dim() >= 2 && b.dim() == 2, "matmul_parts: needs a [.., M, K] input and "
            "a [K, N] weight, got ", a.describe(), " and ", b.describe());
  SSM_CHECK(!bf16 || (a.dtype() == DType::Float32 && b.dtype() == DType::Float32),
            "matmul_parts: bfloat16 products need float32 operands, got ", a.describe(), " and ", b.describe());
  int64_t total = 0;
  for (const int64_t size : sizes) {
    SSM_CHECK(size >= 0, "matmul_parts: negative part size ", size);
    total += size;
  }
  SSM_CHECK(total == b.size(1), "matmul_parts: the parts' sizes add up to ", total, ", not the product's ",
            b.size(1), " columns");
  return apply(std::make_shared<MatmulPartsFunction>(sizes, bf16), {a, b});
}

}  // namespace ssm
