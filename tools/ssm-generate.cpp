// ssm-generate — generate text from a trained model with the recurrent cache.
//
//   ssm-generate --experiment tinystories-mamba3 --prompt "Once upon a time" --temperature 0.8 --top-k 40
//   ssm-generate --checkpoint runs/tinystories-mamba3/best --prompt "The dog" --max-new-tokens 300 --seed 7
// The prompt goes through the parallel scan once; each new token is one recurrent step, so memory and time per
// token stay constant however long the text. The text streams to stdout; timing goes to stderr.
#include <cstdio>

#include "autograd/grad_mode.h"
#include "tasks/experiments_file.h"
#include "tasks/generate.h"
#include "tasks/run_checkpoint.h"
#include "tasks/session.h"

using namespace ssm::tasks;

int main(int argc, char** argv) {
  return run_tool("ssm-generate", [&] {
    ExperimentRequest request;
    OverrideFlags generation = generation_flags();
    std::string checkpoint;
    FlagParser parser("ssm-generate", "(--experiment NAME | --checkpoint DIR) --prompt TEXT [options]",
                      "Generate text from a trained model. With --experiment, the sampling settings default to the\n"
                      "experiment's (prompt, max_new_tokens, temperature, top_k, top_p, seed) and the checkpoint is\n"
                      "the one it trained (or the one its init_from names).");
    request.declare_flags(parser);
    parser.option("checkpoint", &checkpoint, "DIR", "a checkpoint folder (model.safetensors with its config)");
    generation.declare_flags(parser, "Generation");
    const FlagParser::Result args = parse_tool_flags(parser, argc, argv);
    if (args.help) {
      std::fputs(parser.help().c_str(), stdout);
      return kExitOk;
    }
    if (request.experiment.empty() && checkpoint.empty()) throw UsageError("give --experiment NAME or --checkpoint DIR");
    request.adhoc_task = "generate";
    for (const std::string& o : generation.overrides()) request.overrides.push_back(o);
    const ExperimentSpec spec = resolve_request(request);
    const ssm::Device device = apply_target(spec.target, stderr);
    const LoadedModel loaded = load_checkpoint(checkpoint.empty() ? checkpoint_to_use(spec) : checkpoint);
    loaded.model->to(device);
    const ssm::Tokenizer& tokenizer = *loaded.tokenizer;

    const TaskArgs& a = spec.args;
    ssm::Generator rng(static_cast<uint64_t>(a.seed));
    const std::vector<int32_t> prompt = tokenizer.encode(a.prompt);
    const std::vector<int32_t> stop{tokenizer.eos_id()}, banned{tokenizer.pad_id()};
    std::fputs(a.prompt.c_str(), stdout);
    std::fflush(stdout);
    const GenerationResult result = generate(
        *loaded.model, prompt, tokenizer.eos_id(), a.max_new_tokens, tokenizer.vocab_size(),
        SamplingOptions{a.temperature, a.top_k, a.top_p}, rng, stop, banned, [&](int32_t token) {
          const std::string piece = tokenizer.decode(std::vector<int32_t>{token});
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
          return true;
        });
    std::fputs("\n", stdout);
    std::fflush(stdout);
    std::fprintf(stderr, "generated %zu tokens: %.1f tokens/s (%.2f ms/token), prompt of %zu tokens in %.1f ms\n",
                 result.tokens.size(), result.tokens_per_second(),
                 result.tokens.empty() ? 0.0 : 1e3 * result.decode_seconds / double(result.tokens.size()),
                 prompt.size(), 1e3 * result.prefill_seconds);
    return kExitOk;
  });
}
