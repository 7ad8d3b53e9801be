// tests/step_test_helpers.h — the checks shared by the fused decoding steps' tests (Mamba-2:
// tests/test_mamba2_step.cpp, Mamba-3: tests/test_mamba3_step.cpp). `Mixer` is Mamba2 or Mamba3, `Cache`
// its cache type.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autograd/grad_mode.h"
#include "compare_helpers.h"
#include "ssm/mixer.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace ssm::testing {

// Every parameter moved off its (often symmetric) initial value, so a mixed-up index cannot hide.
inline void perturb(nn::Module& m, Generator& gen) {
  NoGradGuard no_grad;
  for (const Tensor& p : m.parameters()) op::add_(p, op::normal(p.shape(), 0, 0.3, gen));
}

// u [batch, L, d_model]: the first `prompt` tokens prefill two caches through forward(); then each later
// token goes through the fused step on one cache and the composed forward (reference scan) on the other,
// and the outputs and caches (compared by same_cache) must agree.
template <class Mixer, class Cache>
void expect_fused_steps_equal_the_composed_forward(
    Mixer& mixer, const Tensor& u, int64_t prompt, double tol,
    const std::function<void(const Cache& got, const Cache& want)>& same_cache) {
  const int64_t batch = u.size(0);
  auto fused = mixer.empty_cache(batch), composed = mixer.empty_cache(batch);
  NoGradGuard no_grad;
  if (prompt > 0)
    for (auto* cache : {fused.get(), composed.get()}) mixer.forward(u.narrow(1, 0, prompt).contiguous(), cache);
  for (int64_t t = prompt; t < u.size(1); ++t) {
    SCOPED_TRACE("token " + std::to_string(t));
    const Tensor token = u.narrow(1, t, 1).contiguous();
    mixer.scan_path = ScanPath::Chunked;
    ASSERT_TRUE(mixer.fused_step(token, fused.get()));
    const Tensor y_fused = mixer.forward(token, fused.get());
    mixer.scan_path = ScanPath::Reference;
    ASSERT_FALSE(mixer.fused_step(token, composed.get()));
    const Tensor y_composed = mixer.forward(token, composed.get());
    expect_close(y_fused, y_composed, tol, tol, "y");
    same_cache(static_cast<const Cache&>(*fused), static_cast<const Cache&>(*composed));
  }
}

// The fused step is taken only for one token with a cache and no gradients.
template <class Mixer>
void expect_fused_step_only_when_decoding(const Mixer& mixer, Generator& gen) {
  auto cache = mixer.empty_cache(1);
  const Tensor token = op::normal({1, 1, mixer.d_model}, 0, 1, gen);
  EXPECT_FALSE(mixer.fused_step(token, cache.get()));  // grad mode on: the step must be differentiable
  NoGradGuard no_grad;
  EXPECT_TRUE(mixer.fused_step(token, cache.get()));
  EXPECT_FALSE(mixer.fused_step(token, nullptr));                                            // no cache
  EXPECT_FALSE(mixer.fused_step(op::normal({1, 2, mixer.d_model}, 0, 1, gen), cache.get()));  // two tokens
}

}  // namespace ssm::testing
