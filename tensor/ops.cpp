// tensor/ops.cpp — argument checks, output allocation and backend dispatch for the raw ops.
// The arithmetic itself lives in the backends (tensor/cpu/ for the host).
#include "tensor/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace ssm::op {
namespace {

Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

void check_defined(const Tensor& t, const char* name) {
  SSM_CHECK(t.defined(), name, ": got an undefined tensor");
}

void check_same_device(const Tensor& a, const Tensor& b, const char* name) {
  SSM_CHECK(a.device() == b.device(), name, ": tensors on different devices: ", a.describe(), " and ", b.describe());
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* name) {
  SSM_CHECK(a.dtype() == b.dtype(), name, ": dtypes differ: ", a.describe(), " and ", b.describe(),
            " (convert one with .to(dtype))");
}

void check_index(const Tensor& index, const char* name) {
  SSM_CHECK(is_integer(index.dtype()), name, ": index must be int32 or int64, got ", index.describe());
}

// Every entry of `index` must lie in [0, size); a data-dependent check, done here for host tensors. A
// device checks in its kernels and reports at the next wait (cuda/index.cu): copying the indices back
// here would stall the GPU's queue at every embedding lookup.
void check_index_range(const Tensor& index, int64_t size, const char* name) {
  if (!index.device().is_cpu()) return;
  for (int64_t i : index.to_vector<int64_t>())
    SSM_CHECK(i >= 0 && i < size, name, ": index ", i, " is out of range for a dimension of size ", size);
}

const char* binary_name(BinaryOp kind) {
  switch (kind) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
  }
  return "binary";
}

const char* unary_name(UnaryOp kind) {
  static const char* names[] = {"neg", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "tanh", "sigmoid", "silu",
                                "softplus", "sin", "cos", "abs", "sign", "square", "reciprocal", "relu", "floor", "clamp", "pow"};
  return names[static_cast<int>(kind)];
}

// The sorted, de-duplicated, wrapped list of dims to reduce (all dims when `dims` is empty).
std::vector<int64_t> reduced_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* name) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    out.resize(x.dim());
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, x.dim(), name));
  std::sort(out.begin(), out.end());
  SSM_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), name, ": a dimension is listed twice");
  return out;
}

Shape keepdim_shape(const Shape& shape, const std::vector<int64_t>& dims) {
  Shape out = shape;
  for (int64_t d : dims) out[d] = 1;
  return out;
}

Tensor drop_reduced(const Tensor& keep, const std::vector<int64_t>& dims) {
  Shape out;
  for (int64_t d = 0; d < keep.dim(); ++d)
    if (!std::binary_search(dims.begin(), dims.end(), d)) out.push_back(keep.shape()[d]);
  return keep.view(out);
}

}  // namespace

// ---------------------------------------------------------------- binary

Tensor binary(BinaryOp kind, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(kind);
  check_defined(a, name);
  check_defined(b, name);
  check_same_device(a, b, name);
  check_same_dtype(a, b, name);
  SSM_CHECK(kind != BinaryOp::Div || is_floating(a.dtype()), "div: integer division is not supported, got ",
            a.describe(), " (convert to float first)");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  backend_of(a).binary(kind, a.expand(shape), b.expand(shape), out);
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Minimum, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Pow, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Ge, a, b); }

Tensor scalar_like(const Tensor& like, double value) { return Tensor::scalar(value, like.dtype(), like.device()); }
Tensor add(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }

void binary_(BinaryOp kind, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(kind);
  check_defined(a, name);
  check_defined(b, name);
  check_same_device(a, b, name);
  check_same_dtype(a, b, name);
  SSM_CHECK(broadcast_shapes(a.shape(), b.shape(), name) == a.shape(), name, "_: cannot broadcast ", b.describe(),
            " into ", a.describe(), " in place");
  a.check_writable(name);
  // b reading memory that a overwrites (other than element for element) must be read from a copy
  const bool overlaps = b.impl_ptr()->storage == a.impl_ptr()->storage && (b.offset() != a.offset() || b.strides() != a.strides());
  backend_of(a).binary(kind, a, (overlaps ? b.clone() : b).expand(a.shape()), a);
  a.impl_ptr()->storage->bump_version();
}

void add_(const Tensor& a, const Tensor& b) { binary_(BinaryOp::Add, a, b); }

// ---------------------------------------------------------------- unary

