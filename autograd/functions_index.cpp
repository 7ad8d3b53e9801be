// autograd/functions_index.cpp — indexing ops with their backward.
//
// Reading with an index and adding with the same index are adjoint: the backward of every
// "select rows" op is the matching "add rows back", and vice versa.
#include "autograd/functions.h"

namespace ssm {

using Grads = std::vector<Tensor>;

// out[.., i, ..] = x[.., index[i], ..]:  dx[.., index[i], ..] += g[.., i, ..]
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  return record("index_select", {x, index}, op::index_select(x, dim, index), {index},
                [shape = x.shape(), dim](const Tensor& g, const Node& n) {
                  return Grads{op::index_add(shape, dim, n.saved()[0], g), Tensor()};
                });
}

// The token embedding: rows of weight [V, D] picked by ids (any shape) -> [..ids, D].
// dweight[ids[i]] += g[i] (repeated ids accumulate)
Tensor embedding(const Tensor& weight, const Tensor& ids) {
  return record("embedding", {weight, ids}, op::embedding(weight, ids), {ids},
                [shape = weight.shape()](const Tensor& g, const Node& n) {
                  const Tensor flat_ids = n.saved()[0].reshape({-1});
                  return Grads{op::index_add(shape, 0, flat_ids, g.reshape({flat_ids.numel(), shape[1]})), Tensor()};
                });
}

// out[i][j][k] = x[i][index[i][j][k]][k] (dim 1):  dx = scatter_add(g) at the same places
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  return record("gather", {x, index}, op::gather(x, dim, index), {index},
                [shape = x.shape(), dim](const Tensor& g, const Node& n) {
                  return Grads{op::scatter_add(shape, dim, n.saved()[0], g), Tensor()};
                });
}

// out = zeros(shape); out[i][index[i][j][k]][k] += src[i][j][k]:  dsrc = gather(g)
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  return record("scatter_add", {index, src}, op::scatter_add(shape, dim, index, src), {index},
                [dim](const Tensor& g, const Node& n) { return Grads{Tensor(), op::gather(g, dim, n.saved()[0])}; });
}

}  // namespace ssm
