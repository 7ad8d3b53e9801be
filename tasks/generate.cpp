// tasks/generate.cpp — prefill with the parallel scan, then one recurrent step per new token.
#include "tasks/generate.h"

#include <algorithm>
#include <chrono>

#include "autograd/grad_mode.h"
#include "ssm/decoder.h"
#include "tensor/error.h"

namespace ssm::tasks {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

double GenerationResult::tokens_per_second() const {
  return decode_seconds > 0 ? static_cast<double>(tokens.size()) / decode_seconds : 0;
}

GenerationResult generate(const MambaLM& model, std::span<const int32_t> prompt, int32_t start_token,
                          int64_t max_new_tokens, int64_t vocab_size, const SamplingOptions& sampling,
                          Generator& gen, std::span<const int32_t> stop_tokens, std::span<const int32_t> banned,
                          const std::function<bool(int32_t)>& on_token) {
  // Check everything before the prefill, which is the expensive part.
  check_sampling_options(sampling);
  SSM_CHECK(max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", max_new_tokens);
  SSM_CHECK(vocab_size > 0 && vocab_size <= model.config.padded_vocab(), "generate: vocab_size ", vocab_size,
            " must be in 1..", model.config.padded_vocab(), " (the model's output rows)");
  std::vector<int64_t> context(prompt.begin(), prompt.end());
  if (context.empty()) context.push_back(start_token);
  for (size_t i = 0; i < context.size(); ++i)
    SSM_CHECK(context[i] >= 0 && context[i] < vocab_size, "generate: ",
              prompt.empty() ? "start token " : "prompt token ", context[i],
              prompt.empty() ? "" : " at position " + std::to_string(i), " is outside the vocabulary 0..",
              vocab_size - 1);

  GenerationResult result;
  if (max_new_tokens == 0) return result;
  NoGradGuard no_grad;
  auto start = Clock::now();
  Decoder decoder(model, 1);  // on a GPU each token replays one captured step (ssm/decoder.h)
  const auto length = static_cast<int64_t>(context.size());
  Tensor logits = decoder.prefill(Tensor::from_vector(context, {1, length})).select(1, length - 1);  // [1, V]
  result.prefill_seconds = seconds_since(start);

  start = Clock::now();
  while (true) {
    const int32_t token = sample_token(logits.to_vector<float>(), vocab_size, sampling, gen, banned);
    result.tokens.push_back(token);
    const bool caller_wants_more = !on_token || on_token(token);
    const bool stop = std::find(stop_tokens.begin(), stop_tokens.end(), token) != stop_tokens.end();
    if (!caller_wants_more || stop || static_cast<int64_t>(result.tokens.size()) == max_new_tokens) break;
    logits = decoder.step(Tensor::from_vector(std::vector<int64_t>{token}, {1}));  // [1, V]
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace ssm::tasks
