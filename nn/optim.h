// nn/optim.h — optimisers (AdamW, SGD with momentum), parameter groups, gradient clipping.
//
// Parameters are held with their names, so the optimiser's state (AdamW's moments, SGD's
// momentum buffers, the step count) can be saved into a checkpoint under stable keys and a
// resumed run continues bit for bit.
//
// Gradient accumulation needs nothing special: call backward() on each micro-batch's loss divided
// by the number of micro-batches (gradients add up in .grad), then step() once and zero_grad().
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace ssm::nn {

using NamedParameters = std::vector<std::pair<std::string, Tensor>>;

struct ParamGroup {
  NamedParameters params;
  double weight_decay = 0.0;
};

// Two groups: weight_decay on matrices (rank >= 2), none on vectors and scalars (norm weights,
// biases, dt_bias, D, A_log) nor on anything whose name ends in "bias" (the Mamba-3 B_bias/C_bias).
std::vector<ParamGroup> decay_groups(const NamedParameters& params, double weight_decay);

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  virtual void step() = 0;  // one update from the current .grad of every parameter (those without are skipped)
  void zero_grad();

  double lr = 1e-3;        // set by the caller each step from a schedule
  int64_t step_count = 0;  // number of step() calls so far

  // State for checkpoints: "<kind>.<param name>" -> tensor, plus "step" as a 1-element int64 tensor.
  // The buffers are the live ones (not copies): write them out before the next step().
  virtual StateDict state_dict() const = 0;
  virtual void load_state_dict(const StateDict& state) = 0;

 protected:
  std::vector<ParamGroup> groups_;
  // Check that `state` holds exactly `kinds` × parameters with matching shapes, then copy it in.
  void load_buffers(const StateDict& state, const std::vector<std::pair<std::string, std::map<std::string, Tensor>*>>& kinds);
  StateDict save_buffers(const std::vector<std::pair<std::string, const std::map<std::string, Tensor>*>>& kinds) const;
};

// AdamW (Loshchilov & Hutter): decoupled weight decay, bias-corrected moments.
//   p ← p − lr·wd·p;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + eps)
// t is the optimiser's step count (PyTorch counts per parameter; the two agree whenever every
// parameter gets a gradient at every step, as in our models).
class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);
  void step() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  double beta1, beta2, eps;

 private:
  std::map<std::string, Tensor> exp_avg_, exp_avg_sq_;
};

// SGD with (heavy-ball) momentum, as PyTorch's: g ← g + wd·p;  b ← μ b + g (b = g at the first step);  p ← p − lr·b
class SGD final : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, double lr, double momentum = 0.0);
  void step() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  double momentum;

 private:
  std::map<std::string, Tensor> momentum_buffer_;
};

// Scale all gradients by min(1, max_norm / (‖g‖ + 1e-6)) where ‖g‖ is the L2 norm over every gradient
// together (as PyTorch's clip_grad_norm_). clip_grad_norm_ never waits for the device: the norm, the
// scale and the scaling stay where the gradients are, and it returns ‖g‖ before clipping there (a
// float64 scalar), so a training step captured into a CUDA graph can clip (nn/gradient_step.h).
// clip_grad_norm returns ‖g‖ on the host (for logging), one wait for the device.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace ssm::nn
