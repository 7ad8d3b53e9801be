// Tests for tasks/sampling.h: greedy picks the argmax (ties to the lowest id), top_k = 1 is greedy at
// any temperature, banned and padded ids are never drawn, the empirical frequencies of seeded draws
// match softmax(logits / T) and its top-k / top-p truncations (each computed here from the
// definitions), draws are reproducible, and bad options or logits are refused with clear errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "tasks/sampling.h"
#include "tensor/error.h"

using ssm::Generator;
using ssm::tasks::sample_token;
using ssm::tasks::SamplingOptions;

namespace {

SamplingOptions options(double temperature, int64_t top_k = 0, double top_p = 1.0) {
  return SamplingOptions{temperature, top_k, top_p};
}

std::vector<float> random_logits(size_t n, Generator& gen) {
  std::vector<float> logits(n);
  for (float& l : logits) l = static_cast<float>(3 * gen.next_normal());
  return logits;
}

// The distribution sample_token should draw from, straight from the definitions: probabilities
// softmax(logit / T) over the allowed ids; keep the k most probable and renormalise; keep the most
// probable ids while the running total is below top_p (plus the one that reaches it) and renormalise.
std::vector<double> expected_distribution(const std::vector<float>& logits, int64_t vocab_size,
                                          const std::vector<int32_t>& banned, const SamplingOptions& o) {
  std::vector<double> p(logits.size(), 0.0);
  for (int64_t id = 0; id < vocab_size; ++id)
    if (std::find(banned.begin(), banned.end(), id) == banned.end()) p[id] = std::exp(logits[id] / o.temperature);
  const auto normalise = [&p] {
    const double sum = std::accumulate(p.begin(), p.end(), 0.0);
    for (double& x : p) x /= sum;
  };
  normalise();
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  if (o.top_k > 0)
    for (size_t rank = static_cast<size_t>(o.top_k); rank < order.size(); ++rank) p[order[rank]] = 0;
  normalise();
  double running = 0;
  for (const size_t id : order) {
    if (running >= o.top_p) p[id] = 0;
    running += p[id];
  }
  normalise();
  return p;
}

// Draws `draws` tokens and checks each id's frequency against `expected`: ids of probability 0 are
// never drawn, the others within 4.5 binomial standard deviations (a wrong distribution at these
// sizes misses by far more; a right one passes this bound with probability ~0.99999 per id).
void expect_frequencies(const std::vector<float>& logits, int64_t vocab_size, const std::vector<int32_t>& banned,
                        const SamplingOptions& o, const std::vector<double>& expected, int draws = 20000) {
  Generator gen(1234);
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[static_cast<size_t>(sample_token(logits, vocab_size, o, gen, banned))];
  for (size_t id = 0; id < logits.size(); ++id) {
    SCOPED_TRACE("id " + std::to_string(id));
    if (expected[id] == 0) {
      EXPECT_EQ(counts[id], 0);
      continue;
    }
    const double frequency = static_cast<double>(counts[id]) / draws;
    const double sd = std::sqrt(expected[id] * (1 - expected[id]) / draws);
    EXPECT_NEAR(frequency, expected[id], 4.5 * sd);
  }
}

int32_t argmax(const std::vector<float>& logits, int64_t vocab_size) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.begin() + vocab_size) - logits.begin());
}

// The message sample_token throws, or "(sampled)".
std::string sample_error(const std::vector<float>& logits, int64_t vocab_size, const SamplingOptions& o,
                         const std::vector<int32_t>& banned = {}) {
  Generator gen(0);
  try {
    sample_token(logits, vocab_size, o, gen, banned);
  } catch (const ssm::Error& e) {
    return e.what();
  }
  return "(sampled)";
}

// 8 model rows for a 7-id vocabulary: id 7 is padding, and id 2 is banned below; both are the most
// likely rows so that any leak shows.
const std::vector<float> kLogits = {1.0f, 0.2f, 6.0f, -0.5f, 0.8f, 1.5f, 0.0f, 9.0f};
const int64_t kVocab = 7;
const std::vector<int32_t> kBanned = {2};

}  // namespace

TEST(Sampling, GreedyIsTheArgmaxAndDrawsNothing) {
  Generator gen(5);
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<float> logits = random_logits(40, gen);
    Generator draws(9);
    const Generator::State before = draws.state();
    EXPECT_EQ(sample_token(logits, 40, options(0), draws), argmax(logits, 40));
    EXPECT_EQ(draws.state(), before);
  }
}

TEST(Sampling, GreedyTiesGoToTheLowestId) {
  Generator gen(0);
  EXPECT_EQ(sample_token(std::vector<float>{1, 3, 3, 2, 3}, 5, options(0), gen), 1);
  EXPECT_EQ(sample_token(std::vector<float>{1, 3, 3, 2, 3}, 5, options(0), gen, std::vector<int32_t>{1}), 2);
}

