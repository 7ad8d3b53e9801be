// cuda/ssd_chunk_mma.cu — the chunked SSD's per-chunk kernels on tensor cores, in 3×TF32.
//
// The same four kernels as cuda/ssd_chunk.cu (whose header gives the math), for float32 with N and P
// multiples of 16. There each thread forms its outputs' dot products on CUDA cores; here every product
// of a chunk is a matrix product of 16×16 tiles that a warp computes with WMMA's tf32 m16n16k8
// operation, and the masks and scalings are elementwise passes over products kept in shared memory.
// A block takes one chunk: m = q·R rows, staged in shared memory with zero rows up to mp (a multiple
// of 16), so the products need no bounds. Per chunk:
//   forward   S^loc = Vᵀ diag(w) K                          (P×N; w_i = e^{T − cs_t(i)})
//             G = (Q Kᵀ) ⊙ Λ,  Y = G V + diag(e^{cs}) Q S_cᵀ
//   backward  Σ_i e^{cs_i} dY_i Q_iᵀ = dYᵀ diag(e^{cs}) Q   (P×N)
//             Q Kᵀ and dM = dY Vᵀ once each (the CUDA-core kernel forms them twice, for its row pass and
//             its column pass), then M = Q Kᵀ ⊙ Λ, dM ⊙ Λ and Ξ = (dM ⊙ Λ) ⊙ Q Kᵀ elementwise, and
//             dQ = diag(e^{cs}) dY S_c + (dM ⊙ Λ) K        row sums: Σ_j Ξ_ij + dQ^off_i · Q_i
//             dK = diag(w) V dS + (dM ⊙ Λ)ᵀ Q              column sums: Σ_i Ξ_ij
//             dV = diag(w) K dSᵀ + Mᵀ dY                   g_i = V_i · (diag(w) K dSᵀ)_i
// Key weights (cuda/ssd_key_weight.h), when the problem has them, enter where K's rows meet a product: the
// weights w of S^loc (and so of dK's and dV's state terms), and the columns of Q Kᵀ ⊙ Λ, which K's own
// step sees with w − e when the problem has an own-step discount e (cuda/ssm_kernels.h; Mamba-3's diagonal
// correction). So K = w_t k is never written out, and the gradient kernel gives ∂ℒ/∂k, ∂ℒ/∂w and ∂ℒ/∂e
// itself (the weights' gradients as row sums of the products it forms anyway).
// A transpose is a column-major view of the row-major copy (WMMA loads either), never a copy. Causal
// products skip the 8-column steps wholly above the block diagonal. S_c and dS are read from global
// memory (every chunk's [P, N] block is 32-byte aligned there); the row sums, dT and da end as in the
// CUDA-core kernel (finish_chunk_da). The backward's three gradients are one list of 16×16 tiles that the
// warps share out, each tile's scaling and masked term in its warp's own scratch (ChunkGradient), so the
// block meets at no barrier from the row sums' pass to the end of dV.
//
// Why 3×TF32: a tf32 operand keeps 10 of float's 23 mantissa bits (relative error ~2^-10 as these
// kernels truncate), too coarse for a float32 path held to the CPU at ~1e-5. Each operand is split
// x = hi + lo, hi = tf32(x), lo = tf32(x − hi); a·b ≈ lo_a·hi_b + hi_a·lo_b + hi_a·hi_b drops only lo_a·lo_b
// and lo's truncation (~2^-20 relative), near float32's own rounding, for three tensor-core products where
// one would do: still several times the CUDA cores' rate, and the products are read from shared memory
// once per 16×16×8 step, not per element.
// Under bf16 autocast (ChunkScanInputs::tf32_products) and in the opt-in TF32 mode the products are single
// TF32: autocast's rule is reduced-precision operands with float32 accumulation, and tf32 keeps 3 more
// mantissa bits than the bf16 operands the official kernels' products take there.
#include "cuda/ssd_chunk_mma.h"

#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/ssd_chunk_parts.cuh"
#include "cuda/warp_sum.cuh"

