// Tests for tensor/cpu/gemm.h: every result is checked against a naive triple loop accumulated in
// double (float tests) or long double (double tests), with a tolerance scaled by sqrt(K) and by
// the magnitude sum Σ|a·b| (so cancellation cannot make a correct result look wrong). The kernel
// tests run once per micro-kernel family the machine has (portable, AVX2, AVX-512).
#include "tensor/cpu/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "tensor/cpu/gemm_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using ssm::cpu::gemm;
using ssm::cpu::gemm_batched;
using ssm::cpu::detail::Isa;

// Runs `body` under each micro-kernel family this CPU supports, narrowest first, so that a wide
// machine tests the narrower kernels too; afterwards the widest is in use again.
template <class F>
void for_each_kernel(F body) {
  const char* names[] = {"portable", "AVX2", "AVX-512"};
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512}) {
    if (isa > ssm::cpu::detail::supported_isa()) break;
    SCOPED_TRACE(std::string("kernel ") + names[int(isa)]);
    ssm::cpu::detail::cap_isa(isa);
    body();
  }
  ssm::cpu::detail::cap_isa(Isa::avx512);
}

#if (defined(__x86_64__) || defined(__i386__)) && !defined(SSM_GEMM_PORTABLE_ONLY)
TEST(Gemm, PicksTheWidestKernelTheCpuHas) {
  __builtin_cpu_init();
  Isa want = Isa::portable;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) want = Isa::avx2;
  if (__builtin_cpu_supports("avx512f")) want = Isa::avx512;
  EXPECT_EQ(int(ssm::cpu::detail::supported_isa()), int(want));
}
#endif

// A logical rows×cols matrix stored either row-major (trans = false) or as its transpose
// (trans = true), with `pad` extra elements per stored row and column step `step`.
template <class T>
struct Operand {
  std::vector<T> data;
  int64_t rs = 0, cs = 0;
  T at(int64_t r, int64_t c) const { return data[r * rs + c * cs]; }
};

template <class T>
Operand<T> make_operand(int64_t rows, int64_t cols, bool trans, int64_t pad, std::mt19937& rng,
                        int64_t step = 1) {
  Operand<T> o;
  const int64_t inner = trans ? rows : cols, outer = trans ? cols : rows;
  const int64_t ld = inner * step + pad;
  o.data.resize(std::max<int64_t>(1, outer * ld));
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (T& x : o.data) x = T(dist(rng));
  o.rs = trans ? step : ld;
  o.cs = trans ? ld : step;
  return o;
}

template <class T>
double tolerance(int64_t K) {
  // Blocked FMA sums err like eps·sqrt(K) typically, eps·K at worst; this covers the worst case.
  const double per = std::is_same_v<T, float> ? 2e-6 : 4e-15;
  return per * std::sqrt(double(std::max<int64_t>(K, 1)));
}

bool same_bits(double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0; }

// Check C (M×N, row stride ldc) against alpha·A·B + beta·C0; columns past N must be untouched.
template <class T>
void expect_matches(int64_t M, int64_t N, int64_t K, T alpha, const Operand<T>& A,
                    const Operand<T>& B, T beta, const std::vector<T>& c0, const T* c, int64_t ldc,
                    const std::string& what) {
  using Acc = std::conditional_t<std::is_same_v<T, float>, double, long double>;  // exact enough
  int64_t bad = 0;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const T got = c[i * ldc + j], old = c0[i * ldc + j];
      if (j >= N) {  // padding: must be bitwise unchanged
        if (!same_bits(got, old) && bad++ < 3)
          ADD_FAILURE() << what << " wrote padding " << i << "," << j;
        continue;
      }
      Acc s = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const Acc p = Acc(A.at(i, k)) * Acc(B.at(k, j));
        s += p;
        mag += std::fabs(p);
      }
      Acc want = Acc(alpha) * s, scale = std::fabs(Acc(alpha)) * mag;
      if (beta != T(0)) {
        want += Acc(beta) * old;
        scale += std::fabs(Acc(beta) * old);
      }
      const double err = std::fabs(double(got - (T)want));
      const double bound = tolerance<T>(K) * double(scale) + 1e-30;
      if (!(err <= bound) && bad++ < 3)
        ADD_FAILURE() << what << " C(" << i << "," << j << ") = " << got << ", want "
                      << double(want) << " (err " << err << " > " << bound << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

