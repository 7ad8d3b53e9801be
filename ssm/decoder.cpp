// ssm/decoder.cpp — see decoder.h.
#include "ssm/decoder.h"

#include "autograd/grad_mode.h"

namespace ssm {

Decoder::Decoder(const MambaLM& model, int64_t batch, bool use_graph)
    : model_(model), batch_(batch), use_graph_(use_graph && !model.device().is_cpu()), cache_(model.empty_cache(batch)) {
  SSM_CHECK(batch > 0, "Decoder: batch must be positive, got ", batch);
}

Tensor Decoder::prefill(const Tensor& tokens) {
  SSM_CHECK(tokens.dim() == 2 && tokens.size(0) == batch_, "Decoder::prefill: tokens must be [", batch_,
            ", L], got ", tokens.describe());
  NoGradGuard no_grad;
  return model_.forward(tokens, &cache_);
}

Tensor Decoder::step(const Tensor& tokens) {
  SSM_CHECK(tokens.shape() == Shape{batch_}, "Decoder::step: tokens must be [", batch_, "], got ", tokens.describe());
  NoGradGuard no_grad;
  if (!use_graph_) return model_.step(tokens, cache_);
  const Device device = model_.device();
  if (!graph_) {
    tokens_ = tokens.to(device).to(DType::Int64).clone();
    // One eager step on a scratch cache first: every kernel the step uses gets loaded and every
    // library handle set up outside the capture, which records launches only.
    LMCache scratch = model_.empty_cache(batch_);
    (void)model_.step(tokens_, scratch);
    graph_ = backend_for(device).capture([&] { logits_ = model_.step(tokens_, cache_); });
    if (!graph_) {  // this backend cannot capture: step eagerly from now on
      use_graph_ = false;
      return model_.step(tokens_, cache_);
    }
  } else {
    tokens_.copy_(tokens.to(device).to(DType::Int64));
  }
  graph_->replay();
  return logits_;
}

}  // namespace ssm
