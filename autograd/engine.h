// autograd/engine.h — the backward pass.
//
// backward(loss) computes d(loss)/d(t) for every leaf tensor t that requires grad and adds it to
// t.grad() (gradients accumulate across calls until the optimiser zeroes them). The algorithm is
// the whole idea of reverse mode:
//   1. order the nodes reachable from loss.grad_fn so each comes after every node that uses its
//      outputs (a topological order of the reversed graph, by depth-first search);
//   2. seed d(loss)/d(loss) = 1 and walk that order: give each node the summed gradients of its
//      outputs, get back the gradients of its inputs, and add them into the producing node's
//      slot — or into the leaf's .grad.
// Non-leaf tensors keep their gradient only when retain_grad() was called on them.
#pragma once
#include "tensor/tensor.h"

namespace ssm {

// `grad` is d(something)/d(root); it may be omitted only when root has exactly one element.
// retain_graph keeps the saved tensors so backward can run through the same graph again.
void backward(const Tensor& root, const Tensor& grad = Tensor(), bool retain_graph = false);

}  // namespace ssm
