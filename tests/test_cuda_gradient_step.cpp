// tests/test_cuda_gradient_step.cpp — a training step captured into a CUDA graph (nn/gradient_step.h)
// against the same steps run op by op: the same losses and the same trained weights, with gradient
// clipping and bf16 autocast inside the captured work, and batches whose shapes change. Without a GPU
// every test here skips, saying so (on the CPU nothing is captured: tests/test_nn_optim.cpp).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "cuda_test_helpers.h"
#include "model_test_helpers.h"
#include "nn/gradient_step.h"
#include "nn/optim.h"
#include "ssm/lm.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;

namespace {

// Mamba-3 MIMO with N = P = 16: the scan's tensor-core kernels (the tiny variants take the CUDA-core ones).
constexpr const char* kMimo16 = R"({"d_model": 32, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3",
  "d_state": 16, "headdim": 16, "is_mimo": true, "mimo_rank": 2, "chunk_size": 8}})";

constexpr double kLr = 3e-3;

struct TrainingRun {
  std::vector<double> losses;
  std::vector<Tensor> weights;  // on the host, after the last step
  int replays = 0, captures = 0;
};

// AdamW steps of a model from one seed, one per batch: the loss, backward and clipping through a
// GradientStep (captured or not), the optimizer after it, zero_grad() between steps.
TrainingRun train(const char* json, bool graphed, bool bf16, const std::vector<Tensor>& batches) {
  Generator gen(31);
  MambaLM model(LMConfig::from_json(json), gen);
  perturb(model, gen);
  model.to(Device::cuda());
  nn::AdamW optimizer(nn::decay_groups(model.named_parameters(), 0.1), kLr);
  nn::GradientStep step(
      model.parameters(), Device::cuda(),
      [&](const std::vector<Tensor>& in) {
        Tensor loss;
        {
          const AutocastGuard autocast(bf16);
          loss = lm_loss(model.forward(in[0]), in[0]);
        }
        backward(loss);
        nn::clip_grad_norm_(model.parameters(), 0.5);
        return loss;
      },
      graphed);
  TrainingRun run;
  for (const Tensor& batch : batches) {
    const Tensor loss = step.run({batch});
    optimizer.step();
    optimizer.zero_grad();
    run.losses.push_back(loss.to(Device::cpu()).item<double>());
    run.replays += step.last_replayed() ? 1 : 0;
  }
  run.captures = step.captures();
  for (const Tensor& p : model.parameters()) run.weights.push_back(p.to(Device::cpu()));
  return run;
}

// One batch of 3 sequences per length, the same tokens wherever a length repeats: learned by heart, so the
// loss falls within a few steps.
std::vector<Tensor> batches_of(const std::vector<int64_t>& lengths) {
  std::vector<Tensor> batches;
  for (const int64_t L : lengths) {
    Generator gen(32 + static_cast<uint64_t>(L));
    batches.push_back(random_tokens(3, L, 30, gen));
  }
  return batches;
}

// The captured steps equal the eager ones: the graph replays the very kernels the eager step launches.
// Not bit for bit: kernels that add with atomics (the embedding's backward) may sum in another order, and
// AdamW moves a weight whose gradient is near zero by about lr whatever its sign (see
// CudaTraining.ShortRunLossCurvesAgreeWithTheCpu), hence 5% of one step's lr beside the relative 1e-6.
void expect_same_training(const TrainingRun& eager, const TrainingRun& graphed) {
  ASSERT_EQ(eager.losses.size(), graphed.losses.size());
  for (size_t s = 0; s < eager.losses.size(); ++s)
    EXPECT_NEAR(graphed.losses[s], eager.losses[s], 1e-6 * eager.losses[s]) << "step " << s;
  EXPECT_LT(eager.losses.back(), eager.losses.front());  // it trained: the comparison is not vacuous
  for (size_t i = 0; i < eager.weights.size(); ++i)
    EXPECT_LE(max_abs_diff(eager.weights[i], graphed.weights[i]),
              1e-6 * op::max(op::abs(eager.weights[i])).item<double>() + 0.05 * kLr)
        << "parameter " << i;
}

class CudaGradientStep : public CudaTest {};

TEST_F(CudaGradientStep, ReplayedStepsTrainLikeEagerSteps) {
  for (const char* json : {kVariants[0].json, kVariants[3].json, kMimo16}) {
    SCOPED_TRACE(json);
    const std::vector<Tensor> batches = batches_of({21, 21, 21, 21, 21, 21});  // the last chunk short
    const TrainingRun eager = train(json, false, false, batches), graphed = train(json, true, false, batches);
    expect_same_training(eager, graphed);
    EXPECT_EQ(eager.replays, 0);
    EXPECT_EQ(graphed.captures, 1);
    EXPECT_EQ(graphed.replays, 5);  // the first step runs eagerly; the second is captured, then replayed
  }
}

TEST_F(CudaGradientStep, ReplayedStepsUnderBf16AutocastTrainLikeEagerSteps) {
  const std::vector<Tensor> batches = batches_of({24, 24, 24, 24});
  const TrainingRun eager = train(kMimo16, false, true, batches), graphed = train(kMimo16, true, true, batches);
  expect_same_training(eager, graphed);
  EXPECT_EQ(graphed.replays, 3);
}

// A graph fits one set of shapes: a step of other shapes runs eagerly, shapes seen twice running are
// captured anew (replacing the old graph), and every step still trains as the eager run does.
TEST_F(CudaGradientStep, ChangingShapesRunEagerlyOrAreCapturedAnew) {
  const std::vector<Tensor> batches = batches_of({24, 24, 16, 24, 16, 16, 16, 24});
  const TrainingRun eager = train(kMimo16, false, false, batches), graphed = train(kMimo16, true, false, batches);
  expect_same_training(eager, graphed);
  // 24: eager; 24: captured + replayed; 16: eager; 24: replay; 16: eager; 16: captured + replayed; 16: replay;
  // 24: eager
  EXPECT_EQ(graphed.captures, 2);
  EXPECT_EQ(graphed.replays, 4);
}

}  // namespace
