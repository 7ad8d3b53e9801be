// Mamba-3's fused keys/queries (ssm/mamba3_keys.h: norm, group→head, bias, rotation): float64 gradcheck
// for both rotation pairings and for groups, values and gradients against the same math composed from
// differentiable ops (float64, and float32 against it), the rotation of one row against the 2×2 formula,
// and argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "gradcheck_helpers.h"
#include "nn/functional.h"
#include "ssm/mamba3_keys.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;

namespace {

constexpr int64_t kBatch = 2, kL = 3, kR = 2, kH = 4, kN = 8, kS = 3;

// The twin: rms_norm → broadcast each group to its heads → + bias → rotate pairs, from autograd ops.
Tensor composed(const std::vector<Tensor>& in, RotaryPairing pairing, int64_t G) {
  const Tensor &raw = in[0], &w = in[1], &bias = in[2], &theta = in[3];
  const Tensor normed = nn::rms_norm(reshape(raw, {kBatch, kL, kR, G, 1, kN}), w);
  const Tensor k = reshape(expand(normed, {kBatch, kL, kR, G, kH / G, kN}), {kBatch, kL, kR, kH, kN}) +
                   permute(bias, {1, 0, 2});
  const RotaryPairs pairs{pairing, kN, kS};
  std::vector<Tensor> columns;
  for (int64_t n = 0; n < kN; ++n) columns.push_back(narrow(k, 4, n, 1));
  for (int64_t m = 0; m < kS; ++m) {
    const Tensor angle = unsqueeze(narrow(theta, 3, m, 1), 2);  // [b, L, 1, H, 1]
    const Tensor a = columns[pairs.first(m)], b = columns[pairs.second(m)];
    columns[pairs.first(m)] = a * cos(angle) - b * sin(angle);
    columns[pairs.second(m)] = a * sin(angle) + b * cos(angle);
  }
  return cat(columns, 4);
}

std::vector<Tensor> random_inputs(int64_t G, Generator& gen) {
  return {randn({kBatch, kL, kR * G * kN}, gen), randn({kN}, gen), randn({kH, kR, kN}, gen),
          randn({kBatch, kL, kH, kS}, gen)};
}

}  // namespace

TEST(Mamba3Keys, GradcheckBothPairingsAndGroups) {
  Generator gen(3);
  for (RotaryPairing pairing : {RotaryPairing::Adjacent, RotaryPairing::HalfSplit})
    for (int64_t G : {1, 2}) {
      SCOPED_TRACE("groups " + std::to_string(G));
      expect_gradcheck([pairing](const std::vector<Tensor>& in) { return mamba3_keys(in[0], in[1], in[2], in[3], pairing); },
                       random_inputs(G, gen));
    }
}

TEST(Mamba3Keys, EqualsTheComposedMath) {
  Generator gen(4);
  for (RotaryPairing pairing : {RotaryPairing::Adjacent, RotaryPairing::HalfSplit})
    for (int64_t G : {1, 2, 4}) {
      SCOPED_TRACE("groups " + std::to_string(G));
      const auto in = random_inputs(G, gen);
      std::vector<Tensor> fused_leaves, composed_leaves;
      for (const Tensor& t : in) {
        fused_leaves.push_back(leaf(t.detach().clone()));
        composed_leaves.push_back(leaf(t.detach().clone()));
      }
      const Tensor a = mamba3_keys(fused_leaves[0], fused_leaves[1], fused_leaves[2], fused_leaves[3], pairing);
      const Tensor b = composed(composed_leaves, pairing, G);
      EXPECT_LT(op::max(op::abs(op::sub(a, b))).item<double>(), 1e-12);
      const Tensor weights = op::normal(a.shape(), 0, 1, gen, DType::Float64);
      backward(sum(a * weights));
      backward(sum(b * weights));
      for (size_t i = 0; i < in.size(); ++i)
        EXPECT_LT(op::max(op::abs(op::sub(fused_leaves[i].grad(), composed_leaves[i].grad()))).item<double>(), 1e-11)
            << "input " << i;
    }
}

// Float32, the training dtype, whose rotations take the call-free cpu::sin_cos and the vectorised CPU loops:
// values and gradients against the composed math in float64, at angles out to ±300 (as accumulated over a
// sequence), within float rounding.
TEST(Mamba3Keys, FloatMatchesTheComposedMathInDouble) {
  Generator gen(6);
  auto max_error = [](const Tensor& got, const Tensor& want) {
    const double scale = 1 + op::max(op::abs(want)).item<double>();
    return op::max(op::abs(op::sub(got.to(DType::Float64), want))).item<double>() / scale;
  };
  for (RotaryPairing pairing : {RotaryPairing::Adjacent, RotaryPairing::HalfSplit}) {
    auto in = random_inputs(1, gen);
    in[3] = op::mul(in[3], 100.0);
    std::vector<Tensor> fused_leaves, composed_leaves;
    for (const Tensor& t : in) {
      fused_leaves.push_back(leaf(t.detach().to(DType::Float32)));
      composed_leaves.push_back(leaf(t.detach().clone()));
    }
    const Tensor a = mamba3_keys(fused_leaves[0], fused_leaves[1], fused_leaves[2], fused_leaves[3], pairing);
    const Tensor b = composed(composed_leaves, pairing, 1);
    EXPECT_LT(max_error(a, b), 1e-5);
    const Tensor weights = op::normal(a.shape(), 0, 1, gen, DType::Float64);
    backward(sum(a * weights.to(DType::Float32)));
    backward(sum(b * weights));
    for (size_t i = 0; i < in.size(); ++i)
      EXPECT_LT(max_error(fused_leaves[i].grad(), composed_leaves[i].grad()), 1e-5) << "input " << i;
  }
}

