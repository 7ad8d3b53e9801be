// benchmarks/bench_ssd_scan.cpp — the two scans, forward+backward, batch 1: the Mamba-2 SSD scan and the
// Mamba-3 scan.
//   CPU, at the ~1M model's head sizes (H 20, P 16, N 16, G 1; Mamba-3 MIMO rank 2): the chunked fast
//   path vs the sequential reference at L 256 .. 8192 (the chunked cost should grow linearly in L), at
//   chunk sizes 32, 64 and 128 (second argument) to pick the default. On a CPU with AVX-512 the fast
//   path runs these heads as the recurrence in registers (ssm/ssd_recurrent_core.h), where the chunk
//   size only sets how often a state is stored; elsewhere as the chunked GEMMs.
//   GPU (cuda/... rows; they report an error and skip without a GPU): the chunked scans at L 2K .. 16K
//   for the ~1M heads and for the 130M model's heads (H 24, P 64, N 128, SISO, chunk 64); every
//   iteration ends with a device synchronize. The train_shape rows run one layer's scan at bench_lm's
//   training shapes (batch 16 and 128 × 256; batch 8 × 2048); the CPU row runs the ~1M model's (16 × 256).
//   OMP_NUM_THREADS=1 ./build/release/bench_ssd_scan --benchmark_min_time=0.2
//   ./build/gpu/bench_ssd_scan --benchmark_filter=cuda
#include <benchmark/benchmark.h>

#include "autograd/functions.h"
#include "ssm/mamba3_scan.h"
#include "tensor/backend.h"
#include "tensor/random.h"

using namespace ssm;

namespace {

struct Heads {
  int64_t H, P, N, R;  // heads, head dim, state size, Mamba-3 rank
};
constexpr Heads kSmallHeads{20, 16, 16, 2};   // the ~1M default model
constexpr Heads kLargeHeads{24, 64, 128, 1};  // the 130M preset (SISO)

enum class Path { Reference, Chunked };

// False (and the row reports why) when `device` is not usable here.
bool device_ready(benchmark::State& state, Device device) {
  if (device_available(device)) return true;
  state.SkipWithError("no CUDA device on this machine (or a build without CUDA)");
  return false;
}

// Runs the scan `body` (which builds the graph and calls backward) once per iteration on `device`.
template <class Body>
void run_scan(benchmark::State& state, Device device, int64_t batch, int64_t L, Body body) {
  Backend& backend = backend_for(device);
  for (auto _ : state) {
    body();
    backend.synchronize();
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(batch * L * state.iterations()), benchmark::Counter::kIsRate);
}

Tensor leaf(const Tensor& t, Device device) { return t.to(device).set_requires_grad(true); }

// Arguments: L and (chunked) the chunk size.
void ssd_scan_fwd_bwd(benchmark::State& state, Path path, Heads heads, Device device, int64_t batch) {
  const int64_t L = state.range(0), chunk = path == Path::Chunked ? state.range(1) : 0;
  const auto [H, P, N, R] = heads;
  (void)R;
  if (!device_ready(state, device)) return;
  Generator gen(0);
  const Tensor x = leaf(op::normal({batch, L, H, P}, 0, 1, gen), device);
  const Tensor dt = leaf(op::uniform({batch, L, H}, 0.001, 0.1, gen), device);
  const Tensor A = leaf(op::uniform({H}, -8, -1, gen), device);
  const Tensor B = leaf(op::normal({batch, L, 1, N}, 0, 1, gen), device);
  const Tensor C = leaf(op::normal({batch, L, 1, N}, 0, 1, gen), device);
  const Tensor D = leaf(op::normal({H}, 0, 1, gen), device);
  run_scan(state, device, batch, L, [&] {
    const ScanOutput out = path == Path::Chunked ? ssd_scan_chunked(x, dt, A, B, C, D, Tensor(), chunk)
                                                 : ssd_scan_reference(x, dt, A, B, C, D, Tensor());
    backward(sum(out.y));
    for (const Tensor& t : {x, dt, A, B, C, D}) t.set_grad(Tensor());
  });
}

void mamba3_scan_fwd_bwd(benchmark::State& state, Path path, Heads heads, Device device, int64_t batch) {
  const int64_t L = state.range(0), chunk = path == Path::Chunked ? state.range(1) : 0;
  const auto [H, P, N, R] = heads;
  if (!device_ready(state, device)) return;
  Generator gen(0);
  const Tensor q = leaf(op::normal({batch, L, R, H, N}, 0, 1, gen), device);
  const Tensor k = leaf(op::normal({batch, L, R, H, N}, 0, 1, gen), device);
  const Tensor v = leaf(op::normal({batch, L, R, H, P}, 0, 1, gen), device);
  const Tensor adt = leaf(op::uniform({batch, L, H}, -0.5, -0.001, gen), device);
  const Tensor gamma = leaf(op::uniform({batch, L, H}, 0.001, 0.1, gen), device);
  const Tensor eta = leaf(op::uniform({batch, L, H}, 0.001, 0.1, gen), device);
  run_scan(state, device, batch, L, [&] {
    const ScanOutput out = path == Path::Chunked
                               ? mamba3_scan_chunked(q, k, v, adt, gamma, eta, Tensor(), Tensor(), Tensor(), chunk)
                               : mamba3_scan_reference(q, k, v, adt, gamma, eta);
    backward(sum(out.y));
    for (const Tensor& t : {q, k, v, adt, gamma, eta}) t.set_grad(Tensor());
  });
}

const Device kCpu = Device::cpu(), kCuda = Device::cuda();

}  // namespace

