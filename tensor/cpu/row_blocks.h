// tensor/cpu/row_blocks.h — parallel loops over rows whose per-parameter gradients must be summed.
//
// A fused op's backward writes each row's input gradient in place, but a shared parameter (a bias, a
// norm weight) gets a sum over all rows. Each of a FIXED number of row blocks sums into its own partial
// buffer and the blocks are then added in block order: no races, and the same bits whatever the thread
// count (a per-thread split would change the summation order with the threads).
#pragma once
#include <cstdint>

#include "tensor/cpu/parallel.h"

namespace ssm::cpu {

inline constexpr int64_t kRowBlocks = 32;

// body(block, row_begin, row_end) for the kRowBlocks blocks of [0, rows), in parallel above the
// threshold (work = a cost estimate of the whole loop).
template <class Body>
void for_row_blocks(int64_t rows, int64_t work, Body&& body) {
  parallel_for(kRowBlocks, work, [&](int64_t block) {
    body(block, rows * block / kRowBlocks, rows * (block + 1) / kRowBlocks);
  });
}

}  // namespace ssm::cpu
