// Gradchecks of the elementwise differentiable ops (autograd/functions_elementwise.cpp): arithmetic
// with broadcasting, scalar overloads and operators, unary math, where/masked_fill, to_dtype —
// each also through a non-contiguous (transposed / narrowed) view, and with inputs that do not
// require grad (the needs_input_grad() branches). All checks use float64 and the default (tight)
// GradcheckOptions.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "tensor/random.h"
#include "tests/gradcheck_helpers.h"

namespace {

using namespace ssm;
using namespace ssm::testing;

// Values with |x| in [lo, hi] and a random sign: away from the kink at 0.
Tensor away_from_zero(const Shape& s, double lo, double hi, Generator& g) {
  Tensor mag = op::uniform(s, lo, hi, g, DType::Float64);
  Tensor sgn = op::sign(op::uniform(s, -1.0, 1.0, g, DType::Float64));
  Tensor x = op::mul(mag, sgn);
  // sign() of an exact 0 would give 0; the uniform draw never returns exactly 0 in practice, but be safe
  EXPECT_GT(op::min(op::abs(x)).item<double>(), 0.0);
  return leaf(x);
}

// ---------------------------------------------------------------- binary arithmetic

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> f;
  bool positive_a;  // a must be positive (pow)
  bool nonzero_b;   // b must stay away from 0 (div)
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, false, false},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, false, false},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, false, false},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, false, true},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, true, false},
      {"op+", [](const Tensor& a, const Tensor& b) { return a + b; }, false, false},
      {"op-", [](const Tensor& a, const Tensor& b) { return a - b; }, false, false},
      {"op*", [](const Tensor& a, const Tensor& b) { return a * b; }, false, false},
      {"op/", [](const Tensor& a, const Tensor& b) { return a / b; }, false, true},
  };
}

Tensor make_operand(const Shape& s, bool positive, bool nonzero, Generator& g) {
  if (positive) return randu(s, 0.5, 2.0, g);
  if (nonzero) return away_from_zero(s, 0.5, 2.0, g);
  return randn(s, g);
}

TEST(GradcheckElementwise, BinaryOpsSameShape) {
  Generator g(1);
  for (const auto& c : binary_cases()) {
    SCOPED_TRACE(c.name);
    Tensor a = make_operand({3, 4}, c.positive_a, false, g);
    Tensor b = make_operand({3, 4}, false, c.nonzero_b, g);
    if (std::string(c.name) == "pow") b = randu({3, 4}, -1.5, 1.5, g);
    expect_gradcheck([&](const std::vector<Tensor>& in) { return c.f(in[0], in[1]); }, {a, b});
  }
}

TEST(GradcheckElementwise, BinaryOpsBroadcasting) {
  Generator g(2);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {4}}, {{4}, {3, 4}}, {{2, 1, 4}, {3, 1}}, {{3, 1}, {2, 1, 4}}, {{3, 4}, {}}, {{}, {3, 4}}, {{1, 4}, {3, 1}}};
  for (const auto& c : binary_cases()) {
    for (const auto& [sa, sb] : shapes) {
      SCOPED_TRACE(std::string(c.name) + " " + shape_str(sa) + " with " + shape_str(sb));
      Tensor a = make_operand(sa, c.positive_a, false, g);
      Tensor b = make_operand(sb, false, c.nonzero_b, g);
      expect_gradcheck([&](const std::vector<Tensor>& in) { return c.f(in[0], in[1]); }, {a, b});
    }
  }
}

TEST(GradcheckElementwise, BinaryOpsOnlyOneInputRequiresGrad) {
  Generator g(3);
  for (const auto& c : binary_cases()) {
    for (int which = 0; which < 2; ++which) {
      SCOPED_TRACE(std::string(c.name) + " grad only for input " + std::to_string(which));
      Tensor a = make_operand({2, 1, 4}, c.positive_a, false, g);
      Tensor b = make_operand({3, 1}, false, c.nonzero_b, g);
      (which == 0 ? b : a).set_requires_grad(false);
      expect_gradcheck([&](const std::vector<Tensor>& in) { return c.f(in[0], in[1]); }, {a, b});
    }
  }
}

TEST(GradcheckElementwise, BinaryOpsNonContiguousViews) {
  Generator g(4);
  for (const auto& c : binary_cases()) {
    SCOPED_TRACE(c.name);
    Tensor a = make_operand({4, 3}, c.positive_a, false, g);   // used transposed: [3, 4]
    Tensor b = make_operand({3, 6}, false, c.nonzero_b, g);    // narrowed to columns 1..4: [3, 4]
    expect_gradcheck(
        [&](const std::vector<Tensor>& in) { return c.f(transpose(in[0], 0, 1), narrow(in[1], 1, 1, 4)); }, {a, b});
    // a broadcast operand that is itself a strided view: column 2 of b, [3] -> against [4, 3]
    Tensor b2 = make_operand({3, 5}, false, c.nonzero_b, g);
    expect_gradcheck([&](const std::vector<Tensor>& in) { return c.f(in[0], select(in[1], 1, 2)); }, {a, b2});
  }
}

