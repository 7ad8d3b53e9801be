// autograd/node.h — one recorded operation in the graph, and how users write their own.
//
// When an op runs on inputs that require gradients (and grad mode is on), it creates a Node:
//   * next[i] says where the gradient of input i goes: into another Node's output slot (the input
//     was itself computed), straight into a leaf tensor's .grad (a parameter), or nowhere;
//   * the outputs are tagged with grad_fn = this node, so the graph is reachable from the loss;
//   * the tensors backward needs are saved with save_for_backward(), which remembers their
//     version so that an in-place write between forward and backward is caught, not silently
//     differentiated wrongly; backward() frees them (unless retain_graph), after which a second
//     backward through this node is an error.
//
// Defining a new differentiable op (how the SSM scans are written): derive from Function,
// implement forward() and backward() side by side, call apply():
//
//   struct Square final : Function {
//     Square() : Function("square") {}
//     std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
//       save_for_backward({in[0]});
//       return {op::mul(in[0], in[0])};
//     }
//     std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
//       const Tensor x = saved()[0];                       // d(x^2)/dx = 2x
//       return {op::mul(op::mul(grad_out[0], x), 2.0)};    // one gradient per input
//     }
//   };
//   Tensor y = apply(std::make_shared<Square>(), {x})[0];
//
// forward() runs with grad mode off and sees raw tensors; backward() gets one gradient per output
// (zeros where an output did not reach the loss) and returns one per input (an undefined Tensor
// for inputs that need none: check needs_input_grad(i) to skip work).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace ssm {

class Node;

struct Edge {
  std::shared_ptr<Node> node;          // gradient flows into node's output `output_nr`, or
  uint32_t output_nr = 0;
  std::shared_ptr<TensorImpl> leaf;    // into this leaf's .grad; neither set: the input needs no gradient
  Shape shape;                         // the input's shape, to check what backward returns
  DType dtype = DType::Float32;
  bool wants_grad() const { return node != nullptr || leaf != nullptr; }
};

struct OutputInfo {
  Shape shape;
  DType dtype = DType::Float32;
  Device device;
  std::weak_ptr<TensorImpl> tensor;  // to honour retain_grad(); not owning (the graph must not keep activations alive)
};

class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) {}
  virtual ~Node();  // frees a long chain of producers iteratively, not recursively (no stack overflow)
  const std::string& name() const { return name_; }

  // gradients of the outputs -> gradients of the inputs (see file comment)
  virtual std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) = 0;

  // Keeps `tensors` for backward; does nothing when apply() already knows no backward will come (grad mode
  // off or no input needing a gradient: evaluation and decoding then save no handles).
  void save_for_backward(const std::vector<Tensor>& tensors);
  std::vector<Tensor> saved() const;  // throws if freed or modified in place since saving
  bool needs_input_grad(size_t i) const { return i < next.size() && next[i].wants_grad(); }
  void release_saved();
  bool released() const { return released_; }

  std::vector<Edge> next;            // one per input
  std::vector<OutputInfo> outputs;   // one per output

 private:
  struct Saved {
    Tensor tensor;
    uint64_t version;
  };
  std::string name_;
  std::vector<Saved> saved_;
  bool released_ = false;
  bool keeps_saved_ = true;  // false while a forward runs that will not be recorded (set by apply())

  friend std::vector<Tensor> apply(const std::shared_ptr<class Function>& fn, const std::vector<Tensor>& inputs);
};

// A user-defined differentiable op: see the example above.
class Function : public Node {
 public:
  using Node::Node;
  virtual std::vector<Tensor> forward(const std::vector<Tensor>& inputs) = 0;
};

// Run fn->forward(inputs) and, when any input requires grad and grad mode is on, record fn in the graph.
std::vector<Tensor> apply(const std::shared_ptr<Function>& fn, const std::vector<Tensor>& inputs);

// The built-in ops' shortcut: `out` was computed from `inputs` by a raw op; record a single-output
// node whose backward is `backward(grad_out, node)` (the node gives access to saved() and
// needs_input_grad()). Returns `out`, now carrying its grad_fn. Records nothing when not needed.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const Node& node)>;
Tensor record(const char* name, const std::vector<Tensor>& inputs, const Tensor& out,
              const std::vector<Tensor>& to_save, BackwardFn backward);

// True when an op on these inputs must be recorded.
bool should_record(const std::vector<Tensor>& inputs);

}  // namespace ssm
