// tensor/cpu/block_cache.cpp — see block_cache.h.
#include "tensor/cpu/block_cache.h"

#include <cstdlib>

#include "tensor/error.h"

namespace ssm::cpu {

BlockCache::BlockCache(size_t capacity) : capacity_(capacity) {}

BlockCache::~BlockCache() {
  for (auto& [size, block] : free_blocks_) std::free(block);
}

size_t BlockCache::default_capacity() {
  const char* mb = std::getenv("SSM_CPU_CACHE_MB");
  return mb ? static_cast<size_t>(std::strtoull(mb, nullptr, 10)) << 20 : size_t{4} << 30;
}

void* BlockCache::allocate(size_t bytes) {
  if (bytes < kMinCachedBytes) {
    // Plain malloc (16-byte aligned): aligned_alloc splits a larger chunk and frees the rest, and for
    // the thousands of small buffers of a decoding step that extra malloc work was ~1/5 of the step.
    // No kernel needs more alignment from tensor data (the GEMM aligns its own packed panels).
    void* block = std::malloc(bytes);
    SSM_CHECK(block != nullptr, "cpu: out of memory allocating ", bytes, " bytes");
    return block;
  }
  const size_t size = rounded(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = free_blocks_.lower_bound(size);
    if (it != free_blocks_.end() && it->first <= size + size / 4) {
      void* block = it->second;
      cached_bytes_ -= it->first;
      free_blocks_.erase(it);
      return block;
    }
  }
  void* block = std::aligned_alloc(64, size);  // 64-byte alignment: a cache line, whole vectors per line
  SSM_CHECK(block != nullptr, "cpu: out of memory allocating ", bytes, " bytes");
  return block;
}

void BlockCache::deallocate(void* ptr, size_t bytes) noexcept {
  if (ptr == nullptr) return;
  if (bytes >= kMinCachedBytes) {
    // A reused block may be larger than this request: it is filed under the request's size, never more
    // than it really holds, so handing it out again stays safe.
    const size_t size = rounded(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_bytes_ + size <= capacity_) {
      free_blocks_.emplace(size, ptr);
      cached_bytes_ += size;
      return;
    }
  }
  std::free(ptr);
}

size_t BlockCache::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_bytes_;
}

}  // namespace ssm::cpu
