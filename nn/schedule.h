// nn/schedule.h — learning-rate schedules: lr(step) for step = 0, 1, 2, ...
#pragma once
#include <cstdint>

namespace ssm::nn {

// Linear warm-up times cosine decay to min_ratio·base_lr, exactly the peer recipe
// (../shared/ref/peer_train.py):
//   lr(s) = base · min(1, (s+1)/warmup) · (min_ratio + (1 − min_ratio) · ½(1 + cos(π · min(1, s/total))))
struct WarmupCosine {
  double base_lr;
  int64_t warmup_steps;
  int64_t total_steps;
  double min_ratio = 0.1;
  double operator()(int64_t step) const;
};

// Warm-up, stable, decay (WSD): linear warm-up to base_lr, hold it, then decay linearly over the
// last decay_steps to min_ratio·base_lr (and stay there).
struct WarmupStableDecay {
  double base_lr;
  int64_t warmup_steps;
  int64_t total_steps;
  int64_t decay_steps;
  double min_ratio = 0.0;
  double operator()(int64_t step) const;
};

}  // namespace ssm::nn
