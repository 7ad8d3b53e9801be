// cuda/ssd_chunk.cu — the generic chunked SSD of cuda/ssm_kernels.h: forward and backward kernels.
//
// How the work is split (one thread block per (chunk, sequence) unless said; blockIdx = (c, s)):
//   forward  1. chunk_state:  cs (chunk-local cumsum of a), T_c, and S^loc_c = Σ_s e^{T−cs_s} V_s K_sᵀ,
//               written into the slot of S_{c+1} (which step 2 then turns into the real state)
//            2. state_pass:   one thread per (sequence, p, n), sequential over chunks:
//               S_{c+1} = e^{T_c} S_c + S^loc_c
//            3. chunk_output: Y = (Q Kᵀ ⊙ Λ) V + diag(e^{cs}) Q S_cᵀ, a tile of rows at a time, the tile's
//               masked scores (Q Kᵀ ⊙ Λ) in shared memory
//   backward 1. chunk_dstate: Σ_t e^{cs_t} dY_t Q_tᵀ per chunk (into a scratch of dS slots) and T_c
//            2. dstate_pass:  dS_nchunks = dS_final, dS_c = e^{T_c} dS_{c+1} + (that sum), sequential over
//               chunks per (sequence, p, n); dS_0 is the gradient of the initial state
//            3. chunk_grads:  with dS = dS_{c+1} and S_c, as ssm/ssd_chunk_core.cpp's chunk_backward:
//               state update  dV_i = w_i dS K_i,  dK_i = w_i dSᵀ V_i  (w_i = e^{T−cs_t(i)}),
//                             g_i = V_i·dV_i: dcs_t(i) −= g_i, dT += g_i;  dT += e^T <dS, S_c>
//               Y_off         dQ_i = e^{cs_t(i)} S_cᵀ dY_i,  dcs_t(i) += dQ_i·Q_i
//               Y_diag        dM = dY Vᵀ (causal), dV += Mᵀ dY, dQ += (dM ⊙ Λ) K, dK += (dM ⊙ Λ)ᵀ Q,
//                             Ξ = dM ⊙ M: dcs_t(i) += Σ_j Ξ_ij, dcs_t(j) −= Σ_i Ξ_ij
//               then dcs_last += dT and da_τ = Σ_{t≥τ} dcs_t (reverse cumsum inside the chunk).
//               A "row pass" over tiles of rows builds dM ⊙ Λ and Ξ for dQ and the row sums; a "column
//               pass" over tiles of columns builds M, dM ⊙ Λ and Ξ transposed for dK, dV and column sums.
// For float32 heads whose N and P are multiples of 16, on an sm_80 or newer GPU, the per-chunk kernels
// (state, output, dstate, grads) run on tensor cores instead: cuda/ssd_chunk_mma.cu, same contracts, except
// that with key weights they give ∂ℒ/∂k and ∂ℒ/∂w themselves, and they alone take an own-step discount; the
// state passes between chunks are these. What both kinds share is in cuda/ssd_chunk_parts.cuh.
// Every output element is written by one thread in a fixed order (no atomics): deterministic.
// Λ is computed as e^{cs_t − cs_s} (≤ 1 for a ≤ 0: nothing overflows) — the CPU builds it by products of
// e^{a}, which agrees to rounding.
#include <algorithm>
#include <type_traits>

#include "cuda/ssd_chunk_mma.h"
#include "cuda/ssd_chunk_parts.cuh"
#include "cuda/ssd_key_weight.h"
#include "tensor/tensor.h"

