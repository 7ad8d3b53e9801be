// tensor/cpu/gemm_kernels.cpp — the GEMM micro-kernels (see gemm_kernels.h for the packed layout).
//
// Two kernels per type, picked once at run time:
//   * AVX2+FMA: compiled with __attribute__((target)) so the library itself stays portable (no
//     global -mavx2); used when __builtin_cpu_supports says the CPU has both extensions.
//   * portable C++: plain loops over a small accumulator array that the compiler can vectorize
//     for whatever ISA the build targets.
#include "tensor/cpu/gemm_kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && !defined(SSM_GEMM_PORTABLE_ONLY)
#define SSM_GEMM_X86_AVX2 1
#include <immintrin.h>
#endif

namespace ssm::cpu::detail {
namespace {

template <class T>
void kernel_portable(int64_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c,
                     int64_t ldc, T alpha, T beta) {
  constexpr int MR = GemmTile<T>::MR, NR = GemmTile<T>::NR;
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  if (beta == T(0)) {  // write-only: old C (maybe NaN) must not leak in
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) c[i * ldc + j] = alpha * acc[i][j];
  } else {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) c[i * ldc + j] = alpha * acc[i][j] + beta * c[i * ldc + j];
  }
}

#ifdef SSM_GEMM_X86_AVX2
// Thin overloads so one kernel template serves float (__m256, 8 lanes) and double (__m256d, 4).
// They carry the same target attribute as the kernel, which lets GCC inline them into it.
#define SSM_AVX2 __attribute__((target("avx2,fma"), always_inline)) inline
SSM_AVX2 __m256 vzero(float) { return _mm256_setzero_ps(); }
SSM_AVX2 __m256d vzero(double) { return _mm256_setzero_pd(); }
SSM_AVX2 __m256 vset1(float x) { return _mm256_set1_ps(x); }
SSM_AVX2 __m256d vset1(double x) { return _mm256_set1_pd(x); }
SSM_AVX2 __m256 vload(const float* p) { return _mm256_load_ps(p); }  // aligned (packed B)
SSM_AVX2 __m256d vload(const double* p) { return _mm256_load_pd(p); }
SSM_AVX2 __m256 vloadu(const float* p) { return _mm256_loadu_ps(p); }  // C may be unaligned
SSM_AVX2 __m256d vloadu(const double* p) { return _mm256_loadu_pd(p); }
SSM_AVX2 void vstoreu(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
SSM_AVX2 void vstoreu(double* p, __m256d v) { _mm256_storeu_pd(p, v); }
SSM_AVX2 __m256 vbcast(const float* p) { return _mm256_broadcast_ss(p); }
SSM_AVX2 __m256d vbcast(const double* p) { return _mm256_broadcast_sd(p); }
SSM_AVX2 __m256 vfma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
SSM_AVX2 __m256d vfma(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
SSM_AVX2 __m256 vmul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
SSM_AVX2 __m256d vmul(__m256d a, __m256d b) { return _mm256_mul_pd(a, b); }

// 6 rows × 2 vectors: per k, two aligned loads of B, six broadcasts of A and twelve independent
// FMAs. Twelve chains keep both of Zen 3's FMA pipes busy despite the 4-cycle FMA latency, and
// the 8 loads per 12 FMAs fit its load ports, so the loop runs at the FMA throughput limit.
template <class T>
__attribute__((target("avx2,fma")))
void kernel_avx2(int64_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c,
                 int64_t ldc, T alpha, T beta) {
  constexpr int MR = GemmTile<T>::MR, W = 32 / sizeof(T);
  static_assert(GemmTile<T>::NR == 2 * W, "kernel assumes NR = two vectors");
  using V = decltype(vzero(T{}));
  // Touch the C tile now so its lines arrive while the k loop runs (one tile row can span 2 lines).
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 2 * W - 1), _MM_HINT_T0);
  }
  V acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = vzero(T{});
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const V b0 = vload(b), b1 = vload(b + W);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const V ai = vbcast(a + i);
      acc[i][0] = vfma(ai, b0, acc[i][0]);
      acc[i][1] = vfma(ai, b1, acc[i][1]);
    }
    a += MR;
    b += 2 * W;
  }
  const V va = vset1(alpha);
  if (beta == T(0)) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      vstoreu(c + i * ldc, vmul(va, acc[i][0]));
      vstoreu(c + i * ldc + W, vmul(va, acc[i][1]));
    }
  } else {
    const V vb = vset1(beta);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      vstoreu(c + i * ldc, vfma(va, acc[i][0], vmul(vb, vloadu(c + i * ldc))));
      vstoreu(c + i * ldc + W, vfma(va, acc[i][1], vmul(vb, vloadu(c + i * ldc + W))));
    }
  }
}
#undef SSM_AVX2
#endif  // SSM_GEMM_X86_AVX2

bool detect_avx2() {
#ifdef SSM_GEMM_X86_AVX2
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

template <class T>
MicroKernel<T> select_kernel() {
#ifdef SSM_GEMM_X86_AVX2
  if (gemm_use_avx2()) return &kernel_avx2<T>;
#endif
  return &kernel_portable<T>;
}

}  // namespace

bool gemm_use_avx2() {
  static const bool yes = detect_avx2();
  return yes;
}

template <class T>
MicroKernel<T> micro_kernel() {
  static const MicroKernel<T> k = select_kernel<T>();
  return k;
}

template MicroKernel<float> micro_kernel<float>();
template MicroKernel<double> micro_kernel<double>();

}  // namespace ssm::cpu::detail
