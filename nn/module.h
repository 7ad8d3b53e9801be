// nn/module.h — Module: a named tree of parameters and sub-modules.
//
// A model is a tree: the language model owns `backbone`, which owns `layers.0`, which owns
// `mixer`, which owns `in_proj`, which owns `weight`. Joining the names along the path gives the
// dotted key (`backbone.layers.0.mixer.in_proj.weight`) used by state_dict(), checkpoints and the
// official Mamba weights alike. Parameters are leaf tensors with requires_grad set; a module
// keeps a handle to each one it registers, so loading a state dict copies values *into* the
// existing tensors and every handle stays valid.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace ssm::nn {

using StateDict = std::map<std::string, Tensor>;

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter under this module with its dotted name, in registration order (depth first).
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;  // total element count

  // Every module in the tree (this one first, named ""), depth first, with its dotted name.
  std::vector<std::pair<std::string, Module*>> named_modules();

  // Name -> tensor (the parameters themselves, not copies).
  StateDict state_dict() const;
  // Copy `state` into the parameters. Strict: a missing or unexpected key, or a shape mismatch,
  // is an error naming the key (and both shapes). Values are converted to each parameter's dtype.
  // `ignored_keys` may be absent from `state` (e.g. a tied lm_head.weight) or present and ignored.
  void load_state_dict(const StateDict& state, const std::vector<std::string>& ignored_keys = {});

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();  // drop every parameter's .grad

  // Move every parameter to `device` in place: the handles the layers hold (weight, bias, ...) stay
  // valid and now point at the device's copy. Gradients are dropped. A no-op where they already are.
  void to(Device device);

 protected:
  // Register a parameter (made a leaf that requires grad) or a child; returns what was registered.
  Tensor register_parameter(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// An indexed list of sub-modules named "0", "1", ... (so keys read `layers.3.mixer...`, as PyTorch's
// nn.ModuleList gives them).
template <class M>
class ModuleList : public Module {
 public:
  void push_back(std::shared_ptr<M> item) { items_.push_back(register_module(std::to_string(items_.size()), item)); }
  size_t size() const { return items_.size(); }
  M& operator[](size_t i) const { return *items_.at(i); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace ssm::nn