namespace ssm::cuda {
namespace {

using namespace ssd_chunk;

// Threads per block: kBlock, or kMaxBlock for the tile kernels when a block's shared memory leaves room
// for only one block per SM (the 130M model's heads) — 4 warps alone cannot hide the latency of their
// reads. Either way at most 128 registers a thread (__launch_bounds__), so 4 blocks of 128 fit an SM.
constexpr int kBlock = 128, kMaxBlock = 256;
constexpr int64_t kTileBytes = 32 * 1024;     // shared memory for the score tiles (per block)
constexpr int64_t kMaxTileRows = 32;

// Whether stage() lays out rows of `width` values for four-at-a-time reads: float rows whose width is a
// multiple of 4 (the models' N and P).
template <class T>
__host__ __device__ constexpr bool staged_vec4(int64_t width) {
  return sizeof(T) == 4 && width % 4 == 0;
}

// The row stride of a staged copy. The tile loops read one column of many rows at once, each thread its
// own row: from global memory each of those reads is its own cache line. Scalar rows are width + 1 apart,
// so a warp's 32 reads fall in 32 different banks. Four-value rows (one 16-byte read per thread, served
// 8 threads at a time) are 4·(odd) apart, so those 8 threads' reads cover the 32 banks once.
template <class T>
__host__ __device__ constexpr int64_t staged_stride(int64_t width) {
  return !staged_vec4<T>(width) ? width + 1 : width + ((width / 4) % 2 == 0 ? 4 : 8);
}

// Shared values for staging `rows` × `width` (see stage()), with room to align the copy to 16 bytes.
template <class T>
int64_t staged_size(int64_t rows, int64_t width) {
  return rows * staged_stride<T>(width) + 3;
}

// Copies `rows` × `width` values of `src` into shared memory at `cursor` (advanced past them) and returns
// the copy, rows staged_stride() apart. Callers __syncthreads() before reading.
template <class T>
__device__ RowView<T> stage(RowView<T> src, int rows, int width, T*& cursor) {
  const bool vec4 = staged_vec4<T>(width);
  if (vec4) cursor += (4 - (reinterpret_cast<uintptr_t>(cursor) / sizeof(T)) % 4) % 4;  // 16-byte aligned
  const RowView<T> copy{cursor, staged_stride<T>(width), vec4};
  for (TileWalk w(width); w.row < rows; w.next()) cursor[w.row * copy.stride + w.col] = src(w.row, w.col);
  cursor += rows * copy.stride;
  return copy;
}

// Σ_c a(i, c) b(j, c) over `width` columns; one 16-byte read per four values of each row when both are
// staged for it (the tile loops are bound by shared-memory reads: this quarters them).
template <class T>
__device__ inline T dot(RowView<T> a, int i, RowView<T> b, int j, int width) {
  const T* x = &a(i, 0);
  const T* y = &b(j, 0);
  T acc = 0;
  if constexpr (sizeof(T) == 4) {
    if (a.vec4 && b.vec4) {
      for (int c = 0; c < width; c += 4) {
        const float4 u = *reinterpret_cast<const float4*>(x + c);
        const float4 v = *reinterpret_cast<const float4*>(y + c);
        acc += u.x * v.x + u.y * v.y + u.z * v.z + u.w * v.w;
      }
      return acc;
    }
  }
  for (int c = 0; c < width; ++c) acc += x[c] * y[c];
  return acc;
}

// How many neighbouring columns of `B` one thread takes in the tile loops below: 4 when B is staged
// for four-value reads, else 1.
template <class T>
__device__ inline int column_group(RowView<T> B) {
  return B.vec4 ? 4 : 1;
}

// A thread's sums for its group of up to 4 neighbouring columns.
template <class T>
struct Sums {
  T v[4] = {0, 0, 0, 0};
};

// Σ_{j0 ≤ j < j1} w(j) · B(j, c + u) for the `group` (column_group(B)) columns u of a thread: one read of
// B's row per j for all of them.
template <class T, class Weight>
__device__ inline Sums<T> weighted_rows(const Weight& w, RowView<T> B, int j0, int j1, int c, int group) {
  Sums<T> s;
  if constexpr (sizeof(T) == 4) {
    if (group == 4) {
      for (int j = j0; j < j1; ++j) {
        const T wj = w(j);
        const float4 b = *reinterpret_cast<const float4*>(&B(j, c));
        s.v[0] += wj * b.x;
        s.v[1] += wj * b.y;
        s.v[2] += wj * b.z;
        s.v[3] += wj * b.w;
      }
      return s;
    }
  }
  for (int j = j0; j < j1; ++j) s.v[0] += w(j) * B(j, c);
  return s;
}

// out[p, n] = Σ_i w_t(i) A(i, p) B(i, n) over the chunk's rows i = (t, r), out [P, N] contiguous: the
// chunk's state S^loc (A = V, B = K) and the backward's Σ e^{cs} dY Qᵀ (A = dY, B = Q).
template <class T>
__device__ void weighted_outer(const T* w, RowView<T> A, RowView<T> B, int q, const ChunkScanSizes& z, T* out) {
  const int R = static_cast<int>(z.rank), N = static_cast<int>(z.N), P = static_cast<int>(z.P);
  for (TileWalk e(N); e.row < P; e.next()) {  // (p, n) = (e.row, e.col)
    T acc = 0;
    for (int t = 0, i = 0; t < q; ++t)
      for (int r = 0; r < R; ++r, ++i) acc += w[t] * A(i, e.row) * B(i, e.col);
    out[e.row * N + e.col] = acc;
  }
}

// ---- forward ----

// S^loc_c = Σ_i e^{T − cs_t(i)} V_i K_iᵀ into the slot of S_{c+1}; decay[s, c] = T_c.
template <class T>
__global__ void chunk_state_kernel(ChunkScanInputs<T> in, T* states, T* decay, bool staged) {
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  T* cs = shared_as<T>();  // [chunk]
  T* w = cs + z.chunk;     // [chunk]: w_t = e^{T − cs_t}, one exp per step (not per state element)
  ChunkRows<T> rows = chunk_rows(in, pos);
  if (staged) {  // V and K in shared memory: every row is read by every thread
    T* cursor = w + z.chunk;
    rows.v = stage(rows.v, pos.m, static_cast<int>(z.P), cursor);
    rows.k = stage(rows.k, pos.m, static_cast<int>(z.N), cursor);
  }
  chunk_cumsum(in, pos, cs);  // (its barriers also cover the staging)
  const T total = cs[pos.q - 1];
  for (int t = threadIdx.x; t < pos.q; t += blockDim.x) w[t] = exp(total - cs[t]);
  if (threadIdx.x == 0) decay[pos.s * z.nchunks() + pos.c] = total;
  __syncthreads();
  weighted_outer(w, rows.v, rows.k, pos.q, z, states + state_offset(z, pos.b, pos.c + 1, pos.h));
}

// S_0 = s0 (or 0); S_{c+1} = e^{T_c} S_c + S^loc_c, in place over the slots. One thread per (s, p, n).
template <class T>
__global__ void state_pass_kernel(ChunkScanSizes z, const T* s0, T* states, const T* decay) {
  const int64_t PN = z.P * z.N, nc = z.nchunks();
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < z.batch * z.heads * PN;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t s = idx / PN, e = idx % PN, b = s / z.heads, h = s % z.heads;
    T S = s0 ? s0[idx] : T(0);
    states[state_offset(z, b, 0, h) + e] = S;
    for (int64_t c = 0; c < nc; ++c) {
      T& slot = states[state_offset(z, b, c + 1, h) + e];
      S = exp(decay[s * nc + c]) * S + slot;
      slot = S;
    }
  }
}

// Y (+)= (Q Kᵀ ⊙ Λ) V + diag(e^{cs}) Q S_cᵀ, tile_rows rows at a time. With `staged`, the chunk's Q, K, V
// and S_c are first copied to shared memory (stage()).
template <class T>
__global__ void __launch_bounds__(kMaxBlock, 2) chunk_output_kernel(ChunkScanInputs<T> in, const T* states, T* y, SeqLayout y_layout,
                                    bool accumulate, int tile_rows, bool staged) {
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const int R = static_cast<int>(z.rank), N = static_cast<int>(z.N), P = static_cast<int>(z.P), m = pos.m;
  const int m_max = static_cast<int>(z.chunk) * R;
  T* cs = shared_as<T>();                       // [chunk]
  T* cs_row = cs + z.chunk;                     // [m_max] (row_steps())
  int* step_end = reinterpret_cast<int*>(cs_row + m_max);  // [m_max], in T-sized slots
  T* tile = cs_row + 2 * m_max;                 // [tile_rows, m + 1]: scores (Q_i·K_j) Λ_ij of the tile's rows
  ChunkRows<T> rows = chunk_rows(in, pos);
  RowView<T> Sc{states + state_offset(z, pos.b, pos.c, pos.h), static_cast<int64_t>(N)};  // S_c [P, N]
  if (staged) {
    T* cursor = tile + tile_rows * (m_max + 1);
    rows = {stage(rows.q, m, N, cursor), stage(rows.k, m, N, cursor), stage(rows.v, m, P, cursor)};
    Sc = stage(Sc, P, N, cursor);
  }
  chunk_cumsum(in, pos, cs);  // (its barriers also cover the staging)
  row_steps(cs, m, R, cs_row, step_end);
  __syncthreads();
  T* Y = y + seq_base(y_layout, pos.b, pos.h) + pos.t0 * R * y_layout.row_stride;
  const int ts = m + 1;  // tile row stride: a column read by threads of different rows hits distinct banks
  const int pg = column_group(rows.v);

  for (int i0 = 0; i0 < m; i0 += tile_rows) {
    const int ni = imin(tile_rows, m - i0);
    for (TileWalk e(m); e.row < ni; e.next()) {  // (i, j) = (i0 + e.row, e.col)
      const int i = i0 + e.row, j = e.col;
      tile[e.row * ts + j] = j < step_end[i] ? dot(rows.q, i, rows.k, j, N) * exp(cs_row[i] - cs_row[j]) : T(0);
    }
    __syncthreads();
    for (TileWalk e(P / pg); e.row < ni; e.next()) {  // row i, columns p0 .. p0 + pg
      const int ii = e.row, i = i0 + ii, p0 = e.col * pg;
      const Sums<T> diag = weighted_rows([&](int j) { return tile[ii * ts + j]; }, rows.v, 0, step_end[i], p0, pg);
      for (int u = 0; u < pg; ++u) {
        const T val = diag.v[u] + exp(cs_row[i]) * dot(rows.q, i, Sc, p0 + u, N);
        T& out = Y[i * y_layout.row_stride + p0 + u];
        out = accumulate ? out + val : val;
      }
    }
    __syncthreads();  // the tile is rewritten next
  }
}

// ---- backward ----

// dstates slot c = Σ_i e^{cs_t(i)} dY_i Q_iᵀ (dstates: [sequences, nchunks+1, P, N]); decay[s, c] = T_c.
template <class T>
__global__ void chunk_dstate_kernel(ChunkScanInputs<T> in, const T* dy, SeqLayout dy_layout, T* dstates, T* decay,
                                    bool staged) {
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const int64_t PN = z.P * z.N;
  T* cs = shared_as<T>();  // [chunk]
  T* ecs = cs + z.chunk;   // [chunk]: e^{cs_t}
  RowView<T> dY{dy + seq_base(dy_layout, pos.b, pos.h) + pos.t0 * z.rank * dy_layout.row_stride, dy_layout.row_stride};
  RowView<T> Q = chunk_rows(in, pos).q;
  if (staged) {  // as in chunk_state
    T* cursor = ecs + z.chunk;
    dY = stage(dY, pos.m, static_cast<int>(z.P), cursor);
    Q = stage(Q, pos.m, static_cast<int>(z.N), cursor);
  }
  chunk_cumsum(in, pos, cs);  // (its barriers also cover the staging)
  for (int t = threadIdx.x; t < pos.q; t += blockDim.x) ecs[t] = exp(cs[t]);
  if (threadIdx.x == 0) decay[pos.s * z.nchunks() + pos.c] = cs[pos.q - 1];
  __syncthreads();
  weighted_outer(ecs, dY, Q, pos.q, z, dstates + (pos.s * (z.nchunks() + 1) + pos.c) * PN);
}

// dS_nchunks = dS_final; dS_c = e^{T_c} dS_{c+1} + (slot c), in place; ds0 = dS_0. One thread per (s, p, n).
template <class T>
__global__ void dstate_pass_kernel(ChunkScanSizes z, const T* ds_final, T* dstates, const T* decay, T* ds0) {
  const int64_t PN = z.P * z.N, nc = z.nchunks();
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < z.batch * z.heads * PN;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t s = idx / PN, e = idx % PN;
    T* d = dstates + s * (nc + 1) * PN + e;
    T dS = ds_final ? ds_final[idx] : T(0);
    d[nc * PN] = dS;
    for (int64_t c = nc - 1; c >= 0; --c) {
      dS = exp(decay[s * nc + c]) * dS + d[c * PN];
      d[c * PN] = dS;
    }
    ds0[idx] = dS;
  }
}

