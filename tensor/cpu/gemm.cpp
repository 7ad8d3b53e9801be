// tensor/cpu/gemm.cpp — the GEMM driver: blocking, packing, threading (contract in gemm.h).
//
// Loop nest (Goto/BLIS), for C = alpha·A·B + beta·C:
//   jc over N in steps of NC        B block  KC×NC  packed once, shared by all threads (L3)
//     pc over K in steps of KC      (beta applies on the first K block only, then C accumulates)
//       pack B block
//       ic over M in steps of MC    A block  MC×KC  packed per thread (L2)
//         jr over the block's NR-wide micro-panels   B micro-panel KC×NR stays in L1
//           ir over the block's MR-tall micro-panels A micro-panel streams from L2
//             micro-kernel: MR×NR tile of C in registers (gemm_kernels.cpp)
// Packing reads any strides, so transposed operands cost nothing extra to the caller, and it pads
// edge micro-panels with zeros so the kernel always works on full MR×NR tiles; edge tiles of C go
// through a small scratch tile.
//
// Determinism: each C element is computed by the same sequence of operations whatever the thread
// count — K is split into blocks that depend only on K, and threads only share out whole tiles of
// C (whose grid is fixed by MR/NR from the origin). So results are bitwise reproducible run to run
// and even across thread counts.
#include "tensor/cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "tensor/cpu/aligned_buffer.h"
#include "tensor/cpu/gemm_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ssm::cpu {
namespace {

using detail::GemmTile;

// Cache blocking for Zen 3 (32 KB L1d, 512 KB L2 per core). The KC×NR B micro-panel (24 KB float
// at KC = 384, 16 KB double at KC = 256) is reused from L1 by every MR-row sliver of A; the MC×KC
// A block (216 KB float, 144 KB double) sits in L2 with room left for B micro-panels and C lines;
// the KC×NC B block goes to L3. A longer KC means fewer read-modify-write passes over C; measured
// on the model's shapes, float KC = 384 beat 256 by ~3%, while for double 256 was best. MC and NC
// are multiples of MR and NR (the tile grid of C must not depend on the blocking; see top).
template <class T> struct Blocking;
template <> struct Blocking<float>  { static constexpr int64_t MC = 144, KC = 384, NC = 3072; };
template <> struct Blocking<double> { static constexpr int64_t MC = 72, KC = 256, NC = 1536; };

// Products below this many multiply-adds are not worth waking a thread team (~64^3).
constexpr double kParallelMinWork = 64.0 * 64.0 * 64.0;

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Per thread, grow-only (tensor/cpu/aligned_buffer.h): A blocks and private B panels of this thread; B
// blocks this thread shares with its team.
thread_local AlignedBuffer tl_a_pack, tl_b_pack, tl_b_shared;

// Pack an mr×kc sliver of A (mr ≤ MR) as kc groups of MR values, zero-padding rows mr..MR-1.
template <class T>
void pack_a(int64_t mr, int64_t kc, const T* __restrict a, int64_t rs, int64_t cs,
            T* __restrict dst) {
  constexpr int MR = GemmTile<T>::MR;
  if (mr == MR && rs == 1) {  // A transposed in memory: each k is MR contiguous values
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < MR; ++i) dst[k * MR + i] = a[k * cs + i];
  } else if (mr == MR && cs == 1) {  // row-major A: a transpose of MR rows (AVX2 when we can)
    detail::pack_a_rows<T>()(kc, a, rs, dst);
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < MR; ++i) dst[k * MR + i] = i < mr ? a[i * rs + k * cs] : T(0);
  }
}

// How many rows ahead the packing loops prefetch (the source usually comes from L3 or DRAM).
constexpr int64_t kPrefetchRows = 8;

// Pack a kc×nr sliver of B (nr ≤ NR) as kc groups of NR values, zero-padding columns nr..NR-1.
template <class T>
void pack_b(int64_t nr, int64_t kc, const T* __restrict b, int64_t rs, int64_t cs,
            T* __restrict dst) {
  constexpr int NR = GemmTile<T>::NR;
  if (nr == NR && rs == 1) {  // B transposed in memory: a transpose of NR contiguous columns
    detail::pack_b_cols<T>()(kc, b, cs, dst);
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = j < nr ? b[k * rs + j * cs] : T(0);
  }
}

