// The training loop end to end on tiny models: validation loss falls on the TinyStories sample; Ctrl-C saves a
// checkpoint that loads; a resumed run equals an uninterrupted one bit for bit; fine-tuning batches take the
// loss on the answer only; checkpoints round-trip and refuse a different tokenizer or architecture.
#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "task_test_helpers.h"
#include "tasks/corpus.h"
#include "tasks/finetune.h"
#include "tasks/pretrain.h"
#include "tasks/run_checkpoint.h"
#include "tensor/error.h"

using namespace ssm;
using namespace ssm::tasks;
using ssm::testing::ScopedEnv;
using ssm::testing::ScopedTempDir;

namespace {

ExperimentSpec tiny_spec(const std::string& output_dir) {
  ExperimentSpec spec;
  spec.name = "tiny";
  spec.model.name = "tiny";
  spec.model.d_model = 32;
  spec.model.n_layer = 2;
  spec.model.d_state = 8;
  spec.model.headdim = 8;
  spec.model.chunk_size = 16;
  spec.data.name = "sample";
  spec.data.kind = "tinystories";
  spec.data.local_dir = SSM_SHARED_DIR "/data/tinystories";
  spec.data.max_train_bytes = 200000;
  spec.data.max_valid_bytes = 20000;
  spec.args.steps = 40;
  spec.args.batch = 8;
  spec.args.seq_len = 64;
  spec.args.lr = 5e-3;
  spec.args.warmup_steps = 5;
  spec.args.eval_interval = 20;
  spec.args.eval_windows = 16;
  spec.args.sample_tokens = 20;
  spec.args.output_dir = output_dir;
  return spec;
}

std::vector<nlohmann::json> metrics(const std::string& dir) {
  std::vector<nlohmann::json> records;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

std::vector<double> valid_losses(const std::string& dir) {
  std::vector<double> losses;
  for (const auto& record : metrics(dir))
    if (record.contains("valid_loss")) losses.push_back(record["valid_loss"].get<double>());
  return losses;
}

// Every parameter, bit for bit.
bool same_weights(const MambaLM& a, const MambaLM& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor x = pa[i].second.contiguous(), y = pb[i].second.contiguous();
    if (pa[i].first != pb[i].first || x.numel() != y.numel() ||
        std::memcmp(x.data<float>(), y.data<float>(), sizeof(float) * static_cast<size_t>(x.numel())) != 0)
      return false;
  }
  return true;
}

FILE* quiet() {
  static FILE* sink = std::fopen("/dev/null", "w");
  return sink;
}

}  // namespace

