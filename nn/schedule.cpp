// nn/schedule.cpp — see schedule.h.
#include "nn/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ssm::nn {

static double warmup_factor(int64_t step, int64_t warmup_steps) {
  return warmup_steps > 0 ? std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(warmup_steps)) : 1.0;
}

double WarmupCosine::operator()(int64_t step) const {
  const double progress = total_steps > 0 ? std::min(1.0, static_cast<double>(step) / static_cast<double>(total_steps)) : 1.0;
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return base_lr * warmup_factor(step, warmup_steps) * (min_ratio + (1.0 - min_ratio) * cosine);
}

double WarmupStableDecay::operator()(int64_t step) const {
  const int64_t decay_start = total_steps - decay_steps;
  double factor = 1.0;
  if (step >= decay_start && decay_steps > 0) {
    const double t = std::min(1.0, static_cast<double>(step - decay_start + 1) / static_cast<double>(decay_steps));
    factor = 1.0 - (1.0 - min_ratio) * t;
  }
  return base_lr * warmup_factor(step, warmup_steps) * factor;
}

}  // namespace ssm::nn