// Pack B micro-panels [jp_lo, jp_hi) of the kc×nc block at b into dst (panel jp_lo first, each
// panel kc·NR values). For row-major B the walk goes row by
// row across all the panels, so the reads stream through memory: going panel by panel instead
// strides by a whole row per 64 bytes and stalls on cache misses (B comes from L3/DRAM, and when
// M is small — dW = Xᵀ·dY — packing B is a sizeable part of the work).
template <class T>
void pack_b_panels(int64_t nc, int64_t kc, const T* b, int64_t rs, int64_t cs, int64_t jp_lo,
                   int64_t jp_hi, T* dst_panels) {
  constexpr int NR = GemmTile<T>::NR;
  const int64_t full_hi = std::min(jp_hi, nc / NR);  // panels [jp_lo, full_hi) are NR wide
  int64_t jp = jp_lo;
  if (cs == 1 && full_hi > jp_lo) {
    for (int64_t k = 0; k < kc; ++k) {
      const T* src = b + k * rs + jp_lo * NR;
      T* dst = dst_panels + k * NR;
      // Each thread reads only part of a row, so the hardware prefetcher keeps losing the stream
      // at row ends; ask for the row kPrefetchRows ahead explicitly (same row near the end).
      const int64_t ahead = k + kPrefetchRows < kc ? kPrefetchRows * rs : 0;
      for (int64_t q = jp_lo; q < full_hi; ++q, src += NR, dst += NR * kc) {
        __builtin_prefetch(src + ahead);
        std::memcpy(dst, src, NR * sizeof(T));
      }
    }
    jp = full_hi;
  }
  for (; jp < jp_hi; ++jp) {
    const int64_t j = jp * NR;
    pack_b(std::min<int64_t>(NR, nc - j), kc, b + j * cs, rs, cs,
           dst_panels + (jp - jp_lo) * NR * kc);
  }
}

template <class T>
struct Problem {
  int64_t M, N, K;
  T alpha;
  const T* a;
  int64_t ars, acs;
  const T* b;
  int64_t brs, bcs;
  T beta;
  T* c;
  int64_t ldc;
};

// [lo, hi) of `count` items for thread `tid` of `nt` (static, contiguous, sizes differ by ≤ 1).
inline void share(int64_t count, int tid, int nt, int64_t& lo, int64_t& hi) {
  lo = count * tid / nt;
  hi = count * (tid + 1) / nt;
}

inline void team_barrier([[maybe_unused]] int nt) {
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp barrier
  }
#endif
}

// c = alpha·sum + beta·c; with beta == 0, c is written without being read (an old NaN must not leak in)
template <class T>
inline void store_c(T& c, T sum, T alpha, T beta) {
  c = beta == T(0) ? alpha * sum : alpha * sum + beta * c;
}

// One MR×NR tile of C (its top-left at c, row stride ldc) from an A sliver with strides (a_rs, a_cs)
// and a packed B micro-panel; an edge tile (mr < MR or nr < NR) goes through a scratch tile, so the
// kernel always works on full tiles (the A sliver and B panel are zero-padded, or A has MR rows).
template <class T>
void tile(detail::MicroKernel<T> kernel, int64_t mr, int64_t nr, int64_t kc, const T* a, int64_t a_rs,
          int64_t a_cs, const T* bp, T* c, int64_t ldc, T alpha, T beta) {
  constexpr int MR = GemmTile<T>::MR, NR = GemmTile<T>::NR;
  if (mr == MR && nr == NR) return kernel(kc, a, a_rs, a_cs, bp, c, ldc, alpha, beta);
  alignas(64) T scratch[MR * NR];
  kernel(kc, a, a_rs, a_cs, bp, scratch, NR, T(1), T(0));
  for (int64_t r = 0; r < mr; ++r)
    for (int64_t s = 0; s < nr; ++s) store_c(c[r * ldc + s], scratch[r * NR + s], alpha, beta);
}

