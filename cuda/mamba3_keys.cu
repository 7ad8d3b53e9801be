// cuda/mamba3_keys.cu — Mamba-3's fused keys/queries on the GPU (math: ssm/mamba3_keys.h, ssm/rotary.h).
//
//   x̂ = raw·ρ, ρ = (mean(raw²) + ε)^(−1/2);   k_h = x̂ ⊙ w + bias[h, r];   k̃_h = Rot(θ_h) k_h
//
// A team of threads per unit (row, r, g) — one N-row of raw — shares out the (head, pair) items of the H/G
// heads that read it, so the normalisation is done once per group, as on the CPU. Large units (the 130M
// model's 24 heads × 128 values) take a whole block; small ones (the ~1M model's 20 × 16) a warp each, four
// to a block, whose sums are shuffles and whose waits are warp syncs: with a block per small unit its threads
// had two or three values of work between block barriers, and the barriers were the kernels' time. A row's
// N dimensions are ⌈N/2⌉ pairs (PairDims): pair m holds the dimensions (a, b) that θ_m rotates when m < S,
//   (y_a, y_b) = (k_a cos θ_m − k_b sin θ_m,  k_a sin θ_m + k_b cos θ_m),
// and two dimensions that pass through otherwise; Rotᵀ flips the sign of sin. A thread forms both of its
// pair's outputs from one read of each input, where a thread per dimension read every input twice (its
// own and its partner's): at the 130M model's 24 heads × 64 pairs that halves the loads and the index
// arithmetic of the kernels' largest loops (the forward 235 → 135 µs a call, ncu). The unit's cos θ and sin θ
// are computed once per (head, pair) into shared memory (rotation_table).
//
// Backward, per unit: dk_h = Rotᵀ dk̃_h, dbias[h, r] += dk_h, dn = Σ_h dk_h, dw += dn ⊙ x̂,
// draw = ρ (dn ⊙ w − x̂ · mean(dn ⊙ w ⊙ x̂)). A block takes units of one (r, g) only — the grid is a
// multiple of R·G, and its teams walk the rows from b / (R·G) on, slots apart — so each team sums its units'
// dbias and dw in shared memory, in row order, the block adds its teams' sums in team order, and writes them
// once: the partials are [slots, H, R, N] and
// [blocks, N], which the caller sums in a fixed order. No atomics, and no [rows, H, R, N] partial (at 130M a
// 200 MB write, its zero fill and its sum, per call). There are as many slots as blocks the GPU holds at once
// (at most kSlots): with a fixed 1024 the 130M model's blocks, a few to an SM by shared memory, ran as a full
// wave and a partial second (its step 230.1 → 228.8 ms on an H100). The sums' grouping, and so their last bits,
// then follow the GPU's SM count: the same on every run of one GPU model.
// dθ_{t,h,m} = Σ_r (y_a dy_b − y_b dy_a) sums over the ranks. With one rank (SISO) a unit holds all of it,
// and the thread of each rotated pair forms it there (at the 130M model that spared a 210 µs
// kernel per call); with several, the ranks live in different blocks, so a second kernel gives each
// (row, h, m) one thread that recomputes y_a, y_b from raw and the ρ saved by the first.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"
#include "cuda/stage.cuh"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda {
namespace {

constexpr int kRowThreads = 128;  // per block; a multiple of 32 (block_sum)
constexpr int64_t kSlots = 1024;  // the most blocks of one (r, g) in the backward: rows are shared out among them
// The backward's blocks an SM should hold at once, for the register budget (80 a thread): at the 130M model's
// units (32 KB of shared memory a block) six fit, where the 128 registers the compiler took unasked allowed four
// (ncu at five blocks an SM: a scheduler issued every ~2 cycles, too few warps to cover the latencies). With dk
// over the staged rows (KeysShared), the 130M step went 213.5 → 210.0 ms on an H100.
constexpr int kBackwardBlocksPerSM = 6;

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

// The threads that work one unit together: the whole block (Threads = kRowThreads) or one warp of it
// (Threads = 32). Their sums, waits and shares of the unit's work go through here.
template <int Threads>
struct Team {
  static constexpr int kThreads = Threads, kPerBlock = kRowThreads / Threads;
  __device__ static int rank() { return static_cast<int>(threadIdx.x) % Threads; }   // within the team
  __device__ static int index() { return static_cast<int>(threadIdx.x) / Threads; }  // the team within the block
  __device__ static void sync() {
    if constexpr (Threads == 32) __syncwarp();
    else __syncthreads();
  }
  // Σ of one value per thread over the team, in a fixed order; every thread of the team calls it and gets it
  template <class T>
  __device__ static T sum(T v, T* reduce) {
    if constexpr (Threads == 32) return warp_sum(v);
    else return block_sum(v, reduce);
  }
};
using BlockTeam = Team<kRowThreads>;
using WarpTeam = Team<32>;

// A warp per unit when a unit has at most this many (head, n) values: 16 a lane.
constexpr int64_t kWarpUnitValues = 16 * 32;

// The dimensions of pair m (0 ≤ m < ⌈N/2⌉): a = 2m, b = 2m + 1 (adjacent pairs) or a = m, b = m + N/2
// (half-split, N even); rotated by θ_m when m < S (then b < N, as 2S ≤ N). An odd N's last adjacent
// pair holds a alone (b = −1).
struct PairDims {
  int a, b;
  bool rotated;
};
__device__ inline int pair_count(const KeysLayout& s) { return static_cast<int>((s.N + 1) / 2); }
__device__ inline PairDims pair_dims(const KeysLayout& s, int m) {
  const int N = static_cast<int>(s.N);
  if (s.half_split) return {m, m + N / 2, m < s.S};
  return {2 * m, 2 * m + 1 < N ? 2 * m + 1 : -1, m < s.S};
}

// (x_a, x_b) ← Rot(sign·θ_m) (x_a, x_b) for a rotated pair of the unit's head hl (rot: rotation_table's).
template <class T>
__device__ void rotate_pair(const KeysLayout& s, const T* rot, int hl, int m, T sign, T& x_a, T& x_b) {
  const int at = 2 * (hl * static_cast<int>(s.S) + m);
  const T c = rot[at], sn = sign * rot[at + 1], a = x_a, b = x_b;
  x_a = a * c - b * sn;
  x_b = a * sn + b * c;
}

// A pair's two values of a row (x_b = 0 when the pair has no b), and back. With `wide` (pairs_wide: adjacent
// pairs, rows of even width, every row pointer aligned to two values) one 8- or 16-byte access: a lane per
// pair reading values 2m and 2m + 1 would otherwise conflict in shared memory's banks two ways.
template <class T>
using PairOf = std::conditional_t<std::is_same_v<T, float>, float2, double2>;

template <class T>
bool pairs_wide(const KeysLayout& s, std::initializer_list<const T*> rows_from) {
  bool aligned = true;
  for (const T* p : rows_from) aligned = aligned && reinterpret_cast<uintptr_t>(p) % sizeof(PairOf<T>) == 0;
  return aligned && !s.half_split && s.N % 2 == 0;
}

template <class T>
__device__ void load_pair(bool wide, const T* row, const PairDims& d, T& x_a, T& x_b) {
  if (wide) {
    const PairOf<T> v = *reinterpret_cast<const PairOf<T>*>(row + d.a);
    x_a = v.x;
    x_b = v.y;
    return;
  }
  x_a = row[d.a];
  x_b = d.b >= 0 ? row[d.b] : T(0);
}

template <class T>
__device__ void store_pair(bool wide, T* row, const PairDims& d, T x_a, T x_b) {
  if (wide) {
    *reinterpret_cast<PairOf<T>*>(row + d.a) = PairOf<T>{x_a, x_b};
    return;
  }
  row[d.a] = x_a;
  if (d.b >= 0) row[d.b] = x_b;
}

// The pieces of a team's shared memory, in elements of T; a block holds its teams' one after another, `size`
// apart (the host sizes the launch with the same).
struct KeysShared {
  // The backward stages a unit's incoming gradient rows (span values) in shared memory when each of the team's
  // threads has at least four of them, and each thread's dk_h then goes over the dk̃_h it read. At the 130M
  // model's span of 3072 (a block a unit) staging took the kernel from 535 to 329 µs: one load at a time, the
  // rows' loads had waited on each other. The ~1M model's 320 are ten a lane of a warp and staged too (its step
  // 1% faster than unstaged); a block's 128 threads had two or three each, and there staging measured
  // 207 → 395 µs, so with fewer than four a thread the threads read straight from global memory.
  bool staged;
  int64_t dk_in, xhat, dn, dk, dbias, dw, rot, reduce, size;
  __host__ __device__ KeysShared(const KeysLayout& s, bool backward, int team_threads) {
    const int64_t span = s.H / s.G * s.N;  // the (head, n) elements of one unit
    staged = backward && span >= 4 * team_threads;
    int64_t at = 0;
    const auto take = [&](int64_t n) { const int64_t here = at; at += n; return here; };
    dk_in = take(staged ? span : 0);  // first: 16-byte aligned for the staging's wide loads
    xhat = take(s.N);
    dn = take(backward ? s.N : 0);
    dk = staged ? dk_in : take(backward ? span : 0);  // staged, each dk_h goes over the dk̃_h its thread read
    dbias = take(backward ? span : 0);
    dw = take(backward ? s.N : 0);
    rot = take(2 * (s.H / s.G) * s.S);
    reduce = take(kRowThreads / 32);
    size = (at + 3) / 4 * 4;  // the next team's dk_in 16-byte aligned too
  }
};

// The unit (row, r, g)'s N values of raw, which is read in place, s.raw_stride between token rows; draw and the
// unit-indexed scratch are contiguous.
template <class T>
__device__ const T* raw_row_of(const KeysLayout& s, const T* raw, int64_t row, int64_t r, int64_t g) {
  return raw + row * s.raw_stride + (r * s.G + g) * s.N;
}

// ρ of the unit's raw row (all the team's threads get it)
template <class Team, class T>
__device__ T inverse_rms(const T* raw_row, const KeysLayout& s, T* reduce) {
  T squares = 0;
  for (int64_t n = Team::rank(); n < s.N; n += Team::kThreads) squares += raw_row[n] * raw_row[n];
  const T total = Team::sum(squares, reduce);
  return T(1) / sqrt_of(total / T(s.N) + T(s.eps));
}

// rot[2e], rot[2e + 1] = cos θ, sin θ of the group's head e / S, pair e % S, at `row`. Callers sync before reading.
template <class Team, class T>
__device__ void rotation_table(const KeysLayout& s, const T* theta, int64_t row, int64_t g, T* rot) {
  const int pairs = static_cast<int>(s.H / s.G * s.S);
  const T* th = theta + (row * s.H + g * (s.H / s.G)) * s.S;  // the group's heads are consecutive
  for (int e = Team::rank(); e < pairs; e += Team::kThreads) sin_cos_of(th[e], &rot[2 * e + 1], &rot[2 * e]);
}

// Pair m's term of dθ_m: with (k_a, k_b) the pair before its rotation by θ (cos θ = c, sin θ = s), the
// rotated y = Rot(θ) k and the incoming gradients dy_a, dy_b: since dy/dθ = (−y_b, y_a),
// ∂ℒ/∂θ = y_a dy_b − y_b dy_a.
template <class T>
__device__ T angle_grad_term(T k_a, T k_b, T c, T s, T dy_a, T dy_b) {
  const T y_a = k_a * c - k_b * s, y_b = k_a * s + k_b * c;
  return y_a * dy_b - y_b * dy_a;
}

template <class Team, class T>
__global__ void keys_forward_kernel(KeysLayout s, bool wide, const T* raw, const T* w, const T* bias, const T* theta,
                                    T* out) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const KeysShared at(s, false, Team::kThreads);
  T* shared = reinterpret_cast<T*>(shared_bytes) + Team::index() * at.size;
  T *scaled = shared + at.xhat, *rot = shared + at.rot, *reduce = shared + at.reduce;  // scaled: x̂ ⊙ w
  const int64_t units = s.rows * s.R * s.G, team = blockIdx.x * int64_t{Team::kPerBlock} + Team::index();
  const int heads_per_group = static_cast<int>(s.H / s.G), pairs = pair_count(s);
  for (int64_t unit = team; unit < units; unit += int64_t{gridDim.x} * Team::kPerBlock) {  // uniform per team
    const int64_t g = unit % s.G, r = (unit / s.G) % s.R, row = unit / (s.G * s.R);
    const T* raw_row = raw_row_of(s, raw, row, r, g);
    const T rho = inverse_rms<Team>(raw_row, s, reduce);
    for (int64_t n = Team::rank(); n < s.N; n += Team::kThreads) scaled[n] = raw_row[n] * rho * w[n];
    rotation_table<Team>(s, theta, row, g, rot);
    Team::sync();
    for (TileWalk item(pairs, Team::rank(), Team::kThreads); item.row < heads_per_group; item.next()) {
      const int hl = item.row, m = item.col;  // a thread per (head, pair), stepping (launch.cuh)
      const int64_t h = g * heads_per_group + hl;
      const PairDims d = pair_dims(s, m);
      T k_a, k_b, bias_a, bias_b;
      load_pair(wide, scaled, d, k_a, k_b);
      load_pair(wide, bias + (h * s.R + r) * s.N, d, bias_a, bias_b);
      k_a += bias_a;
      k_b += bias_b;
      if (d.rotated) rotate_pair(s, rot, hl, m, T(1), k_a, k_b);
      store_pair(wide, out + ((row * s.R + r) * s.H + h) * s.N, d, k_a, k_b);
    }
    Team::sync();  // scaled and rot are rewritten by the next unit
  }
}

