// tensor/strided_layout.h — the fewest dimensions that describe N equally-shaped strided tensors.
//
// Size-1 dims are dropped and neighbouring dims that are laid out contiguously in *every* tensor
// are merged, so a contiguous tensor of any rank becomes one long row and a transposed one two
// dims. Elementwise and reduction kernels on every backend start from this.
#pragma once
#include <array>
#include <cstddef>

#include "tensor/shape.h"

namespace ssm {

template <size_t N>
struct CollapsedLayout {
  Shape shape;                       // after dropping 1s and merging
  std::array<Strides, N> strides;
};

template <size_t N>
CollapsedLayout<N> collapse(const Shape& shape, const std::array<Strides, N>& strides) {
  CollapsedLayout<N> out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !out.shape.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = out.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      out.shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) out.strides[k].back() = strides[k][d];
    } else {
      out.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) out.strides[k].push_back(strides[k][d]);
    }
  }
  return out;
}

}  // namespace ssm
