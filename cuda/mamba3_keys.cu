// cuda/mamba3_keys.cu — Mamba-3's fused keys/queries on the GPU (math: ssm/mamba3_keys.h, ssm/rotary.h).
//
//   x̂ = raw·ρ, ρ = (mean(raw²) + ε)^(−1/2);   k_h = x̂ ⊙ w + bias[h, r];   k̃_h = Rot(θ_h) k_h
//
// One thread block per unit (row, r, g) — one N-row of raw — whose threads share out the (head, n)
// elements of the H/G heads that read it, so the normalisation is done once per group, as on the CPU. Within a row, dimension n of a rotated
// pair m (partner n') is  y_n = k_n cos θ_m ∓ k_n' sin θ_m  (− for the pair's first element, + for the
// second), which lets each thread compute its own elements without talking to the others; Rotᵀ flips
// the sign of sin.
//
// Backward, per unit: dk_h = Rotᵀ dk̃_h, dbias[h, r] += dk_h, dn = Σ_h dk_h, dw += dn ⊙ x̂,
// draw = ρ (dn ⊙ w − x̂ · mean(dn ⊙ w ⊙ x̂)). dθ_{t,h,m} = Σ_r (y_a dy_b − y_b dy_a) sums over the
// ranks, which live in different blocks, so a second kernel gives each (row, h, m) one thread that
// recomputes y_a, y_b from raw and the ρ saved by the first. Parameter gradients go to per-unit
// partials that the caller sums in a fixed order: no atomics.
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda {
namespace {

constexpr int kRowThreads = 128;  // per unit; a multiple of 32 (block_sum)
constexpr size_t kMaxSharedBytes = 48 * 1024;

// Sum of one value per thread over the block, in a fixed order: each warp's by shuffles, then the
// warps' sums one after another (two barriers, where halving in shared memory took eight). Every
// thread of the block must call it; `reduce` holds blockDim.x / 32 values.
template <class T>
__device__ T block_sum(T v, T* reduce) {
  v = warp_sum(v);
  if (threadIdx.x % 32 == 0) reduce[threadIdx.x / 32] = v;
  __syncthreads();
  T total = 0;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) total += reduce[w];
  __syncthreads();  // before `reduce` is written again
  return total;
}

// Where dimension n sits in the rotation: pair m (−1 when n passes through), its partner, and whether
// n is the pair's first element (a) or second (b).
struct PairSlot {
  int64_t m, partner;
  bool first;
};
__device__ inline PairSlot pair_slot(const KeysLayout& s, int64_t n) {
  PairSlot slot;
  if (s.half_split) {
    const int64_t half = s.N / 2;
    slot.first = n < half;
    slot.m = slot.first ? n : n - half;
    slot.partner = slot.first ? n + half : n - half;
  } else {
    slot.first = n % 2 == 0;
    slot.m = n / 2;
    slot.partner = slot.first ? n + 1 : n - 1;
  }
  if (slot.m >= s.S) slot.m = -1;
  return slot;
}

// ρ of the unit's raw row (all threads get it)
template <class T>
__device__ T inverse_rms(const T* raw_row, const KeysLayout& s, T* reduce) {
  T squares = 0;
  for (int64_t n = threadIdx.x; n < s.N; n += blockDim.x) squares += raw_row[n] * raw_row[n];
  const T total = block_sum(squares, reduce);
  return T(1) / sqrt_of(total / T(s.N) + T(s.eps));
}

template <class T>
__global__ void keys_forward_kernel(KeysLayout s, const T* raw, const T* w, const T* bias, const T* theta, T* out) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* xhat = reinterpret_cast<T*>(shared_bytes);  // [N]
  T* reduce = xhat + s.N;                         // [blockDim.x / 32]
  const int64_t units = s.rows * s.R * s.G;
  const int heads_per_group = static_cast<int>(s.H / s.G), N = static_cast<int>(s.N);
  for (int64_t unit = blockIdx.x; unit < units; unit += gridDim.x) {  // uniform per block: syncs are safe
    const int64_t g = unit % s.G, r = (unit / s.G) % s.R, row = unit / (s.G * s.R);
    const T* raw_row = raw + unit * s.N;
    const T rho = inverse_rms(raw_row, s, reduce);
    for (int64_t n = threadIdx.x; n < s.N; n += blockDim.x) xhat[n] = raw_row[n] * rho;
    __syncthreads();
    for (int e = threadIdx.x; e < heads_per_group * N; e += blockDim.x) {  // a thread per (head, n), 32-bit
      const int64_t h = g * heads_per_group + e / N, n = e % N;
      const T* bias_row = bias + (h * s.R + r) * s.N;
      const T* th = theta + (row * s.H + h) * s.S;
      const T key = xhat[n] * w[n] + bias_row[n];
      const PairSlot slot = pair_slot(s, n);
      T rotated = key;
      if (slot.m >= 0) {
        const T partner_key = xhat[slot.partner] * w[slot.partner] + bias_row[slot.partner];
        const T c = cos_of(th[slot.m]), sn = sin_of(th[slot.m]);
        rotated = key * c + (slot.first ? -sn : sn) * partner_key;
      }
      out[((row * s.R + r) * s.H + h) * s.N + n] = rotated;
    }
    __syncthreads();  // xhat is rewritten by the next unit
  }
}

