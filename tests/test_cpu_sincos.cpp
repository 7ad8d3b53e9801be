// Tests for tensor/cpu/sincos.h: the call-free float sin/cos against libm's in double.
#include "tensor/cpu/sincos.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace {

// The largest error of sin and cos at x, in units of 2^−24 (a float ulp just below 1): absolute, since
// near their zeros a relative bound would ask for more than the float x itself carries.
double error_in_ulps_of_one(float x) {
  float s = 0, c = 0;
  ssm::cpu::sin_cos(x, s, c);
  const double wide = x;
  return std::max(std::abs(s - std::sin(wide)), std::abs(c - std::cos(wide))) / std::ldexp(1.0, -24);
}

// Dense sweeps of [−8, 8] (every quadrant, and r near ±π/4 where the polynomials are weakest), of
// [−1000, 1000] (angles accumulated over many steps) and a coarse one out to ±1e5: within 3 ulps of 1.
TEST(CpuSinCos, FloatMatchesLibmWithinThreeUlpsOfOne) {
  double worst = 0;
  for (int i = -800000; i <= 800000; ++i) worst = std::max(worst, error_in_ulps_of_one(static_cast<float>(i) * 1e-5f));
  for (int i = -1000000; i <= 1000000; ++i) worst = std::max(worst, error_in_ulps_of_one(static_cast<float>(i) * 1e-3f));
  for (int i = -100000; i <= 100000; ++i) worst = std::max(worst, error_in_ulps_of_one(static_cast<float>(i) + 0.3f));
  EXPECT_LE(worst, 3.0);
}

TEST(CpuSinCos, FloatSpecialValues) {
  float s = 1, c = 0;
  ssm::cpu::sin_cos(0.0f, s, c);
  EXPECT_EQ(s, 0.0f);
  EXPECT_EQ(c, 1.0f);
  ssm::cpu::sin_cos(1e-30f, s, c);
  EXPECT_EQ(s, 1e-30f);
  EXPECT_EQ(c, 1.0f);
  for (float x : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity()}) {
    ssm::cpu::sin_cos(x, s, c);
    EXPECT_TRUE(std::isnan(s) && std::isnan(c)) << "x = " << x;
  }
}

TEST(CpuSinCos, DoubleIsLibm) {
  for (double x : {-30.0, -1.5, 0.0, 0.25, 7.0, 1e4}) {
    double s = 0, c = 0;
    ssm::cpu::sin_cos(x, s, c);
    EXPECT_EQ(s, std::sin(x));
    EXPECT_EQ(c, std::cos(x));
  }
}

}  // namespace