TEST(Sampling, TopKOfOneIsGreedyAtAnyTemperature) {
  Generator gen(6);
  for (const double temperature : {0.1, 1.0, 10.0, 1000.0}) {
    const std::vector<float> logits = random_logits(30, gen);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, 30, options(temperature, 1), gen), argmax(logits, 30));
    EXPECT_EQ(sample_token(std::vector<float>{0, 2, 2, 1}, 4, options(temperature, 1), gen), 1);  // ties as greedy
  }
}

TEST(Sampling, BannedAndPaddedIdsAreNeverDrawn) {
  Generator gen(7);
  EXPECT_EQ(sample_token(kLogits, kVocab, options(0), gen, kBanned), 5);  // best allowed: 1.5 at id 5
  for (int i = 0; i < 5000; ++i) {
    const int32_t id = sample_token(kLogits, kVocab, options(5.0), gen, kBanned);
    ASSERT_TRUE(id >= 0 && id < kVocab && id != 2) << id;
  }
}

TEST(Sampling, FrequenciesMatchTheTemperedSoftmax) {
  for (const double temperature : {1.0, 0.5, 2.0}) {
    SCOPED_TRACE("temperature " + std::to_string(temperature));
    const SamplingOptions o = options(temperature);
    expect_frequencies(kLogits, kVocab, kBanned, o, expected_distribution(kLogits, kVocab, kBanned, o));
  }
}

TEST(Sampling, FrequenciesMatchTheTruncatedDistributions) {
  // top_k = 2 then top_p = 0.6 shows the order: after top-k the best id holds 0.62 of the mass, so top-p
  // keeps it alone; top-p over the untruncated distribution would keep three.
  const SamplingOptions cases[] = {options(1.0, 3), options(2.0, 4), options(1.0, 0, 0.7), options(0.7, 0, 0.9),
                                   options(1.5, 4, 0.8), options(1.0, 2, 0.6)};
  for (const SamplingOptions& o : cases) {
    SCOPED_TRACE("T " + std::to_string(o.temperature) + " top_k " + std::to_string(o.top_k) + " top_p " +
                 std::to_string(o.top_p));
    const std::vector<double> expected = expected_distribution(kLogits, kVocab, kBanned, o);
    const auto kept = std::count_if(expected.begin(), expected.end(), [](double p) { return p > 0; });
    EXPECT_GE(kept, 1);
    EXPECT_LT(kept, kVocab - 1);  // each case truncates something
    expect_frequencies(kLogits, kVocab, kBanned, o, expected);
  }
}

TEST(Sampling, SameSeedSameDraws) {
  const auto draws = [](uint64_t seed) {
    Generator gen(seed);
    std::vector<int32_t> ids;
    for (int i = 0; i < 200; ++i) ids.push_back(sample_token(kLogits, kVocab, options(1.5, 5, 0.95), gen, kBanned));
    return ids;
  };
  EXPECT_EQ(draws(3), draws(3));
  EXPECT_NE(draws(3), draws(4));
}

TEST(Sampling, BadOptionsAreRefused) {
  const std::vector<float> logits = {0, 1};
  EXPECT_EQ(sample_error(logits, 2, options(-0.5)), "sampling: temperature must be >= 0 (0 = greedy), got -0.5");
  EXPECT_EQ(sample_error(logits, 2, options(std::numeric_limits<double>::quiet_NaN())),
            "sampling: temperature must be >= 0 (0 = greedy), got nan");
  EXPECT_EQ(sample_error(logits, 2, options(1, -1)), "sampling: top_k must be >= 0 (0 = off), got -1");
  EXPECT_EQ(sample_error(logits, 2, options(1, 0, 0)), "sampling: top_p must be in (0, 1] (1 = off), got 0");
  EXPECT_EQ(sample_error(logits, 2, options(1, 0, 1.5)), "sampling: top_p must be in (0, 1] (1 = off), got 1.5");
}

TEST(Sampling, BadLogitsAndVocabularyAreRefused) {
  const std::vector<float> logits = {0, 1, 2};
  EXPECT_EQ(sample_error(logits, 4, options(1)),
            "sample_token: vocab_size 4 must be in 1..3 (the length of the logits row)");
  EXPECT_EQ(sample_error(logits, 0, options(1)),
            "sample_token: vocab_size 0 must be in 1..3 (the length of the logits row)");
  EXPECT_EQ(sample_error(logits, 2, options(1), {0, 1}), "sample_token: all 2 ids of the vocabulary are banned");
  EXPECT_EQ(sample_error({0, NAN, 2}, 3, options(1)),
            "sample_token: the logit of id 1 is nan (the model's output is not finite)");
  EXPECT_EQ(sample_error({0, 1, NAN}, 2, options(1)), "(sampled)");  // a padded row is never read
  EXPECT_EQ(sample_error({0, NAN, 2}, 3, options(1), {1}), "(sampled)");  // nor a banned one
}