namespace ssm::cuda::ssd_chunk_mma {
namespace {

using namespace ssd_chunk;
namespace wmma = nvcuda::wmma;

// WMMA's tf32 products need sm_80 or newer. Compiled for an older GPU the kernels are empty, and takes()
// never picks them there.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define SSM_TF32_MMA 1
#else
#define SSM_TF32_MMA 0
#endif

constexpr int kTile = 16;      // the side of a warp's output tile
// Threads per block: 8 warps for the two outer-product kernels (several blocks fit an SM). The output and
// gradient kernels, whose shared memory fits one or two blocks per SM, take 16 warps when their products
// have a tile for each (tile_threads): at the 130M heads 8 warps left the SM idle between the phases of a
// block (ncu: 12.5% occupancy, ~8 cycles per issued instruction), and 16 take a layer's scan from 13.5
// to 11.3 ms; at the ~1M heads (4 tiles a product) 16 warps made the training step 10% slower.
constexpr int kThreads = 256, kTileThreads = 512;
constexpr int kPad = 4;        // shared rows are width + 4 apart: a 16-byte multiple (WMMA's loads need
                               // one), shifting each row by 4 banks

__host__ __device__ constexpr int round_up(int x, int to) { return (x + to - 1) / to * to; }

// A chunk's rows in shared memory: chunk·R rounded up to 16.
__host__ __device__ inline int padded_rows(const ChunkScanSizes& z) {
  return round_up(static_cast<int>(z.chunk * z.rank), kTile);
}

// Shared memory handed out in 32-byte aligned pieces (WMMA's loads and stores need it), in floats. The
// kernels and the host carve the same pieces in the same order, so the host knows the size to ask for.
struct Carve {
  int used = 0;
  __host__ __device__ int take(int floats) {
    const int at = used;
    used += round_up(floats, 8);
    return at;
  }
};

// The pieces of each kernel's shared memory (offsets in floats; `floats` is the total).
struct OuterLayout {  // chunk_state, chunk_dstate
  int cs, w, a, b, floats;
  __host__ __device__ explicit OuterLayout(const ChunkScanSizes& z) {
    const int mp = padded_rows(z);
    Carve c;
    cs = c.take(static_cast<int>(z.chunk));
    w = c.take(mp);
    a = c.take(mp * static_cast<int>(z.P + kPad));
    b = c.take(mp * static_cast<int>(z.N + kPad));
    floats = c.used;
  }
};

struct OutputLayout {  // chunk_output
  int cs, cs_row, step_end, kw, own, q, k, v, g, y, floats;
  __host__ __device__ explicit OutputLayout(const ChunkScanSizes& z) {
    const int mp = padded_rows(z), ldn = static_cast<int>(z.N) + kPad, ldp = static_cast<int>(z.P) + kPad;
    Carve c;
    cs = c.take(static_cast<int>(z.chunk));
    cs_row = c.take(mp);
    step_end = c.take(mp);
    kw = c.take(mp);
    own = c.take(mp);
    q = c.take(mp * ldn);
    k = c.take(mp * ldn);
    v = c.take(mp * ldp);
    g = c.take(mp * (mp + kPad));
    y = z.P <= z.N ? k : c.take(mp * ldp);  // K's rows are free once Q Kᵀ is formed: Y's tile fits there
    floats = c.used;
  }
};

constexpr int kScratchLd = kTile + kPad;  // a warp's 16×16 scratch tile in the gradient kernel: rows 20 apart

struct GradsLayout {  // chunk_grads, with `warps` warps a block
  int cs, cs_row, step_end, ecs, w, kw, own, rowc, rowg, row_dw, row_de, red, q, k, v, dy, g, dm, xi;
  int dq_dots, dk_dots, dv_dots, scratch, floats;
  __host__ __device__ GradsLayout(const ChunkScanSizes& z, int warps) {
    const int mp = padded_rows(z), N = static_cast<int>(z.N), P = static_cast<int>(z.P), ldn = N + kPad,
              ldp = P + kPad;
    Carve c;
    cs = c.take(static_cast<int>(z.chunk));
    for (int* piece : {&cs_row, &step_end, &ecs, &w, &kw, &own, &rowc, &rowg, &row_dw, &row_de}) *piece = c.take(mp);
    red = c.take(kTileThreads / 32);
    q = c.take(mp * ldn);
    k = c.take(mp * ldn);
    v = c.take(mp * ldp);
    dy = c.take(mp * ldp);
    for (int* piece : {&g, &dm, &xi}) *piece = c.take(mp * (mp + kPad));
    dq_dots = c.take(mp * (N / kTile));  // the row dots of ChunkGradient, one partial per 16-column tile
    dk_dots = c.take(mp * (N / kTile));
    dv_dots = c.take(mp * (P / kTile));
    scratch = c.take(warps * kTile * kScratchLd);
    floats = c.used;
  }
};

#if SSM_TF32_MMA

constexpr int kStep = 8;  // the k of one tf32 product

__device__ inline float* mma_shared() {
  extern __shared__ __align__(128) float mma_shared_floats[];
  return mma_shared_floats;
}

// Copies the chunk's m rows of `src` (width w), each times row_scale[i] when given, into shared rows ld
// apart, and zeroes rows m .. mp. Callers __syncthreads() before reading. Rows that are 16-byte aligned
// (the models' operands: widths and row strides multiples of 4) go four values per load, and each thread
// issues kInFlight loads before it stores any: a load waits hundreds of cycles, and one at a time these
// copies were a sixth of the gradient kernel's stalls (ncu, 130M heads).
__device__ void stage_rows(RowView<float> src, int m, int mp, int w, float* dst, int ld,
                           const float* row_scale = nullptr) {
  if (w % 4 != 0 || src.stride % 4 != 0 || reinterpret_cast<uintptr_t>(src.data) % 16 != 0) {
    for (TileWalk e(w); e.row < mp; e.next()) {
      float x = 0.f;
      if (e.row < m) x = row_scale ? src(e.row, e.col) * row_scale[e.row] : src(e.row, e.col);
      dst[e.row * ld + e.col] = x;
    }
    return;
  }
  constexpr int kInFlight = 4;
  for (TileWalk e(w / 4); e.row < mp;) {
    float4 x[kInFlight];
    int row[kInFlight], col[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u, e.next()) {
      row[u] = e.row;
      col[u] = 4 * e.col;
      x[u] = e.row < m ? *reinterpret_cast<const float4*>(&src(e.row, col[u])) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      if (row[u] >= mp) break;
      if (row_scale && row[u] < m) {
        const float f = row_scale[row[u]];
        x[u] = make_float4(x[u].x * f, x[u].y * f, x[u].z * f, x[u].w * f);
      }
      *reinterpret_cast<float4*>(dst + row[u] * ld + col[u]) = x[u];
    }
  }
}

// Copies rows [0, m) of a shared tile (rows ld apart, width w) to global rows: dst(i, c) = or += tile.
__device__ void write_rows(const float* tile, int ld, int m, int w, float* dst, int64_t dst_stride,
                           bool accumulate = false) {
  for (TileWalk e(w); e.row < m; e.next()) {
    float& out = dst[e.row * dst_stride + e.col];
    const float x = tile[e.row * ld + e.col];
    out = accumulate ? out + x : x;
  }
}

// row_steps() for the chunk's rows, and for the padding rows: no causal columns.
__device__ void padded_row_steps(const float* cs, int m, int mp, int R, float* cs_row, int* step_end) {
  row_steps(cs, m, R, cs_row, step_end);
  for (int i = m + static_cast<int>(threadIdx.x); i < mp; i += blockDim.x) {
    cs_row[i] = 0.f;
    step_end[i] = 0;
  }
}

// This sequence's key weights from the chunk's first step (cuda/ssd_key_weight.h), nullptr without them.
__device__ inline const float* chunk_key_weights(const ChunkScanInputs<float>& in, const ChunkPos& pos) {
  if (!in.k_weight) return nullptr;
  return in.k_weight + seq_base(in.k_weight_layout, pos.b, pos.h) + pos.t0 * in.k_weight_layout.row_stride;
}

// The weights of the chunk's key rows as the columns of its masked product Q Kᵀ ⊙ Λ see them: row j's step
// weight w from later steps' rows, w − e (the own-step discount, cuda/ssm_kernels.h) from its own step's.
// Per row in shared memory (0 on the padding rows); all ones without key weights.
struct KeyColumns {
  const float *later = nullptr, *own = nullptr;  // nullptr without key weights
  __device__ bool weighted() const { return later != nullptr; }
  __device__ float later_weight(int j) const { return later ? later[j] : 1.f; }
  __device__ float own_weight(int j) const { return own ? own[j] : 1.f; }
  // The weight of column j in the product's row whose step starts at row own_begin (j < that step's end).
  __device__ float operator()(int j, int own_begin) const { return j >= own_begin ? own_weight(j) : later_weight(j); }
};

// Fills later and own for the chunk's rows when the problem has key weights. Callers __syncthreads()
// before reading.
__device__ KeyColumns key_columns(const ChunkScanInputs<float>& in, const ChunkPos& pos, int mp, float* later,
                                  float* own) {
  const float* kw = chunk_key_weights(in, pos);
  if (!kw) return {};
  const int64_t stride = in.k_weight_layout.row_stride;
  const float* discount =
      in.k_own_discount ? in.k_own_discount + seq_base(in.k_weight_layout, pos.b, pos.h) + pos.t0 * stride : nullptr;
  const int R = static_cast<int>(in.sizes.rank);
  for (int i = static_cast<int>(threadIdx.x); i < mp; i += blockDim.x) {
    const int64_t step = i / R * stride;
    later[i] = i < pos.m ? kw[step] : 0.f;
    own[i] = i < pos.m ? kw[step] - (discount ? discount[step] : 0.f) : 0.f;
  }
  return {later, own};
}

// The columns a causal product's rows [i0, i0 + 16) reach: j < the end of the last row's step.
__device__ inline int causal_end(int i0, int R) { return ((i0 + kTile - 1) / R + 1) * R; }
// The rows j ≥ the start of row i0's step, which a transposed causal product's rows [i0, i0 + 16) read.
__device__ inline int causal_begin(int i0, int R) { return i0 / R * R; }
// The same as k ranges of whole 8-column steps: [0, causal_k_end) for a masked product M V,
// [anticausal_k_begin, mp) for Mᵀ V.
__device__ inline int causal_k_end(int i0, int R, int mp) { return round_up(min(causal_end(i0, R), mp), kStep); }
__device__ inline int anticausal_k_begin(int i0, int R) { return causal_begin(i0, R) / kStep * kStep; }

// ---- tiles on tensor cores ----

using RowMajor = wmma::row_major;
using ColMajor = wmma::col_major;
using Acc = wmma::fragment<wmma::accumulator, kTile, kTile, kStep, float>;

// A matrix operand: element (r, c) at data[r·ld + c] (RowMajor), or at data[c·ld + r] (ColMajor: the
// transpose of a row-major matrix, read in place).
template <class Layout>
struct Mat {
  const float* data;
  int ld;
  __device__ const float* at(int r, int c) const {
    if constexpr (std::is_same_v<Layout, RowMajor>) return data + r * ld + c;
    else return data + c * ld + r;
  }
};

// x with its 13 low mantissa bits cleared: a tf32 value, x rounded toward zero. One logic operation where
// __float_to_tf32 (round to nearest, with guards for infinities and NaNs) took four, on every element of
// every fragment: they were a large share of these kernels' instructions (ncu, 130M heads), which wait on
// each other's latency. Infinities and NaNs stay what they are.
__device__ inline float tf32_truncated(float x) { return __uint_as_float(__float_as_uint(x) & 0xffffe000u); }

// hi = tf32(x) and, when lo is given, lo = tf32(x − hi); x is in hi on entry. x − hi is exact (the bits
// cleared from x), so x = hi + lo to within lo's own truncation, ~2^-21 |x|.
template <class Frag>
__device__ inline void to_tf32(Frag& hi, Frag* lo) {
  for (int t = 0; t < hi.num_elements; ++t) {
    const float x = hi.x[t];
    hi.x[t] = tf32_truncated(x);
    if (lo) lo->x[t] = tf32_truncated(x - hi.x[t]);
  }
}

// acc += A[i0 .. i0+16, k0 .. k1) · B[k0 .. k1, j0 .. j0+16), k0 and k1 multiples of 8 (one warp): in
// 3×TF32 (kSplit), or as single TF32 products (the opt-in TF32 mode of cuda/context.h, ~1e-3 relative).
template <bool kSplit, class LA, class LB>
__device__ void mma_add(Acc& acc, Mat<LA> A, Mat<LB> B, int i0, int j0, int k0, int k1) {
  wmma::fragment<wmma::matrix_a, kTile, kTile, kStep, wmma::precision::tf32, LA> a_hi, a_lo;
  wmma::fragment<wmma::matrix_b, kTile, kTile, kStep, wmma::precision::tf32, LB> b_hi, b_lo;
  for (int k = k0; k < k1; k += kStep) {
    wmma::load_matrix_sync(a_hi, A.at(i0, k), A.ld);
    wmma::load_matrix_sync(b_hi, B.at(k, j0), B.ld);
    to_tf32(a_hi, kSplit ? &a_lo : nullptr);
    to_tf32(b_hi, kSplit ? &b_lo : nullptr);
    if constexpr (kSplit) {
      wmma::mma_sync(acc, a_lo, b_hi, acc);
      wmma::mma_sync(acc, a_hi, b_lo, acc);
    }
    wmma::mma_sync(acc, a_hi, b_hi, acc);
  }
}

__device__ inline Acc zero_tile() {
  Acc acc;
  wmma::fill_fragment(acc, 0.f);
  return acc;
}

__device__ inline Acc load_tile(const float* p, int ld) {
  Acc acc;
  wmma::load_matrix_sync(acc, p, ld, wmma::mem_row_major);
  return acc;
}

__device__ inline void store_tile(float* p, int ld, const Acc& acc) {
  wmma::store_matrix_sync(p, acc, ld, wmma::mem_row_major);
}

// tile(i0, j0) for each 16×16 tile of a rows × cols product, the block's warps taking turns.
template <class F>
__device__ void for_warp_tiles(int rows, int cols, F&& tile) {
  const int warp = static_cast<int>(threadIdx.x) / 32, warps = static_cast<int>(blockDim.x) / 32;
  const int per_row = cols / kTile;
  for (int t = warp; t < rows / kTile * per_row; t += warps) tile(t / per_row * kTile, t % per_row * kTile);
}

// One gradient of the chunk's rows, `width` columns: dst = diag(scale) · (state term) + (masked term), for
// rows < m; with U given also the state term's row dot products with U (before the scaling), as a partial sum
// per 16-column tile: dots[i · width/16 + c0/16]. state_term and masked_term add one 16×16 tile's product to
// an accumulator. The gradient kernel's warps share out the tiles of its three gradients as one list, and
// each tile goes through the warp's own scratch, so no block barrier stands between a warp's tiles: with
// one barrier a phase (the tiles' products, the row scaling, the masked terms, the write), the block's 16
// warps all waited for the slowest at each of the twelve.
template <class StateTerm, class MaskedTerm>
struct ChunkGradient {
  StateTerm state_term;
  MaskedTerm masked_term;
  const float *scale, *U;
  int ldu, width;
  float* dots;
  float* dst;
  int64_t dst_stride;

