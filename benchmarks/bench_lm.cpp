// benchmarks/bench_lm.cpp — the whole language model: training-step and decoding throughput, peak
// memory, and CPU model-FLOPs utilisation; the same measurements, presets and flags as the PyTorch
// peer (../shared/ref/peer_bench.py), so the two can run side by side (benchmarks/compare_peer.sh).
//
//   ./build/release/bench_lm [--preset default-1m|default-1m-mamba2|130m | --config config.json]
//       [--device cpu|cuda] [--dtype fp32|bf16] [--threads N] [--batch 16] [--seqlen 256] [--steps 5] [--warmup 2]
//       [--decode-batches 1,16] [--decode-tokens 64] [--scan chunked|reference]
//
// Training step = forward, next-token loss, backward, AdamW (lr 1e-3, weight decay 0.1), zero_grad;
// the median over --steps timed steps. Decoding = greedy steps through ssm::Decoder, --decode-tokens per
// run, the median of 3 runs (on a GPU twice: the step replayed from a CUDA graph, and eager launches).
// Utilisation = 6 · parameters · tokens/s ÷ the GFLOP/s OpenBLAS sgemm reaches on the model's own matmul
// shapes (forward, input-gradient and weight-gradient products of in_proj, out_proj and the head) at the
// same thread count, measured in this run. On a GPU
// (--device cuda) every timed region ends with a device synchronize, peak memory is the caching
// allocator's high-water mark of tensor bytes, and utilisation is against the H100/H200 dense bf16 peak
// (989 TFLOP/s, the figure the official kernels are quoted with) and against the bf16 and fp32 matmul
// throughput measured in the same run on the model's own shapes.
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if SSM_HAVE_OPENBLAS
#include <cblas.h>

#include "benchmarks/openblas_core.h"
extern "C" void openblas_set_num_threads(int);
#endif

#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "nn/gradient_step.h"
#include "nn/optim.h"
#include "ssm/decoder.h"
#include "ssm/lm.h"
#include "tasks/flags.h"
#include "tasks/session.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

using namespace ssm;

namespace {

struct Options {
  std::string preset = "default-1m", config_path, scan = "chunked", device = "cpu", dtype = "fp32";
  int64_t threads = 0, batch = 16, seqlen = 256, steps = 5, warmup = 2, decode_tokens = 64;
  bool eager_step = false;
  std::vector<int64_t> decode_batches;
};

const char* kPresets[][2] = {
    {"default-1m", R"({"d_model": 160, "n_layer": 5, "vocab_size": 256, "ssm_cfg": {"layer": "Mamba3", "d_state": 16,
      "headdim": 16, "is_mimo": true, "mimo_rank": 2, "chunk_size": 32}})"},
    {"default-1m-mamba2", R"({"d_model": 160, "n_layer": 5, "vocab_size": 256, "ssm_cfg": {"layer": "Mamba2",
      "d_state": 16, "headdim": 16, "d_conv": 4, "chunk_size": 32}})"},
    {"130m", R"({"d_model": 768, "n_layer": 24, "vocab_size": 50280, "ssm_cfg": {"layer": "Mamba3", "d_state": 128,
      "headdim": 64, "is_mimo": false, "chunk_size": 64}})"},
};
constexpr double kDenseBf16Flops = 989e12;  // H100 and H200 SXM, dense bf16 tensor cores

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median_seconds(const std::function<void()>& fn, int64_t warmup, int64_t reps) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int64_t i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

Tensor random_tokens(int64_t batch, int64_t L, int64_t vocab, Generator& gen) {
  const auto u = op::uniform({batch * L}, 0, static_cast<double>(vocab), gen, DType::Float64).to_vector<double>();
  std::vector<int64_t> ids(u.begin(), u.end());
  return Tensor::from_vector(ids, {batch, L});
}

// One training step's matmuls of the model's linear layers (in_proj, out_proj, head): for each, the
// forward, input-gradient and weight-gradient products, as C[M,N] = op(A)[M,K] op(B)[K,N].
struct Gemm {
  int64_t M, N, K;
  bool ta, tb;
};
std::vector<Gemm> model_gemms(const LMConfig& c, int64_t tokens) {
  const int64_t d = c.d_model, d_inner = c.mixer.expand * d, V = c.padded_vocab();
  const int64_t heads = d_inner / c.mixer.headdim, R = c.mixer.rank(), GN = c.mixer.ngroups * c.mixer.d_state;
  const int64_t in_proj = c.mixer.kind == MixerKind::Mamba2 ? 2 * d_inner + 2 * GN + heads
                                                             : 2 * d_inner + 2 * GN * R + 3 * heads +
                                                                   c.mixer.num_rope_angles();
  std::vector<Gemm> shapes;
  for (auto [out, in] : {std::pair{in_proj, d}, std::pair{d, d_inner}, std::pair{V, d}}) {
    shapes.push_back({tokens, out, in, false, true});   // y = x Wᵀ
    shapes.push_back({tokens, in, out, false, false});  // dx = dy W
    shapes.push_back({out, in, tokens, true, false});   // dW = dyᵀ x
  }
  return shapes;
}

