// tasks/finetune.cpp — see finetune.h.
#include "tasks/finetune.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "tasks/generate.h"
#include "tasks/run_checkpoint.h"
#include "tasks/token_data.h"

namespace ssm::tasks {
namespace {

// Examples for one batch (or a validation set), each from its own generator seeded by `rng`, so the
// data depend only on the run's data RNG (saved in checkpoints: a resumed run continues the same stream).
std::vector<SpoExample> draw_examples(Generator& rng, SpoSplit split, const DataSpec& data, int64_t count) {
  std::vector<SpoExample> examples;
  for (int64_t i = 0; i < count; ++i)
    examples.push_back(SpoGenerator(rng.next_u64(), split, static_cast<int>(data.min_facts),
                                    static_cast<int>(data.max_facts)).next());
  return examples;
}

}  // namespace

Batch spo_batch(const std::vector<SpoExample>& examples, const Tokenizer& tokenizer, int64_t seq_len) {
  // sequence = prompt · target · eos; position t predicts sequence[t + 1], kept when that token is past the prompt.
  std::vector<std::vector<int32_t>> sequences;
  std::vector<size_t> prompt_lengths;
  size_t longest = 0;
  for (const SpoExample& example : examples) {
    std::vector<int32_t> sequence = tokenizer.encode(spo_prompt(example.sentence));
    prompt_lengths.push_back(sequence.size());
    tokenizer.encode_append(example.target, sequence);
    sequence.push_back(tokenizer.eos_id());
    if (sequence.size() > static_cast<size_t>(seq_len) + 1) sequence.resize(static_cast<size_t>(seq_len) + 1);
    longest = std::max(longest, sequence.size() - 1);
    sequences.push_back(std::move(sequence));
  }
  const auto rows = static_cast<int64_t>(examples.size()), width = static_cast<int64_t>(longest);
  std::vector<int64_t> inputs(static_cast<size_t>(rows * width), tokenizer.pad_id());
  std::vector<int64_t> targets(inputs.size(), kIgnoreTarget);
  Batch batch;
  for (size_t row = 0; row < sequences.size(); ++row) {
    const std::vector<int32_t>& sequence = sequences[row];
    std::vector<int32_t> answer;
    for (size_t t = 0; t + 1 < sequence.size(); ++t) {
      inputs[row * longest + t] = sequence[t];
      if (t + 1 >= prompt_lengths[row]) {
        targets[row * longest + t] = sequence[t + 1];
        answer.push_back(sequence[t + 1]);
      }
    }
    batch.target_tokens += static_cast<int64_t>(answer.size());
    batch.target_bytes += text_bytes(tokenizer, answer);
  }
  batch.inputs = Tensor::from_vector(inputs, {rows, width});
  batch.targets = Tensor::from_vector(targets, {rows, width});
  return batch;
}

std::string spo_answer(const MambaLM& model, const Tokenizer& tokenizer, const std::string& sentence,
                       int64_t max_tokens) {
  Generator unused(0);  // greedy decoding draws nothing
  const std::vector<int32_t> prompt = tokenizer.encode(spo_prompt(sentence));
  const std::vector<int32_t> newline = tokenizer.encode("\n");
  std::vector<int32_t> stop{tokenizer.eos_id()};
  stop.insert(stop.end(), newline.begin(), newline.end());
  const std::vector<int32_t> banned{tokenizer.pad_id()};
  const GenerationResult result = generate(model, prompt, tokenizer.eos_id(), max_tokens, tokenizer.vocab_size(),
                                           SamplingOptions{0.0, 0, 1.0}, unused, stop, banned);
  std::vector<int32_t> answer = result.tokens;
  if (!answer.empty() && std::find(stop.begin(), stop.end(), answer.back()) != stop.end()) answer.pop_back();
  return tokenizer.decode(answer);
}

EvalResult evaluate_spo(const MambaLM& model, const Tokenizer& tokenizer, const std::vector<SpoExample>& examples,
                        int64_t batch, int64_t seq_len) {
  NoGradGuard no_grad;
  double total_nats = 0;
  int64_t total_targets = 0, total_bytes = 0, exact = 0;
  for (size_t first = 0; first < examples.size(); first += static_cast<size_t>(batch)) {
    const size_t last = std::min(examples.size(), first + static_cast<size_t>(batch));
    const Batch part = spo_batch({examples.begin() + first, examples.begin() + last}, tokenizer, seq_len);
    total_nats += double(batch_loss(model, part).item<float>()) * double(part.target_tokens);
    total_targets += part.target_tokens;
    total_bytes += part.target_bytes;
  }
  EvalResult result;
  result.loss = total_nats / double(std::max<int64_t>(1, total_targets));
  result.bits_per_byte = total_nats / (std::log(2.0) * double(std::max<int64_t>(1, total_bytes)));
  // An answer runs at most a little past the longest expected one: a model that never stops costs no more.
  size_t longest_target = 0;
  for (const SpoExample& example : examples) longest_target = std::max(longest_target, tokenizer.encode(example.target).size());
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::string answer =
        spo_answer(model, tokenizer, examples[i].sentence, static_cast<int64_t>(longest_target) + 8);
    const bool correct = same_fact_set(parse_triples(answer), examples[i].triples);
    exact += correct ? 1 : 0;
    if (i < 3) result.lines.push_back((correct ? "ok    " : "wrong ") + examples[i].sentence + " -> " + answer);
  }
  result.extra["exact_match"] = double(exact) / double(std::max<size_t>(1, examples.size()));
  return result;
}

TrainOutcome run_finetune(const ExperimentSpec& spec, const TrainOptions& options) {
  const TaskArgs& args = spec.args;
  std::unique_ptr<Tokenizer> tokenizer;
  if (options.resume) {
    tokenizer = load_checkpoint(spec.output_dir() + "/last").tokenizer;
  } else if (spec.model.tokenizer == "char") {
    // A character vocabulary is the pretrained model's; it cannot be rebuilt from the SPO sentences.
    SSM_CHECK(!args.init_checkpoint.empty(), "fine-tuning with a char tokenizer needs init_from / --init-checkpoint");
    tokenizer = load_checkpoint(args.init_checkpoint).tokenizer;
  } else {
    tokenizer = make_tokenizer(spec.model.tokenizer);
  }
  Generator init_rng(static_cast<uint64_t>(args.seed));
  MambaLM model(make_lm_config(spec.model, tokenizer->vocab_size()), init_rng);
  if (!options.resume && !args.init_checkpoint.empty()) {
    const CheckpointInfo from = init_from_checkpoint(args.init_checkpoint, model, *tokenizer);
    std::fprintf(options.out, "init: %s (experiment %s, step %lld)\n", args.init_checkpoint.c_str(),
                 from.experiment.c_str(), static_cast<long long>(from.step));
  }
  model.to(options.device);
  Generator validation_rng(static_cast<uint64_t>(args.seed) ^ 0x5e1d0a7ull);
  const std::vector<SpoExample> validation =
      draw_examples(validation_rng, SpoSplit::Heldout, spec.data, spec.data.valid_examples);

  TrainingTask task;
  task.next_batch = [&](Generator& rng) {
    return spo_batch(draw_examples(rng, SpoSplit::Train, spec.data, args.batch), *tokenizer, args.seq_len);
  };
  task.evaluate = [&](const MambaLM& m) { return evaluate_spo(m, *tokenizer, validation, args.batch, args.seq_len); };
  return train(spec, model, *tokenizer, task, options);
}

}  // namespace ssm::tasks