// dQ, dK, dV of the chunk's rows and da of its steps (see the file header for the terms).
// With `staged`, the chunk's Q, K, V, dY, S_c and dS are first copied to shared memory (stage()).
template <class T>
__global__ void __launch_bounds__(kMaxBlock, 2) chunk_grads_kernel(ChunkScanInputs<T> in, const T* states, const T* dstates, const T* dy,
                                   SeqLayout dy_layout, ChunkScanGrads<T> g, int tile_rows, bool staged) {
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const int R = static_cast<int>(z.rank), N = static_cast<int>(z.N), P = static_cast<int>(z.P), m = pos.m;
  const int m_max = static_cast<int>(z.chunk) * R;
  const int64_t PN = z.P * z.N;
  T* cs = shared_as<T>();        // [chunk]
  T* cs_row = cs + z.chunk;      // [m_max] (row_steps())
  int* step_end = reinterpret_cast<int*>(cs_row + m_max);  // [m_max], in T-sized slots
  T* rowc = cs_row + 2 * m_max;  // [m_max]: the dcs contribution of each row
  T* rowg = rowc + m_max;        // [m_max]: g_i (feeds dT)
  T* red = rowg + m_max;         // [blockDim]: finish_chunk_da's per-warp sums (it needs blockDim / 32)
  T* t1 = red + blockDim.x;      // three [tile_rows, m + 1] tiles (rows m + 1 apart: see chunk_output)
  T* t2 = t1 + tile_rows * (m_max + 1);
  T* t3 = t2 + tile_rows * (m_max + 1);
  T* terms = t3 + tile_rows * (m_max + 1);  // [tile_rows, W]: the terms of a per-row dot product
  const int W = (N > P ? N : P) + 1, ts = m + 1;
  ChunkRows<T> rows = chunk_rows(in, pos);
  RowView<T> Sc{states + state_offset(z, pos.b, pos.c, pos.h), z.N};                 // S_c [P, N]
  RowView<T> dS{dstates + (pos.s * (z.nchunks() + 1) + pos.c + 1) * PN, z.N};        // ∂ℒ/∂S_{c+1} [P, N]
  RowView<T> dY{dy + seq_base(dy_layout, pos.b, pos.h) + pos.t0 * R * dy_layout.row_stride, dy_layout.row_stride};
  if (staged) {
    T* cursor = terms + tile_rows * W;
    rows = {stage(rows.q, m, N, cursor), stage(rows.k, m, N, cursor), stage(rows.v, m, P, cursor)};
    dY = stage(dY, m, P, cursor);
    Sc = stage(Sc, P, N, cursor);
    dS = stage(dS, P, N, cursor);
  }
  chunk_cumsum(in, pos, cs);  // (its barriers also cover the staging)
  row_steps(cs, m, R, cs_row, step_end);
  __syncthreads();
  const int64_t i0_rows = pos.t0 * R;
  T* dQ = g.dq + seq_base(g.dq_layout, pos.b, pos.h) + i0_rows * g.dq_layout.row_stride;
  T* dK = g.dk + seq_base(g.dk_layout, pos.b, pos.h) + i0_rows * g.dk_layout.row_stride;
  T* dV = g.dv + seq_base(g.dv_layout, pos.b, pos.h) + i0_rows * g.dv_layout.row_stride;
  const T total = cs[pos.q - 1];
  const int ng = column_group(rows.k), pg = column_group(rows.v);

  // Row pass: t1 = dM ⊙ Λ, t2 = Ξ = dM ⊙ M for the tile's rows i (columns j ≤ i's step).
  for (int i0 = 0; i0 < m; i0 += tile_rows) {
    const int ni = imin(tile_rows, m - i0);
    for (TileWalk e(m); e.row < ni; e.next()) {  // (i, j) = (i0 + e.row, e.col)
      const int i = i0 + e.row, j = e.col;
      T dm_lam = 0, xi = 0;
      if (j < step_end[i]) {
        dm_lam = dot(dY, i, rows.v, j, P) * exp(cs_row[i] - cs_row[j]);
        xi = dm_lam * dot(rows.q, i, rows.k, j, N);
      }
      t1[e.row * ts + j] = dm_lam;
      t2[e.row * ts + j] = xi;
    }
    __syncthreads();
    for (TileWalk e(N / ng); e.row < ni; e.next()) {  // dQ = e^{cs} dY S_c + (dM ⊙ Λ) K; row i, columns n0..
      const int ii = e.row, i = i0 + ii, n0 = e.col * ng;
      const Sums<T> diag = weighted_rows([&](int j) { return t1[ii * ts + j]; }, rows.k, 0, step_end[i], n0, ng);
      const Sums<T> off = weighted_rows([&](int p) { return dY(i, p); }, Sc, 0, P, n0, ng);
      for (int u = 0; u < ng; ++u) {
        const int n = n0 + u;
        const T dq_off = exp(cs_row[i]) * off.v[u];
        dQ[i * g.dq_layout.row_stride + n] = diag.v[u] + dq_off;
        terms[ii * W + n] = dq_off * rows.q(i, n);
      }
    }
    __syncthreads();
    for (int ii = threadIdx.x; ii < ni; ii += blockDim.x) {  // Σ_j Ξ_ij + (e^{cs} dY_iᵀ S_c)·Q_i
      const int i = i0 + ii;
      T row_sum = 0, off = 0;
      for (int j = 0; j < step_end[i]; ++j) row_sum += t2[ii * ts + j];
      for (int n = 0; n < N; ++n) off += terms[ii * W + n];
      rowc[i] = row_sum + off;
    }
    __syncthreads();
  }

  // Column pass: for the tile's rows i of dK/dV, t1 = M_ji, t2 = (dM ⊙ Λ)_ji, t3 = Ξ_ji (rows j from i's step on).
  for (int i0 = 0; i0 < m; i0 += tile_rows) {
    const int ni = imin(tile_rows, m - i0);
    for (TileWalk e(m); e.row < ni; e.next()) {  // (i, j) = (i0 + e.row, e.col)
      const int i = i0 + e.row, j = e.col;
      T mt = 0, dm_lam = 0, xi = 0;
      if (j >= step_end[i] - R) {
        const T lam = exp(cs_row[j] - cs_row[i]), qk = dot(rows.q, j, rows.k, i, N);
        mt = qk * lam;
        dm_lam = dot(dY, j, rows.v, i, P) * lam;
        xi = dm_lam * qk;
      }
      t1[e.row * ts + j] = mt;
      t2[e.row * ts + j] = dm_lam;
      t3[e.row * ts + j] = xi;
    }
    __syncthreads();
    for (TileWalk e(P / pg); e.row < ni; e.next()) {  // dV = w dS K + Mᵀ dY; row i, columns p0..
      const int ii = e.row, i = i0 + ii, p0 = e.col * pg;
      const Sums<T> diag = weighted_rows([&](int j) { return t1[ii * ts + j]; }, dY, step_end[i] - R, m, p0, pg);
      for (int u = 0; u < pg; ++u) {
        const int p = p0 + u;
        const T dv_state = exp(total - cs_row[i]) * dot(dS, p, rows.k, i, N);
        dV[i * g.dv_layout.row_stride + p] = diag.v[u] + dv_state;
        terms[ii * W + p] = dv_state * rows.v(i, p);
      }
    }
    for (TileWalk e(N / ng); e.row < ni; e.next()) {  // dK = w dSᵀ V + (dM ⊙ Λ)ᵀ Q; row i, columns n0..
      const int ii = e.row, i = i0 + ii, n0 = e.col * ng;
      const Sums<T> diag = weighted_rows([&](int j) { return t2[ii * ts + j]; }, rows.q, step_end[i] - R, m, n0, ng);
      const Sums<T> st = weighted_rows([&](int p) { return rows.v(i, p); }, dS, 0, P, n0, ng);
      for (int u = 0; u < ng; ++u)
        dK[i * g.dk_layout.row_stride + n0 + u] = diag.v[u] + exp(total - cs_row[i]) * st.v[u];
    }
    __syncthreads();
    for (int ii = threadIdx.x; ii < ni; ii += blockDim.x) {  // − Σ_j Ξ_ji − g_i,  g_i = V_i·(w_i dS K_i)
      const int i = i0 + ii;
      T col_sum = 0, gi = 0;
      for (int j = step_end[i] - R; j < m; ++j) col_sum += t3[ii * ts + j];
      for (int p = 0; p < P; ++p) gi += terms[ii * W + p];
      rowg[i] = gi;
      rowc[i] -= col_sum + gi;
    }
    __syncthreads();
  }

  finish_chunk_da(dS, Sc, P, N, pos, R, total, rowg, rowc, red, g.da + seq_base(g.da_layout, pos.b, pos.h),
                  g.da_layout.row_stride);
}