double flops_of(const std::vector<Gemm>& shapes) {
  double flops = 0;
  for (const Gemm& g : shapes) flops += 2.0 * static_cast<double>(g.M * g.N * g.K);
  return flops;
}

// The GFLOP/s OpenBLAS sgemm reaches on those shapes (the CPU utilisation's denominator).
double openblas_gflops(const std::vector<Gemm>& shapes) {
#if SSM_HAVE_OPENBLAS
  double seconds = 0;
  for (const Gemm& g : shapes) {
    std::vector<float> a(g.M * g.K, 0.5f), b(g.K * g.N, 0.25f), out(g.M * g.N);
    const int lda = static_cast<int>(g.ta ? g.M : g.K), ldb = static_cast<int>(g.tb ? g.K : g.N);
    const auto run = [&] {
      cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans,
                  static_cast<int>(g.M), static_cast<int>(g.N), static_cast<int>(g.K), 1.0f, a.data(), lda, b.data(),
                  ldb, 0.0f, out.data(), static_cast<int>(g.N));
    };
    seconds += median_seconds(run, 2, 7);
  }
  return flops_of(shapes) / seconds / 1e9;
#else
  (void)shapes;
  return 0;
#endif
}

// The GFLOP/s our own op::matmul (cuBLAS on a GPU) reaches on those shapes in `dtype`, transposed
// operands as transposed views, the way the layers call it.
double device_matmul_gflops(const std::vector<Gemm>& shapes, DType dtype, Device device) {
  Backend& backend = backend_for(device);
  double seconds = 0;
  for (const Gemm& g : shapes) {
    const Tensor a = Tensor::full(g.ta ? Shape{g.K, g.M} : Shape{g.M, g.K}, 0.5, dtype, device);
    const Tensor b = Tensor::full(g.tb ? Shape{g.N, g.K} : Shape{g.K, g.N}, 0.25, dtype, device);
    const Tensor lhs = g.ta ? a.transpose(0, 1) : a, rhs = g.tb ? b.transpose(0, 1) : b;
    seconds += median_seconds(
        [&] {
          op::matmul(lhs, rhs);
          backend.synchronize();
        },
        2, 7);
  }
  return flops_of(shapes) / seconds / 1e9;
}

// the most likely token of each row of logits [batch, V]
// Greedy decoding's next tokens, chosen where the logits are: each row's lowest index holding its
// maximum. Only the batch's ids come back to the host, once per token, as a streaming generator needs
// them (copying the [batch, V] logits back and scanning them on the host was 12.9 MB and 3.2M
// comparisons per token at the 130M model's batch 64: more than its decoding step).
class Greedy {
 public:
  Greedy(int64_t vocab, Device device) : vocab_(vocab), index_(column_index(vocab).to(device)) {}

  Tensor next(const Tensor& logits) const {
    const Tensor scores = logits.narrow(1, 0, vocab_);  // past the padding of the vocabulary
    const Tensor at_top = op::where(op::eq(scores, op::max(scores, {1}, /*keepdim=*/true)), index_,
                                    op::scalar_like(index_, static_cast<double>(vocab_)));
    const Tensor ids = op::min(at_top, {1}).to(DType::Int64);
    (void)ids.to_vector<int64_t>();  // the host reads this token's ids: one wait per token
    return ids;
  }

 private:
  static Tensor column_index(int64_t V) {  // [1, V] of 0 .. V−1 (exact in float32 below 2^24)
    std::vector<float> index(static_cast<size_t>(V));
    std::iota(index.begin(), index.end(), 0.0f);
    return Tensor::from_vector(index, {1, V});
  }
  int64_t vocab_;
  Tensor index_;
};

// "1,16" → {1, 16}
std::vector<int64_t> batch_sizes(const std::string& list) {
  std::vector<int64_t> sizes;
  for (size_t at = 0; at < list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const std::string item = list.substr(at, comma - at);
    int64_t n = -1;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), n);
    SSM_CHECK(ec == std::errc() && end == item.data() + item.size() && n >= 0,
              "--decode-batches needs non-negative integers, got '", item, "'");
    sizes.push_back(n);
    at = comma + 1;
  }
  return sizes;
}

