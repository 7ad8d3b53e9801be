// tasks/train_loop.cpp — see train_loop.h.
#include "tasks/train_loop.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "nn/functional.h"
#include "nn/gradient_step.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "tasks/experiments_file.h"
#include "tasks/progress.h"
#include "tasks/run_checkpoint.h"

namespace ssm::tasks {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Ctrl-C asks the loop to stop after the current step; the handler then steps aside so a second Ctrl-C
// ends the process at once (for a run stuck somewhere the flag is never read).
std::atomic<bool> stop_requested{false};
void on_interrupt(int) {
  stop_requested.store(true);
  std::signal(SIGINT, SIG_DFL);
}

class InterruptGuard {
 public:
  InterruptGuard() {
    stop_requested.store(false);
    previous_ = std::signal(SIGINT, on_interrupt);
  }
  ~InterruptGuard() { std::signal(SIGINT, previous_); }

 private:
  void (*previous_)(int);
};

// lr(step) for the spec's schedule.
std::function<double(int64_t)> make_schedule(const TaskArgs& args) {
  if (args.schedule == "constant") return [lr = args.lr](int64_t) { return lr; };
  if (args.schedule == "wsd") {
    const int64_t decay = args.decay_steps > 0 ? args.decay_steps : std::max<int64_t>(1, args.steps / 5);
    return nn::WarmupStableDecay{args.lr, args.warmup_steps, args.steps, decay, args.min_lr_ratio};
  }
  return nn::WarmupCosine{args.lr, args.warmup_steps, args.steps, args.min_lr_ratio};
}

double bits_per_byte(double loss_nats, int64_t tokens, int64_t bytes) {
  return bytes > 0 ? loss_nats * double(tokens) / (std::log(2.0) * double(bytes)) : std::nan("");
}

std::string fixed(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

std::string with_thousands(double value) {
  const std::string digits = std::to_string(static_cast<long long>(std::llround(value)));
  std::string grouped;  // "4820" -> "4,820"
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

// metrics.jsonl: one JSON object per line, appended (a resumed run continues the same file).
class MetricsLog {
 public:
  explicit MetricsLog(const fs::path& path) : out_(path, std::ios::app) {
    SSM_CHECK(out_.good(), "cannot write ", path.string());
  }
  void write(const nlohmann::json& record) { out_ << record.dump() << "\n" << std::flush; }

 private:
  std::ofstream out_;
};

}  // namespace

Tensor batch_loss(const MambaLM& model, const Batch& batch) {
  const Tensor logits = model.forward(batch.inputs);
  const int64_t vocab = logits.size(-1);
  return nn::cross_entropy(reshape(logits, {-1, vocab}), batch.targets.reshape({-1}).to(logits.device()),
                           kIgnoreTarget);
}

TrainOutcome train(const ExperimentSpec& spec, MambaLM& model, const Tokenizer& tokenizer, const TrainingTask& task,
                   const TrainOptions& options) {
  const TaskArgs& args = spec.args;
  const fs::path out_dir = spec.output_dir();
  const std::string last_dir = (out_dir / "last").string(), best_dir = (out_dir / "best").string();
  fs::create_directories(out_dir);
  {
    std::ofstream resolved(out_dir / "resolved.toml");
    resolved << to_toml(spec);
    SSM_CHECK(resolved.good(), "cannot write ", (out_dir / "resolved.toml").string());
  }

  nn::AdamW optimizer(nn::decay_groups(model.named_parameters(), args.weight_decay), args.lr, args.beta1, args.beta2);
  const auto schedule = make_schedule(args);
  Generator data_rng(static_cast<uint64_t>(args.seed) ^ 0xda7a5eedull);  // batches; apart from the init's

  TrainOutcome outcome;
  outcome.best_valid_loss = std::numeric_limits<double>::infinity();
  if (options.resume) {
    SSM_CHECK(read_checkpoint_info(last_dir).has_value(), "--resume: no checkpoint at ", last_dir);
    nn::load_model(last_dir, model);
    outcome.step = nn::load_training_state(last_dir, optimizer, data_rng).step;
    if (auto best = read_checkpoint_info(best_dir); best && !std::isnan(best->valid_loss))
      outcome.best_valid_loss = best->valid_loss;
  }

  MetricsLog metrics(out_dir / "metrics.jsonl");
  ProgressLine progress(options.out);
  const std::string run_line = "run: " + spec.name + " (" + spec.task + "), " + with_thousands(double(model.num_parameters())) +
                               " parameters, " + std::to_string(args.steps) + " steps of " + std::to_string(args.batch) +
                               " x " + std::to_string(args.seq_len) + " tokens" +
                               (spec.target.precision == "bf16" ? " (bf16 autocast)" : "") + ", output " +
                               out_dir.string();
  progress.print(outcome.step > 0 ? run_line + ", resuming at step " + std::to_string(outcome.step) : run_line);

  auto save = [&](const std::string& dir, bool resumable) {
    const CheckpointInfo info{spec.name, spec.data.kind, outcome.step, outcome.last_eval.loss};
    if (resumable)
      save_checkpoint(dir, model, tokenizer, info, TrainingStateRef{optimizer, data_rng, {outcome.step, outcome.step}});
    else
      save_checkpoint(dir, model, tokenizer, info, std::nullopt);
  };
  auto evaluate = [&]() {
    {
      NoGradGuard no_grad;
      outcome.last_eval = task.evaluate(model);
    }
    const EvalResult& eval = outcome.last_eval;
    std::string line = "eval step " + std::to_string(outcome.step) + ": valid loss " + fixed(eval.loss, 4) +
                       ", bits per byte " + fixed(eval.bits_per_byte, 4);
    nlohmann::json record{{"step", outcome.step}, {"valid_loss", eval.loss}, {"valid_bpb", eval.bits_per_byte}};
    for (const auto& [key, value] : eval.extra) {
      line += ", " + key + " " + fixed(value, 4);
      record[key] = value;
    }
    progress.print(line);
    for (const std::string& extra_line : eval.lines) progress.print("  " + extra_line);
    if (task.sample) progress.print("  sample: " + task.sample(model, outcome.step));
    metrics.write(record);
    if (eval.loss < outcome.best_valid_loss) {
      outcome.best_valid_loss = eval.loss;
      save(best_dir, false);
    }
    save(last_dir, true);
  };

  // Loss, backward and clipping: on a GPU captured into a CUDA graph and replayed (nn/gradient_step.h).
  nn::GradientStep gradient_step(
      model.parameters(), options.device,
      [&](const std::vector<Tensor>& in) {
        const Tensor loss = [&] {  // validation (evaluate()) stays float32
          const AutocastGuard autocast(spec.target.precision == "bf16");
          return batch_loss(model, Batch{in[0], in[1]});
        }();
        backward(loss);
        if (args.grad_clip > 0) nn::clip_grad_norm_(model.parameters(), args.grad_clip);
        return loss;
      },
      spec.target.cuda_graph);

  InterruptGuard interrupt_guard;
  if (outcome.step == 0) evaluate();  // where the curve starts

  const auto start = Clock::now();
  const int64_t first_step = outcome.step;
  double window_loss = 0;  // loss × targets, targets, bytes and input tokens since the last log line
  int64_t window_targets = 0, window_bytes = 0, window_tokens = 0, tokens_done = 0;
  auto window_start = start;
  while (outcome.step < args.steps && !stop_requested.load()) {
    optimizer.lr = schedule(outcome.step);
    const Batch batch = task.next_batch(data_rng);
    const Tensor loss = gradient_step.run({batch.inputs, batch.targets});
    optimizer.step();
    optimizer.zero_grad();
    ++outcome.step;

    const double loss_value = loss.item<float>();
    SSM_CHECK(std::isfinite(loss_value), "training diverged at step ", outcome.step, " (loss ", loss_value,
              "): lower the learning rate (--set lr=...)");
    window_loss += loss_value * double(batch.target_tokens);
    window_targets += batch.target_tokens;
    window_bytes += batch.target_bytes;
    window_tokens += batch.inputs.numel();
    tokens_done += batch.inputs.numel();

    const bool last_step = outcome.step == args.steps;
    if (outcome.step % std::max<int64_t>(1, args.log_interval) == 0 || last_step) {
      const auto now = Clock::now();
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const double window_seconds = std::chrono::duration<double>(now - window_start).count();
      const double mean_loss = window_loss / double(std::max<int64_t>(1, window_targets));
      const double bpb = bits_per_byte(mean_loss, window_targets, window_bytes);
      const double tokens_per_second = double(window_tokens) / std::max(window_seconds, 1e-9);
      char lr_text[32];
      std::snprintf(lr_text, sizeof lr_text, "%.2e", optimizer.lr);
      progress.update("step " + std::to_string(outcome.step) + "/" + std::to_string(args.steps) + " | loss " +
                      fixed(mean_loss, 4) + " | bpb " + fixed(bpb, 3) + " | lr " + lr_text + " | " +
                      with_thousands(tokens_per_second) + " tok/s | " + format_duration(elapsed) + " elapsed, ETA " +
                      format_duration(eta_seconds(double(outcome.step - first_step),
                                                  double(args.steps - first_step), elapsed)));
      metrics.write({{"step", outcome.step}, {"loss", mean_loss}, {"bpb", bpb}, {"lr", optimizer.lr},
                     {"tokens_per_s", tokens_per_second}, {"elapsed_s", elapsed}, {"tokens", tokens_done}});
      window_loss = 0;
      window_targets = window_bytes = window_tokens = 0;
      window_start = now;
    }
    if ((args.eval_interval > 0 && outcome.step % args.eval_interval == 0) || last_step) {
      evaluate();
    } else if (args.checkpoint_interval > 0 && outcome.step % args.checkpoint_interval == 0) {
      save(last_dir, true);
    }
  }
  if (stop_requested.load() && outcome.step < args.steps) {
    outcome.interrupted = true;
    save(last_dir, true);
    progress.finish("interrupted at step " + std::to_string(outcome.step) + ": saved " + last_dir +
                    " (continue with --resume)");
  } else {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    progress.finish("done: " + std::to_string(outcome.step) + " steps, " + with_thousands(double(tokens_done)) +
                    " tokens in " + format_duration(elapsed) + " (" +
                    with_thousands(double(tokens_done) / std::max(elapsed, 1e-9)) + " tok/s); best valid loss " +
                    fixed(outcome.best_valid_loss, 4) + ", checkpoints in " + out_dir.string());
  }
  return outcome;
}

}  // namespace ssm::tasks