template <class T>
__global__ void keys_backward_rows_kernel(KeysLayout s, const T* raw, const T* w, const T* theta, const T* dout,
                                          T* draw, T* dw_partial, T* dbias_partial, T* rho_scratch) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* xhat = reinterpret_cast<T*>(shared_bytes);  // [N]
  T* dn = xhat + s.N;                             // [N], element n touched only by its owning thread
  T* reduce = dn + s.N;                           // [blockDim.x / 32]
  const int64_t units = s.rows * s.R * s.G;
  const int heads_per_group = static_cast<int>(s.H / s.G), N = static_cast<int>(s.N);
  for (int64_t unit = blockIdx.x; unit < units; unit += gridDim.x) {
    const int64_t g = unit % s.G, r = (unit / s.G) % s.R, row = unit / (s.G * s.R);
    const T* raw_row = raw + unit * s.N;
    const T rho = inverse_rms(raw_row, s, reduce);
    if (threadIdx.x == 0) rho_scratch[unit] = rho;
    for (int64_t n = threadIdx.x; n < s.N; n += blockDim.x) xhat[n] = raw_row[n] * rho;
    const auto bias_grad = [&](int64_t h) { return dbias_partial + ((row * s.H + h) * s.R + r) * s.N; };
    for (int e = threadIdx.x; e < heads_per_group * N; e += blockDim.x) {  // a thread per (head, n), 32-bit
      const int64_t h = g * heads_per_group + e / N, n = e % N;
      const T* th = theta + (row * s.H + h) * s.S;
      const T* dk_rot = dout + ((row * s.R + r) * s.H + h) * s.N;
      const PairSlot slot = pair_slot(s, n);
      T dk = dk_rot[n];
      if (slot.m >= 0) {  // dk = Rot(θ)ᵀ dk̃: the sign of sin flips
        const T c = cos_of(th[slot.m]), sn = sin_of(th[slot.m]);
        dk = dk_rot[n] * c + (slot.first ? sn : -sn) * dk_rot[slot.partner];
      }
      bias_grad(h)[n] = dk;
    }
    __syncthreads();  // the block's bias gradients (global memory) are visible to all its threads
    for (int64_t n = threadIdx.x; n < s.N; n += blockDim.x) {  // dn = Σ_h dk_h, heads in order
      T sum = 0;
      for (int64_t h = g * heads_per_group; h < (g + 1) * heads_per_group; ++h) sum += bias_grad(h)[n];
      dn[n] = sum;
    }
    // through n = x̂ ⊙ w and the RMS normalisation
    T dot = 0;
    for (int64_t n = threadIdx.x; n < s.N; n += blockDim.x) dot += dn[n] * w[n] * xhat[n];
    const T mean_dxhat_xhat = block_sum(dot, reduce) / T(s.N);
    for (int64_t n = threadIdx.x; n < s.N; n += blockDim.x) {
      dw_partial[unit * s.N + n] = dn[n] * xhat[n];
      draw[unit * s.N + n] = rho * (dn[n] * w[n] - xhat[n] * mean_dxhat_xhat);
    }
    __syncthreads();  // xhat and dn are rewritten by the next unit
  }
}

