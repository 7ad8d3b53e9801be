// tasks/generate.h — text generation with the recurrent cache.
//
// An SSM decodes like an RNN: after one forward over the prompt (the parallel scan, "prefill") with a
// fresh cache, each new token costs one MambaLM::step on the cache's fixed-size state — constant time
// and memory per token however long the text grows, unlike attention's growing KV cache.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "ssm/lm.h"
#include "tasks/sampling.h"

namespace ssm::tasks {

struct GenerationResult {
  std::vector<int32_t> tokens;  // the new tokens (prompt excluded; a stop token, when hit, is included)
  double prefill_seconds = 0;   // the forward over the prompt
  double decode_seconds = 0;    // everything after it: sampling, steps, on_token
  double tokens_per_second() const;  // new tokens / decode_seconds (0 when nothing was timed)
};

// Generates up to max_new_tokens after `prompt` (ids in 0..vocab_size-1; an empty prompt starts from
// `start_token`: pass the tokenizer's end-of-text id). Each token is drawn by sample_token from the
// first vocab_size logits (the tokenizer's vocabulary, not the model's padded one), never from
// `banned`. Stops after max_new_tokens, at a token in `stop_tokens`, or when on_token returns false;
// on_token sees every token appended to `tokens`, in order, including the one that stops. Records no
// autograd graph. Batch 1.
GenerationResult generate(const MambaLM& model, std::span<const int32_t> prompt, int32_t start_token,
                          int64_t max_new_tokens, int64_t vocab_size, const SamplingOptions& sampling,
                          Generator& gen, std::span<const int32_t> stop_tokens = {},
                          std::span<const int32_t> banned = {},
                          const std::function<bool(int32_t)>& on_token = {});

}  // namespace ssm::tasks
