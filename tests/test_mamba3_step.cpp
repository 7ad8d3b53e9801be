// The fused CPU decoding step of Mamba-3 (ssm/mamba3_step.cpp) against forward() composed of tensor ops
// (the reference scan path), token after token from the same cache: outputs and all four cache tensors,
// with and without the output-projection norm.
#include <gtest/gtest.h>

#include <string>

#include "ssm/mamba3.h"
#include "step_test_helpers.h"

using namespace ssm;
using namespace ssm::testing;

namespace {

struct StepCase {
  std::string name;
  bool mimo;
  int64_t rank, groups;
  double rope_fraction;
  bool outproj_norm = false;
};

}  // namespace

TEST(Mamba3Step, FusedStepEqualsTheComposedForward) {
  const StepCase cases[] = {{"siso", false, 1, 1, 0.5},           {"siso-rope1", false, 1, 1, 1.0},
                            {"mimo-r2", true, 2, 1, 0.5},           {"mimo-r4-groups2", true, 4, 2, 0.5},
                            {"siso-norm", false, 1, 1, 0.5, true},  {"mimo-r3-norm", true, 3, 1, 1.0, true}};
  for (const StepCase& c : cases) {
    SCOPED_TRACE(c.name);
    MixerConfig cfg = MixerConfig::mamba3_defaults();
    cfg.d_state = 8;
    cfg.headdim = 4;
    cfg.ngroups = c.groups;
    cfg.is_mimo = c.mimo;
    cfg.mimo_rank = c.rank;
    cfg.rope_fraction = c.rope_fraction;
    cfg.is_outproj_norm = c.outproj_norm;
    Generator gen(4242);
    Mamba3 mixer(12, cfg, gen);  // float32 (modules are made in float32)
    perturb(mixer, gen);
    const double tol = 2e-5;  // the two paths add in different orders
    const Tensor u = op::normal({3, 6, 12}, 0, 1, gen);
    expect_fused_steps_equal_the_composed_forward<Mamba3, Mamba3Cache>(
        mixer, u, /*prompt=*/0, tol, [&](const Mamba3Cache& got, const Mamba3Cache& want) {
          expect_close(got.angle, want.angle, tol, tol, "angle");
          expect_close(got.ssm, want.ssm, tol, tol, "ssm state");
          expect_close(got.k, want.k, tol, tol, "previous keys");
          expect_close(got.v, want.v, tol, tol, "previous x");
        });
  }
}

TEST(Mamba3Step, TrainingKeepsTheComposedPath) {
  Generator gen(7);
  MixerConfig cfg = MixerConfig::mamba3_defaults();
  cfg.d_state = 8;
  cfg.headdim = 4;
  expect_fused_step_only_when_decoding(Mamba3(8, cfg, gen), gen);
  cfg.is_outproj_norm = true;  // the output-projection norm is fused too
  expect_fused_step_only_when_decoding(Mamba3(8, cfg, gen), gen);
}
