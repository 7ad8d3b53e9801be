// cuda/cross_entropy.cu — softmax cross-entropy forward and backward on the GPU, the twin of
// nn/cross_entropy.cpp's row loops (whose header gives the math).
//
// A block per row. Forward, each thread folds its strided share of the row's logits into a running
// (max m, sum s of e^{z − m}) pair — when a larger logit arrives the sum is rescaled, s·e^{m − m'} — so
// the row is read once; the block then merges the pairs the same way and lse = m + log s. Backward
// writes every dz of the row from z, lse and the row's scale, then takes the scale off at the target.
#include <cuda/std/limits>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/index_fault.cuh"
#include "cuda/launch.cuh"
#include "cuda/nn_fused.h"

namespace ssm::cuda {
namespace {

constexpr int kRowThreads = 256;

// (m, s) ⊕ (m', s') = (M, s·e^{m − M} + s'·e^{m' − M}), M = max(m, m'); an empty pair has m = −∞.
template <class T>
struct MaxSum {
  T m, s;
  __device__ void merge(T m2, T s2) {
    if (m2 == -::cuda::std::numeric_limits<T>::infinity()) return;
    if (m2 > m) {
      s = s * exp_of(m - m2) + s2;
      m = m2;
    } else {
      s += s2 * exp_of(m2 - m);
    }
  }
};

// The pair of the whole block, returned to every thread.
template <class T>
__device__ MaxSum<T> block_merge(MaxSum<T> p) {
  __shared__ T warp_m[kRowThreads / 32], warp_s[kRowThreads / 32];
  for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2)
    p.merge(__shfl_xor_sync(0xffffffffu, p.m, lane_mask), __shfl_xor_sync(0xffffffffu, p.s, lane_mask));
  if (threadIdx.x % 32 == 0) {
    warp_m[threadIdx.x / 32] = p.m;
    warp_s[threadIdx.x / 32] = p.s;
  }
  __syncthreads();
  MaxSum<T> all{warp_m[0], warp_s[0]};
  for (int w = 1; w < kRowThreads / 32; ++w) all.merge(warp_m[w], warp_s[w]);
  __syncthreads();  // the shared pairs are read before the next row overwrites them
  return all;
}

template <class T>
__global__ void ce_forward_kernel(int64_t N, int64_t V, const T* z, const int64_t* target, int64_t ignore_index,
                                  IndexFault* faults, T* lse, T* row_loss, T* kept) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {  // the whole block takes the same branches
    const int64_t t = target[i];
    const bool use = t != ignore_index && index_in_range(faults, IndexOpKind::CrossEntropyTarget, t, V);
    if (!use) {
      if (threadIdx.x == 0) lse[i] = row_loss[i] = kept[i] = T(0);
      continue;
    }
    const T* zi = z + i * V;
    MaxSum<T> p{-::cuda::std::numeric_limits<T>::infinity(), T(0)};
    for (int64_t v = threadIdx.x; v < V; v += kRowThreads) p.merge(zi[v], T(1));
    const MaxSum<T> all = block_merge(p);
    if (threadIdx.x == 0) {
      lse[i] = all.m + log(all.s);
      row_loss[i] = lse[i] - zi[t];
      kept[i] = T(1);
    }
  }
}

template <class T>
__global__ void ce_backward_kernel(int64_t N, int64_t V, const T* z, const int64_t* target, const T* lse,
                                   const T* kept, const T* count, const T* g, T* dz) {
  const T per_row = *g / (*count > T(1) ? *count : T(1));
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T scale = per_row * kept[i];
    const T *zi = z + i * V, lse_i = lse[i];
    T* dzi = dz + i * V;
    const int64_t t = target[i];
    for (int64_t v = threadIdx.x; v < V; v += kRowThreads)  // ignored rows get exact zeros
      dzi[v] = scale == T(0) ? T(0) : exp_of(zi[v] - lse_i) * scale - (v == t ? scale : T(0));
  }
}

unsigned row_blocks(int64_t N) { return static_cast<unsigned>(std::min<int64_t>(N, int64_t{1} << 20)); }

}  // namespace

template <class T>
void cross_entropy_forward(int64_t N, int64_t V, const T* z, const int64_t* target, int64_t ignore_index, T* lse,
                           T* row_loss, T* kept) {
  if (N == 0) return;
  ce_forward_kernel<T><<<row_blocks(N), kRowThreads, 0, stream()>>>(N, V, z, target, ignore_index,
                                                                    index_fault_record(), lse, row_loss, kept);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void cross_entropy_backward(int64_t N, int64_t V, const T* z, const int64_t* target, const T* lse, const T* kept,
                            const T* count, const T* g, T* dz) {
  if (N == 0) return;
  ce_backward_kernel<T><<<row_blocks(N), kRowThreads, 0, stream()>>>(N, V, z, target, lse, kept, count, g, dz);
  SSM_CUDA_CHECK_LAUNCH();
}

template void cross_entropy_forward<float>(int64_t, int64_t, const float*, const int64_t*, int64_t, float*, float*,
                                           float*);
template void cross_entropy_forward<double>(int64_t, int64_t, const double*, const int64_t*, int64_t, double*,
                                            double*, double*);
template void cross_entropy_backward<float>(int64_t, int64_t, const float*, const int64_t*, const float*,
                                            const float*, const float*, const float*, float*);
template void cross_entropy_backward<double>(int64_t, int64_t, const double*, const int64_t*, const double*,
                                             const double*, const double*, const double*, double*);

}  // namespace ssm::cuda