Tensor unary(UnaryOp kind, const Tensor& x, double a, double b) {
  const char* name = unary_name(kind);
  check_defined(x, name);
  const bool integer_ok = kind == UnaryOp::Neg || kind == UnaryOp::Abs || kind == UnaryOp::Sign ||
                          kind == UnaryOp::Square || kind == UnaryOp::Relu || kind == UnaryOp::Clamp;
  SSM_CHECK(integer_ok || x.dtype() == DType::Float32 || x.dtype() == DType::Float64, name,
            ": needs float32 or float64, got ", x.describe());
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_of(x).unary(kind, x, out, a, b);
  return out;
}

Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::Log, x); }
Tensor log1p(const Tensor& x) { return unary(UnaryOp::Log1p, x); }
Tensor expm1(const Tensor& x) { return unary(UnaryOp::Expm1, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::Rsqrt, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, x); }
Tensor silu(const Tensor& x) { return unary(UnaryOp::Silu, x); }
Tensor softplus(const Tensor& x) { return unary(UnaryOp::Softplus, x); }
Tensor sin(const Tensor& x) { return unary(UnaryOp::Sin, x); }
Tensor cos(const Tensor& x) { return unary(UnaryOp::Cos, x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::Abs, x); }
Tensor sign(const Tensor& x) { return unary(UnaryOp::Sign, x); }
Tensor square(const Tensor& x) { return unary(UnaryOp::Square, x); }
Tensor reciprocal(const Tensor& x) { return unary(UnaryOp::Reciprocal, x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, x); }
Tensor floor(const Tensor& x) { return unary(UnaryOp::Floor, x); }
Tensor clamp(const Tensor& x, double min, double max) {
  SSM_CHECK(min <= max, "clamp: min ", min, " > max ", max);
  return unary(UnaryOp::Clamp, x, min, max);
}
Tensor pow(const Tensor& x, double exponent) { return unary(UnaryOp::PowScalar, x, exponent); }

// ---------------------------------------------------------------- selection

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where");
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  check_same_dtype(a, b, "where");
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  backend_of(a).where(cond.expand(shape), a.expand(shape), b.expand(shape), out);
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, scalar_like(x, value), x);
}

// ---------------------------------------------------------------- reductions

Tensor reduce(ReduceOp kind, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const char* name = kind == ReduceOp::Sum ? "sum" : kind == ReduceOp::Max ? "max" : "min";
  check_defined(x, name);
  const auto rdims = reduced_dims(x, dims, name);
  if (kind != ReduceOp::Sum)
    for (int64_t d : rdims)
      SSM_CHECK(x.shape()[d] > 0, name, ": cannot reduce over the empty dimension ", d, " of ", x.describe());
  Tensor out = Tensor::empty(keepdim_shape(x.shape(), rdims), x.dtype(), x.device());
  backend_of(x).reduce(kind, x, out);
  return keepdim ? out : drop_reduced(out, rdims);
}

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return reduce(ReduceOp::Sum, x, dims, keepdim); }
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return reduce(ReduceOp::Max, x, dims, keepdim); }
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return reduce(ReduceOp::Min, x, dims, keepdim); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined(x, "mean");
  SSM_CHECK(is_floating(x.dtype()), "mean: needs a floating dtype, got ", x.describe());
  int64_t count = 1;
  for (int64_t d : reduced_dims(x, dims, "mean")) count *= x.shape()[d];
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(count));
}

// logsumexp(x) = m + log(sum(exp(x - m))) with m = max(x): no overflow, exact for a single element.
// A max of -inf (all entries -inf) or +inf is replaced by 0 so the result is -inf / +inf rather than NaN.
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined(x, "logsumexp");
  SSM_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, "logsumexp: needs float32 or float64, got ",
            x.describe());
  const auto rdims = reduced_dims(x, dims, "logsumexp");
  Tensor m = max(x, rdims, /*keepdim=*/true);
  m = where(eq(abs(m), scalar_like(m, std::numeric_limits<double>::infinity())), scalar_like(m, 0.0), m);
  Tensor out = add(log(sum(exp(sub(x, m)), rdims, /*keepdim=*/true)), m);
  return keepdim ? out : drop_reduced(out, rdims);
}

Tensor norm(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sqrt(sum(square(x), dims, keepdim));
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  SSM_CHECK(broadcast_shapes(shape, x.shape(), "sum_to") == x.shape(), "sum_to: ", shape_str(shape),
            " does not broadcast to ", x.describe());
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && x.shape()[d] != 1)) dims.push_back(d);
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, /*keepdim=*/true).reshape(shape);
}

// ---------------------------------------------------------------- scans

Tensor cumsum(const Tensor& x, int64_t dim, bool reverse) {
  check_defined(x, "cumsum");
  dim = wrap_dim(dim, x.dim(), "cumsum");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_of(x).cumsum(x, dim, reverse, out);
  return out;
}

// ---------------------------------------------------------------- matmul

Tensor matmul(const Tensor& a, const Tensor& b) { return matmul(a, b, a.defined() ? a.dtype() : DType::Float32); }

