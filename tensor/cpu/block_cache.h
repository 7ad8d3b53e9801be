// tensor/cpu/block_cache.h — keeps freed large host buffers for reuse.
//
// A training step allocates and frees the same large activations and gradients every step. Straight
// from the C library, a buffer of more than a few hundred KiB is a fresh mmap: the kernel hands out
// zeroed pages one fault at a time and takes them back at free — measurable time in every step (page
// faults and page clearing were ~5% of a CPU training step). Cached, a block of the same size comes
// back untouched. Small buffers go straight to the C library (plain malloc), whose own free lists
// serve them well.
//
// Sizes are rounded up to 64 KiB so that equal-shaped tensors share blocks; a request takes the
// smallest cached block that fits and wastes at most a quarter of it. The cache holds at most
// `capacity` bytes (default 4 GiB, SSM_CPU_CACHE_MB overrides; 0 disables it); beyond that a freed
// block goes back to the system. Thread-safe. The backend's cache lives until the process ends (it
// is never destroyed, so tensors freed during static destruction still find it).
#pragma once
#include <cstddef>
#include <map>
#include <mutex>

namespace ssm::cpu {

class BlockCache {
 public:
  explicit BlockCache(size_t capacity = default_capacity());
  static size_t default_capacity();  // 4 GiB, or SSM_CPU_CACHE_MB
  ~BlockCache();                     // frees the cached blocks
  void* allocate(size_t bytes);
  void deallocate(void* ptr, size_t bytes) noexcept;
  size_t cached_bytes() const;

  static constexpr size_t kMinCachedBytes = 256 * 1024;  // below this: the C library directly
  static constexpr size_t kGranule = 64 * 1024;

 private:
  static size_t rounded(size_t bytes) { return (bytes + kGranule - 1) / kGranule * kGranule; }
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;  // rounded size -> block
  size_t cached_bytes_ = 0, capacity_;
};

}  // namespace ssm::cpu
