// nn/init.cpp — see init.h.
#include "nn/init.h"

#include <cmath>

#include "autograd/grad_mode.h"

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

}  // namespace ssm::nn::init