TEST(Training, PretrainingLowersValidationLossAndKeepsBestAndLast) {
  ScopedTempDir dir;
  ScopedEnv cache("SSM_CACHE", dir / "cache");
  const ExperimentSpec spec = tiny_spec(dir / "run");
  const TrainOutcome outcome = run_pretrain(spec, {false, quiet()});
  EXPECT_EQ(outcome.step, 40);
  EXPECT_FALSE(outcome.interrupted);
  const std::vector<double> losses = valid_losses(spec.output_dir());
  ASSERT_EQ(losses.size(), 3u);  // steps 0, 20, 40
  EXPECT_LT(losses.back(), losses.front() - 1.0) << "validation loss " << losses.front() << " -> " << losses.back();
  EXPECT_DOUBLE_EQ(outcome.best_valid_loss, *std::min_element(losses.begin(), losses.end()));

  const auto best = read_checkpoint_info(spec.output_dir() + "/best");
  const auto last = read_checkpoint_info(spec.output_dir() + "/last");
  ASSERT_TRUE(best && last);
  EXPECT_EQ(last->step, 40);
  EXPECT_EQ(last->experiment, "tiny");
  EXPECT_EQ(last->data_kind, "tinystories");
  EXPECT_TRUE(std::filesystem::exists(spec.output_dir() + "/last/training_state.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(spec.output_dir() + "/best/config.json"));
  EXPECT_TRUE(std::filesystem::exists(spec.output_dir() + "/resolved.toml"));
  // Training records every log interval too, with the rate and the learning rate.
  const auto records = metrics(spec.output_dir());
  EXPECT_TRUE(std::any_of(records.begin(), records.end(), [](const nlohmann::json& r) {
    return r.contains("tokens_per_s") && r["tokens_per_s"].get<double>() > 0 && r.contains("lr");
  }));
}

TEST(Training, InterruptSavesACheckpointAndResumeEqualsAnUninterruptedRun) {
  ScopedTempDir dir;
  ScopedEnv cache("SSM_CACHE", dir / "cache");
  ExperimentSpec spec = tiny_spec(dir / "straight");
  spec.args.steps = 8;
  spec.args.eval_interval = 0;
  spec.data.max_train_bytes = 50000;
  const auto bytes = make_tokenizer("byte");
  const Corpus corpus = load_corpus(locate_text(spec.data), *bytes, spec.args.seq_len, "sample");
  const Batch validation = spaced_windows(corpus.valid, 4, spec.args.seq_len, *bytes);

  // A task whose data source raises SIGINT (as Ctrl-C would) while drawing the batch of step `interrupt_at`.
  auto run = [&](const ExperimentSpec& s, bool resume, int interrupt_at) {
    Generator init(0);
    auto model = std::make_unique<MambaLM>(make_lm_config(s.model, bytes->vocab_size()), init);
    int drawn = 0;
    TrainingTask task;
    task.next_batch = [&](Generator& rng) {
      if (++drawn == interrupt_at) std::raise(SIGINT);
      return random_windows(corpus.train, s.args.batch, s.args.seq_len, *bytes, rng);
    };
    task.evaluate = [&](const MambaLM& m) { return evaluate_windows(m, validation, 4); };
    const TrainOutcome outcome = train(s, *model, *bytes, task, {resume, quiet()});
    return std::pair{outcome, std::move(model)};
  };

  auto [straight, straight_model] = run(spec, false, 0);
  ASSERT_EQ(straight.step, 8);

  spec.args.output_dir = dir / "interrupted";
  auto [first, first_model] = run(spec, false, 3);
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.step, 3);  // the step in flight finished, then the loop stopped
  const LoadedModel saved = load_checkpoint(spec.output_dir() + "/last");
  EXPECT_EQ(saved.info.step, 3);
  EXPECT_TRUE(same_weights(*saved.model, *first_model));

  auto [resumed, resumed_model] = run(spec, true, 0);
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(resumed.step, 8);
  EXPECT_TRUE(same_weights(*resumed_model, *straight_model)) << "3 steps + resume 5 differs from 8 straight";
}

TEST(Training, CheckpointsRoundTripAndRefuseAnotherTokenizerOrArchitecture) {
  ScopedTempDir dir;
  const auto bytes = make_tokenizer("byte");
  ExperimentSpec spec = tiny_spec(dir.path());
  Generator init(3);
  const MambaLM model(make_lm_config(spec.model, bytes->vocab_size()), init);
  save_checkpoint(dir / "ckpt", model, *bytes, {"tiny", "text", 7, 1.5}, std::nullopt);
  // Saving again swaps the folder whole; a stale .tmp from an interrupted save is cleared first.
  std::filesystem::create_directories(dir / "ckpt.tmp/junk");
  save_checkpoint(dir / "ckpt", model, *bytes, {"tiny", "text", 8, 1.25}, std::nullopt);
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt.tmp"));

  const LoadedModel loaded = load_checkpoint(dir / "ckpt");
  EXPECT_EQ(loaded.info.step, 8);
  EXPECT_DOUBLE_EQ(loaded.info.valid_loss, 1.25);
  EXPECT_EQ(loaded.tokenizer->to_json(), bytes->to_json());
  EXPECT_TRUE(same_weights(*loaded.model, model));

  ModelSpec wider = spec.model;
  wider.d_state = 16;
  Generator other(4);
  MambaLM different(make_lm_config(wider, bytes->vocab_size()), other);
  try {
    init_from_checkpoint(dir / "ckpt", different, *bytes);
    ADD_FAILURE() << "a checkpoint of another architecture was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ssm_cfg.d_state: checkpoint 8, this run 16"), std::string::npos) << e.what();
  }
  const auto chars = make_tokenizer("char", "abc");
  MambaLM same_shape(make_lm_config(spec.model, bytes->vocab_size()), other);
  try {
    init_from_checkpoint(dir / "ckpt", same_shape, *chars);
    ADD_FAILURE() << "a checkpoint of another tokenizer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_checkpoint(dir / "nothing"), Error);

  // Hostile metadata: a step that is not a number is an error naming the file and the key.
  safetensors::Contents contents = safetensors::load(dir / "ckpt/model.safetensors");
  contents.metadata["step"] = "12abc";
  safetensors::save(dir / "ckpt/model.safetensors", contents.tensors, contents.metadata);
  try {
    load_checkpoint(dir / "ckpt");
    ADD_FAILURE() << "a non-numeric step was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metadata \"step\" is not a number"), std::string::npos) << e.what();
  }
}

