// tests/test_cuda_models.cpp — whole models on the GPU against the same models on the CPU (the CPU path is
// the reference): logits and every parameter's gradient, decoding one token at a time equals the full
// forward on the GPU, the parity cases of ../shared/parity run on the GPU in float32, and a short
// training run from one seed gives the same loss curve on both devices. Without a GPU every test here
// skips, saying so.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "cuda_test_helpers.h"
#include "model_test_helpers.h"
#include "nn/optim.h"
#include "ssm/decoder.h"
#include "ssm/lm.h"
#include "ssm/parity.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;
namespace fs = std::filesystem;

namespace {


Tensor on_host(const Tensor& t) { return t.to(Device::cpu()); }
double max_abs(const Tensor& t) { return op::max(op::abs(on_host(t))).item<double>(); }
double host_diff(const Tensor& a, const Tensor& b) { return max_abs_diff(on_host(a), on_host(b)); }

// The same (perturbed) model twice: one stays on the host, one moves to the GPU.
struct ModelPair {
  std::unique_ptr<MambaLM> cpu_model, gpu_model;
  ModelPair(const char* json, uint64_t seed) : cpu_model(make(json, seed)), gpu_model(make(json, seed)) {
    gpu_model->to(Device::cuda());
  }
  MambaLM& cpu() { return *cpu_model; }
  MambaLM& gpu() { return *gpu_model; }
  static std::unique_ptr<MambaLM> make(const char* json, uint64_t seed) {
    Generator gen(seed);
    auto model = std::make_unique<MambaLM>(LMConfig::from_json(json), gen);
    perturb(*model, gen);
    return model;
  }
};

}  // namespace

class CudaModelVariants : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  }
};
class CudaDecoding : public CudaTest {};

// Forward and backward of the whole language model: logits, loss and every gradient equal the CPU's.
TEST_P(CudaModelVariants, LogitsAndGradientsMatchTheCpu) {
  ModelPair models(GetParam().json, 21);
  Generator gen(22);
  const Tensor tokens = random_tokens(3, 37, 30, gen);  // several chunks, the last one short
  std::vector<Tensor> logits, losses;
  for (MambaLM* model : {&models.cpu(), &models.gpu()}) {
    const Tensor out = model->forward(tokens);
    const Tensor loss = lm_loss(out, tokens);
    backward(loss);
    logits.push_back(out.detach());
    losses.push_back(loss.detach());
  }
  EXPECT_EQ(logits[1].device(), Device::cuda());
  EXPECT_LT(host_diff(logits[0], logits[1]), 1e-5 * max_abs(logits[0]));
  EXPECT_NEAR(on_host(losses[0]).item<double>(), on_host(losses[1]).item<double>(), 1e-5);
  const auto cpu_params = models.cpu().named_parameters(), gpu_params = models.gpu().named_parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const Tensor &expected = cpu_params[i].second.grad(), &got = gpu_params[i].second.grad();
    ASSERT_TRUE(got.defined()) << cpu_params[i].first;
    EXPECT_EQ(got.device(), Device::cuda()) << cpu_params[i].first;
    EXPECT_LE(host_diff(expected, got), 1e-4 * max_abs(expected) + 1e-7) << cpu_params[i].first;
  }
}

// Spec §2.5, §3.9 on the GPU: prefill then one token at a time equals the full forward, both with the
// step captured into a CUDA graph and replayed (ssm/decoder.h) and stepping eagerly. Graphed, the memory
// in use stays what it was after the first step.
namespace {
void expect_decoding_equals_the_full_forward(const char* json) {
  ModelPair models(json, 23);
  const MambaLM& model = models.gpu();
  Generator gen(24);
  const int64_t L = 11;
  const Tensor tokens = random_tokens(2, L, 30, gen);
  NoGradGuard no_grad;
  const Tensor full = model.forward(tokens);
  Backend& backend = backend_for(Device::cuda());
  for (bool graphed : {true, false})
    for (int64_t split : {0, 1, 6}) {
      SCOPED_TRACE(std::string(graphed ? "graphed" : "eager") + ", prefill " + std::to_string(split));
      Decoder decoder(model, 2, graphed);
      std::vector<Tensor> outputs;
      if (split > 0) outputs.push_back(on_host(decoder.prefill(tokens.narrow(1, 0, split).contiguous())));
      size_t in_use_after_first_step = 0;
      for (int64_t t = split; t < L; ++t) {
        const Tensor logits = decoder.step(tokens.select(1, t).contiguous());
        EXPECT_EQ(logits.device(), Device::cuda());
        outputs.push_back(on_host(logits).unsqueeze(1));  // host copies: the device's memory is what is measured
        const size_t in_use = backend.memory_stats().in_use;
        if (t == split) in_use_after_first_step = in_use;
        if (graphed) {
          EXPECT_EQ(in_use, in_use_after_first_step) << "step " << t;
        }
      }
      EXPECT_EQ(decoder.graphed(), graphed);
      EXPECT_LT(host_diff(op::cat(outputs, 1), full), 2e-5 * max_abs(full));
    }
}
}  // namespace

