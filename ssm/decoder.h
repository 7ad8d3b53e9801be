// ssm/decoder.h — token-by-token decoding of a MambaLM with its own cache; on a GPU, one captured step
// replayed per token.
//
// MambaLM::step is the whole forward pass at L = 1: on a GPU, hundreds of small kernels whose launches
// cost the host more time than the kernels cost the device, at batch 1 especially. A Decoder records one
// step into a CUDA graph (Backend::capture) the first time it steps, then replays it for every token:
// the token ids are copied into a fixed input tensor, one launch runs the whole step, and the logits
// land in a fixed output tensor. Because the cache is updated in place (ssm/mixer.h), the same graph
// advances it token after token, and memory stays what it was after the first step however many tokens
// follow. On the CPU, or with graphs turned off, step() is plain MambaLM::step.
#pragma once
#include <memory>

#include "ssm/lm.h"
#include "tensor/backend.h"

namespace ssm {

class Decoder {
 public:
  // A fresh (zero) cache for `batch` sequences. use_graph = false always steps eagerly.
  Decoder(const MambaLM& model, int64_t batch, bool use_graph = true);

  // The prompt tokens [batch, L] through the parallel path, continuing from the cache's state; returns
  // the logits of every position [batch, L, padded_vocab] and leaves the final state in the cache.
  Tensor prefill(const Tensor& tokens);
  // One token per sequence, [batch] int64 on any device → logits [batch, padded_vocab] on the model's
  // device. Graphed, the result is the graph's output tensor: the next step overwrites it.
  Tensor step(const Tensor& tokens);
  // Whether steps replay a captured graph (known after the first step).
  bool graphed() const { return graph_ != nullptr; }

 private:
  const MambaLM& model_;
  int64_t batch_;
  bool use_graph_;
  LMCache cache_;
  Tensor tokens_, logits_;  // the graph's input and output
  std::unique_ptr<CapturedWork> graph_;
};

}  // namespace ssm
