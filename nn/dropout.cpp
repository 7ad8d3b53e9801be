// nn/dropout.cpp — inverted dropout: a constant random mask times the input.
// The mask is not differentiated, so the ordinary autograd mul gives the backward (g · mask).
#include "nn/functional.h"

namespace ssm::nn {

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  SSM_CHECK(p >= 0 && p < 1, "dropout: probability ", p, " is outside [0, 1)");
  if (!training || p == 0) return x;
  const Tensor draws = op::uniform(x.shape(), 0.0, 1.0, gen, x.dtype(), x.device());
  const Tensor mask = op::mul(op::ge(draws, op::scalar_like(draws, p)), 1.0 / (1.0 - p));
  return mul(x, mask);
}

}  // namespace ssm::nn
