// The host block cache (tensor/cpu/block_cache.h): large freed blocks come back for requests of a
// similar size, small ones and over-capacity ones go to the C library, and blocks are usable memory.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

#include "tensor/cpu/block_cache.h"

using ssm::cpu::BlockCache;

TEST(BlockCache, ReusesALargeBlockForTheSameOrASlightlySmallerSize) {
  BlockCache cache(size_t{64} << 20);
  const size_t big = 3 << 20;
  void* a = cache.allocate(big);
  std::memset(a, 1, big);  // the whole block is ours to write
  cache.deallocate(a, big);
  EXPECT_EQ(cache.cached_bytes(), big);
  void* b = cache.allocate(big - 1000);
  EXPECT_EQ(b, a);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  cache.deallocate(b, big - 1000);
  void* c = cache.allocate(big / 2);  // would waste half the block: a fresh one instead
  EXPECT_NE(c, a);
  cache.deallocate(c, big / 2);
}

TEST(BlockCache, SmallBlocksAndBlocksBeyondCapacityAreNotKept) {
  BlockCache cache(size_t{1} << 20);
  void* small = cache.allocate(1000);
  cache.deallocate(small, 1000);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  void* a = cache.allocate(size_t{3} << 19);  // 1.5 MiB > 1 MiB capacity
  cache.deallocate(a, size_t{3} << 19);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  BlockCache disabled(0);
  void* b = disabled.allocate(size_t{1} << 20);
  disabled.deallocate(b, size_t{1} << 20);
  EXPECT_EQ(disabled.cached_bytes(), 0u);
}

TEST(BlockCache, BlocksAreAligned) {  // large ones to cache lines, small ones as malloc aligns (16 bytes)
  BlockCache cache;
  for (size_t bytes : {size_t{100}, size_t{300000}, size_t{5} << 20}) {
    void* p = cache.allocate(bytes);
    const size_t alignment = bytes >= BlockCache::kMinCachedBytes ? 64 : alignof(std::max_align_t);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u) << bytes;
    cache.deallocate(p, bytes);
  }
}
