// Mamba-3's fused angle steps ω = π·tanh(ang)·DT (ssm/mamba3_angles.h): float64 gradcheck, values and
// gradients against the same product as broadcast autograd ops, ang read in place as a column range, and
// argument checks. (The GPU kernels against these loops: tests/test_cuda_fused.cpp.)
#include <gtest/gtest.h>

#include <numbers>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "gradcheck_helpers.h"
#include "ssm/mamba3_angles.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;

TEST(Mamba3AngleSteps, Gradcheck) {
  Generator gen(21);
  const auto fused = [](const std::vector<Tensor>& in) { return mamba3_angle_steps(in[0], in[1]); };
  expect_gradcheck(fused, {randn({2, 3, 4}, gen), randn({2, 3, 5}, gen)});  // H = 4 heads, S = 5 pairs
  expect_gradcheck(fused, {randn({1, 2, 1}, gen), randn({1, 2, 1}, gen)});
}

TEST(Mamba3AngleSteps, EqualsTheBroadcastProduct) {
  Generator gen(22);
  const Tensor DT = randn({3, 7, 4}, gen), ang = randn({3, 7, 6}, gen);
  const Tensor da = leaf(DT.detach().clone()), aa = leaf(ang.detach().clone());
  const Tensor db = leaf(DT.detach().clone()), ab = leaf(ang.detach().clone());
  const Tensor a = mamba3_angle_steps(da, aa), b = unsqueeze(db, 3) * unsqueeze(tanh(ab) * std::numbers::pi, 2);
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_LT(op::max(op::abs(op::sub(a, b))).item<double>(), 1e-14);
  const Tensor weights = op::normal(a.shape(), 0, 1, gen, DType::Float64);
  backward(sum(a * weights));
  backward(sum(b * weights));
  EXPECT_LT(op::max(op::abs(op::sub(da.grad(), db.grad()))).item<double>(), 1e-12);
  EXPECT_LT(op::max(op::abs(op::sub(aa.grad(), ab.grad()))).item<double>(), 1e-12);
}

// ang as a column range of a wider tensor (how Mamba3::forward passes it: in_proj's last columns): the very
// bits of a contiguous copy, value and gradients.
TEST(Mamba3AngleSteps, ColumnRangeOfAngGivesTheContiguousResult) {
  Generator gen(23);
  const Tensor wide = op::normal({2, 5, 9}, 0, 1, gen, DType::Float64);
  const Tensor ang_view = wide.narrow(2, 3, 4);
  ASSERT_FALSE(ang_view.is_contiguous());
  const Tensor DT = randn({2, 5, 3}, gen), weights = op::normal({2, 5, 3, 4}, 0, 1, gen, DType::Float64);
  expect_views_give_the_contiguous_result([](const std::vector<Tensor>& v) { return mamba3_angle_steps(v[0], v[1]); },
                                          {DT, ang_view}, weights);
}

TEST(Mamba3AngleSteps, RejectsBadArguments) {
  Generator gen(24);
  const Tensor DT = randn({2, 3, 4}, gen), ang = randn({2, 3, 5}, gen);
  EXPECT_THROW(mamba3_angle_steps(DT, Tensor()), Error);
  EXPECT_THROW(mamba3_angle_steps(DT, ang.narrow(1, 0, 2)), Error);  // L differs
  EXPECT_THROW(mamba3_angle_steps(DT.view({2, 12}), ang), Error);    // not [batch, L, H]
  EXPECT_THROW(mamba3_angle_steps(DT, ang.to(DType::Float32)), Error);
}
