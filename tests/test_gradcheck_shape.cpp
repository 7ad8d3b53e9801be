// Gradchecks of the shape ops (autograd/functions_shape.cpp): reshape, flatten, permute,
// transpose, narrow, select, expand, squeeze, unsqueeze, contiguous, cat, stack, split — on
// contiguous and non-contiguous inputs, with negative dims, and chained views. gradcheck compares
// the full Jacobian (one-hot output gradients), so a gradient put in the wrong place is caught,
// not only a wrong total.
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

TEST(GradcheckShape, ReshapeAndFlatten) {
  Generator g(31);
  Tensor x = randn({2, 3, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return reshape(in[0], {4, 6}); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return reshape(in[0], {-1, 2}); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return reshape(in[0], {2, 3, 4}); }, {x});  // same shape
  expect_gradcheck([](const std::vector<Tensor>& in) { return flatten(in[0]); }, {x});
  // reshape of a non-contiguous view must copy; its gradient must still land right
  expect_gradcheck([](const std::vector<Tensor>& in) { return reshape(transpose(in[0], 0, 2), {8, 3}); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return flatten(narrow(in[0], 1, 1, 2)); }, {x});
  // reshape followed by a nonlinear op that reads the reshaped layout
  expect_gradcheck([](const std::vector<Tensor>& in) { return cumsum(reshape(in[0], {6, 4}), 0); }, {x});
  Tensor s = randn({}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return reshape(in[0], {1, 1}); }, {s});
}

TEST(GradcheckShape, PermuteAndTranspose) {
  Generator g(32);
  Tensor x = randn({2, 3, 4}, g);
  const std::vector<std::vector<int64_t>> orders = {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {2, 1, 0}, {0, 2, 1}, {-1, 0, -2}};
  for (const auto& order : orders) {
    SCOPED_TRACE("permute " + shape_str(order));
    expect_gradcheck([&](const std::vector<Tensor>& in) { return cumsum(permute(in[0], order), 0); }, {x});
  }
  for (auto [d0, d1] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {0, 2}, {1, 2}, {-1, -2}, {2, 2}, {-3, 2}}) {
    SCOPED_TRACE("transpose " + std::to_string(d0) + "," + std::to_string(d1));
    expect_gradcheck([d0 = d0, d1 = d1](const std::vector<Tensor>& in) { return cumsum(transpose(in[0], d0, d1), 1); },
                     {x});
  }
  // chained views: permute of a transpose of a narrow
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return exp(permute(transpose(narrow(in[0], 2, 1, 3), 0, 1), {2, 0, 1})); }, {x});
}

TEST(GradcheckShape, NarrowAndSelect) {
  Generator g(33);
  Tensor x = randn({2, 3, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return narrow(in[0], 0, 1, 1); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return narrow(in[0], 1, 0, 2); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return narrow(in[0], -1, 1, 3); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return narrow(in[0], 2, 0, 4); }, {x});  // whole dim
  expect_gradcheck([](const std::vector<Tensor>& in) { return narrow(transpose(in[0], 0, 2), 0, 2, 2); }, {x});
  for (int64_t dim : {0, 1, 2, -1}) {
    for (int64_t index : {0, 1, -1}) {
      SCOPED_TRACE("select dim " + std::to_string(dim) + " index " + std::to_string(index));
      expect_gradcheck([=](const std::vector<Tensor>& in) { return select(in[0], dim, index); }, {x});
      expect_gradcheck([=](const std::vector<Tensor>& in) { return select(permute(in[0], {1, 2, 0}), dim, index); }, {x});
    }
  }
  // two overlapping narrows of the same tensor: their gradients add up
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return mul(narrow(in[0], 2, 0, 3), narrow(in[0], 2, 1, 3)); }, {x});
}

TEST(GradcheckShape, Expand) {
  Generator g(34);
  Tensor a = randn({3, 1}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return expand(in[0], {3, 4}); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& in) { return expand(in[0], {2, 3, 4}); }, {a});  // new leading dim
  Tensor b = randn({4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return expand(in[0], {2, 3, 4}); }, {b});
  Tensor c = randn({1, 3, 1}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return cumsum(expand(in[0], {2, 3, 4}), 2); }, {c});
  // expand of a transposed view: [1, 3] seen from a [3, 1] leaf
  expect_gradcheck([](const std::vector<Tensor>& in) { return expand(transpose(in[0], 0, 1), {4, 3}) * 2.0; }, {a});
  Tensor d = randn({3, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return expand(in[0], {3, 4}); }, {d});  // no-op expand
}