// Usage errors exit with status 2, --help with 0.
Options parse(int argc, char** argv) {
  Options o;
  std::string decode_batches = "1,16";
  tasks::FlagParser flags("bench_lm", "[--preset NAME | --config config.json] [options]",
                          "Training-step and decoding tokens/s, peak memory (RSS, or GPU bytes with --device "
                          "cuda) and model-FLOPs utilisation of the LM.");
  flags.option("preset", &o.preset, "NAME",
               "the model: default-1m, default-1m-mamba2, or 130m (the ~130M Mamba-3 of the GPU benchmarks)");
  flags.option("config", &o.config_path, "FILE", "the model from an official config.json instead of a preset");
  flags.option("scan", &o.scan, "PATH", "the scan implementation: chunked or reference");
  flags.option("device", &o.device, "DEV", "cpu or cuda");
  flags.option("dtype", &o.dtype, "TYPE", "fp32, or bf16: the training step's matmuls under bf16 autocast");
  flags.option("threads", &o.threads, "N", "OpenMP and OpenBLAS threads; 0 = OpenMP's default");
  flags.section("training step");
  flags.option("batch", &o.batch, "B", "sequences per step");
  flags.option("seqlen", &o.seqlen, "L", "tokens per sequence");
  flags.option("steps", &o.steps, "N", "timed steps (the median is reported)");
  flags.option("warmup", &o.warmup, "N",
               "untimed steps before them (at least 2 for a step replayed from a CUDA graph: one eager, then "
               "the capture)");
  flags.flag("eager-step", &o.eager_step, "on a GPU, launch the step op by op instead of replaying a CUDA graph");
  flags.section("decoding");
  flags.option("decode-batches", &decode_batches, "LIST", "comma-separated batch sizes, one run each");
  flags.option("decode-tokens", &o.decode_tokens, "N", "tokens per run");
  try {
    if (tasks::parse_tool_flags(flags, argc, argv).help) {
      std::printf("%s", flags.help().c_str());
      std::exit(0);
    }
    const std::pair<const char*, int64_t> counts[] = {{"threads", o.threads}, {"batch", o.batch},
                                                      {"seqlen", o.seqlen},   {"steps", o.steps},
                                                      {"warmup", o.warmup},   {"decode-tokens", o.decode_tokens}};
    for (const auto& [name, value] : counts)
      SSM_CHECK(value >= 0, "--", name, " needs a non-negative integer, got ", value);
    o.decode_batches = batch_sizes(decode_batches);
    SSM_CHECK(o.device == "cpu" || o.device == "cuda", "--device must be cpu or cuda, got '", o.device, "'");
    SSM_CHECK(o.dtype == "fp32" || o.dtype == "bf16", "--dtype must be fp32 or bf16, got '", o.dtype, "'");
    SSM_CHECK(o.steps >= 1 && o.batch >= 1 && o.seqlen >= 2,
              "--steps and --batch must be at least 1 and --seqlen at least 2");
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_lm: %s\n", e.what());
    std::exit(2);
  }
  return o;
}

LMConfig config_of(const Options& o) {
  if (!o.config_path.empty()) return LMConfig::load(o.config_path);
  for (const auto& [name, json] : kPresets)
    if (o.preset == name) return LMConfig::from_json(json, name);
  throw Error("bench_lm: unknown preset '" + o.preset + "' (default-1m, default-1m-mamba2, 130m)");
}

}  // namespace

int main(int argc, char** argv) try {
#if SSM_HAVE_OPENBLAS
  bench::use_best_openblas_kernels(argv);
#endif
  const Options o = parse(argc, argv);
  int threads = 1;
#ifdef _OPENMP
  if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));
  threads = omp_get_max_threads();