TEST(GradcheckElementwise, SameTensorOnBothSides) {
  Generator g(5);
  Tensor x = randu({3, 4}, 0.5, 2.0, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0]); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return div(in[0], in[0]) + in[0]; }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], in[0]); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return sub(in[0], in[0] * in[0]); }, {x});
}

TEST(GradcheckElementwise, MaximumMinimum) {
  Generator g(6);
  // distinct values (no ties) drawn from a shuffled grid, so every element is well away from a tie
  auto distinct = [&](const Shape& s, double offset) {
    const int64_t n = numel(s);
    const Tensor perm = op::randperm(n, g).to(DType::Float64);
    return leaf(op::add(op::mul(perm, 0.37), offset).view(s));
  };
  Tensor a = distinct({3, 4}, -2.0);
  Tensor b = distinct({3, 4}, -1.9);  // a - b differs by at least ~0.1 + multiples of 0.37
  expect_gradcheck([](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }, {a, b});
  expect_gradcheck([](const std::vector<Tensor>& in) { return minimum(in[0], in[1]); }, {a, b});
  // broadcasting [2,1,4] with [3,1] and a non-contiguous operand
  Tensor c = distinct({2, 1, 4}, -1.3);
  Tensor d = distinct({3, 1}, -1.15);
  expect_gradcheck([](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }, {c, d});
  expect_gradcheck([](const std::vector<Tensor>& in) { return minimum(in[0], in[1]); }, {c, d});
  Tensor e = distinct({4, 3}, -1.95);
  expect_gradcheck([](const std::vector<Tensor>& in) { return maximum(transpose(in[0], 0, 1), in[1]); }, {e, a});
}

TEST(GradcheckElementwise, MaximumMinimumTiesShareGradient) {
  Tensor a = leaf(Tensor::from_vector<double>({1.0, 2.0, 3.0}, {3}));
  Tensor b = leaf(Tensor::from_vector<double>({0.0, 2.0, 4.0}, {3}));
  backward(sum(maximum(a, b)));
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{1.0, 0.5, 0.0}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{0.0, 0.5, 1.0}));
  a.set_grad(Tensor());
  b.set_grad(Tensor());
  backward(sum(minimum(a, b)));
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{0.0, 0.5, 1.0}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{1.0, 0.5, 0.0}));
}

// ---------------------------------------------------------------- scalar overloads and operators

TEST(GradcheckElementwise, ScalarOverloadsAndOperators) {
  Generator g(7);
  Tensor x = randn({3, 4}, g);
  const std::vector<std::pair<const char*, Fn>> cases = {
      {"add(x, 1.5)", [](const std::vector<Tensor>& in) { return add(in[0], 1.5); }},
      {"mul(x, -2.5)", [](const std::vector<Tensor>& in) { return mul(in[0], -2.5); }},
      {"x + 2", [](const std::vector<Tensor>& in) { return in[0] + 2.0; }},
      {"x - 2", [](const std::vector<Tensor>& in) { return in[0] - 2.0; }},
      {"x * 3", [](const std::vector<Tensor>& in) { return in[0] * 3.0; }},
      {"x / 4", [](const std::vector<Tensor>& in) { return in[0] / 4.0; }},
      {"3 * x", [](const std::vector<Tensor>& in) { return 3.0 * in[0]; }},
      {"2 + x", [](const std::vector<Tensor>& in) { return 2.0 + in[0]; }},
      {"-x", [](const std::vector<Tensor>& in) { return -in[0]; }},
      {"(2 - x) * x / 3", [](const std::vector<Tensor>& in) { return (2.0 + -in[0]) * in[0] / 3.0; }},
      {"-(x^T) * 2 on a view", [](const std::vector<Tensor>& in) { return -transpose(in[0], 0, 1) * 2.0; }},
  };
  for (const auto& [name, f] : cases) {
    SCOPED_TRACE(name);
    expect_gradcheck(f, {x});
  }
}

TEST(GradcheckElementwise, PowScalarExponent) {
  Generator g(8);
  Tensor x = randu({3, 4}, 0.5, 2.0, g);
  for (double p : {2.0, 3.0, 0.5, -1.0, -1.5, 1.0, 0.0, 2.7}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    expect_gradcheck([p](const std::vector<Tensor>& in) { return pow(in[0], p); }, {x});
    expect_gradcheck([p](const std::vector<Tensor>& in) { return pow(transpose(in[0], 0, 1), p); }, {x});
  }
  // integer exponents are smooth on negative inputs too
  Tensor y = randn({2, 3, 4}, g);
  for (double p : {2.0, 3.0}) expect_gradcheck([p](const std::vector<Tensor>& in) { return pow(in[0], p); }, {y});
}