// Multiply the packed A block (mc×kc) by packed B micro-panels [jp_lo, jp_hi) into C; b_panels
// points at panel jp_lo.
template <class T>
void macro_kernel(const Problem<T>& p, detail::MicroKernel<T> kernel, int64_t mc, int64_t nc,
                  int64_t kc, const T* a_pack, const T* b_panels, int64_t jp_lo, int64_t jp_hi,
                  T* c, T beta) {
  constexpr int MR = GemmTile<T>::MR, NR = GemmTile<T>::NR;
  for (int64_t jp = jp_lo; jp < jp_hi; ++jp) {
    const int64_t j = jp * NR, nr = std::min<int64_t>(NR, nc - j);
    const T* bp = b_panels + (jp - jp_lo) * NR * kc;
    for (int64_t i = 0; i < mc; i += MR)
      tile(kernel, std::min<int64_t>(MR, mc - i), nr, kc, a_pack + i * kc, 1, MR, bp, c + i * p.ldc + j, p.ldc,
           p.alpha, beta);
  }
}

// Pack A rows [ic, ic+mc) × K block [pc, pc+kc) into this thread's buffer.
template <class T>
void pack_a_block(const Problem<T>& p, int64_t ic, int64_t mc, int64_t pc, int64_t kc, T* dst) {
  constexpr int MR = GemmTile<T>::MR;
  constexpr int64_t line = 64 / sizeof(T);
  for (int64_t i = 0; i < mc; i += MR) {
    const T* a = p.a + (ic + i) * p.ars + pc * p.acs;
    // Row-major A is read as MR short row segments at a time, which the hardware prefetcher
    // does not see coming (the transpose-pack then waits on L3/DRAM): fetch the next sliver's
    // rows while this one is packed.
    if (p.acs == 1 && i + 2 * MR <= mc)
      for (int r = MR; r < 2 * MR; ++r)
        for (int64_t k = 0; k < kc + line; k += line)
          __builtin_prefetch(a + r * p.ars + std::min(k, kc - 1));
    pack_a(std::min<int64_t>(MR, mc - i), kc, a, p.ars, p.acs, dst + i * kc);
  }
}

