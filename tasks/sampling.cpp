// tasks/sampling.cpp — temperature, top-k and top-p sampling over the allowed ids.
#include "tasks/sampling.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/error.h"

namespace ssm::tasks {

namespace {

struct Candidate {
  int32_t id;
  double logit;
};

// The ids a draw may return, in ascending id order.
std::vector<Candidate> candidates_of(std::span<const float> logits, int64_t vocab_size,
                                     std::span<const int32_t> banned) {
  SSM_CHECK(vocab_size > 0 && vocab_size <= static_cast<int64_t>(logits.size()), "sample_token: vocab_size ",
            vocab_size, " must be in 1..", logits.size(), " (the length of the logits row)");
  std::vector<bool> is_banned(static_cast<size_t>(vocab_size), false);
  for (const int32_t id : banned)
    if (id >= 0 && id < vocab_size) is_banned[static_cast<size_t>(id)] = true;
  std::vector<Candidate> candidates;
  for (int32_t id = 0; id < vocab_size; ++id) {
    if (is_banned[static_cast<size_t>(id)]) continue;
    SSM_CHECK(std::isfinite(logits[static_cast<size_t>(id)]), "sample_token: the logit of id ", id, " is ",
              logits[static_cast<size_t>(id)], " (the model's output is not finite)");
    candidates.push_back({id, logits[static_cast<size_t>(id)]});
  }
  SSM_CHECK(!candidates.empty(), "sample_token: all ", vocab_size, " ids of the vocabulary are banned");
  return candidates;
}

}  // namespace

void check_sampling_options(const SamplingOptions& options) {
  SSM_CHECK(std::isfinite(options.temperature) && options.temperature >= 0,
            "sampling: temperature must be >= 0 (0 = greedy), got ", options.temperature);
  SSM_CHECK(options.top_k >= 0, "sampling: top_k must be >= 0 (0 = off), got ", options.top_k);
  SSM_CHECK(options.top_p > 0 && options.top_p <= 1, "sampling: top_p must be in (0, 1] (1 = off), got ",
            options.top_p);
}

int32_t sample_token(std::span<const float> logits, int64_t vocab_size, const SamplingOptions& options,
                     Generator& gen, std::span<const int32_t> banned) {
  check_sampling_options(options);
  std::vector<Candidate> kept = candidates_of(logits, vocab_size, banned);
  // Most likely first; the sort is stable over ascending ids, so ties keep the lower id first and
  // greedy, top_k = 1 and every truncation break ties the same way.
  std::stable_sort(kept.begin(), kept.end(), [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; });
  if (options.temperature == 0) return kept.front().id;
  if (options.top_k > 0 && options.top_k < static_cast<int64_t>(kept.size()))
    kept.resize(static_cast<size_t>(options.top_k));

  // Unnormalised softmax(logit / T); kept.front() holds the largest logit, so every weight is in (0, 1].
  std::vector<double> weights(kept.size());
  double total = 0;
  for (size_t i = 0; i < kept.size(); ++i) {
    weights[i] = std::exp((kept[i].logit - kept.front().logit) / options.temperature);
    total += weights[i];
  }
  // The smallest most-likely-first prefix holding top_p of the mass (all of it when top_p = 1).
  size_t count = 0;
  double mass = 0;
  while (count < kept.size() && mass < options.top_p * total) mass += weights[count++];

  // Inverse-CDF draw over the prefix: u is uniform on [0, mass).
  const double u = gen.next_double() * mass;
  double cumulative = 0;
  for (size_t i = 0; i + 1 < count; ++i) {
    cumulative += weights[i];
    if (u < cumulative) return kept[i].id;
  }
  return kept[count - 1].id;
}

}  // namespace ssm::tasks
