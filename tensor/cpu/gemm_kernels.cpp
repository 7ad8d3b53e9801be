// tensor/cpu/gemm_kernels.cpp — the GEMM micro-kernels, the transposing packs (rows of A, columns of
// a stored Bᵀ) and the few-rows dot products (see gemm_kernels.h for the packed layout).
//
// One family per ISA, the widest the CPU has picked at run time (Isa in gemm_kernels.h):
//   * AVX-512F and AVX2+FMA: compiled with __attribute__((target)) so that the library itself
//     stays portable (no global -mavx2 / -mavx512f); used when __builtin_cpu_supports says the
//     CPU has the extensions. The AVX-512 family has its own micro-kernel and shares the AVX2 pack.
//   * portable C++: plain loops that the compiler vectorizes for whatever ISA the build targets.
#include "tensor/cpu/gemm_kernels.h"

#include <algorithm>
#include <atomic>

#include "tensor/cpu/dot.h"

#if (defined(__x86_64__) || defined(__i386__)) && !defined(SSM_GEMM_PORTABLE_ONLY)
#define SSM_GEMM_X86 1
#include <immintrin.h>
#endif

namespace ssm::cpu::detail {
namespace {

// Portable kernel: the tile is done in column strips of 16 bytes (4 floats / 2 doubles: one
// register on baseline x86-64 SSE2 or NEON), so each strip's MR×W accumulators fit in registers
// and the inner loop vectorizes cleanly. (One pass over the whole MR×NR tile instead leaves GCC
// with more accumulators than registers and a slow shuffle-and-spill loop: ~4x slower.)
template <class T>
void kernel_portable(int64_t kc, const T* __restrict a, int64_t a_rs, int64_t a_cs, const T* __restrict b,
                     T* __restrict c, int64_t ldc, T alpha, T beta) {
  constexpr int MR = GemmTile<T>::MR, NR = GemmTile<T>::NR, W = 16 / sizeof(T);
  for (int v = 0; v < NR; v += W) {
    T acc[MR][W] = {};
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < MR; ++i)
        for (int w = 0; w < W; ++w) acc[i][w] += a[i * a_rs + k * a_cs] * b[k * NR + v + w];
    for (int i = 0; i < MR; ++i) {
      T* ci = c + i * ldc + v;
      for (int w = 0; w < W; ++w)  // beta == 0: write-only, old C (maybe NaN) must not leak in
        ci[w] = beta == T(0) ? alpha * acc[i][w] : alpha * acc[i][w] + beta * ci[w];
    }
  }
}

// The packing transpose, portable: Rows rows of a row-major matrix (row stride lda) into kc groups of
// Rows values, dst[k*Rows + i] = a[i*lda + k]. A packs MR rows of A, B packs NR columns of Bᵀ.
template <class T, int Rows>
void pack_rows_portable(int64_t kc, const T* __restrict a, int64_t lda, T* __restrict dst) {
  for (int64_t k = 0; k < kc; ++k)
    for (int i = 0; i < Rows; ++i) dst[k * Rows + i] = a[i * lda + k];
}

template <class T>
void dot_block_portable(int rows, int cols, int64_t K, const T* a, const T* b, int64_t ldb, T* out) {
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) out[i * cols + j] = cpu::dot(a + i * K, b + j * ldb, K);
}

#ifdef SSM_GEMM_X86
// Thin wrappers so that one kernel template serves float and double at a given vector width.
// Vec<T, bits>::type names the register (__m256: 8 floats, __m512d: 8 doubles, ...); wrappers
// that take a vector overload on it, and those that only make one are templates on it
// (vload<V>(p)). Each carries its ISA's target attribute, which lets GCC inline it into a kernel
// compiled for that ISA.
template <class T, int Bits> struct Vec;
template <> struct Vec<float, 256> { using type = __m256; };
template <> struct Vec<double, 256> { using type = __m256d; };
template <> struct Vec<float, 512> { using type = __m512; };
template <> struct Vec<double, 512> { using type = __m512d; };
template <class V> V vzero();
template <class V, class T> V vset1(T x);          // GCC folds vset1(a[i]) into a broadcast load
template <class V, class T> V vload(const T* p);   // aligned (packed B)
template <class V, class T> V vloadu(const T* p);  // C may be unaligned