// ---- launch helpers ----

unsigned pass_blocks(int64_t threads) {
  return static_cast<unsigned>(std::clamp<int64_t>((threads + kBlock - 1) / kBlock, 1, int64_t{1} << 16));
}

void check_sizes(const ChunkScanSizes& z) {
  SSM_CHECK(z.batch >= 0 && z.heads > 0 && z.steps >= 0 && z.rank > 0 && z.N > 0 && z.P > 0 && z.chunk > 0,
            "cuda ssd_chunk: bad sizes (batch ", z.batch, ", heads ", z.heads, ", steps ", z.steps, ", rank ", z.rank,
            ", N ", z.N, ", P ", z.P, ", chunk ", z.chunk, ")");
  SSM_CHECK(z.batch * z.heads <= 65535, "cuda ssd_chunk: at most 65535 sequences (batch·heads) per call, got ",
            z.batch * z.heads);
  // indices inside a chunk are 32-bit (ChunkPos)
  constexpr int64_t kMaxIndex = int64_t{1} << 30;
  SSM_CHECK(z.chunk * z.rank * std::max(z.N, z.P) < kMaxIndex && z.P * z.N < kMaxIndex,
            "cuda ssd_chunk: a chunk of ", z.chunk, " steps of rank ", z.rank, " with N ", z.N, " and P ", z.P,
            " is too large for 32-bit indices");
}