TEST(GradcheckElementwise, PowZeroExponentHasZeroGradientEverywhere) {
  // x^0 is constant: the gradient is 0 even at x = 0 (a naive 0 * 0^-1 gives NaN)
  Tensor x = leaf(Tensor::from_vector<double>({0.0, 1.5, -2.0}, {3}));
  backward(sum(pow(x, 0.0)));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 0}));
  x.set_grad(Tensor());
  const Tensor zero_exp = Tensor::zeros({3}, DType::Float64);
  backward(sum(pow(x, zero_exp)));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 0}));
  // pow(0, b) for b > 1 has gradient 0 w.r.t. the base; b = 1 gives 1
  Tensor z = leaf(Tensor::zeros({3}, DType::Float64));
  backward(sum(pow(z, Tensor::from_vector<double>({2.0, 3.0, 1.0}, {3}))));
  EXPECT_EQ(z.grad().to_vector<double>(), (std::vector<double>{0, 0, 1}));
}

// ---------------------------------------------------------------- unary math

struct UnaryCase {
  const char* name;
  Tensor (*f)(const Tensor&);
  enum Domain { Any, Positive, AwayFromZero } domain;
};

TEST(GradcheckElementwise, UnaryMath) {
  const std::vector<UnaryCase> cases = {
      {"neg", ssm::neg, UnaryCase::Any},           {"exp", ssm::exp, UnaryCase::Any},
      {"log", ssm::log, UnaryCase::Positive},      {"log1p", ssm::log1p, UnaryCase::Positive},
      {"expm1", ssm::expm1, UnaryCase::Any},       {"sqrt", ssm::sqrt, UnaryCase::Positive},
      {"rsqrt", ssm::rsqrt, UnaryCase::Positive},  {"tanh", ssm::tanh, UnaryCase::Any},
      {"sigmoid", ssm::sigmoid, UnaryCase::Any},   {"silu", ssm::silu, UnaryCase::Any},
      {"softplus", ssm::softplus, UnaryCase::Any}, {"sin", ssm::sin, UnaryCase::Any},
      {"cos", ssm::cos, UnaryCase::Any},           {"abs", ssm::abs, UnaryCase::AwayFromZero},
      {"square", ssm::square, UnaryCase::Any},     {"relu", ssm::relu, UnaryCase::AwayFromZero},
  };
  Generator g(9);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto make = [&](const Shape& s) {
      switch (c.domain) {
        case UnaryCase::Positive: return randu(s, 0.5, 2.0, g);
        case UnaryCase::AwayFromZero: return away_from_zero(s, 0.1, 2.0, g);
        default: return randn(s, g);
      }
    };
    Tensor x = make({3, 4});
    expect_gradcheck([&](const std::vector<Tensor>& in) { return c.f(in[0]); }, {x});
    // non-contiguous: transposed and narrowed views of a [2,3,4] input
    Tensor y = make({2, 3, 4});
    expect_gradcheck([&](const std::vector<Tensor>& in) { return c.f(transpose(in[0], 0, 2)); }, {y});
    expect_gradcheck([&](const std::vector<Tensor>& in) { return c.f(narrow(in[0], 2, 1, 2)); }, {y});
    // composed with itself where the domain allows (checks chained backward)
    if (c.domain == UnaryCase::Any)
      expect_gradcheck([&](const std::vector<Tensor>& in) { return c.f(c.f(in[0]) * 0.7); }, {x});
  }
}

TEST(GradcheckElementwise, UnaryMathWideRange) {
  // sigmoid / softplus / silu / tanh at larger |x| (numerically stable formulations)
  Generator g(10);
  Tensor x = randu({3, 4}, -8.0, 8.0, g);
  using UnaryFn = Tensor (*)(const Tensor&);
  for (UnaryFn f : {UnaryFn(ssm::sigmoid), UnaryFn(ssm::softplus), UnaryFn(ssm::silu), UnaryFn(ssm::tanh)})
    expect_gradcheck([f](const std::vector<Tensor>& in) { return f(in[0]); }, {x});
}

TEST(GradcheckElementwise, Clamp) {
  // values on a grid well away from the bounds -0.5 and 0.5 (at least 0.1 from each)
  std::vector<double> v;
  for (int i = 0; i < 12; ++i) v.push_back(-1.25 + 0.2 * i + 0.03);  // -1.22 .. 0.98
  for (double x : v) ASSERT_GT(std::min(std::abs(x - 0.5), std::abs(x + 0.5)), 0.05);
  Tensor x = leaf(Tensor::from_vector<double>(v, {3, 4}));
  expect_gradcheck([](const std::vector<Tensor>& in) { return clamp(in[0], -0.5, 0.5); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return clamp(transpose(in[0], 0, 1) * 1.1, -0.5, 0.5); }, {x});
  // the gradient is 1 inside and 0 outside
  backward(sum(clamp(x, -0.5, 0.5)));
  const auto grad = x.grad().to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(grad[i], (v[i] >= -0.5 && v[i] <= 0.5) ? 1.0 : 0.0) << v[i];
}