  __device__ int tiles(int mp) const { return mp / kTile * (width / kTile); }

  // Tile t (row-major over the mp × width tiles) with the warp's scratch (kTile rows kScratchLd apart).
  __device__ void tile(int t, int m, float* scratch) const {
    const int per_row = width / kTile, i0 = t / per_row * kTile, c0 = t % per_row * kTile;
    Acc acc = zero_tile();
    state_term(acc, i0, c0);
    store_tile(scratch, kScratchLd, acc);
    __syncwarp();
    // lane → row i0 + lane/2, eight columns from c0 + 8·(lane % 2)
    const int lane = static_cast<int>(threadIdx.x) % 32, r = lane / 2, cb = lane % 2 * 8, i = i0 + r;
    float* row = scratch + r * kScratchLd + cb;
    float dot = 0.f;
    for (int c = 0; c < 8; ++c) {
      if (U) dot += row[c] * U[i * ldu + c0 + cb + c];
      row[c] *= scale[i];
    }
    dot += __shfl_xor_sync(0xffffffffu, dot, 1);
    if (U && cb == 0) dots[i * per_row + c0 / kTile] = dot;
    __syncwarp();
    acc = load_tile(scratch, kScratchLd);
    masked_term(acc, i0, c0);
    store_tile(scratch, kScratchLd, acc);
    __syncwarp();
    if (i < m)
      for (int c = 0; c < 8; ++c) dst[i * dst_stride + c0 + cb + c] = row[c];
    __syncwarp();  // the scratch is the warp's next tile's
  }
};
template <class StateTerm, class MaskedTerm>
__device__ ChunkGradient<StateTerm, MaskedTerm> chunk_gradient(StateTerm state_term, MaskedTerm masked_term,
                                                              const float* scale, const float* U, int ldu,
                                                              int width, float* dots, float* dst,
                                                              int64_t dst_stride) {
  return {state_term, masked_term, scale, U, ldu, width, dots, dst, dst_stride};
}

// The row dot products' partial sums of one row: Σ over its `tiles` tiles, in tile order.
__device__ inline float row_dot(const float* dots, int i, int tiles) {
  float sum = 0.f;
  for (int t = 0; t < tiles; ++t) sum += dots[i * tiles + t];
  return sum;
}

// The key weights' gradients of the chunk's steps: dw_t = Σ_r row_dw_{t,r} and, with an own-step
// discount, ∂ℒ/∂e_t = Σ_r row_de_{t,r}. Callers __syncthreads() before (the row sums are other warps').
__device__ void write_step_sums(const ChunkPos& pos, int R, const float* row_dw, const float* row_de,
                                const ChunkScanGrads<float>& grads) {
  const SeqLayout& l = grads.dw_layout;
  const int64_t first = seq_base(l, pos.b, pos.h) + pos.t0 * l.row_stride;
  for (int t = static_cast<int>(threadIdx.x); t < pos.q; t += blockDim.x) {
    float dw = 0.f, de = 0.f;
    for (int r = 0; r < R; ++r) {
      dw += row_dw[t * R + r];
      de += row_de[t * R + r];
    }
    grads.dw[first + t * l.row_stride] = dw;
    if (grads.d_own_discount) grads.d_own_discount[first + t * l.row_stride] = de;
  }
}

// ---- forward ----

// out [P, N] = Aᵀ diag(w) B over the chunk's rows, w_i = weight(cs_t(i), T) (times the key weights when B
// are the keys and the problem has them), and decay[s, c] = T.
template <bool kSplit, class Weight>
__device__ void weighted_outer(const ChunkScanInputs<float>& in, const ChunkPos& pos, RowView<float> A,
                               RowView<float> B, bool b_are_keys, Weight weight, float* out, float* decay) {
  const ChunkScanSizes& z = in.sizes;
  const int R = static_cast<int>(z.rank), N = static_cast<int>(z.N), P = static_cast<int>(z.P);
  const int mp = padded_rows(z), lda = P + kPad, ldb = N + kPad;
  const OuterLayout lay(z);
  float* sh = mma_shared();
  float *cs = sh + lay.cs, *w = sh + lay.w, *a = sh + lay.a, *b = sh + lay.b;
  chunk_cumsum(in, pos, cs);
  const float total = cs[pos.q - 1];
  const float* kw = b_are_keys ? chunk_key_weights(in, pos) : nullptr;
  const int64_t kw_stride = in.k_weight_layout.row_stride;
  for (int i = static_cast<int>(threadIdx.x); i < pos.m; i += blockDim.x)
    w[i] = weight(cs[i / R], total) * (kw ? kw[i / R * kw_stride] : 1.f);
  if (threadIdx.x == 0) decay[pos.s * z.nchunks() + pos.c] = total;
  __syncthreads();
  stage_rows(A, pos.m, mp, P, a, lda);
  stage_rows(B, pos.m, mp, N, b, ldb, w);
  __syncthreads();
  for_warp_tiles(P, N, [&](int p0, int n0) {
    Acc acc = zero_tile();
    mma_add<kSplit>(acc, Mat<ColMajor>{a, lda}, Mat<RowMajor>{b, ldb}, p0, n0, 0, mp);
    store_tile(out + p0 * N + n0, N, acc);
  });
}

#endif  // SSM_TF32_MMA

// S^loc_c = Vᵀ diag(e^{T − cs}) K into the slot of S_{c+1}.
template <bool kSplit>
__global__ void __launch_bounds__(kThreads) chunk_state_kernel(ChunkScanInputs<float> in, float* states,
                                                               float* decay) {
#if SSM_TF32_MMA
  const ChunkPos pos = chunk_pos(in.sizes);
  const ChunkRows<float> rows = chunk_rows(in, pos);
  weighted_outer<kSplit>(in, pos, rows.v, rows.k, /*b_are_keys=*/true,
                         [](float cs, float total) { return expf(total - cs); },
                         states + state_offset(in.sizes, pos.b, pos.c + 1, pos.h), decay);
#endif
}

// Y (+)= (Q Kᵀ ⊙ Λ) V + diag(e^{cs}) Q S_cᵀ.
template <bool kSplit>
__global__ void __launch_bounds__(kTileThreads) chunk_output_kernel(ChunkScanInputs<float> in, const float* states,
                                                                float* y, SeqLayout y_layout, bool accumulate) {
#if SSM_TF32_MMA
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const int R = static_cast<int>(z.rank), N = static_cast<int>(z.N), P = static_cast<int>(z.P), m = pos.m;
  const int mp = padded_rows(z), ldn = N + kPad, ldp = P + kPad, ldg = mp + kPad;
  const OutputLayout lay(z);
  float* sh = mma_shared();
  float *cs = sh + lay.cs, *cs_row = sh + lay.cs_row, *q = sh + lay.q, *k = sh + lay.k, *v = sh + lay.v,
        *g = sh + lay.g, *y_tile = sh + lay.y;
  int* step_end = reinterpret_cast<int*>(sh + lay.step_end);
  const ChunkRows<float> rows = chunk_rows(in, pos);
  const KeyColumns columns = key_columns(in, pos, mp, sh + lay.kw, sh + lay.own);
  stage_rows(rows.q, m, mp, N, q, ldn);
  stage_rows(rows.k, m, mp, N, k, ldn);
  stage_rows(rows.v, m, mp, P, v, ldp);
  chunk_cumsum(in, pos, cs);  // (its barriers also cover the staging and the key columns)
  padded_row_steps(cs, m, mp, R, cs_row, step_end);
  __syncthreads();

  // Q Kᵀ on the tiles that reach the causal block triangle
  for_warp_tiles(mp, mp, [&](int i0, int j0) {
    if (j0 >= causal_end(i0, R)) return;
    Acc acc = zero_tile();
    mma_add<kSplit>(acc, Mat<RowMajor>{q, ldn}, Mat<ColMajor>{k, ldn}, i0, j0, 0, N);
    store_tile(g + i0 * ldg + j0, ldg, acc);
  });
  __syncthreads();
  // G = Q Kᵀ ⊙ Λ with the key columns' weights (zero outside the causal block triangle), Q ← diag(e^{cs}) Q
  for (TileWalk e(mp); e.row < mp; e.next()) {
    float& gij = g[e.row * ldg + e.col];
    const int end = step_end[e.row];
    gij = e.col < end ? gij * expf(cs_row[e.row] - cs_row[e.col]) * columns(e.col, end - R) : 0.f;
  }
  for (TileWalk e(N); e.row < m; e.next()) q[e.row * ldn + e.col] *= expf(cs_row[e.row]);
  __syncthreads();
  // Y = G V + (diag(e^{cs}) Q) S_cᵀ
  const float* Sc = states + state_offset(z, pos.b, pos.c, pos.h);
  for_warp_tiles(mp, P, [&](int i0, int p0) {
    Acc acc = zero_tile();
    mma_add<kSplit>(acc, Mat<RowMajor>{g, ldg}, Mat<RowMajor>{v, ldp}, i0, p0, 0, causal_k_end(i0, R, mp));
    mma_add<kSplit>(acc, Mat<RowMajor>{q, ldn}, Mat<ColMajor>{Sc, N}, i0, p0, 0, N);
    store_tile(y_tile + i0 * ldp + p0, ldp, acc);
  });
  __syncthreads();
  write_rows(y_tile, ldp, m, P, y + seq_base(y_layout, pos.b, pos.h) + pos.t0 * R * y_layout.row_stride,
             y_layout.row_stride, accumulate);
#endif
}

// ---- backward ----

// dS slot c = dYᵀ diag(e^{cs}) Q.
template <bool kSplit>
__global__ void __launch_bounds__(kThreads) chunk_dstate_kernel(ChunkScanInputs<float> in, const float* dy,
                                                                SeqLayout dy_layout, float* dstates, float* decay) {
#if SSM_TF32_MMA
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const RowView<float> dY{dy + seq_base(dy_layout, pos.b, pos.h) + pos.t0 * z.rank * dy_layout.row_stride,
                          dy_layout.row_stride};
  weighted_outer<kSplit>(in, pos, dY, chunk_rows(in, pos).q, /*b_are_keys=*/false,
                         [](float cs, float) { return expf(cs); },
                         dstates + (pos.s * (z.nchunks() + 1) + pos.c) * z.P * z.N, decay);
#endif
}

// dQ, dK, dV of the chunk's rows and da of its steps (the file header lists the products).
template <bool kSplit>
__global__ void __launch_bounds__(kTileThreads) chunk_grads_kernel(ChunkScanInputs<float> in, const float* states,
                                                               const float* dstates, const float* dy,
                                                               SeqLayout dy_layout, ChunkScanGrads<float> grads) {
#if SSM_TF32_MMA
  const ChunkScanSizes& z = in.sizes;
  const ChunkPos pos = chunk_pos(z);
  const int R = static_cast<int>(z.rank), N = static_cast<int>(z.N), P = static_cast<int>(z.P), m = pos.m;
  const int mp = padded_rows(z), ldn = N + kPad, ldp = P + kPad, ldg = mp + kPad;
  const int warp = static_cast<int>(threadIdx.x) / 32, warps = static_cast<int>(blockDim.x) / 32;
  const GradsLayout lay(z, warps);
  float* sh = mma_shared();
  float *cs = sh + lay.cs, *cs_row = sh + lay.cs_row, *ecs = sh + lay.ecs, *w = sh + lay.w, *rowc = sh + lay.rowc,
        *rowg = sh + lay.rowg, *row_dw = sh + lay.row_dw, *row_de = sh + lay.row_de, *red = sh + lay.red;
  float *q = sh + lay.q, *k = sh + lay.k, *v = sh + lay.v, *dY = sh + lay.dy, *g = sh + lay.g, *dm = sh + lay.dm,
        *xi = sh + lay.xi;
  float *dq_dots = sh + lay.dq_dots, *dk_dots = sh + lay.dk_dots, *dv_dots = sh + lay.dv_dots;
  int* step_end = reinterpret_cast<int*>(sh + lay.step_end);
  const ChunkRows<float> rows = chunk_rows(in, pos);
  const int64_t first_row = pos.t0 * R;
  const KeyColumns columns = key_columns(in, pos, mp, sh + lay.kw, sh + lay.own);
  stage_rows(rows.q, m, mp, N, q, ldn);
  stage_rows(rows.k, m, mp, N, k, ldn);
  stage_rows(rows.v, m, mp, P, v, ldp);
  stage_rows({dy + seq_base(dy_layout, pos.b, pos.h) + first_row * dy_layout.row_stride, dy_layout.row_stride}, m, mp,
             P, dY, ldp);
  chunk_cumsum(in, pos, cs);  // (its barriers also cover the staging and the key columns)
  padded_row_steps(cs, m, mp, R, cs_row, step_end);
  const float total = cs[pos.q - 1];
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < mp; i += blockDim.x) {  // w: S^loc's row weights
    ecs[i] = i < m ? expf(cs_row[i]) : 0.f;
    w[i] = i < m ? expf(total - cs_row[i]) * columns.later_weight(i) : 0.f;
  }
  const float* Sc = states + state_offset(z, pos.b, pos.c, pos.h);               // S_c [P, N]
  const float* dS = dstates + (pos.s * (z.nchunks() + 1) + pos.c + 1) * z.P * z.N;  // ∂ℒ/∂S_{c+1} [P, N]

