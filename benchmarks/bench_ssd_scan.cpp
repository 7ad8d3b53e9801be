// benchmarks/bench_ssd_scan.cpp — the two scans, chunked fast path vs sequential reference,
// forward+backward, at the ~1M model's head sizes (H 20, P 16, N 16, G 1), batch 1: the Mamba-2 SSD
// scan, and the Mamba-3 scan at MIMO rank 2 (the default model's).
// Tokens/s is reported per L (256 .. 8192); the chunked cost should grow linearly in L. The chunked
// scans run at chunk sizes 32, 64 and 128 (second argument) to pick the default.
//   OMP_NUM_THREADS=1 ./build/release/bench_ssd_scan --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include "autograd/functions.h"
#include "ssm/mamba3_scan.h"
#include "tensor/random.h"

using namespace ssm;

namespace {

constexpr int64_t kHeads = 20, kHeadDim = 16, kState = 16;

template <bool Chunked>
void BM_ssd_scan_fwd_bwd(benchmark::State& state) {
  const int64_t L = state.range(0), chunk = Chunked ? state.range(1) : 0;
  Generator gen(0);
  const Tensor x = op::normal({1, L, kHeads, kHeadDim}, 0, 1, gen).set_requires_grad(true);
  const Tensor dt = op::uniform({1, L, kHeads}, 0.001, 0.1, gen).set_requires_grad(true);
  const Tensor A = op::uniform({kHeads}, -8, -1, gen).set_requires_grad(true);
  const Tensor B = op::normal({1, L, 1, kState}, 0, 1, gen).set_requires_grad(true);
  const Tensor C = op::normal({1, L, 1, kState}, 0, 1, gen).set_requires_grad(true);
  const Tensor D = op::normal({kHeads}, 0, 1, gen).set_requires_grad(true);
  for (auto _ : state) {
    const ScanOutput out = Chunked ? ssd_scan_chunked(x, dt, A, B, C, D, Tensor(), chunk)
                                   : ssd_scan_reference(x, dt, A, B, C, D, Tensor());
    backward(sum(out.y));
    for (const Tensor& t : {x, dt, A, B, C, D}) t.set_grad(Tensor());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(L * state.iterations()), benchmark::Counter::kIsRate);
}

constexpr int64_t kRank = 2;

template <bool Chunked>
void BM_mamba3_scan_fwd_bwd(benchmark::State& state) {
  const int64_t L = state.range(0), chunk = Chunked ? state.range(1) : 0;
  Generator gen(0);
  const Tensor q = op::normal({1, L, kRank, kHeads, kState}, 0, 1, gen).set_requires_grad(true);
  const Tensor k = op::normal({1, L, kRank, kHeads, kState}, 0, 1, gen).set_requires_grad(true);
  const Tensor v = op::normal({1, L, kRank, kHeads, kHeadDim}, 0, 1, gen).set_requires_grad(true);
  const Tensor adt = op::uniform({1, L, kHeads}, -0.5, -0.001, gen).set_requires_grad(true);
  const Tensor gamma = op::uniform({1, L, kHeads}, 0.001, 0.1, gen).set_requires_grad(true);
  const Tensor eta = op::uniform({1, L, kHeads}, 0.001, 0.1, gen).set_requires_grad(true);
  for (auto _ : state) {
    const ScanOutput out = Chunked ? mamba3_scan_chunked(q, k, v, adt, gamma, eta, Tensor(), Tensor(), Tensor(), chunk)
                                   : mamba3_scan_reference(q, k, v, adt, gamma, eta);
    backward(sum(out.y));
    for (const Tensor& t : {q, k, v, adt, gamma, eta}) t.set_grad(Tensor());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(L * state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_ssd_scan_fwd_bwd<false>)
    ->Name("ssd_scan_reference/fwd_bwd")
    ->ArgNames({"L"})
    ->ArgsProduct({{256, 1024, 4096, 8192}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ssd_scan_fwd_bwd<true>)
    ->Name("ssd_scan_chunked/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->ArgsProduct({{256, 1024, 4096, 8192}, {32, 64, 128}})
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_mamba3_scan_fwd_bwd<false>)
    ->Name("mamba3_scan_reference/fwd_bwd")
    ->ArgNames({"L"})
    ->ArgsProduct({{256, 1024, 4096, 8192}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_mamba3_scan_fwd_bwd<true>)
    ->Name("mamba3_scan_chunked/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->ArgsProduct({{256, 1024, 4096, 8192}, {32, 64}})
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
