// tasks/train_loop.h — the one training loop every training task shares.
//
// A task (pretraining, fine-tuning) supplies three things: how to draw a batch, how to evaluate, and what
// sample to show; the loop does the rest the same way for all of them:
//   for step in [start, steps):
//     lr ← schedule(step);  batch ← next_batch(data RNG);  loss ← CE(model(inputs), targets)
//     backward;  clip ‖g‖ to grad_clip;  AdamW step (decay on matrices only)
//     every log_interval: progress line (loss, bits per byte, tok/s, lr, ETA) + a metrics JSON line
//     every eval_interval and at the end: evaluate, print a sample, save `last` (and `best` when the
//       validation loss improved)
//   Ctrl-C: finish the current step, save `last`, stop (a second Ctrl-C kills at once).
// `--resume` restores weights, AdamW moments, the data RNG and the step from `last`, so the resumed run
// draws the same batches it would have drawn.
#pragma once
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ssm/lm.h"
#include "tasks/experiment.h"
#include "tokenizers/tokenizer.h"

namespace ssm::tasks {

inline constexpr int64_t kIgnoreTarget = -100;  // a target position without loss

struct Batch {
  Tensor inputs;              // [batch, T] int64
  Tensor targets;             // [batch, T] int64; kIgnoreTarget where no loss is taken
  int64_t target_tokens = 0;  // positions with a loss
  int64_t target_bytes = 0;   // bytes of text those targets stand for (for bits per byte)
};

struct EvalResult {
  double loss = 0;           // mean validation loss (nats per target token) — decides `best`
  double bits_per_byte = 0;
  std::map<std::string, double> extra;  // task-specific figures (e.g. "exact_match"), also logged
  std::vector<std::string> lines;       // what to print (besides loss/bpb), e.g. example predictions
};

struct TrainingTask {
  std::function<Batch(Generator& data_rng)> next_batch;
  std::function<EvalResult(const MambaLM& model)> evaluate;
  std::function<std::string(const MambaLM& model, int64_t step)> sample;  // may be empty
};

struct TrainOutcome {
  int64_t step = 0;          // steps completed
  bool interrupted = false;  // stopped by Ctrl-C (a `last` checkpoint was saved)
  EvalResult last_eval;
  double best_valid_loss = 0;
};

struct TrainOptions {
  bool resume = false;  // continue from <output_dir>/last
  std::FILE* out = stdout;
  Device device = Device::cpu();  // where the model trains (apply_target's choice)
};

// Train `model` as `spec` says, writing <output_dir>/{last,best,metrics.jsonl}.
TrainOutcome train(const ExperimentSpec& spec, MambaLM& model, const Tokenizer& tokenizer, const TrainingTask& task,
                   const TrainOptions& options);

// Cross-entropy of the model on a batch (mean over target positions), in nats.
Tensor batch_loss(const MambaLM& model, const Batch& batch);

}  // namespace ssm::tasks
