// cuda/mamba3_angles.cu — Mamba-3's angle steps ω = π·tanh(ang)·DT on the GPU (math: ssm/mamba3_angles.h).
//
// Forward: a thread per element (row, h, m) of ω, launched by row_launch; the h = 0 threads also keep
// π·tanh(ang) for the backward. Backward: a warp per row, its lanes first over the heads (dDT, a sum over
// the row's pairs), then over the pairs (dang, a sum over the heads); the row's H·S values of dω are read
// twice, the second time from L1. Every output has one writer, in a fixed order.
#include <numbers>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"

namespace ssm::cuda {
namespace {

template <class T>
__global__ void angle_steps_forward_kernel(AngleLayout s, const T* DT, const T* ang, T* omega, T* scaled) {
  for_each_row_element(s.rows, s.H, s.S, [&](int64_t row, int h, int m, int64_t i) {
    const T pt = std::numbers::pi_v<T> * tanh(ang[row * s.ang_stride + m]);
    omega[i] = DT[row * s.H + h] * pt;
    if (h == 0) scaled[row * s.S + m] = pt;
  });
}

template <class T>
__global__ void angle_steps_backward_kernel(AngleLayout s, const T* DT, const T* scaled, const T* d_omega, T* dDT,
                                            T* dang) {
  constexpr T pi = std::numbers::pi_v<T>;
  const int lane = static_cast<int>(threadIdx.x % 32), H = static_cast<int>(s.H), S = static_cast<int>(s.S);
  const int64_t warps = int64_t{gridDim.x} * blockDim.x / 32;
  for (int64_t row = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; row < s.rows; row += warps) {
    const T *dw = d_omega + row * H * S, *pt = scaled + row * S, *dt = DT + row * H;
    for (int h = lane; h < H; h += 32) {
      T sum = 0;
      for (int m = 0; m < S; ++m) sum += dw[h * S + m] * pt[m];
      dDT[row * H + h] = sum;
    }
    for (int m = lane; m < S; m += 32) {
      T sum = 0;
      for (int h = 0; h < H; ++h) sum += dw[h * S + m] * dt[h];
      dang[row * S + m] = (pi - pt[m] * pt[m] / pi) * sum;  // π(1 − tanh²) = π − (π tanh)²/π
    }
  }
}

}  // namespace

template <class T>
void mamba3_angle_steps_forward(const AngleLayout& s, const T* DT, const T* ang, T* omega, T* scaled) {
  if (s.rows * s.H * s.S == 0) return;
  const RowLaunch rows = row_launch(s.rows, s.H * s.S);
  angle_steps_forward_kernel<T><<<rows.blocks, rows.threads, 0, stream()>>>(s, DT, ang, omega, scaled);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_angle_steps_backward(const AngleLayout& s, const T* DT, const T* scaled, const T* d_omega, T* dDT,
                                 T* dang) {
  if (s.rows == 0) return;  // (with no pairs, S = 0, the kernel still writes dDT: zeros)
  angle_steps_backward_kernel<T><<<blocks_for(s.rows * 32), kThreads, 0, stream()>>>(s, DT, scaled, d_omega, dDT, dang);
  SSM_CUDA_CHECK_LAUNCH();
}

#define SSM_INSTANTIATE_ANGLES(T)                                                                           \
  template void mamba3_angle_steps_forward<T>(const AngleLayout&, const T*, const T*, T*, T*);              \
  template void mamba3_angle_steps_backward<T>(const AngleLayout&, const T*, const T*, const T*, T*, T*);
SSM_INSTANTIATE_ANGLES(float)
SSM_INSTANTIATE_ANGLES(double)
#undef SSM_INSTANTIATE_ANGLES

}  // namespace ssm::cuda