TEST(GradcheckShape, SqueezeUnsqueeze) {
  Generator g(35);
  Tensor x = randn({2, 1, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return squeeze(in[0], 1); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return squeeze(in[0], -2); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return unsqueeze(in[0], 0); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return unsqueeze(in[0], 3); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return unsqueeze(in[0], -1); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return unsqueeze(squeeze(in[0], 1), 2) * in[0]; }, {x});
  // through a non-contiguous view
  expect_gradcheck([](const std::vector<Tensor>& in) { return squeeze(transpose(in[0], 0, 1), 0); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return unsqueeze(transpose(in[0], 0, 2), 1); }, {x});
}

TEST(GradcheckShape, Contiguous) {
  Generator g(36);
  Tensor x = randn({3, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return contiguous(in[0]); }, {x});  // already contiguous
  expect_gradcheck([](const std::vector<Tensor>& in) { return contiguous(transpose(in[0], 0, 1)); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return reshape(contiguous(narrow(in[0], 1, 1, 2)), {6}); }, {x});
  // the result of contiguous() of an already-contiguous tensor must be a separate node in the graph
  const Tensor y = contiguous(x);
  EXPECT_FALSE(y.is_leaf());
  EXPECT_TRUE(x.is_leaf());
}

TEST(GradcheckShape, Cat) {
  Generator g(37);
  Tensor a = randn({2, 3, 4}, g), b = randn({2, 1, 4}, g), c = randn({2, 2, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return cat({in[0], in[1], in[2]}, 1); }, {a, b, c});
  expect_gradcheck([](const std::vector<Tensor>& in) { return cat({in[0], in[1], in[2]}, -2); }, {a, b, c});
  Tensor d = randn({1, 3, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return cat({in[0], in[1]}, 0); }, {a, d});
  Tensor e = randn({2, 3, 2}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return cat({in[0], in[1]}, 2); }, {a, e});
  // the same tensor twice, non-contiguous parts, and a part that needs no gradient
  expect_gradcheck([](const std::vector<Tensor>& in) { return cat({in[0], in[0] * 2.0, in[1]}, 1); }, {a, b});
  Tensor t = randn({4, 3, 2}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return cat({permute(in[0], {2, 1, 0}), in[1]}, 1); }, {t, b});
  const Tensor constant = op::normal({2, 2, 4}, 0.0, 1.0, g, DType::Float64);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return cat({constant, in[0], constant}, 1); }, {a});
  Tensor v = randn({3}, g), w = randn({2}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return cat({in[0], in[1]}, 0); }, {v, w});
}

TEST(GradcheckShape, Stack) {
  Generator g(38);
  Tensor a = randn({3, 4}, g), b = randn({3, 4}, g), c = randn({3, 4}, g);
  for (int64_t dim : {0, 1, 2, -1}) {
    SCOPED_TRACE("stack dim " + std::to_string(dim));
    expect_gradcheck([dim](const std::vector<Tensor>& in) { return stack({in[0], in[1], in[2]}, dim); }, {a, b, c});
  }
  Tensor t = randn({4, 3}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return stack({transpose(in[0], 0, 1), in[1]}, 1); }, {t, a});
  expect_gradcheck([](const std::vector<Tensor>& in) { return stack({in[0], in[0]}, 0); }, {a});
}

TEST(GradcheckShape, Split) {
  Generator g(39);
  Tensor x = randn({2, 6, 4}, g);
  // Each part goes through a different function before they are joined again, so each part's
  // gradient must come back to its own slice of x.
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        const auto parts = split(in[0], {1, 3, 2}, 1);
        EXPECT_EQ(parts.size(), 3u);
        return cat({exp(parts[0]), parts[1] * 3.0, square(parts[2])}, 1);
      },
      {x});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        const auto parts = split(in[0], {1, 3}, -1);
        return mul(sum(parts[0], {2}), sum(square(parts[1]), {2}));
      },
      {x});
  // only one part used: the unused part's slice gets zero gradient
  expect_gradcheck([](const std::vector<Tensor>& in) { return split(in[0], {2, 4}, 1)[1]; }, {x});
  // splitting a non-contiguous view
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        const auto parts = split(transpose(in[0], 0, 1), {4, 2}, 0);
        return sub(sum(parts[0], {0}), sum(exp(parts[1]), {0}));
      },
      {x});
  // split and stack round trip
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        const auto parts = split(in[0], {2, 2, 2}, 1);
        return stack({parts[2], parts[0] * parts[1]}, 0);
      },
      {x});
}

}  // namespace
