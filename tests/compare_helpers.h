// tests/compare_helpers.h — comparing a fast path's tensors with its reference, shared by the scan tests.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "tensor/tensor.h"

namespace ssm::testing {

// max |a − b| / (atol + rtol·|b|) ≤ 1 elementwise, naming the worst element on failure
inline void expect_close(const Tensor& a, const Tensor& b, double atol, double rtol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const auto va = a.to(DType::Float64).to_vector<double>(), vb = b.to(DType::Float64).to_vector<double>();
  double worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double r = std::abs(va[i] - vb[i]) / (atol + rtol * std::abs(vb[i]));
    if (r > worst) worst = r, worst_i = i;
  }
  EXPECT_LE(worst, 1.0) << what << ": element " << worst_i << " got " << va[worst_i] << " expected " << vb[worst_i];
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.to(DType::Float64).to_vector<double>()) m = std::max(m, std::abs(x));
  return m;
}

}  // namespace ssm::testing