// Grid: slots · R·G blocks; block b takes (r, g) = (b / G % R, b % G) — as a unit index's low digits — and
// its team i the rows (b / (R·G))·kPerBlock + i, + slots·kPerBlock, ...
// With one rank, dtheta receives dθ here (else nullptr: keys_backward_theta_kernel forms it).
template <class Team, class T>
__global__ void __launch_bounds__(kRowThreads, kBackwardBlocksPerSM)
    keys_backward_rows_kernel(KeysLayout s, bool wide, const T* raw, const T* w, const T* bias, const T* theta,
                              const T* dout, T* draw, T* dtheta, T* dw_partial, T* dbias_partial, T* rho_scratch) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const KeysShared at(s, true, Team::kThreads);
  T* shared = reinterpret_cast<T*>(shared_bytes) + Team::index() * at.size;
  T *dk_in = shared + at.dk_in, *xhat = shared + at.xhat, *dn = shared + at.dn, *dk = shared + at.dk,
    *dbias = shared + at.dbias, *dw = shared + at.dw, *rot = shared + at.rot, *reduce = shared + at.reduce;
  const int64_t RG = s.R * s.G, slots = gridDim.x / RG, slot_of_block = blockIdx.x / RG;
  const int64_t g = blockIdx.x % s.G, r = blockIdx.x / s.G % s.R;
  const int heads_per_group = static_cast<int>(s.H / s.G), N = static_cast<int>(s.N), span = heads_per_group * N;
  const int pairs = pair_count(s);
  // In the loop each thread owns its elements of dbias (its (head, pair) items' two) and dw (n-stride): no
  // races. (The zeroing below is done by others, hence the sync.)
  for (int e = Team::rank(); e < span; e += Team::kThreads) dbias[e] = 0;
  for (int n = Team::rank(); n < N; n += Team::kThreads) dw[n] = 0;
  Team::sync();
  const int64_t first_row = slot_of_block * Team::kPerBlock + Team::index(), row_step = slots * Team::kPerBlock;
  for (int64_t row = first_row; row < s.rows; row += row_step) {
    const int64_t unit = row * RG + r * s.G + g;
    // the unit's dk̃ rows: its heads' rows of dout, span values in a row (staged: loads in flight while the
    // normalisation's sum runs; see KeysShared)
    const T* dk_rows = dout + ((row * s.R + r) * s.H + g * heads_per_group) * s.N;
    if (at.staged) {
      stage_contiguous(dk_rows, span, dk_in, Team::rank(), Team::kThreads);
      dk_rows = dk_in;
    }
    const T* raw_row = raw_row_of(s, raw, row, r, g);
    const T rho = inverse_rms<Team>(raw_row, s, reduce);
    if (Team::rank() == 0) rho_scratch[unit] = rho;
    for (int64_t n = Team::rank(); n < s.N; n += Team::kThreads) xhat[n] = raw_row[n] * rho;
    rotation_table<Team>(s, theta, row, g, rot);
    Team::sync();
    // dk_h = Rot(θ)ᵀ dk̃_h, a thread per (head, pair); with one rank also dθ_m = y_a dy_b − y_b dy_a for a
    // rotated pair, from the rotated key y = Rot(θ)(x̂ ⊙ w + bias)
    T* dtheta_row = dtheta ? dtheta + (row * s.H + g * heads_per_group) * s.S : nullptr;
    for (TileWalk item(pairs, Team::rank(), Team::kThreads); item.row < heads_per_group; item.next()) {
      const int hl = item.row, m = item.col;  // a thread per (head, pair), stepping (launch.cuh)
      const PairDims d = pair_dims(s, m);
      T dy_a, dy_b, dbias_a, dbias_b;
      load_pair(wide, dk_rows + hl * N, d, dy_a, dy_b);
      T dk_a = dy_a, dk_b = dy_b;
      if (d.rotated) rotate_pair(s, rot, hl, m, T(-1), dk_a, dk_b);
      store_pair(wide, dk + hl * N, d, dk_a, dk_b);
      load_pair(wide, dbias + hl * N, d, dbias_a, dbias_b);  // (this thread owns these for the whole loop)
      store_pair(wide, dbias + hl * N, d, dbias_a + dk_a, dbias_b + dk_b);
      if (dtheta_row && d.rotated) {
        T xhat_a, xhat_b, w_a, w_b, bias_a, bias_b;
        load_pair(wide, xhat, d, xhat_a, xhat_b);
        load_pair(wide, w, d, w_a, w_b);
        load_pair(wide, bias + ((g * heads_per_group + hl) * s.R + r) * s.N, d, bias_a, bias_b);
        const int angle = hl * static_cast<int>(s.S) + m;
        dtheta_row[angle] = angle_grad_term(xhat_a * w_a + bias_a, xhat_b * w_b + bias_b, rot[2 * angle],
                                            rot[2 * angle + 1], dy_a, dy_b);
      }
    }
    Team::sync();
    // dn = Σ_h dk_h (heads in order), then through n = x̂ ⊙ w and the RMS normalisation
    T dot = 0;
    for (int n = Team::rank(); n < N; n += Team::kThreads) {
      T sum = 0;
      for (int hl = 0; hl < heads_per_group; ++hl) sum += dk[hl * N + n];
      dn[n] = sum;
      dot += sum * w[n] * xhat[n];
    }
    const T mean_dxhat_xhat = Team::sum(dot, reduce) / T(s.N);
    for (int n = Team::rank(); n < N; n += Team::kThreads) {
      dw[n] += dn[n] * xhat[n];
      draw[unit * s.N + n] = rho * (dn[n] * w[n] - xhat[n] * mean_dxhat_xhat);
    }
    Team::sync();  // dk_in, xhat, rot and dk are rewritten by the next unit
  }
  // the block's partials: its teams' sums, in team order
  __syncthreads();
  const T* block_shared = reinterpret_cast<const T*>(shared_bytes);
  for (int e = threadIdx.x; e < span; e += blockDim.x) {
    T sum = 0;
    for (int i = 0; i < Team::kPerBlock; ++i) sum += block_shared[i * at.size + at.dbias + e];
    dbias_partial[((slot_of_block * s.H + g * heads_per_group + e / N) * s.R + r) * s.N + e % N] = sum;
  }
  for (int n = threadIdx.x; n < N; n += blockDim.x) {
    T sum = 0;
    for (int i = 0; i < Team::kPerBlock; ++i) sum += block_shared[i * at.size + at.dw + n];
    dw_partial[blockIdx.x * s.N + n] = sum;
  }
}