TEST_P(CudaModelVariants, DecodingStepByStepEqualsTheFullForward) {
  expect_decoding_equals_the_full_forward(GetParam().json);
}

// The decoding step kernel (cuda/mamba3_step.cu) at heads larger than the variants': 8 warps that each
// take their rows in two rounds (P = 64, and P = 48 whose second round runs past the last row), a lane
// holding 8 slots of a row (d_state 160 and 136, not multiples of 32), MIMO, the output-projection norm.
TEST_F(CudaDecoding, StepKernelAtLargeHeadsEqualsTheFullForward) {
  for (const char* json :
       {R"({"d_model": 32, "n_layer": 1, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3", "d_state": 160,
            "headdim": 64, "chunk_size": 4}})",
        R"({"d_model": 48, "n_layer": 1, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3", "d_state": 136,
            "headdim": 48, "is_mimo": true, "mimo_rank": 2, "chunk_size": 4}})",
        R"({"d_model": 48, "n_layer": 1, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3", "d_state": 136,
            "headdim": 48, "is_mimo": true, "mimo_rank": 3, "is_outproj_norm": true, "chunk_size": 4}})"}) {
    SCOPED_TRACE(json);
    expect_decoding_equals_the_full_forward(json);
  }
}

// Mamba-2's decoding step kernels (cuda/mamba2_step.cu) at a head wider than a warp's lanes: d_state 136
// (each lane walks five entries of a state row, the last round partly idle), P = 64, three groups of
// heads reading their own B and C, a conv of width 3.
TEST_F(CudaDecoding, Mamba2StepKernelsAtLargeHeadsEqualTheFullForward) {
  expect_decoding_equals_the_full_forward(
      R"({"d_model": 96, "n_layer": 1, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba2", "d_state": 136,
          "headdim": 64, "ngroups": 3, "d_conv": 3, "chunk_size": 4}})");
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaModelVariants, ::testing::ValuesIn(kVariants), variant_test_name);

class CudaParity : public CudaTest {};
class CudaTraining : public CudaTest {};

// The parity cases (an independent PyTorch implementation of the official math) on the GPU in float32:
// logits, loss, every gradient and the decoded logits within 1e-4 relative.
TEST_F(CudaParity, EveryCaseMatchesTheReferenceImplementationOnTheGpu) {
  const fs::path parity = parity_root();
  if (!fs::is_directory(parity)) GTEST_SKIP() << "no parity folder at " << parity;
  const std::vector<std::string> cases = parity_case_dirs(parity);
  EXPECT_GE(cases.size(), 4u) << "expected the four parity cases in " << parity;
  for (const std::string& dir : cases) {
    ParityOptions options;
    options.device = Device::cuda();
    const ParityReport report = run_parity_case(dir, options);
    EXPECT_TRUE(report.ok()) << report.table();
  }
}

// A short AdamW run from one seed on each device (same data, gradient clipping on): the loss curves
// agree step by step, and the trained weights too. AdamW moves a weight by about lr per step however
// small its gradient (m̂/√v̂ is near ±1 from the first step), so where a gradient is near zero the two
// devices' rounding (different summation orders, ~1e-7 relative) can set it a visible fraction of a step
// apart: the weights may differ by 5% of one step's lr beyond the relative tolerance. A wrong gradient
// moves weights whole steps apart, and the loss curves' 1e-4 still hold everything else.
TEST_F(CudaTraining, ShortRunLossCurvesAgreeWithTheCpu) {
  constexpr double kLr = 3e-3;
  for (const Variant& variant : {kVariants[0], kVariants[3]}) {  // Mamba-2 and Mamba-3 MIMO
    SCOPED_TRACE(variant.name);
    ModelPair models(variant.json, 25);
    std::vector<std::vector<double>> curves;
    for (MambaLM* model : {&models.cpu(), &models.gpu()}) {
      nn::AdamW optimizer(nn::decay_groups(model->named_parameters(), 0.1), kLr);
      Generator data(26);
      const Tensor tokens = random_tokens(4, 24, 30, data);  // one batch, learned by heart
      curves.emplace_back();
      for (int step = 0; step < 8; ++step) {
        optimizer.zero_grad();
        const Tensor loss = lm_loss(model->forward(tokens), tokens);
        backward(loss);
        nn::clip_grad_norm(model->parameters(), 1.0);
        optimizer.step();
        curves.back().push_back(on_host(loss).item<double>());
      }
    }
    for (size_t step = 0; step < curves[0].size(); ++step)
      EXPECT_NEAR(curves[0][step], curves[1][step], 1e-4 * curves[0][step]) << "step " << step;
    EXPECT_LT(curves[0].back(), curves[0].front());  // it learned something: the comparison is not vacuous
    const auto cpu_params = models.cpu().named_parameters(), gpu_params = models.gpu().named_parameters();
    for (size_t i = 0; i < cpu_params.size(); ++i)
      EXPECT_LE(host_diff(cpu_params[i].second, gpu_params[i].second),
                1e-4 * max_abs(cpu_params[i].second) + 0.05 * kLr)
          << cpu_params[i].first;
  }
}
