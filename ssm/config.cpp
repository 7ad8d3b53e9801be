// ssm/config.cpp — see config.h. Reading is strict: a key is either modelled, or an official
// option at the one value we implement (e.g. "rms_norm": true), or an error.
#include "ssm/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/error.h"

namespace ssm {
namespace {

using json = nlohmann::json;

// Reads typed values out of one JSON object, remembering which keys were used so the rest can be
// reported as unknown.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {
    SSM_CHECK(object_.is_object(), where_, ": expected a JSON object");
  }

  template <class T>
  void read(const char* key, T& value) {
    const auto it = object_.find(key);
    used_.push_back(key);
    if (it == object_.end()) return;  // keep the default
    try {
      if constexpr (std::is_same_v<T, bool>) {
        SSM_CHECK(it->is_boolean(), "expected true or false");
      } else if constexpr (std::is_integral_v<T>) {
        SSM_CHECK(it->is_number_integer(), "expected an integer");
      } else if constexpr (std::is_floating_point_v<T>) {
        SSM_CHECK(it->is_number(), "expected a number");
      } else {
        SSM_CHECK(it->is_string(), "expected a string");
      }
      value = it->template get<T>();
    } catch (const std::exception& e) {
      throw Error(detail::concat(where_, ": key \"", key, "\": ", e.what(), ", got ", it->dump()));
    }
  }

  // A key read elsewhere, or accepted and unused.
  void skip(const char* key) { used_.push_back(key); }

  // An official option we implement at one value only: absent, or equal to it.
  void require(const char* key, const json& only_supported) {
    used_.push_back(key);
    const auto it = object_.find(key);
    SSM_CHECK(it == object_.end() || *it == only_supported, where_, ": key \"", key, "\" = ", it->dump(),
              " is not supported (only ", only_supported.dump(), ")");
  }

  void reject_unknown() const {
    for (const auto& [key, value] : object_.items()) {
      bool known = false;
      for (const std::string& used : used_) known = known || used == key;
      SSM_CHECK(known, where_, ": unknown key \"", key, "\"");
    }
  }

 private:
  const json& object_;
  std::string where_;
  std::vector<std::string> used_;
};

MixerConfig read_mixer(const json& ssm_cfg, const std::string& where) {
  ObjectReader in(ssm_cfg, where + ": ssm_cfg");
  std::string layer = "Mamba1";  // the official default, which we do not implement
  in.read("layer", layer);
  SSM_CHECK(layer == "Mamba2" || layer == "Mamba3", where, ": ssm_cfg.layer must be \"Mamba2\" or \"Mamba3\", got \"",
            layer, "\"");
  MixerConfig m = layer == "Mamba2" ? MixerConfig::mamba2_defaults() : MixerConfig::mamba3_defaults();
  in.read("d_state", m.d_state);
  in.read("expand", m.expand);
  in.read("headdim", m.headdim);
  in.read("ngroups", m.ngroups);
  in.read("chunk_size", m.chunk_size);
  in.read("dt_min", m.dt_min);
  in.read("dt_max", m.dt_max);
  in.read("dt_init_floor", m.dt_init_floor);
  for (const char* absorbed : {"layer_idx", "n_layer", "dropout"}) in.skip(absorbed);  // accepted, unused (§3.1)
  if (m.kind == MixerKind::Mamba2) {
    in.read("d_conv", m.d_conv);
    const auto range = ssm_cfg.find("A_init_range");
    if (range != ssm_cfg.end()) {
      SSM_CHECK(range->is_array() && range->size() == 2 && (*range)[0].is_number() && (*range)[1].is_number(), where,
                ": ssm_cfg: key \"A_init_range\": expected [low, high], got ", range->dump());
      m.A_init_min = (*range)[0].get<double>();
      m.A_init_max = (*range)[1].get<double>();
    }
    in.skip("A_init_range");
    in.require("d_ssm", nullptr);
    in.require("rmsnorm", true);
    in.require("norm_before_gate", false);
    in.require("D_has_hdim", false);
    in.require("bias", false);
    in.require("conv_bias", true);
  } else {
    in.read("rope_fraction", m.rope_fraction);
    in.read("is_mimo", m.is_mimo);
    in.read("mimo_rank", m.mimo_rank);
    in.read("is_outproj_norm", m.is_outproj_norm);
    in.read("A_floor", m.A_floor);
  }
  in.reject_unknown();
  return m;
}

}  // namespace

MixerConfig MixerConfig::mamba2_defaults() {
  MixerConfig m;
  m.kind = MixerKind::Mamba2;
  m.chunk_size = 256;
  return m;
}

MixerConfig MixerConfig::mamba3_defaults() { return MixerConfig(); }

int64_t MixerConfig::num_rope_angles() const {
  int64_t split = static_cast<int64_t>(static_cast<double>(d_state) * rope_fraction);
  if (split % 2 != 0) --split;
  return split / 2;
}

int64_t LMConfig::padded_vocab() const {
  const int64_t m = pad_vocab_size_multiple;
  return (vocab_size + m - 1) / m * m;
}

