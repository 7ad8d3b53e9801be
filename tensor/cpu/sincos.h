// tensor/cpu/sincos.h — sin x and cos x together without a library call, so that loops over them
// vectorise. Mamba-3's fused keys and queries (ssm/mamba3_keys.cpp) rotate every (token, head) by its
// angles, forward and backward; libm's sincosf, a call per angle, was ~2% of a CPU training step.
//
// Float: x = j·π/2 + r with j = round(x·2/π) and |r| ≤ π/4. The reduction runs in double: x is exact
// there, and with π/2 to 53 bits the error of j·π/2 stays below 1e−9 up to |x| ~ 1e6 (a float's own
// spacing there is 0.06, so nothing the angle still means is lost; libm reduces exactly, which only
// matters for arguments no model produces). Adding 1.5·2^52 rounds x·2/π to an integer held in the low
// mantissa bits, whose two lowest give the quadrant j mod 4 (two's complement, negative j too). On
// r, the minimax polynomials of the Cephes library's sinf and cosf (~1 ulp on [−π/4, π/4]); the
// quadrant then swaps them and sets their signs,
//   j mod 4 = 0: (sin r, cos r),  1: (cos r, −sin r),  2: (−sin r, −cos r),  3: (−cos r, sin r),
// with bit masks, not branches, so that the loop stays one straight vectorised path. NaN and ±∞ give
// NaN, as libm does. Double keeps libm: its gradient checks want every digit.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace ssm::cpu {

inline void sin_cos(float x, float& sin_x, float& cos_x) {
  constexpr double kRound = 6755399441055744.0;  // 1.5·2^52
  const double shifted = static_cast<double>(x) * 0.63661977236758134308 + kRound;  // 2/π
  const double j = shifted - kRound;
  const float r = static_cast<float>(static_cast<double>(x) - j * 1.57079632679489661923), z = r * r;
  const float s = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
  const float c = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z -
                  0.5f * z + 1.0f;
  const uint32_t quadrant = static_cast<uint32_t>(std::bit_cast<uint64_t>(shifted)) & 3u;
  const uint32_t swap = 0u - (quadrant & 1u), s_bits = std::bit_cast<uint32_t>(s), c_bits = std::bit_cast<uint32_t>(c);
  sin_x = std::bit_cast<float>(((s_bits & ~swap) | (c_bits & swap)) ^ ((quadrant & 2u) << 30));
  cos_x = std::bit_cast<float>(((c_bits & ~swap) | (s_bits & swap)) ^ (((quadrant + 1u) & 2u) << 30));
}

inline void sin_cos(double x, double& sin_x, double& cos_x) {
  sin_x = std::sin(x);
  cos_x = std::cos(x);
}

}  // namespace ssm::cpu
