// MIMO's fused value up-projection (ssm/mamba3_values.h): float64 gradcheck, values and gradients
// against the same product as broadcast autograd ops, and argument checks.
#include <gtest/gtest.h>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "gradcheck_helpers.h"
#include "ssm/mamba3_values.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;

TEST(Mamba3Values, GradcheckTokensAndCacheRows) {
  Generator gen(11);
  const auto fused = [](const std::vector<Tensor>& in) { return mamba3_values(in[0], in[1]); };
  expect_gradcheck(fused, {randn({2, 3, 2, 4}, gen), randn({2, 3, 4}, gen)});  // [b, L, H, P], R = 3
  expect_gradcheck(fused, {randn({2, 2, 4}, gen), randn({2, 2, 4}, gen)});     // a cache's [b, H, P]
}

TEST(Mamba3Values, EqualsTheBroadcastProduct) {
  Generator gen(12);
  for (int64_t R : {1, 2, 4}) {
    const Tensor x = randn({3, 5, 2, 6}, gen), psi = randn({2, R, 6}, gen);
    const Tensor xa = leaf(x.detach().clone()), pa = leaf(psi.detach().clone());
    const Tensor xb = leaf(x.detach().clone()), pb = leaf(psi.detach().clone());
    const Tensor a = mamba3_values(xa, pa), b = unsqueeze(xb, -3) * permute(pb, {1, 0, 2});
    ASSERT_EQ(a.shape(), b.shape());
    EXPECT_LT(op::max(op::abs(op::sub(a, b))).item<double>(), 1e-15);
    const Tensor weights = op::normal(a.shape(), 0, 1, gen, DType::Float64);
    backward(sum(a * weights));
    backward(sum(b * weights));
    EXPECT_LT(op::max(op::abs(op::sub(xa.grad(), xb.grad()))).item<double>(), 1e-12) << "R = " << R;
    EXPECT_LT(op::max(op::abs(op::sub(pa.grad(), pb.grad()))).item<double>(), 1e-12) << "R = " << R;
  }
}

// x as a column range of a wider tensor (how Mamba3::forward passes it: a view into in_proj's output) and as
// a transposed view: the very bits of a contiguous copy, value and gradients.
TEST(Mamba3Values, StridedViewsOfXGiveTheContiguousResult) {
  Generator gen(14);
  const int64_t batch = 2, L = 3, H = 2, P = 4, R = 3;
  const Tensor wide = op::normal({batch, L, H * P + 3}, 0, 1, gen, DType::Float64);
  const Tensor x_view = reshape(wide.narrow(2, 2, H * P), {batch, L, H, P});
  const Tensor x_transposed = op::normal({batch, H, L, P}, 0, 1, gen, DType::Float64).transpose(1, 2);
  ASSERT_FALSE(x_view.is_contiguous());
  const Tensor psi = randn({H, R, P}, gen), weights = op::normal({batch, L, R, H, P}, 0, 1, gen, DType::Float64);
  for (const Tensor& x : {x_view, x_transposed})
    expect_views_give_the_contiguous_result([](const std::vector<Tensor>& v) { return mamba3_values(v[0], v[1]); },
                                            {x, psi}, weights);
}

TEST(Mamba3Values, RejectsBadArguments) {
  Generator gen(13);
  const Tensor x = randn({2, 3, 2, 4}, gen), psi = randn({2, 3, 4}, gen);
  EXPECT_THROW(mamba3_values(x, Tensor()), Error);
  EXPECT_THROW(mamba3_values(x.narrow(3, 0, 3), psi), Error);  // P differs
  EXPECT_THROW(mamba3_values(x, psi.narrow(0, 0, 1)), Error);   // H differs
  EXPECT_THROW(mamba3_values(x, psi.to(DType::Float32)), Error);
}
