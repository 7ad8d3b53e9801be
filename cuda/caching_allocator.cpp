// cuda/caching_allocator.cpp — see caching_allocator.h.
#include "cuda/caching_allocator.h"

#include <algorithm>

#include "cuda/check.h"

namespace ssm::cuda {

size_t CachingAllocator::rounded(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kLargeFrom = size_t{1} << 20;
  const size_t granule = bytes < kLargeFrom ? kSmall : kLarge;
  return (bytes + granule - 1) / granule * granule;
}

void* CachingAllocator::take_or_malloc(FreeLists& lists, size_t size) {
  auto& cached = lists[size];
  if (!cached.empty()) {
    void* block = cached.back();
    cached.pop_back();
    return block;
  }
  void* block = nullptr;
  if (cudaMalloc(&block, size) != cudaSuccess) {
    (void)cudaGetLastError();
    release_cached_locked();
    const cudaError_t status = cudaMalloc(&block, size);
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      (void)cudaMemGetInfo(&free_bytes, &total_bytes);
      throw Error(detail::concat("cuda: out of GPU memory allocating ", size, " bytes (", in_use_,
                                 " bytes in use by tensors, ", free_bytes, " of ", total_bytes,
                                 " bytes free on the device): ", cudaGetErrorString(status)));
    }
  }
  reserved_ += size;
  return block;
}

void* CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t size = rounded(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* block = nullptr;
  if (open_pool_ >= 0) {
    block = take_or_malloc(pool_free_[open_pool_], size);
    pool_of_[block] = open_pool_;
  } else {
    block = take_or_malloc(free_blocks_, size);
  }
  in_use_ += size;
  peak_ = std::max(peak_, in_use_);
  return block;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) noexcept {
  if (ptr == nullptr) return;
  const size_t size = rounded(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  in_use_ -= size;
  auto owner = pool_of_.find(ptr);
  if (owner == pool_of_.end() && open_pool_ >= 0)  // freed during a capture: the graph may still read it
    owner = pool_of_.emplace(ptr, open_pool_).first;
  if (owner != pool_of_.end()) {
    pool_free_[owner->second][size].push_back(ptr);
    return;
  }
  free_blocks_[size].push_back(ptr);
}

int CachingAllocator::begin_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  SSM_CHECK(open_pool_ < 0, "cuda: a graph capture is already open (captures do not nest)");
  open_pool_ = next_pool_++;
  return open_pool_;
}

void CachingAllocator::end_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  open_pool_ = -1;
}

void CachingAllocator::release_pool(int pool) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [size, blocks] : pool_free_[pool])
    for (void* block : blocks) free_blocks_[size].push_back(block);
  pool_free_.erase(pool);
  std::erase_if(pool_of_, [pool](const auto& entry) { return entry.second == pool; });  // live ones free to the shared lists
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  // cudaFree waits for the device, so no queued kernel still uses a block we give back.
  for (auto& [size, blocks] : free_blocks_) {
    for (void* block : blocks) {
      SSM_CUDA_CHECK(cudaFree(block));
      reserved_ -= size;
    }
    blocks.clear();
  }
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {in_use_, peak_, reserved_};
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  peak_ = in_use_;
}

}  // namespace ssm::cuda
