// autograd/functions.h — the differentiable ops: what models are written with.
//
// Each function computes its value with the raw op of the same name (tensor/ops.h) and, when an
// input requires grad, records a node whose backward is written right beside it in the .cpp:
//   functions_elementwise.cpp  arithmetic, unary math, where, casts
//   functions_reduce.cpp       sum, mean, max/min, logsumexp, norm, cumsum, (log_)softmax
//   functions_shape.cpp        views (reshape, permute, narrow, expand, ...), cat/stack/split
//   functions_index.cpp        index_select, embedding, gather, scatter_add
//   functions_linalg.cpp       matmul
// Every one of them is checked against central finite differences in tests/test_gradcheck_*.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "tensor/ops.h"

namespace ssm {

// ---- arithmetic (broadcasting) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // ties split the gradient evenly
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);      // a > 0 where b's gradient is needed
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor pow(const Tensor& x, double exponent);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, double b) { return mul(a, 1.0 / b); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
inline Tensor operator+(double a, const Tensor& b) { return add(b, a); }

// ---- unary math ----
Tensor neg(const Tensor& x);
inline Tensor operator-(const Tensor& x) { return neg(x); }
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor abs(const Tensor& x);      // gradient 0 at 0
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor clamp(const Tensor& x, double min, double max);  // gradient 1 inside [min, max], 0 outside

// ---- selection and casts ----
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond is not differentiated
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor to_dtype(const Tensor& x, DType dtype);

// ---- reductions (empty dims = all) ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);  // ties share
Tensor min(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor norm(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);  // gradient 0 at 0
Tensor cumsum(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor softmax(const Tensor& x, int64_t dim);

// ---- shapes and views (the result shares storage with x where the raw view does) ----
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x);
Tensor permute(const Tensor& x, const std::vector<int64_t>& order);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);
Tensor cat(const std::vector<Tensor>& parts, int64_t dim);
Tensor stack(const std::vector<Tensor>& parts, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);

// ---- indexing (indices are not differentiated) ----
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor embedding(const Tensor& weight, const Tensor& ids);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);

// ---- linear algebra ----
Tensor matmul(const Tensor& a, const Tensor& b);
// a·b with a and b (float32) rounded to bfloat16, summed in float32, the product float32; backward, the incoming
// gradient is rounded to bfloat16 too and da, db come out float32 (autograd/autocast.h: the layers' matmuls
// under autocast).
Tensor bf16_matmul(const Tensor& a, const Tensor& b);
// split(matmul(a, b), sizes, -1) — or with bf16, split(bf16_matmul(a, b), sizes, -1) — for a weight b [K, N], as
// one node whose backward joins the parts' gradients straight into the GEMMs' operand (a Linear layer whose
// output is read in parts: the Mamba blocks' in_proj).
std::vector<Tensor> matmul_parts(const Tensor& a, const Tensor& b, const std::vector<int64_t>& sizes, bool bf16);

}  // namespace ssm