Tensor matmul(const Tensor& a_in, const Tensor& b_in, DType out_dtype) {
  check_defined(a_in, "matmul");
  check_defined(b_in, "matmul");
  check_same_device(a_in, b_in, "matmul");
  check_same_dtype(a_in, b_in, "matmul");
  // bfloat16 products (float32 accumulation) are the GPU's mixed-precision matmuls; the CPU computes in float32/64.
  const bool bf16_on_gpu = a_in.dtype() == DType::BFloat16 && !a_in.device().is_cpu();
  SSM_CHECK(a_in.dtype() == DType::Float32 || a_in.dtype() == DType::Float64 || bf16_on_gpu,
            "matmul: needs float32 or float64 (or bfloat16 on a GPU), got ", a_in.describe());
  SSM_CHECK(out_dtype == a_in.dtype() || (bf16_on_gpu && out_dtype == DType::Float32), "matmul: a ",
            dtype_name(out_dtype), " product of ", dtype_name(a_in.dtype()), " operands is not supported (only "
            "bfloat16 operands on a GPU may give a float32 product)");
  SSM_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: operands must have at least one dimension, got ",
            a_in.describe(), " and ", b_in.describe());
  // NumPy rules for vectors: a 1-d left operand is a row [1, K], a 1-d right operand a column [K, 1].
  const Tensor a = a_in.dim() == 1 ? a_in.unsqueeze(0) : a_in;
  const Tensor b = b_in.dim() == 1 ? b_in.unsqueeze(1) : b_in;
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  SSM_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: ", a_in.describe(), " x ", b_in.describe(), " (", K,
            " vs ", b.size(-2), ")");
  if (b.dim() == 2 && a.dim() > 2) {  // activations times a weight: one tall product instead of a batch of small ones
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    const int64_t rows = numel(out_shape);       // explicit, not -1: K may be 0
    if (b_in.dim() > 1) out_shape.push_back(N);  // a 1-d right operand drops its column dim, as in NumPy
    return matmul(a.reshape({rows, K}), b, out_dtype).view(out_shape);
  }
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, "matmul");
  const int64_t batch_count = numel(batch);

  // Flatten the batch dims into one; a broadcast operand keeps stride 0 there when it can be viewed so.
  auto as_batched = [&](const Tensor& t, int64_t rows, int64_t cols) {
    Shape full = batch;
    full.push_back(rows);
    full.push_back(cols);
    const Tensor e = t.expand(full);
    Strides batch_strides(e.strides().begin(), e.strides().end() - 2);
    const bool all_broadcast = std::all_of(batch_strides.begin(), batch_strides.end(), [](int64_t s) { return s == 0; });
    if (all_broadcast)
      return e.as_strided({batch_count, rows, cols}, {0, e.strides()[e.dim() - 2], e.strides()[e.dim() - 1]}, e.offset());
    // a view (keeping transposed row/column strides) when the batch dims merge, else a contiguous copy
    return e.reshape({batch_count, rows, cols});
  };
  const Tensor a3 = as_batched(a, M, K), b3 = as_batched(b, K, N);
  Tensor out = Tensor::empty({batch_count, M, N}, out_dtype, a.device());
  backend_of(a).matmul(a3, b3, out);

  Shape out_shape = batch;
  if (a_in.dim() > 1) out_shape.push_back(M);
  if (b_in.dim() > 1) out_shape.push_back(N);
  return out.view(out_shape);
}

// ---------------------------------------------------------------- indexing

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "index_select");
  check_index(index, "index_select");
  check_same_device(x, index, "index_select");
  SSM_CHECK(index.dim() == 1, "index_select: index must be 1-d, got ", index.describe());
  dim = wrap_dim(dim, x.dim(), "index_select");
  check_index_range(index, x.shape()[dim], "index_select");
  Shape shape = x.shape();
  shape[dim] = index.numel();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  backend_of(x).index_select(x, dim, index.contiguous(), out);
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check_defined(weight, "embedding");
  check_defined(ids, "embedding");
  SSM_CHECK(weight.dim() == 2, "embedding: weight must be [vocab, dim], got ", weight.describe());
  check_index(ids, "embedding");  // checked here (not left to index_select) so errors name embedding
  check_same_device(weight, ids, "embedding");
  check_index_range(ids, weight.size(0), "embedding");
  Shape shape = ids.shape();
  shape.push_back(weight.size(1));
  Tensor out = Tensor::empty({ids.numel(), weight.size(1)}, weight.dtype(), weight.device());
  backend_of(weight).index_select(weight, 0, ids.reshape({ids.numel()}).contiguous(), out);
  return out.view(shape);
}

Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  check_defined(src, "index_add");
  check_index(index, "index_add");
  check_same_device(src, index, "index_add");
  SSM_CHECK(index.dim() == 1, "index_add: index must be 1-d, got ", index.describe());
  dim = wrap_dim(dim, static_cast<int64_t>(shape.size()), "index_add");
  Shape expected = shape;
  expected[dim] = index.numel();
  SSM_CHECK(src.shape() == expected, "index_add: source ", src.describe(), " should have shape ", shape_str(expected));
  check_index_range(index, shape[dim], "index_add");
  Tensor out = Tensor::zeros(shape, src.dtype(), src.device());
  backend_of(src).index_add(out, dim, index.contiguous(), src);
  return out;
}

