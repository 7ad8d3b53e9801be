// Mamba-3's fused output stage (ssm/mamba3_output.h): float64 gradcheck (SISO and MIMO), values and
// gradients against the same math composed from differentiable ops, and argument checks.
#include <gtest/gtest.h>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "gradcheck_helpers.h"
#include "ssm/mamba3_output.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;

namespace {

// out = Σ_r φ_r ⊙ (y_r + D ψ_r ⊙ x) ⊙ silu(z ⊙ ζ_r), from elementwise autograd ops
Tensor composed(const std::vector<Tensor>& in) {
  const Tensor &y = in[0], &x = in[1], &z = in[2], &D = in[3];
  const int64_t H = y.size(3);
  const Tensor psi = permute(in[4], {1, 0, 2}), zeta = permute(in[5], {1, 0, 2}), phi = permute(in[6], {1, 0, 2});
  const Tensor o = y + unsqueeze(x, 2) * psi * reshape(D, {H, 1});
  return sum(phi * o * silu(unsqueeze(z, 2) * zeta), {2});
}

std::vector<Tensor> random_inputs(int64_t R, Generator& gen) {
  const int64_t batch = 2, L = 3, H = 2, P = 3;
  return {randn({batch, L, R, H, P}, gen), randn({batch, L, H, P}, gen), randn({batch, L, H, P}, gen),
          randn({H}, gen),                 randn({H, R, P}, gen),       randn({H, R, P}, gen),
          randn({H, R, P}, gen)};
}

}  // namespace

TEST(Mamba3Output, GradcheckMimoAndSiso) {
  Generator gen(5);
  const auto mimo = random_inputs(3, gen);
  expect_gradcheck([](const std::vector<Tensor>& in) {
    return mamba3_output_gate(in[0], in[1], in[2], in[3], in[4], in[5], in[6]);
  }, mimo);
  auto siso = random_inputs(1, gen);
  siso.resize(4);
  expect_gradcheck([](const std::vector<Tensor>& in) {
    return mamba3_output_gate(in[0], in[1], in[2], in[3], Tensor(), Tensor(), Tensor());
  }, siso);
}

TEST(Mamba3Output, EqualsTheComposedMath) {
  Generator gen(6);
  for (int64_t R : {1, 2, 4}) {
    const auto in = random_inputs(R, gen);
    std::vector<Tensor> fused_leaves, composed_leaves;
    for (const Tensor& t : in) {
      fused_leaves.push_back(leaf(t.detach().clone()));
      composed_leaves.push_back(leaf(t.detach().clone()));
    }
    const Tensor weights = op::normal({2, 3, 2, 3}, 0, 1, gen, DType::Float64);
    const Tensor a = mamba3_output_gate(fused_leaves[0], fused_leaves[1], fused_leaves[2], fused_leaves[3],
                                        fused_leaves[4], fused_leaves[5], fused_leaves[6]);
    const Tensor b = composed(composed_leaves);
    EXPECT_LT(op::max(op::abs(op::sub(a, b))).item<double>(), 1e-12);
    backward(sum(a * weights));
    backward(sum(b * weights));
    for (size_t i = 0; i < in.size(); ++i)
      EXPECT_LT(op::max(op::abs(op::sub(fused_leaves[i].grad(), composed_leaves[i].grad()))).item<double>(), 1e-12)
          << "input " << i;
  }
}

// x and z as column ranges of one wider tensor (how Mamba3::forward passes them: views into in_proj's
// output, read in place with a row stride), and z as a transposed view (copied first): the very bits of
// contiguous copies, value and gradients.
TEST(Mamba3Output, StridedViewsOfXAndZGiveTheContiguousResult) {
  Generator gen(8);
  const auto in = random_inputs(2, gen);
  const int64_t batch = 2, L = 3, H = 2, P = 3;
  const Tensor wide = op::normal({batch, L, 3 * H * P + 1}, 0, 1, gen, DType::Float64);  // [.. | x | .. | z | ..]
  const Tensor x_view = reshape(wide.narrow(2, 1, H * P), {batch, L, H, P});
  const Tensor z_view = reshape(wide.narrow(2, 1 + 2 * H * P, H * P), {batch, L, H, P});
  const Tensor z_transposed = op::normal({batch, L, P, H}, 0, 1, gen, DType::Float64).transpose(2, 3);
  ASSERT_FALSE(x_view.is_contiguous());
  const Tensor weights = op::normal({batch, L, H, P}, 0, 1, gen, DType::Float64);
  for (const Tensor& z_in : {z_view, z_transposed})
    expect_views_give_the_contiguous_result(
        [](const std::vector<Tensor>& v) { return mamba3_output_gate(v[0], v[1], v[2], v[3], v[4], v[5], v[6]); },
        {in[0], x_view, z_in, in[3], in[4], in[5], in[6]}, weights);
}

TEST(Mamba3Output, RejectsBadArguments) {
  Generator gen(7);
  const auto in = random_inputs(2, gen);
  EXPECT_THROW(mamba3_output_gate(in[0], in[1], in[2], in[3], Tensor(), Tensor(), Tensor()), Error);  // R 2, no ψ
  EXPECT_THROW(mamba3_output_gate(in[0], in[1], in[2], in[3], in[4], Tensor(), in[6]), Error);
  EXPECT_THROW(mamba3_output_gate(in[0], in[2].narrow(3, 0, 2), in[2], in[3], in[4], in[5], in[6]), Error);
  EXPECT_THROW(mamba3_output_gate(in[0], in[1], in[2], in[3].to(DType::Float32), in[4], in[5], in[6]), Error);
  // no ranks at all: nothing to gate (the parameters' shapes [H, 0, P] would fit)
  const auto no_rank = random_inputs(0, gen);
  EXPECT_THROW(mamba3_output_gate(no_rank[0], no_rank[1], no_rank[2], no_rank[3], no_rank[4], no_rank[5], no_rank[6]),
               Error);
}
