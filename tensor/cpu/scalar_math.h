// tensor/cpu/scalar_math.h — numerically safe scalar functions shared by the elementwise kernels and the
// fused ops that apply them to raw rows: sigmoid and softplus never overflow.
#pragma once
#include <algorithm>
#include <cmath>

namespace ssm::cpu {

template <class T>
T sigmoid_of(T x) {
  if (x >= 0) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{−|x|})
template <class T>
T softplus_of(T x) {
  return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

}  // namespace ssm::cpu
