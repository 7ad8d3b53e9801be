// autograd/engine.cpp — see engine.h.
#include "autograd/engine.h"

#include <unordered_map>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "tensor/ops.h"

namespace ssm {
namespace {

// Nodes reachable from `root`, each listed after every node that consumes one of its outputs.
std::vector<Node*> reverse_topological_order(Node* root) {
  std::vector<Node*> post_order;
  std::unordered_set<Node*> visited{root};
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};  // (node, next edge to explore)
  while (!stack.empty()) {
    auto& [node, edge] = stack.back();
    if (edge < node->next.size()) {
      Node* child = node->next[edge++].node.get();
      if (child && visited.insert(child).second) stack.push_back({child, 0});
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  return {post_order.rbegin(), post_order.rend()};  // consumers before producers
}

// sum += g, making a fresh tensor (g may alias a saved tensor or another gradient).
void accumulate(Tensor& sum, const Tensor& g) { sum = sum.defined() ? op::add(sum, g) : g; }

// A leaf's .grad is owned by the leaf: copy on first write, add in place afterwards.
void accumulate_into_grad(TensorImpl& impl, const Tensor& g) {
  if (impl.grad) op::add_(Tensor(impl.grad), g);
  else impl.grad = g.clone().impl_ptr();
}

void check_grad(const Node& node, size_t i, const Tensor& g) {
  const Edge& e = node.next[i];
  SSM_CHECK(g.shape() == e.shape, "backward of '", node.name(), "' returned a gradient of shape ", shape_str(g.shape()),
            " for input ", i, " of shape ", shape_str(e.shape));
  SSM_CHECK(g.dtype() == e.dtype, "backward of '", node.name(), "' returned a ", dtype_name(g.dtype()),
            " gradient for ", dtype_name(e.dtype), " input ", i);
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  SSM_CHECK(root.defined(), "backward: called on an undefined tensor");
  SSM_CHECK(root.requires_grad(), "backward: the tensor does not require grad (nothing it was computed from "
            "was marked with set_requires_grad(true), or it was computed under NoGradGuard)");
  Tensor seed = grad;
  if (!seed.defined()) {
    SSM_CHECK(root.numel() == 1, "backward: a gradient can be implied only for a single-element output; pass one of "
              "shape ", shape_str(root.shape()), " for ", root.describe());
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  SSM_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype(), "backward: gradient ", seed.describe(),
            " does not match the output ", root.describe());

  NoGradGuard no_grad;  // the backward pass computes with raw values
  if (root.is_leaf()) {
    accumulate_into_grad(*root.impl_ptr(), seed);
    return;
  }
  std::unordered_map<Node*, std::vector<Tensor>> pending;  // gradients waiting for each node's outputs
  Node* root_node = root.grad_fn().get();
  pending[root_node].resize(root_node->outputs.size());
  pending[root_node][root.impl_ptr()->output_nr] = seed;

  for (Node* node : reverse_topological_order(root_node)) {
    SSM_CHECK(!node->released(), "backward through '", node->name(), "' a second time: the graph was already freed "
              "(pass retain_graph=true to the first backward() to call it again)");
    std::vector<Tensor> grad_outputs = std::move(pending[node]);
    pending.erase(node);
    grad_outputs.resize(node->outputs.size());
    for (size_t i = 0; i < grad_outputs.size(); ++i) {
      const OutputInfo& out = node->outputs[i];
      if (!grad_outputs[i].defined()) grad_outputs[i] = Tensor::zeros(out.shape, out.dtype, out.device);
      if (auto impl = out.tensor.lock(); impl && impl->retains_grad) accumulate_into_grad(*impl, grad_outputs[i]);
    }

    const std::vector<Tensor> grad_inputs = node->backward(grad_outputs);
    SSM_CHECK(grad_inputs.size() == node->next.size(), "backward of '", node->name(), "' returned ", grad_inputs.size(),
              " gradients for ", node->next.size(), " inputs");
    for (size_t i = 0; i < grad_inputs.size(); ++i) {
      const Edge& e = node->next[i];
      if (!e.wants_grad() || !grad_inputs[i].defined()) continue;
      check_grad(*node, i, grad_inputs[i]);
      if (e.node) {
        auto& slots = pending[e.node.get()];
        slots.resize(e.node->outputs.size());
        accumulate(slots[e.output_nr], grad_inputs[i]);
      } else {
        accumulate_into_grad(*e.leaf, grad_inputs[i]);
      }
    }
    if (!retain_graph) node->release_saved();
  }
}

}  // namespace ssm
