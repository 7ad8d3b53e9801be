// cuda/ssd_key_weight.cu — see ssd_key_weight.h.
#include "cuda/ssd_key_weight.h"

#include "cuda/launch.cuh"
#include "cuda/ssd_chunk_parts.cuh"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda {
namespace {

using ssd_chunk::seq_base;

// A thread per element (b, h, i, n) of the scratch: K_i = w_{t(i)} k_i, t(i) = i / R.
template <class T>
__global__ void form_weighted_keys_kernel(ChunkScanInputs<T> in, T* keys, SeqLayout out) {
  const ChunkScanSizes& z = in.sizes;
  const int64_t rows = z.steps * z.rank, total = z.batch * z.heads * rows * z.N;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = e % z.N, i = e / z.N % rows, s = e / (z.N * rows), b = s / z.heads, h = s % z.heads;
    const T w = in.k_weight[seq_base(in.k_weight_layout, b, h) + i / z.rank * in.k_weight_layout.row_stride];
    keys[seq_base(out, b, h) + i * out.row_stride + n] =
        w * in.k[seq_base(in.k_layout, b, h) + i * in.k_layout.row_stride + n];
  }
}

// A warp per (b, t, h), heads fastest (neighbouring warps read neighbouring key rows), grid-stride; its
// lanes share out the step's R rows of N values.
template <class T>
__global__ void key_weight_grads_kernel(ChunkScanInputs<T> in, ChunkScanGrads<T> grads) {
  const ChunkScanSizes& z = in.sizes;
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t warps = z.batch * z.steps * z.heads, stride = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; warp < warps;
       warp += stride) {
    const int64_t h = warp % z.heads, t = warp / z.heads % z.steps, b = warp / (z.heads * z.steps);
    const T w = in.k_weight[seq_base(in.k_weight_layout, b, h) + t * in.k_weight_layout.row_stride];
    T dw = 0;
    for (int64_t r = 0; r < z.rank; ++r) {
      const int64_t i = t * z.rank + r;
      const T* k = in.k + seq_base(in.k_layout, b, h) + i * in.k_layout.row_stride;
      T* dk = grads.dk + seq_base(grads.dk_layout, b, h) + i * grads.dk_layout.row_stride;
      for (int64_t n = lane; n < z.N; n += 32) {
        const T dK = dk[n];
        dw += dK * k[n];
        dk[n] = w * dK;
      }
    }
    dw = warp_sum(dw);  // the whole warp takes the same trips round the loop
    if (lane == 0) grads.dw[seq_base(grads.dw_layout, b, h) + t * grads.dw_layout.row_stride] = dw;
  }
}

}  // namespace

SeqLayout weighted_keys_layout(const ChunkScanSizes& z) {
  const int64_t rows = z.steps * z.rank;
  return SeqLayout{z.heads * rows * z.N, rows * z.N, 1, z.N};
}

template <class T>
void form_weighted_keys(const ChunkScanInputs<T>& in, T* keys) {
  const ChunkScanSizes& z = in.sizes;
  const int64_t total = z.batch * z.heads * z.steps * z.rank * z.N;
  if (total == 0) return;
  form_weighted_keys_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(in, keys, weighted_keys_layout(z));
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void key_weight_grads(const ChunkScanInputs<T>& in, const ChunkScanGrads<T>& grads) {
  const ChunkScanSizes& z = in.sizes;
  const int64_t warps = z.batch * z.steps * z.heads;
  if (warps == 0) return;
  key_weight_grads_kernel<T><<<blocks_for(warps * 32), kThreads, 0, stream()>>>(in, grads);
  SSM_CUDA_CHECK_LAUNCH();
}

template void form_weighted_keys<float>(const ChunkScanInputs<float>&, float*);
template void form_weighted_keys<double>(const ChunkScanInputs<double>&, double*);
template void key_weight_grads<float>(const ChunkScanInputs<float>&, const ChunkScanGrads<float>&);
template void key_weight_grads<double>(const ChunkScanInputs<double>&, const ChunkScanGrads<double>&);

}  // namespace ssm::cuda
