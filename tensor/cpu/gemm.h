// tensor/cpu/gemm.h — the CPU matrix multiply: C = alpha * A·B + beta * C.
//
// Contract
//   A is M×K, B is K×N, C is M×N, all row-major *views* given by a base pointer and two strides
//   (elements, not bytes): element (i, k) of A lives at a[i * a_row_stride + k * a_col_stride].
//   A transposed operand is therefore just swapped strides — no copy is ever made by the caller.
//   C must have unit column stride (c_col_stride == 1); its row stride is c_row_stride.
//   beta == 0 means C is write-only (its old contents, even NaN, are ignored).
//
// How it is fast (see gemm.cpp): the classic Goto/BLIS structure — blocks of B (KC×NC) and A (MC×KC)
// are packed into contiguous panels that stay in L2/L1, and a register-tiled micro-kernel
// (AVX-512 or else AVX2+FMA when the CPU has it, chosen at run time; a portable C++ kernel
// otherwise) computes MR×NR tiles of C. OpenMP threads share the tiles of C when the product is big
// enough to pay. Small products (below the thread-team size, K within one block: the SSM chunk
// core's) skip the loop nest and the packing of A, which the kernel then reads in place; the bits do
// not change. Products of at most 4 rows against a B with contiguous columns (decoding's x·Wᵀ) are
// dot products that read B in place.
//
// Threads and reproducibility: a call opens its own OpenMP team only when M·N·K is worth it
// (> ~64^3) and runs serially when made from inside a parallel region. Results are bitwise
// identical from run to run and for any thread count (threads share out whole tiles of C; the
// K blocking depends on K only). alpha == 0 or K == 0 leaves just C = beta·C (A, B not read).
//
// What it does not do: complex numbers, integer types, or anything but float/double.
// Tests: tests/test_gemm.cpp (against a naive triple loop). Benchmark: benchmarks/bench_gemm.cpp.
#pragma once
#include <cstdint>

namespace ssm::cpu {

void gemm(int64_t M, int64_t N, int64_t K, float alpha,
          const float* a, int64_t a_row_stride, int64_t a_col_stride,
          const float* b, int64_t b_row_stride, int64_t b_col_stride,
          float beta, float* c, int64_t c_row_stride);

void gemm(int64_t M, int64_t N, int64_t K, double alpha,
          const double* a, int64_t a_row_stride, int64_t a_col_stride,
          const double* b, int64_t b_row_stride, int64_t b_col_stride,
          double beta, double* c, int64_t c_row_stride);

// A batch of independent products, C[p] = alpha * A[p]·B[p] + beta * C[p] for p < batch, where the
// operands of product p start at a + p*a_batch_stride (etc). A batch stride of 0 broadcasts one operand.
// Parallel over the batch when each product is small (the SSM's per-chunk matmuls), over tiles otherwise.
void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* a, int64_t a_batch_stride, int64_t a_row_stride, int64_t a_col_stride,
                  const float* b, int64_t b_batch_stride, int64_t b_row_stride, int64_t b_col_stride,
                  float beta, float* c, int64_t c_batch_stride, int64_t c_row_stride);

void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, double alpha,
                  const double* a, int64_t a_batch_stride, int64_t a_row_stride, int64_t a_col_stride,
                  const double* b, int64_t b_batch_stride, int64_t b_row_stride, int64_t b_col_stride,
                  double beta, double* c, int64_t c_batch_stride, int64_t c_row_stride);

}  // namespace ssm::cpu
