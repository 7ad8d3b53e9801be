// cuda/caching_allocator.h — GPU memory without a cudaMalloc/cudaFree per tensor.
//
// cudaMalloc and cudaFree are slow (cudaFree synchronises the whole device) and a training step
// makes and drops thousands of tensors of the same few sizes. So freed blocks are kept in free
// lists, keyed by their rounded size, and handed out again to the next request of that size. Reuse
// is safe without events because all work runs on the one stream of context.h, in program order.
//
// Sizes are rounded to 512 bytes (small blocks) or 2 MiB (from 1 MiB up), so tensors of nearby
// sizes share blocks. When cudaMalloc fails, the cached blocks are given back to the device and the
// request is tried once more; if it still fails, the error says how much was asked, in use and
// cached. Thread-safe.
#pragma once
#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/backend.h"

namespace ssm::cuda {

class CachingAllocator {
 public:
  void* allocate(size_t bytes);
  void deallocate(void* ptr, size_t bytes) noexcept;
  void release_cached();  // cudaFree every cached block (the allocator's, not cuBLAS's)
  MemoryStats stats() const;
  void reset_peak();

  static size_t rounded(size_t bytes);

 private:
  void release_cached_locked();
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;  // rounded size -> blocks
  size_t in_use_ = 0, peak_ = 0, reserved_ = 0;
};

}  // namespace ssm::cuda