#define SSM_AVX2 __attribute__((target("avx2,fma"), always_inline)) inline
template <> SSM_AVX2 __m256 vzero<__m256>() { return _mm256_setzero_ps(); }
template <> SSM_AVX2 __m256d vzero<__m256d>() { return _mm256_setzero_pd(); }
template <> SSM_AVX2 __m256 vset1<__m256>(float x) { return _mm256_set1_ps(x); }
template <> SSM_AVX2 __m256d vset1<__m256d>(double x) { return _mm256_set1_pd(x); }
template <> SSM_AVX2 __m256 vload<__m256>(const float* p) { return _mm256_load_ps(p); }
template <> SSM_AVX2 __m256d vload<__m256d>(const double* p) { return _mm256_load_pd(p); }
template <> SSM_AVX2 __m256 vloadu<__m256>(const float* p) { return _mm256_loadu_ps(p); }
template <> SSM_AVX2 __m256d vloadu<__m256d>(const double* p) { return _mm256_loadu_pd(p); }
SSM_AVX2 void vstoreu(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
SSM_AVX2 void vstoreu(double* p, __m256d v) { _mm256_storeu_pd(p, v); }
SSM_AVX2 __m256 vfma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
SSM_AVX2 __m256d vfma(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
SSM_AVX2 __m256 vmul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
SSM_AVX2 __m256d vmul(__m256d a, __m256d b) { return _mm256_mul_pd(a, b); }

#define SSM_AVX512 __attribute__((target("avx512f"), always_inline)) inline
template <> SSM_AVX512 __m512 vzero<__m512>() { return _mm512_setzero_ps(); }
template <> SSM_AVX512 __m512d vzero<__m512d>() { return _mm512_setzero_pd(); }
template <> SSM_AVX512 __m512 vset1<__m512>(float x) { return _mm512_set1_ps(x); }
template <> SSM_AVX512 __m512d vset1<__m512d>(double x) { return _mm512_set1_pd(x); }
template <> SSM_AVX512 __m512 vload<__m512>(const float* p) { return _mm512_load_ps(p); }
template <> SSM_AVX512 __m512d vload<__m512d>(const double* p) { return _mm512_load_pd(p); }
template <> SSM_AVX512 __m512 vloadu<__m512>(const float* p) { return _mm512_loadu_ps(p); }
template <> SSM_AVX512 __m512d vloadu<__m512d>(const double* p) { return _mm512_loadu_pd(p); }
SSM_AVX512 void vstoreu(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
SSM_AVX512 void vstoreu(double* p, __m512d v) { _mm512_storeu_pd(p, v); }
SSM_AVX512 __m512 vfma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
SSM_AVX512 __m512d vfma(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
SSM_AVX512 __m512 vmul(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
SSM_AVX512 __m512d vmul(__m512d a, __m512d b) { return _mm512_mul_pd(a, b); }
SSM_AVX512 __m512 vadd(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
SSM_AVX512 __m512d vadd(__m512d a, __m512d b) { return _mm512_add_pd(a, b); }
#undef SSM_AVX512

// Touch the MR rows of a C tile now so their lines arrive while the k loop runs (a row of NR
// values can straddle two cache lines).
template <class T>
inline void prefetch_c_tile(const T* c, int64_t ldc) {
  constexpr int MR = GemmTile<T>::MR, NR = GemmTile<T>::NR;
  for (int i = 0; i < MR; ++i) {
    __builtin_prefetch(c + i * ldc);
    __builtin_prefetch(c + i * ldc + NR - 1);
  }
}

// 6 rows × 2 vectors: per k, two aligned loads of B, six broadcasts of A and twelve independent
// FMAs. Twelve chains keep both of Zen 3's FMA pipes busy despite the 4-cycle FMA latency, and
// the 8 loads per 12 FMAs fit its load ports, so the loop runs at the FMA throughput limit.
template <class T>
__attribute__((target("avx2,fma")))
void kernel_avx2(int64_t kc, const T* __restrict a, int64_t a_rs, int64_t a_cs, const T* __restrict b,
                 T* __restrict c, int64_t ldc, T alpha, T beta) {
  using V = typename Vec<T, 256>::type;
  constexpr int MR = GemmTile<T>::MR, W = sizeof(V) / sizeof(T);
  static_assert(GemmTile<T>::NR == 2 * W, "kernel assumes NR = two vectors");
  prefetch_c_tile(c, ldc);
  V acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = vzero<V>();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const V b0 = vload<V>(b), b1 = vload<V>(b + W);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const V ai = vset1<V>(a[i * a_rs]);
      acc[i][0] = vfma(ai, b0, acc[i][0]);
      acc[i][1] = vfma(ai, b1, acc[i][1]);
    }
    a += a_cs;
    b += 2 * W;
  }
  const V va = vset1<V>(alpha), vb = vset1<V>(beta);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < 2; ++h) {  // beta == 0: C is write-only (old NaN must not leak in)
      T* cih = c + i * ldc + h * W;
      const V ah = acc[i][h];
      vstoreu(cih, beta == T(0) ? vmul(va, ah) : vfma(va, ah, vmul(vb, vloadu<V>(cih))));
    }
}

// 6 rows × 1 vector (NR = 16 floats / 8 doubles = one zmm per row). One k gives only 6
// independent FMAs, and keeping both FMA-512 ports of Sapphire Rapids busy at 4 cycles latency
// takes 2 × 4 = 8 chains in flight; so k is unrolled by 2 into two accumulator sets (even and
// odd k, added at the end): 12 chains, in 12 + 2 (B) of the 32 zmm registers. Per k there is one
// aligned load of B and six broadcasts of A, folded into the FMAs as {1to16} / {1to8} operands:
// 7 loads per 6 FMAs, 2.3 per cycle at the FMA limit, within the three load ports. Which set a k
// goes to depends on kc only, so the result stays the same for any thread count.
template <class T>
__attribute__((target("avx512f")))
void kernel_avx512(int64_t kc, const T* __restrict a, int64_t a_rs, int64_t a_cs, const T* __restrict b,
                   T* __restrict c, int64_t ldc, T alpha, T beta) {
  using V = typename Vec<T, 512>::type;
  constexpr int MR = GemmTile<T>::MR, NR = GemmTile<T>::NR;
  static_assert(NR * sizeof(T) == sizeof(V), "kernel assumes NR = one vector");
  prefetch_c_tile(c, ldc);
  V even[MR], odd[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) even[i] = odd[i] = vzero<V>();
  int64_t k = 0;
#pragma GCC unroll 2
  for (; k + 2 <= kc; k += 2, a += 2 * a_cs, b += 2 * NR) {
    const V b0 = vload<V>(b), b1 = vload<V>(b + NR);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      even[i] = vfma(vset1<V>(a[i * a_rs]), b0, even[i]);
      odd[i] = vfma(vset1<V>(a[i * a_rs + a_cs]), b1, odd[i]);
    }
  }
  if (k < kc) {  // odd kc: the last k
    const V b0 = vload<V>(b);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) even[i] = vfma(vset1<V>(a[i * a_rs]), b0, even[i]);
  }
  const V va = vset1<V>(alpha), vb = vset1<V>(beta);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    const V acc = vadd(even[i], odd[i]);
    T* ci = c + i * ldc;  // beta == 0: C is write-only (old NaN must not leak in)
    vstoreu(ci, beta == T(0) ? vmul(va, acc) : vfma(va, acc, vmul(vb, vloadu<V>(ci))));
  }
}

