// autograd/gradcheck.h — checking a backward pass against finite differences.
//
// For f: inputs -> output, the analytical Jacobian comes from backward() with one-hot output
// gradients (row by row); the numerical one from central differences
//     d out_j / d x_i  ≈  (f(x + eps·e_i)_j - f(x - eps·e_i)_j) / (2 eps),
// whose error is O(eps²) — in float64 with eps = 1e-6 that leaves about 1e-9 of agreement for
// smooth functions. Inputs must be float64 leaves; the ones with requires_grad are checked.
// Use small tensors: the cost is (outputs + 2·inputs) evaluations.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace ssm {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the worst mismatch: input, element, analytical and numerical values
  explicit operator bool() const { return ok; }
};

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace ssm
