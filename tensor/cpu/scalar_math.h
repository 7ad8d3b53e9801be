// tensor/cpu/scalar_math.h — numerically safe scalar functions shared by the elementwise kernels and the
// fused ops that apply them to raw rows: sigmoid, silu and softplus never overflow.
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

// silu(x) = x σ(x) and its slope silu'(x) = σ(x)(1 + x(1 − σ(x)))
template <class T>
T silu_of(T x) {
  return x * sigmoid_of(x);
}
template <class T>
T silu_slope(T x) {
  const T sig = sigmoid_of(x);
  return sig * (T(1) + x * (T(1) - sig));
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{−|x|})
template <class T>
T softplus_of(T x) {
  return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

}  // namespace ssm::cpu
