// tasks/pretrain.cpp — see pretrain.h.
#include "tasks/pretrain.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "tasks/corpus.h"
#include "tasks/generate.h"
#include "tasks/run_checkpoint.h"

namespace ssm::tasks {
namespace {

// A batch from window starts: inputs = tokens [s, s + T), targets = tokens [s + 1, s + T + 1).
Batch windows_at(const TokenData& data, const std::vector<int64_t>& starts, int64_t seq_len, const Tokenizer& tokenizer) {
  const auto count = static_cast<int64_t>(starts.size());
  std::vector<int64_t> inputs(static_cast<size_t>(count * seq_len)), targets(inputs.size());
  std::vector<int32_t> target_ids(static_cast<size_t>(seq_len));
  Batch batch;
  for (int64_t row = 0; row < count; ++row) {
    const int64_t start = starts[static_cast<size_t>(row)];
    for (int64_t t = 0; t < seq_len; ++t) {
      inputs[static_cast<size_t>(row * seq_len + t)] = data[start + t];
      target_ids[static_cast<size_t>(t)] = data[start + t + 1];
      targets[static_cast<size_t>(row * seq_len + t)] = target_ids[static_cast<size_t>(t)];
    }
    batch.target_bytes += text_bytes(tokenizer, target_ids);
  }
  batch.inputs = Tensor::from_vector(inputs, {count, seq_len});
  batch.targets = Tensor::from_vector(targets, {count, seq_len});
  batch.target_tokens = count * seq_len;
  return batch;
}

}  // namespace

Batch random_windows(const TokenData& data, int64_t count, int64_t seq_len, const Tokenizer& tokenizer, Generator& rng) {
  const auto positions = static_cast<uint64_t>(data.size() - seq_len);  // starts 0 .. size - seq_len - 1
  std::vector<int64_t> starts(static_cast<size_t>(count));
  for (int64_t& start : starts) start = static_cast<int64_t>(rng.next_u64() % positions);
  return windows_at(data, starts, seq_len, tokenizer);
}

Batch spaced_windows(const TokenData& data, int64_t count, int64_t seq_len, const Tokenizer& tokenizer) {
  // Starts evenly spaced from 0 to size - seq_len - 1, the last window ending at the split's last token.
  const double last_start = double(data.size() - seq_len - 1);
  std::vector<int64_t> starts(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    starts[static_cast<size_t>(i)] = count == 1 ? 0 : static_cast<int64_t>(last_start * double(i) / double(count - 1));
  return windows_at(data, starts, seq_len, tokenizer);
}

EvalResult evaluate_windows(const MambaLM& model, const Batch& windows, int64_t batch) {
  NoGradGuard no_grad;
  const int64_t count = windows.inputs.size(0);
  double total_nats = 0;
  for (int64_t first = 0; first < count; first += batch) {
    const int64_t rows = std::min(batch, count - first);
    Batch part;
    part.inputs = windows.inputs.narrow(0, first, rows);
    part.targets = windows.targets.narrow(0, first, rows).contiguous();
    total_nats += double(batch_loss(model, part).item<float>()) * double(rows * windows.inputs.size(1));
  }
  EvalResult result;
  result.loss = total_nats / double(windows.target_tokens);
  result.bits_per_byte = total_nats / (std::log(2.0) * double(windows.target_bytes));
  return result;
}

std::string sample_text(const MambaLM& model, const Tokenizer& tokenizer, const TaskArgs& args, int64_t step) {
  Generator rng(static_cast<uint64_t>(args.seed) * 1000003ull + static_cast<uint64_t>(step));
  const std::vector<int32_t> prompt = tokenizer.encode(args.prompt);
  const std::vector<int32_t> stop{tokenizer.eos_id()}, banned{tokenizer.pad_id()};
  const GenerationResult result =
      generate(model, prompt, tokenizer.eos_id(), args.sample_tokens, tokenizer.vocab_size(),
               SamplingOptions{args.temperature, args.top_k, args.top_p}, rng, stop, banned);
  std::string text = args.prompt + tokenizer.decode(result.tokens);
  std::string shown;
  for (char c : text) c == '\n' ? shown += " | " : shown += c;
  return shown;
}

TrainOutcome run_pretrain(const ExperimentSpec& spec, const TrainOptions& options) {
  const TaskArgs& args = spec.args;
  const TextSplits splits = locate_text(spec.data);
  // A resumed run keeps the tokenizer it started with (a char vocabulary must not change under it).
  std::unique_ptr<Tokenizer> tokenizer;
  if (options.resume) {
    tokenizer = load_checkpoint(spec.output_dir() + "/last").tokenizer;
  } else {
    tokenizer = build_tokenizer(spec.model, splits.train);
  }
  const Corpus corpus = load_corpus(splits, *tokenizer, args.seq_len, spec.data.name);

  Generator init_rng(static_cast<uint64_t>(args.seed));
  MambaLM model(make_lm_config(spec.model, tokenizer->vocab_size()), init_rng);
  model.to(options.device);  // initialised on the host (the same numbers on every device), then moved
  const Batch validation = spaced_windows(corpus.valid, args.eval_windows, args.seq_len, *tokenizer);

  TrainingTask task;
  task.next_batch = [&](Generator& rng) { return random_windows(corpus.train, args.batch, args.seq_len, *tokenizer, rng); };
  task.evaluate = [&](const MambaLM& m) { return evaluate_windows(m, validation, args.batch); };
  task.sample = [&](const MambaLM& m, int64_t step) { return sample_text(m, *tokenizer, args, step); };
  return train(spec, model, *tokenizer, task, options);
}

}  // namespace ssm::tasks
