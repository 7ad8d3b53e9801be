// cuda/mamba3_step.cu — one Mamba-3 decoding step on the GPU: the mixer between in_proj and out_proj for one
// token per sequence, the GPU form of ssm/mamba3_step.cpp (whose header gives the math, spec §3.3–§3.8).
//
// One thread block per (sequence, head), of P/4 warps (at most 8), in phases separated by barriers:
//   1. every thread computes the head's scalars (A, DT, γ, η, α, β: a few flops, no need to share them);
//      threads s < S advance the angles, keep cos θ and sin θ in shared memory and θ mod 2π in the cache;
//   2. a warp per key or query (R of each) normalises it (each lane holds its share of the N features
//      in registers, the sum of squares is a shuffle), scales, adds the bias and rotates its pairs, in
//      shared memory;
//   3. each warp takes 4 of the state rows at once: its lanes load the rows' N entries (neighbouring
//      addresses) into registers (LaneRow), update them from the previous token's keys and x (still in
//      the cache) and this token's, store them, read them out against the R queries (a shuffle sum per
//      rank), and lane 0 adds the D skip, gates and contracts the ranks — or, with the output-projection
//      norm, keeps the read-outs in shared memory for
//   4. a warp per rank: the norm's sum of squares over the head's P read-outs (a shuffle sum); then a
//      thread per channel normalises, weights, gates and contracts the ranks;
// then the block writes this token's keys and x into the cache for the next step. Nothing is allocated
// and nothing waits for the host, so the step can be captured into a CUDA graph (ssm/decoder.h).
#include <algorithm>
#include <cuda/std/numbers>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/mamba3_rates.cuh"
#include "cuda/ssm_fused.h"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda {
namespace {

// At most kStepThreads a block; fewer when the head has few state rows (P / kRowsAtOnce warps suffice),
// so that more blocks fit an SM at once (the 1M model: P = 16, 1280 blocks at batch 64).
constexpr int kStepThreads = 256;
// A lane keeps its share of an N-long row (entries lane, lane + 32, ...: `Slots` of them, N ≤ 32·Slots)
// in registers, and a warp works on kRowsAtOnce state rows together. All their loads are then issued
// before the first is used: one memory latency per kRowsAtOnce rows, not one per 32 entries. At batch 1
// a block's few warps have nothing else to hide that latency with; at batch 64 the state (100 MB at the
// 130M model) streams only as fast as the bytes in flight allow.
constexpr int kRowsAtOnce = 4;
constexpr int kMaxSlots = 8;

// row[lane + 32u] for the lane's slots u (0 past the end of the row)
template <class T, int Slots>
struct LaneRow {
  T v[Slots];
  LaneRow() = default;
  __device__ LaneRow(const T* row, int N, int lane) {
#pragma unroll
    for (int u = 0; u < Slots; ++u) v[u] = lane + 32 * u < N ? row[lane + 32 * u] : T(0);
  }
  __device__ void store(T* row, int N, int lane) const {
#pragma unroll
    for (int u = 0; u < Slots; ++u)
      if (lane + 32 * u < N) row[lane + 32 * u] = v[u];
  }
};

// One key (or query) row, by the 32 lanes of a warp: k = Rot(θ)(x̂ ⊙ w + bias),
// x̂ = raw·(mean(raw²) + eps)^(−1/2) (ssm/key_row.h).
template <class T, int Slots>
__device__ void step_key(const Mamba3StepArgs<T>& a, const T* raw, const T* w, const T* bias, double eps,
                         const T* cos_t, const T* sin_t, T* out) {
  const int lane = threadIdx.x % 32, N = static_cast<int>(a.N);
  LaneRow<T, Slots> x(raw, N, lane);
  const LaneRow<T, Slots> wx(w, N, lane), bx(bias, N, lane);
  T squares = 0;
#pragma unroll
  for (int u = 0; u < Slots; ++u) squares += x.v[u] * x.v[u];
  const T rho = T(1) / sqrt_of(warp_sum(squares) / T(N) + T(eps));
#pragma unroll
  for (int u = 0; u < Slots; ++u) x.v[u] = x.v[u] * rho * wx.v[u] + bx.v[u];
  x.store(out, N, lane);
  __syncwarp();
  for (int64_t m = lane; m < a.S; m += 32) {  // pair m: (2m, 2m+1) adjacent, (m, m + N/2) half split
    const int64_t i = a.half_split ? m : 2 * m, j = a.half_split ? m + a.N / 2 : 2 * m + 1;
    const T x = out[i], y = out[j];
    out[i] = x * cos_t[m] - y * sin_t[m];
    out[j] = x * sin_t[m] + y * cos_t[m];
  }
}

// φ ⊙ o ⊙ silu(z ⊙ ζ) of channel p, rank parameters at `at` = (h·R + r)·P + p, as mamba3_output_gate
// evaluates it
template <class T>
__device__ inline T gated(const Mamba3StepArgs<T>& a, const T* z, T o, int64_t at, int64_t p) {
  const T zeta = a.zeta ? a.zeta[at] : T(1), phi = a.phi ? a.phi[at] : T(1), gate_in = z[p] * zeta;
  return phi * o * gate_in * sigmoid_of(gate_in);
}

template <class T, int Slots>
__global__ void __launch_bounds__(kStepThreads) mamba3_step_kernel(Mamba3StepArgs<T> a) {
  const int64_t H = a.H, P = a.P, N = a.N, R = a.R, G = a.G, S = a.S, d_inner = H * P;
  const int64_t b = blockIdx.x / H, h = blockIdx.x % H, g = h / (H / G), bh = b * H + h;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* cos_t = reinterpret_cast<T*>(shared_bytes);  // [S]
  T* sin_t = cos_t + S;                            // [S]
  T* keys = sin_t + S;                             // [R, N]
  T* queries = keys + R * N;                       // [R, N]
  T* o_rows = queries + R * N;                     // [R, P], with the output-projection norm
  T* rho = o_rows + R * P;                         // [R]: each rank's 1/rms, with the norm
  const T* row = a.rows + b * a.width;
  const T *z = row + h * P, *x = row + d_inner + h * P, *B_raw = row + 2 * d_inner, *C_raw = B_raw + R * G * N;
  const T *dd_dt = C_raw + R * G * N, *dd_A = dd_dt + H, *trap = dd_A + H, *ang = trap + H;

  // 1. §3.3 steps 2–4 (cuda/mamba3_rates.cuh); step 7
  const mamba3::Rates<T> rate = mamba3::rates_of(dd_dt[h] + a.dt_bias[h], dd_A[h], trap[h], T(a.A_floor));
  const T DT = rate.DT, gamma = rate.gamma;
  const T alpha = exp_of(rate.A * DT), beta = alpha * rate.eta;
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
    T* theta_cache = a.angle + bh * S + s;
    const T theta = *theta_cache + DT * (tanh(ang[s]) * T(::cuda::std::numbers::pi));
    cos_t[s] = cos_of(theta);
    sin_t[s] = sin_of(theta);
    const double wide = theta, two_pi = 2 * ::cuda::std::numbers::pi;  // θ mod 2π in float64
    *theta_cache = static_cast<T>(wide - floor(wide * (1.0 / two_pi)) * two_pi);
  }
  __syncthreads();
  // 2. steps 5, 6, 8: key r from B (even jobs), query r from C (odd jobs), a warp each
  const int64_t warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int64_t job = warp; job < 2 * R; job += warps) {
    const int64_t r = job / 2, raw_at = (r * G + g) * N, bias_at = (h * R + r) * N;
    if (job % 2 == 0)
      step_key<T, Slots>(a, B_raw + raw_at, a.w_b, a.b_bias + bias_at, a.eps_b, cos_t, sin_t, keys + r * N);
    else
      step_key<T, Slots>(a, C_raw + raw_at, a.w_c, a.c_bias + bias_at, a.eps_c, cos_t, sin_t, queries + r * N);
  }
  __syncthreads();
  // 3. §3.6 state row p, §3.7 read-out, D skip, gate, rank contraction: a warp per row, kRowsAtOnce of its
  //    rows p = p0 + j·warps at a time. A row past the last (p ≥ P) is computed as row P − 1 and
  //    not written, which keeps the loop free of guards.
  T* x_prev = a.x_cache + bh * P;
  const int n_cols = static_cast<int>(N);
  for (int64_t p0 = warp; p0 < P; p0 += warps * kRowsAtOnce) {
    int64_t p[kRowsAtOnce];
    LaneRow<T, Slots> h_rows[kRowsAtOnce];
#pragma unroll
    for (int j = 0; j < kRowsAtOnce; ++j) {
      p[j] = min(p0 + j * warps, P - 1);
      h_rows[j] = LaneRow<T, Slots>(a.state + (bh * P + p[j]) * N, n_cols, lane);
#pragma unroll
      for (int u = 0; u < Slots; ++u) h_rows[j].v[u] *= alpha;
    }
    for (int64_t r = 0; r < R; ++r) {
      const LaneRow<T, Slots> k_prev(a.k_cache + ((b * R + r) * H + h) * N, n_cols, lane);
      const LaneRow<T, Slots> k_new(keys + r * N, n_cols, lane);
#pragma unroll
      for (int j = 0; j < kRowsAtOnce; ++j) {
        const T psi_rp = a.psi ? a.psi[(h * R + r) * P + p[j]] : T(1);
        const T old_weight = beta * x_prev[p[j]] * psi_rp, new_weight = gamma * x[p[j]] * psi_rp;
#pragma unroll
        for (int u = 0; u < Slots; ++u) h_rows[j].v[u] += old_weight * k_prev.v[u] + new_weight * k_new.v[u];
      }
    }
    T y_p[kRowsAtOnce] = {};
    for (int64_t r = 0; r < R; ++r) {
      const LaneRow<T, Slots> q_r(queries + r * N, n_cols, lane);
#pragma unroll
      for (int j = 0; j < kRowsAtOnce; ++j) {
        T read = 0;
#pragma unroll
        for (int u = 0; u < Slots; ++u) read += h_rows[j].v[u] * q_r.v[u];
        read = warp_sum(read);
        const int64_t at = (h * R + r) * P + p[j];
        const T o = read + a.d_skip[h] * (a.psi ? a.psi[at] : T(1)) * x[p[j]];
        if (!a.w_norm) y_p[j] += gated(a, z, o, at, p[j]);
        else if (lane == 0 && p0 + j * warps < P) o_rows[r * P + p[j]] = o;  // (a clamped row writes nothing)
      }
    }
#pragma unroll
    for (int j = 0; j < kRowsAtOnce; ++j) {
      if (p0 + j * warps >= P) continue;
      h_rows[j].store(a.state + (bh * P + p[j]) * N, n_cols, lane);
      if (lane == 0 && !a.w_norm) a.out[b * d_inner + h * P + p[j]] = y_p[j];
    }
  }
  __syncthreads();  // every row has read the previous token's keys and x (and written its read-outs)
  if (a.w_norm) {  // 4. the output-projection norm over each rank's P read-outs (a warp per rank), the gate
    for (int64_t r = warp; r < R; r += warps) {
      T squares = 0;
      for (int64_t q = lane; q < P; q += 32) squares += o_rows[r * P + q] * o_rows[r * P + q];
      squares = warp_sum(squares);
      if (lane == 0) rho[r] = T(1) / sqrt_of(squares / T(P) + T(a.eps_norm));
    }
    __syncthreads();
    for (int64_t q = threadIdx.x; q < P; q += blockDim.x) {
      T y_q = 0;
      for (int64_t r = 0; r < R; ++r)
        y_q += gated(a, z, o_rows[r * P + q] * rho[r] * a.w_norm[h * P + q], (h * R + r) * P + q, q);
      a.out[b * d_inner + h * P + q] = y_q;
    }
  }
  // §3.8: this token's keys and x become the previous token's
  for (int64_t e = threadIdx.x; e < R * N; e += blockDim.x) a.k_cache[((b * R + e / N) * H + h) * N + e % N] = keys[e];
  for (int64_t p = threadIdx.x; p < P; p += blockDim.x) x_prev[p] = x[p];
}

}  // namespace

