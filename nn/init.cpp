// nn/init.cpp — see init.h.
#include "nn/init.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "nn/layers.h"

namespace ssm::nn::init {

void uniform_(const Tensor& t, double low, double high, Generator& gen) {
  NoGradGuard no_grad;
  t.copy_(op::uniform(t.shape(), low, high, gen, t.dtype(), t.device()));
}

void normal_(const Tensor& t, double mean, double std, Generator& gen) {
  NoGradGuard no_grad;
  t.copy_(op::normal(t.shape(), mean, std, gen, t.dtype(), t.device()));
}

void kaiming_uniform_(const Tensor& t, int64_t fan_in, Generator& gen) {
  SSM_CHECK(fan_in > 0, "kaiming_uniform_: fan_in must be positive, got ", fan_in);
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  uniform_(t, -bound, bound, gen);
}

void constant_(const Tensor& t, double value) {
  NoGradGuard no_grad;
  t.fill_(value);
}

void official_lm_init(Module& model, int64_t n_layer, Generator& gen) {
  SSM_CHECK(n_layer > 0, "official_lm_init: n_layer must be positive, got ", n_layer);
  for (auto& [name, module] : model.named_modules()) {
    if (auto* linear = dynamic_cast<Linear*>(module)) {
      if (linear->bias.defined()) constant_(linear->bias, 0.0);
      const std::string leaf = name.substr(name.rfind('.') + 1);  // the module's own name (npos + 1 = 0)
      const bool residual_output = leaf == "out_proj" || leaf == "fc2";
      if (residual_output) {
        const int64_t fan_in = linear->weight.size(1);
        const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in)) / std::sqrt(static_cast<double>(n_layer));
        uniform_(linear->weight, -bound, bound, gen);
      }
    } else if (auto* embedding = dynamic_cast<Embedding*>(module)) {
      normal_(embedding->weight, 0.0, 0.02, gen);
    }
  }
}

}  // namespace ssm::nn::init