// Rows per tile: as many as fit kTileBytes when one tile row holds `per_row` values (at least 1).
template <class T>
int64_t tile_rows_for(int64_t per_row) {
  return std::clamp<int64_t>(kTileBytes / (per_row * static_cast<int64_t>(sizeof(T))), 1, kMaxTileRows);
}

// Threads for a tile kernel whose block asks for `bytes` of shared memory (see kMaxBlock).
int tile_threads(size_t bytes) { return 2 * bytes > shared_limit() ? kMaxBlock : kBlock; }

// Whether the chunk kernels run on tensor cores (cuda/ssd_chunk_mma.cu): float32 problems they take.
template <class T>
bool on_tensor_cores(const ChunkScanSizes& z, const T* states) {
  if constexpr (std::is_same_v<T, float>) return ssd_chunk_mma::takes(z, states);
  return false;
}

template <class T>
Tensor scratch(int64_t n) {
  return Tensor::empty({std::max<int64_t>(n, 1)}, dtype_of<T>::value, Device::cuda());
}

// The forward of cuda/ssm_kernels.h, its inputs' keys as the kernels read them: on tensor cores with or
// without key weights, on CUDA cores without.
template <class T>
void forward_chunks(const ChunkScanInputs<T>& in, const T* s0, T* y, SeqLayout y_layout, bool accumulate,
                    T* states) {
  const ChunkScanSizes& z = in.sizes;
  const int64_t nseq = z.batch * z.heads, nc = z.nchunks();
  if (nseq == 0) return;
  const Tensor decay = scratch<T>(nseq * nc);
  const dim3 grid(static_cast<unsigned>(std::max<int64_t>(nc, 1)), static_cast<unsigned>(nseq));
  const size_t cs_bytes = static_cast<size_t>(z.chunk) * sizeof(T);
  const int64_t m_max = z.chunk * z.rank;
  const bool tensor_cores = on_tensor_cores(z, states);
  if (nc > 0 && tensor_cores) {
    if constexpr (std::is_same_v<T, float>) ssd_chunk_mma::chunk_state(in, states, decay.data<T>());
  } else if (nc > 0) {
    const size_t rows_bytes = static_cast<size_t>(staged_size<T>(m_max, z.P) + staged_size<T>(m_max, z.N)) * sizeof(T);
    const bool staged = 2 * cs_bytes + rows_bytes <= shared_limit();
    launch(chunk_state_kernel<T>, grid, kBlock, 2 * cs_bytes + (staged ? rows_bytes : 0), in, states, decay.data<T>(),
           staged);
  }
  state_pass_kernel<T><<<pass_blocks(nseq * z.P * z.N), kBlock, 0, stream()>>>(z, s0, states, decay.data<T>());
  SSM_CUDA_CHECK_LAUNCH();
  if (nc == 0) return;
  if (tensor_cores) {
    if constexpr (std::is_same_v<T, float>) ssd_chunk_mma::chunk_output(in, states, y, y_layout, accumulate);
    return;
  }
  const int rows = static_cast<int>(tile_rows_for<T>(m_max + 1));
  const size_t bytes = cs_bytes + static_cast<size_t>(2 * m_max + rows * (m_max + 1)) * sizeof(T);
  // Q, K, V and S_c in shared memory when they fit (they do at the models' sizes)
  const size_t staged_bytes =
      static_cast<size_t>(2 * staged_size<T>(m_max, z.N) + staged_size<T>(m_max, z.P) + staged_size<T>(z.P, z.N)) * sizeof(T);
  const bool staged = bytes + staged_bytes <= shared_limit();
  const size_t block_bytes = bytes + (staged ? staged_bytes : 0);
  launch(chunk_output_kernel<T>, grid, tile_threads(block_bytes), block_bytes, in, static_cast<const T*>(states), y,
         y_layout, accumulate, rows, staged);
}