// dθ_{row,h,m} = Σ_r (y_a dy_b − y_b dy_a), one thread per (row, h, m), launched by row_launch
// (cuda/launch.cuh): h and m cost one 32-bit division, where the flat index took four 64-bit ones.
template <class T>
__global__ void keys_backward_theta_kernel(KeysLayout s, const T* raw, const T* w, const T* bias, const T* theta,
                                           const T* dout, const T* rho_scratch, T* dtheta) {
  const int HS = static_cast<int>(s.H * s.S), S = static_cast<int>(s.S);
  const int heads_per_group = static_cast<int>(s.H / s.G);
  for (int64_t row = blockIdx.x; row < s.rows; row += gridDim.x)
    for (int hm = static_cast<int>(threadIdx.x); hm < HS; hm += blockDim.x) {
      const int h = hm / S, m = hm - h * S, g = h / heads_per_group;
      const int64_t i = row * HS + hm;
      const int64_t a = s.half_split ? m : 2 * m, b = s.half_split ? m + s.N / 2 : 2 * m + 1;
      const T c = cos_of(theta[i]), sn = sin_of(theta[i]);
      T acc = 0;
      for (int64_t r = 0; r < s.R; ++r) {
        const int64_t unit = (row * s.R + r) * s.G + g;
        const T* raw_row = raw_row_of(s, raw, row, r, g);
        const T* bias_row = bias + (h * s.R + r) * s.N;
        const T rho = rho_scratch[unit];
        const T ka = raw_row[a] * rho * w[a] + bias_row[a], kb = raw_row[b] * rho * w[b] + bias_row[b];
        const T* dy = dout + ((row * s.R + r) * s.H + h) * s.N;
        acc += angle_grad_term(ka, kb, c, sn, dy[a], dy[b]);
      }
      dtheta[i] = acc;
    }
}

