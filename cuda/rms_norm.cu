// cuda/rms_norm.cu — RMSNorm and the gated RMSNorm, forward and backward on the GPU: the twins of
// nn/rms_norm.cpp's row loops, whose header gives the math (r = (mean(u²) + eps)^(−1/2), y = u·r·w per
// group of n features, u = x or x ⊙ silu(z), and the gate before or after the norm).
//
// A warp per (row, group): its lanes stride the group's n features (four loads in flight per lane: in
// decoding at batch 1 one warp has a whole row and nothing else to hide a load's latency behind), and
// the two sums a group needs (Σ u² forward, Σ ĝ·w·u backward) are warp shuffles. The gate's silu is
// recomputed where it is needed rather than stored (an exp per element is cheaper than its bytes). The
// weight's gradient dw = Σ_rows ĝ·u·r is a sum down columns: a thread per column walks one fixed block
// of rows and writes that block's partial sum, which the caller folds with op::sum, so no two threads
// ever add into one place.
#include <type_traits>

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

enum class Gate { None, BeforeNorm, AfterNorm };

// The normalised input u (x, or x ⊙ silu(z) with the gate before the norm) and the gradient ĝ reaching
// u·r·w (dy, or dy ⊙ silu(z) with the gate after), element `at`.
template <Gate G, class T>
__device__ inline T norm_input(const T* x, const T* z, int64_t at) {
  if constexpr (G == Gate::BeforeNorm) return x[at] * silu_of(z[at]);
  else return x[at];
}
template <Gate G, class T>
__device__ inline T norm_output_grad(const T* dy, const T* z, int64_t at) {
  if constexpr (G == Gate::AfterNorm) return dy[at] * silu_of(z[at]);
  else return dy[at];
}

template <Gate G, class T>
__global__ void rms_forward_kernel(int64_t units, int64_t n, int64_t groups, T eps, const T* x, const T* z,
                                   const T* w, T* r, T* y) {
  const int lane = threadIdx.x % 32;
  for (int64_t unit = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; unit < units;
       unit += int64_t{gridDim.x} * kWarps) {
    const int64_t at = unit * n;  // unit = row·groups + g: groups are consecutive in memory
    const T* wg = w + (unit % groups) * n;
    T squares = 0;
#pragma unroll 4
    for (int64_t k = lane; k < n; k += 32) {
      const T u = norm_input<G>(x, z, at + k);
      squares += u * u;
    }
    const T rg = T(1) / sqrt_of(warp_sum(squares) / T(n) + eps);
    if (lane == 0) r[unit] = rg;
    for (int64_t k = lane; k < n; k += 32) {
      const T out = norm_input<G>(x, z, at + k) * rg * wg[k];
      y[at + k] = G == Gate::AfterNorm ? out * silu_of(z[at + k]) : out;
    }
  }
}

// du = r·(gw − u·r²·mean(gw·u)), gw = ĝ·w; then dx and dz through the gate (nn/rms_norm.cpp's header)
template <Gate G, class T>
__global__ void rms_dx_kernel(int64_t units, int64_t n, int64_t groups, const T* x, const T* z, const T* w,
                              const T* r, const T* dy, T* dx, T* dz) {
  const int lane = threadIdx.x % 32;
  for (int64_t unit = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; unit < units;
       unit += int64_t{gridDim.x} * kWarps) {
    const int64_t at = unit * n;
    const T* wg = w + (unit % groups) * n;
    T gw_u = 0;
#pragma unroll 4
    for (int64_t k = lane; k < n; k += 32)
      gw_u += norm_output_grad<G>(dy, z, at + k) * wg[k] * norm_input<G>(x, z, at + k);
    const T rg = r[unit], scale = rg * rg * warp_sum(gw_u) / T(n);
    for (int64_t k = lane; k < n; k += 32) {
      const T u = norm_input<G>(x, z, at + k);
      const T du = rg * (norm_output_grad<G>(dy, z, at + k) * wg[k] - u * scale);
      if constexpr (G == Gate::None) {
        dx[at + k] = du;
      } else {
        const T zk = z[at + k];
        if (dx) dx[at + k] = G == Gate::BeforeNorm ? du * silu_of(zk) : du;
        if (dz)
          dz[at + k] = (G == Gate::BeforeNorm ? du * x[at + k] : dy[at + k] * u * rg * wg[k]) * silu_slope(zk);
      }
    }
  }
}