// The whole loop nest, run by thread `tid` of a team of `nt` (nt == 1: serial).
//
// Threads split the larger side of C, which keeps the duplicated packing small:
//  * split M (tall C): the team packs each B block together (each thread some micro-panels), then
//    the threads take whole MC blocks of rows from a shared counter (first come, first served, so
//    a thread the OS preempts does not hold back blocks the others could do); two barriers per
//    K block guard the shared B. Which thread computes a block does not change its bits.
//  * split N (wide C, e.g. dW = Xᵀ·dY with M = 160): each thread packs its own B micro-panels
//    into its own buffer, and the (small) A block too, so the team never waits on a barrier.
//    (Own buffers, not slices of b_shared: slices move when kc or the jc block changes, and a
//    thread racing ahead would overwrite panels a slower one is still reading.)
template <class T>
void gemm_team(const Problem<T>& p, T* b_shared, std::atomic<int64_t>& next_block, int tid,
               int nt) {
  constexpr int MR = GemmTile<T>::MR, NR = GemmTile<T>::NR;
  constexpr int64_t MC = Blocking<T>::MC, NC = Blocking<T>::NC;
  const detail::MicroKernel<T> kernel = detail::micro_kernel<T>();

  // K blocks depend on K only (determinism); balanced so there is no thin last block.
  const int64_t k_blocks = ceil_div(p.K, Blocking<T>::KC);
  const int64_t kc_step = round_up(ceil_div(p.K, k_blocks), 8);

  const bool split_n = nt > 1 && ceil_div(std::min(NC, p.N), NR) >= 2 * nt &&
                       (p.M < p.N || p.M < int64_t(nt) * 4 * MR);
  // When splitting M, the number of M blocks is a multiple of nt so that no thread idles.
  int64_t m_blocks = ceil_div(p.M, MC);
  if (!split_n) m_blocks = round_up(m_blocks, nt);
  const int64_t mc_step = round_up(ceil_div(p.M, m_blocks), MR);
  T* a_pack = tl_a_pack.get<T>(mc_step * kc_step);
  const int64_t own_panels = ceil_div(ceil_div(std::min(NC, p.N), NR), nt);  // most per thread
  T* b_own = split_n ? tl_b_pack.get<T>(kc_step * NR * own_panels) : nullptr;

  for (int64_t jc = 0; jc < p.N; jc += NC) {
    const int64_t nc = std::min(NC, p.N - jc), n_panels = ceil_div(nc, NR);
    for (int64_t pc = 0; pc < p.K; pc += kc_step) {
      const int64_t kc = std::min(kc_step, p.K - pc);
      const T beta = pc == 0 ? p.beta : T(1);
      const T* b_block = p.b + pc * p.brs + jc * p.bcs;
      int64_t lo, hi;
      share(n_panels, tid, nt, lo, hi);
      if (split_n) {
        pack_b_panels(nc, kc, b_block, p.brs, p.bcs, lo, hi, b_own);
        for (int64_t ic = 0; ic < p.M; ic += mc_step) {
          const int64_t mc = std::min(mc_step, p.M - ic);
          pack_a_block(p, ic, mc, pc, kc, a_pack);
          macro_kernel(p, kernel, mc, nc, kc, a_pack, b_own, lo, hi, p.c + ic * p.ldc + jc, beta);
        }
        continue;
      }
      pack_b_panels(nc, kc, b_block, p.brs, p.bcs, lo, hi, b_shared + lo * NR * kc);
      // Nobody touches the counter between the previous K block's last barrier and this one.
      if (tid == 0) next_block.store(0, std::memory_order_relaxed);
      team_barrier(nt);  // the B block is complete before anyone reads it
      const int64_t n_blocks = ceil_div(p.M, mc_step);
      for (int64_t blk; (blk = next_block.fetch_add(1, std::memory_order_relaxed)) < n_blocks;) {
        const int64_t ic = blk * mc_step, mc = std::min(mc_step, p.M - ic);
        pack_a_block(p, ic, mc, pc, kc, a_pack);
        macro_kernel(p, kernel, mc, nc, kc, a_pack, b_shared, 0, n_panels, p.c + ic * p.ldc + jc,
                     beta);
      }
      team_barrier(nt);  // everyone is done with this B block before it is overwritten
    }
  }
}

// C = beta·C, the whole job when there is nothing to multiply (K == 0 or alpha == 0).
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    T* row = c + i * ldc;
    if (beta == T(0))
      std::fill(row, row + N, T(0));
    else if (beta != T(1))
      for (int64_t j = 0; j < N; ++j) row[j] *= beta;
  }
}

#ifdef _OPENMP
// Inside someone else's parallel region a product runs serially on the calling thread.
int available_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }
#endif

// A product with only a few rows of A whose B has contiguous columns — decoding's Y = X·Wᵀ with one
// row of X per sequence — is mostly a walk over the weight. The packed path would copy all of W
// into panels (a strided transpose) for a handful of multiply-adds per element: that copy was ~3/4
// of a batch-1 decoding step. Here W is read in place, once: each C element is a dot product of a
// row of A with a column of B, taken in blocks of rows × columns (detail::dot_block) so that every
// value of B is loaded once and several sums run side by side. A's rows are copied to a contiguous
// buffer first (any strides). Threads, when the product is big enough, take contiguous ranges of
// C's columns: each element's sum is the same whatever the team.
constexpr int64_t kFewRows = 4;  // measured: from ~6 rows the packed path wins
constexpr double kFewRowsParallelMin = 32768;  // elements of B

thread_local AlignedBuffer tl_few_rows;

template <class T>
bool few_rows_path(const Problem<T>& p) {
  return p.M <= kFewRows && p.brs == 1;
}

