// ssm/mixer.cpp — see mixer.h.
#include "ssm/mixer.h"

#include <algorithm>
#include <cmath>

namespace ssm {

Tensor initial_dt_bias(int64_t heads, const MixerConfig& cfg, Generator& gen) {
  const Tensor u = op::uniform({heads}, 0.0, 1.0, gen, DType::Float64);
  std::vector<float> bias(heads);
  const double lo = std::log(cfg.dt_min), hi = std::log(cfg.dt_max);
  for (int64_t h = 0; h < heads; ++h) {
    const double dt = std::max(std::exp(u.at({h}) * (hi - lo) + lo), cfg.dt_init_floor);
    bias[h] = static_cast<float>(dt + std::log(-std::expm1(-dt)));
  }
  return Tensor::from_vector(bias, {heads});
}

}  // namespace ssm
