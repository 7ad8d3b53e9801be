// cuda/mamba3_rates.cu — Mamba-3's per-(token, head) rates, forward and backward: the GPU form of
// ssm/mamba3_rates.cpp's loops (ssm/mamba3_rates.h gives the math). A thread per (row, head), reading the
// in_proj columns in place (one row stride apart) and writing [rows, H] outputs; 32-bit indices (below
// 2³¹, so a grid-stride step cannot wrap).
#include <algorithm>
#include <cstdint>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.cuh"
#include "cuda/mamba3_rates.cuh"
#include "cuda/ssm_fused.h"

namespace ssm::cuda {
namespace {

// (row, h) of element i of [rows, H], and the offsets of its inputs
struct RateElement {
  uint32_t at, dt, a, trap, h;
  template <class T>
  __device__ RateElement(const RateInputs<T>& in, uint32_t i) : at(i) {
    const uint32_t H = static_cast<uint32_t>(in.H), row = i / H;
    h = i - row * H;
    dt = row * static_cast<uint32_t>(in.dt_stride) + h;
    a = row * static_cast<uint32_t>(in.a_stride) + h;
    trap = row * static_cast<uint32_t>(in.trap_stride) + h;
  }
};

template <class T>
__device__ inline T value_or_zero(const T* p, uint32_t i) {
  return p ? p[i] : T(0);
}

template <class T>
__global__ void rates_forward_kernel(RateInputs<T> in, T* adt, T* gamma, T* eta, T* DT) {
  const uint32_t elements = static_cast<uint32_t>(in.rows * in.H);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < elements; i += gridDim.x * blockDim.x) {
    const RateElement e(in, i);
    const mamba3::Rates<T> r = mamba3::rates_of(in.dd_dt[e.dt] + in.dt_bias[e.h], in.dd_A[e.a], in.trap[e.trap],
                                                in.A_floor);
    adt[i] = r.A * r.DT;
    gamma[i] = r.gamma;
    eta[i] = r.eta;
    DT[i] = r.DT;
  }
}

template <class T>
__global__ void rates_backward_kernel(RateInputs<T> in, const T* g_adt, const T* g_gamma, const T* g_eta,
                                      const T* g_DT, T* d_dt, T* d_a, T* d_trap) {
  const uint32_t elements = static_cast<uint32_t>(in.rows * in.H);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < elements; i += gridDim.x * blockDim.x) {
    const RateElement e(in, i);
    const mamba3::RateGrads<T> d = mamba3::rate_grads(
        in.dd_dt[e.dt] + in.dt_bias[e.h], in.dd_A[e.a], in.trap[e.trap], in.A_floor, value_or_zero(g_adt, i),
        value_or_zero(g_gamma, i), value_or_zero(g_eta, i), value_or_zero(g_DT, i));
    d_dt[i] = d.dt_in;
    d_a[i] = d.a_in;
    d_trap[i] = d.trap;
  }
}

template <class T>
void check_sizes(const RateInputs<T>& in) {
  const int64_t widest = std::max({in.dt_stride, in.a_stride, in.trap_stride, in.H});
  SSM_CHECK(in.rows * widest <= int64_t{INT32_MAX}, "mamba3_rates: ", in.rows, " rows of ", widest,
            " values pass the GPU kernels' 32-bit indices; split the batch");
}

}  // namespace

template <class T>
void mamba3_rates_forward(const RateInputs<T>& in, T* adt, T* gamma, T* eta, T* DT) {
  check_sizes(in);
  if (in.rows * in.H == 0) return;
  rates_forward_kernel<T><<<blocks_for(in.rows * in.H), kThreads, 0, stream()>>>(in, adt, gamma, eta, DT);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_rates_backward(const RateInputs<T>& in, const T* g_adt, const T* g_gamma, const T* g_eta, const T* g_DT,
                           T* d_dt, T* d_a, T* d_trap) {
  check_sizes(in);
  if (in.rows * in.H == 0) return;
  rates_backward_kernel<T><<<blocks_for(in.rows * in.H), kThreads, 0, stream()>>>(in, g_adt, g_gamma, g_eta, g_DT,
                                                                                  d_dt, d_a, d_trap);
  SSM_CUDA_CHECK_LAUNCH();
}

#define SSM_INSTANTIATE(T)                                                                                       \
  template void mamba3_rates_forward<T>(const RateInputs<T>&, T*, T*, T*, T*);                                   \
  template void mamba3_rates_backward<T>(const RateInputs<T>&, const T*, const T*, const T*, const T*, T*, T*, T*);
SSM_INSTANTIATE(float)
SSM_INSTANTIATE(double)
#undef SSM_INSTANTIATE

}  // namespace ssm::cuda