// One gemm call on random operands with the given transposes, padding and scalars.
template <class T>
void check_gemm(int64_t M, int64_t N, int64_t K, bool ta, bool tb, T alpha, T beta, int64_t pad,
                unsigned seed, int64_t step = 1) {
  std::mt19937 rng(seed);
  const Operand<T> A = make_operand<T>(M, K, ta, pad, rng, step);
  const Operand<T> B = make_operand<T>(K, N, tb, pad, rng, step);
  const int64_t ldc = N + pad;
  std::vector<T> c(std::max<int64_t>(1, M * ldc));
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (T& x : c) x = beta == T(0) ? std::numeric_limits<T>::quiet_NaN() : T(dist(rng));
  if (beta == T(0))  // padding stays a number so "untouched" is easy to see; the tile is NaN
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = N; j < ldc; ++j) c[i * ldc + j] = T(7);
  const std::vector<T> c0 = c;
  gemm(M, N, K, alpha, A.data.data(), A.rs, A.cs, B.data.data(), B.rs, B.cs, beta, c.data(), ldc);
  const std::string what = std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) +
                           (ta ? " T" : " N") + (tb ? "T" : "N") + " pad " + std::to_string(pad) +
                           " step " + std::to_string(step);
  expect_matches(M, N, K, alpha, A, B, beta, c0, c.data(), ldc, what);
}

// Every (M, N, K) from a size list that straddles the 6×16 / 6×8 tiles, × all four transposes.
// K (one K block here) covers kc = 1 and 2 and other odd and even kc, for the kernel that unrolls k
// by 2.
template <class T>
void sweep_sizes() {
  const int64_t sizes[] = {1, 2, 7, 16, 33, 129};
  unsigned seed = 1;
  for (int64_t M : sizes)
    for (int64_t N : sizes)
      for (int64_t K : sizes)
        for (int t = 0; t < 4; ++t)
          check_gemm<T>(M, N, K, t & 1, t & 2, T(0.75), T(-1.25), 3, seed++);
}

// A small product (below the thread-team size, one K block) skips the packing of A and reads it in
// place; it must give bitwise the rows that the packed path gives for the same A rows inside a big
// product (same K block, same tiles, same kernel). B is shared; A's first M rows are the small A.
template <class T>
void small_products_match_packed_rows() {
  const int64_t shapes[][3] = {{5, 16, 16}, {16, 16, 64}, {32, 64, 16}, {64, 17, 33}, {7, 1, 1}};
  constexpr int64_t kBigRows = 1100;  // M·N·K ≥ 64³ for every shape: the packed path
  std::mt19937 rng(5);
  for (const auto& [M, N, K] : shapes)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const Operand<T> A = make_operand<T>(kBigRows, K, ta, 3, rng);
      const Operand<T> B = make_operand<T>(K, N, tb, 3, rng);
      std::vector<T> big(kBigRows * N), small(M * N);
      gemm(kBigRows, N, K, T(0.75), A.data.data(), A.rs, A.cs, B.data.data(), B.rs, B.cs, T(0), big.data(), N);
      gemm(M, N, K, T(0.75), A.data.data(), A.rs, A.cs, B.data.data(), B.rs, B.cs, T(0), small.data(), N);
      for (int64_t i = 0; i < M * N; ++i)
        ASSERT_EQ(small[i], big[i]) << M << "x" << N << "x" << K << " t=" << t << " at " << i;
    }
}

TEST(Gemm, SmallProductsAreBitwiseThePackedPathsRows) {
  for_each_kernel(small_products_match_packed_rows<float>);
  for_each_kernel(small_products_match_packed_rows<double>);
}

