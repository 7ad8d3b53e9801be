// tensor/strided_layout.h — the fewest dimensions that describe N equally-shaped strided tensors.
//
// Size-1 dims are dropped and neighbouring dims that are laid out contiguously in *every* tensor
// are merged, so a contiguous tensor of any rank becomes one long row and a transposed one two
// dims. Elementwise and reduction kernels on every backend start from this.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

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

// The layouts regrouped in runs of `width` consecutive elements (a vector access's worth: 4 on the GPU, for_each_quad
// in cuda/launch.cuh): possible when, after collapsing, the innermost dimension is contiguous (stride 1) in every
// tensor and a multiple of `width` long, and every outer stride is a multiple of `width` (a broadcast's 0
// included). Each run is then contiguous in every tensor and starts a multiple of `width` elements past its
// base. Returns the collapsed layout indexing runs (innermost size ÷ width, stride width: offsets stay in
// elements), or nothing for any other layout and for a single element.
template <size_t N>
std::optional<CollapsedLayout<N>> in_runs_of(int64_t width, const Shape& shape, const std::array<Strides, N>& strides) {
  CollapsedLayout<N> layout = collapse<N>(shape, strides);
  if (layout.shape.empty()) return std::nullopt;
  const size_t inner = layout.shape.size() - 1;
  if (layout.shape[inner] % width != 0) return std::nullopt;
  for (const Strides& s : layout.strides) {
    if (s[inner] != 1) return std::nullopt;
    for (size_t d = 0; d < inner; ++d)
      if (s[d] % width != 0) return std::nullopt;
  }
  layout.shape[inner] /= width;
  for (Strides& s : layout.strides) s[inner] = width;
  return layout;
}

}  // namespace ssm
