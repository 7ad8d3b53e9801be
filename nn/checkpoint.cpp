// nn/checkpoint.cpp — see checkpoint.h.
#include "nn/checkpoint.h"

#include <cstring>
#include <filesystem>

namespace ssm::nn {

static std::string path_in(const std::string& dir, const char* file) { return (std::filesystem::path(dir) / file).string(); }

void save_model(const std::string& dir, const Module& model, int64_t step, safetensors::Metadata metadata) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  SSM_CHECK(!ec, "checkpoint: cannot create directory ", dir, ": ", ec.message());
  metadata["step"] = std::to_string(step);
  safetensors::save(path_in(dir, kModelFile), model.state_dict(), metadata);
}

safetensors::Metadata load_model(const std::string& dir, Module& model, const std::vector<std::string>& ignored_keys) {
  const std::string path = path_in(dir, kModelFile);
  safetensors::Contents contents = safetensors::load(path);
  try {
    model.load_state_dict(contents.tensors, ignored_keys);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return contents.metadata;
}

// The generator's 4 × 64-bit words, stored bit for bit as int64.
static Tensor rng_tensor(const Generator& generator) {
  std::vector<int64_t> words(4);
  const Generator::State state = generator.state();
  std::memcpy(words.data(), state.data(), sizeof(state));
  return Tensor::from_vector(words, {4});
}

void save_training_state(const std::string& dir, const Optimizer& optimizer, const Generator& generator,
                         const TrainingProgress& progress) {
  safetensors::TensorMap tensors;
  for (auto& [key, t] : optimizer.state_dict()) tensors.emplace("optim." + key, t);
  tensors.emplace("rng", rng_tensor(generator));
  tensors.emplace("step", Tensor::from_vector<int64_t>({progress.step}, {1}));
  tensors.emplace("data_position", Tensor::from_vector<int64_t>({progress.data_position}, {1}));
  safetensors::save(path_in(dir, kTrainingStateFile), tensors, {{"step", std::to_string(progress.step)}});
}

TrainingProgress load_training_state(const std::string& dir, Optimizer& optimizer, Generator& generator) {
  const std::string path = path_in(dir, kTrainingStateFile);
  const safetensors::Contents contents = safetensors::load(path);
  auto scalar = [&](const char* key) {
    const auto it = contents.tensors.find(key);
    SSM_CHECK(it != contents.tensors.end() && it->second.dtype() == DType::Int64 && it->second.numel() == 1, path,
              ": missing or malformed '", key, "'");
    return it->second.item<int64_t>();
  };
  TrainingProgress progress{scalar("step"), scalar("data_position")};

  const safetensors::Metadata model_meta = safetensors::load(path_in(dir, kModelFile)).metadata;
  const auto model_step = model_meta.find("step");
  SSM_CHECK(model_step != model_meta.end() && model_step->second == std::to_string(progress.step), path,
            ": training state is from step ", progress.step, " but ", kModelFile, " is from step ",
            model_step == model_meta.end() ? std::string("(unknown)") : model_step->second,
            " (a run was interrupted between the two writes; resume from another checkpoint)");

  const auto rng = contents.tensors.find("rng");
  SSM_CHECK(rng != contents.tensors.end() && rng->second.dtype() == DType::Int64 && rng->second.numel() == 4, path,
            ": missing or malformed 'rng'");
  StateDict optimizer_state;
  for (const auto& [key, t] : contents.tensors)
    if (key.rfind("optim.", 0) == 0) optimizer_state.emplace(key.substr(6), t);
  try {
    optimizer.load_state_dict(optimizer_state);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  Generator::State state;
  std::memcpy(state.data(), rng->second.data<int64_t>(), sizeof(state));
  generator.set_state(state);
  return progress;
}

}  // namespace ssm::nn