template <class T>
void gemm_few_rows(const Problem<T>& p) {
  static_assert(kFewRows <= detail::kDotBlockMax);
  T* a_rows = tl_few_rows.get<T>(p.M * p.K);
  for (int64_t i = 0; i < p.M; ++i)
    for (int64_t k = 0; k < p.K; ++k) a_rows[i * p.K + k] = p.a[i * p.ars + k * p.acs];
  const detail::DotBlock<T> dot_block = detail::dot_block<T>();
  const int rows = static_cast<int>(p.M), block_cols = detail::kDotBlockMax / rows;
  auto columns = [&](int64_t j_lo, int64_t j_hi) {
    T sums[detail::kDotBlockMax];
    for (int64_t j = j_lo; j < j_hi; j += block_cols) {
      const int cols = static_cast<int>(std::min<int64_t>(block_cols, j_hi - j));
      dot_block(rows, cols, p.K, a_rows, p.b + j * p.bcs, p.bcs, sums);
      for (int64_t i = 0; i < rows; ++i)
        for (int jj = 0; jj < cols; ++jj) store_c(p.c[i * p.ldc + j + jj], sums[i * cols + jj], p.alpha, p.beta);
    }
  };
#ifdef _OPENMP
  // Worth a team once the weight itself is big: the walk over B is memory-bound, and each thread
  // streams its own columns (decoding's in_proj, 1×772×160, reads ~0.5 MB per token).
  const bool big = double(p.N) * double(p.K) >= kFewRowsParallelMin;
  if (const int nt = big ? available_threads() : 1; nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      int64_t lo, hi;
      share(p.N, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
      columns(lo, hi);
    }
    return;
  }
#endif
  columns(0, p.N);
}

// A small product — the SSM chunk core's, e.g. 32×64×16 or 16×16×64 — is done in a few hundred
// cycles, and the packed path's per-call work (the loop nest, and packing A, a transpose) cost as
// much as the multiply-adds. Below the thread-team size and within one K block, A is read in place
// by the micro-kernel (broadcasts take any strides) and only B is packed (it must be, for the
// kernel's aligned vector loads). A partial last sliver of rows is packed with zero rows, as the
// packed path does, so the kernel never reads past A. The kernel sees the same operands in the
// same order as on the packed path (one K block, same tiles), so the results are bitwise the same.
template <class T>
bool small_path(const Problem<T>& p) {
  return p.K <= Blocking<T>::KC && p.N <= Blocking<T>::NC &&
         double(p.M) * double(p.N) * double(p.K) < kParallelMinWork;
}

// A B that already is one packed micro-panel — exactly NR columns, rows NR values apart, aligned for
// the kernel's loads (the chunk core's 16-wide rows of V, K, Q, dY and states, in float) — is read in
// place: packing it would copy it unchanged.
template <class T>
bool is_packed_panel(const Problem<T>& p) {
  constexpr int NR = GemmTile<T>::NR;
  return p.N == NR && p.bcs == 1 && p.brs == NR && reinterpret_cast<uintptr_t>(p.b) % 64 == 0;
}

template <class T>
void gemm_small(const Problem<T>& p) {
  constexpr int MR = GemmTile<T>::MR, NR = GemmTile<T>::NR;
  const detail::MicroKernel<T> kernel = detail::micro_kernel<T>();
  const int64_t n_panels = ceil_div(p.N, NR);
  const T* b_pack = p.b;
  if (!is_packed_panel(p)) {
    T* packed = tl_b_pack.get<T>(n_panels * NR * p.K);
    pack_b_panels(p.N, p.K, p.b, p.brs, p.bcs, 0, n_panels, packed);
    b_pack = packed;
  }
  T* a_edge = tl_a_pack.get<T>(MR * p.K);
  for (int64_t i = 0; i < p.M; i += MR) {
    const int64_t mr = std::min<int64_t>(MR, p.M - i);
    const T* a = p.a + i * p.ars;
    int64_t a_rs = p.ars, a_cs = p.acs;
    if (mr < MR) {
      pack_a(mr, p.K, a, a_rs, a_cs, a_edge);
      a = a_edge, a_rs = 1, a_cs = MR;
    }
    for (int64_t jp = 0; jp < n_panels; ++jp)
      tile(kernel, mr, std::min<int64_t>(NR, p.N - jp * NR), p.K, a, a_rs, a_cs, b_pack + jp * NR * p.K,
           p.c + i * p.ldc + jp * NR, p.ldc, p.alpha, p.beta);
  }
}