// The backward likewise; with key weights on CUDA cores its dK is ∂ℒ/∂K (key_weight_grads maps it back),
// on tensor cores ∂ℒ/∂k with dw and ∂ℒ/∂e written by the kernel.
template <class T>
void backward_chunks(const ChunkScanInputs<T>& in, const T* states, const T* dy, SeqLayout dy_layout,
                     const T* ds_final, const ChunkScanGrads<T>& grads) {
  const ChunkScanSizes& z = in.sizes;
  const int64_t nseq = z.batch * z.heads, nc = z.nchunks(), PN = z.P * z.N;
  if (nseq == 0) return;
  const Tensor decay = scratch<T>(nseq * nc), dstates = scratch<T>(nseq * (nc + 1) * PN);
  const dim3 grid(static_cast<unsigned>(std::max<int64_t>(nc, 1)), static_cast<unsigned>(nseq));
  const size_t cs_bytes = static_cast<size_t>(z.chunk) * sizeof(T);
  const int64_t m_max = z.chunk * z.rank;
  const bool tensor_cores = on_tensor_cores(z, states);
  if (nc > 0 && tensor_cores) {
    if constexpr (std::is_same_v<T, float>)
      ssd_chunk_mma::chunk_dstate(in, dy, dy_layout, dstates.data<T>(), decay.data<T>());
  } else if (nc > 0) {
    const size_t rows_bytes = static_cast<size_t>(staged_size<T>(m_max, z.P) + staged_size<T>(m_max, z.N)) * sizeof(T);
    const bool staged = 2 * cs_bytes + rows_bytes <= shared_limit();
    launch(chunk_dstate_kernel<T>, grid, kBlock, 2 * cs_bytes + (staged ? rows_bytes : 0), in, dy, dy_layout,
           dstates.data<T>(), decay.data<T>(), staged);
  }
  dstate_pass_kernel<T><<<pass_blocks(nseq * PN), kBlock, 0, stream()>>>(z, ds_final, dstates.data<T>(),
                                                                        decay.data<T>(), grads.ds0);
  SSM_CUDA_CHECK_LAUNCH();
  if (nc == 0) return;
  if (tensor_cores) {
    if constexpr (std::is_same_v<T, float>)
      ssd_chunk_mma::chunk_grads(in, states, dstates.data<T>(), dy, dy_layout, grads);
    return;
  }
  const int64_t per_row = 3 * (m_max + 1) + std::max(z.N, z.P) + 1;  // three tiles, the terms
  const int rows = static_cast<int>(tile_rows_for<T>(per_row));
  const size_t bytes = cs_bytes + static_cast<size_t>(4 * m_max + kMaxBlock + rows * per_row) * sizeof(T);
  // Q, K, V, dY, S_c and dS in shared memory when they fit
  const size_t staged_bytes = static_cast<size_t>(2 * staged_size<T>(m_max, z.N) + 2 * staged_size<T>(m_max, z.P) +
                                                  2 * staged_size<T>(z.P, z.N)) * sizeof(T);
  const bool staged = bytes + staged_bytes <= shared_limit();
  const size_t block_bytes = bytes + (staged ? staged_bytes : 0);
  launch(chunk_grads_kernel<T>, grid, tile_threads(block_bytes), block_bytes, in, states,
         static_cast<const T*>(dstates.data<T>()), dy, dy_layout, grads, rows, staged);
}

