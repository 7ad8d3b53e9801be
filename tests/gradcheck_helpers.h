// tests/gradcheck_helpers.h — what the gradcheck test files share: float64 leaves from a seeded generator.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "autograd/gradcheck.h"
#include "tensor/random.h"

namespace ssm::testing {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

inline Tensor leaf(Tensor t, bool requires_grad = true) {
  t.set_requires_grad(requires_grad);
  return t;
}
inline Tensor randn(const Shape& s, Generator& g) { return leaf(op::normal(s, 0.0, 1.0, g, DType::Float64)); }
inline Tensor randu(const Shape& s, double lo, double hi, Generator& g) {
  return leaf(op::uniform(s, lo, hi, g, DType::Float64));
}

// gradcheck with the default (tight) tolerances, failing the test with the worst mismatch
inline void expect_gradcheck(const Fn& f, const std::vector<Tensor>& inputs) {
  const GradcheckResult r = gradcheck(f, inputs);
  EXPECT_TRUE(r.ok) << r.message;
}

}  // namespace ssm::testing
