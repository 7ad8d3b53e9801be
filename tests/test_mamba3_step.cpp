// The fused CPU decoding step of Mamba-3 (ssm/mamba3_step.cpp) against forward() composed of tensor ops
// (the reference scan path), token after token from the same cache: outputs and all four cache tensors.
#include <gtest/gtest.h>

#include <string>

#include "autograd/grad_mode.h"
#include "compare_helpers.h"
#include "ssm/mamba3.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace ssm;
using ssm::testing::expect_close;

namespace {

struct StepCase {
  std::string name;
  bool mimo;
  int64_t rank, groups;
  double rope_fraction;
};

// Every parameter moved off its symmetric initial value, so a mixed-up index cannot hide.
void perturb(Mamba3& m, Generator& gen) {
  NoGradGuard no_grad;
  for (const Tensor& p : m.parameters()) op::add_(p, op::normal(p.shape(), 0, 0.3, gen));
}

void expect_same_cache(const Mamba3Cache& got, const Mamba3Cache& want, double tol) {
  expect_close(got.angle, want.angle, tol, tol, "angle");
  expect_close(got.ssm, want.ssm, tol, tol, "ssm state");
  expect_close(got.k, want.k, tol, tol, "previous keys");
  expect_close(got.v, want.v, tol, tol, "previous x");
}

}  // namespace

TEST(Mamba3Step, FusedStepEqualsTheComposedForward) {
  const StepCase cases[] = {{"siso", false, 1, 1, 0.5}, {"siso-rope1", false, 1, 1, 1.0},
                            {"mimo-r2", true, 2, 1, 0.5}, {"mimo-r4-groups2", true, 4, 2, 0.5}};
  for (const StepCase& c : cases) {
    SCOPED_TRACE(c.name);
    MixerConfig cfg = MixerConfig::mamba3_defaults();
    cfg.d_state = 8;
    cfg.headdim = 4;
    cfg.ngroups = c.groups;
    cfg.is_mimo = c.mimo;
    cfg.mimo_rank = c.rank;
    cfg.rope_fraction = c.rope_fraction;
    Generator gen(4242);
    Mamba3 mixer(12, cfg, gen);  // float32 (modules are made in float32)
    perturb(mixer, gen);
    const int64_t batch = 3, steps = 6;
    const Tensor u = op::normal({batch, steps, 12}, 0, 1, gen);
    auto fused = mixer.empty_cache(batch), composed = mixer.empty_cache(batch);
    const double tol = 2e-5;  // the two paths add in different orders
    NoGradGuard no_grad;
    for (int64_t t = 0; t < steps; ++t) {
      const Tensor token = u.narrow(1, t, 1).contiguous();
      mixer.scan_path = ScanPath::Chunked;
      ASSERT_TRUE(mixer.fused_step(token, fused.get()));
      const Tensor y_fused = mixer.forward(token, fused.get());
      mixer.scan_path = ScanPath::Reference;
      ASSERT_FALSE(mixer.fused_step(token, composed.get()));
      const Tensor y_composed = mixer.forward(token, composed.get());
      expect_close(y_fused, y_composed, tol, tol, "y at step " + std::to_string(t));
      expect_same_cache(static_cast<const Mamba3Cache&>(*fused), static_cast<const Mamba3Cache&>(*composed), tol);
    }
  }
}

TEST(Mamba3Step, TrainingAndTheOutputNormKeepTheComposedPath) {
  Generator gen(7);
  MixerConfig cfg = MixerConfig::mamba3_defaults();
  cfg.d_state = 8;
  cfg.headdim = 4;
  Mamba3 mixer(8, cfg, gen);
  auto cache = mixer.empty_cache(1);
  const Tensor token = op::normal({1, 1, 8}, 0, 1, gen);
  EXPECT_FALSE(mixer.fused_step(token, cache.get()));  // grad mode on: the step must be differentiable
  NoGradGuard no_grad;
  EXPECT_TRUE(mixer.fused_step(token, cache.get()));
  EXPECT_FALSE(mixer.fused_step(token, nullptr));                                        // no cache
  EXPECT_FALSE(mixer.fused_step(op::normal({1, 2, 8}, 0, 1, gen), cache.get()));         // two tokens
  cfg.is_outproj_norm = true;
  Mamba3 normed(8, cfg, gen);
  EXPECT_FALSE(normed.fused_step(token, normed.empty_cache(1).get()));
}
