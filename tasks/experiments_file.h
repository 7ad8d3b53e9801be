// tasks/experiments_file.h — experiments.toml: named models, data sources, targets and experiments.
//
// The file (the shipped one at the repository root documents every key):
//   [defaults.model]        ModelSpec keys applied to every [models.*] before its own
//   [models.NAME]           ModelSpec keys (tasks/experiment.h)
//   [data.NAME]             DataSpec keys
//   [targets.NAME]          TargetSpec keys; "local" exists even when the file does not define it
//   [defaults.experiment]   TaskArgs keys applied to every experiment before its own
//   [experiments.NAME]      description, task, model, data, target, and TaskArgs keys
//   resolved = true         (top level, written by to_toml) this file is one resolved experiment: its
//                           init_from names an experiment of the file it was resolved from, so it is not
//                           looked up here
// Parsing is strict: unknown tables and keys (with a "did you mean" when one is close), wrong types (an
// integer is accepted where a float is expected, never the reverse), values out of range and references
// to names that do not exist are errors, each naming FILE:LINE:COLUMN and the dotted key. The whole file
// is checked on load — every experiment resolved — so a typo anywhere is reported at once.
//
// Names are TOML bare keys (letters, digits, '-', '_'): experiment names become folders under runs/.
// Relative data paths (data.path, data.valid_path, data.local_dir) are taken from the file's folder when
// written in a file and from the working directory when given as overrides; load() makes them absolute.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tasks/experiment.h"

namespace ssm::tasks {

namespace detail {
struct ExperimentsDocument;  // the parsed TOML and where it came from
}

class ExperimentsFile {
 public:
  // Read, parse and validate the file at `path`; relative data paths resolve against its folder.
  static ExperimentsFile load(const std::string& path);
  // Same for text already in memory: `source_name` is what messages call it, `base_dir` the folder
  // relative data paths resolve against.
  static ExperimentsFile parse(std::string_view text, const std::string& source_name, const std::string& base_dir);

  const std::string& source() const;
  std::vector<std::string> experiment_names() const;  // in file order
  std::vector<std::string> target_names() const;      // in file order, the built-in "local" first if not defined

  // One line per experiment for --list: "NAME  task  model  data  description", columns aligned
  // ("-" for an experiment without data).
  std::string list() const;

  // Resolve experiment `name`: defaults, then the model/data/target it names, then `target_override`
  // (a target name, "" = the experiment's), then `overrides`, in order. Each override is "key=value":
  //   key    a TaskArgs field; `description`, `task`, `model`, `data`, `target` (re-pointing the
  //          reference: the named entry replaces the current copy); or `model.<field>`, `data.<field>`,
  //          `target.<field>` (changing the resolved copy only).
  //   value  a TOML value (`steps=200`, `lr=1e-3`, `prompt="Hi"`); text that is not one, or any text
  //          for a string field, is taken as a string (`data.local_dir=../shared/data/tinystories`).
  // Errors name the override ("--set steps=abc: steps: expected an integer, got a string ("abc")"); an
  // unknown key lists the valid ones, an unknown experiment the available names (closest first).
  ExperimentSpec resolve(const std::string& name, const std::vector<std::string>& overrides = {},
                         const std::string& target_override = "") const;

 private:
  explicit ExperimentsFile(std::shared_ptr<const detail::ExperimentsDocument> document);
  std::shared_ptr<const detail::ExperimentsDocument> document_;
};

// An experiment from built-in defaults only (no file): name "adhoc", task `task`, the default ModelSpec,
// DataSpec (both also named "adhoc"), TargetSpec and TaskArgs of tasks/experiment.h, then `overrides` as
// in ExperimentsFile::resolve (re-pointing a reference fails: there is nothing to name). For the CLI's
// low-level flags when no experiment is given.
ExperimentSpec resolve_adhoc(const std::string& task, const std::vector<std::string>& overrides);

// The resolved spec as a TOML document that load() reads back to the same spec: its model, data and
// target written out in full under their names, then the experiment, marked `resolved = true`. What
// --dry-run prints and each run saves as resolved.toml. Data paths are written as they are (absolute
// when the spec came from load()).
std::string to_toml(const ExperimentSpec& spec);

// experiments.toml in the current directory if it exists, else the source tree's (SSM_SOURCE_DIR), else
// the installed copy (SSM_INSTALLED_EXPERIMENTS; both set by CMakeLists.txt). Throws naming every place.
std::string default_experiments_path();

}  // namespace ssm::tasks
