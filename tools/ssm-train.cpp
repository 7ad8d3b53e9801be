// ssm-train — pretrain or fine-tune a model: `ssm-train --experiment tinystories-mamba3`.
//
// The experiment (experiments.toml) says what to train on what; --set and the low-level flags change any of
// it; --dry-run shows the result without running. Progress goes to stdout (one updating line on a terminal),
// metrics to <output dir>/metrics.jsonl, checkpoints to <output dir>/{best,last}. Ctrl-C saves `last` and
// exits 130; --resume continues from it.
#include <cstdio>

#include "tasks/experiments_file.h"
#include "tasks/finetune.h"
#include "tasks/pretrain.h"
#include "tasks/session.h"

using namespace ssm::tasks;

int main(int argc, char** argv) {
  return run_tool("ssm-train", [&] {
    ExperimentRequest request;
    OverrideFlags low_level = low_level_flags();
    bool list = false, dry_run = false, resume = false;
    std::string task = "pretrain";
    FlagParser parser("ssm-train", "--experiment NAME [--target NAME] [--set KEY=VALUE ...] [-- LOW-LEVEL FLAGS]",
                      "Train a state space language model as an experiment of experiments.toml describes.\n"
                      "Without --experiment, the low-level flags alone describe the run (e.g. --text-file).");
    request.declare_flags(parser);
    parser.flag("list", &list, "list the experiments of the experiments file and exit");
    parser.flag("dry-run", &dry_run, "print the fully resolved configuration and exit");
    parser.flag("resume", &resume, "continue from <output dir>/last (weights, optimiser, data position)");
    parser.option("task", &task, "pretrain|finetune", "the task when there is no --experiment");
    low_level.declare_flags(parser, "Low-level flags (bypass experiments.toml; each sets the key in brackets)");
    const FlagParser::Result args = parse_tool_flags(parser, argc, argv, /*flags_after_dashes=*/true);
    if (args.help) {
      std::fputs(parser.help().c_str(), stdout);
      return kExitOk;
    }
    if (list) {
      const std::string path = request.config_path.empty() ? default_experiments_path() : request.config_path;
      std::printf("experiments in %s:\n%s", path.c_str(), ExperimentsFile::load(path).list().c_str());
      return kExitOk;
    }
    if (request.experiment.empty() && !low_level.any())
      throw UsageError("say what to train: --experiment NAME (see --list), or low-level flags such as --text-file");
    request.adhoc_task = task;
    for (const std::string& o : low_level.overrides()) request.overrides.push_back(o);

    const ExperimentSpec spec = resolve_request(request);
    if (dry_run) {
      std::fputs(to_toml(spec).c_str(), stdout);
      return kExitOk;
    }
    const TrainOptions options{resume, stdout, apply_target(spec.target, stdout)};
    TrainOutcome outcome;
    if (spec.task == "pretrain") {
      outcome = run_pretrain(spec, options);
    } else if (spec.task == "finetune") {
      outcome = run_finetune(spec, options);
    } else {
      throw ssm::Error("experiment '" + spec.name + "' is a " + spec.task + " task: run ssm-" +
                       (spec.task == "infer" ? "infer" : "generate") + " --experiment " + spec.name);
    }
    return outcome.interrupted ? kExitInterrupted : kExitOk;
  });
}