  // Q Kᵀ into g, dY Vᵀ into dm, on the tiles that reach the causal block triangle
  for_warp_tiles(mp, 2 * mp, [&](int i0, int jj) {
    const bool scores = jj < mp;
    const int j0 = scores ? jj : jj - mp;
    if (j0 >= causal_end(i0, R)) return;
    Acc acc = zero_tile();
    if (scores) mma_add<kSplit>(acc, Mat<RowMajor>{q, ldn}, Mat<ColMajor>{k, ldn}, i0, j0, 0, N);
    else mma_add<kSplit>(acc, Mat<RowMajor>{dY, ldp}, Mat<ColMajor>{v, ldp}, i0, j0, 0, P);
    store_tile((scores ? g : dm) + i0 * ldg + j0, ldg, acc);
  });
  __syncthreads();
  // With W the key columns' weights (KeyColumns): g ← M = Q Kᵀ ⊙ Λ ⊙ W, dm ← dM ⊙ Λ ⊙ W, and
  // xi ← Ξ' = (dM ⊙ Λ) ⊙ Q Kᵀ, zero outside the causal block triangle (Ξ = Ξ' ⊙ W is ∂ℒ/∂ log Λ, and Ξ' the
  // gradient of the weights)
  for (TileWalk e(mp); e.row < mp; e.next()) {
    const int at = e.row * ldg + e.col, end = step_end[e.row];
    float mt = 0.f, dm_lam = 0.f, x = 0.f;
    if (e.col < end) {
      const float lam = expf(cs_row[e.row] - cs_row[e.col]), weight = columns(e.col, end - R);
      dm_lam = dm[at] * lam;
      x = dm_lam * g[at];
      mt = g[at] * lam * weight;
      dm_lam *= weight;
    }
    g[at] = mt;
    dm[at] = dm_lam;
    xi[at] = x;
  }
  __syncthreads();
  // Per row i, a warp a row (the gradients' tiles below run beside it: neither reads the other's output):
  //   rowc_i = Σ_j Ξ_ij − Σ_j Ξ_ji;
  //   column i's Σ_j Ξ'_ji over the rows j of its own step, and over later steps' rows: ∂ℒ/∂(w − e) and ∂ℒ/∂w
  //   of its key weight through the masked product (row_dw ← their sum, row_de ← minus the first).
  {
    const int lane = static_cast<int>(threadIdx.x) % 32;
    for (int i = warp; i < m; i += warps) {
      const int end = step_end[i], own_begin = end - R;
      float s = 0.f, own_column = 0.f, later_column = 0.f;
      for (int j = lane; j < end; j += 32) s += xi[i * ldg + j] * columns(j, own_begin);
      for (int j = own_begin + lane; j < m; j += 32) (j < end ? own_column : later_column) += xi[j * ldg + i];
      s = warp_sum(s);
      own_column = warp_sum(own_column);
      later_column = warp_sum(later_column);
      if (lane == 0) {
        rowc[i] = s - own_column * columns.own_weight(i) - later_column * columns.later_weight(i);
        row_dw[i] = own_column + later_column;
        row_de[i] = -own_column;
      }
    }
  }
  const auto rows_of = [&](const SeqLayout& l, float* base) {
    return base + seq_base(l, pos.b, pos.h) + first_row * l.row_stride;
  };