BENCHMARK_CAPTURE(ssd_scan_fwd_bwd, reference, Path::Reference, kSmallHeads, kCpu, 1)
    ->Name("ssd_scan_reference/fwd_bwd")
    ->ArgNames({"L"})
    ->ArgsProduct({{256, 1024, 4096, 8192}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(ssd_scan_fwd_bwd, chunked, Path::Chunked, kSmallHeads, kCpu, 1)
    ->Name("ssd_scan_chunked/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->ArgsProduct({{256, 1024, 4096, 8192}, {32, 64, 128}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mamba3_scan_fwd_bwd, reference, Path::Reference, kSmallHeads, kCpu, 1)
    ->Name("mamba3_scan_reference/fwd_bwd")
    ->ArgNames({"L"})
    ->ArgsProduct({{256, 1024, 4096, 8192}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mamba3_scan_fwd_bwd, chunked, Path::Chunked, kSmallHeads, kCpu, 1)
    ->Name("mamba3_scan_chunked/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->ArgsProduct({{256, 1024, 4096, 8192}, {32, 64}})
    ->Unit(benchmark::kMillisecond);

// On the GPU: L 2K .. 16K, the ~1M heads at chunk 32 and the 130M heads at chunk 64.
BENCHMARK_CAPTURE(ssd_scan_fwd_bwd, cuda_small, Path::Chunked, kSmallHeads, kCuda, 1)
    ->Name("cuda/ssd_scan_chunked/heads_1m/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->ArgsProduct({{2048, 4096, 8192, 16384}, {32}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(ssd_scan_fwd_bwd, cuda_large, Path::Chunked, kLargeHeads, kCuda, 1)
    ->Name("cuda/ssd_scan_chunked/heads_130m/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->ArgsProduct({{2048, 4096, 8192, 16384}, {64}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mamba3_scan_fwd_bwd, cuda_small, Path::Chunked, kSmallHeads, kCuda, 1)
    ->Name("cuda/mamba3_scan_chunked/heads_1m/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->ArgsProduct({{2048, 4096, 8192, 16384}, {32}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mamba3_scan_fwd_bwd, cuda_large, Path::Chunked, kLargeHeads, kCuda, 1)
    ->Name("cuda/mamba3_scan_chunked/heads_130m/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->ArgsProduct({{2048, 4096, 8192, 16384}, {64}})
    ->Unit(benchmark::kMillisecond);
// The training shapes of bench_lm (one layer's scan; the model has 5 and 24 layers): what share of a
// training step the scan takes.
BENCHMARK_CAPTURE(mamba3_scan_fwd_bwd, cpu_train_1m_b16, Path::Chunked, kSmallHeads, kCpu, 16)
    ->Name("mamba3_scan_chunked/heads_1m/batch_16/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->Args({256, 32})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mamba3_scan_fwd_bwd, cuda_train_1m_b16, Path::Chunked, kSmallHeads, kCuda, 16)
    ->Name("cuda/mamba3_scan_chunked/heads_1m/batch_16/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->Args({256, 32})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mamba3_scan_fwd_bwd, cuda_train_1m_b128, Path::Chunked, kSmallHeads, kCuda, 128)
    ->Name("cuda/mamba3_scan_chunked/heads_1m/batch_128/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->Args({256, 32})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(mamba3_scan_fwd_bwd, cuda_train_130m, Path::Chunked, kLargeHeads, kCuda, 8)
    ->Name("cuda/mamba3_scan_chunked/heads_130m/batch_8/fwd_bwd")
    ->ArgNames({"L", "chunk"})
    ->Args({2048, 64})
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
