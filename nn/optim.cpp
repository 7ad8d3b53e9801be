// nn/optim.cpp — see optim.h.
//
// The updates are single fused loops over each parameter's memory (one pass instead of a dozen
// temporary tensors). Parameters on the host run the loop here; those on a CUDA device are gathered
// into a table per parameter group and dtype and updated by one fused launch (cuda/optim_kernels.cu).
#include "nn/optim.h"

#include <cmath>
#include <tuple>
#include <type_traits>

#include "autograd/grad_mode.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm::nn {

#if SSM_WITH_CUDA
// One group's CUDA parameters as slots of a multi-tensor launch, per dtype. `held` keeps the
// contiguous gradients the slots point into alive until the launch is queued (the stream then
// orders any reuse of their memory after the kernel).
template <template <class> class Slot>
struct DeviceSlots {
  std::vector<Slot<float>> f32;
  std::vector<Slot<double>> f64;
  std::vector<Tensor> held;
  template <class T>
  std::vector<Slot<T>>& of() {
    if constexpr (std::is_same_v<T, float>) return f32;
    else return f64;
  }
};
#endif

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
#if SSM_WITH_CUDA
      SSM_CHECK(p.device().is_cpu() || p.device().kind == DeviceKind::CUDA, "optimizer: parameter '", name,
                "' is on ", p.device().str(), ", which has no optimizer kernel");
#else
      SSM_CHECK(p.device().is_cpu(), "optimizer: parameter '", name, "' is on ", p.device().str(),
                "; this build has only the cpu optimizer (rebuild with SSM_CUDA=ON)");
#endif
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
    // a copy of its own, of the parameter's dtype and on the parameter's device
    loaded.emplace_back(target, name, t.to(param->second.dtype()).to(param->second.device()).contiguous().clone());
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
  for (const auto& group : groups_) {
#if SSM_WITH_CUDA
    DeviceSlots<cuda::AdamWSlot> on_device;
#endif
    for (const auto& [name, p] : group.params) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      SSM_CHECK(g.device() == p.device(), "AdamW: gradient of '", name, "' is on ", g.device().str(),
                ", its parameter on ", p.device().str());
      auto& m = exp_avg_[name];
      auto& v = exp_avg_sq_[name];
      if (!m.defined()) {
        m = op::zeros_like(p);  // on p's device
        v = op::zeros_like(p);
      }
      const Tensor grad = g.contiguous();
      dispatch_float(p.dtype(), "AdamW", [&](auto t) {
        using T = decltype(t);
        if (p.device().is_cpu()) {
          adamw_update(p.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), p.numel(), lr, group.weight_decay, beta1,
                       beta2, eps, bias1, bias2);
        } else {
#if SSM_WITH_CUDA
          on_device.of<T>().push_back({p.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), p.numel()});
          on_device.held.push_back(grad);
#endif
        }
      });
      p.impl_ptr()->storage->bump_version();
    }
#if SSM_WITH_CUDA
    const cuda::AdamWHyper hyper{lr, group.weight_decay, beta1, beta2, eps, bias1, bias2};
    if (!on_device.f32.empty()) cuda::adamw_multi_tensor(on_device.f32.data(), std::ssize(on_device.f32), hyper);
    if (!on_device.f64.empty()) cuda::adamw_multi_tensor(on_device.f64.data(), std::ssize(on_device.f64), hyper);
#endif
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
  for (const auto& group : groups_) {
#if SSM_WITH_CUDA
    DeviceSlots<cuda::SgdSlot> on_device;
#endif
    for (const auto& [name, p] : group.params) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      SSM_CHECK(g.device() == p.device(), "SGD: gradient of '", name, "' is on ", g.device().str(),
                ", its parameter on ", p.device().str());
      const Tensor grad = g.contiguous();
      Tensor buffer;  // plain SGD (momentum 0) keeps no buffer, so its state_dict holds only "step"
      bool first = true;
      if (momentum != 0) {
        Tensor& slot = momentum_buffer_[name];
        first = !slot.defined();
        if (first) slot = op::zeros_like(p);  // on p's device
        buffer = slot;
      }
      dispatch_float(p.dtype(), "SGD", [&](auto t) {
        using T = decltype(t);
        T* pp = p.data<T>();
        const T* gp = grad.data<T>();
        T* bp = momentum != 0 ? buffer.data<T>() : nullptr;
        if (!p.device().is_cpu()) {
#if SSM_WITH_CUDA
          on_device.of<T>().push_back({pp, gp, bp, p.numel(), first ? 1 : 0});
          on_device.held.push_back(grad);
#endif
          return;
        }
        const T wd = static_cast<T>(group.weight_decay), mu = static_cast<T>(momentum), rate = static_cast<T>(lr);
        for (int64_t i = 0; i < p.numel(); ++i) {
          T d = gp[i] + wd * pp[i];
          if (bp) d = bp[i] = first ? d : mu * bp[i] + d;
          pp[i] -= rate * d;
        }
      });
      p.impl_ptr()->storage->bump_version();
    }
#if SSM_WITH_CUDA
    const cuda::SgdHyper hyper{lr, group.weight_decay, momentum};
    if (!on_device.f32.empty()) cuda::sgd_multi_tensor(on_device.f32.data(), std::ssize(on_device.f32), hyper);
    if (!on_device.f64.empty()) cuda::sgd_multi_tensor(on_device.f64.data(), std::ssize(on_device.f64), hyper);
#endif
  }
}

StateDict SGD::state_dict() const { return save_buffers({{"momentum_buffer", &momentum_buffer_}}); }
void SGD::load_state_dict(const StateDict& state) { load_buffers(state, {{"momentum_buffer", &momentum_buffer_}}); }

// ---------------------------------------------------------------- clipping

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard no_grad;
  Tensor total_sq;  // Σ‖g‖² in float64, on the first gradient's device
  for (const Tensor& p : params) {
    if (!p.grad().defined()) continue;
    const Tensor sq = op::sum(op::square(p.grad())).to(DType::Float64);
    total_sq = total_sq.defined() ? op::add(total_sq, sq.to(total_sq.device())) : sq;
  }
  if (!total_sq.defined()) return Tensor::scalar(0.0, DType::Float64);
  const Tensor norm = op::sqrt(total_sq);
  // min(1, max_norm / (‖g‖ + 1e-6)): a hair under max_norm, never a division by 0. Below the threshold the
  // scale is exactly 1, which leaves the gradients as they were, bit for bit.
  const Tensor scale = op::clamp(op::div(op::scalar_like(norm, max_norm), op::add(norm, 1e-6)), 0.0, 1.0);
  for (const Tensor& p : params)
    if (p.grad().defined()) op::binary_(BinaryOp::Mul, p.grad(), scale.to(p.grad().device()).to(p.grad().dtype()));
  return norm;
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  return clip_grad_norm_(params, max_norm).item<double>();
}

}  // namespace ssm::nn
