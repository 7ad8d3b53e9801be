// ssm/mixer.h — what every sequence mixer (Mamba-2, Mamba-3) offers the language model.
//
// One forward serves training, prefill and decoding (spec §2.5, §3.9):
//   forward(u)            the parallel pass from a zero state;
//   forward(u, &cache)    starts from the cache's state and leaves the final state in it. Prefill is
//                         this on a fresh cache; a decoding step is this with L = 1. Because both are
//                         the same code, "step-by-step decoding equals the full forward" tests the
//                         state hand-off itself: the final states, the previous-token terms, the angles.
// The cache holds tensors detached from the graph (decoding does not back-propagate), made once by
// empty_cache and then updated in place: their storage never changes, so a decoding step captured
// into a CUDA graph (ssm/decoder.h) reads and writes them at the addresses it recorded.
#pragma once
#include <memory>

#include "nn/module.h"
#include "ssm/config.h"
#include "tensor/random.h"

namespace ssm {

// Which scan implementation the mixer runs: the chunked fast path, or the sequential reference
// (for checking and teaching). Both compute the same function.
enum class ScanPath { Chunked, Reference };

struct MixerCache {
  virtual ~MixerCache() = default;
};

class Mixer : public nn::Module {
 public:
  // The sizes every mixer derives from its config: d_inner = expand·d_model, heads = d_inner / headdim.
  Mixer(int64_t d_model, const MixerConfig& cfg)
      : d_model(d_model),
        d_inner(cfg.expand * d_model),
        heads(cfg.expand * d_model / cfg.headdim),
        headdim(cfg.headdim),
        d_state(cfg.d_state),
        groups(cfg.ngroups),
        chunk_size(cfg.chunk_size) {}

  // u [batch, L, d_model] → [batch, L, d_model]
  virtual Tensor forward(const Tensor& u, MixerCache* cache = nullptr) const = 0;
  // A zero state (a fresh sequence) for `batch` sequences.
  virtual std::unique_ptr<MixerCache> empty_cache(int64_t batch) const = 0;
  const int64_t d_model, d_inner, heads, headdim, d_state, groups, chunk_size;
  ScanPath scan_path = ScanPath::Chunked;

 protected:
  // Whether a call on the tokens of u [batch, L, d_model] takes the chunked scan. A single token on the CPU (a
  // decoding step) takes the sequential one whatever scan_path says: one step is the recurrence
  // itself, and the chunked path's per-chunk set-up only pays over many steps. (The GPU has no
  // sequential kernel: its single steps stay chunked.)
  bool chunked_scan(const Tensor& u) const {
    return scan_path == ScanPath::Chunked && !(u.size(1) == 1 && u.device().is_cpu());
  }
};

// dt_bias, per head (spec §1): dt = exp(U(ln dt_min, ln dt_max)), floored at dt_init_floor, stored as
// softplus⁻¹(dt) = dt + ln(−expm1(−dt)) so that softplus(dt_bias) = dt at initialisation.
Tensor initial_dt_bias(int64_t heads, const MixerConfig& cfg, Generator& gen);

}  // namespace ssm