// The CUDA-core kernels' view of weighted keys: K formed once into a scratch (cuda/ssd_key_weight.h).
template <class T>
struct WeightedKeys {
  Tensor keys;
  ChunkScanInputs<T> inputs;
  explicit WeightedKeys(const ChunkScanInputs<T>& in)
      : keys(scratch<T>(in.sizes.batch * in.sizes.heads * in.sizes.steps * in.sizes.rank * in.sizes.N)), inputs(in) {
    form_weighted_keys(in, keys.data<T>());
    inputs.k = keys.data<T>();
    inputs.k_layout = weighted_keys_layout(in.sizes);
    inputs.k_weight = nullptr;
  }
};

template <class T>
void check_key_weight(const ChunkScanInputs<T>& in, const T* states) {
  SSM_CHECK(!in.k_weight || in.k_layout.heads_per_group == 1,
            "cuda ssd_chunk: key weights are per head, so each head needs its own key rows");
  SSM_CHECK(!in.k_own_discount || in.k_weight, "cuda ssd_chunk: an own-step discount needs key weights");
  SSM_CHECK(!in.k_own_discount || on_tensor_cores(in.sizes, states),
            "cuda ssd_chunk: only the tensor-core kernels take an own-step discount (ssd_chunk_takes_own_discount)");
}

}  // namespace

