// cuda/mamba3_diag.cu — the diagonal correction of Mamba-3's chunked scan on the GPU (cuda/ssm_fused.h
// gives the formulas; ssm/mamba3_scan_chunked.cpp's per-token passes are the CPU twin, spec §3.6).
//
// The chunked core on CUDA cores (float64, and heads the tensor cores do not take) counts each token's own
// term with weight γ + η_next, the trapezoid's full weight, and the correction takes η_next·(q̃ k̃ᵀ) v back
// off (the tensor-core kernels weigh the own term with γ themselves: the own-step discount of
// cuda/ssm_kernels.h): per (token, head) an R×R matrix E of N-long dot products
// applied to R rows of P values. A team of lanes per (token, head) — as many as the wider of N and P
// needs, 8 to 32, so that at N = P = 16 a warp serves two — forms the R² dot products as shuffle sums,
// keeps them in the team's slice of shared memory, then strides the P (or N) columns of the outputs. Each
// output has one writer, so the in-place updates need no atomics.
#include <algorithm>
#include <cstdint>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda {
namespace {

constexpr int kMinTeam = 8, kMaxTeams = kThreads / kMinTeam;  // teams per block, at most
constexpr int kPairs = kMaxDiagRank * kMaxDiagRank;

// The lanes of one team (its width chosen at run time; cuda/mamba3_keys.cu's Team is a compile-time block or
// warp) and the (token, head) unit they serve in this round of the grid-stride loop.
// Every team of a warp goes round the loop together (their shuffles are the warp's), so a team past the
// last unit still runs, with `valid` false: it reads zeros and writes nothing.
// Unit = row·H + h. Its row and head are found with one 32-bit division (the host checks that the
// units fit 32 bits): a 64-bit division is a ~100-instruction routine, more than a unit's arithmetic
// at the 1M model's N = P = 16.
struct LaneTeam {
  int width, lane, slot;  // lanes per team, this lane's place in it, the team's index in the block
  int64_t unit, row;
  int h;
  bool valid;
};

template <class Body>
__device__ void for_each_unit(const DiagLayout& s, int width, Body body) {
  const int64_t units = s.rows * s.H;
  const int slot = threadIdx.x / width, teams_per_block = blockDim.x / width;
  for (int64_t first = int64_t{blockIdx.x} * teams_per_block; first < units;
       first += int64_t{gridDim.x} * teams_per_block) {
    const int64_t unit = first + slot;
    const bool valid = unit < units;
    const uint32_t u = valid ? static_cast<uint32_t>(unit) : 0, H = static_cast<uint32_t>(s.H);
    body(LaneTeam{width, static_cast<int>(threadIdx.x % width), slot, unit, u / H, static_cast<int>(u % H), valid});
  }
}

// Where rank r's `width` values of the team's unit (row, h) start in a [rows, R, H, width] array.
struct Slices {
  int64_t base, rank_stride;  // in elements, for one width
  __device__ Slices(const DiagLayout& s, const LaneTeam& t, int width)
      : base((t.row * s.R * s.H + t.h) * width), rank_stride(s.H * width) {}
  __device__ int64_t operator()(int r) const { return base + r * rank_stride; }
};

// out[r·R + r'] = a_r · b_r' over `width` columns (lane 0 of the team stores; the warp syncs).
template <class T>
__device__ void rank_dots(const DiagLayout& s, const LaneTeam& t, const T* a, const T* b, int width, T* out) {
  const Slices at(s, t, width);
  const int R = static_cast<int>(s.R);
  for (int r = 0; r < R; ++r)
    for (int r2 = 0; r2 < R; ++r2) {
      const T *ar = a + at(r), *br = b + at(r2);
      T dot = 0;
      if (t.valid)
        for (int c = t.lane; c < width; c += t.width) dot += ar[c] * br[c];
      dot = warp_sum(dot, t.width);
      if (t.lane == 0) out[r * R + r2] = dot;
    }
  __syncwarp();
}

template <class T>
__global__ void diag_forward_kernel(DiagLayout s, int width, const T* q, const T* k, const T* v, const T* eta_next,
                                    T* y) {
  __shared__ T team_E[kMaxTeams][kPairs];
  const int R = static_cast<int>(s.R), N = static_cast<int>(s.N), P = static_cast<int>(s.P);
  for_each_unit(s, width, [&](const LaneTeam& t) {
    T* E = team_E[t.slot];
    rank_dots(s, t, q, k, N, E);
    if (t.valid) {
      const Slices at(s, t, P);
      const T en = eta_next[t.unit];
      for (int p = t.lane; p < P; p += t.width)
        for (int r = 0; r < R; ++r) {
          T correction = 0;
          for (int r2 = 0; r2 < R; ++r2) correction += E[r * R + r2] * v[at(r2) + p];
          y[at(r) + p] -= en * correction;
        }
    }
    __syncwarp();  // E is read by every lane before the next unit overwrites it
  });
}

template <class T>
__global__ void diag_backward_kernel(DiagLayout s, int width, const T* q, const T* k, const T* v, const T* eta_next,
                                     const T* dy, T* dq, T* dk, T* dv, T* d_eta_next) {
  __shared__ T team_E[kMaxTeams][kPairs], team_dyv[kMaxTeams][kPairs];
  const int R = static_cast<int>(s.R), N = static_cast<int>(s.N), P = static_cast<int>(s.P);
  for_each_unit(s, width, [&](const LaneTeam& t) {
    T *E = team_E[t.slot], *dyv = team_dyv[t.slot];
    rank_dots(s, t, q, k, N, E);     // E = q̃ k̃ᵀ
    rank_dots(s, t, dy, v, P, dyv);  // dY Vᵀ
    if (t.valid) {
      const T en = eta_next[t.unit];
      if (t.lane == 0) {
        T d_en = 0;
        for (int i = 0; i < R * R; ++i) d_en -= E[i] * dyv[i];
        d_eta_next[t.unit] = d_en;
      }
      const Slices at_p(s, t, P), at_n(s, t, N);
      for (int p = t.lane; p < P; p += t.width)  // dv_r' += −η Σ_r E_{r,r'} dy_r
        for (int r2 = 0; r2 < R; ++r2) {
          T sum = 0;
          for (int r = 0; r < R; ++r) sum += E[r * R + r2] * dy[at_p(r) + p];
          dv[at_p(r2) + p] -= en * sum;
        }
      for (int n = t.lane; n < N; n += t.width)  // dE = −η dyv: dq_r += Σ_r' dE_{r,r'} k_r', dk_r' += Σ_r dE_{r,r'} q_r
        for (int r = 0; r < R; ++r) {
          T to_q = 0, to_k = 0;
          for (int r2 = 0; r2 < R; ++r2) {
            to_q += dyv[r * R + r2] * k[at_n(r2) + n];
            to_k += dyv[r2 * R + r] * q[at_n(r2) + n];
          }
          dq[at_n(r) + n] -= en * to_q;
          dk[at_n(r) + n] -= en * to_k;
        }
    }
    __syncwarp();
  });
}

// Lanes per unit: the power of two that covers the wider of N and P, from 8 to 32.
int team_width(const DiagLayout& s) {
  int width = kMinTeam;
  while (width < 32 && width < std::max(s.N, s.P)) width *= 2;
  return width;
}

void check_sizes(const DiagLayout& s) {
  SSM_CHECK(s.R >= 1 && s.R <= kMaxDiagRank, "cuda mamba3 scan: MIMO rank ", s.R, " is above the ", kMaxDiagRank,
            " the GPU's diagonal correction supports");
  SSM_CHECK(s.rows * s.H <= int64_t{UINT32_MAX} && std::max(s.N, s.P) <= INT32_MAX,
            "cuda mamba3 scan: ", s.rows, " tokens x ", s.H, " heads is too many for the diagonal correction's 32-bit units");
}

}  // namespace

template <class T>
void mamba3_diag_forward(const DiagLayout& s, const T* q, const T* k, const T* v, const T* eta_next, T* y) {
  check_sizes(s);
  if (s.rows * s.H == 0) return;
  const int width = team_width(s);
  diag_forward_kernel<T><<<blocks_for(s.rows * s.H * width), kThreads, 0, stream()>>>(s, width, q, k, v, eta_next, y);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_diag_backward(const DiagLayout& s, const T* q, const T* k, const T* v, const T* eta_next, const T* dy,
                          T* dq, T* dk, T* dv, T* d_eta_next) {
  check_sizes(s);
  if (s.rows * s.H == 0) return;
  const int width = team_width(s);
  diag_backward_kernel<T><<<blocks_for(s.rows * s.H * width), kThreads, 0, stream()>>>(s, width, q, k, v, eta_next, dy,
                                                                                      dq, dk, dv, d_eta_next);
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
