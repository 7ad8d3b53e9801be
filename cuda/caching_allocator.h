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
//
// Capture pools (CUDA graphs, cuda/graph.cpp). A graph replays into the very addresses its capture
// used, so while a capture is open every block handed out or freed joins that capture's pool: pool
// blocks are reused only by the same capture, never by the shared free lists, until the graph is
// destroyed and release_pool gives them back. A block freed after capture (a graph's output tensor
// dropped, say) returns to its pool too.
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

  int begin_pool();             // a new pool that takes every allocation and free until end_pool
  void end_pool();
  void release_pool(int pool);  // its blocks (all free by now, or freed later) go back to the shared lists

  static size_t rounded(size_t bytes);

 private:
  using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // rounded size -> free blocks
  void* take_or_malloc(FreeLists& lists, size_t size);
  void release_cached_locked();
  mutable std::mutex mutex_;
  FreeLists free_blocks_;
  std::unordered_map<int, FreeLists> pool_free_;      // capture pool -> its free blocks
  std::unordered_map<void*, int> pool_of_;            // every block a pool owns -> the pool
  int open_pool_ = -1, next_pool_ = 0;
  size_t in_use_ = 0, peak_ = 0, reserved_ = 0;
};

}  // namespace ssm::cuda