// A B that is exactly one packed micro-panel (NR columns, rows NR apart, 64-byte aligned) is read in
// place instead of packed. The same values one element off that alignment take the packing path; both
// must give the same bits, and match the naive sum.
template <class T>
void packed_panel_b_is_read_in_place() {
  constexpr int64_t NR = ssm::cpu::detail::GemmTile<T>::NR;
  std::mt19937 rng(9);
  for (const auto& [M, K] : {std::pair<int64_t, int64_t>{64, 16}, {16, 64}, {5, 33}, {1, 1}}) {
    const Operand<T> A = make_operand<T>(M, K, false, 0, rng);
    Operand<T> B = make_operand<T>(K, NR, false, 0, rng);  // rows NR apart, unit column stride
    std::vector<T> storage(2 * K * NR + 64);  // room for both copies and the shift to alignment
    T* aligned = storage.data();
    while (reinterpret_cast<uintptr_t>(aligned) % 64 != 0) ++aligned;
    T* misaligned = aligned + K * NR + 1;
    std::copy(B.data.begin(), B.data.end(), aligned);
    std::copy(B.data.begin(), B.data.end(), misaligned);
    std::vector<T> in_place(M * NR), packed(M * NR);
    gemm(M, NR, K, T(0.75), A.data.data(), A.rs, A.cs, aligned, NR, 1, T(0), in_place.data(), NR);
    gemm(M, NR, K, T(0.75), A.data.data(), A.rs, A.cs, misaligned, NR, 1, T(0), packed.data(), NR);
    for (int64_t i = 0; i < M * NR; ++i) ASSERT_EQ(in_place[i], packed[i]) << M << "x" << K << " at " << i;
    expect_matches<T>(M, NR, K, T(0.75), A, B, T(0), std::vector<T>(M * NR), in_place.data(), NR,
                      "in-place panel " + std::to_string(M) + "x" + std::to_string(K));
  }
}

TEST(Gemm, AnAlignedOnePanelBIsReadInPlace) {
  for_each_kernel(packed_panel_b_is_read_in_place<float>);
  for_each_kernel(packed_panel_b_is_read_in_place<double>);
}

// Packing NR columns of a stored Bᵀ is a pure copy, so it must be bitwise exact: every kc around the
// register-tile width (only a tail, full tiles, tiles and a tail, several K blocks' worth), column
// strides that leave the rows unaligned, and nothing written past the kc·NR packed values.
template <class T>
void packing_b_columns_is_an_exact_transpose() {
  constexpr int64_t NR = ssm::cpu::detail::GemmTile<T>::NR;
  for (int64_t kc : {0, 1, 3, 4, 7, 8, 9, 16, 17, 31, 384})
    for (int64_t pad : {0, 1, 5}) {
      const int64_t ldb = kc + pad;
      std::vector<T> b(NR * ldb);
      for (size_t i = 0; i < b.size(); ++i) b[i] = T(i) + T(0.5);
      std::vector<T> dst(kc * NR + NR, T(-1));
      ssm::cpu::detail::pack_b_cols<T>()(kc, b.data(), ldb, dst.data());
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = 0; j < NR; ++j)
          ASSERT_EQ(dst[k * NR + j], b[j * ldb + k]) << "kc " << kc << " pad " << pad << " at " << k << "," << j;
      for (size_t i = kc * NR; i < dst.size(); ++i) ASSERT_EQ(dst[i], T(-1)) << "kc " << kc << " wrote past the end";
    }
}

TEST(Gemm, PackingBColumnsIsAnExactTranspose) {
  for_each_kernel(packing_b_columns_is_an_exact_transpose<float>);
  for_each_kernel(packing_b_columns_is_an_exact_transpose<double>);
}

TEST(Gemm, FloatAllSizeCombinationsAndTransposes) { for_each_kernel(sweep_sizes<float>); }
TEST(Gemm, DoubleAllSizeCombinationsAndTransposes) { for_each_kernel(sweep_sizes<double>); }

// Larger and odder shapes: several K blocks (K > 256), several M blocks (M > 144), big enough
// for the threaded paths (split over M, and over N when M is short), N beyond one NC block.
template <class T>
void large_shapes() {
  struct Shape { int64_t M, N, K; };
  const Shape shapes[] = {{257, 129, 64}, {2, 257, 33}, {64, 2, 257}, {129, 257, 257},
                          {7, 1000, 100}, {300, 40, 600}, {64, 300, 100}, {5, 3100, 20}};
  unsigned seed = 1000;
  for (const Shape& s : shapes)
    for (int t = 0; t < 4; ++t)
      check_gemm<T>(s.M, s.N, s.K, t & 1, t & 2, T(-0.5), T(0.25), 5, seed++);
}

