// tasks/experiment.cpp — from a model spec to the official LMConfig.
#include "tasks/experiment.h"

#include "tensor/error.h"

namespace ssm::tasks {

LMConfig make_lm_config(const ModelSpec& model, int64_t vocab_size) {
  LMConfig cfg;
  if (model.architecture == "mamba2") {
    cfg.mixer = MixerConfig::mamba2_defaults();
    cfg.mixer.d_conv = model.d_conv;
  } else if (model.architecture == "mamba3") {
    cfg.mixer = MixerConfig::mamba3_defaults();
    cfg.mixer.rope_fraction = model.rope_fraction;
    cfg.mixer.is_mimo = model.mimo_rank > 1;
    cfg.mixer.mimo_rank = model.mimo_rank > 1 ? model.mimo_rank : cfg.mixer.mimo_rank;
    cfg.mixer.is_outproj_norm = model.outproj_norm;
    SSM_CHECK(model.mimo_rank >= 1, "model '", model.name, "': mimo_rank must be >= 1, got ", model.mimo_rank);
  } else {
    throw Error("model '" + model.name + "': architecture must be \"mamba2\" or \"mamba3\", got \"" +
                model.architecture + "\"");
  }
  cfg.mixer.d_state = model.d_state;
  cfg.mixer.expand = model.expand;
  cfg.mixer.headdim = model.headdim;
  cfg.mixer.ngroups = model.ngroups;
  cfg.mixer.chunk_size = model.chunk_size;
  cfg.d_model = model.d_model;
  cfg.n_layer = model.n_layer;
  cfg.d_intermediate = model.d_intermediate;
  cfg.vocab_size = vocab_size;
  cfg.pad_vocab_size_multiple = model.pad_vocab_size_multiple;
  try {
    cfg.validate();
  } catch (const Error& e) {
    throw Error("model '" + model.name + "': " + e.what());
  }
  return cfg;
}

}  // namespace ssm::tasks