template <class T>
void gemm_impl(const Problem<T>& p) {
  if (p.M <= 0 || p.N <= 0) return;
  if (p.K <= 0 || p.alpha == T(0)) return scale_c(p.M, p.N, p.beta, p.c, p.ldc);
  if (few_rows_path(p)) return gemm_few_rows(p);
  if (small_path(p)) return gemm_small(p);

  constexpr int64_t NR = GemmTile<T>::NR;
  const int64_t b_count = Blocking<T>::KC * round_up(std::min(Blocking<T>::NC, p.N), NR);
  T* b_shared = tl_b_shared.get<T>(b_count);  // the calling thread's, lent to its team

#ifdef _OPENMP
  const double work = double(p.M) * double(p.N) * double(p.K);
  const int nt = work < kParallelMinWork ? 1 : available_threads();  // small: no thread team
  if (nt > 1) {
    std::atomic<int64_t> next_block{0};
#pragma omp parallel num_threads(nt)
    gemm_team(p, b_shared, next_block, omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  std::atomic<int64_t> next_block{0};
  gemm_team(p, b_shared, next_block, 0, 1);
}

template <class T>
void gemm_batched_impl(int64_t batch, const Problem<T>& p, int64_t a_bs, int64_t b_bs,
                       int64_t c_bs) {
  if (batch <= 0) return;
  auto product = [&](int64_t q) {
    Problem<T> pq = p;
    pq.a += q * a_bs;
    pq.b += q * b_bs;
    pq.c += q * c_bs;
    gemm_impl(pq);
  };
#ifdef _OPENMP
  // Small products (too small to split well, < ~100^3): one whole product per thread, each run
  // serially (gemm sees omp_in_parallel()). Large ones: one after another, each split into tiles.
  // A C batch stride of 0 would make threads race on one C, so that case stays sequential.
  const double work = double(p.M) * double(p.N) * double(p.K);
  const int nt = available_threads();
  if (nt > 1 && batch >= nt && work < 4 * kParallelMinWork && c_bs != 0 &&
      work * double(batch) >= kParallelMinWork) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t q = 0; q < batch; ++q) product(q);
    return;
  }
#endif
  for (int64_t q = 0; q < batch; ++q) product(q);
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row_stride,
          int64_t a_col_stride, const float* b, int64_t b_row_stride, int64_t b_col_stride,
          float beta, float* c, int64_t c_row_stride) {
  gemm_impl<float>({M, N, K, alpha, a, a_row_stride, a_col_stride, b, b_row_stride, b_col_stride,
                    beta, c, c_row_stride});
}

void gemm(int64_t M, int64_t N, int64_t K, double alpha, const double* a, int64_t a_row_stride,
          int64_t a_col_stride, const double* b, int64_t b_row_stride, int64_t b_col_stride,
          double beta, double* c, int64_t c_row_stride) {
  gemm_impl<double>({M, N, K, alpha, a, a_row_stride, a_col_stride, b, b_row_stride, b_col_stride,
                     beta, c, c_row_stride});
}

void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                  int64_t a_batch_stride, int64_t a_row_stride, int64_t a_col_stride,
                  const float* b, int64_t b_batch_stride, int64_t b_row_stride,
                  int64_t b_col_stride, float beta, float* c, int64_t c_batch_stride,
                  int64_t c_row_stride) {
  gemm_batched_impl<float>(batch,
                           {M, N, K, alpha, a, a_row_stride, a_col_stride, b, b_row_stride,
                            b_col_stride, beta, c, c_row_stride},
                           a_batch_stride, b_batch_stride, c_batch_stride);
}

void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, double alpha, const double* a,
                  int64_t a_batch_stride, int64_t a_row_stride, int64_t a_col_stride,
                  const double* b, int64_t b_batch_stride, int64_t b_row_stride,
                  int64_t b_col_stride, double beta, double* c, int64_t c_batch_stride,
                  int64_t c_row_stride) {
  gemm_batched_impl<double>(batch,
                            {M, N, K, alpha, a, a_row_stride, a_col_stride, b, b_row_stride,
                             b_col_stride, beta, c, c_row_stride},
                            a_batch_stride, b_batch_stride, c_batch_stride);
}

}  // namespace ssm::cpu
