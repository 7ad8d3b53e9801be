// ssm-infer — run a trained model on a piece of text.
//
//   ssm-infer --experiment spo-mamba3 --text "Alice reads a book and Bob drives a car."
//     raw: [(alice, book, reads), (bob, car, drives)]
//     triples: [(alice, book, reads), (bob, car, drives)]
//   ssm-infer --experiment tinystories-mamba3 --text "Once upon a time there was a cat."
//     bits per byte: 1.52 (over 32 bytes)
//     continuation: ...
// For an SPO model (one fine-tuned on data of kind "spo", as its checkpoint records) the answer is the greedy extraction, printed raw and as
// the parsed triples; for a language model, how well it predicts the text and its greedy continuation.
#include <cmath>
#include <cstdio>

#include "autograd/grad_mode.h"
#include "tasks/finetune.h"
#include "tasks/generate.h"
#include "tasks/run_checkpoint.h"
#include "tasks/session.h"
#include "tasks/token_data.h"

using namespace ssm::tasks;

namespace {

// Bits per byte of `text` under the model, and its greedy continuation.
void describe_text(const LoadedModel& loaded, const std::string& text, int64_t max_new_tokens) {
  const ssm::Tokenizer& tokenizer = *loaded.tokenizer;
  std::vector<int32_t> ids{tokenizer.eos_id()};  // the text starts a document
  tokenizer.encode_append(text, ids);
  Batch batch;
  std::vector<int64_t> inputs(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
  const auto length = static_cast<int64_t>(inputs.size());
  batch.inputs = ssm::Tensor::from_vector(inputs, {1, length});
  batch.targets = ssm::Tensor::from_vector(targets, {1, length});
  double nats = 0;
  {
    ssm::NoGradGuard no_grad;
    nats = double(batch_loss(*loaded.model, batch).item<float>()) * double(length);
  }
  const int64_t bytes = text_bytes(tokenizer, std::span<const int32_t>(ids).subspan(1));
  std::printf("bits per byte: %.4f (over %lld bytes)\n", nats / (std::log(2.0) * double(bytes)),
              static_cast<long long>(bytes));
  ssm::Generator unused(0);
  const std::vector<int32_t> stop{tokenizer.eos_id()}, banned{tokenizer.pad_id()};
  const GenerationResult result = generate(*loaded.model, std::span<const int32_t>(ids).subspan(1), tokenizer.eos_id(),
                                           max_new_tokens, tokenizer.vocab_size(), SamplingOptions{0.0, 0, 1.0},
                                           unused, stop, banned);
  std::printf("continuation: %s\n", tokenizer.decode(result.tokens).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  return run_tool("ssm-infer", [&] {
    ExperimentRequest request;
    std::vector<std::string> texts;
    std::string checkpoint;
    int64_t max_new_tokens = 160;
    FlagParser parser("ssm-infer", "(--experiment NAME | --checkpoint DIR) --text TEXT [--text TEXT ...]",
                      "Run a trained model on text: an SPO model prints its extraction (raw: and triples:), a\n"
                      "language model the text's bits per byte and its greedy continuation.");
    request.declare_flags(parser);
    parser.option("checkpoint", &checkpoint, "DIR", "a checkpoint folder (default: the experiment's best)");
    parser.repeated("text", &texts, "TEXT", "the input (repeat for several)");
    parser.option("max-new-tokens", &max_new_tokens, "N", "longest answer or continuation");
    const FlagParser::Result args = parse_tool_flags(parser, argc, argv);
    if (args.help) {
      std::fputs(parser.help().c_str(), stdout);
      return kExitOk;
    }
    if (request.experiment.empty() && checkpoint.empty()) throw UsageError("give --experiment NAME or --checkpoint DIR");
    if (texts.empty()) throw UsageError("give the input with --text TEXT");
    request.adhoc_task = "infer";
    const ExperimentSpec spec = resolve_request(request);
    const ssm::Device device = apply_target(spec.target, stderr);
    const LoadedModel loaded = load_checkpoint(checkpoint.empty() ? checkpoint_to_use(spec) : checkpoint);
    loaded.model->to(device);
    for (const std::string& text : texts) {
      if (loaded.info.data_kind == "spo") {
        const std::string answer = spo_answer(*loaded.model, *loaded.tokenizer, text, max_new_tokens);
        std::printf("raw: %s\ntriples: %s\n", answer.c_str(), format_triples(parse_triples(answer)).c_str());
      } else {
        describe_text(loaded, text, max_new_tokens);
      }
    }
    return kExitOk;
  });
}