  // dQ = diag(e^{cs}) dY S_c + (dM ⊙ Λ ⊙ W) K;  row dots dQ^off_i · Q_i (into rowc below)
  const auto dq = chunk_gradient(
      [&](Acc& acc, int i0, int n0) {
        mma_add<kSplit>(acc, Mat<RowMajor>{dY, ldp}, Mat<RowMajor>{Sc, N}, i0, n0, 0, P);
      },
      [&](Acc& acc, int i0, int n0) {
        mma_add<kSplit>(acc, Mat<RowMajor>{dm, ldg}, Mat<RowMajor>{k, ldn}, i0, n0, 0, causal_k_end(i0, R, mp));
      },
      ecs, q, ldn, N, dq_dots, rows_of(grads.dq_layout, grads.dq), grads.dq_layout.row_stride);
  // dK = diag(w) V dS + (dM ⊙ Λ ⊙ W)ᵀ Q;  with key weights, row dots (V dS)_i · K_i (into row_dw below)
  const auto dk = chunk_gradient(
      [&](Acc& acc, int i0, int n0) {
        mma_add<kSplit>(acc, Mat<RowMajor>{v, ldp}, Mat<RowMajor>{dS, N}, i0, n0, 0, P);
      },
      [&](Acc& acc, int i0, int n0) {
        mma_add<kSplit>(acc, Mat<ColMajor>{dm, ldg}, Mat<RowMajor>{q, ldn}, i0, n0, anticausal_k_begin(i0, R), mp);
      },
      w, columns.weighted() ? k : nullptr, ldn, N, dk_dots, rows_of(grads.dk_layout, grads.dk),
      grads.dk_layout.row_stride);
  // dV = diag(w) K dSᵀ + Mᵀ dY;  row dots (K dSᵀ)_i · V_i (into rowg and rowc below)
  const auto dv = chunk_gradient(
      [&](Acc& acc, int i0, int p0) {
        mma_add<kSplit>(acc, Mat<RowMajor>{k, ldn}, Mat<ColMajor>{dS, N}, i0, p0, 0, N);
      },
      [&](Acc& acc, int i0, int p0) {
        mma_add<kSplit>(acc, Mat<ColMajor>{g, ldg}, Mat<RowMajor>{dY, ldp}, i0, p0, anticausal_k_begin(i0, R), mp);
      },
      w, v, ldp, P, dv_dots, rows_of(grads.dv_layout, grads.dv), grads.dv_layout.row_stride);
  // the three gradients' tiles as one list, each warp its turns, each through the warp's scratch
  float* scratch = sh + lay.scratch + warp * kTile * kScratchLd;
  const int q_tiles = dq.tiles(mp), k_tiles = dk.tiles(mp), all_tiles = q_tiles + k_tiles + dv.tiles(mp);
  for (int t = warp; t < all_tiles; t += warps) {
    if (t < q_tiles) dq.tile(t, m, scratch);
    else if (t < q_tiles + k_tiles) dk.tile(t - q_tiles, m, scratch);
    else dv.tile(t - q_tiles - k_tiles, m, scratch);
  }
  __syncthreads();
  // The row dots, per row i:  rowc_i += e^{cs_i} dQ^off_i · Q_i;  with key weights row_dw_i += e^{T − cs_i}
  // (V dS)_i · K_i, the gradient of row i's key weight through S^loc;  g_i = w_i V_i · (K dSᵀ)_i: dT += g_i,
  // dcs_i −= g_i
  for (int i = static_cast<int>(threadIdx.x); i < m; i += blockDim.x) {
    rowc[i] += ecs[i] * row_dot(dq_dots, i, N / kTile);
    if (columns.weighted()) row_dw[i] += expf(total - cs_row[i]) * row_dot(dk_dots, i, N / kTile);
    const float g_i = w[i] * row_dot(dv_dots, i, P / kTile);
    rowg[i] = g_i;
    rowc[i] -= g_i;
  }
  __syncthreads();
  if (columns.weighted()) write_step_sums(pos, R, row_dw, row_de, grads);

