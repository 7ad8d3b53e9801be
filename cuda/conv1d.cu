// cuda/conv1d.cu — the depthwise causal convolution (+ SiLU) forward and backward on the GPU: the twins of
// nn/conv1d.cpp's row loops, whose header gives the math (a = bias + Σ_j w_j · x[t − (K−1) + j],
// out = silu(a); ga = g · silu'(a) the gradient reaching a).
//
// Forward and dx are a thread per element: neighbouring threads take neighbouring channels, so each of
// the K taps' loads is one coalesced row read, and the rows a block reads overlap in L1/L2. The weight's
// and bias's gradients are sums down the time axis: a thread per channel walks one fixed block of rows
// (recomputing a there, writing ga for the dx kernel when SiLU is on) and writes that block's partial
// sums, which the caller folds with op::sum — no atomics, the same bits on every run. Indices are 32-bit
// (the host checks the sizes stay below 2³¹, so a grid-stride step cannot wrap): a 64-bit division costs
// more than the element's arithmetic.
#include <algorithm>
#include <cstdint>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/nn_fused.h"

namespace ssm::cuda {
namespace {

constexpr int kMaxTaps = 8;              // the tap sums live in registers; Mamba's d_conv is 4
constexpr uint32_t kRowsPerBlock = 32;   // rows summed by one thread into partial
constexpr int kSumThreads = 128;         // channels per block of the sums kernel

struct ConvSizes {
  uint32_t rows, L, C;
  int K;
};

// a at (row, c), row = b·L + t: taps [K, C], bias [C] or null
template <class T>
__device__ inline T pre_activation(const ConvSizes& s, const T* x, const T* taps, const T* bias, uint32_t row,
                                   uint32_t c) {
  const uint32_t t = row % s.L;
  T a = bias ? bias[c] : T(0);
  for (int j = t >= uint32_t(s.K - 1) ? 0 : s.K - 1 - int(t); j < s.K; ++j)
    a += taps[j * s.C + c] * x[(row - (s.K - 1) + j) * s.C + c];
  return a;
}

template <class T>
__global__ void conv_forward_kernel(ConvSizes s, const T* x, const T* taps, const T* bias, bool silu, T* out) {
  const uint32_t elements = s.rows * s.C;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < elements; i += gridDim.x * blockDim.x) {
    const uint32_t row = i / s.C, c = i - row * s.C;
    const T a = pre_activation(s, x, taps, bias, row, c);
    out[i] = silu ? silu_of(a) : a;
  }
}

// Per (channel, block of rows): ga (stored to g_pre when SiLU is on) and the block's partial sums
// partial[block, j, c] = Σ ga · x[t − (K−1) + j] for each tap j, partial[block, K, c] = Σ ga.
template <class T>
__global__ void conv_sums_kernel(ConvSizes s, const T* x, const T* taps, const T* bias, const T* g, T* g_pre,
                                 T* partial) {
  const uint32_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= s.C) return;
  for (uint32_t block = blockIdx.y; block * kRowsPerBlock < s.rows; block += gridDim.y) {
    T tap_sums[kMaxTaps] = {};
    T bias_sum = 0;
    const uint32_t end = min(s.rows, (block + 1) * kRowsPerBlock);
    for (uint32_t row = block * kRowsPerBlock; row < end; ++row) {
      T ga = g[row * s.C + c];
      if (g_pre) {
        ga *= silu_slope(pre_activation(s, x, taps, bias, row, c));
        g_pre[row * s.C + c] = ga;
      }
      const uint32_t t = row % s.L;
#pragma unroll
      for (int j = 0; j < kMaxTaps; ++j)  // unrolled with a guard, so the sums stay in registers
        if (j < s.K && t + j >= uint32_t(s.K - 1)) tap_sums[j] += ga * x[(row - (s.K - 1) + j) * s.C + c];
      bias_sum += ga;
    }
    T* sums = partial + size_t{block} * (s.K + 1) * s.C;
#pragma unroll
    for (int j = 0; j < kMaxTaps; ++j)
      if (j < s.K) sums[j * s.C + c] = tap_sums[j];
    sums[s.K * s.C + c] = bias_sum;
  }
}

