// autograd/functions_shape.cpp — views, joins and splits with their backward.
//
// A view moves no data, so its backward moves no arithmetic either: the gradient is put back in
// the input's layout (reshape back, inverse permutation, zero-padding around a narrowed range,
// summation over an expanded dim).
#include <numeric>

#include "autograd/functions.h"

namespace ssm {

using Grads = std::vector<Tensor>;

Tensor reshape(const Tensor& x, const Shape& shape) {
  return record("reshape", {x}, x.reshape(shape), {}, [from = x.shape()](const Tensor& g, const Node&) {
    return Grads{g.reshape(from)};
  });
}

Tensor flatten(const Tensor& x) { return reshape(x, {x.numel()}); }

// The gradient of a permutation is the inverse permutation of the gradient.
Tensor permute(const Tensor& x, const std::vector<int64_t>& order) {
  const Tensor out = x.permute(order);
  std::vector<int64_t> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[wrap_dim(order[i], x.dim(), "permute")] = static_cast<int64_t>(i);
  return record("permute", {x}, out, {}, [inverse](const Tensor& g, const Node&) { return Grads{g.permute(inverse)}; });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  return record("transpose", {x}, x.transpose(dim0, dim1), {}, [dim0, dim1](const Tensor& g, const Node&) {
    return Grads{g.transpose(dim0, dim1)};
  });
}

// dx = zeros with g written into the narrowed range
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  return record("narrow", {x}, x.narrow(dim, start, length), {},
                [shape = x.shape(), dtype = x.dtype(), dim, start, length](const Tensor& g, const Node&) {
                  const Tensor dx = Tensor::zeros(shape, dtype, g.device());
                  dx.narrow(dim, start, length).copy_(g);
                  return Grads{dx};
                });
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  dim = wrap_dim(dim, x.dim(), "select");
  if (index < 0) index += x.shape()[dim];
  return squeeze(narrow(x, dim, index, 1), dim);
}

// Expanding repeats x along stride-0 dims, so every copy's gradient adds up: dx = sum_to(g, x.shape)
Tensor expand(const Tensor& x, const Shape& shape) {
  return record("expand", {x}, x.expand(shape), {}, [from = x.shape()](const Tensor& g, const Node&) {
    return Grads{op::sum_to(g, from)};
  });
}

Tensor squeeze(const Tensor& x, int64_t dim) { return reshape(x, x.squeeze(dim).shape()); }
Tensor unsqueeze(const Tensor& x, int64_t dim) { return reshape(x, x.unsqueeze(dim).shape()); }

Tensor contiguous(const Tensor& x) {
  return record("contiguous", {x}, x.contiguous(), {}, [](const Tensor& g, const Node&) { return Grads{g}; });
}

// dparts[k] = the slice of g that part k filled
Tensor cat(const std::vector<Tensor>& parts, int64_t dim) {
  std::vector<int64_t> sizes;
  for (const Tensor& p : parts) sizes.push_back(p.defined() && p.dim() > 0 ? p.shape()[wrap_dim(dim, p.dim(), "cat")] : 0);
  const Tensor out = op::cat(parts, dim);
  return record("cat", parts, out, {}, [sizes, dim](const Tensor& g, const Node&) { return op::split(g, sizes, dim); });
}

Tensor stack(const std::vector<Tensor>& parts, int64_t dim) {
  SSM_CHECK(!parts.empty(), "stack: no tensors given");
  dim = wrap_dim(dim, parts[0].dim() + 1, "stack");
  std::vector<Tensor> unsqueezed;
  for (const Tensor& p : parts) unsqueezed.push_back(unsqueeze(p, dim));
  return cat(unsqueezed, dim);
}

namespace {

// All the parts are one node, whose backward writes each part's gradient into its slice of a single
// dx. (A narrow node per part would give each part a full-size, zero-padded gradient for the engine
// to add up: every Mamba block splits its in_proj output 8 ways, so 8 zero fills and 7 full-size
// additions per block per step.) The slices cover dx, so it needs no zero fill either.
class SplitFunction final : public Function {
 public:
  SplitFunction(std::vector<int64_t> sizes, int64_t dim) : Function("split"), sizes_(std::move(sizes)), dim_(dim) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    return op::split(in[0], sizes_, dim_);  // views
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_parts) override { return {op::cat(grad_parts, dim_)}; }

 private:
  std::vector<int64_t> sizes_;
  int64_t dim_;
};

}  // namespace

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  SSM_CHECK(x.defined(), "split: undefined tensor");
  return apply(std::make_shared<SplitFunction>(sizes, wrap_dim(dim, x.dim(), "split")), {x});
}

}  // namespace ssm