template <class T>
void ssd_chunk_forward(const ChunkScanInputs<T>& in, const T* s0, T* y, SeqLayout y_layout, bool accumulate,
                       T* states) {
  check_sizes(in.sizes);
  check_key_weight(in, static_cast<const T*>(states));
  if (in.k_weight && !on_tensor_cores(in.sizes, states)) {
    forward_chunks(WeightedKeys<T>(in).inputs, s0, y, y_layout, accumulate, states);
  } else {
    forward_chunks(in, s0, y, y_layout, accumulate, states);
  }
}

template <class T>
void ssd_chunk_backward(const ChunkScanInputs<T>& in, const T* states, const T* dy, SeqLayout dy_layout,
                        const T* ds_final, const ChunkScanGrads<T>& grads) {
  check_sizes(in.sizes);
  check_key_weight(in, states);
  for (const SeqLayout* l : {&grads.dq_layout, &grads.dk_layout, &grads.dv_layout, &grads.da_layout})
    SSM_CHECK(l->heads_per_group == 1, "cuda ssd_chunk_backward: every head needs its own gradient rows");
  if (!in.k_weight) return backward_chunks(in, states, dy, dy_layout, ds_final, grads);
  SSM_CHECK(grads.dw, "cuda ssd_chunk_backward: key weights need a dw output");
  SSM_CHECK(!in.k_own_discount || grads.d_own_discount,
            "cuda ssd_chunk_backward: an own-step discount needs its gradient output");
  if (on_tensor_cores(in.sizes, states)) return backward_chunks(in, states, dy, dy_layout, ds_final, grads);
  backward_chunks(WeightedKeys<T>(in).inputs, states, dy, dy_layout, ds_final, grads);
  key_weight_grads(in, grads);
}

template <class T>
bool ssd_chunk_takes_own_discount(const ChunkScanSizes& z, const T* states) {
  return on_tensor_cores(z, states);
}

template void ssd_chunk_forward<float>(const ChunkScanInputs<float>&, const float*, float*, SeqLayout, bool, float*);
template void ssd_chunk_forward<double>(const ChunkScanInputs<double>&, const double*, double*, SeqLayout, bool,
                                        double*);
template void ssd_chunk_backward<float>(const ChunkScanInputs<float>&, const float*, const float*, SeqLayout,
                                        const float*, const ChunkScanGrads<float>&);
template void ssd_chunk_backward<double>(const ChunkScanInputs<double>&, const double*, const double*, SeqLayout,
                                         const double*, const ChunkScanGrads<double>&);
template bool ssd_chunk_takes_own_discount<float>(const ChunkScanSizes&, const float*);
template bool ssd_chunk_takes_own_discount<double>(const ChunkScanSizes&, const double*);

}  // namespace ssm::cuda