void LMConfig::validate() const {
  const MixerConfig& m = mixer;
  SSM_CHECK(d_model > 0 && n_layer > 0 && vocab_size > 0 && pad_vocab_size_multiple > 0 && d_intermediate >= 0,
            "config: d_model, n_layer, vocab_size and pad_vocab_size_multiple must be positive");
  SSM_CHECK(m.d_state > 0 && m.expand > 0 && m.headdim > 0 && m.ngroups > 0 && m.chunk_size > 0,
            "config: d_state, expand, headdim, ngroups and chunk_size must be positive");
  const int64_t d_inner = m.expand * d_model;
  SSM_CHECK(d_inner % m.headdim == 0, "config: headdim ", m.headdim, " does not divide d_inner = expand·d_model = ",
            d_inner);
  const int64_t heads = d_inner / m.headdim;
  SSM_CHECK(heads % m.ngroups == 0, "config: ngroups ", m.ngroups, " does not divide the ", heads, " heads");
  SSM_CHECK(m.dt_min > 0 && m.dt_max >= m.dt_min, "config: need 0 < dt_min <= dt_max");
  if (m.kind == MixerKind::Mamba2) {
    SSM_CHECK(m.d_conv > 0, "config: d_conv must be positive");
    SSM_CHECK(m.A_init_min > 0 && m.A_init_max >= m.A_init_min, "config: A_init_range must be positive and ordered");
  } else {
    SSM_CHECK(m.rope_fraction == 0.5 || m.rope_fraction == 1.0, "config: rope_fraction must be 0.5 or 1.0, got ",
              m.rope_fraction);
    SSM_CHECK(m.num_rope_angles() > 0, "config: d_state ", m.d_state, " leaves no rotary angle");
    SSM_CHECK(!m.is_mimo || m.mimo_rank > 0, "config: mimo_rank must be positive");
    SSM_CHECK(m.A_floor >= 0, "config: A_floor must be >= 0");
  }
}

LMConfig LMConfig::from_json(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(detail::concat(source, ": not valid JSON: ", e.what()));
  }
  ObjectReader in(root, source);
  LMConfig c;
  in.read("d_model", c.d_model);
  in.read("d_intermediate", c.d_intermediate);
  in.read("n_layer", c.n_layer);
  in.read("vocab_size", c.vocab_size);
  in.read("pad_vocab_size_multiple", c.pad_vocab_size_multiple);
  const auto ssm_cfg = root.find("ssm_cfg");
  c.mixer = read_mixer(ssm_cfg == root.end() ? json::object() : *ssm_cfg, source);
  in.skip("ssm_cfg");
  in.require("attn_layer_idx", json::array());
  in.require("attn_cfg", json::object());
  in.require("rms_norm", true);
  in.require("tie_embeddings", true);
  bool flag = true;
  in.read("residual_in_fp32", flag);  // float32 throughout here: a no-op either way
  in.read("fused_add_norm", flag);    // a kernel fusion with the same math
  in.reject_unknown();
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(detail::concat(source, ": ", e.what()));
  }
  return c;
}

LMConfig LMConfig::load(const std::string& path) {
  std::ifstream file(path);
  SSM_CHECK(file, path, ": cannot open");
  std::ostringstream text;
  text << file.rdbuf();
  return from_json(text.str(), path);
}

std::string LMConfig::to_json() const {
  const MixerConfig& m = mixer;
  json ssm_cfg = {{"layer", m.kind == MixerKind::Mamba2 ? "Mamba2" : "Mamba3"},
                  {"d_state", m.d_state},
                  {"expand", m.expand},
                  {"headdim", m.headdim},
                  {"ngroups", m.ngroups},
                  {"chunk_size", m.chunk_size},
                  {"dt_min", m.dt_min},
                  {"dt_max", m.dt_max},
                  {"dt_init_floor", m.dt_init_floor}};
  if (m.kind == MixerKind::Mamba2) {
    ssm_cfg["d_conv"] = m.d_conv;
    ssm_cfg["A_init_range"] = {m.A_init_min, m.A_init_max};
  } else {
    ssm_cfg["rope_fraction"] = m.rope_fraction;
    ssm_cfg["is_mimo"] = m.is_mimo;
    ssm_cfg["mimo_rank"] = m.mimo_rank;
    ssm_cfg["is_outproj_norm"] = m.is_outproj_norm;
    ssm_cfg["A_floor"] = m.A_floor;
  }
  const json root = {{"d_model", d_model},
                     {"d_intermediate", d_intermediate},
                     {"n_layer", n_layer},
                     {"vocab_size", vocab_size},
                     {"ssm_cfg", ssm_cfg},
                     {"attn_layer_idx", json::array()},
                     {"attn_cfg", json::object()},
                     {"rms_norm", true},
                     {"residual_in_fp32", true},
                     {"fused_add_norm", true},
                     {"pad_vocab_size_multiple", pad_vocab_size_multiple},
                     {"tie_embeddings", true}};
  return root.dump(2);
}

}  // namespace ssm