  finish_chunk_da(RowView<float>{dS, N}, RowView<float>{Sc, N}, P, N, pos, R, total, rowg, rowc, red,
                  grads.da + seq_base(grads.da_layout, pos.b, pos.h), grads.da_layout.row_stride);
#endif
}

template <class Layout>
size_t shared_bytes(const ChunkScanSizes& z) {
  return static_cast<size_t>(Layout(z).floats) * sizeof(float);
}

// 16 warps when a chunk's rows × widest operand has a 16×16 tile for each, else 8 (see kTileThreads).
int tile_threads(const ChunkScanSizes& z) {
  const int64_t tiles = padded_rows(z) / kTile * (std::max(z.N, z.P) / kTile);
  return tiles >= kTileThreads / 32 ? kTileThreads : kThreads;
}

// The gradient kernel's, with a scratch tile for each of its tile_threads warps
size_t grads_shared_bytes(const ChunkScanSizes& z) {
  return static_cast<size_t>(GradsLayout(z, tile_threads(z) / 32).floats) * sizeof(float);
}

dim3 chunk_grid(const ChunkScanSizes& z) {
  return dim3(static_cast<unsigned>(z.nchunks()), static_cast<unsigned>(z.batch * z.heads));
}

bool aligned32(const void* p) { return reinterpret_cast<uintptr_t>(p) % 32 == 0; }

}  // namespace

