// cuda/ssd_chunk_parts.cuh — what the chunked SSD's CUDA-core kernels (cuda/ssd_chunk.cu) and tensor-core
// kernels (cuda/ssd_chunk_mma.cu) share: where a block's chunk lies, views of its rows, the chunk-local
// cumulative decays and the end of the backward (da from the row sums).
// See cuda/ssm_kernels.h for the problem and cuda/ssd_chunk.cu's header for how the work is split.
#pragma once
#include <cstdint>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.cuh"
#include "cuda/ssm_kernels.h"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda::ssd_chunk {

__device__ inline int imin(int x, int y) { return x < y ? x : y; }

__host__ __device__ inline int64_t seq_base(const SeqLayout& l, int64_t b, int64_t h) {
  return b * l.batch_stride + (h / l.heads_per_group) * l.head_stride;
}

// Where a block's chunk lies: sequence s = (b, h), chunk c = steps [t0, t0+q) = rows [t0·R, t0·R + m).
// Indices inside a chunk are 32-bit: a 64-bit division or remainder is a ~100-instruction routine on the
// GPU, more than the arithmetic of one tile element at the 1M model's widths.
struct ChunkPos {
  int64_t s, b, h, c, t0;
  int q, m;
};

__device__ inline ChunkPos chunk_pos(const ChunkScanSizes& z) {
  ChunkPos p;
  p.s = blockIdx.y;
  p.c = blockIdx.x;
  p.b = p.s / z.heads;
  p.h = p.s % z.heads;
  p.t0 = p.c * z.chunk;
  p.q = static_cast<int>(min(z.chunk, z.steps - p.t0));
  p.m = p.q * static_cast<int>(z.rank);
  return p;
}

// state slot `slot` of sequence (b, h) in [batch, nchunks+1, H, P, N]
__host__ __device__ inline int64_t state_offset(const ChunkScanSizes& z, int64_t b, int64_t slot, int64_t h) {
  return ((b * (z.nchunks() + 1) + slot) * z.heads + h) * z.P * z.N;
}

// Rows of a matrix, `stride` values apart: an operand's rows in global memory, or their copy in shared memory.
// `vec4`: a staged copy whose rows dot() may read four values at a time (see staged_stride()).
template <class T>
struct RowView {
  const T* data;
  int64_t stride;
  bool vec4 = false;
  __device__ const T& operator()(int i, int c) const { return data[i * stride + c]; }
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

// cs[t] = Σ_{τ≤t} a_{t0+τ} for the chunk's q steps: all threads load, one thread sums (q is small).
template <class T>
__device__ void chunk_cumsum(const ChunkScanInputs<T>& in, const ChunkPos& pos, T* cs) {
  const T* a = in.a + seq_base(in.a_layout, pos.b, pos.h);
  for (int t = threadIdx.x; t < pos.q; t += blockDim.x) cs[t] = a[(pos.t0 + t) * in.a_layout.row_stride];
  __syncthreads();
  if (threadIdx.x == 0)
    for (int t = 1; t < pos.q; ++t) cs[t] += cs[t - 1];
  __syncthreads();
}

// Per row i = (t, r) of the chunk, so the tile loops need no division by R: cs_row[i] = cs_t and
// step_end[i] = (t + 1)·R, the first row of the next step (rows j < step_end[i] are causal for row i;
// rows j ≥ step_end[i] − R are at or after its step). Callers __syncthreads() before reading.
template <class T>
__device__ void row_steps(const T* cs, int m, int R, T* cs_row, int* step_end) {
  for (int i = threadIdx.x; i < m; i += blockDim.x) {
    const int t = i / R;
    cs_row[i] = cs[t];
    step_end[i] = (t + 1) * R;
  }
}

// Dynamic shared memory, viewed as T.
template <class T>
__device__ T* shared_as() {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  return reinterpret_cast<T*>(shared_raw);
}

// The end of a chunk's backward: dT = Σ_i g_i + e^T <dS, S_c> (g_i in rowg), dcs_last += dT, and
// da_τ = Σ_{t≥τ} dcs_t (dcs_t: rowc summed over the step's R rows), written to da (the sequence's steps,
// `da_stride` apart). dT is a block sum (per-thread parts, shuffle sums per warp, then the warps' sums);
// red: one value per warp of shared scratch. Called by every thread; blockDim.x a multiple of 32.
template <class T>
__device__ void finish_chunk_da(RowView<T> dS, RowView<T> Sc, int P, int N, const ChunkPos& pos, int R, T total,
                                const T* rowg, const T* rowc, T* red, T* da, int64_t da_stride) {
  T part = 0;
  if (dS.stride == N && Sc.stride == N) {  // whole [P, N] blocks: four independent loads of each at a time
    const int PN = P * N;
#pragma unroll 4
    for (int e = static_cast<int>(threadIdx.x); e < PN; e += blockDim.x) part += dS.data[e] * Sc.data[e];
  } else {
    for (TileWalk e(N); e.row < P; e.next()) part += dS(e.row, e.col) * Sc(e.row, e.col);
  }
  part *= exp(total);
  for (int i = static_cast<int>(threadIdx.x); i < pos.m; i += blockDim.x) part += rowg[i];
  part = warp_sum(part);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = part;
  __syncthreads();
  if (threadIdx.x == 0) {
    T run = 0;  // dT
    for (unsigned w = 0; w < blockDim.x / 32; ++w) run += red[w];
    for (int t = pos.q - 1; t >= 0; --t) {
      for (int r = 0; r < R; ++r) run += rowc[t * R + r];
      da[(pos.t0 + t) * da_stride] = run;
    }
  }
}

}  // namespace ssm::cuda::ssd_chunk