static void check_gather_shapes(const Shape& x_shape, int64_t dim, const Tensor& index, const char* name) {
  SSM_CHECK(index.dim() == static_cast<int64_t>(x_shape.size()), name, ": index ", index.describe(),
            " must have the rank of ", shape_str(x_shape));
  for (int64_t d = 0; d < index.dim(); ++d)
    SSM_CHECK(d == dim || index.shape()[d] == x_shape[d], name, ": index ", index.describe(), " and ",
              shape_str(x_shape), " differ in dimension ", d);
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "gather");
  check_index(index, "gather");
  check_same_device(x, index, "gather");
  dim = wrap_dim(dim, x.dim(), "gather");
  check_gather_shapes(x.shape(), dim, index, "gather");
  check_index_range(index, x.shape()[dim], "gather");
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  backend_of(x).gather(x, dim, index.contiguous(), out);
  return out;
}

Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  check_defined(src, "scatter_add");
  check_index(index, "scatter_add");
  check_same_device(src, index, "scatter_add");
  dim = wrap_dim(dim, static_cast<int64_t>(shape.size()), "scatter_add");
  check_gather_shapes(shape, dim, index, "scatter_add");
  SSM_CHECK(src.shape() == index.shape(), "scatter_add: source ", src.describe(), " and index ", index.describe(),
            " must have the same shape");
  check_index_range(index, shape[dim], "scatter_add");
  Tensor out = Tensor::zeros(shape, src.dtype(), src.device());
  backend_of(src).scatter_add(out, dim, index.contiguous(), src);
  return out;
}

// ---------------------------------------------------------------- joining and splitting

Tensor cat(const std::vector<Tensor>& parts, int64_t dim, std::optional<DType> dtype) {
  SSM_CHECK(!parts.empty(), "cat: no tensors given");
  const Tensor& first = parts[0];
  check_defined(first, "cat");
  dim = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  shape[dim] = 0;
  for (const Tensor& p : parts) {
    check_defined(p, "cat");
    check_same_device(first, p, "cat");
    check_same_dtype(first, p, "cat");
    SSM_CHECK(p.dim() == first.dim(), "cat: ", p.describe(), " and ", first.describe(), " differ in rank");
    for (int64_t d = 0; d < p.dim(); ++d)
      SSM_CHECK(d == dim || p.shape()[d] == first.shape()[d], "cat: ", p.describe(), " and ", first.describe(),
                " differ outside dimension ", dim);
    shape[dim] += p.shape()[dim];
  }
  Tensor out = Tensor::empty(shape, dtype.value_or(first.dtype()), first.device());
  int64_t start = 0;
  for (const Tensor& p : parts) {
    backend_of(p).copy(p, out.narrow(dim, start, p.shape()[dim]));
    start += p.shape()[dim];
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& parts, int64_t dim) {
  SSM_CHECK(!parts.empty(), "stack: no tensors given");
  dim = wrap_dim(dim, parts[0].dim() + 1, "stack");
  std::vector<Tensor> unsqueezed;
  for (const Tensor& p : parts) {
    SSM_CHECK(p.shape() == parts[0].shape(), "stack: shapes differ: ", p.describe(), " and ", parts[0].describe());
    unsqueezed.push_back(p.unsqueeze(dim));
  }
  return cat(unsqueezed, dim);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined(x, "split");
  dim = wrap_dim(dim, x.dim(), "split");
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  SSM_CHECK(total == x.shape()[dim], "split: sizes add up to ", total, " but dimension ", dim, " of ", x.describe(),
            " has ", x.shape()[dim]);
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t size : sizes) {
    parts.push_back(x.narrow(dim, start, size));
    start += size;
  }
  return parts;
}

Tensor zeros_like(const Tensor& x) { return Tensor::zeros(x.shape(), x.dtype(), x.device()); }
Tensor ones_like(const Tensor& x) { return Tensor::ones(x.shape(), x.dtype(), x.device()); }

}  // namespace ssm::op
