// tensor/cpu/reduce.cpp — sum/max/min over any set of dims, and cumsum, on the CPU.
//
// A reduction splits x's dims into kept ones (which index the output) and reduced ones (which are
// folded). Two loop orders, chosen by memory layout:
//   * row mode — x's innermost dim is reduced (a softmax denominator, a norm over features): each
//     output element folds a contiguous run, outputs are shared among threads;
//   * column mode — x's innermost dim is kept (a bias gradient summing over tokens): each thread
//     owns a strip of outputs and sweeps the reduced rows, adding whole vectors at a time.
// Sums accumulate in double (int64 for integers), so float32 sums of long rows stay accurate and
// the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "tensor/cpu/kernels.h"
#include "tensor/cpu/strided_loop.h"

namespace ssm::cpu {
namespace {

template <class T>
using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

template <class T>
struct Fold {
  ReduceOp op;
  Acc<T> init() const {
    if (op == ReduceOp::Sum) return 0;
    if constexpr (std::is_floating_point_v<T>) {
      const double inf = std::numeric_limits<double>::infinity();
      return op == ReduceOp::Max ? -inf : inf;
    } else {
      return op == ReduceOp::Max ? std::numeric_limits<int64_t>::lowest() : std::numeric_limits<int64_t>::max();
    }
  }
  // NaN wins a max/min, as in NumPy and PyTorch.
  Acc<T> operator()(Acc<T> acc, T v) const {
    const Acc<T> x = static_cast<Acc<T>>(v);
    if (op == ReduceOp::Sum) return acc + x;
    if (x != x) return x;
    return op == ReduceOp::Max ? (x > acc ? x : acc) : (x < acc ? x : acc);
  }
};

// Calls body(offset) for every element offset of the index space (shape, strides), in row-major order.
template <class Body>
void for_each_offset(const Shape& shape, const Strides& strides, int64_t base, Body&& body) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) return body(base);
  std::vector<int64_t> index(rank, 0);
  const int64_t inner = shape[rank - 1], inner_stride = strides[rank - 1];
  for (int64_t done = 0, total = numel(shape); done < total; done += inner) {
    int64_t off = base;
    for (int64_t d = 0; d < rank - 1; ++d) off += index[d] * strides[d];
    for (int64_t i = 0; i < inner; ++i) body(off + i * inner_stride);
    for (int64_t d = rank - 2; d >= 0 && ++index[d] == shape[d]; --d) index[d] = 0;
  }
}

template <class T>
void reduce_typed(ReduceOp op, const Tensor& x, const Tensor& out) {
  const Fold<T> fold{op};
  // Split dims into kept (indexing out) and reduced (folded); collapse each group.
  Shape kept_shape, reduced_shape;
  Strides kept_x, kept_out, reduced_x;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (out.shape()[d] == x.shape()[d]) {
      kept_shape.push_back(x.shape()[d]);
      kept_x.push_back(x.strides()[d]);
      kept_out.push_back(out.strides()[d]);
    } else {
      reduced_shape.push_back(x.shape()[d]);
      reduced_x.push_back(x.strides()[d]);
    }
  }
  const auto kept = collapse<2>(kept_shape, {kept_x, kept_out});
  const auto reduced = collapse<1>(reduced_shape, {reduced_x});
  const T* px = static_cast<const T*>(x.raw_data());
  T* po = static_cast<T*>(out.raw_data());
  const int64_t n_out = out.numel(), n_reduced = numel(reduced.shape);

  const bool column_mode = !kept.shape.empty() && !reduced.shape.empty() &&
                           std::abs(kept.strides[0].back()) < std::abs(reduced.strides[0].back());
  if (!column_mode) {
    // Row mode: each output folds its own reduced index space.
    const int64_t rank = static_cast<int64_t>(kept.shape.size());
    parallel_for(n_out, n_out * n_reduced, [&](int64_t o) {
      const auto [x_off, out_off] = offsets_of<2>(o, kept.shape, kept.strides, rank);
      Acc<T> acc = fold.init();
      for_each_offset(reduced.shape, reduced.strides[0], x_off, [&](int64_t off) { acc = fold(acc, px[off]); });
      po[out_off] = static_cast<T>(acc);
    });
    return;
  }
  // Column mode: outputs along the innermost kept dim are processed as strips of kStrip lanes.
  constexpr int64_t kStrip = 64;
  const int64_t rank = static_cast<int64_t>(kept.shape.size());
  const int64_t lanes = kept.shape.back();
  const int64_t lane_x = kept.strides[0].back(), lane_out = kept.strides[1].back();
  const int64_t strips_per_row = (lanes + kStrip - 1) / kStrip;
  const int64_t outer = n_out / lanes;
  parallel_for(outer * strips_per_row, n_out * n_reduced, [&](int64_t task) {
    const int64_t first = (task % strips_per_row) * kStrip, width = std::min(kStrip, lanes - first);
    auto [x_off, out_off] = offsets_of<2>(task / strips_per_row, kept.shape, kept.strides, rank - 1);
    x_off += first * lane_x;
    out_off += first * lane_out;
    Acc<T> acc[kStrip];
    std::fill(acc, acc + width, fold.init());
    for_each_offset(reduced.shape, reduced.strides[0], x_off, [&](int64_t off) {
      for (int64_t j = 0; j < width; ++j) acc[j] = fold(acc[j], px[off + j * lane_x]);
    });
    for (int64_t j = 0; j < width; ++j) po[out_off + j * lane_out] = static_cast<T>(acc[j]);
  });
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const Tensor& out) {
  dispatch_numeric(x.dtype(), "reduce", [&](auto t) { reduce_typed<decltype(t)>(op, x, out); });
}

// cumsum along `dim`: out[.., i, ..] = sum_{j <= i} x[.., j, ..] (reverse: sum_{j >= i}), accumulated in
// double/int64.
void cumsum(const Tensor& x, int64_t dim, bool reverse, const Tensor& out) {
  dispatch_numeric(x.dtype(), "cumsum", [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    const int64_t length = x.shape()[dim], x_step = x.strides()[dim], out_step = out.strides()[dim];
    // every line along `dim`: iterate the other dims
    Shape lines_shape = x.shape();
    Strides lines_x = x.strides(), lines_out = out.strides();
    lines_shape.erase(lines_shape.begin() + dim);
    lines_x.erase(lines_x.begin() + dim);
    lines_out.erase(lines_out.begin() + dim);
    const auto lines = collapse<2>(lines_shape, {lines_x, lines_out});
    const int64_t n_lines = numel(lines_shape), rank = static_cast<int64_t>(lines.shape.size());
    parallel_for(n_lines, n_lines * length, [&](int64_t line) {
      const auto [x_off, out_off] = offsets_of<2>(line, lines.shape, lines.strides, rank);
      Acc<T> acc = 0;
      for (int64_t k = 0; k < length; ++k) {
        const int64_t i = reverse ? length - 1 - k : k;
        acc += static_cast<Acc<T>>(px[x_off + i * x_step]);
        po[out_off + i * out_step] = static_cast<T>(acc);
      }
    });
  });
}

}  // namespace ssm::cpu
