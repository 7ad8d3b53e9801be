// tasks/session.cpp — see session.h.
#include "tasks/session.h"


#ifdef _OPENMP
#include <omp.h>
#endif

#include "tasks/experiments_file.h"
#include "tasks/run_checkpoint.h"
#include "tensor/backend.h"
#include "tensor/error.h"

namespace ssm::tasks {

void ExperimentRequest::declare_flags(FlagParser& parser) {
  parser.section("Experiment");
  parser.option("experiment", &experiment, "NAME", "the experiment to run (see --list)");
  parser.option("config", &config_path, "PATH",
                "the experiments file (default: ./experiments.toml, else the one shipped with the tools)");
  parser.option("target", &target, "NAME", "where to run: a [targets.*] name (default: the experiment's)");
  parser.repeated("set", &overrides, "KEY=VALUE",
                  "override one setting, e.g. --set steps=200, --set model.d_state=32, --set data.local_dir=DIR");
}

OverrideFlags::OverrideFlags(std::vector<OverrideFlag> flags) : flags_(std::move(flags)), values_(flags_.size()) {}

void OverrideFlags::declare_flags(FlagParser& parser, const std::string& section) {
  parser.section(section);
  for (size_t i = 0; i < flags_.size(); ++i)
    parser.option(flags_[i].flag, &values_[i], flags_[i].metavar, flags_[i].help + " [" + flags_[i].key + "]");
}

bool OverrideFlags::any() const {
  for (const std::string& value : values_)
    if (!value.empty()) return true;
  return false;
}

std::vector<std::string> OverrideFlags::overrides() const {
  std::vector<std::string> result;
  for (size_t i = 0; i < flags_.size(); ++i) {
    const OverrideFlag& flag = flags_[i];
    const std::string& value = values_[i];
    if (value.empty()) continue;
    // A data file given on the command line also says which kind of source it is.
    if (flag.key == "data.path") result.push_back("data.kind=\"text\"");
    if (flag.key == "data.local_dir") result.push_back("data.kind=\"tinystories\"");
    if (!flag.quoted) {
      result.push_back(flag.key + "=" + value);
      continue;
    }
    std::string quoted = "\"";  // a TOML basic string: escape backslashes and quotes
    for (char c : value) quoted += (c == '\\' || c == '"') ? std::string("\\") + c : std::string(1, c);
    result.push_back(flag.key + "=" + quoted + "\"");
  }
  return result;
}

OverrideFlags low_level_flags() {
  return OverrideFlags({
      {"arch", "model.architecture", "mamba2|mamba3", "the block", true},
      {"tokenizer", "model.tokenizer", "byte|char", "the tokenizer", true},
      {"d-model", "model.d_model", "N", "model width", false},
      {"n-layer", "model.n_layer", "N", "number of blocks", false},
      {"d-state", "model.d_state", "N", "SSM state size per head", false},
      {"headdim", "model.headdim", "N", "head dimension", false},
      {"expand", "model.expand", "N", "inner width = expand x d_model", false},
      {"ngroups", "model.ngroups", "N", "B/C groups", false},
      {"mimo-rank", "model.mimo_rank", "R", "Mamba-3 MIMO rank (1 = SISO)", false},
      {"rope-fraction", "model.rope_fraction", "F", "Mamba-3 rotary fraction (0.5 or 1.0)", false},
      {"outproj-norm", "model.outproj_norm", "true|false", "Mamba-3 output-projection norm", false},
      {"chunk-size", "model.chunk_size", "N", "scan chunk length (speed only)", false},
      {"d-intermediate", "model.d_intermediate", "N", "GatedMLP width after each mixer (0 = none)", false},
      {"text-file", "data.path", "PATH", "train on this text file (sets the data kind to text)", true},
      {"valid-file", "data.valid_path", "PATH", "validation text (default: the end of --text-file)", true},
      {"tinystories-dir", "data.local_dir", "DIR", "a folder with TinyStories-{train,valid}.txt (no download)", true},
      {"steps", "steps", "N", "optimiser steps", false},
      {"batch", "batch", "N", "sequences per step", false},
      {"seq-len", "seq_len", "N", "tokens per sequence", false},
      {"lr", "lr", "LR", "peak learning rate", false},
      {"warmup", "warmup_steps", "N", "linear warm-up steps", false},
      {"eval-interval", "eval_interval", "N", "steps between evaluations", false},
      {"seed", "seed", "N", "random seed (init, data, samples)", false},
      {"output-dir", "output_dir", "DIR", "where checkpoints and metrics go", true},
      {"init-checkpoint", "init_checkpoint", "DIR", "start from this checkpoint folder (fine-tuning)", true},
      {"threads", "target.threads", "N", "CPU threads (0 = all cores)", false},
      {"device", "target.device", "cpu|cuda|auto", "where to run", true},
      {"precision", "target.precision", "fp32|bf16",
       "bf16: the matmuls take bfloat16 operands (float32 weights, optimiser, norms, scans, loss)", true},
  });
}

OverrideFlags generation_flags() {
  return OverrideFlags({
      {"prompt", "prompt", "TEXT", "the text to continue", true},
      {"max-new-tokens", "max_new_tokens", "N", "tokens to generate", false},
      {"temperature", "temperature", "T", "sampling temperature (0 = greedy)", false},
      {"top-k", "top_k", "K", "keep the K most likely tokens (0 = all)", false},
      {"top-p", "top_p", "P", "nucleus: keep the most likely tokens up to probability P (1 = all)", false},
      {"seed", "seed", "N", "sampling seed", false},
      {"threads", "target.threads", "N", "CPU threads (0 = all cores)", false},
  });
}

ExperimentSpec resolve_request(const ExperimentRequest& request) {
  if (request.experiment.empty()) {
    SSM_CHECK(request.target.empty(), "--target needs --experiment (or use --threads / --device)");
    return resolve_adhoc(request.adhoc_task, request.overrides);
  }
  const ExperimentsFile file =
      ExperimentsFile::load(request.config_path.empty() ? default_experiments_path() : request.config_path);
  ExperimentSpec spec = file.resolve(request.experiment, request.overrides, request.target);
  if (spec.args.init_checkpoint.empty() && !spec.args.init_from.empty())
    spec.args.init_checkpoint = file.resolve(spec.args.init_from).output_dir() + "/best";
  return spec;
}

Device apply_target(const TargetSpec& target, std::FILE* out) {
  const bool gpu_here = device_available(Device::cuda());
  if (target.device == "cuda" && !gpu_here) {
#if SSM_WITH_CUDA
    throw Error("target '" + target.name + "' asks for device \"cuda\", but this machine has no usable GPU (no "
                "NVIDIA GPU or driver found): use device \"cpu\" or \"auto\" (--device cpu)");
#else
    throw Error("target '" + target.name + "' asks for device \"cuda\", but this build has no CUDA backend (nvcc "
                "was not found when it was configured): use device \"cpu\" or \"auto\" (--device cpu)");
#endif
  }
  int threads = static_cast<int>(target.threads);
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
  threads = omp_get_max_threads();
#else
  threads = 1;
#endif
  if (target.device != "cpu" && gpu_here) {
    std::fprintf(out, "device: cuda:0, %d host thread%s (target %s)\n", threads, threads == 1 ? "" : "s",
                 target.name.c_str());
    return Device::cuda();
  }
  std::fprintf(out, "device: cpu, %d thread%s (target %s)\n", threads, threads == 1 ? "" : "s", target.name.c_str());
  return Device::cpu();
}

std::string checkpoint_to_use(const ExperimentSpec& spec) {
  if (!spec.args.init_checkpoint.empty() && spec.task != "pretrain" && spec.task != "finetune")
    return spec.args.init_checkpoint;
  const std::string best = spec.output_dir() + "/best";
  if (read_checkpoint_info(best)) return best;
  const std::string last = spec.output_dir() + "/last";
  if (read_checkpoint_info(last)) return last;
  throw Error("experiment '" + spec.name + "' has no checkpoint in " + spec.output_dir() +
              " yet: train it first (ssm-train --experiment " + spec.name + ") or pass --checkpoint DIR");
}

int run_tool(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: error: %s (see %s --help)\n", program.c_str(), e.what(), program.c_str());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program.c_str(), e.what());
    return kExitError;
  }
}

FlagParser::Result parse_tool_flags(const FlagParser& parser, int argc, char** argv, bool flags_after_dashes) {
  try {
    FlagParser::Result result = parser.parse(argc, argv);
    if (flags_after_dashes && !result.passthrough.empty()) {
      const FlagParser::Result after = parser.parse(result.passthrough);
      result.help = result.help || after.help;
      result.positional.insert(result.positional.end(), after.positional.begin(), after.positional.end());
      result.passthrough.clear();
    }
    if (!result.positional.empty() || !result.passthrough.empty())
      throw Error("unexpected argument \"" + (result.positional.empty() ? result.passthrough : result.positional)[0] + "\"");
    return result;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

}  // namespace ssm::tasks
