// cuda/device_math.cuh — the CUDA math library's float and double functions behind one name each, so
// a kernel templated on T calls the single-precision routine for float (cosf, not cos promoted to
// double) and the double one for double; and the overflow-free sigmoid, silu and softplus built on them.
#pragma once
#include <type_traits>

namespace ssm::cuda {

template <class T>
__device__ inline T cos_of(T a) {
  if constexpr (std::is_same_v<T, float>) return cosf(a);
  else return cos(a);
}
template <class T>
__device__ inline T sin_of(T a) {
  if constexpr (std::is_same_v<T, float>) return sinf(a);
  else return sin(a);
}
template <class T>
__device__ inline void sin_cos_of(T a, T* sine, T* cosine) {  // both, for about the price of one
  if constexpr (std::is_same_v<T, float>) sincosf(a, sine, cosine);
  else sincos(a, sine, cosine);
}
template <class T>
__device__ inline T sqrt_of(T a) {
  if constexpr (std::is_same_v<T, float>) return sqrtf(a);
  else return sqrt(a);
}
template <class T>
__device__ inline T exp_of(T a) {
  if constexpr (std::is_same_v<T, float>) return expf(a);
  else return exp(a);
}

// σ(x) and softplus(x) = log(1 + eˣ) in forms that never overflow (as the CPU backend's,
// tensor/cpu/elementwise.cpp): e^{−|x|} is at most 1.
template <class T>
__device__ inline T sigmoid_of(T x) {
  if (x >= T(0)) return T(1) / (T(1) + exp_of(-x));
  const T e = exp_of(x);
  return e / (T(1) + e);
}
template <class T>
__device__ inline T silu_of(T x) {
  return x * sigmoid_of(x);
}
template <class T>
__device__ inline T silu_slope(T x) {  // silu'(x) = σ(x)(1 + x(1 − σ(x)))
  const T sig = sigmoid_of(x);
  return sig * (T(1) + x * (T(1) - sig));
}
template <class T>
__device__ inline T softplus_of(T x) {  // max(x, 0) + log1p(e^{−|x|})
  return (x > T(0) ? x : T(0)) + log1p(exp_of(x > T(0) ? -x : x));
}

}  // namespace ssm::cuda
