// tensor/cpu/sigmoid.h — σ(x) = 1 / (1 + e^{−x}) with no library call, so loops over it vectorise.
//
// The fused Mamba-3 output gate evaluates σ for every (token, rank, head, channel); with libm's expf,
// a call the compiler cannot vectorise, the exp alone was ~20% of the gate's forward + backward.
// Float: e^u = 2^n · e^r with n = round(u·log₂e) and r = u − n·ln2 (ln2 in two parts, so that n·ln2
// is exact to float precision), e^r from the degree-5 polynomial of the Cephes library's expf on
// |r| ≤ ln2/2 (~1 ulp), 2^n written straight into the exponent bits. u is clamped to [−87, 88], where
// 2^n is still a normal float; σ has saturated there (σ(−88) comes out 6e−39 instead of 0). A NaN
// stays NaN (it passes through r). Double keeps std::exp: its gradient checks want every digit.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace ssm::cpu {

// e^u for u in float range, clamped to [−87, 88] (see above)
inline float exp_clamped(float u) {
  u = u < -87.0f ? -87.0f : u;
  u = u > 88.0f ? 88.0f : u;
  // Adding 1.5·2^23 rounds u·log₂e to an integer held in the low mantissa bits (|u·log₂e| < 2^22).
  constexpr float kRound = 12582912.0f;
  const float shifted = u * 1.44269504088896341f + kRound;
  const float n = shifted - kRound;
  const float r = (u - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 = 0.693359375 − 2.12194440e−4
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e_r = p * r * r + r + 1.0f;
  const uint32_t n_bits = std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(kRound);  // n, two's complement
  return e_r * std::bit_cast<float>((n_bits + 127u) << 23);
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_clamped(-x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace ssm::cpu
