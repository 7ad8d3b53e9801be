// bench_gemm: ssm::cpu::gemm against OpenBLAS on the model's shapes, 1 and 2 threads, side by side.
//
// Shapes are named M×N×K with the transposes of A and B (N = as stored, T = transposed view):
//   M4096_N768_K160 NN   forward  Y = X·W        (16×256 tokens, d_model 160 -> 768)
//   M4096_N160_K768 NT   backward dX = dY·Wᵀ
//   M160_N768_K4096 TN   backward dW = Xᵀ·dY
//   M4096_N160_K160, M4096_N160_K320 NN, squares 512 and 1024 NN, and one dgemm shape;
//   M1/M4/M8_N768_K160 NT                decoding's x·Wᵀ at batch 1, 4 (few-rows path) and 8 (packed)
// After the usual rows, a table gives ours/OpenBLAS for each shape and thread count.
// Run: build-*/bench_gemm --benchmark_min_time=0.2 --benchmark_repetitions=5
// (the machine may be shared: the table's ratio uses the best repetition of each side).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tensor/cpu/gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if SSM_HAVE_OPENBLAS
#include <cblas.h>

#include "benchmarks/openblas_core.h"
extern "C" void openblas_set_num_threads(int);
#endif

namespace {

struct Shape {
  int64_t M, N, K;
  bool ta, tb;
  std::string label() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "M%lld_N%lld_K%lld/%c%c", (long long)M, (long long)N,
                  (long long)K, ta ? 'T' : 'N', tb ? 'T' : 'N');
    return buf;
  }
};

// Operands as the model holds them: A is M×K (stored K×M when transposed), B is K×N (stored N×K).
template <class T>
struct Operands {
  std::vector<T> a, b, c;
  explicit Operands(const Shape& s) : a(s.M * s.K), b(s.K * s.N), c(s.M * s.N) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (T& x : a) x = d(rng);
    for (T& x : b) x = d(rng);
  }
};

void set_threads([[maybe_unused]] int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
#if SSM_HAVE_OPENBLAS
  openblas_set_num_threads(n);
#endif
}

void finish(benchmark::State& state, const Shape& s) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(s.M) * double(s.N) * double(s.K) *
                                                     double(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}

template <class T>
void bm_ours(benchmark::State& state, Shape s, int threads) {
  set_threads(threads);
  Operands<T> x(s);
  const int64_t ars = s.ta ? 1 : s.K, acs = s.ta ? s.M : 1;
  const int64_t brs = s.tb ? 1 : s.N, bcs = s.tb ? s.K : 1;
  for (auto _ : state) {
    ssm::cpu::gemm(s.M, s.N, s.K, T(1), x.a.data(), ars, acs, x.b.data(), brs, bcs, T(0),
                   x.c.data(), s.N);
    benchmark::ClobberMemory();
  }
  finish(state, s);
}

#if SSM_HAVE_OPENBLAS
template <class T>
void bm_openblas(benchmark::State& state, Shape s, int threads) {
  set_threads(threads);
  Operands<T> x(s);
  const auto ta = s.ta ? CblasTrans : CblasNoTrans, tb = s.tb ? CblasTrans : CblasNoTrans;
  const int lda = int(s.ta ? s.M : s.K), ldb = int(s.tb ? s.K : s.N);
  for (auto _ : state) {
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, s.M, s.N, s.K, 1.0f, x.a.data(), lda, x.b.data(), ldb,
                  0.0f, x.c.data(), s.N);
    else
      cblas_dgemm(CblasRowMajor, ta, tb, s.M, s.N, s.K, 1.0, x.a.data(), lda, x.b.data(), ldb, 0.0,
                  x.c.data(), s.N);
    benchmark::ClobberMemory();
  }
  finish(state, s);
}
#endif

// Registers ours and OpenBLAS back to back for each shape and thread count, so each pair runs
// close together in time (the machine is shared and noisy).
template <class T>
void register_shape(const Shape& s) {
  for (int threads : {1, 2}) {
    auto add = [&](const char* impl, void (*fn)(benchmark::State&, Shape, int)) {
      char name[160];
      std::snprintf(name, sizeof name, "BM_%cgemm_%s/%s/threads:%d",
                    std::is_same_v<T, float> ? 's' : 'd', impl, s.label().c_str(), threads);
      benchmark::RegisterBenchmark(name, fn, s, threads)
          ->UseRealTime()  // the work runs on the OpenMP / OpenBLAS threads
          ->Unit(benchmark::kMillisecond)
          ->MinWarmUpTime(0.05);  // let the other library's idle threads stop spinning
    };
    add("ours", bm_ours<T>);
#if SSM_HAVE_OPENBLAS
    add("openblas", bm_openblas<T>);
#endif
  }
}

// Console output as usual, plus the GFLOP/s of every run kept for the ratio table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      const std::string name = r.benchmark_name();
      const auto it = r.counters.find("GFLOP/s");
      if (it != r.counters.end()) gflops_[name].push_back(it->second.value);
    }
  }

  // One row per (shape, threads) that has both ours and OpenBLAS: the best GFLOP/s over the
  // repetitions (on a shared machine the best run is the least disturbed one), and the median.
  void print_ratios() const {
    auto best = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::printf("\nGFLOP/s, best of repetitions (median in brackets)\n");
    std::printf("%-42s %16s %16s %7s\n", "shape/threads", "ours", "openblas", "ratio");
    for (const auto& [name, values] : gflops_) {
      const size_t pos = name.find("_ours/");
      if (pos == std::string::npos) continue;
      std::string peer = name;
      peer.replace(pos, 6, "_openblas/");
      const auto it = gflops_.find(peer);
      if (it == gflops_.end()) continue;
      const double ours = best(values), theirs = best(it->second);
      std::string label = name.substr(0, pos) + name.substr(pos + 5);
      label = label.substr(0, label.find("/min_warmup"));  // drop Google Benchmark's suffixes
      std::printf("%-42s %7.1f (%6.1f) %7.1f (%6.1f) %6.0f%%\n", label.c_str(), ours,
                  median(values), theirs, median(it->second), 100.0 * ours / theirs);
    }
  }

 private:
  std::map<std::string, std::vector<double>> gflops_;
};

}  // namespace

int main(int argc, char** argv) {
#if SSM_HAVE_OPENBLAS
  bench::use_best_openblas_kernels(argv);
  std::printf("OpenBLAS %s kernels\n", bench::openblas_core());
#endif
  const Shape shapes[] = {
      {4096, 768, 160, false, false},   // forward Y = X·W
      {4096, 160, 768, false, true},    // dX = dY·Wᵀ
      {160, 768, 4096, true, false},    // dW = Xᵀ·dY
      {4096, 160, 160, false, false},   //
      {4096, 160, 320, false, false},   //
      {512, 512, 512, false, false},    //
      {1024, 1024, 1024, false, false}, //
      {1, 768, 160, false, true},       // decoding, batch 1: y = x·Wᵀ (the few-rows path)
      {4, 768, 160, false, true},       // batch 4: the few-rows path's last row count
      {8, 768, 160, false, true},       // batch 8: the packed path
  };
  for (const Shape& s : shapes) register_shape<float>(s);
  register_shape<double>(shapes[0]);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  return 0;
}