// A block's shared memory: its teams' pieces one after another.
template <class Team, class T>
size_t team_bytes(const KeysLayout& s, bool backward) {
  return static_cast<size_t>(KeysShared(s, backward, Team::kThreads).size) * Team::kPerBlock * sizeof(T);
}

template <class Team, class T>
size_t shared_bytes_for(const KeysLayout& s, bool backward) {
  const size_t bytes = team_bytes<Team, T>(s, backward);
  SSM_CHECK(bytes <= shared_limit(), "mamba3_keys (cuda): ", s.H / s.G, " heads per group of N = ", s.N, " need ",
            bytes, " bytes of shared memory per block, more than this GPU's ", shared_limit());
  return bytes;
}

// body(team) with the team that suits the unit's size: a warp for small units, unless four warps' shared memory
// is more than a block may have (float64 at large N on GPUs of 64–99 KB), where one unit a block still fits.
template <class T, class Body>
void with_team(const KeysLayout& s, bool backward, Body body) {
  if (s.H / s.G * s.N <= kWarpUnitValues && team_bytes<WarpTeam, T>(s, backward) <= shared_limit()) body(WarpTeam{});
  else body(BlockTeam{});
}

}  // namespace

template <class T>
int64_t keys_backward_slots(const KeysLayout& s) {
  int64_t slots = 0;
  with_team<T>(s, true, [&](auto team) {
    using Team = decltype(team);
    const int64_t resident =
        resident_blocks(keys_backward_rows_kernel<Team, T>, kRowThreads, shared_bytes_for<Team, T>(s, true));
    const int64_t row_groups = (s.rows + Team::kPerBlock - 1) / Team::kPerBlock;  // kPerBlock rows a block
    slots = std::clamp<int64_t>(std::min(resident / (s.R * s.G), kSlots), 1, std::max<int64_t>(row_groups, 1));
  });
  return slots;
}