TEST(Finetune, BatchesTakeTheLossOnTheAnswerOnly) {
  const auto bytes = make_tokenizer("byte");
  SpoExample example;
  example.sentence = "Alice reads a book.";
  example.triples = {{"alice", "book", "reads"}};
  example.target = format_triples(example.triples);
  SpoExample longer = example;
  longer.sentence = "Alice reads a book and Bob drives a car.";
  const Batch batch = spo_batch({example, longer}, *bytes, 256);
  const std::string prompt = spo_prompt(example.sentence);
  const std::string sequence = prompt + example.target;  // then end-of-text
  ASSERT_EQ(batch.inputs.size(1), static_cast<int64_t>(spo_prompt(longer.sentence).size() + example.target.size()));
  const int64_t* targets = batch.targets.data<int64_t>();
  const int64_t* inputs = batch.inputs.data<int64_t>();
  for (size_t t = 0; t < sequence.size(); ++t) {
    EXPECT_EQ(inputs[t], static_cast<unsigned char>(sequence[t])) << t;
    const int64_t expected = t + 1 < prompt.size()        ? kIgnoreTarget
                             : t + 1 < sequence.size()    ? static_cast<unsigned char>(sequence[t + 1])
                                                          : bytes->eos_id();
    EXPECT_EQ(targets[t], expected) << "position " << t;
  }
  for (int64_t t = static_cast<int64_t>(sequence.size()); t < batch.inputs.size(1); ++t) {
    EXPECT_EQ(targets[t], kIgnoreTarget);  // padding
    EXPECT_EQ(inputs[t], bytes->pad_id());
  }
  EXPECT_EQ(batch.target_tokens, 2 * static_cast<int64_t>(example.target.size() + 1));
  EXPECT_EQ(batch.target_bytes, 2 * static_cast<int64_t>(example.target.size() + 13));
}

TEST(Finetune, StartsFromAPretrainedCheckpointAndLearnsTheAnswers) {
  ScopedTempDir dir;
  ScopedEnv cache("SSM_CACHE", dir / "cache");
  ExperimentSpec pretrain = tiny_spec(dir / "pretrain");
  pretrain.args.steps = 10;
  run_pretrain(pretrain, {false, quiet()});

  ExperimentSpec spec = tiny_spec(dir / "spo");
  spec.name = "tiny-spo";
  spec.task = "finetune";
  spec.data = DataSpec{};
  spec.data.name = "spo";
  spec.data.kind = "spo";
  spec.data.max_facts = 2;
  spec.data.valid_examples = 8;
  spec.args.steps = 60;
  spec.args.batch = 8;
  spec.args.seq_len = 96;
  spec.args.lr = 1e-2;
  spec.args.eval_interval = 0;
  spec.args.init_checkpoint = pretrain.output_dir() + "/best";
  const TrainOutcome outcome = run_finetune(spec, {false, quiet()});
  const std::vector<double> losses = valid_losses(spec.output_dir());
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << "answer loss " << losses.front() << " -> " << losses.back();
  EXPECT_EQ(read_checkpoint_info(spec.output_dir() + "/best")->data_kind, "spo");
  EXPECT_TRUE(outcome.last_eval.extra.count("exact_match"));
}
