// cuda/mamba2_step.cu — one Mamba-2 decoding step on the GPU: the GPU form of ssm/mamba2_step.cpp (whose
// header gives the math, spec §2.5), its two passes as two kernels:
//   1. a thread per (sequence, channel): shift the channel's conv window, take the new input, convolve,
//      SiLU into xbc (B and C are shared by a group's heads, so every head waits for this kernel);
//   2. a warp per (sequence, head, state row p): its lanes hold the row's N entries (neighbouring
//      addresses, one coalesced read and write), update them with α and dt·x_p·B, and sum h·C by
//      shuffles; lane 0 adds D·x_p.
// Nothing is allocated and nothing waits for the host, so the step can be captured into a CUDA graph.
#include <algorithm>
#include <cstdint>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda {
namespace {

template <class T>
__global__ void conv_step_kernel(Mamba2StepArgs<T> a) {
  const int64_t channels = a.batch * a.C;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < channels; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / a.C, c = i % a.C;
    T* window = a.conv_state + b * a.K * a.C + c;  // [K] of this channel, a.C apart, oldest first
    T sum = a.conv_bias ? a.conv_bias[c] : T(0);
    for (int64_t k = 0; k + 1 < a.K; ++k) {
      const T shifted = window[(k + 1) * a.C];
      window[k * a.C] = shifted;
      sum += a.w[c * a.K + k] * shifted;
    }
    const T newest = a.rows[b * a.width + a.d_inner + c];
    window[(a.K - 1) * a.C] = newest;
    sum += a.w[c * a.K + a.K - 1] * newest;
    a.xbc[i] = silu_of(sum);
  }
}

template <class T>
__global__ void ssd_step_kernel(Mamba2StepArgs<T> a) {
  const int lane = threadIdx.x % 32;
  const int64_t units = a.batch * a.H * a.P;  // (b, h, p), one warp each
  for (int64_t unit = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; unit < units;
       unit += int64_t{gridDim.x} * (blockDim.x / 32)) {
    const int64_t bh = unit / a.P, p = unit % a.P, b = bh / a.H, h = bh % a.H, g = h / (a.H / a.G);
    const T* xbc_b = a.xbc + b * a.C;
    const T *B = xbc_b + a.d_inner + g * a.N, *C = B + a.G * a.N, x_p = xbc_b[h * a.P + p];
    const T dt = softplus_of(a.rows[b * a.width + a.d_inner + a.C + h] + a.dt_bias[h]);
    const T alpha = exp_of(-exp_of(a.A_log[h]) * dt), dt_x = dt * x_p;
    T* row = a.state + unit * a.N;  // state [batch, H, P, N]: unit (b, h, p) is row `unit`
    T read = 0;
    for (int64_t n = lane; n < a.N; n += 32) {
      const T s = alpha * row[n] + dt_x * B[n];
      row[n] = s;
      read += s * C[n];
    }
    read = warp_sum(read);
    if (lane == 0) a.out[b * a.d_inner + h * a.P + p] = read + a.d_skip[h] * x_p;
  }
}

}  // namespace

template <class T>
void mamba2_decode_step(const Mamba2StepArgs<T>& a) {
  if (a.batch == 0) return;
  conv_step_kernel<T><<<blocks_for(a.batch * a.C), kThreads, 0, stream()>>>(a);
  SSM_CUDA_CHECK_LAUNCH();
  ssd_step_kernel<T><<<blocks_for(a.batch * a.H * a.P * 32), kThreads, 0, stream()>>>(a);
  SSM_CUDA_CHECK_LAUNCH();
}

template void mamba2_decode_step<float>(const Mamba2StepArgs<float>&);
template void mamba2_decode_step<double>(const Mamba2StepArgs<double>&);

}  // namespace ssm::cuda