template <class T>
void mamba3_keys_forward(const KeysLayout& s, const T* raw, const T* w, const T* bias, const T* theta, T* out) {
  const int64_t units = s.rows * s.R * s.G;
  if (units == 0) return;
  with_team<T>(s, false, [&](auto team) {
    using Team = decltype(team);
    launch(keys_forward_kernel<Team, T>, blocks_for(units, Team::kPerBlock), kRowThreads,
           shared_bytes_for<Team, T>(s, false), s, pairs_wide(s, {bias, out}), raw, w, bias, theta, out);
  });
}

template <class T>
void mamba3_keys_backward(const KeysLayout& s, int64_t slots, const T* raw, const T* w, const T* bias, const T* theta,
                          const T* dout, T* draw, T* dtheta, T* dw_partial, T* dbias_partial, T* rho_scratch) {
  if (s.rows * s.R * s.G == 0) return;
  const auto blocks = static_cast<unsigned>(slots * s.R * s.G);
  const bool one_rank = s.R == 1;  // dθ in the rows kernel
  with_team<T>(s, true, [&](auto team) {
    using Team = decltype(team);
    launch(keys_backward_rows_kernel<Team, T>, blocks, kRowThreads, shared_bytes_for<Team, T>(s, true), s,
           pairs_wide(s, {dout, w, bias}), raw, w, bias, theta, dout, draw, one_rank ? dtheta : nullptr, dw_partial,
           dbias_partial, rho_scratch);
  });
  const int64_t angles = s.rows * s.H * s.S;
  if (angles == 0 || one_rank) return;
  const RowLaunch rows = row_launch(s.rows, s.H * s.S);
  keys_backward_theta_kernel<T><<<rows.blocks, rows.threads, 0, stream()>>>(s, raw, w, bias, theta, dout, rho_scratch,
                                                                           dtheta);
  SSM_CUDA_CHECK_LAUNCH();
}

#define SSM_INSTANTIATE_KEYS(T)                                                                                      \
  template void mamba3_keys_forward<T>(const KeysLayout&, const T*, const T*, const T*, const T*, T*);               \
  template void mamba3_keys_backward<T>(const KeysLayout&, int64_t, const T*, const T*, const T*, const T*, const T*, \
                                        T*, T*, T*, T*, T*);                                                         \
  template int64_t keys_backward_slots<T>(const KeysLayout&);
SSM_INSTANTIATE_KEYS(float)
SSM_INSTANTIATE_KEYS(double)
#undef SSM_INSTANTIATE_KEYS

}  // namespace ssm::cuda
