// tensor/cpu/strided_loop.h — visiting every element of N equally-shaped, arbitrarily strided tensors.
//
// Elementwise kernels work on views (transposed, sliced, broadcast with stride 0). Rather than
// computing an n-d index per element, we
//   1. collapse the layouts (tensor/strided_layout.h: a contiguous tensor of any rank becomes one row);
//   2. call row(n, offsets, inner_strides) once per innermost row (long rows cut into blocks so
//      threads can share them), with element offsets for each tensor.
// The row callback then runs a tight loop; when all inner strides are 1 the compiler vectorises it.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "tensor/cpu/parallel.h"
#include "tensor/shape.h"
#include "tensor/strided_layout.h"

namespace ssm::cpu {

// Element offsets, in each of N layouts, of the row-major position `flat` within the first
// `dims` dimensions of `shape` (dims < rank leaves the inner dimensions at index 0).
template <size_t N>
std::array<int64_t, N> offsets_of(int64_t flat, const Shape& shape, const std::array<Strides, N>& strides, int64_t dims) {
  std::array<int64_t, N> offsets{};
  for (int64_t d = dims - 1; d >= 0; --d) {
    const int64_t i = flat % shape[d];
    flat /= shape[d];
    for (size_t k = 0; k < N; ++k) offsets[k] += i * strides[k][d];
  }
  return offsets;
}

template <size_t N, class RowFn>
void for_each_row(const Shape& shape, const std::array<Strides, N>& strides, RowFn&& row) {
  const int64_t total = numel(shape);
  if (total == 0) return;
  const CollapsedLayout<N> layout = collapse(shape, strides);
  std::array<int64_t, N> inner_strides{};
  if (layout.shape.empty()) {  // a single element
    row(int64_t{1}, std::array<int64_t, N>{}, inner_strides);
    return;
  }
  const int64_t rank = static_cast<int64_t>(layout.shape.size());
  const int64_t inner = layout.shape.back();
  for (size_t k = 0; k < N; ++k) inner_strides[k] = layout.strides[k].back();
  constexpr int64_t kBlock = 16384;
  const int64_t blocks_per_row = (inner + kBlock - 1) / kBlock;
  const int64_t rows = total / inner;

  parallel_for(rows * blocks_per_row, total, [&](int64_t task) {
    const int64_t block = task % blocks_per_row;
    std::array<int64_t, N> offsets = offsets_of<N>(task / blocks_per_row, layout.shape, layout.strides, rank - 1);
    const int64_t start = block * kBlock;
    for (size_t k = 0; k < N; ++k) offsets[k] += start * inner_strides[k];
    row(std::min(kBlock, inner - start), offsets, inner_strides);
  });
}

}  // namespace ssm::cpu
