// tensor/dtype.h — element types.
//
//   float32  parameters and activations on the CPU
//   float64  references and finite-difference gradient checks
//   int32, int64  token ids and indices
//   bfloat16 storage type for the GPU's mixed precision (the CPU only converts it to and from float32)
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "tensor/error.h"

namespace ssm {

enum class DType : uint8_t { Float32, Float64, Int32, Int64, BFloat16 };

// bfloat16: the top 16 bits of an IEEE float32 (8-bit exponent, 7-bit mantissa).
// Conversion from float rounds to nearest even, and keeps NaN a NaN.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float value) {
    uint32_t u;
    std::memcpy(&u, &value, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it quiet, don't round into infinity
      bits = static_cast<uint16_t>((u >> 16) | 0x0040u);
      return;
    }
    const uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
    bits = static_cast<uint16_t>((u + rounding_bias) >> 16);
  }
  explicit operator float() const {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &u, 4);
    return value;
  }
};

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::BFloat16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::BFloat16: return "bfloat16";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64 || t == DType::BFloat16; }
inline bool is_integer(DType t) { return t == DType::Int32 || t == DType::Int64; }

// The C++ type behind a dtype, and back.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };

// Call fn(T{}) with the C++ type of `t`; `op` names the caller for the error on an unsupported dtype.
template <class Fn>
decltype(auto) dispatch_all(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::BFloat16: return fn(BFloat16{});
  }
  throw Error(detail::concat(op, ": unknown dtype"));
}

// float32, float64, int32, int64 (the types the CPU computes in).
template <class Fn>
decltype(auto) dispatch_numeric(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    default: break;
  }
  throw Error(detail::concat(op, ": dtype ", dtype_name(t), " is not supported here (convert with .to(DType::Float32))"));
}

// float32, float64 only (math functions, matmul, reductions that divide).
template <class Fn>
decltype(auto) dispatch_float(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    default: break;
  }
  throw Error(detail::concat(op, ": needs float32 or float64, got ", dtype_name(t)));
}

}  // namespace ssm