// Up to 4 rows of A against a B with contiguous columns (decoding's X·Wᵀ) take the few-rows path:
// every row count, K around its two-vector steps, beta 0 (C is NaN) and not, wide N for the threads.
template <class T>
void few_rows_shapes() {
  unsigned seed = 2000;
  for (int64_t M = 1; M <= 5; ++M)
    for (int64_t K : {1, 7, 8, 16, 17, 33, 160})
      for (int64_t N : {1, 5, 300})
        for (bool ta : {false, true}) {
          check_gemm<T>(M, N, K, ta, true, T(0.75), T(0), 3, seed++);
          check_gemm<T>(M, N, K, ta, true, T(-1.5), T(0.5), 0, seed++);
        }
  check_gemm<T>(3, 4000, 160, false, true, T(1), T(0), 0, seed++);  // big enough for a thread team
}

TEST(Gemm, FloatFewRowsAgainstContiguousColumns) { for_each_kernel(few_rows_shapes<float>); }
TEST(Gemm, DoubleFewRowsAgainstContiguousColumns) { for_each_kernel(few_rows_shapes<double>); }

TEST(Gemm, FloatLargeShapes) { for_each_kernel(large_shapes<float>); }
TEST(Gemm, DoubleLargeShapes) { for_each_kernel(large_shapes<double>); }

TEST(Gemm, BetaZeroIgnoresNaNInC) {  // odd and even kc, edge and full tiles
  for_each_kernel([] {
    for (int t = 0; t < 4; ++t) {
      check_gemm<float>(33, 129, 16, t & 1, t & 2, 1.5f, 0.0f, 2, 50 + t);
      check_gemm<float>(129, 33, 300, t & 1, t & 2, 1.0f, 0.0f, 0, 60 + t);
      check_gemm<float>(13, 35, 17, t & 1, t & 2, -2.0f, 0.0f, 1, 65 + t);
      check_gemm<double>(33, 17, 7, t & 1, t & 2, 1.0, 0.0, 1, 70 + t);
      check_gemm<double>(12, 16, 40, t & 1, t & 2, 0.5, 0.0, 0, 75 + t);
    }
  });
}

TEST(Gemm, NonUnitColumnStrides) {  // neither operand has a unit stride: the general packing path
  for (int t = 0; t < 4; ++t) {
    check_gemm<float>(37, 45, 29, t & 1, t & 2, 1.0f, 0.5f, 3, 80 + t, 2);
    check_gemm<double>(37, 45, 29, t & 1, t & 2, 1.0, 0.5, 3, 90 + t, 3);
  }
}

TEST(Gemm, KZeroScalesCByBeta) {
  std::vector<float> c = {1, 2, 3, 4, 5, 6};
  const float dummy = std::numeric_limits<float>::quiet_NaN();
  gemm(2, 3, 0, 1.0f, &dummy, 0, 1, &dummy, 3, 1, 2.0f, c.data(), 3);
  EXPECT_EQ(c, (std::vector<float>{2, 4, 6, 8, 10, 12}));
  std::vector<double> d(6, std::numeric_limits<double>::quiet_NaN());
  const double dd = 0;
  gemm(2, 3, 0, 1.0, &dd, 0, 1, &dd, 3, 1, 0.0, d.data(), 3);
  EXPECT_EQ(d, std::vector<double>(6, 0.0));
}

TEST(Gemm, AlphaZeroScalesCByBeta) {
  std::vector<float> a(12, 1.0f), b(12, 1.0f), c = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  gemm(3, 3, 4, 0.0f, a.data(), 4, 1, b.data(), 3, 1, -1.0f, c.data(), 3);
  EXPECT_EQ(c, (std::vector<float>{-1, -2, -3, -4, -5, -6, -7, -8, -9}));
}

TEST(Gemm, EmptyMOrNIsANoOp) {
  std::vector<float> a(8, 1.0f), b(8, 1.0f), c(8, 3.0f);
  gemm(0, 4, 2, 1.0f, a.data(), 2, 1, b.data(), 4, 1, 0.0f, c.data(), 4);
  gemm(2, 0, 2, 1.0f, a.data(), 2, 1, b.data(), 4, 1, 0.0f, c.data(), 4);
  EXPECT_EQ(c, std::vector<float>(8, 3.0f));
}