#endif
#if SSM_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
#endif
  const LMConfig config = config_of(o);
  const Device device = o.device == "cuda" ? Device::cuda() : Device::cpu();
  Backend& backend = backend_for(device);  // a clear error when the GPU is missing
  Generator gen(0);
  MambaLM model(config, gen);
  model.to(device);
  model.set_scan_path(o.scan == "reference" ? ScanPath::Reference : ScanPath::Chunked);
  const std::string name = o.config_path.empty() ? o.preset : o.config_path;
  const int64_t params = model.num_parameters();

  nn::AdamW optimizer(nn::decay_groups(model.named_parameters(), 0.1), 1e-3);
  const Tensor tokens = random_tokens(o.batch, o.seqlen, config.vocab_size, gen).to(device);
  // Forward and backward, on a GPU replayed from a CUDA graph unless --eager-step (nn/gradient_step.h)
  nn::GradientStep gradient_step(
      model.parameters(), device,
      [&](const std::vector<Tensor>& in) {
        const Tensor loss = [&] {
          const AutocastGuard autocast(o.dtype == "bf16");  // autograd/autocast.h
          return lm_loss(model.forward(in[0]), in[0]);
        }();
        backward(loss);
        return loss;
      },
      !o.eager_step);
  const bool graphed = !device.is_cpu() && !o.eager_step;
  const double step_s = median_seconds(
      [&] {
        (void)gradient_step.run({tokens});
        optimizer.step();
        optimizer.zero_grad();
        backend.synchronize();
      },
      graphed ? std::max<int64_t>(o.warmup, 2) : o.warmup, o.steps);
  const double train_tps = static_cast<double>(o.batch * o.seqlen) / step_s;
  const double model_flops = 6.0 * static_cast<double>(params) * train_tps;
  if (device.is_cpu()) {
    const double gflops = openblas_gflops(model_gemms(config, o.batch * o.seqlen));
    std::printf("[ours] train  %s %lld params  B=%lld L=%lld  %.0f tok/s  (%.1f ms/step)  cpu x%d %s  peak %.0f MiB\n",
                name.c_str(), static_cast<long long>(params), static_cast<long long>(o.batch),
                static_cast<long long>(o.seqlen), train_tps, step_s * 1e3, threads, o.dtype.c_str(), peak_rss_mib());
    if (gflops > 0)
      std::printf("[ours] mfu    %.1f%%  (6 x %lld params x %.0f tok/s / OpenBLAS sgemm %.1f GFLOP/s on the model's shapes, %s kernels)\n",
                  100 * model_flops / (gflops * 1e9), static_cast<long long>(params), train_tps, gflops,
                  bench::openblas_core());
  } else {
    const char* tf32 = std::getenv("SSM_TF32");  // cuda/context.h: TF32 matmuls when set (and not "0")
    const bool tf32_on = tf32 != nullptr && tf32[0] != '\0' && std::string(tf32) != "0";
    std::printf("[ours] train  %s %lld params  B=%lld L=%lld  %.0f tok/s  (%.1f ms/step)  cuda %s%s, %s  peak %.0f MiB\n",
                name.c_str(), static_cast<long long>(params), static_cast<long long>(o.batch),
                static_cast<long long>(o.seqlen), train_tps, step_s * 1e3, o.dtype.c_str(),
                tf32_on ? " (TF32 matmuls)" : "", gradient_step.last_replayed() ? "graph" : "eager",
                static_cast<double>(backend.memory_stats().peak_in_use) / (1 << 20));
    std::printf("[ours] mfu    %.2f%%  (6 x %lld params x %.0f tok/s / 989 TFLOP/s dense bf16)\n",
                100 * model_flops / kDenseBf16Flops, static_cast<long long>(params), train_tps);
    const std::vector<Gemm> gemms = model_gemms(config, o.batch * o.seqlen);
    for (const DType dtype : {DType::BFloat16, DType::Float32}) {
      const double gflops = device_matmul_gflops(gemms, dtype, device);
      std::printf("[ours] mfu    %.2f%%  against %s matmul %.1f TFLOP/s measured on the model's shapes\n",
                  100 * model_flops / (gflops * 1e9), dtype_name(dtype), gflops / 1e3);
    }
  }

  NoGradGuard no_grad;
  // On a GPU, decoding replays a captured step (ssm/decoder.h); the eager figure beside it is the same
  // steps launched op by op. The first step (and the capture) is outside the timed runs.
  const std::vector<bool> graph_modes = device.is_cpu() ? std::vector<bool>{false} : std::vector<bool>{true, false};
  const Greedy greedy(config.vocab_size, device);
  for (const int64_t batch : o.decode_batches) {
    if (batch <= 0) continue;
    for (const bool graphed : graph_modes) {
      Decoder decoder(model, batch, graphed);
      Tensor token = Tensor::zeros({batch}, DType::Int64);
      token = greedy.next(decoder.step(token));
      const double decode_s = median_seconds(
          [&] {
            for (int64_t t = 0; t < o.decode_tokens; ++t) token = greedy.next(decoder.step(token));
          },
          1, 3);
      std::printf("[ours] decode %s B=%lld  %.0f tok/s  (%.3f ms/token)%s\n", name.c_str(),
                  static_cast<long long>(batch), static_cast<double>(batch * o.decode_tokens) / decode_s,
                  1e3 * decode_s / static_cast<double>(o.decode_tokens),
                  device.is_cpu() ? "" : graphed ? "  cuda graph" : "  eager launches");
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_lm: %s\n", e.what());
  return 1;
}
