// nn/optim.cpp — see optim.h.
//
// The updates are single fused loops over each parameter's memory (one pass instead of a dozen
// temporary tensors). They run on the host; a device backend brings its own fused kernel.
#include "nn/optim.h"

#include <cmath>
#include <tuple>

#include "autograd/grad_mode.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"

namespace ssm::nn {

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<ParamGroup> decay_groups(const NamedParameters& params, double weight_decay) {
  ParamGroup decay{{}, weight_decay}, no_decay{{}, 0.0};
  for (const auto& named : params) {
    const bool is_matrix = named.second.dim() >= 2 && !ends_with(named.first, "bias");
    (is_matrix ? decay : no_decay).params.push_back(named);
  }
  return {decay, no_decay};
}

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  for (const auto& group : groups_)
    for (const auto& [name, p] : group.params) {
      SSM_CHECK(p.requires_grad(), "optimizer: parameter '", name, "' does not require grad");
      SSM_CHECK(p.device().is_cpu(), "optimizer: parameter '", name, "' is on ", p.device().str(),
                "; this optimizer runs on the cpu");
      SSM_CHECK(p.is_contiguous(), "optimizer: parameter '", name, "' must be contiguous");
    }
}

void Optimizer::zero_grad() {
  for (const auto& group : groups_)
    for (const auto& [_, p] : group.params) p.set_grad(Tensor());
}

StateDict Optimizer::save_buffers(
    const std::vector<std::pair<std::string, const std::map<std::string, Tensor>*>>& kinds) const {
  StateDict out;
  for (const auto& [kind, buffers] : kinds)
    for (const auto& [name, t] : *buffers) out.emplace(kind + "." + name, t);
  out.emplace("step", Tensor::from_vector<int64_t>({step_count}, {1}));
  return out;
}

void Optimizer::load_buffers(const StateDict& state,
                             const std::vector<std::pair<std::string, std::map<std::string, Tensor>*>>& kinds) {
  const auto step_it = state.find("step");
  SSM_CHECK(step_it != state.end() && step_it->second.numel() == 1, "optimizer state: missing 'step'");
  std::map<std::string, Tensor> params;
  for (const auto& group : groups_)
    for (const auto& [name, p] : group.params) params.emplace(name, p);

  // Check everything first, so a bad checkpoint leaves the optimiser untouched.
  std::vector<std::tuple<std::map<std::string, Tensor>*, std::string, Tensor>> loaded;
  for (const auto& [key, t] : state) {
    if (key == "step") continue;
    std::map<std::string, Tensor>* target = nullptr;
    std::string name;
    for (const auto& [kind, buffers] : kinds)
      if (key.rfind(kind + ".", 0) == 0) {
        target = buffers;
        name = key.substr(kind.size() + 1);
      }
    const auto param = params.find(name);
    SSM_CHECK(target != nullptr && param != params.end(), "optimizer state: unexpected entry '", key, "'");
    SSM_CHECK(t.shape() == param->second.shape(), "optimizer state: '", key, "' has shape ", shape_str(t.shape()),
              " but the parameter has ", shape_str(param->second.shape()));
    loaded.emplace_back(target, name, t.to(param->second.dtype()).contiguous().clone());
  }
  // Each parameter's state is all of its kinds or none (exp_avg without exp_avg_sq is a broken checkpoint).
  std::map<std::string, size_t> kinds_per_param;
  for (const auto& entry : loaded) ++kinds_per_param[std::get<1>(entry)];
  for (const auto& [name, n] : kinds_per_param)
    SSM_CHECK(n == kinds.size(), "optimizer state: parameter '", name, "' has ", n, " of its ", kinds.size(),
              " state entries");
  for (const auto& [kind, buffers] : kinds) buffers->clear();
  for (auto& [buffers, name, t] : loaded) buffers->emplace(name, t);
  step_count = step_it->second.item<int64_t>();
}

// ---------------------------------------------------------------- AdamW

AdamW::AdamW(std::vector<ParamGroup> groups, double lr_, double beta1, double beta2, double eps)
    : Optimizer(std::move(groups)), beta1(beta1), beta2(beta2), eps(eps) {
  lr = lr_;
}

