// nn/gradient_step.cpp — see gradient_step.h.
#include "nn/gradient_step.h"

#include <cstdio>
#include <exception>

namespace ssm::nn {
namespace {

std::vector<Shape> shapes_of(const std::vector<Tensor>& tensors) {
  std::vector<Shape> shapes;
  for (const Tensor& t : tensors) shapes.push_back(t.shape());
  return shapes;
}

}  // namespace

GradientStep::GradientStep(std::vector<Tensor> params, Device device, Body body, bool use_graph)
    : params_(std::move(params)), device_(device), body_(std::move(body)), use_graph_(use_graph && !device.is_cpu()) {}

// The graph's tensors go before the graph: their blocks return to its pool, which the graph's end hands
// back to the allocator's shared lists.
GradientStep::~GradientStep() {
  graph_loss_ = Tensor();
  graph_grads_.clear();
  graph_.reset();
}

Tensor GradientStep::run(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> on_device;
  for (const Tensor& t : inputs) on_device.push_back(t.to(device_));
  last_replayed_ = false;
  if (!use_graph_) return body_(on_device);
  const std::vector<Shape> shapes = shapes_of(on_device);
  const bool repeated = shapes == last_shapes_;
  last_shapes_ = shapes;
  if (graph_ && shapes == graph_shapes_) return replay(on_device);
  if (!repeated || captures_ >= kMaxCaptures) return body_(on_device);
  capture(on_device);
  return graph_ ? replay(on_device) : body_(on_device);
}

Tensor GradientStep::replay(const std::vector<Tensor>& inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) graph_inputs_[i].copy_(inputs[i]);
  graph_->replay();
  for (size_t i = 0; i < params_.size(); ++i) params_[i].set_grad(graph_grads_[i]);
  last_replayed_ = true;
  return graph_loss_;
}

// Records body_ on copies of `inputs` that the graph owns. The gradients are dropped first, so the
// captured backward creates them (the graph's own) rather than adding into whatever was left.
void GradientStep::capture(const std::vector<Tensor>& inputs) {
  graph_loss_ = Tensor();
  graph_grads_.clear();
  graph_.reset();  // the previous shapes' graph and its memory
  graph_inputs_.clear();
  for (const Tensor& t : inputs) graph_inputs_.push_back(t.clone());
  const auto drop_grads = [&] {
    for (const Tensor& p : params_) p.set_grad(Tensor());
  };
  drop_grads();
  try {
    graph_ = backend_for(device_).capture([&] { graph_loss_ = body_(graph_inputs_); });
  } catch (const std::exception& e) {
    // Something in the step waits for the device or cannot be recorded: train op by op from now on.
    drop_grads();
    graph_loss_ = Tensor();
    std::fprintf(stderr, "warning: the training step could not be captured into a CUDA graph (%s); it runs op by op\n",
                 e.what());
  }
  if (!graph_) {
    use_graph_ = false;
    return;
  }
  ++captures_;
  graph_shapes_ = shapes_of(inputs);
  for (const Tensor& p : params_) graph_grads_.push_back(p.grad());
}

}  // namespace ssm::nn
