// tasks/session.h — what every command-line tool does before and around its task.
//
//   1. find the experiments file (--config, else ./experiments.toml, else the one shipped with the tools);
//   2. resolve the experiment (or, with no --experiment, the built-in defaults) with the target, the
//      `--set key=value` overrides and the low-level flags, and follow init_from to a checkpoint folder;
//   3. apply the target: CPU threads, device;
//   4. run, turning any error into one line on stderr and an exit code.
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "tasks/experiment.h"
#include "tasks/flags.h"
#include "tensor/device.h"
#include "tensor/error.h"

namespace ssm::tasks {

// Exit codes of every tool.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;        // the task failed (bad data, bad checkpoint, ...)
inline constexpr int kExitUsage = 2;        // bad command line or experiments file
inline constexpr int kExitInterrupted = 130;  // Ctrl-C (after saving a checkpoint)

// The experiment-selection flags shared by ssm-train, ssm-infer and ssm-generate.
struct ExperimentRequest {
  std::string config_path;                // --config ("" = default_experiments_path())
  std::string experiment;                 // --experiment ("" = built-in defaults + low-level flags)
  std::string target;                     // --target
  std::vector<std::string> overrides;     // --set key=value, then the low-level flags' overrides
  std::string adhoc_task = "pretrain";    // the task when there is no --experiment

  void declare_flags(FlagParser& parser);  // --config, --experiment, --target, --set
};

// Flags that are other spellings of `--set` overrides (--d-state 32 is --set model.d_state=32): the
// low-level flags that bypass the TOML, and the generation knobs.
struct OverrideFlag {
  std::string flag, key, metavar, help;
  bool quoted;  // a string setting (the value is written as a TOML string), else written as it is
};

class OverrideFlags {
 public:
  explicit OverrideFlags(std::vector<OverrideFlag> flags);
  void declare_flags(FlagParser& parser, const std::string& section);
  std::vector<std::string> overrides() const;  // "key=value" for the flags given, in declaration order
  bool any() const;

 private:
  std::vector<OverrideFlag> flags_;
  std::vector<std::string> values_;  // "" = not given
};

// The prototype's low-level flags: architecture, sizes, data, training knobs, target.
OverrideFlags low_level_flags();
// --prompt, --max-new-tokens, --temperature, --top-k, --top-p, --seed.
OverrideFlags generation_flags();

// Steps 1–2. `init_from` becomes args.init_checkpoint = <that experiment's output dir>/best.
ExperimentSpec resolve_request(const ExperimentRequest& request);

// Step 3: picks the device (device "auto" = the GPU when this build has CUDA and the machine a GPU, else
// the CPU; "cuda" without one is an error saying which is missing) and sets the CPU thread count.
// Prints one line to `out`; returns the device the task runs on.
Device apply_target(const TargetSpec& target, std::FILE* out);

// The checkpoint folder a generate/infer run reads: args.init_checkpoint when set, else the experiment's own
// <output dir>/best, else <output dir>/last.
std::string checkpoint_to_use(const ExperimentSpec& spec);

// Step 4: runs `body`, returning its exit code; an exception becomes "PROGRAM: error: message" on stderr and
// kExitError (kExitUsage for `usage_errors`, which the caller throws while reading its command line).
struct UsageError : Error {
  using Error::Error;
};
int run_tool(const std::string& program, const std::function<int()>& body);

// Parse a tool's command line with `parser`: flag errors and stray arguments become UsageErrors. The
// arguments after a bare "--" are parsed with the same flags when `flags_after_dashes` (ssm-train's
// low-level flags), else refused.
FlagParser::Result parse_tool_flags(const FlagParser& parser, int argc, char** argv, bool flags_after_dashes = false);

}  // namespace ssm::tasks
