// The fused CPU decoding step of Mamba-2 (ssm/mamba2_step.cpp) against forward() composed of tensor ops
// (the reference scan path), token after token from the same prefilled cache: outputs and both cache tensors.
#include <gtest/gtest.h>

#include <string>

#include "ssm/mamba2.h"
#include "step_test_helpers.h"

using namespace ssm;
using namespace ssm::testing;

TEST(Mamba2Step, FusedStepEqualsTheComposedForward) {
  struct StepCase {
    std::string name;
    int64_t groups, d_conv;
  };
  const StepCase cases[] = {{"groups1", 1, 4}, {"groups2", 2, 4}, {"conv2", 1, 2}, {"conv1-groups3", 3, 1}};
  for (const StepCase& c : cases) {
    SCOPED_TRACE(c.name);
    MixerConfig cfg = MixerConfig::mamba2_defaults();
    cfg.d_state = 8;
    cfg.headdim = 4;
    cfg.ngroups = c.groups;
    cfg.d_conv = c.d_conv;
    Generator gen(4343);
    Mamba2 mixer(12, cfg, gen);  // d_inner 24: 6 heads
    perturb(mixer, gen);
    const double tol = 2e-5;  // the two paths add in different orders
    const Tensor u = op::normal({3, 8, 12}, 0, 1, gen);
    expect_fused_steps_equal_the_composed_forward<Mamba2, Mamba2Cache>(
        mixer, u, /*prompt=*/3, tol, [&](const Mamba2Cache& got, const Mamba2Cache& want) {
          expect_close(got.conv, want.conv, tol, tol, "conv state");
          expect_close(got.ssm, want.ssm, tol, tol, "ssm state");
        });
  }
}

TEST(Mamba2Step, TrainingKeepsTheComposedPath) {
  Generator gen(8);
  MixerConfig cfg = MixerConfig::mamba2_defaults();
  cfg.d_state = 8;
  cfg.headdim = 4;
  expect_fused_step_only_when_decoding(Mamba2(8, cfg, gen), gen);
}
