// ssm/ssd_prefetch.h — getting a chunk's rows into cache ahead of their use, for the two SSD engines of one
// sequence (ssd_chunk_core.cpp, ssd_recurrent_core.cpp). Internal to ssm/.
//
// Why: the rows of one head are strided views (one head inside [L, R, H, N]: at the ~1M model's
// shapes 1280 bytes apart, at 130M's a page), so every first touch of a row could wait on memory. The
// chunked engine prefetches the next chunk's rows; the recurrent forward prefetches a few steps ahead;
// the recurrent backward loads a window of rows before it walks them (touch_rows: measured faster there).
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

// Bring `rows` rows (of `width` values, row stride rs) into cache with plain loads, one per cache line.
// Measured in the ~1M model's training step (AMD EPYC with AVX-512, one thread): the recurrent backward ran
// at ~320 ns per step from memory with prefetch_rows a few steps ahead and the same without it, ~120 ns on
// rows already in cache, and ~210 ns when its rows were first loaded this way (the loads included). The
// loads are independent of each other, so many are in flight at once, where the prefetches did not help.
template <class T>
void touch_rows(const T* base, int64_t rows, int64_t rs, int64_t width) {
  constexpr int64_t per_line = 64 / static_cast<int64_t>(sizeof(T));
  T sum[4] = {};  // four chains, so that no load waits on the previous one's add
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t off = 0; off < width; off += per_line) sum[(i + off / per_line) & 3] += base[i * rs + off];
  T total = sum[0] + sum[1] + sum[2] + sum[3];
  __asm__ volatile("" : : "r"(&total) : "memory");  // the sums are kept, so the loads are not removed
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