// dθ_{row,h,m} = Σ_r (y_a dy_b − y_b dy_a), one thread per (row, h, m)
template <class T>
__global__ void keys_backward_theta_kernel(KeysLayout s, const T* raw, const T* w, const T* bias, const T* theta,
                                           const T* dout, const T* rho_scratch, T* dtheta) {
  const int64_t total = s.rows * s.H * s.S, heads_per_group = s.H / s.G;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t m = i % s.S, h = (i / s.S) % s.H, row = i / (s.S * s.H), g = h / heads_per_group;
    const int64_t a = s.half_split ? m : 2 * m, b = s.half_split ? m + s.N / 2 : 2 * m + 1;
    const T c = cos_of(theta[i]), sn = sin_of(theta[i]);
    T acc = 0;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t unit = (row * s.R + r) * s.G + g;
      const T* raw_row = raw + unit * s.N;
      const T* bias_row = bias + (h * s.R + r) * s.N;
      const T rho = rho_scratch[unit];
      const T ka = raw_row[a] * rho * w[a] + bias_row[a], kb = raw_row[b] * rho * w[b] + bias_row[b];
      const T ya = ka * c - kb * sn, yb = ka * sn + kb * c;
      const T* dy = dout + ((row * s.R + r) * s.H + h) * s.N;
      acc += ya * dy[b] - yb * dy[a];
    }
    dtheta[i] = acc;
  }
}

template <class T>
size_t shared_bytes_for(const KeysLayout& s, int rows_of_n) {
  const size_t bytes = (static_cast<size_t>(rows_of_n) * s.N + kRowThreads / 32) * sizeof(T);
  SSM_CHECK(bytes <= kMaxSharedBytes, "mamba3_keys (cuda): N = ", s.N, " needs ", bytes,
            " bytes of shared memory per block, more than ", kMaxSharedBytes);
  return bytes;
}

unsigned unit_blocks(const KeysLayout& s) { return blocks_for(s.rows * s.R * s.G, 1); }

}  // namespace

template <class T>
void mamba3_keys_forward(const KeysLayout& s, const T* raw, const T* w, const T* bias, const T* theta, T* out) {
  if (s.rows * s.R * s.G == 0) return;
  keys_forward_kernel<T><<<unit_blocks(s), kRowThreads, shared_bytes_for<T>(s, 1), stream()>>>(s, raw, w, bias, theta,
                                                                                             out);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_keys_backward(const KeysLayout& s, const T* raw, const T* w, const T* bias, const T* theta, const T* dout,
                          T* draw, T* dtheta, T* dw_partial, T* dbias_partial, T* rho_scratch) {
  if (s.rows * s.R * s.G == 0) return;
  keys_backward_rows_kernel<T><<<unit_blocks(s), kRowThreads, shared_bytes_for<T>(s, 2), stream()>>>(
      s, raw, w, theta, dout, draw, dw_partial, dbias_partial, rho_scratch);
  SSM_CUDA_CHECK_LAUNCH();
  const int64_t angles = s.rows * s.H * s.S;
  if (angles == 0) return;
  keys_backward_theta_kernel<T><<<blocks_for(angles), kThreads, 0, stream()>>>(s, raw, w, bias, theta, dout,
                                                                               rho_scratch, dtheta);
  SSM_CUDA_CHECK_LAUNCH();
}

#define SSM_INSTANTIATE_KEYS(T)                                                                                      \
  template void mamba3_keys_forward<T>(const KeysLayout&, const T*, const T*, const T*, const T*, T*);               \
  template void mamba3_keys_backward<T>(const KeysLayout&, const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                        T*, T*, T*);
SSM_INSTANTIATE_KEYS(float)
SSM_INSTANTIATE_KEYS(double)
#undef SSM_INSTANTIATE_KEYS

}  // namespace ssm::cuda
