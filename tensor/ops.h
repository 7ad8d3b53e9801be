// tensor/ops.h — the raw tensor ops: validate, allocate the output, call the device's backend.
//
// "Raw" means no autograd: these compute values only. autograd/functions.h wraps each one that is
// differentiable into a function of the same name in namespace ssm that also records the graph.
// Every op checks its arguments and throws ssm::Error naming the op and the offending
// shapes/dtypes/devices. Binary ops need equal dtypes (no silent promotion) and broadcast like NumPy.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace ssm::op {

// ---- elementwise, binary (broadcasting) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
// comparisons give 1 or 0 in the inputs' dtype
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor binary(BinaryOp kind, const Tensor& a, const Tensor& b);
// with a scalar (converted to a's dtype)
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor scalar_like(const Tensor& like, double value);  // rank-0 tensor of like's dtype and device

// ---- in place: a = a (op) b, b broadcast to a's shape ----
void add_(const Tensor& a, const Tensor& b);
void binary_(BinaryOp kind, const Tensor& a, const Tensor& b);

// ---- elementwise, unary ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);       // x * sigmoid(x)
Tensor softplus(const Tensor& x);   // log(1 + e^x), computed without overflow
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor floor(const Tensor& x);
Tensor clamp(const Tensor& x, double min, double max);
Tensor pow(const Tensor& x, double exponent);
Tensor unary(UnaryOp kind, const Tensor& x, double a = 0, double b = 0);

// ---- selection ----
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // broadcasting; cond != 0 picks a
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- reductions over a set of dims (empty list = all dims) ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor norm(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);  // L2
Tensor reduce(ReduceOp kind, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
// Sum a broadcast result back down to `shape` (the adjoint of broadcasting; used by every backward).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- scans ----
Tensor cumsum(const Tensor& x, int64_t dim, bool reverse = false);  // reverse: suffix sums Σ_{j≥i}

// ---- linear algebra ----
// matmul: [.., M, K] x [.., K, N] -> [.., M, N] with broadcast batch dims; 1-d operands as in NumPy.
Tensor matmul(const Tensor& a, const Tensor& b);
// The same with the product in out_dtype: the operands' own dtype, or float32 from bfloat16 operands on a GPU
// (float32 accumulation either way: the bf16 GEMM's sums are not rounded to bfloat16 at the end).
Tensor matmul(const Tensor& a, const Tensor& b, DType out_dtype);

// ---- indexing (index: int32 or int64) ----
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // index is 1-d
Tensor embedding(const Tensor& weight, const Tensor& ids);  // weight [V, D], ids any shape -> [..ids, D]
// out = zeros(shape) with src[.., i, ..] added at out[.., index[i], ..]
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);

// ---- joining and splitting ----
// The parts joined along dim, in `dtype` when given (each part converted as it is copied, one pass), else theirs.
Tensor cat(const std::vector<Tensor>& parts, int64_t dim, std::optional<DType> dtype = std::nullopt);
Tensor stack(const std::vector<Tensor>& parts, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);  // views

// ---- copies ----
Tensor zeros_like(const Tensor& x);
Tensor ones_like(const Tensor& x);

}  // namespace ssm::op
