// tasks/run_checkpoint.cpp — see run_checkpoint.h.
#include "tasks/run_checkpoint.h"

#include <fcntl.h>
#include <stdio.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "tensor/error.h"

namespace ssm::tasks {
namespace {

namespace fs = std::filesystem;

// Replace folder `dir` by `staged` in one step: exchange the two names, then delete the old contents.
void swap_into_place(const std::string& staged, const std::string& dir) {
  std::error_code error;
  if (fs::exists(dir)) {
    SSM_CHECK(::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0,
              "checkpoint: cannot move ", staged, " into place at ", dir, ": ", std::strerror(errno));
    fs::remove_all(staged, error);  // now the previous checkpoint
  } else {
    fs::rename(staged, dir, error);
    SSM_CHECK(!error, "checkpoint: cannot move ", staged, " into place at ", dir, ": ", error.message());
  }
}

std::string metadata_value(const safetensors::Metadata& metadata, const std::string& key, const std::string& path) {
  const auto it = metadata.find(key);
  SSM_CHECK(it != metadata.end(), path, ": no \"", key,
            "\" in its metadata (not a checkpoint written by ssm-train; official weights need their config.json "
            "through the C++ API)");
  return it->second;
}

// A number stored as metadata text; anything else is an error naming the file and key.
template <class Number>
Number metadata_number(const std::string& text, const std::string& key, const std::string& path) {
  try {
    size_t used = 0;
    const Number value = std::is_integral_v<Number> ? Number(std::stoll(text, &used)) : Number(std::stod(text, &used));
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw Error(path + ": metadata \"" + key + "\" is not a number: \"" + text.substr(0, 40) + "\"");
}

CheckpointInfo info_from(const safetensors::Metadata& metadata, const std::string& path) {
  CheckpointInfo info;
  info.experiment = metadata.count("experiment") ? metadata.at("experiment") : "";
  info.data_kind = metadata.count("data_kind") ? metadata.at("data_kind") : "";
  info.step = metadata_number<int64_t>(metadata_value(metadata, "step", path), "step", path);
  info.valid_loss =
      metadata.count("valid_loss") ? metadata_number<double>(metadata.at("valid_loss"), "valid_loss", path) : std::nan("");
  return info;
}

// "key: checkpoint A, this run B" for every top-level or ssm_cfg key whose values differ.
std::vector<std::string> config_differences(const std::string& saved_json, const std::string& ours_json) {
  const auto saved = nlohmann::json::parse(saved_json), ours = nlohmann::json::parse(ours_json);
  std::vector<std::string> differences;
  auto compare = [&](const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix) {
    for (const auto& [key, value] : b.items()) {
      if (key == "ssm_cfg") continue;
      const auto other = a.find(key);
      const std::string theirs = other == a.end() ? "(absent)" : other->dump();
      if (theirs != value.dump()) differences.push_back(prefix + key + ": checkpoint " + theirs + ", this run " + value.dump());
    }
  };
  compare(saved, ours, "");
  if (saved.contains("ssm_cfg") && ours.contains("ssm_cfg")) compare(saved["ssm_cfg"], ours["ssm_cfg"], "ssm_cfg.");
  return differences;
}

}  // namespace

void save_checkpoint(const std::string& dir, const MambaLM& model, const Tokenizer& tokenizer,
                     const CheckpointInfo& info, const std::optional<TrainingStateRef>& training_state) {
  const std::string staged = dir + ".tmp";
  std::error_code error;
  fs::remove_all(staged, error);  // a leftover of an earlier interrupted save
  safetensors::Metadata metadata{{"config", model.config.to_json()},
                                     {"tokenizer", tokenizer.to_json()},
                                     {"experiment", info.experiment},
                                     {"data_kind", info.data_kind},
                                     {"format", "ssm-engine checkpoint"}};
  if (!std::isnan(info.valid_loss)) metadata["valid_loss"] = std::to_string(info.valid_loss);
  nn::save_model(staged, model, info.step, metadata);
  {
    std::ofstream config(fs::path(staged) / "config.json");
    config << model.config.to_json() << "\n";
    SSM_CHECK(config.good(), "checkpoint: cannot write ", staged, "/config.json");
  }
  if (training_state) {
    nn::save_training_state(staged, training_state->optimizer, training_state->data_generator,
                            training_state->progress);
  }
  swap_into_place(staged, dir);
}

std::optional<CheckpointInfo> read_checkpoint_info(const std::string& dir) {
  const fs::path path = fs::path(dir) / nn::kModelFile;
  if (!fs::exists(path)) return std::nullopt;
  return info_from(safetensors::load(path.string()).metadata, path.string());
}

LoadedModel load_checkpoint(const std::string& dir) {
  const std::string path = (fs::path(dir) / nn::kModelFile).string();
  SSM_CHECK(fs::exists(path), "no checkpoint at ", dir, " (", nn::kModelFile,
            " missing): train the experiment first, or pass --checkpoint DIR");
  safetensors::Contents contents = safetensors::load(path);
  LoadedModel loaded;
  loaded.info = info_from(contents.metadata, path);
  try {
    loaded.tokenizer = tokenizer_from_json(metadata_value(contents.metadata, "tokenizer", path));
  } catch (const TokenizerError& e) {
    throw Error(path + ": tokenizer: " + e.what());
  }
  const LMConfig config = LMConfig::from_json(metadata_value(contents.metadata, "config", path), path + " (config)");
  Generator unused_init(0);  // the weights are overwritten by the checkpoint's
  loaded.model = std::make_unique<MambaLM>(config, unused_init);
  try {
    loaded.model->load_state_dict(contents.tensors, {MambaLM::kTiedHeadKey});
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return loaded;
}

CheckpointInfo init_from_checkpoint(const std::string& dir, MambaLM& model, const Tokenizer& tokenizer) {
  const std::string path = (fs::path(dir) / nn::kModelFile).string();
  SSM_CHECK(fs::exists(path), "init checkpoint ", dir, " not found (", nn::kModelFile,
            " missing): run the experiment it comes from first");
  safetensors::Contents contents = safetensors::load(path);
  const std::string saved_tokenizer = metadata_value(contents.metadata, "tokenizer", path);
  SSM_CHECK(saved_tokenizer == tokenizer.to_json(), "cannot start from ", dir, ": its tokenizer ",
            saved_tokenizer.substr(0, 60), " differs from this run's ", tokenizer.to_json().substr(0, 60));
  const auto differences = config_differences(metadata_value(contents.metadata, "config", path), model.config.to_json());
  if (!differences.empty()) {
    std::string message = "cannot start from " + dir + ": its architecture differs (";
    for (size_t i = 0; i < differences.size(); ++i) message += (i ? "; " : "") + differences[i];
    throw Error(message + ")");
  }
  try {
    model.load_state_dict(contents.tensors, {MambaLM::kTiedHeadKey});
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return info_from(contents.metadata, path);
}

}  // namespace ssm::tasks