template <class T>
void mamba3_decode_step(const Mamba3StepArgs<T>& args) {
  if (args.batch * args.H == 0) return;
  const int64_t norm_values = args.w_norm ? args.R * (args.P + 1) : 0;  // the read-outs and 1/rms per rank
  const size_t bytes = static_cast<size_t>(2 * args.S + 2 * args.R * args.N + norm_values) * sizeof(T);
  SSM_CHECK(bytes <= 48 * 1024, "cuda mamba3_decode_step: ", args.R, " keys and queries of ", args.N,
            (args.w_norm ? " and the norm's read-outs" : ""), " do not fit shared memory");
  SSM_CHECK(args.N <= 32 * kMaxSlots, "cuda mamba3_decode_step: d_state ", args.N, " above the kernel's ",
            32 * kMaxSlots);
  const auto kernel = args.N <= 32 * 4 ? mamba3_step_kernel<T, 4> : mamba3_step_kernel<T, kMaxSlots>;
  const int64_t warps = std::clamp<int64_t>((args.P + kRowsAtOnce - 1) / kRowsAtOnce, 1, kStepThreads / 32);
  kernel<<<static_cast<unsigned>(args.batch * args.H), static_cast<unsigned>(32 * warps), bytes, stream()>>>(args);
  SSM_CUDA_CHECK_LAUNCH();
}

template void mamba3_decode_step<float>(const Mamba3StepArgs<float>&);
template void mamba3_decode_step<double>(const Mamba3StepArgs<double>&);

}  // namespace ssm::cuda
