// Gradchecks of the reductions and scans (autograd/functions_reduce.cpp): sum, mean, max/min,
// logsumexp, norm over one dim, several dims and all dims, keepdim true and false, on contiguous
// and non-contiguous inputs; cumsum along each dim; softmax and log_softmax. Plus exact checks
// that max/min ties share the gradient evenly.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "tensor/random.h"
#include "tests/gradcheck_helpers.h"

namespace {

using namespace ssm;
using namespace ssm::testing;
using Dims = std::vector<int64_t>;
using ReduceFn = Tensor (*)(const Tensor&, const Dims&, bool);

std::string dims_str(const Dims& d) { return d.empty() ? std::string("all") : shape_str(d); }

// Every dims set used on a [2, 3, 4] input: single dims (positive and negative), pairs, all.
const std::vector<Dims>& dim_sets() {
  static const std::vector<Dims> sets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {2, 0}, {1, 2}, {0, 1}, {0, 1, 2}};
  return sets;
}

// A [2, 3, 4] float64 leaf whose values are all distinct and at least 0.1 apart (a shuffled grid),
// so max/min have a unique winner in every slice even after a 1e-6 perturbation.
Tensor distinct(const Shape& s, Generator& g) {
  const Tensor perm = op::randperm(numel(s), g).to(DType::Float64);
  return leaf(op::add(op::mul(perm, 0.1), -1.2).view(s));
}

void check_reduction(const char* name, ReduceFn f, bool need_distinct, Generator& g) {
  for (const Dims& dims : dim_sets()) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(std::string(name) + " over " + dims_str(dims) + (keepdim ? " keepdim" : ""));
      Tensor x = need_distinct ? distinct({2, 3, 4}, g) : randn({2, 3, 4}, g);
      expect_gradcheck([&](const std::vector<Tensor>& in) { return f(in[0], dims, keepdim); }, {x});
      // non-contiguous input: a permuted view ([4, 2, 3]) and a narrowed one ([2, 3, 2])
      expect_gradcheck([&](const std::vector<Tensor>& in) { return f(permute(in[0], {2, 0, 1}), dims, keepdim); }, {x});
      expect_gradcheck([&](const std::vector<Tensor>& in) { return f(narrow(in[0], 2, 1, 2), dims, keepdim); }, {x});
    }
  }
}

TEST(GradcheckReduce, Sum) {
  Generator g(21);
  check_reduction("sum", ssm::sum, false, g);
}
TEST(GradcheckReduce, Mean) {
  Generator g(22);
  check_reduction("mean", ssm::mean, false, g);
}
TEST(GradcheckReduce, Max) {
  Generator g(23);
  check_reduction("max", ssm::max, true, g);
}
TEST(GradcheckReduce, Min) {
  Generator g(24);
  check_reduction("min", ssm::min, true, g);
}
TEST(GradcheckReduce, Logsumexp) {
  Generator g(25);
  check_reduction("logsumexp", ssm::logsumexp, false, g);
}
TEST(GradcheckReduce, Norm) {
  Generator g(26);
  check_reduction("norm", ssm::norm, false, g);
}

TEST(GradcheckReduce, DefaultArgumentsAndRank1) {
  Generator g(27);
  Tensor x = randn({3, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return sum(in[0]); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return mean(in[0]); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return logsumexp(in[0]); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return norm(in[0]); }, {x});
  Tensor v = randn({5}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return sum(in[0], {0}); }, {v});
  expect_gradcheck([](const std::vector<Tensor>& in) { return mean(in[0], {0}, true); }, {v});
  // a reduction of a broadcast (expanded, stride-0) view, and reductions composed
  expect_gradcheck([](const std::vector<Tensor>& in) { return sum(expand(in[0], {3, 5}), {0}); }, {v});
  expect_gradcheck([](const std::vector<Tensor>& in) { return mean(sum(in[0] * in[0], {1}, true) * in[0]); }, {x});
}

TEST(GradcheckReduce, NormAtZeroHasZeroGradient) {
  Tensor x = leaf(Tensor::zeros({2, 3}, DType::Float64));
  backward(sum(norm(x, {1})));
  for (double v : x.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(GradcheckReduce, MaxMinTiesShareGradientEvenly) {
  Tensor x = leaf(Tensor::from_vector<double>({1, 3, 3}, {3}));
  backward(max(x));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0.5, 0.5}));

  Tensor y = leaf(Tensor::from_vector<double>({2, 2, 2, 5}, {4}));
  backward(min(y));
  const auto gy = y.grad().to_vector<double>();
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(gy[i], 1.0 / 3.0);
  EXPECT_EQ(gy[3], 0.0);

  // per-slice ties along dim 1, with a non-uniform upstream gradient
  Tensor z = leaf(Tensor::from_vector<double>({4, 4, 1,   //
                                               0, 7, -1,  //
                                               5, 5, 5},
                                              {3, 3}));
  const Tensor w = Tensor::from_vector<double>({2, 3, 6}, {3});
  backward(sum(mul(max(z, {1}), w)));
  EXPECT_EQ(z.grad().to_vector<double>(), (std::vector<double>{1, 1, 0, 0, 3, 0, 2, 2, 2}));
  z.set_grad(Tensor());
  backward(sum(mul(min(z, {0}, true), reshape(w, {1, 3}))));
  EXPECT_EQ(z.grad().to_vector<double>(), (std::vector<double>{0, 3, 0, 2, 0, 6, 0, 0, 0}));
}

TEST(GradcheckReduce, CumsumAlongEachDim) {
  Generator g(28);
  Tensor x = randn({2, 3, 4}, g);
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    SCOPED_TRACE("cumsum dim " + std::to_string(dim));
    expect_gradcheck([dim](const std::vector<Tensor>& in) { return cumsum(in[0], dim); }, {x});
    expect_gradcheck([dim](const std::vector<Tensor>& in) { return cumsum(permute(in[0], {1, 2, 0}), dim); }, {x});
    expect_gradcheck([dim](const std::vector<Tensor>& in) { return cumsum(in[0] * in[0], dim) * 0.5; }, {x});
  }
  Tensor v = randn({6}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return cumsum(in[0], 0); }, {v});
}

TEST(GradcheckReduce, SoftmaxAndLogSoftmax) {
  Generator g(29);
  Tensor x = randn({2, 3, 4}, g);
  for (int64_t dim : {0, 1, 2, -1}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    expect_gradcheck([dim](const std::vector<Tensor>& in) { return softmax(in[0], dim); }, {x});
    expect_gradcheck([dim](const std::vector<Tensor>& in) { return log_softmax(in[0], dim); }, {x});
    expect_gradcheck([dim](const std::vector<Tensor>& in) { return softmax(transpose(in[0], 0, 2), dim); }, {x});
    expect_gradcheck([dim](const std::vector<Tensor>& in) { return log_softmax(transpose(in[0], 1, 2), dim); }, {x});
  }
  // large logits (the stable formulation must not lose the gradient)
  Tensor big = leaf(op::mul(op::normal({3, 4}, 0.0, 1.0, g, DType::Float64), 30.0));
  expect_gradcheck([](const std::vector<Tensor>& in) { return log_softmax(in[0], 1); }, {big});
  // the gradient of sum(softmax) is zero
  Tensor y = randn({3, 4}, g);
  backward(sum(softmax(y, 1)));
  for (double v : y.grad().to_vector<double>()) EXPECT_NEAR(v, 0.0, 1e-12);
}

}  // namespace
