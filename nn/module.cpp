// nn/module.cpp — see module.h.
#include "nn/module.h"

#include <algorithm>
#include <set>

#include "autograd/grad_mode.h"

namespace ssm::nn {

static void check_name(const std::string& name, const char* what) {
  SSM_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module: ", what, " name '", name,
            "' must be non-empty and contain no '.'");
}

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  check_name(name, "parameter");
  for (const auto& [existing, _] : params_) SSM_CHECK(existing != name, "Module: parameter '", name, "' registered twice");
  value.set_requires_grad(true);
  params_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_name(name, "sub-module");
  SSM_CHECK(child != nullptr, "Module: sub-module '", name, "' is null");
  for (const auto& [existing, _] : children_) SSM_CHECK(existing != name, "Module: sub-module '", name, "' registered twice");
  children_.emplace_back(name, std::move(child));
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, p] : params_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, p] : named_parameters()) out.push_back(p);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (auto& [name, child] : children_)
    for (auto& [sub, module] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, module);
  return out;
}

StateDict Module::state_dict() const {
  StateDict out;
  for (auto& [name, p] : named_parameters()) out.emplace(name, p);
  return out;
}

void Module::load_state_dict(const StateDict& state, const std::vector<std::string>& ignored_keys) {
  const auto named = named_parameters();
  const auto ignored = [&](const std::string& name) {
    return std::count(ignored_keys.begin(), ignored_keys.end(), name) > 0;
  };
  std::set<std::string> expected;
  for (const auto& [name, p] : named) {
    expected.insert(name);
    if (ignored(name)) continue;  // an ignored parameter may be absent, and is not loaded when present
    const auto it = state.find(name);
    SSM_CHECK(it != state.end(), "load_state_dict: missing key '", name, "' (expected shape ", shape_str(p.shape()), ")");
    SSM_CHECK(it->second.shape() == p.shape(), "load_state_dict: key '", name, "' has shape ",
              shape_str(it->second.shape()), " but the model expects ", shape_str(p.shape()));
  }
  for (const auto& [name, _] : state)
    SSM_CHECK(expected.count(name) || ignored(name),
              "load_state_dict: unexpected key '", name, "' (not a parameter of this model)");
  // Only after every check passed: a failed load leaves the model untouched.
  NoGradGuard no_grad;
  for (const auto& [name, p] : named)
    if (!ignored(name)) p.copy_(state.at(name).to(p.device()));
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (const Tensor& p : parameters()) p.set_grad(Tensor());
}

void Module::to(Device device) {
  for (const Tensor& p : parameters()) {
    if (p.device() == device) continue;
    const Tensor moved = p.detach().to(device);  // contiguous, on the device
    TensorImpl& impl = *p.impl_ptr();
    impl.storage = moved.impl_ptr()->storage;
    impl.strides = moved.strides();
    impl.offset = moved.offset();
    impl.grad.reset();
  }
}

}  // namespace ssm::nn
