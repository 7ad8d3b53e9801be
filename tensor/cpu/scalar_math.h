// tensor/cpu/scalar_math.h — numerically safe scalar functions of the elementwise ops (and of the fused
// steps that must match them, e.g. Mamba-2's decoding softplus): sigmoid and softplus never overflow, and
// they keep libm's answer at the extremes (σ(−1000) = 0, a subnormal softplus). tensor/cpu/sigmoid.h has
// the call-free float versions that the fused ops' loops use to vectorise; they clamp at ±87 instead.
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