template <class T>
static void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, double lr, double wd, double beta1, double beta2,
                         double eps, double bias1, double bias2) {
  const T decay = static_cast<T>(1.0 - lr * wd), b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
  const T step_size = static_cast<T>(lr / bias1), inv_sqrt_bias2 = static_cast<T>(1.0 / std::sqrt(bias2));
  const T epsilon = static_cast<T>(eps);
  cpu::parallel_for(n, n * 8, [&](int64_t i) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bias2 + epsilon);
  });
}

void AdamW::step() {
  NoGradGuard no_grad;
  ++step_count;
  const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(step_count));
  const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(step_count));
  for (const auto& group : groups_)
    for (const auto& [name, p] : group.params) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      auto& m = exp_avg_[name];
      auto& v = exp_avg_sq_[name];
      if (!m.defined()) {
        m = op::zeros_like(p);
        v = op::zeros_like(p);
      }
      const Tensor grad = g.contiguous();
      dispatch_float(p.dtype(), "AdamW", [&](auto t) {
        using T = decltype(t);
        adamw_update(p.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), p.numel(), lr, group.weight_decay, beta1,
                     beta2, eps, bias1, bias2);
      });
      p.impl_ptr()->storage->bump_version();
    }
}

StateDict AdamW::state_dict() const { return save_buffers({{"exp_avg", &exp_avg_}, {"exp_avg_sq", &exp_avg_sq_}}); }
void AdamW::load_state_dict(const StateDict& state) {
  load_buffers(state, {{"exp_avg", &exp_avg_}, {"exp_avg_sq", &exp_avg_sq_}});
}

// ---------------------------------------------------------------- SGD

SGD::SGD(std::vector<ParamGroup> groups, double lr_, double momentum) : Optimizer(std::move(groups)), momentum(momentum) {
  lr = lr_;
}

void SGD::step() {
  NoGradGuard no_grad;
  ++step_count;
  for (const auto& group : groups_)
    for (const auto& [name, p] : group.params) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      const Tensor grad = g.contiguous();
      Tensor buffer;  // plain SGD (momentum 0) keeps no buffer, so its state_dict holds only "step"
      bool first = true;
      if (momentum != 0) {
        Tensor& slot = momentum_buffer_[name];
        first = !slot.defined();
        if (first) slot = op::zeros_like(p);
        buffer = slot;
      }
      dispatch_float(p.dtype(), "SGD", [&](auto t) {
        using T = decltype(t);
        T* pp = p.data<T>();
        const T* gp = grad.data<T>();
        T* bp = momentum != 0 ? buffer.data<T>() : nullptr;
        const T wd = static_cast<T>(group.weight_decay), mu = static_cast<T>(momentum), rate = static_cast<T>(lr);
        for (int64_t i = 0; i < p.numel(); ++i) {
          T d = gp[i] + wd * pp[i];
          if (bp) d = bp[i] = first ? d : mu * bp[i] + d;
          pp[i] -= rate * d;
        }
      });
      p.impl_ptr()->storage->bump_version();
    }
}

StateDict SGD::state_dict() const { return save_buffers({{"momentum_buffer", &momentum_buffer_}}); }
void SGD::load_state_dict(const StateDict& state) { load_buffers(state, {{"momentum_buffer", &momentum_buffer_}}); }

// ---------------------------------------------------------------- clipping

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard no_grad;
  double total_sq = 0;
  for (const Tensor& p : params)
    if (p.grad().defined()) total_sq += op::sum(op::square(p.grad())).item<double>();  // sums accumulate in double
  const double total = std::sqrt(total_sq);
  if (total > max_norm && total > 0) {
    const double scale = max_norm / (total + 1e-6);  // as PyTorch: a hair under max_norm, never a division by 0
    for (const Tensor& p : params)
      if (p.grad().defined()) op::binary_(BinaryOp::Mul, p.grad(), op::scalar_like(p.grad(), scale));
  }
  return total;
}

}  // namespace ssm::nn