// dw_partial[block, j] = Σ over the block's rows i of ĝ[i, j]·u[i, j]·r[i, j / n]
template <Gate G, class T>
__global__ void rms_dw_kernel(int64_t rows, int64_t D, int64_t n, const T* x, const T* z, const T* r, const T* dy,
                              T* dw_partial) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x, groups = D / n;
  if (j >= D) return;
  for (int64_t block = blockIdx.y; block * kRowsPerBlock < rows; block += gridDim.y) {
    const int64_t end = min(rows, (block + 1) * kRowsPerBlock);
    T sum = 0;
    for (int64_t i = block * kRowsPerBlock; i < end; ++i)
      sum += norm_output_grad<G>(dy, z, i * D + j) * norm_input<G>(x, z, i * D + j) * r[i * groups + j / n];
    dw_partial[block * D + j] = sum;
  }
}

unsigned warp_blocks(int64_t units) { return blocks_for(units * 32); }

// fn(std::integral_constant<Gate, G>) for the gate given by z (null: none) and its place.
template <class Fn>
void with_gate(const void* z, bool gate_before_norm, Fn&& fn) {
  if (z == nullptr) fn(std::integral_constant<Gate, Gate::None>{});
  else if (gate_before_norm) fn(std::integral_constant<Gate, Gate::BeforeNorm>{});
  else fn(std::integral_constant<Gate, Gate::AfterNorm>{});
}

}  // namespace

int64_t rms_norm_row_blocks(int64_t rows) { return std::max<int64_t>(1, (rows + kRowsPerBlock - 1) / kRowsPerBlock); }

template <class T>
void rms_norm_forward(int64_t rows, int64_t D, int64_t n, double eps, const T* x, const T* z, bool gate_before_norm,
                      const T* w, T* r, T* y) {
  const int64_t units = rows * (D / n);
  if (units == 0) return;
  with_gate(z, gate_before_norm, [&](auto gate) {
    rms_forward_kernel<gate(), T><<<warp_blocks(units), kThreads, 0, stream()>>>(units, n, D / n, T(eps), x, z, w,
                                                                                 r, y);
    SSM_CUDA_CHECK_LAUNCH();
  });
}

template <class T>
void rms_norm_backward(int64_t rows, int64_t D, int64_t n, const T* x, const T* z, bool gate_before_norm,
                       const T* w, const T* r, const T* dy, T* dx, T* dz, T* dw_partial) {
  const int64_t units = rows * (D / n);
  if (units == 0) {  // no rows: dw is an empty sum, and its one row block must read as zeros
    if (dw_partial != nullptr && D > 0)
      SSM_CUDA_CHECK(cudaMemsetAsync(dw_partial, 0, static_cast<size_t>(D) * sizeof(T), stream()));
    return;
  }
  with_gate(z, gate_before_norm, [&](auto gate) {
    if (dx || dz) {
      rms_dx_kernel<gate(), T><<<warp_blocks(units), kThreads, 0, stream()>>>(units, n, D / n, x, z, w, r, dy, dx,
                                                                              dz);
      SSM_CUDA_CHECK_LAUNCH();
    }
    if (dw_partial) {
      const dim3 grid(blocks_for(D), static_cast<unsigned>(std::min<int64_t>(rms_norm_row_blocks(rows), 65535)));
      rms_dw_kernel<gate(), T><<<grid, kThreads, 0, stream()>>>(rows, D, n, x, z, r, dy, dw_partial);
      SSM_CUDA_CHECK_LAUNCH();
    }
  });
}

#define SSM_INSTANTIATE(T)                                                                                       \
  template void rms_norm_forward<T>(int64_t, int64_t, int64_t, double, const T*, const T*, bool, const T*, T*,   \
                                    T*);                                                                         \
  template void rms_norm_backward<T>(int64_t, int64_t, int64_t, const T*, const T*, bool, const T*, const T*,   \
                                     const T*, T*, T*, T*);
SSM_INSTANTIATE(float)
SSM_INSTANTIATE(double)
#undef SSM_INSTANTIATE

}  // namespace ssm::cuda