// Six rows × 8 k (float): load one vector per row, transpose in registers, and write the 48
// packed values with 16-byte stores (4 rows) plus 8-byte stores (the other 2 rows) per k.
__attribute__((target("avx2,fma")))
void pack_rows_avx2(int64_t kc, const float* __restrict a, int64_t lda, float* __restrict dst) {
  static_assert(GemmTile<float>::MR == 6);
  const float* r[6];
  for (int i = 0; i < 6; ++i) r[i] = a + i * lda;
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8, dst += 48) {
    const __m256 r0 = _mm256_loadu_ps(r[0] + k), r1 = _mm256_loadu_ps(r[1] + k);
    const __m256 r2 = _mm256_loadu_ps(r[2] + k), r3 = _mm256_loadu_ps(r[3] + k);
    const __m256 r4 = _mm256_loadu_ps(r[4] + k), r5 = _mm256_loadu_ps(r[5] + k);
    // Per 128-bit lane (k+0..3 | k+4..7): t01a = r0[0] r1[0] r0[1] r1[1], t01b = r0[2] r1[2] ...
    const __m256 t01a = _mm256_unpacklo_ps(r0, r1), t01b = _mm256_unpackhi_ps(r0, r1);
    const __m256 t23a = _mm256_unpacklo_ps(r2, r3), t23b = _mm256_unpackhi_ps(r2, r3);
    const __m256 t45a = _mm256_unpacklo_ps(r4, r5), t45b = _mm256_unpackhi_ps(r4, r5);
    // Rows 0-3 of one k: u0 = k+0 | k+4, u1 = k+1 | k+5, u2 = k+2 | k+6, u3 = k+3 | k+7.
    const __m256 u0 = _mm256_shuffle_ps(t01a, t23a, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u1 = _mm256_shuffle_ps(t01a, t23a, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u2 = _mm256_shuffle_ps(t01b, t23b, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u3 = _mm256_shuffle_ps(t01b, t23b, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 rows03[4] = {u0, u1, u2, u3};
    const __m256 rows45[2] = {t45a, t45b};  // rows 4-5: pairs for k+0,k+1 | k+4,k+5 and +2,+3
    for (int half = 0; half < 2; ++half) {  // k+0..3, then k+4..7
      float* d = dst + half * 24;
      for (int q = 0; q < 4; ++q) {
        const __m128 lo =
            half ? _mm256_extractf128_ps(rows03[q], 1) : _mm256_castps256_ps128(rows03[q]);
        const __m128 p = half ? _mm256_extractf128_ps(rows45[q / 2], 1)
                              : _mm256_castps256_ps128(rows45[q / 2]);
        _mm_storeu_ps(d + q * 6, lo);
        if (q % 2 == 0)
          _mm_storel_pi(reinterpret_cast<__m64*>(d + q * 6 + 4), p);
        else
          _mm_storeh_pi(reinterpret_cast<__m64*>(d + q * 6 + 4), p);
      }
    }
  }
  pack_rows_portable<float, 6>(kc - k, a + k, lda, dst);
}

// Six rows × 4 k (double): same idea; each packed k is three 16-byte pairs.
__attribute__((target("avx2,fma")))
void pack_rows_avx2(int64_t kc, const double* __restrict a, int64_t lda, double* __restrict dst) {
  static_assert(GemmTile<double>::MR == 6);
  const double* r[6];
  for (int i = 0; i < 6; ++i) r[i] = a + i * lda;
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4, dst += 24) {
    for (int pair = 0; pair < 3; ++pair) {  // rows 2p, 2p+1
      const __m256d x = _mm256_loadu_pd(r[2 * pair] + k), y = _mm256_loadu_pd(r[2 * pair + 1] + k);
      const __m256d lo = _mm256_unpacklo_pd(x, y);  // x[0] y[0] | x[2] y[2]
      const __m256d hi = _mm256_unpackhi_pd(x, y);  // x[1] y[1] | x[3] y[3]
      _mm_storeu_pd(dst + 0 * 6 + 2 * pair, _mm256_castpd256_pd128(lo));
      _mm_storeu_pd(dst + 1 * 6 + 2 * pair, _mm256_castpd256_pd128(hi));
      _mm_storeu_pd(dst + 2 * 6 + 2 * pair, _mm256_extractf128_pd(lo, 1));
      _mm_storeu_pd(dst + 3 * 6 + 2 * pair, _mm256_extractf128_pd(hi, 1));
    }
  }
  pack_rows_portable<double, 6>(kc - k, a + k, lda, dst);
}

// One register-wide square tile transposed: dst[q*ldd + i] = src[i*ld + q] for i, q < 8 (float).
// Each register is loaded as two half rows, row i in the low 128-bit lane and row i + 4 in the high
// one (the insert is a load, not a shuffle), so that two in-lane shuffle stages finish the job:
// unpack interleaves row pairs, shuffle gathers 4 rows of one column, and each register then holds
// column q's 8 values (rows 0-3 | 4-7), one store. The pack is bound by the shuffle port; loading
// this way saves the lane-swapping third stage (~20% faster than loading whole rows).
SSM_AVX2 void transpose_tile(const float* __restrict src, int64_t ld, float* __restrict dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int h = 0; h < 8; h += 4)  // r[h + i] = row i | row i + 4, columns h..h+3
    for (int i = 0; i < 4; ++i)
      r[h + i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(src + i * ld + h)),
                                      _mm_loadu_ps(src + (i + 4) * ld + h), 1);
  for (int i = 0; i < 8; i += 2) {  // t[i]: r[i], r[i+1] interleaved, columns h, h+1; t[i+1]: h+2, h+3
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {  // column h + q: rows 0-3 from t[h..h+3]'s low lanes, 4-7 high
    _mm256_storeu_ps(dst + (h + 0) * ldd, _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(1, 0, 1, 0)));
    _mm256_storeu_ps(dst + (h + 1) * ldd, _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(3, 2, 3, 2)));
    _mm256_storeu_ps(dst + (h + 2) * ldd, _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(1, 0, 1, 0)));
    _mm256_storeu_ps(dst + (h + 3) * ldd, _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(3, 2, 3, 2)));
  }
}

