// cuda/warp_sum.cuh — the sum of one value from each lane of a team of `width` consecutive lanes (a power
// of two up to 32, the whole warp by default), returned to every lane of the team (butterfly shuffles, no
// shared memory). Every lane of the warp must call it together, whatever its team.
#pragma once

namespace ssm::cuda {

template <class T>
__device__ inline T warp_sum(T v, int width = 32) {
  for (int lane_mask = width / 2; lane_mask > 0; lane_mask /= 2) v += __shfl_xor_sync(0xffffffffu, v, lane_mask);
  return v;
}

}  // namespace ssm::cuda
