// Tests for tasks/generate.h on small random Mamba-3 MIMO and Mamba-2 models: greedy generation from
// the recurrent cache equals re-running the full forward over prompt + generated tokens and taking
// the last position's argmax; stop tokens, on_token and max_new_tokens end generation where they
// should; an empty prompt starts from the start token; seeded sampling is reproducible and never
// draws banned or padded ids; bad arguments are refused before any work.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "ssm/lm.h"
#include "tasks/generate.h"
#include "tensor/error.h"
#include "tensor/ops.h"

using namespace ssm;
using ssm::tasks::generate;
using ssm::tasks::GenerationResult;
using ssm::tasks::SamplingOptions;

namespace {

struct Variant {
  const char* name;
  const char* json;
};

// 30 tokenizer ids padded to 32 model rows; chunk_size 4 so the prompts span several chunks.
const Variant kVariants[] = {
    {"Mamba3Mimo", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3", "d_state": 8,
       "headdim": 8, "is_mimo": true, "mimo_rank": 2, "chunk_size": 4}})"},
    {"Mamba2", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba2", "d_state": 8,
       "headdim": 8, "chunk_size": 4}})"},
};
const int64_t kVocab = 30;
const SamplingOptions kGreedy{0.0, 0, 1.0};
const std::vector<int32_t> kPrompt = {3, 17, 4, 4, 29, 0, 11};

// The official init is nearly symmetric; perturbing it gives a model whose argmax varies by position.
std::unique_ptr<MambaLM> random_model(const char* json) {
  Generator gen(21);
  auto model = std::make_unique<MambaLM>(LMConfig::from_json(json), gen);
  NoGradGuard no_grad;
  for (const Tensor& p : model->parameters()) op::add_(p, op::normal(p.shape(), 0, 0.5, gen));
  return model;
}

// Greedy decoding without a cache: the whole forward over the text so far for every new token.
std::vector<int32_t> greedy_by_full_forward(const MambaLM& model, std::vector<int32_t> text, int64_t count) {
  NoGradGuard no_grad;
  std::vector<int32_t> generated;
  for (int64_t i = 0; i < count; ++i) {
    const auto length = static_cast<int64_t>(text.size());
    const Tensor tokens = Tensor::from_vector(std::vector<int64_t>(text.begin(), text.end()), {1, length});
    const std::vector<float> last = model.forward(tokens).select(1, length - 1).to_vector<float>();
    const auto best = static_cast<int32_t>(std::max_element(last.begin(), last.begin() + kVocab) - last.begin());
    generated.push_back(best);
    text.push_back(best);
  }
  return generated;
}

GenerationResult greedy(const MambaLM& model, std::span<const int32_t> prompt, int64_t count,
                        std::span<const int32_t> stop = {}, const std::function<bool(int32_t)>& on_token = {}) {
  Generator gen(0);
  return generate(model, prompt, /*start_token=*/1, count, kVocab, kGreedy, gen, stop, {}, on_token);
}

}  // namespace

class Generate : public ::testing::TestWithParam<Variant> {};

TEST_P(Generate, GreedyEqualsArgmaxOfTheFullForward) {
  const std::unique_ptr<MambaLM> model = random_model(GetParam().json);
  const GenerationResult result = greedy(*model, kPrompt, 24);
  EXPECT_EQ(result.tokens, greedy_by_full_forward(*model, kPrompt, 24));
  // a model that repeats one token would make this comparison weak
  EXPECT_GT(std::set<int32_t>(result.tokens.begin(), result.tokens.end()).size(), 2u);
}

TEST_P(Generate, EmptyPromptStartsFromTheStartToken) {
  const std::unique_ptr<MambaLM> model = random_model(GetParam().json);
  EXPECT_EQ(greedy(*model, {}, 10).tokens, greedy_by_full_forward(*model, {1}, 10));
}

TEST_P(Generate, StopsAtAStopTokenAndKeepsIt) {
  const std::unique_ptr<MambaLM> model = random_model(GetParam().json);
  const std::vector<int32_t> free_run = greedy(*model, kPrompt, 24).tokens;
  // Stop at the token whose first appearance comes last: the run must end right after it.
  size_t cut = 0;
  for (size_t i = 0; i < free_run.size(); ++i)
    if (std::find(free_run.begin(), free_run.begin() + static_cast<std::ptrdiff_t>(i), free_run[i]) ==
        free_run.begin() + static_cast<std::ptrdiff_t>(i))
      cut = i;
  ASSERT_GT(cut, 0u) << "the free run repeats one token";
  const std::vector<int32_t> stop = {31, free_run[cut]};  // 31: a padded id, never generated
  const std::vector<int32_t> expected(free_run.begin(), free_run.begin() + static_cast<std::ptrdiff_t>(cut) + 1);
  EXPECT_EQ(greedy(*model, kPrompt, 24, stop).tokens, expected);
}