TEST(GradcheckElementwise, AbsReluGradientValues) {
  Tensor x = leaf(Tensor::from_vector<double>({-2.0, -0.5, 0.0, 0.5, 3.0}, {5}));
  backward(sum(abs(x)));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{-1, -1, 0, 1, 1}));
  x.set_grad(Tensor());
  backward(sum(relu(x)));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 0, 1, 1}));
}

// ---------------------------------------------------------------- selection and casts

TEST(GradcheckElementwise, Where) {
  Generator g(11);
  const Tensor noise = op::normal({3, 4}, 0.0, 1.0, g, DType::Float64);
  const Tensor cond = op::gt(noise, op::scalar_like(noise, 0.0));
  ASSERT_GT(op::sum(cond).item<double>(), 0.0);
  ASSERT_LT(op::sum(cond).item<double>(), 12.0);
  Tensor a = randn({3, 4}, g), b = randn({3, 4}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {a, b});
  // broadcasting: a [4], b [3, 1], cond [3, 4]; also cond [4] against a [2, 3, 4]
  Tensor a1 = randn({4}, g), b1 = randn({3, 1}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {a1, b1});
  const Tensor cond_row = Tensor::from_vector<double>({1, 0, 0, 1}, {4});
  Tensor a3 = randn({2, 3, 4}, g), b3 = randn({}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return where(cond_row, in[0], in[1]); }, {a3, b3});
  // non-contiguous operands, one input without grad
  Tensor at = randn({4, 3}, g), bn = leaf(op::normal({3, 4}, 0.0, 1.0, g, DType::Float64), false);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return where(cond, transpose(in[0], 0, 1), in[1]); }, {at, bn});
  // a differentiable cond-producing computation upstream does not break it
  Tensor x = randn({3, 4}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return where(cond, in[0] * in[0], exp(in[0])); }, {x});
}

TEST(GradcheckElementwise, MaskedFill) {
  Generator g(12);
  const Tensor mask = Tensor::from_vector<double>({1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0}, {3, 4});
  Tensor x = randn({3, 4}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return masked_fill(in[0], mask, -3.0); }, {x});
  // a broadcast mask [4] over a [2, 3, 4] input seen through a permuted view
  const Tensor row_mask = Tensor::from_vector<double>({0, 1, 1, 0}, {4});
  Tensor y = randn({4, 3, 2}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return masked_fill(permute(in[0], {2, 1, 0}), row_mask, 5.0); },
                   {y});
  // masked entries get no gradient
  backward(sum(masked_fill(x, mask, 7.0)));
  const auto gx = x.grad().to_vector<double>();
  const auto m = mask.to_vector<double>();
  for (size_t i = 0; i < gx.size(); ++i) EXPECT_EQ(gx[i], m[i] != 0 ? 0.0 : 1.0);
}

TEST(GradcheckElementwise, ToDtype) {
  Generator g(13);
  Tensor x = randn({3, 4}, g);
  // float64 -> float64 (the cast is an identity on a new handle) composed with other ops
  expect_gradcheck([](const std::vector<Tensor>& in) { return to_dtype(in[0], DType::Float64) * in[0]; }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return exp(to_dtype(transpose(in[0], 0, 1), DType::Float64)); },
                   {x});

  // float64 -> float32 -> float64: finite differences are too coarse through float32, so check the
  // gradient directly: d/dx sum(c * f64(f32(x))) = c, in float64, and float32 in the middle.
  const Tensor c = op::normal({3, 4}, 0.0, 1.0, g, DType::Float64);
  Tensor mid = to_dtype(x, DType::Float32);
  EXPECT_EQ(mid.dtype(), DType::Float32);
  EXPECT_TRUE(mid.requires_grad());
  mid.retain_grad();
  backward(sum(mul(to_dtype(mid, DType::Float64), c)));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().dtype(), DType::Float64);
  EXPECT_EQ(mid.grad().dtype(), DType::Float32);
  const auto gx = x.grad().to_vector<double>(), cv = c.to_vector<double>();
  for (size_t i = 0; i < gx.size(); ++i) EXPECT_NEAR(gx[i], static_cast<double>(static_cast<float>(cv[i])), 1e-12);

  // a cast to an integer type ends the graph
  const Tensor as_int = to_dtype(x, DType::Int64);
  EXPECT_FALSE(as_int.requires_grad());
  EXPECT_EQ(as_int.grad_fn(), nullptr);
}

}  // namespace
