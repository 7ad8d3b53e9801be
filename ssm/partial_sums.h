// ssm/partial_sums.h — summing a GPU kernel's per-row gradient partials in a fixed order, fast.
//
// A fused op's GPU backward writes one partial row per unit of work (a token's share of dbias, dw)
// and the parameter gradient is the sum over those rows. One op::sum over the rows would give each
// GPU thread one output column and all the rows to add one after the other: tens of thousands of
// dependent loads from a handful of threads. Summing a [chunks, per_chunk, ...] view first over
// per_chunk, then over chunks, with chunks ≈ per_chunk ≈ √rows, keeps every thread's chain near √rows
// and still adds in a fixed order (the same bits every run). The view needs the rows padded to
// chunks · per_chunk: allocate the partials with padded() rows, zero-filled.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tensor/ops.h"

namespace ssm {

struct PartialRows {
  int64_t chunks, per_chunk;
  int64_t padded() const { return chunks * per_chunk; }
};

inline PartialRows split_partial_rows(int64_t rows) {
  const int64_t chunks = std::max<int64_t>(1, static_cast<int64_t>(std::sqrt(static_cast<double>(rows))));
  return {chunks, (rows + chunks - 1) / chunks};
}

// Σ over dim 0 of partial [split.padded(), ...], in two stages
inline Tensor sum_partial_rows(const Tensor& partial, const PartialRows& split) {
  Shape chunked = partial.shape();
  chunked[0] = split.per_chunk;
  chunked.insert(chunked.begin(), split.chunks);
  return op::sum(op::sum(partial.view(chunked), {1}), {0});
}

}  // namespace ssm
