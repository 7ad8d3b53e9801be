// Mamba-3's fused rates (ssm/mamba3_rates.h): float64 gradcheck, values and gradients against the
// composition of elementwise autograd ops it replaced (with in_proj-like strided inputs, and with
// outputs left unused), the floor passing no gradient, and argument checks.
#include <gtest/gtest.h>

#include <limits>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "gradcheck_helpers.h"
#include "ssm/mamba3_rates.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The same math as autograd ops (spec §3.3 steps 2–4).
Mamba3Rates composed_rates(const Tensor& dd_dt, const Tensor& dd_A, const Tensor& trap, const Tensor& dt_bias,
                           double A_floor) {
  const Tensor heavy_tail = relu(dd_A) + pow(-clamp(dd_A, -kInf, 0.0) + 1.0, -1.0);
  const Tensor A = clamp(-heavy_tail, -kInf, -A_floor);
  const Tensor DT = softplus(dd_dt + dt_bias);
  const Tensor gamma = DT * sigmoid(trap);
  return {A * DT, gamma, DT - gamma, DT};
}

// dd_dt, dd_A, trap as in Mamba3::forward: column ranges of one projection [batch, L, 3H + 2].
std::vector<Tensor> columns(const Tensor& proj, int64_t H) { return split(proj, {H, H, H, 2}, -1); }

// The projection: dd_A over [−3, 2] so that with A_floor = 0.5 the floor binds for some (f < 0.5 below −1).
Tensor projection(int64_t batch, int64_t L, int64_t H, Generator& gen, DType dtype = DType::Float64) {
  Tensor p = op::uniform({batch, L, 3 * H + 2}, -3.0, 2.0, gen, dtype);
  p.set_requires_grad(true);
  return p;
}

}  // namespace

TEST(Mamba3Rates, Gradcheck) {
  Generator gen(21);
  const int64_t H = 3;
  const auto fused = [H](const std::vector<Tensor>& in) {
    const auto c = columns(in[0], H);
    const Mamba3Rates r = mamba3_rates(c[0], c[1], c[2], in[1], 0.5);
    return cat({r.adt, r.gamma, r.eta, r.DT}, 2);
  };
  expect_gradcheck(fused, {projection(2, 3, H, gen), randn({H}, gen)});
}

TEST(Mamba3Rates, EqualsTheComposedOps) {
  Generator gen(22);
  const int64_t H = 5;
  for (const DType dtype : {DType::Float64, DType::Float32})
    for (const bool use_eta : {true, false}) {  // without: η's incoming gradient is undefined
      const Tensor proj = projection(4, 33, H, gen, dtype);
      const Tensor bias = leaf(op::normal({H}, 0, 1, gen, dtype));
      const Tensor weights = op::normal({4, 4, 33, H}, 0, 1, gen, dtype);
      std::vector<Tensor> outputs, grads;
      for (const bool fused : {true, false}) {
        proj.set_grad(Tensor());
        bias.set_grad(Tensor());
        const auto c = columns(proj, H);
        const Mamba3Rates r = fused ? mamba3_rates(c[0], c[1], c[2], bias, 0.5)
                                    : composed_rates(c[0], c[1], c[2], bias, 0.5);
        Tensor loss = sum(r.adt * weights.select(0, 0)) + sum(r.gamma * weights.select(0, 1)) +
                      sum(r.DT * weights.select(0, 3));
        if (use_eta) loss = loss + sum(r.eta * weights.select(0, 2));
        backward(loss);
        outputs.push_back(op::cat({r.adt, r.gamma, r.eta, r.DT}, 2));
        grads.push_back(proj.grad());
        grads.push_back(bias.grad());
      }
      const double tol = dtype == DType::Float64 ? 1e-12 : 2e-6;
      const auto max_diff = [](const Tensor& a, const Tensor& b) {
        return op::max(op::abs(op::sub(a, b))).item<double>() / (1 + op::max(op::abs(b)).item<double>());
      };
      const std::string what = std::string(dtype_name(dtype)) + (use_eta ? "" : ", eta unused");
      EXPECT_LT(max_diff(outputs[0], outputs[1]), tol) << what;
      EXPECT_LT(max_diff(grads[0], grads[2]), tol) << "d proj, " << what;
      EXPECT_LT(max_diff(grads[1], grads[3]), tol) << "d dt_bias, " << what;
    }
}

// Where −f(dd_A) is above −A_floor, A is the floor: adt does not depend on dd_A there.
TEST(Mamba3Rates, TheFloorPassesNoGradient) {
  const Tensor dd_A = leaf(Tensor::from_vector<double>({-3.0, 0.5}, {1, 2, 1}));  // f = 0.25 (floored), 1.5
  const Tensor zeros = Tensor::zeros({1, 2, 1}, DType::Float64);
  const Mamba3Rates r = mamba3_rates(zeros, dd_A, zeros, Tensor::zeros({1}, DType::Float64), 0.5);
  backward(sum(r.adt));
  const std::vector<double> A = op::div(r.adt, r.DT).to_vector<double>(), dA = dd_A.grad().to_vector<double>();
  EXPECT_DOUBLE_EQ(A[0], -0.5);
  EXPECT_DOUBLE_EQ(A[1], -1.5);
  EXPECT_EQ(dA[0], 0.0);
  EXPECT_DOUBLE_EQ(dA[1], -r.DT.to_vector<double>()[1]);  // −DT · f'(0.5) = −DT
}

TEST(Mamba3Rates, RejectsBadArguments) {
  Generator gen(23);
  const Tensor x = randn({2, 3, 4}, gen), bias = randn({4}, gen);
  EXPECT_THROW(mamba3_rates(x, x, Tensor(), bias, 1e-4), Error);
  EXPECT_THROW(mamba3_rates(x, x.narrow(2, 0, 3), x, bias, 1e-4), Error);  // shapes differ
  EXPECT_THROW(mamba3_rates(x, x, x, bias.narrow(0, 0, 3), 1e-4), Error);  // H differs
  EXPECT_THROW(mamba3_rates(x, x, x, bias.to(DType::Float32), 1e-4), Error);
  EXPECT_THROW(mamba3_rates(x.select(0, 0), x.select(0, 0), x.select(0, 0), bias, 1e-4), Error);  // not [b, L, H]
}
