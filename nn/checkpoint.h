// nn/checkpoint.h — saving and resuming training: weights in one file, training state in another.
//
// A checkpoint is two safetensors files side by side:
//   model.safetensors           the parameters under their official names (what PyTorch users load)
//                               + __metadata__ (model config, tokenizer, "step", whatever the caller adds)
//   training_state.safetensors  optimiser state ("optim.<kind>.<param>", "optim.step"), the generator's
//                               256-bit state ("rng", 4 × int64 bit patterns), "step" and "data_position"
// Keeping them apart keeps the weights file clean for other tools. Each file is written atomically
// (nn/safetensors.h); both record the step, and loading refuses a pair whose steps differ (a crash
// between the two writes), so a resume never mixes weights and moments of different steps.
#pragma once
#include <string>

#include "nn/module.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "tensor/random.h"

namespace ssm::nn {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kTrainingStateFile = "training_state.safetensors";

// Write dir/model.safetensors (creating dir). `metadata` gets "step" added.
void save_model(const std::string& dir, const Module& model, int64_t step, safetensors::Metadata metadata = {});
// Load dir/model.safetensors into `model` (strict, see Module::load_state_dict); returns its metadata.
safetensors::Metadata load_model(const std::string& dir, Module& model,
                                 const std::vector<std::string>& ignored_keys = {});

struct TrainingProgress {
  int64_t step = 0;           // optimiser steps taken
  int64_t data_position = 0;  // the data sampler's position (meaning is the sampler's)
};

void save_training_state(const std::string& dir, const Optimizer& optimizer, const Generator& generator,
                         const TrainingProgress& progress);
// Restores optimizer and generator; checks the step against dir/model.safetensors.
TrainingProgress load_training_state(const std::string& dir, Optimizer& optimizer, Generator& generator);

}  // namespace ssm::nn