bool device_has_tf32() {
  static const bool has = [] {
    int device = 0, major = 0;
    SSM_CUDA_CHECK(cudaGetDevice(&device));
    SSM_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    return major >= 8;
  }();
  return has;
}

bool takes(const ChunkScanSizes& z, const float* states) {
  if (!device_has_tf32() || z.N % kTile != 0 || z.P % kTile != 0 || !aligned32(states)) return false;
  const size_t largest =
      std::max({shared_bytes<OuterLayout>(z), shared_bytes<OutputLayout>(z), grads_shared_bytes(z)});
  return largest <= shared_limit();
}

// Each launcher runs its kernel in 3×TF32, or in single TF32 products when TF32 mode is on or the caller
// asks for them (autocast).
namespace {
template <class Kernel>
Kernel* precision_of(const ChunkScanInputs<float>& in, Kernel* split, Kernel* single) {
  return tf32() || in.tf32_products ? single : split;
}
}  // namespace

void chunk_state(const ChunkScanInputs<float>& in, float* states, float* decay) {
  launch(precision_of(in, chunk_state_kernel<true>, chunk_state_kernel<false>), chunk_grid(in.sizes), kThreads,
         shared_bytes<OuterLayout>(in.sizes), in, states, decay);
}

void chunk_output(const ChunkScanInputs<float>& in, const float* states, float* y, SeqLayout y_layout,
                  bool accumulate) {
  launch(precision_of(in, chunk_output_kernel<true>, chunk_output_kernel<false>), chunk_grid(in.sizes),
         tile_threads(in.sizes), shared_bytes<OutputLayout>(in.sizes), in, states, y, y_layout, accumulate);
}

void chunk_dstate(const ChunkScanInputs<float>& in, const float* dy, SeqLayout dy_layout, float* dstates,
                  float* decay) {
  launch(precision_of(in, chunk_dstate_kernel<true>, chunk_dstate_kernel<false>), chunk_grid(in.sizes), kThreads,
         shared_bytes<OuterLayout>(in.sizes), in, dy, dy_layout, dstates, decay);
}

void chunk_grads(const ChunkScanInputs<float>& in, const float* states, const float* dstates, const float* dy,
                 SeqLayout dy_layout, const ChunkScanGrads<float>& grads) {
  launch(precision_of(in, chunk_grads_kernel<true>, chunk_grads_kernel<false>), chunk_grid(in.sizes),
         tile_threads(in.sizes), grads_shared_bytes(in.sizes), in, states, dstates, dy, dy_layout, grads);
}

}  // namespace ssm::cuda::ssd_chunk_mma