// The same for 4×4 doubles: registers hold row i | row i + 2 of a column pair, and one unpack
// stage gives whole columns.
SSM_AVX2 void transpose_tile(const double* __restrict src, int64_t ld, double* __restrict dst, int64_t ldd) {
  for (int h = 0; h < 4; h += 2) {  // columns h, h + 1
    __m256d r[2];
    for (int i = 0; i < 2; ++i)
      r[i] = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(src + i * ld + h)),
                                  _mm_loadu_pd(src + (i + 2) * ld + h), 1);
    _mm256_storeu_pd(dst + h * ldd, _mm256_unpacklo_pd(r[0], r[1]));
    _mm256_storeu_pd(dst + (h + 1) * ldd, _mm256_unpackhi_pd(r[0], r[1]));
  }
}

// NR columns of Bᵀ (pack_b_cols) in square tiles of one register: each reads W contiguous values
// of W rows and writes W packed groups' W-value slices, instead of NR·kc scalar moves.
template <class T>
__attribute__((target("avx2,fma")))
void pack_cols_avx2(int64_t kc, const T* __restrict b, int64_t ldb, T* __restrict dst) {
  constexpr int NR = GemmTile<T>::NR, W = 32 / sizeof(T);
  static_assert(NR % W == 0);
  int64_t k = 0;
  for (; k + W <= kc; k += W)
    for (int j = 0; j < NR; j += W) transpose_tile(b + j * ldb + k, ldb, dst + k * NR + j, NR);
  pack_rows_portable<T, NR>(kc - k, b + k, ldb, dst + k * NR);
}
// Every dot product of the block keeps two vector accumulators (k in steps of two vectors), so a
// block of rows · cols ≤ 4 has up to 8 independent FMA chains: enough to cover the FMA latency on
// both pipes, where a single dot product (batch-1 decoding, one column at a time) waited ~4 cycles
// per FMA. The lanes are summed in a fixed order, so the result depends on K only.
template <class T, int Rows, int Cols>
__attribute__((target("avx2,fma")))
void dot_block_avx2_n(int64_t K, const T* __restrict a, const T* __restrict b, int64_t ldb, T* __restrict out) {
  constexpr int W = 32 / sizeof(T);
  using V = typename Vec<T, 256>::type;
  V acc[Rows][Cols][2];
  for (int i = 0; i < Rows; ++i)
    for (int j = 0; j < Cols; ++j) acc[i][j][0] = acc[i][j][1] = vzero<V>();
  int64_t k = 0;
  for (; k + 2 * W <= K; k += 2 * W)
    for (int j = 0; j < Cols; ++j) {
      const V b0 = vloadu<V>(b + j * ldb + k), b1 = vloadu<V>(b + j * ldb + k + W);
      for (int i = 0; i < Rows; ++i) {
        acc[i][j][0] = vfma(vloadu<V>(a + i * K + k), b0, acc[i][j][0]);
        acc[i][j][1] = vfma(vloadu<V>(a + i * K + k + W), b1, acc[i][j][1]);
      }
    }
  for (int i = 0; i < Rows; ++i)
    for (int j = 0; j < Cols; ++j) {
      alignas(32) T lanes[2 * W];
      vstoreu(lanes, acc[i][j][0]);
      vstoreu(lanes + W, acc[i][j][1]);
      T sum = 0;
      for (int l = 0; l < 2 * W; ++l) sum += lanes[l];
      for (int64_t kk = k; kk < K; ++kk) sum += a[i * K + kk] * b[j * ldb + kk];
      out[i * Cols + j] = sum;
    }
}