// Batched: product p uses A + p·sa etc.; a batch stride of 0 broadcasts that operand.
template <class T>
void check_batched(int64_t batch, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                   bool broadcast_a, bool broadcast_b, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<Operand<T>> As, Bs;
  for (int64_t q = 0; q < batch; ++q) {
    As.push_back(make_operand<T>(M, K, ta, 0, rng));
    Bs.push_back(make_operand<T>(K, N, tb, 0, rng));
  }
  const int64_t sa = int64_t(As[0].data.size()), sb = int64_t(Bs[0].data.size());
  std::vector<T> a(batch * sa), b(batch * sb);
  for (int64_t q = 0; q < batch; ++q) {
    if (broadcast_a) As[q] = As[0];
    if (broadcast_b) Bs[q] = Bs[0];
    std::copy(As[q].data.begin(), As[q].data.end(), a.begin() + q * sa);
    std::copy(Bs[q].data.begin(), Bs[q].data.end(), b.begin() + q * sb);
  }
  const int64_t ldc = N + 1, sc = M * ldc;
  std::vector<T> c(batch * sc);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (T& x : c) x = T(dist(rng));
  const std::vector<T> c0 = c;
  gemm_batched(batch, M, N, K, T(1.5), a.data(), broadcast_a ? 0 : sa, As[0].rs, As[0].cs, b.data(),
               broadcast_b ? 0 : sb, Bs[0].rs, Bs[0].cs, T(0.5), c.data(), sc, ldc);
  for (int64_t q = 0; q < batch; ++q) {
    const std::vector<T> c0q(c0.begin() + q * sc, c0.begin() + (q + 1) * sc);
    expect_matches(M, N, K, T(1.5), As[q], Bs[q], T(0.5), c0q, c.data() + q * sc, ldc,
                   "batch item " + std::to_string(q));
  }
}

TEST(GemmBatched, SmallProductsParallelOverBatch) {
  check_batched<float>(16, 40, 40, 40, false, false, false, false, 1);
  check_batched<float>(9, 33, 17, 65, true, false, false, true, 2);   // B broadcast
  check_batched<double>(8, 20, 36, 12, false, true, true, false, 3);  // A broadcast
}

TEST(GemmBatched, LargeProductsLoopOverBatch) {
  check_batched<float>(3, 150, 70, 80, false, true, false, true, 4);
  check_batched<double>(2, 100, 90, 70, true, true, false, false, 5);
}

TEST(GemmBatched, EmptyBatchIsANoOp) {
  float x = 1.0f;
  gemm_batched(0, 2, 2, 2, 1.0f, &x, 0, 0, 0, &x, 0, 0, 0, 0.0f, &x, 0, 0);
  EXPECT_EQ(x, 1.0f);
}

#ifdef _OPENMP
TEST(Gemm, CalledInsideAParallelRegion) {  // nested: each call must run serially and correctly
#pragma omp parallel for num_threads(2)
  for (int t = 0; t < 4; ++t) check_gemm<float>(100, 90, 80, t & 1, t & 2, 1.0f, 0.0f, 1, 300 + t);
}
#endif

// Same inputs and thread count -> bitwise the same result. The implementation also promises the
// same bits for any thread count (K blocking depends on K only; threads share whole tiles).
// Shapes: tall C (threads split M, two K blocks, the second with odd kc) and wide C (threads
// split N).
void expect_deterministic() {
  struct Shape { int64_t M, N, K; };
  for (const Shape s : {Shape{300, 200, 701}, Shape{40, 500, 900}, Shape{1, 772, 160}}) {  // the last: few rows
    std::mt19937 rng(7);
    const Operand<float> A = make_operand<float>(s.M, s.K, false, 0, rng);
    const Operand<float> B = make_operand<float>(s.K, s.N, true, 0, rng);
    auto run = [&] {
      std::vector<float> c(s.M * s.N, 1.0f);
      gemm(s.M, s.N, s.K, 1.0f, A.data.data(), A.rs, A.cs, B.data.data(), B.rs, B.cs, 0.5f,
           c.data(), s.N);
      return c;
    };
    const size_t bytes = size_t(s.M * s.N) * sizeof(float);
#ifdef _OPENMP
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    const std::vector<float> one = run();
    EXPECT_EQ(0, std::memcmp(one.data(), run().data(), bytes));
#ifdef _OPENMP
    omp_set_num_threads(2);
    const std::vector<float> two = run();
    EXPECT_EQ(0, std::memcmp(two.data(), run().data(), bytes));
    EXPECT_EQ(0, std::memcmp(one.data(), two.data(), bytes));
    omp_set_num_threads(saved);
#endif
  }
}

TEST(Gemm, BitwiseDeterministicAcrossRunsAndThreadCounts) { for_each_kernel(expect_deterministic); }

}  // namespace
