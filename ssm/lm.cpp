// ssm/lm.cpp — see lm.h.
#include "ssm/lm.h"

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "nn/init.h"
#include "ssm/mamba2.h"
#include "ssm/mamba3.h"

namespace ssm {
namespace {

std::shared_ptr<Mixer> make_mixer(const LMConfig& cfg, Generator& gen) {
  if (cfg.mixer.kind == MixerKind::Mamba2) return std::make_shared<Mamba2>(cfg.d_model, cfg.mixer, gen);
  return std::make_shared<Mamba3>(cfg.d_model, cfg.mixer, gen);
}

}  // namespace

Block::Block(const LMConfig& cfg, Generator& gen) {
  norm = register_module("norm", std::make_shared<nn::RMSNorm>(cfg.d_model, 1e-5));
  mixer = register_module("mixer", make_mixer(cfg, gen));
  if (cfg.d_intermediate > 0) {
    norm2 = register_module("norm2", std::make_shared<nn::RMSNorm>(cfg.d_model, 1e-5));
    mlp = register_module("mlp", std::make_shared<nn::GatedMLP>(cfg.d_model, cfg.d_intermediate, gen));
  }
}

Backbone::Backbone(const LMConfig& cfg, Generator& gen) {
  embedding = register_module("embedding", std::make_shared<nn::Embedding>(cfg.padded_vocab(), cfg.d_model, gen));
  layers = register_module("layers", std::make_shared<nn::ModuleList<Block>>());
  for (int64_t i = 0; i < cfg.n_layer; ++i) layers->push_back(std::make_shared<Block>(cfg, gen));
  norm_f = register_module("norm_f", std::make_shared<nn::RMSNorm>(cfg.d_model, 1e-5));
}

MambaLM::MambaLM(const LMConfig& cfg, Generator& gen) : config(cfg) {
  config.validate();
  backbone = register_module("backbone", std::make_shared<Backbone>(cfg, gen));
  nn::init::official_lm_init(*this, cfg.n_layer, gen);
}

Tensor MambaLM::forward(const Tensor& tokens, LMCache* cache) const {
  SSM_CHECK(tokens.dim() == 2 && (tokens.dtype() == DType::Int64 || tokens.dtype() == DType::Int32),
            "MambaLM: tokens must be an integer [batch, L] tensor, got ", tokens.describe());
  SSM_CHECK(!cache || cache->layers.size() == backbone->layers->size(), "MambaLM: the cache has ",
            cache ? cache->layers.size() : 0, " layers, the model ", backbone->layers->size());
  Tensor hidden = backbone->embedding->forward(tokens.to(device())), residual;
  for (size_t i = 0; i < backbone->layers->size(); ++i) {
    const Block& block = (*backbone->layers)[i];
    residual = residual.defined() ? hidden + residual : hidden;
    hidden = block.mixer->forward(block.norm->forward(residual), cache ? cache->layers[i].get() : nullptr);
    if (block.mlp) {
      residual = hidden + residual;
      hidden = block.mlp->forward(block.norm2->forward(residual));
    }
  }
  const Tensor final_hidden = backbone->norm_f->forward(hidden + residual);
  return autocast_matmul(final_hidden, transpose(backbone->embedding->weight, 0, 1));  // tied head
}

Device MambaLM::device() const { return backbone->embedding->weight.device(); }

Tensor MambaLM::step(const Tensor& tokens, LMCache& cache) const {
  SSM_CHECK(tokens.dim() == 1, "MambaLM::step: tokens must be [batch], got ", tokens.describe());
  return select(forward(tokens.view({tokens.size(0), 1}), &cache), 1, 0);
}

LMCache MambaLM::empty_cache(int64_t batch) const {
  LMCache cache;
  for (const auto& block : *backbone->layers) cache.layers.push_back(block->mixer->empty_cache(batch));
  return cache;
}

void MambaLM::set_scan_path(ScanPath path) {
  for (const auto& block : *backbone->layers) block->mixer->scan_path = path;
}

Tensor lm_loss(const Tensor& logits, const Tensor& tokens) {
  const int64_t L = tokens.size(1);
  SSM_CHECK(L >= 2, "lm_loss: need at least 2 tokens per sequence, got ", tokens.describe());
  return nn::cross_entropy(narrow(logits, 1, 0, L - 1), tokens.narrow(1, 1, L - 1));
}

}  // namespace ssm
