// ssm/config.h — the language model's configuration, in the official `MambaConfig` schema (spec §4.2).
//
// A `config.json` written by the official code (or by us) reads into LMConfig and back without loss:
//   {"d_model": 160, "d_intermediate": 0, "n_layer": 5, "vocab_size": 256,
//    "ssm_cfg": {"layer": "Mamba3", "d_state": 16, "headdim": 16, "is_mimo": true, "mimo_rank": 2, ...},
//    "rms_norm": true, "residual_in_fp32": true, "fused_add_norm": true,
//    "pad_vocab_size_multiple": 8, "tie_embeddings": true, "attn_layer_idx": [], "attn_cfg": {}}
// Every key we do not model is an error that names it (an official option we silently ignored would
// give a different model); so is a value we do not support (attention layers, untied embeddings).
#pragma once
#include <cstdint>
#include <string>

namespace ssm {

enum class MixerKind { Mamba2, Mamba3 };

// The mixer's constructor arguments (ssm_cfg), Mamba-2's (§2.1) and Mamba-3's (§3.1) together; each
// block reads its own. Defaults are the official ones of the mixer named by `kind`.
struct MixerConfig {
  MixerKind kind = MixerKind::Mamba3;
  int64_t d_state = 128;
  int64_t expand = 2;
  int64_t headdim = 64;
  int64_t ngroups = 1;
  int64_t chunk_size = 64;  // does not change the math (§2.4, §3.8)
  double dt_min = 1e-3, dt_max = 0.1, dt_init_floor = 1e-4;
  // Mamba-2 only
  int64_t d_conv = 4;
  double A_init_min = 1, A_init_max = 16;
  // Mamba-3 only
  double rope_fraction = 0.5;
  bool is_mimo = false;
  int64_t mimo_rank = 4;  // R; ignored (R = 1) unless is_mimo
  bool is_outproj_norm = false;
  double A_floor = 1e-4;

  static MixerConfig mamba2_defaults();  // chunk 256
  static MixerConfig mamba3_defaults();  // chunk 64

  int64_t rank() const { return kind == MixerKind::Mamba3 && is_mimo ? mimo_rank : 1; }
  int64_t num_rope_angles() const;  // S of §3.1 (Mamba-3)
};

struct LMConfig {
  int64_t d_model = 2560;
  int64_t d_intermediate = 0;  // > 0 adds a GatedMLP after every mixer
  int64_t n_layer = 64;
  int64_t vocab_size = 50277;  // unpadded
  int64_t pad_vocab_size_multiple = 8;
  MixerConfig mixer;

  int64_t padded_vocab() const;  // vocab_size rounded up to the multiple (the embedding's rows)

  // Parse the official JSON (text or file). Errors name the file and the offending key.
  static LMConfig from_json(const std::string& text, const std::string& source = "config.json");
  static LMConfig load(const std::string& path);
  std::string to_json() const;  // the official schema, ssm_cfg with every key we model
  void validate() const;        // sizes consistent (heads divide, groups divide heads, ...); throws
};

}  // namespace ssm
