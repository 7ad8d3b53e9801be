// tasks/sampling.h — choosing the next token from a row of logits.
//
// The candidates are the ids below the tokenizer's vocabulary size that are not banned: the model's
// output rows are padded to a multiple (LMConfig::padded_vocab) and those extra rows, like the pad
// id, must never be drawn. From the candidates, in this order (the Hugging Face convention):
//   temperature  p ∝ exp(logit / T); T = 0 means greedy: the argmax, ties to the lowest id
//   top_k        keep the k most likely (ties to the lower id)
//   top_p        then keep the smallest most-likely-first set whose renormalised probability reaches p
// and one id is drawn from what is kept, renormalised.
#pragma once
#include <cstdint>
#include <span>

#include "tensor/random.h"

namespace ssm::tasks {

struct SamplingOptions {
  double temperature = 0.8;  // 0 = greedy (argmax; ties -> lowest id)
  int64_t top_k = 0;         // keep the k most likely ids (0 = all)
  double top_p = 1.0;        // then keep the smallest set whose probability reaches top_p (1 = all)
};

// Throws ssm::Error unless temperature >= 0, top_k >= 0 and 0 < top_p <= 1 (all finite).
void check_sampling_options(const SamplingOptions& options);

// The next token from one row of logits (at least vocab_size entries; every candidate's logit finite).
// Ids in `banned` are never drawn (ids there outside the vocabulary are ignored); at least one
// candidate must remain. The softmax is computed in double, max-subtracted. A sampled draw (T > 0)
// takes exactly one gen.next_double(), greedy takes none, so the result is a function of the options,
// the logits and the generator's state.
int32_t sample_token(std::span<const float> logits, int64_t vocab_size, const SamplingOptions& options,
                     Generator& gen, std::span<const int32_t> banned = {});

}  // namespace ssm::tasks
