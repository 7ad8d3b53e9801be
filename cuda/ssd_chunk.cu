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
// Every output element is written by one thread in a fixed order (no atomics): deterministic.
// Λ is computed as e^{cs_t − cs_s} (≤ 1 for a ≤ 0: nothing overflows) — the CPU builds it by products of
// e^{a}, which agrees to rounding.
#include <algorithm>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/ssm_kernels.h"
#include "tensor/tensor.h"

namespace ssm::cuda {
namespace {

constexpr int kBlock = 128;                   // threads per block
constexpr int64_t kTileBytes = 32 * 1024;     // shared memory for the score tiles (per block)
constexpr int64_t kMaxTileRows = 32;

__device__ inline int64_t imin(int64_t x, int64_t y) { return x < y ? x : y; }

__host__ __device__ inline int64_t seq_base(const SeqLayout& l, int64_t b, int64_t h) {
  return b * l.batch_stride + (h / l.heads_per_group) * l.head_stride;
}

// Where a block's chunk lies: sequence s = (b, h), chunk c = steps [t0, t0+q) = rows [t0·R, t0·R + m).
struct ChunkPos {
  int64_t s, b, h, c, t0, q, m;
};

__device__ inline ChunkPos chunk_pos(const ChunkScanSizes& z) {
  ChunkPos p;
  p.s = blockIdx.y;
  p.c = blockIdx.x;
  p.b = p.s / z.heads;
  p.h = p.s % z.heads;
  p.t0 = p.c * z.chunk;
  p.q = imin(z.chunk, z.steps - p.t0);
  p.m = p.q * z.rank;
  return p;
}

// state slot `slot` of sequence (b, h) in [batch, nchunks+1, H, P, N]
__host__ __device__ inline int64_t state_offset(const ChunkScanSizes& z, int64_t b, int64_t slot, int64_t h) {
  return ((b * (z.nchunks() + 1) + slot) * z.heads + h) * z.P * z.N;
}

// Rows of a matrix, `stride` values apart: an operand's rows in global memory, or their copy in shared memory.
template <class T>
struct RowView {
  const T* data;
  int64_t stride;
  __device__ const T& operator()(int64_t i, int64_t c) const { return data[i * stride + c]; }
};

// The operands of one chunk, first row at the chunk's first row: rows.q(i, n), rows.k(i, n), rows.v(i, p).
template <class T>
struct ChunkRows {
  RowView<T> q, k, v;
};

template <class T>
__device__ inline ChunkRows<T> chunk_rows(const ChunkScanInputs<T>& in, const ChunkPos& pos) {
  const int64_t i0 = pos.t0 * in.sizes.rank;
  const auto rows_of = [&](const T* base, const SeqLayout& l) {
    return RowView<T>{base + seq_base(l, pos.b, pos.h) + i0 * l.row_stride, l.row_stride};
  };
  return {rows_of(in.q, in.q_layout), rows_of(in.k, in.k_layout), rows_of(in.v, in.v_layout)};
}

// Copies `rows` × `width` values of `src` into shared memory at `cursor` (advanced past them) and returns
// the copy. The tile loops read one column of many rows at once: from global memory each of those reads
// is its own cache line; here rows are width + 1 apart, so the 32 reads of a warp fall in 32 different
// banks. Callers __syncthreads() before reading.
template <class T>
__device__ RowView<T> stage(RowView<T> src, int64_t rows, int64_t width, T*& cursor) {
  const RowView<T> copy{cursor, width + 1};
  for (int64_t e = threadIdx.x; e < rows * width; e += blockDim.x) {
    const int64_t i = e / width, c = e % width;
    cursor[i * copy.stride + c] = src(i, c);
  }
  cursor += rows * copy.stride;
  return copy;
}

// Shared values for staging `rows` × `width` (see stage()).
inline int64_t staged_size(int64_t rows, int64_t width) { return rows * (width + 1); }

// cs[t] = Σ_{τ≤t} a_{t0+τ} for the chunk's q steps: all threads load, one thread sums (q is small).
template <class T>
__device__ void chunk_cumsum(const ChunkScanInputs<T>& in, const ChunkPos& pos, T* cs) {
  const T* a = in.a + seq_base(in.a_layout, pos.b, pos.h);
  for (int64_t t = threadIdx.x; t < pos.q; t += blockDim.x) cs[t] = a[(pos.t0 + t) * in.a_layout.row_stride];
  __syncthreads();
  if (threadIdx.x == 0)
    for (int64_t t = 1; t < pos.q; ++t) cs[t] += cs[t - 1];
  __syncthreads();
}

// Dynamic shared memory, viewed as T.
template <class T>
__device__ T* shared_as() {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  return reinterpret_cast<T*>(shared_raw);
}

// ---- forward ----

// S^loc_c = Σ_i e^{T − cs_t(i)} V_i K_iᵀ into the slot of S_{c+1}; decay[s, c] = T_c.
template <class T>
__global__ void chunk_state_kernel(ChunkScanInputs<T> in, T* states, T* decay) {
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  T* cs = shared_as<T>();  // [chunk]
  T* w = cs + z.chunk;     // [chunk]: w_t = e^{T − cs_t}, one exp per step (not per state element)
  chunk_cumsum(in, pos, cs);
  const T total = cs[pos.q - 1];
  for (int64_t t = threadIdx.x; t < pos.q; t += blockDim.x) w[t] = exp(total - cs[t]);
  if (threadIdx.x == 0) decay[pos.s * z.nchunks() + pos.c] = total;
  __syncthreads();
  const ChunkRows<T> rows = chunk_rows(in, pos);
  T* out = states + state_offset(z, pos.b, pos.c + 1, pos.h);
  for (int64_t e = threadIdx.x; e < z.P * z.N; e += blockDim.x) {
    const int64_t p = e / z.N, n = e % z.N;
    T acc = 0;
    for (int64_t i = 0; i < pos.m; ++i) acc += w[i / z.rank] * rows.v(i, p) * rows.k(i, n);
    out[e] = acc;
  }
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
__global__ void chunk_output_kernel(ChunkScanInputs<T> in, const T* states, T* y, SeqLayout y_layout,
                                    bool accumulate, int64_t tile_rows, bool staged) {
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const int64_t R = z.rank, N = z.N, P = z.P, m = pos.m;
  T* cs = shared_as<T>();      // [chunk]
  T* tile = cs + z.chunk;      // [tile_rows, m]: scores (Q_i·K_j) Λ_ij of the tile's rows
  ChunkRows<T> rows = chunk_rows(in, pos);
  RowView<T> Sc{states + state_offset(z, pos.b, pos.c, pos.h), N};  // S_c [P, N]
  if (staged) {
    T* cursor = tile + tile_rows * z.chunk * R;
    rows = {stage(rows.q, m, N, cursor), stage(rows.k, m, N, cursor), stage(rows.v, m, P, cursor)};
    Sc = stage(Sc, P, N, cursor);
  }
  chunk_cumsum(in, pos, cs);  // (its barriers also cover the staging)
  T* Y = y + seq_base(y_layout, pos.b, pos.h) + pos.t0 * R * y_layout.row_stride;

  for (int64_t i0 = 0; i0 < m; i0 += tile_rows) {
    const int64_t ni = imin(tile_rows, m - i0);
    for (int64_t e = threadIdx.x; e < ni * m; e += blockDim.x) {
      const int64_t i = i0 + e / m, j = e % m, ti = i / R, tj = j / R;
      T score = 0;
      if (tj <= ti) {
        for (int64_t n = 0; n < N; ++n) score += rows.q(i, n) * rows.k(j, n);
        score *= exp(cs[ti] - cs[tj]);
      }
      tile[e] = score;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < ni * P; e += blockDim.x) {
      const int64_t ii = e / P, p = e % P, i = i0 + ii, ti = i / R, jmax = (ti + 1) * R;
      T diag = 0, off = 0;
      for (int64_t j = 0; j < jmax; ++j) diag += tile[ii * m + j] * rows.v(j, p);
      for (int64_t n = 0; n < N; ++n) off += rows.q(i, n) * Sc(p, n);
      const T val = diag + exp(cs[ti]) * off;
      T& out = Y[i * y_layout.row_stride + p];
      out = accumulate ? out + val : val;
    }
    __syncthreads();  // the tile is rewritten next
  }
}

// ---- backward ----

// dstates slot c = Σ_i e^{cs_t(i)} dY_i Q_iᵀ (dstates: [sequences, nchunks+1, P, N]); decay[s, c] = T_c.
template <class T>
__global__ void chunk_dstate_kernel(ChunkScanInputs<T> in, const T* dy, SeqLayout dy_layout, T* dstates, T* decay) {
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const int64_t PN = z.P * z.N;
  T* cs = shared_as<T>();  // [chunk]
  T* ecs = cs + z.chunk;   // [chunk]: e^{cs_t}
  chunk_cumsum(in, pos, cs);
  for (int64_t t = threadIdx.x; t < pos.q; t += blockDim.x) ecs[t] = exp(cs[t]);
  if (threadIdx.x == 0) decay[pos.s * z.nchunks() + pos.c] = cs[pos.q - 1];
  __syncthreads();
  const ChunkRows<T> rows = chunk_rows(in, pos);
  const T* dY = dy + seq_base(dy_layout, pos.b, pos.h) + pos.t0 * z.rank * dy_layout.row_stride;
  T* out = dstates + (pos.s * (z.nchunks() + 1) + pos.c) * PN;
  for (int64_t e = threadIdx.x; e < PN; e += blockDim.x) {
    const int64_t p = e / z.N, n = e % z.N;
    T acc = 0;
    for (int64_t i = 0; i < pos.m; ++i) acc += ecs[i / z.rank] * dY[i * dy_layout.row_stride + p] * rows.q(i, n);
    out[e] = acc;
  }
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
__global__ void chunk_grads_kernel(ChunkScanInputs<T> in, const T* states, const T* dstates, const T* dy,
                                   SeqLayout dy_layout, ChunkScanGrads<T> g, int64_t tile_rows, bool staged) {
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const int64_t R = z.rank, N = z.N, P = z.P, m = pos.m, m_max = z.chunk * R, PN = P * N;
  T* cs = shared_as<T>();        // [chunk]
  T* rowc = cs + z.chunk;        // [m_max]: the dcs contribution of each row
  T* rowg = rowc + m_max;        // [m_max]: g_i (feeds dT)
  T* red = rowg + m_max;         // [blockDim]: partial sums of <dS, S_c>
  T* t1 = red + blockDim.x;      // three [tile_rows, m] tiles
  T* t2 = t1 + tile_rows * m_max;
  T* t3 = t2 + tile_rows * m_max;
  T* terms = t3 + tile_rows * m_max;  // [tile_rows, max(N, P)]: the terms of a per-row dot product
  const int64_t W = N > P ? N : P;
  ChunkRows<T> rows = chunk_rows(in, pos);
  RowView<T> Sc{states + state_offset(z, pos.b, pos.c, pos.h), N};                   // S_c [P, N]
  RowView<T> dS{dstates + (pos.s * (z.nchunks() + 1) + pos.c + 1) * PN, N};          // ∂ℒ/∂S_{c+1} [P, N]
  RowView<T> dY{dy + seq_base(dy_layout, pos.b, pos.h) + pos.t0 * R * dy_layout.row_stride, dy_layout.row_stride};
  if (staged) {
    T* cursor = terms + tile_rows * W;
    rows = {stage(rows.q, m, N, cursor), stage(rows.k, m, N, cursor), stage(rows.v, m, P, cursor)};
    dY = stage(dY, m, P, cursor);
    Sc = stage(Sc, P, N, cursor);
    dS = stage(dS, P, N, cursor);
  }
  chunk_cumsum(in, pos, cs);  // (its barriers also cover the staging)
  const int64_t i0_rows = pos.t0 * R;
  T* dQ = g.dq + seq_base(g.dq_layout, pos.b, pos.h) + i0_rows * g.dq_layout.row_stride;
  T* dK = g.dk + seq_base(g.dk_layout, pos.b, pos.h) + i0_rows * g.dk_layout.row_stride;
  T* dV = g.dv + seq_base(g.dv_layout, pos.b, pos.h) + i0_rows * g.dv_layout.row_stride;
  const T total = cs[pos.q - 1];
  const auto dy_at = [&](int64_t i, int64_t p) -> T { return dY(i, p); };

  // Row pass: t1 = dM ⊙ Λ, t2 = Ξ = dM ⊙ M for the tile's rows i (columns j ≤ i's step).
  for (int64_t i0 = 0; i0 < m; i0 += tile_rows) {
    const int64_t ni = imin(tile_rows, m - i0);
    for (int64_t e = threadIdx.x; e < ni * m; e += blockDim.x) {
      const int64_t i = i0 + e / m, j = e % m, ti = i / R, tj = j / R;
      T dm_lam = 0, xi = 0;
      if (tj <= ti) {
        T dm = 0, qk = 0;
        for (int64_t p = 0; p < P; ++p) dm += dy_at(i, p) * rows.v(j, p);
        for (int64_t n = 0; n < N; ++n) qk += rows.q(i, n) * rows.k(j, n);
        const T lam = exp(cs[ti] - cs[tj]);
        dm_lam = dm * lam;
        xi = dm_lam * qk;
      }
      t1[e] = dm_lam;
      t2[e] = xi;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < ni * N; e += blockDim.x) {  // dQ = e^{cs} dY S_c + (dM ⊙ Λ) K
      const int64_t ii = e / N, n = e % N, i = i0 + ii, ti = i / R, jmax = (ti + 1) * R;
      T diag = 0, off = 0;
      for (int64_t j = 0; j < jmax; ++j) diag += t1[ii * m + j] * rows.k(j, n);
      for (int64_t p = 0; p < P; ++p) off += dy_at(i, p) * Sc(p, n);
      const T dq_off = exp(cs[ti]) * off;
      dQ[i * g.dq_layout.row_stride + n] = diag + dq_off;
      terms[ii * W + n] = dq_off * rows.q(i, n);
    }
    __syncthreads();
    for (int64_t ii = threadIdx.x; ii < ni; ii += blockDim.x) {  // Σ_j Ξ_ij + (e^{cs} dY_iᵀ S_c)·Q_i
      const int64_t i = i0 + ii, ti = i / R, jmax = (ti + 1) * R;
      T row_sum = 0, off = 0;
      for (int64_t j = 0; j < jmax; ++j) row_sum += t2[ii * m + j];
      for (int64_t n = 0; n < N; ++n) off += terms[ii * W + n];
      rowc[i] = row_sum + off;
    }
    __syncthreads();
  }

  // Column pass: for the tile's rows i of dK/dV, t1 = M_ji, t2 = (dM ⊙ Λ)_ji, t3 = Ξ_ji (rows j from i's step on).
  for (int64_t i0 = 0; i0 < m; i0 += tile_rows) {
    const int64_t ni = imin(tile_rows, m - i0);
    for (int64_t e = threadIdx.x; e < ni * m; e += blockDim.x) {
      const int64_t i = i0 + e / m, j = e % m, ti = i / R, tj = j / R;
      T mt = 0, dm_lam = 0, xi = 0;
      if (tj >= ti) {
        T dm = 0, qk = 0;
        for (int64_t p = 0; p < P; ++p) dm += dy_at(j, p) * rows.v(i, p);
        for (int64_t n = 0; n < N; ++n) qk += rows.q(j, n) * rows.k(i, n);
        const T lam = exp(cs[tj] - cs[ti]);
        mt = qk * lam;
        dm_lam = dm * lam;
        xi = dm_lam * qk;
      }
      t1[e] = mt;
      t2[e] = dm_lam;
      t3[e] = xi;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < ni * P; e += blockDim.x) {  // dV = w dS K + Mᵀ dY
      const int64_t ii = e / P, p = e % P, i = i0 + ii, ti = i / R;
      T diag = 0, st = 0;
      for (int64_t j = ti * R; j < m; ++j) diag += t1[ii * m + j] * dy_at(j, p);
      for (int64_t n = 0; n < N; ++n) st += dS(p, n) * rows.k(i, n);
      const T dv_state = exp(total - cs[ti]) * st;
      dV[i * g.dv_layout.row_stride + p] = diag + dv_state;
      terms[ii * W + p] = dv_state * rows.v(i, p);
    }
    for (int64_t e = threadIdx.x; e < ni * N; e += blockDim.x) {  // dK = w dSᵀ V + (dM ⊙ Λ)ᵀ Q
      const int64_t ii = e / N, n = e % N, i = i0 + ii, ti = i / R;
      T diag = 0, st = 0;
      for (int64_t j = ti * R; j < m; ++j) diag += t2[ii * m + j] * rows.q(j, n);
      for (int64_t p = 0; p < P; ++p) st += dS(p, n) * rows.v(i, p);
      dK[i * g.dk_layout.row_stride + n] = diag + exp(total - cs[ti]) * st;
    }
    __syncthreads();
    for (int64_t ii = threadIdx.x; ii < ni; ii += blockDim.x) {  // − Σ_j Ξ_ji − g_i,  g_i = V_i·(w_i dS K_i)
      const int64_t i = i0 + ii, ti = i / R;
      T col_sum = 0, gi = 0;
      for (int64_t j = ti * R; j < m; ++j) col_sum += t3[ii * m + j];
      for (int64_t p = 0; p < P; ++p) gi += terms[ii * W + p];
      rowg[i] = gi;
      rowc[i] -= col_sum + gi;
    }
    __syncthreads();
  }

  // dT = Σ_i g_i + e^T <dS, S_c>; dcs_last += dT; da = reverse cumsum of dcs.
  T part = 0;
  for (int64_t e = threadIdx.x; e < PN; e += blockDim.x) part += dS(e / N, e % N) * Sc(e / N, e % N);
  red[threadIdx.x] = part;
  __syncthreads();
  if (threadIdx.x == 0) {
    T dot = 0;
    for (unsigned k = 0; k < blockDim.x; ++k) dot += red[k];
    T dT = exp(total) * dot;
    for (int64_t i = 0; i < m; ++i) dT += rowg[i];
    T* da = g.da + seq_base(g.da_layout, pos.b, pos.h);
    T run = dT;
    for (int64_t t = pos.q - 1; t >= 0; --t) {
      for (int64_t r = 0; r < R; ++r) run += rowc[t * R + r];
      da[(pos.t0 + t) * g.da_layout.row_stride] = run;
    }
  }
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
}

// Rows per tile: as many as fit kTileBytes when one tile row holds `per_row` values (at least 1).
template <class T>
int64_t tile_rows_for(int64_t per_row) {
  return std::clamp<int64_t>(kTileBytes / (per_row * static_cast<int64_t>(sizeof(T))), 1, kMaxTileRows);
}

// Launches a kernel that needs `bytes` of dynamic shared memory (asking for more than the default 48 KiB).
template <class Kernel, class... Args>
void launch(Kernel kernel, dim3 grid, size_t bytes, Args... args) {
  if (bytes > 48 * 1024)
    SSM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  kernel<<<grid, kBlock, bytes, stream()>>>(args...);
  SSM_CUDA_CHECK_LAUNCH();
}

// The most dynamic shared memory a block of this device may ask for.
size_t shared_limit() {
  static const size_t limit = [] {
    int device = 0, bytes = 0;
    SSM_CUDA_CHECK(cudaGetDevice(&device));
    SSM_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    return static_cast<size_t>(bytes);
  }();
  return limit;
}

template <class T>
Tensor scratch(int64_t n) {
  return Tensor::empty({std::max<int64_t>(n, 1)}, dtype_of<T>::value, Device::cuda());
}

}  // namespace

template <class T>
void ssd_chunk_forward(const ChunkScanInputs<T>& in, const T* s0, T* y, SeqLayout y_layout, bool accumulate,
                       T* states) {
  const ChunkScanSizes& z = in.sizes;
  check_sizes(z);
  const int64_t nseq = z.batch * z.heads, nc = z.nchunks();
  if (nseq == 0) return;
  const Tensor decay = scratch<T>(nseq * nc);
  const dim3 grid(static_cast<unsigned>(std::max<int64_t>(nc, 1)), static_cast<unsigned>(nseq));
  const size_t cs_bytes = static_cast<size_t>(z.chunk) * sizeof(T);
  if (nc > 0) launch(chunk_state_kernel<T>, grid, 2 * cs_bytes, in, states, decay.data<T>());
  state_pass_kernel<T><<<pass_blocks(nseq * z.P * z.N), kBlock, 0, stream()>>>(z, s0, states, decay.data<T>());
  SSM_CUDA_CHECK_LAUNCH();
  if (nc == 0) return;
  const int64_t m_max = z.chunk * z.rank, rows = tile_rows_for<T>(m_max);
  const size_t bytes = cs_bytes + static_cast<size_t>(rows * m_max) * sizeof(T);
  // Q, K, V and S_c in shared memory when they fit (they do at the models' sizes)
  const size_t staged_bytes =
      static_cast<size_t>(2 * staged_size(m_max, z.N) + staged_size(m_max, z.P) + staged_size(z.P, z.N)) * sizeof(T);
  const bool staged = bytes + staged_bytes <= shared_limit();
  launch(chunk_output_kernel<T>, grid, bytes + (staged ? staged_bytes : 0), in, static_cast<const T*>(states), y,
         y_layout, accumulate, rows, staged);
}

template <class T>
void ssd_chunk_backward(const ChunkScanInputs<T>& in, const T* states, const T* dy, SeqLayout dy_layout,
                        const T* ds_final, const ChunkScanGrads<T>& grads) {
  const ChunkScanSizes& z = in.sizes;
  check_sizes(z);
  for (const SeqLayout* l : {&grads.dq_layout, &grads.dk_layout, &grads.dv_layout, &grads.da_layout})
    SSM_CHECK(l->heads_per_group == 1, "cuda ssd_chunk_backward: every head needs its own gradient rows");
  const int64_t nseq = z.batch * z.heads, nc = z.nchunks(), PN = z.P * z.N;
  if (nseq == 0) return;
  const Tensor decay = scratch<T>(nseq * nc), dstates = scratch<T>(nseq * (nc + 1) * PN);
  const dim3 grid(static_cast<unsigned>(std::max<int64_t>(nc, 1)), static_cast<unsigned>(nseq));
  const size_t cs_bytes = static_cast<size_t>(z.chunk) * sizeof(T);
  if (nc > 0)
    launch(chunk_dstate_kernel<T>, grid, 2 * cs_bytes, in, dy, dy_layout, dstates.data<T>(), decay.data<T>());
  dstate_pass_kernel<T><<<pass_blocks(nseq * PN), kBlock, 0, stream()>>>(z, ds_final, dstates.data<T>(),
                                                                        decay.data<T>(), grads.ds0);
  SSM_CUDA_CHECK_LAUNCH();
  if (nc == 0) return;
  const int64_t m_max = z.chunk * z.rank, per_row = 3 * m_max + std::max(z.N, z.P);  // three tiles and the terms
  const int64_t rows = tile_rows_for<T>(per_row);
  const size_t bytes = cs_bytes + static_cast<size_t>(2 * m_max + kBlock + rows * per_row) * sizeof(T);
  // Q, K, V, dY, S_c and dS in shared memory when they fit
  const size_t staged_bytes = static_cast<size_t>(2 * staged_size(m_max, z.N) + 2 * staged_size(m_max, z.P) +
                                                  2 * staged_size(z.P, z.N)) * sizeof(T);
  const bool staged = bytes + staged_bytes <= shared_limit();
  launch(chunk_grads_kernel<T>, grid, bytes + (staged ? staged_bytes : 0), in, states,
         static_cast<const T*>(dstates.data<T>()), dy, dy_layout, grads, rows, staged);
}

template void ssd_chunk_forward<float>(const ChunkScanInputs<float>&, const float*, float*, SeqLayout, bool, float*);
template void ssd_chunk_forward<double>(const ChunkScanInputs<double>&, const double*, double*, SeqLayout, bool,
                                        double*);
template void ssd_chunk_backward<float>(const ChunkScanInputs<float>&, const float*, const float*, SeqLayout,
                                        const float*, const ChunkScanGrads<float>&);
template void ssd_chunk_backward<double>(const ChunkScanInputs<double>&, const double*, const double*, SeqLayout,
                                         const double*, const ChunkScanGrads<double>&);

}  // namespace ssm::cuda
