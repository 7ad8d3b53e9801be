// nn/gradient_step.h — a training step's forward and backward, captured once into a CUDA graph and replayed.
//
// A small model's step on a GPU is ~2,000 short kernels (the ~1M model's: forward, backward, the scan's
// pieces, the norms), and launched one by one each costs the host a few microseconds: at 16 × 256 the
// GPU waits on the launches more than it computes. Captured once (tensor/backend.h, CapturedWork), the
// step's kernels re-run with one launch, back to back. What it takes:
//   * the inputs are device tensors written in place before each replay (the graph reads fixed addresses);
//   * the work before the optimizer never waits for the device: the loss and the gradient norm stay on
//     the GPU (nn::clip_grad_norm_ rather than the host-reading clip_grad_norm);
//   * the gradients the capture created belong to the graph: each replay rewrites them, and run() hands
//     them back to the parameters, so an optimizer's zero_grad() between steps loses nothing;
//   * the optimizer stays outside: its learning rate and bias corrections change every step, and it is
//     one multi-tensor launch anyway.
// A graph fits one set of input shapes. A step whose shapes repeat the previous step's is captured (that
// previous step ran eagerly, so every kernel is loaded and every library handle made before the capture,
// which records launches only); other steps run eagerly. After kMaxCaptures captures the shapes are
// taken to vary (fine-tuning batches padded to their longest example) and every step runs eagerly.
// On the CPU nothing is captured: kernels there are calls, not launches.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace ssm::nn {

class GradientStep {
 public:
  // body(inputs) runs forward and backward on `inputs` (on `device`) and anything that must follow
  // before the optimizer (clipping), and returns the loss. It must not wait for the device.
  using Body = std::function<Tensor(const std::vector<Tensor>& inputs)>;
  static constexpr int kMaxCaptures = 4;

  GradientStep(std::vector<Tensor> params, Device device, Body body, bool use_graph = true);
  ~GradientStep();
  GradientStep(const GradientStep&) = delete;
  GradientStep& operator=(const GradientStep&) = delete;

  // One step on `inputs` (moved to the device): each parameter's .grad holds its gradient afterwards,
  // and the returned loss is a device tensor (still being computed; item() waits for it).
  Tensor run(const std::vector<Tensor>& inputs);
  bool last_replayed() const { return last_replayed_; }  // whether the last run() replayed a graph
  int captures() const { return captures_; }

 private:
  Tensor replay(const std::vector<Tensor>& inputs);
  void capture(const std::vector<Tensor>& inputs);

  std::vector<Tensor> params_;
  Device device_;
  Body body_;
  bool use_graph_;
  bool last_replayed_ = false;
  int captures_ = 0;
  std::vector<Shape> last_shapes_;      // the previous step's input shapes
  std::unique_ptr<CapturedWork> graph_; // the captured step (for graph_shapes_), if any
  std::vector<Shape> graph_shapes_;
  std::vector<Tensor> graph_inputs_;    // what the graph reads: written in place before each replay
  std::vector<Tensor> graph_grads_;     // what it writes: one per parameter (undefined where it has none)
  Tensor graph_loss_;
};

}  // namespace ssm::nn
