// cuda/mamba3_values.cu — MIMO's rank up-projection of the values on the GPU (math: ssm/mamba3_values.h).
//
//   forward   v_r = x ⊙ ψ_r                 backward   dx = Σ_r ψ_r ⊙ dv_r,   dψ_r = Σ_rows x ⊙ dv_r
//
// Forward and dx: one thread per element (row, h, p) of x, looping over the ranks. dψ [H, R, P] sums over
// every row: one thread per (chunk of rows, h, r, p) adds its chunk in row order into a partial, and the
// caller adds the partials in chunk order — fixed order, no atomics. Neighbouring threads own neighbouring
// p, so every read is coalesced. As broadcast tensor ops the backward was two multiplies and two
// reductions over [rows, R, H, P], each a full pass written out and read back.
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"

namespace ssm::cuda {
namespace {

__device__ inline int64_t v_at(const ValuesLayout& s, int64_t row, int64_t r, int64_t h, int64_t p) {
  return ((row * s.R + r) * s.H + h) * s.P + p;
}
__device__ inline int64_t psi_at(const ValuesLayout& s, int64_t h, int64_t r, int64_t p) {
  return (h * s.R + r) * s.P + p;
}

template <class T>
__global__ void values_forward_kernel(ValuesLayout s, const T* x, const T* psi, T* v) {
  for_each_row_element(s.rows, s.H, s.P, [&](int64_t row, int h, int p, int64_t) {
    const T xv = x[row * s.x_stride + h * s.P + p];
    for (int64_t r = 0; r < s.R; ++r) v[v_at(s, row, r, h, p)] = xv * psi[psi_at(s, h, r, p)];
  });
}

template <class T>
__global__ void values_backward_x_kernel(ValuesLayout s, const T* psi, const T* dv, T* dx) {
  for_each_row_element(s.rows, s.H, s.P, [&](int64_t row, int h, int p, int64_t i) {
    T acc = 0;
    for (int64_t r = 0; r < s.R; ++r) acc += psi[psi_at(s, h, r, p)] * dv[v_at(s, row, r, h, p)];
    dx[i] = acc;
  });
}

template <class T>
__global__ void values_backward_psi_kernel(ValuesLayout s, int64_t chunks, const T* x, const T* dv, T* partial) {
  const int64_t HRP = s.H * s.R * s.P;
  for_each_param_partial(s.rows, chunks, s.H, s.R, s.P, [&](int64_t chunk, int64_t hrp, int64_t h, int64_t r,
                                                            int64_t p, int64_t row_begin, int64_t row_end) {
    T acc = 0;
    for (int64_t row = row_begin; row < row_end; ++row)
      acc += x[row * s.x_stride + h * s.P + p] * dv[v_at(s, row, r, h, p)];
    partial[chunk * HRP + hrp] = acc;
  });
}

}  // namespace

template <class T>
void mamba3_values_forward(const ValuesLayout& s, const T* x, const T* psi, T* v) {
  if (s.rows * s.H * s.P == 0) return;
  const RowLaunch rows = row_launch(s.rows, s.H * s.P);
  values_forward_kernel<T><<<rows.blocks, rows.threads, 0, stream()>>>(s, x, psi, v);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_values_backward(const ValuesLayout& s, const T* x, const T* psi, const T* dv, T* dx, T* dpsi_partial) {
  if (s.rows * s.H * s.P > 0) {
    const RowLaunch rows = row_launch(s.rows, s.H * s.P);
    values_backward_x_kernel<T><<<rows.blocks, rows.threads, 0, stream()>>>(s, psi, dv, dx);
    SSM_CUDA_CHECK_LAUNCH();
  }
  const int64_t chunks = param_row_chunks(s.rows), partials = chunks * s.H * s.R * s.P;
  if (partials == 0) return;
  values_backward_psi_kernel<T><<<blocks_for(partials), kThreads, 0, stream()>>>(s, chunks, x, dv, dpsi_partial);
  SSM_CUDA_CHECK_LAUNCH();
}

#define SSM_INSTANTIATE_VALUES(T)                                                                   \
  template void mamba3_values_forward<T>(const ValuesLayout&, const T*, const T*, T*);              \
  template void mamba3_values_backward<T>(const ValuesLayout&, const T*, const T*, const T*, T*, T*);
SSM_INSTANTIATE_VALUES(float)
SSM_INSTANTIATE_VALUES(double)
#undef SSM_INSTANTIATE_VALUES

}  // namespace ssm::cuda
