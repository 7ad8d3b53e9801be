// ssm/lm.h — the language model (spec §4): the official MixerModel + MambaLMHeadModel.
//
//   h = embedding[tokens];  residual = none
//   for each layer:  residual = h (+ residual);  h = mixer(RMSNorm(residual))
//                    (with an MLP: residual = h + residual;  h = mlp(RMSNorm2(residual)))
//   logits = RMSNorm_f(h + residual) · embeddingᵀ        (the head is tied to the embedding)
// Keys are the official state_dict's: backbone.embedding.weight, backbone.layers.i.{norm, mixer, norm2, mlp}.*,
// backbone.norm_f.weight. `lm_head.weight` is the embedding itself and is not a separate parameter:
// official checkpoints that list it load with it ignored (spec §4.4).
#pragma once
#include <memory>
#include <vector>

#include "nn/layers.h"
#include "ssm/config.h"
#include "ssm/mixer.h"

namespace ssm {

class Block : public nn::Module {
 public:
  Block(const LMConfig& cfg, Generator& gen);
  std::shared_ptr<nn::RMSNorm> norm;
  std::shared_ptr<Mixer> mixer;
  std::shared_ptr<nn::RMSNorm> norm2;  // only with d_intermediate > 0
  std::shared_ptr<nn::GatedMLP> mlp;   // only with d_intermediate > 0
};

class Backbone : public nn::Module {
 public:
  Backbone(const LMConfig& cfg, Generator& gen);
  std::shared_ptr<nn::Embedding> embedding;
  std::shared_ptr<nn::ModuleList<Block>> layers;
  std::shared_ptr<nn::RMSNorm> norm_f;
};

// Every layer's decoding state (one MixerCache per layer).
struct LMCache {
  std::vector<std::unique_ptr<MixerCache>> layers;
};

class MambaLM : public nn::Module {
 public:
  // Builds the model with the official initialisation (§4.3), drawn from `gen`.
  MambaLM(const LMConfig& cfg, Generator& gen);

  // tokens [batch, L] (int64) → logits [batch, L, padded_vocab]. With a cache: continue from its state
  // and leave the final state in it (prefill = a fresh cache; a decoding step = L of 1).
  Tensor forward(const Tensor& tokens, LMCache* cache = nullptr) const;
  // One decoding step: tokens [batch] → logits [batch, padded_vocab].
  Tensor step(const Tensor& tokens, LMCache& cache) const;
  LMCache empty_cache(int64_t batch) const;
  // Where the parameters live; forward() and step() move their token ids there.
  Device device() const;

  void set_scan_path(ScanPath path);  // every mixer's
  // The official key of the tied head, absent from our state_dict.
  static constexpr const char* kTiedHeadKey = "lm_head.weight";

  const LMConfig config;
  std::shared_ptr<Backbone> backbone;
};

// Mean next-token cross-entropy: logits[:, :-1] against tokens[:, 1:], over the full padded vocabulary.
Tensor lm_loss(const Tensor& logits, const Tensor& tokens);

}  // namespace ssm
