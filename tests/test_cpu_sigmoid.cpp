// Tests for tensor/cpu/sigmoid.h: the call-free float e^u, σ and softplus against the same computed in double
// with libm.
#include "tensor/cpu/sigmoid.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace {

double reference_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Every 1/64 on [−100, 100] (both saturated tails and the clamp edges at ±87) and a dense sweep of
// [−20, 20], where σ is neither 0 nor 1 in float: within 4 float ulps of σ where σ is a normal float
// above the clamp, and below 2e−38 (instead of smaller) past it.
TEST(CpuSigmoid, FloatMatchesLibmWithinFourUlps) {
  double worst_ulps = 0;
  auto check = [&](float x) {
    const double want = reference_sigmoid(x), got = ssm::cpu::sigmoid(x);
    if (x < -87.0f) {
      EXPECT_LT(got, 2e-38) << "x = " << x;
      EXPECT_GE(got, std::numeric_limits<float>::min()) << "x = " << x << ": a subnormal";
      return;
    }
    worst_ulps = std::max(worst_ulps, std::abs(got - want) / (want * std::numeric_limits<float>::epsilon()));
  };
  for (int i = -6400; i <= 6400; ++i) check(static_cast<float>(i) / 64.0f);
  for (int i = -200000; i <= 200000; ++i) check(static_cast<float>(i) * 1e-4f);
  EXPECT_LE(worst_ulps, 4.0);
}

TEST(CpuSigmoid, FloatSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ssm::cpu::sigmoid(inf), 1.0f);
  EXPECT_LT(ssm::cpu::sigmoid(-inf), 2e-38f);
  EXPECT_EQ(ssm::cpu::sigmoid(0.0f), 0.5f);
  EXPECT_EQ(ssm::cpu::sigmoid(1e-30f), 0.5f);
  EXPECT_TRUE(std::isnan(ssm::cpu::sigmoid(std::numeric_limits<float>::quiet_NaN())));
}

// e^u (the cross-entropy's softmax uses it directly): within 2 float ulps of libm's double e^u on a dense
// sweep of [−87, 87], e^±87 past the clamp, NaN kept.
TEST(CpuSigmoid, FloatExpMatchesLibmWithinTwoUlpsAndClamps) {
  double worst_ulps = 0;
  for (int i = -870000; i <= 870000; ++i) {
    const float u = static_cast<float>(i) * 1e-4f;
    const double want = std::exp(static_cast<double>(u)), got = ssm::cpu::exp_clamped(u);
    worst_ulps = std::max(worst_ulps, std::abs(got - want) / (want * std::numeric_limits<float>::epsilon()));
  }
  EXPECT_LE(worst_ulps, 2.0);
  EXPECT_EQ(ssm::cpu::exp_clamped(-1000.0f), ssm::cpu::exp_clamped(-87.0f));
  EXPECT_EQ(ssm::cpu::exp_clamped(1000.0f), ssm::cpu::exp_clamped(87.0f));
  EXPECT_GE(ssm::cpu::exp_clamped(-87.0f), std::numeric_limits<float>::min());  // normal, not subnormal
  EXPECT_EQ(ssm::cpu::exp_clamped(0.0f), 1.0f);
  EXPECT_TRUE(std::isnan(ssm::cpu::exp_clamped(std::numeric_limits<float>::quiet_NaN())));
}

TEST(CpuSigmoid, DoubleIsLibm) {
  for (double x : {-30.0, -1.5, 0.0, 0.25, 7.0}) EXPECT_EQ(ssm::cpu::sigmoid(x), reference_sigmoid(x));
}

double reference_softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); }

// softplus on a dense sweep of [−87, 87] (where it goes from ~e^−87 to 87): within 4 float ulps of libm's
// double softplus; e^−87 (normal, not subnormal) below the clamp; x itself far above; NaN kept.
TEST(CpuSigmoid, FloatSoftplusMatchesLibmWithinFourUlps) {
  double worst_ulps = 0;
  for (int i = -870000; i <= 870000; ++i) {
    const float x = static_cast<float>(i) * 1e-4f;
    const double want = reference_softplus(x), got = ssm::cpu::softplus(x);
    worst_ulps = std::max(worst_ulps, std::abs(got - want) / (want * std::numeric_limits<float>::epsilon()));
  }
  EXPECT_LE(worst_ulps, 4.0);
  EXPECT_FLOAT_EQ(ssm::cpu::softplus(-1000.0f), ssm::cpu::exp_clamped(-87.0f));
  EXPECT_EQ(ssm::cpu::softplus(1000.0f), 1000.0f);
  EXPECT_EQ(ssm::cpu::softplus(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(ssm::cpu::softplus(std::numeric_limits<float>::quiet_NaN())));
  for (double x : {-30.0, -1.5, 0.0, 0.25, 7.0}) EXPECT_EQ(ssm::cpu::softplus(x), reference_softplus(x));
}

}  // namespace
