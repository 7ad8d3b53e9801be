// Benchmarks for the nn layers at the ~1M model's training shapes (spec, "default-1m"):
// batch 16 × length 256 = 4096 tokens, d_model 160, d_inner 320, in_proj 160→768, vocab 256,
// Mamba-3's fused rates, angle steps, keys, values and output gate at the default mixer's shapes, plus one
// AdamW step over the model's 928,680 parameters laid out as its 62 tensors.
//
// Each layer benchmark is forward only (`fwd`) or forward + backward (`fwd_bwd`, the gradient of
// every input that needs one, as in training), with a tokens/s counter. Threads: whatever
// OpenMP gets from OMP_NUM_THREADS (reported as the `threads` counter).
//
//   OMP_NUM_THREADS=2 ./build/bench_nn --benchmark_min_time=0.1
#include <benchmark/benchmark.h>

#include <functional>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "autograd/functions.h"
#include "nn/functional.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "ssm/mamba3_angles.h"
#include "ssm/mamba3_keys.h"
#include "ssm/mamba3_output.h"
#include "ssm/mamba3_rates.h"
#include "ssm/mamba3_values.h"
#include "tensor/random.h"

namespace {

using namespace ssm;

constexpr int64_t kBatch = 16, kLen = 256, kTokens = kBatch * kLen, kDModel = 160, kVocab = 256;

int threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

Tensor input(const Shape& shape, Generator& gen, bool requires_grad) {
  Tensor t = op::uniform(shape, -1.0, 1.0, gen);
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

// Times `forward` (and, with backward, backward(out, dy) with a fixed dy) over the leaves.
void run(benchmark::State& state, bool with_backward, const std::vector<Tensor>& leaves,
         const std::function<Tensor()>& forward) {
  Tensor dy;
  {
    const Tensor probe = forward();
    Generator gen(7);
    if (probe.numel() > 1) dy = op::uniform(probe.shape(), -1.0, 1.0, gen);
  }
  for (auto _ : state) {
    for (const Tensor& t : leaves) t.set_grad(Tensor());
    if (with_backward) {
      const Tensor out = forward();
      backward(out, dy);
    } else {
      NoGradGuard no_grad;
      benchmark::DoNotOptimize(forward());
    }
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(kTokens * state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["threads"] = threads();
}

void BM_Linear(benchmark::State& state, int64_t in, int64_t out, bool with_backward) {
  Generator gen(1);
  nn::Linear lin(in, out, false, gen);
  const Tensor x = input({kBatch, kLen, in}, gen, true);
  run(state, with_backward, {x, lin.weight}, [&] { return lin.forward(x); });
}

void BM_RMSNorm(benchmark::State& state, bool with_backward) {
  Generator gen(2);
  nn::RMSNorm norm(kDModel);
  const Tensor x = input({kBatch, kLen, kDModel}, gen, true);
  run(state, with_backward, {x, norm.weight}, [&] { return norm.forward(x); });
}

void BM_GatedRMSNorm(benchmark::State& state, bool with_backward) {
  Generator gen(3);
  const int64_t d_inner = 320;
  nn::GatedRMSNorm norm(d_inner, 1e-5, d_inner, false);
  const Tensor x = input({kBatch, kLen, d_inner}, gen, true);
  const Tensor z = input({kBatch, kLen, d_inner}, gen, true);
  run(state, with_backward, {x, z, norm.weight}, [&] { return norm.forward(x, z); });
}

// Mamba-2's conv (conv_dim = d_inner + 2·N = 352 at the default-1m-mamba2 shapes), alone or with its SiLU
void BM_CausalConv1d(benchmark::State& state, bool with_silu, bool with_backward) {
  Generator gen(4);
  const int64_t C = 352, K = 4;
  nn::CausalConv1d conv(C, K, true, gen);
  const Tensor x = input({kBatch, kLen, C}, gen, true);
  run(state, with_backward, {x, conv.weight, conv.bias}, [&] { return conv.forward(x, with_silu); });
}

void BM_CrossEntropy(benchmark::State& state, bool with_backward) {
  Generator gen(5);
  const Tensor logits = input({kTokens, kVocab}, gen, true);
  std::vector<int64_t> ids(kTokens);
  for (auto& id : ids) id = static_cast<int64_t>(gen.next_u64() % kVocab);
  const Tensor targets = Tensor::from_vector<int64_t>(ids, {kTokens});
  run(state, with_backward, {logits}, [&] { return nn::cross_entropy(logits, targets); });
}

void BM_Embedding(benchmark::State& state, bool with_backward) {
  Generator gen(6);
  nn::Embedding emb(kVocab, kDModel, gen);
  std::vector<int64_t> ids(kTokens);
  for (auto& id : ids) id = static_cast<int64_t>(gen.next_u64() % kVocab);
  const Tensor tokens = Tensor::from_vector<int64_t>(ids, {kBatch, kLen});
  run(state, with_backward, {emb.weight}, [&] { return emb.forward(tokens); });
}

// Mamba-3's fused ops at the default-1m mixer's shapes (MIMO: H 20 heads, R 2, N = P = 16, one group,
// S 4 rotated pairs): the keys (or queries) from in_proj's B slice, the values' rank up-projection,
// and the output gate.
constexpr int64_t kHeads = 20, kRank = 2, kState = 16, kHeadDim = 16, kAngles = 4;

void BM_Mamba3Keys(benchmark::State& state, bool with_backward) {
  Generator gen(10);
  const Tensor raw = input({kBatch, kLen, kRank * kState}, gen, true);
  const Tensor weight = input({kState}, gen, true), bias = input({kHeads, kRank, kState}, gen, true);
  const Tensor theta = input({kBatch, kLen, kHeads, kAngles}, gen, true);
  run(state, with_backward, {raw, weight, bias, theta},
      [&] { return mamba3_keys(raw, weight, bias, theta, RotaryPairing::HalfSplit, 1e-5); });
}

// A, DT, γ, η from in_proj's dd_dt, dd_A, trap columns (read in place), as Mamba3::forward calls it
void BM_Mamba3Rates(benchmark::State& state, bool with_backward) {
  Generator gen(13);
  const Tensor columns = input({kBatch, kLen, 3 * kHeads}, gen, true), dt_bias = input({kHeads}, gen, true);
  run(state, with_backward, {columns, dt_bias}, [&] {
    const auto c = split(columns, {kHeads, kHeads, kHeads}, -1);
    const Mamba3Rates r = mamba3_rates(c[0], c[1], c[2], dt_bias, 1e-4);
    return r.adt + r.gamma + r.eta + r.DT;  // every output gets a gradient
  });
}

// ω = π·tanh(ang)·DT from DT and in_proj's angle columns (read in place), as Mamba3::forward calls it
void BM_Mamba3AngleSteps(benchmark::State& state, bool with_backward) {
  Generator gen(14);
  const Tensor DT = input({kBatch, kLen, kHeads}, gen, true), columns = input({kBatch, kLen, kAngles + 3}, gen, true);
  run(state, with_backward, {DT, columns}, [&] { return mamba3_angle_steps(DT, narrow(columns, 2, 3, kAngles)); });
}

void BM_Mamba3Values(benchmark::State& state, bool with_backward) {
  Generator gen(12);
  const Tensor x = input({kBatch, kLen, kHeads, kHeadDim}, gen, true), psi = input({kHeads, kRank, kHeadDim}, gen, true);
  run(state, with_backward, {x, psi}, [&] { return mamba3_values(x, psi); });
}

void BM_Mamba3OutputGate(benchmark::State& state, bool with_backward) {
  Generator gen(11);
  const Tensor y = input({kBatch, kLen, kRank, kHeads, kHeadDim}, gen, true);
  const Tensor x = input({kBatch, kLen, kHeads, kHeadDim}, gen, true), z = input({kBatch, kLen, kHeads, kHeadDim}, gen, true);
  const Tensor D = input({kHeads}, gen, true);
  const Tensor psi = input({kHeads, kRank, kHeadDim}, gen, true), zeta = input({kHeads, kRank, kHeadDim}, gen, true),
               phi = input({kHeads, kRank, kHeadDim}, gen, true);
  run(state, with_backward, {y, x, z, D, psi, zeta, phi}, [&] { return mamba3_output_gate(y, x, z, D, psi, zeta, phi); });
}

// The default-1m model's parameters (spec, "Mamba-3 MIMO" table): 5 layers × 12 tensors, the
// embedding and norm_f — 928,680 in all.
nn::NamedParameters model_parameters(Generator& gen) {
  nn::NamedParameters out;
  auto add = [&](const std::string& name, const Shape& shape) {
    Tensor t = op::uniform(shape, -0.1, 0.1, gen);
    t.set_requires_grad(true);
    t.set_grad(op::uniform(shape, -1e-2, 1e-2, gen));
    out.emplace_back(name, t);
  };
  add("backbone.embedding.weight", {kVocab, kDModel});
  for (int l = 0; l < 5; ++l) {
    const std::string p = "backbone.layers." + std::to_string(l) + ".";
    add(p + "norm.weight", {160});
    add(p + "mixer.dt_bias", {20});
    for (const char* n : {"B_bias", "C_bias", "mimo_x", "mimo_z", "mimo_o"}) add(p + "mixer." + n, {20, 2, 16});
    add(p + "mixer.D", {20});
    add(p + "mixer.in_proj.weight", {768, 160});
    add(p + "mixer.B_norm.weight", {16});
    add(p + "mixer.C_norm.weight", {16});
    add(p + "mixer.out_proj.weight", {160, 320});
  }
  add("backbone.norm_f.weight", {160});
  return out;
}

void BM_AdamWStep(benchmark::State& state) {
  Generator gen(8);
  const nn::NamedParameters params = model_parameters(gen);
  int64_t count = 0;
  for (const auto& [_, p] : params) count += p.numel();
  nn::AdamW opt(nn::decay_groups(params, 0.1), 2e-3, 0.9, 0.95);
  opt.step();  // allocate the moments outside the timed loop
  for (auto _ : state) opt.step();
  state.counters["params"] = static_cast<double>(count);
  state.counters["tensors"] = static_cast<double>(params.size());
  state.counters["params/s"] =
      benchmark::Counter(static_cast<double>(count * state.iterations()), benchmark::Counter::kIsRate);
  state.counters["threads"] = threads();
}

void BM_ClipGradNorm(benchmark::State& state) {
  Generator gen(9);
  const nn::NamedParameters params = model_parameters(gen);
  std::vector<Tensor> ps;
  int64_t count = 0;
  for (const auto& [_, p] : params) {
    ps.push_back(p);
    count += p.numel();
  }
  for (auto _ : state) benchmark::DoNotOptimize(nn::clip_grad_norm(ps, 1e9));  // measure, never scale
  state.counters["params/s"] =
      benchmark::Counter(static_cast<double>(count * state.iterations()), benchmark::Counter::kIsRate);
}

void register_all() {
  for (const bool bwd : {false, true}) {
    const std::string suffix = bwd ? "/fwd_bwd" : "/fwd";
    benchmark::RegisterBenchmark(("Linear_160x768_in_proj" + suffix).c_str(), BM_Linear, 160, 768, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("Linear_320x160_out_proj" + suffix).c_str(), BM_Linear, 320, 160, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("RMSNorm_160" + suffix).c_str(), BM_RMSNorm, bwd)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("GatedRMSNorm_320" + suffix).c_str(), BM_GatedRMSNorm, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("CausalConv1d_C352_K4" + suffix).c_str(), BM_CausalConv1d, false, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("CausalConv1dSiLU_C352_K4" + suffix).c_str(), BM_CausalConv1d, true, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("Mamba3Rates_MIMO" + suffix).c_str(), BM_Mamba3Rates, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("Mamba3AngleSteps_MIMO" + suffix).c_str(), BM_Mamba3AngleSteps, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("CrossEntropy_4096x256" + suffix).c_str(), BM_CrossEntropy, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("Embedding_256x160" + suffix).c_str(), BM_Embedding, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("Mamba3Keys_MIMO" + suffix).c_str(), BM_Mamba3Keys, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("Mamba3Values_MIMO" + suffix).c_str(), BM_Mamba3Values, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("Mamba3OutputGate_MIMO" + suffix).c_str(), BM_Mamba3OutputGate, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  benchmark::RegisterBenchmark("AdamW_step_928680_params", BM_AdamWStep)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("ClipGradNorm_928680_params", BM_ClipGradNorm)->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