template <class T>
__attribute__((target("avx2,fma")))
void dot_block_avx2(int rows, int cols, int64_t K, const T* a, const T* b, int64_t ldb, T* out) {
  static_assert(kDotBlockMax == 4);
  switch (rows * 8 + cols) {  // every (rows, cols) with rows · cols ≤ 4
    case 8 + 1: return dot_block_avx2_n<T, 1, 1>(K, a, b, ldb, out);
    case 8 + 2: return dot_block_avx2_n<T, 1, 2>(K, a, b, ldb, out);
    case 8 + 3: return dot_block_avx2_n<T, 1, 3>(K, a, b, ldb, out);
    case 8 + 4: return dot_block_avx2_n<T, 1, 4>(K, a, b, ldb, out);
    case 16 + 1: return dot_block_avx2_n<T, 2, 1>(K, a, b, ldb, out);
    case 16 + 2: return dot_block_avx2_n<T, 2, 2>(K, a, b, ldb, out);
    case 24 + 1: return dot_block_avx2_n<T, 3, 1>(K, a, b, ldb, out);
    case 32 + 1: return dot_block_avx2_n<T, 4, 1>(K, a, b, ldb, out);
    default: return dot_block_portable(rows, cols, K, a, b, ldb, out);  // not reached
  }
}

