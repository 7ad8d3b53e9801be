// cuda/device_math.cuh — the CUDA math library's float and double functions behind one name each, so
// a kernel templated on T calls the single-precision routine for float (cosf, not cos promoted to
// double) and the double one for double.
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
__device__ inline T sqrt_of(T a) {
  if constexpr (std::is_same_v<T, float>) return sqrtf(a);
  else return sqrt(a);
}
template <class T>
__device__ inline T exp_of(T a) {
  if constexpr (std::is_same_v<T, float>) return expf(a);
  else return exp(a);
}

}  // namespace ssm::cuda
