// Checkpoints: model + training state round trip, and the resume-is-exact guarantee:
// N steps, save, load into fresh objects, M steps == N + M steps straight, bit for bit (CPU).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/schedule.h"

using namespace ssm;
using namespace ssm::nn;

namespace {

constexpr int64_t kVocab = 11, kDim = 8, kBatch = 4, kLen = 6;

// A toy LM: embedding -> dropout -> rms_norm -> linear head; dropout makes the RNG state matter.
class Toy : public Module {
 public:
  explicit Toy(Generator& gen) {
    emb = register_module("emb", std::make_shared<Embedding>(kVocab, kDim, gen));
    norm = register_module("norm", std::make_shared<RMSNorm>(kDim));
    head = register_module("head", std::make_shared<Linear>(kDim, kVocab, true, gen));
  }
  Tensor loss(const Tensor& ids, Generator& gen) const {
    const Tensor h = norm->forward(dropout(emb->forward(ids), 0.1, is_training(), gen));
    const Tensor logits = head->forward(h);  // [B, L, V]
    return cross_entropy(narrow(logits, 1, 0, kLen - 1), ids.narrow(1, 1, kLen - 1));
  }
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<RMSNorm> norm;
  std::shared_ptr<Linear> head;
};

// The "data sampler": a fixed token stream read at data_position.
Tensor batch_at(int64_t position) {
  std::vector<int64_t> ids(kBatch * kLen);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((position * 7 + i * i * 3 + i) % kVocab);
  return Tensor::from_vector(ids, {kBatch, kLen});
}

void train(Toy& model, AdamW& opt, Generator& gen, TrainingProgress& progress, int steps) {
  const WarmupCosine schedule{1e-2, 3, 12};
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    backward(model.loss(batch_at(progress.data_position), gen));
    clip_grad_norm(model.parameters(), 1.0);
    opt.lr = schedule(progress.step);
    opt.step();
    ++progress.step;
    progress.data_position += kBatch;
  }
}

std::filesystem::path temp_dir(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / (std::string("ssm_ckpt_") + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace

TEST(NnCheckpoint, ResumeIsBitExact) {
  const auto dir = temp_dir("resume");
  // Straight: 5 + 4 steps.
  Generator gen_a(7);
  Toy straight(gen_a);
  AdamW opt_a(decay_groups(straight.named_parameters(), 0.1), 1e-2, 0.9, 0.95);
  TrainingProgress prog_a;
  train(straight, opt_a, gen_a, prog_a, 9);

  // Interrupted: 5 steps, save, then fresh objects (different seed: everything must come from disk).
  {
    Generator gen_b(7);
    Toy first(gen_b);
    AdamW opt_b(decay_groups(first.named_parameters(), 0.1), 1e-2, 0.9, 0.95);
    TrainingProgress prog_b;
    train(first, opt_b, gen_b, prog_b, 5);
    save_model(dir.string(), first, prog_b.step, {{"note", "toy"}});
    save_training_state(dir.string(), opt_b, gen_b, prog_b);
  }
  Generator gen_c(999);
  Toy resumed(gen_c);
  AdamW opt_c(decay_groups(resumed.named_parameters(), 0.1), 1e-2, 0.9, 0.95);
  const auto meta = load_model(dir.string(), resumed);
  EXPECT_EQ(meta.at("note"), "toy");
  EXPECT_EQ(meta.at("step"), "5");
  TrainingProgress prog_c = load_training_state(dir.string(), opt_c, gen_c);
  EXPECT_EQ(prog_c.step, 5);
  EXPECT_EQ(prog_c.data_position, 5 * kBatch);
  EXPECT_EQ(opt_c.step_count, 5);
  train(resumed, opt_c, gen_c, prog_c, 4);

  const auto a = straight.named_parameters(), c = resumed.named_parameters();
  ASSERT_EQ(a.size(), c.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const auto va = a[i].second.to_vector<float>(), vc = c[i].second.to_vector<float>();
    ASSERT_EQ(va.size(), vc.size());
    EXPECT_EQ(std::memcmp(va.data(), vc.data(), va.size() * sizeof(float)), 0) << a[i].first << " differs after resume";
  }
  EXPECT_EQ(gen_a.state(), gen_c.state());
  std::filesystem::remove_all(dir);
}

TEST(NnCheckpoint, MismatchedStepsAreRefused) {
  const auto dir = temp_dir("mismatch");
  Generator gen(1);
  Toy model(gen);
  AdamW opt(decay_groups(model.named_parameters(), 0.1), 1e-3);
  TrainingProgress progress;
  train(model, opt, gen, progress, 2);
  save_model(dir.string(), model, 3);  // as if the weights of a later step had been written alone
  save_training_state(dir.string(), opt, gen, progress);
  try {
    load_training_state(dir.string(), opt, gen);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("from step 2 but"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(NnCheckpoint, WrongShapeNamesTensorAndShapes) {
  const auto dir = temp_dir("shape");
  Generator gen(1);
  Toy model(gen);
  save_model(dir.string(), model, 0);
  // A model whose head has another width cannot load it.
  class Other : public Module {
   public:
    explicit Other(Generator& g) {
      register_module("emb", std::make_shared<Embedding>(kVocab, kDim, g));
      register_module("norm", std::make_shared<RMSNorm>(kDim));
      register_module("head", std::make_shared<Linear>(kDim, kVocab + 1, true, g));
    }
  } other(gen);
  try {
    load_model(dir.string(), other);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("head.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[11, 8]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[12, 8]"), std::string::npos) << msg;
  }
  std::filesystem::remove_all(dir);
}
