// cuda/mamba3_diag.cu — the diagonal correction of Mamba-3's chunked scan on the GPU (cuda/ssm_fused.h
// gives the formulas; ssm/mamba3_scan_chunked.cpp's per-token passes are the CPU twin, spec §3.6).
//
// The chunked core counts each token's own term with weight γ + η_next, the trapezoid's full weight, and
// the correction takes η_next·(q̃ k̃ᵀ) v back off: per (token, head) an R×R matrix E of N-long dot products
// applied to R rows of P values. A warp per (token, head): the R² dot products are shuffle sums kept in
// the warp's slice of shared memory, then the lanes stride the P (or N) columns of the outputs. Each
// output has one writer, so the in-place updates need no atomics.
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda {
namespace {

constexpr int kWarps = kThreads / 32;

// The warp's unit (token row, head) and where its rank r's N- or P-wide slice starts.
struct Unit {
  int64_t row, h;
  __device__ int64_t at(const DiagLayout& s, int64_t r, int64_t width) const {
    return ((row * s.R + r) * s.H + h) * width;
  }
};

// out[r·R + r'] = a_r · b_r' over `width` columns, for every lane (lane 0 stores, the warp syncs).
template <class T>
__device__ void rank_dots(const DiagLayout& s, const Unit& u, const T* a, const T* b, int64_t width, T* out) {
  const int lane = threadIdx.x % 32;
  for (int64_t i = 0; i < s.R * s.R; ++i) {
    const T *ar = a + u.at(s, i / s.R, width), *br = b + u.at(s, i % s.R, width);
    T dot = 0;
    for (int64_t c = lane; c < width; c += 32) dot += ar[c] * br[c];
    dot = warp_sum(dot);
    if (lane == 0) out[i] = dot;
  }
  __syncwarp();
}

template <class T>
__global__ void diag_forward_kernel(DiagLayout s, const T* q, const T* k, const T* v, const T* eta_next, T* y) {
  __shared__ T warp_E[kWarps][kMaxDiagRank * kMaxDiagRank];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* E = warp_E[warp];
  for (int64_t unit = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; unit < s.rows * s.H;
       unit += int64_t{gridDim.x} * kWarps) {
    const Unit u{unit / s.H, unit % s.H};
    rank_dots(s, u, q, k, s.N, E);
    const T en = eta_next[unit];
    for (int64_t p = lane; p < s.P; p += 32)
      for (int64_t r = 0; r < s.R; ++r) {
        T correction = 0;
        for (int64_t r2 = 0; r2 < s.R; ++r2) correction += E[r * s.R + r2] * v[u.at(s, r2, s.P) + p];
        y[u.at(s, r, s.P) + p] -= en * correction;
      }
    __syncwarp();  // E is read by every lane before the next unit overwrites it
  }
}

template <class T>
__global__ void diag_backward_kernel(DiagLayout s, const T* q, const T* k, const T* v, const T* eta_next, const T* dy,
                                     T* dq, T* dk, T* dv, T* d_eta_next) {
  __shared__ T warp_E[kWarps][kMaxDiagRank * kMaxDiagRank], warp_dyv[kWarps][kMaxDiagRank * kMaxDiagRank];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T *E = warp_E[warp], *dyv = warp_dyv[warp];
  for (int64_t unit = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; unit < s.rows * s.H;
       unit += int64_t{gridDim.x} * kWarps) {
    const Unit u{unit / s.H, unit % s.H};
    rank_dots(s, u, q, k, s.N, E);      // E = q̃ k̃ᵀ
    rank_dots(s, u, dy, v, s.P, dyv);   // dY Vᵀ
    const T en = eta_next[unit];
    if (lane == 0) {
      T d_en = 0;
      for (int64_t i = 0; i < s.R * s.R; ++i) d_en -= E[i] * dyv[i];
      d_eta_next[unit] = d_en;
    }
    for (int64_t p = lane; p < s.P; p += 32)  // dv_r' += −η Σ_r E_{r,r'} dy_r
      for (int64_t r2 = 0; r2 < s.R; ++r2) {
        T sum = 0;
        for (int64_t r = 0; r < s.R; ++r) sum += E[r * s.R + r2] * dy[u.at(s, r, s.P) + p];
        dv[u.at(s, r2, s.P) + p] -= en * sum;
      }
    for (int64_t n = lane; n < s.N; n += 32)  // dE = −η dyv: dq_r += Σ_r' dE_{r,r'} k_r', dk_r' += Σ_r dE_{r,r'} q_r
      for (int64_t r = 0; r < s.R; ++r) {
        T to_q = 0, to_k = 0;
        for (int64_t r2 = 0; r2 < s.R; ++r2) {
          to_q += dyv[r * s.R + r2] * k[u.at(s, r2, s.N) + n];
          to_k += dyv[r2 * s.R + r] * q[u.at(s, r2, s.N) + n];
        }
        dq[u.at(s, r, s.N) + n] -= en * to_q;
        dk[u.at(s, r, s.N) + n] -= en * to_k;
      }
    __syncwarp();
  }
}

void check_rank(const DiagLayout& s) {
  SSM_CHECK(s.R >= 1 && s.R <= kMaxDiagRank, "cuda mamba3 scan: MIMO rank ", s.R, " is above the ", kMaxDiagRank,
            " the GPU's diagonal correction supports");
}

}  // namespace

template <class T>
void mamba3_diag_forward(const DiagLayout& s, const T* q, const T* k, const T* v, const T* eta_next, T* y) {
  check_rank(s);
  if (s.rows * s.H == 0) return;
  diag_forward_kernel<T><<<blocks_for(s.rows * s.H * 32), kThreads, 0, stream()>>>(s, q, k, v, eta_next, y);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_diag_backward(const DiagLayout& s, const T* q, const T* k, const T* v, const T* eta_next, const T* dy,
                          T* dq, T* dk, T* dv, T* d_eta_next) {
  check_rank(s);
  if (s.rows * s.H == 0) return;
  diag_backward_kernel<T><<<blocks_for(s.rows * s.H * 32), kThreads, 0, stream()>>>(s, q, k, v, eta_next, dy, dq, dk,
                                                                                   dv, d_eta_next);
  SSM_CUDA_CHECK_LAUNCH();
}

template void mamba3_diag_forward<float>(const DiagLayout&, const float*, const float*, const float*, const float*,
                                         float*);
template void mamba3_diag_forward<double>(const DiagLayout&, const double*, const double*, const double*,
                                          const double*, double*);
template void mamba3_diag_backward<float>(const DiagLayout&, const float*, const float*, const float*, const float*,
                                          const float*, float*, float*, float*, float*);
template void mamba3_diag_backward<double>(const DiagLayout&, const double*, const double*, const double*,
                                           const double*, const double*, double*, double*, double*, double*);

}  // namespace ssm::cuda
