// ssm/ssd_prefetch.h — software prefetch of a chunk's rows, for the two SSD engines of one sequence
// (ssd_chunk_core.cpp, ssd_recurrent_core.cpp). Internal to ssm/.
//
// Why: the rows of one head are strided views (one head inside [L, R, H, N]: at the ~1M model's
// shapes 1280 bytes apart, at 130M's a page), so the hardware prefetchers do not see them coming and
// every first touch of a row would wait on memory. The engines ask for rows ahead of their use: the
// chunked one for the next chunk's, the recurrent one for the step a few steps ahead.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ssm/ssd_chunk_core.h"

namespace ssm::ssd {

// Ask for `rows` rows (of `width` values, row stride rs) to be brought into L2; to be written, with
// for_write (the line then arrives ready for a store, not shared).
template <class T>
void prefetch_rows(const T* base, int64_t rows, int64_t rs, int64_t width, bool for_write = false) {
  const int64_t bytes = width * static_cast<int64_t>(sizeof(T));
  for (int64_t i = 0; i < rows; ++i) {
    const char* row = reinterpret_cast<const char*>(base + i * rs);
    for (int64_t off = 0; off < bytes; off += 64) {
      if (for_write)
        __builtin_prefetch(row + off, 1, 2);
      else
        __builtin_prefetch(row + off, 0, 2);
    }
  }
}

// The rows of Q, K, V of time steps [t0, t1) (clipped to the problem), and of `extra` [rows, P] (row
// stride extra_rs) when given: dY in a backward, Y in a forward (whose rows are written).
template <class T>
void prefetch_steps(const ChunkProblem<T>& p, int64_t t0, int64_t t1, const T* extra, int64_t extra_rs) {
  t0 = std::max<int64_t>(t0, 0);
  t1 = std::min(t1, p.steps);
  if (t0 >= t1) return;
  const int64_t i0 = t0 * p.rank, m = (t1 - t0) * p.rank;
  prefetch_rows(p.q.row(i0), m, p.q.row_stride, p.N);
  prefetch_rows(p.k.row(i0), m, p.k.row_stride, p.N);
  prefetch_rows(p.v.row(i0), m, p.v.row_stride, p.P);
  if (extra) prefetch_rows(extra + i0 * extra_rs, m, extra_rs, p.P);
}

// The same for chunk c (nothing when c is out of range).
template <class T>
void prefetch_chunk(const ChunkProblem<T>& p, int64_t c, const T* extra, int64_t extra_rs) {
  prefetch_steps(p, c * p.chunk, (c + 1) * p.chunk, extra, extra_rs);
}

}  // namespace ssm::ssd
