// cuda/warp_sum.cuh — the sum of one value from each of a warp's 32 lanes, returned to every lane
// (butterfly shuffles: five steps, no shared memory).
#pragma once

namespace ssm::cuda {

template <class T>
__device__ inline T warp_sum(T v) {
  for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) v += __shfl_xor_sync(0xffffffffu, v, lane_mask);
  return v;
}

}  // namespace ssm::cuda
