// autograd/grad_mode.h — whether ops record the graph on this thread.
//
// Recording is on by default. Inside a NoGradGuard scope nothing is recorded (evaluation,
// optimiser updates, and the backward pass itself, which runs raw ops on gradients).
#pragma once

namespace ssm {

class GradMode {
 public:
  static bool enabled();
  static void set_enabled(bool on);
};

class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace ssm