// dx[s, c] = Σ_j ga[s + (K−1) − j, c] · taps[j, c] over the outputs inside the sequence
template <class T>
__global__ void conv_dx_kernel(ConvSizes s, const T* taps, const T* ga, T* dx) {
  const uint32_t elements = s.rows * s.C;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < elements; i += gridDim.x * blockDim.x) {
    const uint32_t row = i / s.C, c = i - row * s.C, t = row % s.L;
    T sum = 0;
    for (int j = s.K - 1; j >= 0 && t + (s.K - 1 - j) < s.L; --j)
      sum += ga[(row + (s.K - 1 - j)) * s.C + c] * taps[j * s.C + c];
    dx[i] = sum;
  }
}

ConvSizes sizes_of(int64_t rows, int64_t L, int64_t C, int64_t K) {
  SSM_CHECK(K <= kMaxTaps, "causal_conv1d: the GPU kernels take up to ", kMaxTaps, " taps, got ", K);
  SSM_CHECK(rows * C <= int64_t{INT32_MAX}, "causal_conv1d: ", rows, " rows of ", C,
            " channels pass the GPU kernels' 32-bit indices; split the batch");
  return {static_cast<uint32_t>(rows), static_cast<uint32_t>(L), static_cast<uint32_t>(C), static_cast<int>(K)};
}

}  // namespace

int64_t causal_conv1d_row_blocks(int64_t rows) {
  return std::max<int64_t>(1, (rows + kRowsPerBlock - 1) / kRowsPerBlock);
}

template <class T>
void causal_conv1d_forward(int64_t rows, int64_t L, int64_t C, int64_t K, const T* x, const T* taps, const T* bias,
                           bool silu, T* out) {
  const ConvSizes s = sizes_of(rows, L, C, K);
  if (rows * C == 0) return;
  conv_forward_kernel<T><<<blocks_for(rows * C), kThreads, 0, stream()>>>(s, x, taps, bias, silu, out);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void causal_conv1d_backward(int64_t rows, int64_t L, int64_t C, int64_t K, const T* x, const T* taps, const T* bias,
                            bool silu, const T* g, T* g_pre, T* partial, T* dx) {
  const ConvSizes s = sizes_of(rows, L, C, K);
  if (rows * C == 0) {  // no rows: the sums are empty, and the one row block must read as zeros
    if (C > 0) SSM_CUDA_CHECK(cudaMemsetAsync(partial, 0, static_cast<size_t>((K + 1) * C) * sizeof(T), stream()));
    return;
  }
  const dim3 grid(blocks_for(C, kSumThreads),
                  static_cast<unsigned>(std::min<int64_t>(causal_conv1d_row_blocks(rows), 65535)));
  conv_sums_kernel<T><<<grid, kSumThreads, 0, stream()>>>(s, x, taps, bias, g, silu ? g_pre : nullptr, partial);
  SSM_CUDA_CHECK_LAUNCH();
  if (dx) {
    conv_dx_kernel<T><<<blocks_for(rows * C), kThreads, 0, stream()>>>(s, taps, silu ? g_pre : g, dx);
    SSM_CUDA_CHECK_LAUNCH();
  }
}

#define SSM_INSTANTIATE(T)                                                                                     \
  template void causal_conv1d_forward<T>(int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*, bool, \
                                         T*);                                                                  \
  template void causal_conv1d_backward<T>(int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*,    \
                                          bool, const T*, T*, T*, T*);
SSM_INSTANTIATE(float)
SSM_INSTANTIATE(double)
#undef SSM_INSTANTIATE

}  // namespace ssm::cuda
