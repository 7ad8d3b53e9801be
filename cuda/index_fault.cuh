// cuda/index_fault.cuh — how a kernel that reads index values from device memory reports one that is
// out of range. Checking them on the host would copy every index tensor back and stall the queue, so
// the kernel checks each index as it reads it, skips the work that index names, and records the first
// fault in one device-memory record; check_index_faults() (cuda/kernels.h), called whenever the host
// next waits for the GPU, reads the record and throws an ssm::Error naming the op, the index and the size.
#pragma once
#include <cstdint>

namespace ssm::cuda {

enum class IndexOpKind : int { IndexSelect = 1, IndexAdd, Gather, ScatterAdd, CrossEntropyTarget };

struct IndexFault {
  int op;  // IndexOpKind, 0 when no fault is recorded
  int64_t index, size;
};

// The record's device address (it lives in cuda/index.cu).
IndexFault* index_fault_record();

// True when 0 <= i < size; otherwise records the fault (the first one wins) and returns false.
template <class I>
__device__ bool index_in_range(IndexFault* record, IndexOpKind op, I i, int64_t size) {
  if (i >= 0 && i < size) return true;
  if (atomicCAS(&record->op, 0, static_cast<int>(op)) == 0) {
    record->index = static_cast<int64_t>(i);
    record->size = size;
  }
  return false;
}

}  // namespace ssm::cuda
