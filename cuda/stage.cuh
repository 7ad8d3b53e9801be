// cuda/stage.cuh — copying a contiguous run of global values into shared memory, several loads in flight.
//
// A global load waits hundreds of cycles. A copy loop that loads one value and stores it before loading the
// next leaves each thread waiting on one load at a time, and a kernel that stages its operands that way is
// bound by that latency (ncu at the 130M model: the keys' backward). Here each thread issues kInFlight loads
// before it stores any, 16 bytes each where float data is 16-byte aligned. (The chunk kernels' stage_rows in
// cuda/ssd_chunk_mma.cu does the same for their strided, row-scaled, zero-padded tiles.)
#pragma once
#include <cstdint>
#include <type_traits>

namespace ssm::cuda {

namespace detail {
// dst[i] = src[i] for i < count, over `threads` threads (this one is `rank`), kInFlight loads per thread before
// its stores.
template <class U>
__device__ void copy_in_flight(const U* __restrict src, int count, U* __restrict dst, int rank, int threads) {
  constexpr int kInFlight = 4;
  const int step = threads;
  for (int base = rank; base < count; base += kInFlight * step) {
    U x[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u)
      if (base + u * step < count) x[u] = src[base + u * step];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u)
      if (base + u * step < count) dst[base + u * step] = x[u];
  }
}
}  // namespace detail

// dst[0, count) = src[0, count), dst in shared memory, shared out over `threads` threads (a block, or a warp),
// of which this one is `rank`; callers sync those threads before reading it.
template <class T>
__device__ void stage_contiguous(const T* __restrict src, int count, T* __restrict dst, int rank, int threads) {
  if constexpr (std::is_same_v<T, float>) {
    if (count % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
      detail::copy_in_flight(reinterpret_cast<const float4*>(src), count / 4, reinterpret_cast<float4*>(dst), rank,
                             threads);
      return;
    }
  }
  detail::copy_in_flight(src, count, dst, rank, threads);
}

}  // namespace ssm::cuda