TEST_P(Generate, OnTokenSeesEveryTokenAndCanStop) {
  const std::unique_ptr<MambaLM> model = random_model(GetParam().json);
  const std::vector<int32_t> free_run = greedy(*model, kPrompt, 24).tokens;
  std::vector<int32_t> seen;
  const GenerationResult result = greedy(*model, kPrompt, 24, {}, [&](int32_t token) {
    seen.push_back(token);
    return seen.size() < 5;
  });
  EXPECT_EQ(result.tokens, std::vector<int32_t>(free_run.begin(), free_run.begin() + 5));
  EXPECT_EQ(seen, result.tokens);
}

TEST_P(Generate, MaxNewTokens) {
  const std::unique_ptr<MambaLM> model = random_model(GetParam().json);
  EXPECT_EQ(greedy(*model, kPrompt, 1).tokens, greedy_by_full_forward(*model, kPrompt, 1));
  int calls = 0;
  const GenerationResult none = greedy(*model, kPrompt, 0, {}, [&](int32_t) { return ++calls > 0; });
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(calls, 0);
}

TEST_P(Generate, SeededSamplingIsReproducibleAndStaysInTheAllowedIds) {
  const std::unique_ptr<MambaLM> model = random_model(GetParam().json);
  const std::vector<int32_t> banned = {0, 5};
  const auto sample = [&](uint64_t seed) {
    Generator gen(seed);
    return generate(*model, kPrompt, 1, 200, kVocab, SamplingOptions{3.0, 0, 1.0}, gen, {}, banned).tokens;
  };
  const std::vector<int32_t> first = sample(8);
  EXPECT_EQ(first, sample(8));
  EXPECT_NE(first, sample(9));
  ASSERT_EQ(first.size(), 200u);
  for (const int32_t token : first) {
    EXPECT_TRUE(token >= 0 && token < kVocab) << token;  // never a padded row (30, 31)
    EXPECT_TRUE(token != 0 && token != 5) << token;
  }
}

TEST(GenerateTiming, ReportsRatesAndRecordsNoGraph) {
  const std::unique_ptr<MambaLM> model = random_model(kVariants[0].json);
  bool grad_mode_while_generating = true;
  const GenerationResult result = greedy(*model, kPrompt, 6, {}, [&](int32_t) {
    grad_mode_while_generating = GradMode::enabled();
    return true;
  });
  EXPECT_FALSE(grad_mode_while_generating);
  EXPECT_TRUE(GradMode::enabled());
  EXPECT_GT(result.prefill_seconds, 0);
  EXPECT_GT(result.decode_seconds, 0);
  EXPECT_DOUBLE_EQ(result.tokens_per_second(), 6 / result.decode_seconds);
  EXPECT_EQ(GenerationResult{}.tokens_per_second(), 0);
}

TEST(GenerateErrors, BadArgumentsAreRefused) {
  const std::unique_ptr<MambaLM> model = random_model(kVariants[1].json);
  const auto error = [&](std::vector<int32_t> prompt, int32_t start, int64_t count, int64_t vocab) -> std::string {
    Generator gen(0);
    try {
      generate(*model, prompt, start, count, vocab, kGreedy, gen);
    } catch (const ssm::Error& e) {
      return e.what();
    }
    return "(generated)";
  };
  EXPECT_EQ(error({3, 30}, 1, 5, kVocab), "generate: prompt token 30 at position 1 is outside the vocabulary 0..29");
  EXPECT_EQ(error({}, -1, 5, kVocab), "generate: start token -1 is outside the vocabulary 0..29");
  EXPECT_EQ(error({3}, 1, -1, kVocab), "generate: max_new_tokens must be >= 0, got -1");
  EXPECT_EQ(error({3}, 1, 5, 33), "generate: vocab_size 33 must be in 1..32 (the model's output rows)");
  EXPECT_EQ(error({3}, 1, 5, 32), "(generated)");  // the padded rows may be offered when asked for
}

INSTANTIATE_TEST_SUITE_P(Models, Generate, ::testing::ValuesIn(kVariants),
                         [](const auto& info) { return std::string(info.param.name); });
