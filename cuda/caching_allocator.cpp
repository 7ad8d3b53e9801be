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

void* CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t size = rounded(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* block = nullptr;
  auto& cached = free_blocks_[size];
  if (!cached.empty()) {
    block = cached.back();
    cached.pop_back();
  } else {
    if (cudaMalloc(&block, size) != cudaSuccess) {
      (void)cudaGetLastError();
      release_cached_locked();
      const cudaError_t status = cudaMalloc(&block, size);
      if (status != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_bytes = 0, total_bytes = 0;
        (void)cudaMemGetInfo(&free_bytes, &total_bytes);
        throw Error(detail::concat("cuda: out of GPU memory allocating ", bytes, " bytes (", in_use_,
                                   " bytes in use by tensors, ", free_bytes, " of ", total_bytes,
                                   " bytes free on the device): ", cudaGetErrorString(status)));
      }
    }
    reserved_ += size;
  }
  in_use_ += size;
  peak_ = std::max(peak_, in_use_);
  return block;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) noexcept {
  if (ptr == nullptr) return;
  const size_t size = rounded(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  free_blocks_[size].push_back(ptr);
  in_use_ -= size;
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
