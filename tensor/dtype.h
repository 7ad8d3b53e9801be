// tensor/dtype.h — element types.
//
//   float32  parameters and activations on the CPU
//   float64  references and finite-difference gradient checks
//   int32, int64  token ids and indices
//   bfloat16 storage type for the GPU's mixed precision (the CPU only converts it to and from float32)
//   float16  storage type only, so checkpoints written in F16 can be read (converted on load)
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "tensor/error.h"

namespace ssm {

enum class DType : uint8_t { Float32, Float64, Int32, Int64, BFloat16, Float16 };

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

// IEEE half precision: 1 sign, 5 exponent, 10 mantissa bits. Conversions round to nearest even and
// handle subnormals, infinities and NaN.
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  explicit Float16(float value) {
    uint32_t u;
    std::memcpy(&u, &value, 4);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) { bits = static_cast<uint16_t>(sign | 0x7e00u); return; }   // NaN
    if (abs >= 0x477ff000u) { bits = static_cast<uint16_t>(sign | 0x7c00u); return; }  // rounds to infinity
    if (abs < 0x38800000u) {  // subnormal half (or zero): scale by 2^24 and round
      float f;
      std::memcpy(&f, &abs, 4);
      const float scaled = f * 16777216.0f;  // exact; then nearest-even by the FPU's rounding
      bits = static_cast<uint16_t>(sign | static_cast<uint32_t>(__builtin_nearbyintf(scaled)));
      return;
    }
    const uint32_t rounded = abs + 0x0fffu + ((abs >> 13) & 1u) - 0x38000000u;  // rebias 127 -> 15
    bits = static_cast<uint16_t>(sign | (rounded >> 13));
  }
  explicit operator float() const {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    const uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
    float value;
    if (exponent == 0) {
      value = static_cast<float>(mantissa) / 16777216.0f;  // subnormal: mantissa * 2^-24
      uint32_t u;
      std::memcpy(&u, &value, 4);
      u |= sign;
      std::memcpy(&value, &u, 4);
      return value;
    }
    const uint32_t u = sign | (exponent == 31 ? (0xffu << 23) | (mantissa << 13) : ((exponent + 112) << 23) | (mantissa << 13));
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
    case DType::Float16: return 2;
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
    case DType::Float16: return "float16";
  }
  return "?";
}

inline bool is_floating(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::BFloat16 || t == DType::Float16;
}
inline bool is_integer(DType t) { return t == DType::Int32 || t == DType::Int64; }

// The C++ type behind a dtype, and back.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<Float16> { static constexpr DType value = DType::Float16; };

// Call fn(T{}) with the C++ type of `t`; `op` names the caller for the error on an unsupported dtype.
template <class Fn>
decltype(auto) dispatch_all(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::BFloat16: return fn(BFloat16{});
    case DType::Float16: return fn(Float16{});
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
