// The rotation of Mamba-3's keys and queries (ssm/rotary.h): float64 gradcheck for both pairings,
// its values against the 2×2 rotation written out, and the invariants a rotation must keep.
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck_helpers.h"
#include "ssm/rotary.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;

TEST(Rotary, GradcheckBothPairings) {
  Generator gen(3);
  for (RotaryPairing pairing : {RotaryPairing::Adjacent, RotaryPairing::HalfSplit}) {
    const Tensor x = randn({2, 3, 2, 2, 8}, gen), angles = randn({2, 3, 2, 3}, gen);
    expect_gradcheck([pairing](const std::vector<Tensor>& in) { return rotate_pairs(in[0], in[1], pairing); },
                     {x, angles});
  }
}

TEST(Rotary, RotatesTheRightPairsByTheirAngles) {
  Generator gen(4);
  const int64_t N = 8, S = 3;
  const Tensor x = op::normal({1, 2, 2, 3, N}, 0, 1, gen, DType::Float64);
  const Tensor angles = op::normal({1, 2, 3, S}, 0, 2, gen, DType::Float64);
  for (RotaryPairing pairing : {RotaryPairing::Adjacent, RotaryPairing::HalfSplit}) {
    const Tensor y = rotate_pairs(x, angles, pairing);
    for (int64_t t = 0; t < 2; ++t)
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t h = 0; h < 3; ++h) {
          std::vector<bool> rotated(N, false);
          for (int64_t m = 0; m < S; ++m) {
            const int64_t i = pairing == RotaryPairing::Adjacent ? 2 * m : m;
            const int64_t j = pairing == RotaryPairing::Adjacent ? 2 * m + 1 : m + N / 2;
            rotated[i] = rotated[j] = true;
            const double th = angles.at({0, t, h, m}), a = x.at({0, t, r, h, i}), b = x.at({0, t, r, h, j});
            EXPECT_NEAR(y.at({0, t, r, h, i}), a * std::cos(th) - b * std::sin(th), 1e-12);
            EXPECT_NEAR(y.at({0, t, r, h, j}), a * std::sin(th) + b * std::cos(th), 1e-12);
          }
          for (int64_t n = 0; n < N; ++n) {
            if (!rotated[n]) {
              EXPECT_EQ(y.at({0, t, r, h, n}), x.at({0, t, r, h, n})) << "dim " << n << " must not move";
            }
          }
        }
    // a rotation keeps norms and dot products of vectors rotated alike
    const Tensor back = rotate_pairs(y, op::neg(angles), pairing);
    EXPECT_LT(op::max(op::abs(op::sub(back, x))).item<double>(), 1e-12);
  }
}

TEST(Rotary, RejectsBadShapes) {
  const Tensor x = Tensor::zeros({1, 2, 1, 3, 8});
  EXPECT_THROW(rotate_pairs(x, Tensor::zeros({1, 2, 3, 5}), RotaryPairing::Adjacent), Error);  // 2S > N
  EXPECT_THROW(rotate_pairs(x, Tensor::zeros({1, 2, 2, 2}), RotaryPairing::Adjacent), Error);  // heads differ
  EXPECT_THROW(rotate_pairs(Tensor::zeros({2, 8}), Tensor::zeros({1, 2, 3, 2}), RotaryPairing::HalfSplit), Error);
}
