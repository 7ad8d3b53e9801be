// cuda/rms_norm.cu — RMSNorm forward and backward on the GPU, the twin of nn/rms_norm.cpp's row loops
// (whose header gives the math: r = (mean(x²) + eps)^(−1/2), y = x·r·w per group of n features).
//
// A warp per (row, group): its lanes stride the group's n features (four loads in flight per lane: in
// decoding at batch 1 one warp has a whole row and nothing else to hide a load's latency behind), and
// the two sums a group needs
// (Σ x² forward, Σ dy·w·x backward) are warp shuffles. The weight's gradient dw = Σ_rows dy·x·r is a
// sum down columns: a thread per column walks one fixed block of rows and writes that block's partial
// sum, which the caller folds with op::sum, so no two threads ever add into one place.
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/nn_fused.h"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda {
namespace {

constexpr int kWarps = kThreads / 32;
constexpr int64_t kRowsPerBlock = 32;  // rows summed by one thread into dw_partial

template <class T>
__global__ void rms_forward_kernel(int64_t units, int64_t n, int64_t G, T eps, const T* x, const T* w, T* r, T* y) {
  const int lane = threadIdx.x % 32;
  for (int64_t unit = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; unit < units;
       unit += int64_t{gridDim.x} * kWarps) {
    const T* xg = x + unit * n;  // unit = row·G + g: groups are consecutive in memory
    const T* wg = w + (unit % G) * n;
    T squares = 0;
#pragma unroll 4
    for (int64_t k = lane; k < n; k += 32) squares += xg[k] * xg[k];
    const T rg = T(1) / sqrt_of(warp_sum(squares) / T(n) + eps);
    if (lane == 0) r[unit] = rg;
    for (int64_t k = lane; k < n; k += 32) y[unit * n + k] = xg[k] * rg * wg[k];
  }
}

// dx = r·(gw − x·r²·mean(gw·x)), gw = dy·w
template <class T>
__global__ void rms_dx_kernel(int64_t units, int64_t n, int64_t G, const T* x, const T* w, const T* r, const T* dy,
                              T* dx) {
  const int lane = threadIdx.x % 32;
  for (int64_t unit = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; unit < units;
       unit += int64_t{gridDim.x} * kWarps) {
    const int64_t at = unit * n;
    const T* wg = w + (unit % G) * n;
    T gw_x = 0;
#pragma unroll 4
    for (int64_t k = lane; k < n; k += 32) gw_x += dy[at + k] * wg[k] * x[at + k];
    const T rg = r[unit], scale = rg * rg * warp_sum(gw_x) / T(n);
    for (int64_t k = lane; k < n; k += 32) dx[at + k] = rg * (dy[at + k] * wg[k] - x[at + k] * scale);
  }
}

// dw_partial[block, j] = Σ over the block's rows i of dy[i, j]·x[i, j]·r[i, j / n]
template <class T>
__global__ void rms_dw_kernel(int64_t rows, int64_t D, int64_t n, const T* x, const T* r, const T* dy,
                              T* dw_partial) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x, G = D / n;
  if (j >= D) return;
  for (int64_t block = blockIdx.y; block * kRowsPerBlock < rows; block += gridDim.y) {
    const int64_t end = min(rows, (block + 1) * kRowsPerBlock);
    T sum = 0;
    for (int64_t i = block * kRowsPerBlock; i < end; ++i) sum += dy[i * D + j] * x[i * D + j] * r[i * G + j / n];
    dw_partial[block * D + j] = sum;
  }
}

unsigned warp_blocks(int64_t units) { return blocks_for(units * 32); }

}  // namespace

int64_t rms_norm_row_blocks(int64_t rows) { return std::max<int64_t>(1, (rows + kRowsPerBlock - 1) / kRowsPerBlock); }

template <class T>
void rms_norm_forward(int64_t rows, int64_t D, int64_t n, double eps, const T* x, const T* w, T* r, T* y) {
  const int64_t units = rows * (D / n);
  if (units == 0) return;
  rms_forward_kernel<T><<<warp_blocks(units), kThreads, 0, stream()>>>(units, n, D / n, T(eps), x, w, r, y);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void rms_norm_backward(int64_t rows, int64_t D, int64_t n, const T* x, const T* w, const T* r, const T* dy, T* dx,
                       T* dw_partial) {
  const int64_t units = rows * (D / n);
  if (units == 0) {  // no rows: dw is an empty sum, and its one row block must read as zeros
    if (dw_partial != nullptr && D > 0)
      SSM_CUDA_CHECK(cudaMemsetAsync(dw_partial, 0, static_cast<size_t>(D) * sizeof(T), stream()));
    return;
  }
  if (dx) {
    rms_dx_kernel<T><<<warp_blocks(units), kThreads, 0, stream()>>>(units, n, D / n, x, w, r, dy, dx);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (dw_partial) {
    const dim3 grid(blocks_for(D), static_cast<unsigned>(std::min<int64_t>(rms_norm_row_blocks(rows), 65535)));
    rms_dw_kernel<T><<<grid, kThreads, 0, stream()>>>(rows, D, n, x, r, dy, dw_partial);
    SSM_CUDA_CHECK_LAUNCH();
  }
}

template void rms_norm_forward<float>(int64_t, int64_t, int64_t, double, const float*, const float*, float*, float*);
template void rms_norm_forward<double>(int64_t, int64_t, int64_t, double, const double*, const double*, double*,
                                       double*);
template void rms_norm_backward<float>(int64_t, int64_t, int64_t, const float*, const float*, const float*,
                                       const float*, float*, float*);
template void rms_norm_backward<double>(int64_t, int64_t, int64_t, const double*, const double*, const double*,
                                        const double*, double*, double*);

}  // namespace ssm::cuda
