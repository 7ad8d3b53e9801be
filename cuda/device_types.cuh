// cuda/device_types.cuh — the element types as the GPU sees them, and conversions between them.
//
// On the host, bfloat16 and float16 are the engine's own structs (tensor/dtype.h); on the device
// they are CUDA's __nv_bfloat16 and __half, with the same 16 bits. 16-bit values are computed in
// float32 (compute_t), which is what the GPU's arithmetic units do with them anyway.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "tensor/dtype.h"

namespace ssm::cuda {

template <class T> struct device_type_of { using type = T; };
template <> struct device_type_of<BFloat16> { using type = __nv_bfloat16; };
template <> struct device_type_of<Float16> { using type = __half; };

template <class T>
constexpr bool is_half_v = std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;

template <class T>
using compute_t = std::conditional_t<is_half_v<T>, float, T>;

// dispatch_all / dispatch_numeric / dispatch_float of tensor/dtype.h, with the device types.
template <class Fn>
decltype(auto) dispatch_device_all(DType t, const char* op, Fn&& fn) {
  return dispatch_all(t, op, [&](auto host) { return fn(typename device_type_of<decltype(host)>::type{}); });
}
// float32, float64, int32, int64 and bfloat16 (computed in float32): the types GPU kernels compute in.
template <class Fn>
decltype(auto) dispatch_device_numeric(DType t, const char* op, Fn&& fn) {
  if (t == DType::BFloat16) return fn(__nv_bfloat16{});
  return dispatch_numeric(t, op, fn);
}
template <class Fn>
decltype(auto) dispatch_device_float(DType t, const char* op, Fn&& fn) {
  if (t == DType::BFloat16) return fn(__nv_bfloat16{});
  return dispatch_float(t, op, fn);
}

// Value conversion, as the CPU backend does it: floating -> integer saturates, NaN -> 0.
template <class To, class From>
__host__ __device__ inline To convert(From v) {
  if constexpr (is_half_v<From>) {
    return convert<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, __half>) {
    return __float2half_rn(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (v != v) return 0;
    if (v <= static_cast<From>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (v >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace ssm::cuda