#undef SSM_AVX2
#endif  // SSM_GEMM_X86

std::atomic<Isa> isa_cap{Isa::avx512};

Isa active_isa() { return std::min(supported_isa(), isa_cap.load(std::memory_order_relaxed)); }

}  // namespace

Isa supported_isa() {
  static const Isa isa = [] {
#ifdef SSM_GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
    return Isa::portable;
  }();
  return isa;
}

void cap_isa(Isa cap) { isa_cap.store(cap, std::memory_order_relaxed); }

template <class T>
MicroKernel<T> micro_kernel() {
  switch (active_isa()) {
#ifdef SSM_GEMM_X86
    case Isa::avx512: return &kernel_avx512<T>;
    case Isa::avx2: return &kernel_avx2<T>;
#endif
    default: return &kernel_portable<T>;
  }
}

template <class T>
PackRows<T> pack_a_rows() {
#ifdef SSM_GEMM_X86
  // The AVX-512 family packs with the AVX2 transpose too: profiled on the 4096×160×160 product,
  // the pack takes ~6% of the time, too little for a 512-bit version to pay for itself.
  if (active_isa() >= Isa::avx2)
    return static_cast<void (*)(int64_t, const T*, int64_t, T*)>(&pack_rows_avx2);
#endif
  return &pack_rows_portable<T, GemmTile<T>::MR>;
}

template <class T>
PackRows<T> pack_b_cols() {
#ifdef SSM_GEMM_X86
  if (active_isa() >= Isa::avx2) return &pack_cols_avx2<T>;
#endif
  return &pack_rows_portable<T, GemmTile<T>::NR>;
}

template <class T>
DotBlock<T> dot_block() {
#ifdef SSM_GEMM_X86
  if (active_isa() >= Isa::avx2) return &dot_block_avx2<T>;
#endif
  return &dot_block_portable<T>;
}

template MicroKernel<float> micro_kernel<float>();
template MicroKernel<double> micro_kernel<double>();
template PackRows<float> pack_a_rows<float>();
template PackRows<double> pack_a_rows<double>();
template PackRows<float> pack_b_cols<float>();
template PackRows<double> pack_b_cols<double>();
template DotBlock<float> dot_block<float>();
template DotBlock<double> dot_block<double>();

}  // namespace ssm::cpu::detail
