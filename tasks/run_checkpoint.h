// tasks/run_checkpoint.h — a training run's checkpoint folders (`best`, `last`) and loading models from them.
//
// A checkpoint folder holds
//   model.safetensors           the weights under the official keys; __metadata__ carries "config" (the official
//                               config.json text), "tokenizer" (its JSON), "experiment", "data_kind" (what
//                               it was trained on: "spo" marks an extraction model), "step", "valid_loss"
//   config.json                 the same config, so official tools load the folder as it is
//   training_state.safetensors  optimiser moments, data-sampler RNG, step (only where a run can resume: `last`)
// A folder is written whole into "<dir>.tmp" and then swapped with the old one in one atomic rename
// (renameat2 RENAME_EXCHANGE), so a crash or Ctrl-C at any moment leaves the previous checkpoint intact.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "nn/checkpoint.h"
#include "ssm/lm.h"
#include "tokenizers/tokenizer.h"

namespace ssm::tasks {

struct CheckpointInfo {
  std::string experiment;
  std::string data_kind;  // the data source's kind: "tinystories", "text" or "spo"
  int64_t step = 0;
  double valid_loss = 0;  // NaN when the run had not evaluated yet
};

// The resumable part of a checkpoint (for `last`).
struct TrainingStateRef {
  const nn::Optimizer& optimizer;
  const Generator& data_generator;
  nn::TrainingProgress progress;
};

void save_checkpoint(const std::string& dir, const MambaLM& model, const Tokenizer& tokenizer,
                     const CheckpointInfo& info, const std::optional<TrainingStateRef>& training_state);

struct LoadedModel {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<MambaLM> model;
  CheckpointInfo info;
};

// Build the model a checkpoint folder describes and load its weights. Errors name the folder and what is
// missing or malformed.
LoadedModel load_checkpoint(const std::string& dir);

// The info recorded in a folder's model.safetensors (nullopt when there is no checkpoint there).
std::optional<CheckpointInfo> read_checkpoint_info(const std::string& dir);

// Start `model` from a checkpoint's weights (fine-tuning). Refuses, naming every difference, a checkpoint whose
// tokenizer or architecture differs from this run's ("d_state: checkpoint 16, this run 32").
CheckpointInfo init_from_checkpoint(const std::string& dir, MambaLM& model, const Tokenizer& tokenizer);

}  // namespace ssm::tasks
