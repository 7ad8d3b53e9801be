// autograd/functions_reduce.cpp — reductions and scans with their backward.
//
// A reduction's gradient is the incoming gradient g (one value per output) spread back over the
// elements that were folded into it. We first restore the reduced dims as size 1 ("keepdim"
// form), then let broadcasting do the spreading.
#include <algorithm>
#include <numeric>

#include "autograd/functions.h"

namespace ssm {

using Grads = std::vector<Tensor>;

// The wrapped, sorted dims a reduction folds (all of them when `dims` is empty).
static std::vector<int64_t> folded_dims(const Tensor& x, const std::vector<int64_t>& dims) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    out.resize(x.dim());
    std::iota(out.begin(), out.end(), 0);
  } else {
    for (int64_t d : dims) out.push_back(wrap_dim(d, x.dim(), "reduction"));
    std::sort(out.begin(), out.end());
  }
  return out;
}

// View a reduced result (or its gradient) in keepdim form: size 1 in every folded dim.
static Tensor as_keepdim(const Tensor& t, const Shape& x_shape, const std::vector<int64_t>& dims) {
  Shape shape = x_shape;
  for (int64_t d : dims) shape[d] = 1;
  return t.reshape(shape);
}

// out = Σ x:  dx = g broadcast back
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const auto folded = folded_dims(x, dims);
  return record("sum", {x}, op::sum(x, dims, keepdim), {}, [shape = x.shape(), folded](const Tensor& g, const Node&) {
    return Grads{as_keepdim(g, shape, folded).expand(shape)};
  });
}

// out = Σ x / n:  dx = g / n
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  int64_t count = 1;
  for (int64_t d : folded_dims(x, dims)) count *= x.shape()[d];
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(count));
}

// out = max x: the gradient goes to the maximal elements, shared evenly among ties.
static Tensor extremum(const char* name, ReduceOp kind, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const auto folded = folded_dims(x, dims);
  const Tensor out = op::reduce(kind, x, dims, keepdim);
  return record(name, {x}, out, {x, out}, [folded](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    const Tensor& xs = s[0];
    const Tensor hit = op::eq(xs, as_keepdim(s[1], xs.shape(), folded));  // 1 where x is the extremum
    const Tensor ties = op::sum(hit, folded, /*keepdim=*/true);
    return Grads{op::mul(hit, op::div(as_keepdim(g, xs.shape(), folded), ties))};
  });
}
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return extremum("max", ReduceOp::Max, x, dims, keepdim); }
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return extremum("min", ReduceOp::Min, x, dims, keepdim); }

// out = log Σ e^x:  dx = g · e^(x - out) = g · softmax(x)
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const auto folded = folded_dims(x, dims);
  const Tensor out = op::logsumexp(x, dims, keepdim);
  return record("logsumexp", {x}, out, {x, out}, [folded](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    const Tensor softmax = op::exp(op::sub(s[0], as_keepdim(s[1], s[0].shape(), folded)));
    return Grads{op::mul(softmax, as_keepdim(g, s[0].shape(), folded))};
  });
}

// out = sqrt(Σ x²):  dx = g · x / out  (0 where out = 0, the subgradient PyTorch picks)
Tensor norm(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const auto folded = folded_dims(x, dims);
  const Tensor out = op::norm(x, dims, keepdim);
  return record("norm", {x}, out, {x, out}, [folded](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    const Tensor r = as_keepdim(s[1], s[0].shape(), folded);
    const Tensor safe_r = op::where(op::eq(r, op::scalar_like(r, 0.0)), op::scalar_like(r, 1.0), r);
    return Grads{op::mul(s[0], op::div(as_keepdim(g, s[0].shape(), folded), safe_r))};
  });
}

// out_i = Σ_{j≤i} x_j:  dx_j = Σ_{i≥j} g_i, a reversed cumulative sum
Tensor cumsum(const Tensor& x, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "cumsum");
  return record("cumsum", {x}, op::cumsum(x, dim), {}, [dim](const Tensor& g, const Node&) {
    return Grads{op::cumsum(g, dim, /*reverse=*/true)};
  });
}

// log_softmax(x) = x - logsumexp(x), composed so both pieces' gradients apply.
Tensor log_softmax(const Tensor& x, int64_t dim) { return sub(x, logsumexp(x, {dim}, /*keepdim=*/true)); }
Tensor softmax(const Tensor& x, int64_t dim) { return exp(log_softmax(x, dim)); }

}  // namespace ssm
