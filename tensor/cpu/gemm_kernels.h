// tensor/cpu/gemm_kernels.h — internal to the GEMM (gemm.cpp, gemm_kernels.cpp); not a public API.
//
// The micro-kernel computes one MR×NR tile of C from an MR-row sliver of A and a packed micro-panel of B:
//   a: any strides, A(i, k) = a[i*a_rs + k*a_cs]; the packed sliver (kc groups of MR values, column k
//      of the sliver together) is a_rs = 1, a_cs = MR, and small products read A in place
//   b: kc groups of NR values (row k of an NR-column sliver of B),  i.e. b[k*NR + j] = B(k, j)
//   C(i, j) = alpha * sum_k A(i, k) * b[k*NR+j] + beta * C(i, j)   (beta == 0: C is not read)
// b is 64-byte aligned (the kernel may use aligned loads); c is arbitrary, with row stride ldc.
// A's values are only ever broadcast, one at a time, so its layout costs the kernel nothing.
// The tile shape is fixed per type so that one packing format serves every kernel. 6×16 float /
// 6×8 double is 12 ymm accumulators + 2 for B + 1 broadcast of A, within the 16 ymm registers of
// AVX2, with enough independent FMAs (12) to cover FMA latency × 2 pipes on Zen 3; with AVX-512 a
// tile row is one zmm, and the kernel unrolls k by 2 to get its 12 chains (gemm_kernels.cpp).
#pragma once
#include <cstdint>

namespace ssm::cpu::detail {

template <class T> struct GemmTile;
template <> struct GemmTile<float>  { static constexpr int MR = 6, NR = 16; };
template <> struct GemmTile<double> { static constexpr int MR = 6, NR = 8; };

template <class T>
using MicroKernel = void (*)(int64_t kc, const T* a, int64_t a_rs, int64_t a_cs, const T* b, T* c,
                             int64_t ldc, T alpha, T beta);

// The kernel families, narrowest first. The GEMM uses the widest one the CPU supports (checked
// once): AVX-512F, else AVX2+FMA, else portable C++. Compiling with -DSSM_GEMM_PORTABLE_ONLY
// leaves only the portable kernel (to test the fallback on any machine).
enum class Isa { portable, avx2, avx512 };
Isa supported_isa();
// Caps the family that later products use, so that tests reach the narrower kernels on a wider
// CPU. Not to be changed while a product runs (threads of one product must share one kernel).
void cap_isa(Isa cap);

// The kernel of the family in use (the narrower of supported_isa() and the cap).
template <class T> MicroKernel<T> micro_kernel();

// Packs MR full rows of a row-major A (unit column stride, row stride lda) into the micro-panel
// layout: dst[k*MR + i] = a[i*lda + k] for k < kc. This is a transpose, the one packing case that
// plain loops do slowly (it dominates when N is small, e.g. N = 160), so it gets an AVX2 version
// (which the AVX-512 family uses too).
template <class T>
using PackRows = void (*)(int64_t kc, const T* a, int64_t lda, T* dst);
template <class T> PackRows<T> pack_a_rows();

// Packs NR full columns of a B whose columns are contiguous (B(k, j) = b[j*ldb + k]: Bᵀ stored
// row-major, as in the chunk core's Q·Kᵀ and the forward Y = X·Wᵀ) into the micro-panel layout:
// dst[k*NR + j] = b[j*ldb + k] for k < kc. The same transpose as pack_a_rows, NR rows of the stored
// Bᵀ at a time; one value at a time it cost ~2% of a training step (the chunk core packs a 16×16
// Kᵀ panel per product, ~10⁵ products a step), so it gets an AVX2 version too.
template <class T> PackRows<T> pack_b_cols();

// The few-rows GEMM path (gemm.cpp): a block of dot products of `rows` contiguous rows of A (row
// stride K) with `cols` contiguous columns of B (column j at b + j·ldb), rows · cols ≤ kDotBlockMax:
//   out[i·cols + j] = Σ_k a[i·K + k] · b[j·ldb + k]
// Each loaded vector feeds several products (a row of A every column, a column of B every row), and
// the block's independent sums hide the FMA latency: one dot product at a time was latency-bound.
// The summation order depends on K only (deterministic).
constexpr int kDotBlockMax = 4;
template <class T>
using DotBlock = void (*)(int rows, int cols, int64_t K, const T* a, const T* b, int64_t ldb, T* out);
template <class T> DotBlock<T> dot_block();

}  // namespace ssm::cpu::detail
