// tensor/cpu/sigmoid.h — σ(x) = 1 / (1 + e^{−x}) and softplus(x) = log(1 + e^x) without a library call,
// so loops over them vectorise; and SiLU with its slope built on σ. For the fused ops' loops; the
// elementwise ops keep tensor/cpu/scalar_math.h's libm versions, exact at the extremes these clamp.
//
// The fused Mamba-3 output gate evaluates σ for every (token, rank, head, channel); with libm's expf,
// a call the compiler cannot vectorise, the exp dominated the gate's forward pass (~5 ns per call).
// Float: with u = −x, e^u = 2^n · e^r where n = round(u·log₂e) and r = u − n·ln2 (ln2 in two parts,
// so that n·ln2 is exact to float precision); e^r comes from the degree-5 polynomial of the Cephes
// library's expf on |r| ≤ ln2/2 (~1 ulp), written as 1 + r(1 + r·p) so that no r² is formed (a
// subnormal for tiny r, and subnormals are slow); 2^n goes straight into the exponent bits. u is
// clamped to [−87, 87], where 2^n and σ both stay normal floats; σ has saturated there anyway. The
// clamp is done with bit masks: written as ternaries, GCC split the loop into paths on which the
// clamped constant was folded into the caller's arithmetic, producing subnormals on every element.
// A NaN stays NaN. Double keeps std::exp: its gradient checks want every digit.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace ssm::cpu {

// e^u for float u, clamped to [−87, 87] (so e^u and 2^n stay normal floats), ~1 ulp, no library call
// (the derivation above). Also the softmax of the CPU cross-entropy (nn/cross_entropy.cpp).
inline float exp_clamped(float u) {
  constexpr float kLow = -87.0f, kHigh = 87.0f;
  const uint32_t below = -static_cast<uint32_t>(u < kLow), above = -static_cast<uint32_t>(u > kHigh);
  const float uc = std::bit_cast<float>((std::bit_cast<uint32_t>(u) & ~(below | above)) |
                                        (std::bit_cast<uint32_t>(kLow) & below) | (std::bit_cast<uint32_t>(kHigh) & above));
  // Adding 1.5·2^23 rounds uc·log₂e to an integer held in the low mantissa bits.
  constexpr float kRound = 12582912.0f;
  const float shifted = uc * 1.44269504088896341f + kRound;
  const float n = shifted - kRound;
  const float r = (uc - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 = 0.693359375 − 2.12194440e−4
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e_r = (p * r + 1.0f) * r + 1.0f;
  const uint32_t n_bits = std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(kRound);  // n, two's complement
  return e_r * std::bit_cast<float>((n_bits + 127u) << 23);
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_clamped(-x)); }

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// softplus(x) = max(x, 0) + log1p(u) with u = e^{−|x|} ∈ (0, 1] (never overflows). Float: u from
// exp_clamped, and log1p(u) = 2·atanh(s) with s = u / (2 + u) ∈ (0, 1/3], whose series
// 2s(1 + s²/3 + s⁴/5 + …) has converged to float precision after the s¹² term ((1/9)⁷/15 < 2⁻²⁴);
// being a product of s, it keeps tiny u's relative precision, as log1p does. Below x = −87 the clamp
// gives e^{−87} ≈ 1.6e−38 rather than a subnormal. Mamba-3's rates (ssm/mamba3_rates.h) evaluate it
// for every (token, head), where libm's expf and log1pf were calls the loops could not vectorise.
inline float softplus(float x) {
  const float u = exp_clamped(-std::abs(x)), s = u / (2.0f + u), z = s * s;
  float p = 1.0f / 13.0f;
  p = p * z + 1.0f / 11.0f;
  p = p * z + 1.0f / 9.0f;
  p = p * z + 1.0f / 7.0f;
  p = p * z + 1.0f / 5.0f;
  p = p * z + 1.0f / 3.0f;
  return std::max(x, 0.0f) + 2.0f * s * (p * z + 1.0f);
}

inline double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); }

// silu(x) = x σ(x) and its slope silu'(x) = σ(x)(1 + x(1 − σ(x))), for the fused ops' loops (the
// gated norm, the conv's SiLU): built on the σ above, so they vectorise too.
template <class T>
T silu(T x) {
  return x * sigmoid(x);
}
template <class T>
T silu_slope(T x) {
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

}  // namespace ssm::cpu