// swap_lanes, which the fused rotation c ⊙ x + s ⊙ swap(x) rests on: every lane gets its pair partner's
// value, for the pairs beyond the S rotated ones too, and an odd row's last lane keeps its own.
TEST(Mamba3Keys, SwapLanesGivesEveryLaneItsPartner) {
  for (RotaryPairing pairing : {RotaryPairing::Adjacent, RotaryPairing::HalfSplit})
    for (int64_t N : {6, 7}) {
      const RotaryPairs pairs{pairing, N, 2};
      std::vector<double> src(N), dst(N, -1.0);
      for (int64_t n = 0; n < N; ++n) src[n] = double(n);
      pairs.swap_lanes(src.data(), dst.data());
      for (int64_t m = 0; m < N / 2; ++m) {
        EXPECT_EQ(dst[pairs.first(m)], src[pairs.second(m)]) << N << " pair " << m;
        EXPECT_EQ(dst[pairs.second(m)], src[pairs.first(m)]) << N << " pair " << m;
      }
      if (N % 2) {
        EXPECT_EQ(dst[N - 1], src[N - 1]) << "the unpaired lane";
      }
    }
}

TEST(Mamba3Keys, RotatesTheRightPairsByTheirAngles) {
  const double x[8] = {0.3, -1.2, 0.7, 2.0, -0.4, 0.9, 1.5, -0.8}, theta[3] = {0.4, -2.1, 3.0};
  for (RotaryPairing pairing : {RotaryPairing::Adjacent, RotaryPairing::HalfSplit}) {
    const RotaryPairs pairs{pairing, 8, 3};
    double y[8], back[8], cos_theta[3], sin_theta[3];
    pairs.cos_sin(theta, cos_theta, sin_theta);
    pairs.rotate(x, cos_theta, sin_theta, y);
    bool rotated[8] = {};
    for (int64_t m = 0; m < 3; ++m) {
      const int64_t i = pairing == RotaryPairing::Adjacent ? 2 * m : m;
      const int64_t j = pairing == RotaryPairing::Adjacent ? 2 * m + 1 : m + 4;
      rotated[i] = rotated[j] = true;
      EXPECT_NEAR(y[i], x[i] * std::cos(theta[m]) - x[j] * std::sin(theta[m]), 1e-15);
      EXPECT_NEAR(y[j], x[i] * std::sin(theta[m]) + x[j] * std::cos(theta[m]), 1e-15);
    }
    for (int n = 0; n < 8; ++n) {
      if (!rotated[n]) {
        EXPECT_EQ(y[n], x[n]) << "dim " << n << " must not move";
      }
    }
    pairs.rotate(y, cos_theta, sin_theta, back, -1.0);  // Rotᵀ undoes it
    for (int n = 0; n < 8; ++n) EXPECT_NEAR(back[n], x[n], 1e-15);
  }
}

// raw as a column range of a wider tensor (how Mamba3::forward passes B and C: views into in_proj's output,
// which the GPU kernels read in place): the very bits of a contiguous copy, value and gradients.
TEST(Mamba3Keys, AColumnRangeOfRawGivesTheContiguousResult) {
  Generator gen(6);
  for (int64_t G : {1, 2}) {
    const auto in = random_inputs(G, gen);
    const Tensor wide = op::normal({kBatch, kL, kR * G * kN + 5}, 0, 1, gen, DType::Float64);
    const Tensor raw_view = wide.narrow(2, 3, kR * G * kN);
    ASSERT_FALSE(raw_view.is_contiguous());
    expect_views_give_the_contiguous_result(
        [](const std::vector<Tensor>& v) { return mamba3_keys(v[0], v[1], v[2], v[3], RotaryPairing::HalfSplit); },
        {raw_view, in[1], in[2], in[3]}, op::normal({kBatch, kL, kR, kH, kN}, 0, 1, gen, DType::Float64));
  }
}

TEST(Mamba3Keys, RejectsBadShapes) {
  Generator gen(5);
  const auto in = random_inputs(1, gen);
  const auto pairing = RotaryPairing::HalfSplit;
  EXPECT_THROW(mamba3_keys(in[0], Tensor::ones({kN + 1}, DType::Float64), in[2], in[3], pairing), Error);
  EXPECT_THROW(mamba3_keys(in[0].narrow(2, 0, kN), in[1], in[2], in[3], pairing), Error);  // R·N does not divide
  EXPECT_THROW(mamba3_keys(in[0], in[1], in[2], in[3].narrow(2, 0, 2), pairing), Error);   // heads differ
  EXPECT_THROW(mamba3_keys(in[0], in[1], in[2], Tensor::zeros({kBatch, kL, kH, 5}, DType::Float64), pairing), Error);
  EXPECT_THROW(mamba3_keys(in[0], in[1].to(DType::Float32), in[2], in[3], pairing), Error);
}
