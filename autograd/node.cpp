// autograd/node.cpp — saving tensors for backward, and wiring new nodes into the graph.
#include "autograd/node.h"

#include "autograd/grad_mode.h"

namespace ssm {

// Dropping the last handle to a graph would free node after node through nested shared_ptr
// destructors, one stack frame chain per node: a graph a million ops deep overflows the stack.
// Instead, take over the producers this node solely owns and free them from a local worklist.
Node::~Node() {
  std::vector<std::shared_ptr<Node>> orphans;
  auto adopt = [&orphans](std::vector<Edge>& edges) {
    for (Edge& e : edges)
      if (e.node && e.node.use_count() == 1) orphans.push_back(std::move(e.node));
  };
  adopt(next);
  while (!orphans.empty()) {
    std::shared_ptr<Node> node = std::move(orphans.back());
    orphans.pop_back();
    adopt(node->next);
  }  // `node` is freed here, its sole-owned producers already moved out
}

void Node::save_for_backward(const std::vector<Tensor>& tensors) {
  saved_.clear();
  if (!keeps_saved_) return;
  for (const Tensor& t : tensors) {
    // detach(): a saved output must not point back at this node (that would be a reference cycle)
    if (t.defined()) saved_.push_back({t.detach(), t.impl_ptr()->storage->version()});
    else saved_.push_back({Tensor(), 0});
  }
}

std::vector<Tensor> Node::saved() const {
  SSM_CHECK(!released_, "backward through '", name_, "' a second time: its saved tensors were already freed "
            "(pass retain_graph=true to the first backward() to call it again)");
  std::vector<Tensor> out;
  for (size_t i = 0; i < saved_.size(); ++i) {
    const Saved& s = saved_[i];
    if (s.tensor.defined())
      SSM_CHECK(s.tensor.impl_ptr()->storage->version() == s.version, "backward of '", name_, "': saved tensor ", i,
                " (", s.tensor.describe(), ") was modified in place after the forward pass; "
                "compute on a copy (clone()) instead");
    out.push_back(s.tensor);
  }
  return out;
}

void Node::release_saved() {
  saved_.clear();
  released_ = true;
}

bool should_record(const std::vector<Tensor>& inputs) {
  if (!GradMode::enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// Point the node's edges at the inputs and tag the outputs with the node.
static void connect(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs,
                    const std::vector<Tensor>& outputs) {
  node->next.clear();
  for (const Tensor& in : inputs) {
    Edge e;
    if (in.defined()) {
      e.shape = in.shape();
      e.dtype = in.dtype();
      if (in.requires_grad()) {
        if (in.grad_fn()) {
          e.node = in.grad_fn();
          e.output_nr = in.impl_ptr()->output_nr;
        } else {
          e.leaf = in.impl_ptr();
        }
      }
    }
    node->next.push_back(std::move(e));
  }
  node->outputs.clear();
  for (size_t i = 0; i < outputs.size(); ++i) {
    TensorImpl& impl = *outputs[i].impl_ptr();
    impl.requires_grad = is_floating(outputs[i].dtype());
    impl.grad_fn = impl.requires_grad ? node : nullptr;
    impl.output_nr = static_cast<uint32_t>(i);
    node->outputs.push_back({outputs[i].shape(), outputs[i].dtype(), outputs[i].device(), outputs[i].impl_ptr()});
  }
}

std::vector<Tensor> apply(const std::shared_ptr<Function>& fn, const std::vector<Tensor>& inputs) {
  const bool recording = should_record(inputs);
  fn->keeps_saved_ = recording;
  std::vector<Tensor> outputs;
  {
    NoGradGuard no_grad;
    outputs = fn->forward(inputs);
  }
  // Fresh handles, so that an output which is an input (or a view sharing its handle) gets its own grad_fn.
  for (Tensor& out : outputs) out = out.detach();
  if (recording) connect(fn, inputs, outputs);
  return outputs;
}

namespace {
class LambdaNode final : public Node {
 public:
  LambdaNode(const char* name, BackwardFn fn) : Node(name), fn_(std::move(fn)) {}
  std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) override { return fn_(grad_outputs[0], *this); }

 private:
  BackwardFn fn_;
};
}  // namespace

Tensor record(const char* name, const std::vector<Tensor>& inputs, const Tensor& out,
              const std::vector<Tensor>& to_save, BackwardFn backward) {
  if (!should_record(inputs)) return out;
  auto node = std::make_shared<LambdaNode>(name, std::move(backward));
  node->save_for_backward(to_save);
  // A raw op may return an input's own handle (reshape to the same shape): give the output its own.
  Tensor result = out;
  for (const Tensor& in : inputs)
    if (in.is_same(out)) result = out.detach();
  connect(node, inputs, {result});
  return result;
}

}  // namespace ssm
