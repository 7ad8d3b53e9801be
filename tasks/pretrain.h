// tasks/pretrain.h — language-model pretraining on a text corpus (TinyStories or any text file).
//
// Batches are random windows of seq_len + 1 tokens of the training split (inputs = the first seq_len, targets =
// the last seq_len), drawn with the run's seeded data RNG. Validation is the mean loss over eval_windows windows
// evenly spaced over the validation split — the same windows at every evaluation, so the curve is comparable —
// reported in nats per token and bits per byte of text.
#pragma once
#include "tasks/token_data.h"
#include "tasks/train_loop.h"

namespace ssm::tasks {

// Windows of seq_len + 1 tokens from `data`: `count` random ones (rng) or `count` evenly spaced ones.
Batch random_windows(const TokenData& data, int64_t count, int64_t seq_len, const Tokenizer& tokenizer, Generator& rng);
Batch spaced_windows(const TokenData& data, int64_t count, int64_t seq_len, const Tokenizer& tokenizer);

// Mean loss and bits per byte over `windows` (evaluated in batches of up to `batch` windows).
EvalResult evaluate_windows(const MambaLM& model, const Batch& windows, int64_t batch);

// A generated continuation of args.prompt (args.sample_tokens tokens, args.temperature), seeded by the step,
// with line breaks shown as " | ".
std::string sample_text(const MambaLM& model, const Tokenizer& tokenizer, const TaskArgs& args, int64_t step);

// The whole task: locate and tokenise the data, build (or resume) the model, train.
TrainOutcome run_pretrain(const ExperimentSpec& spec, const TrainOptions& options);

}  // namespace ssm::tasks
