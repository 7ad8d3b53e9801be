// Gradchecks of the indexing ops (autograd/functions_index.cpp: index_select, embedding, gather,
// scatter_add — with repeated indices, whose gradients must accumulate) and of matmul
// (autograd/functions_linalg.cpp) in all its forms: 2-d, batched with broadcasting, 1-d operands,
// a batch of activations times a shared 2-d weight (its own backward path), transposed views, and the product
// handed out in parts (matmul_parts).
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

Tensor ids(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector<int64_t>(v, s); }

// ---------------------------------------------------------------- indexing

TEST(GradcheckIndex, IndexSelect) {
  Generator g(41);
  Tensor x = randn({5, 3}, g);
  const Tensor rows = ids({4, 0, 4, 2, 4}, {5});  // repeated
  expect_gradcheck([&](const std::vector<Tensor>& in) { return index_select(in[0], 0, rows); }, {x});
  const Tensor cols = ids({2, 2, 0}, {3});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return index_select(in[0], 1, cols); }, {x});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return index_select(in[0], -1, cols); }, {x});
  // the index as a (non-differentiated) gradcheck input, and an int32 index
  expect_gradcheck([](const std::vector<Tensor>& in) { return index_select(in[0], 0, in[1]); }, {x, rows});
  const Tensor rows32 = Tensor::from_vector<int32_t>({1, 1, 3}, {3});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return index_select(in[0], 0, rows32); }, {x});
  // non-contiguous source and a 3-d source along the middle dim
  expect_gradcheck([&](const std::vector<Tensor>& in) { return index_select(transpose(in[0], 0, 1), 1, rows); }, {x});
  Tensor y = randn({2, 3, 4}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return exp(index_select(in[0], 1, ids({1, 0, 1, 1}, {4}))); },
                   {y});
  // repeated indices accumulate: picking row 1 three times gives it gradient 3
  backward(sum(index_select(x, 0, ids({1, 1, 1}, {3}))));
  const auto gx = x.grad().to_vector<double>();
  for (int64_t i = 0; i < 15; ++i) EXPECT_EQ(gx[i], i / 3 == 1 ? 3.0 : 0.0) << i;
}

TEST(GradcheckIndex, Embedding) {
  Generator g(42);
  Tensor w = randn({6, 3}, g);
  const Tensor tokens = ids({5, 1, 5, 0, 1, 5}, {2, 3});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return embedding(in[0], tokens); }, {w});
  const Tensor one_d = ids({2, 2, 3}, {3});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return tanh(embedding(in[0], one_d)); }, {w});
  // a transposed weight view, [6, 3] seen from a [3, 6] leaf
  Tensor wt = randn({3, 6}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return embedding(transpose(in[0], 0, 1), tokens); }, {wt});
  const Tensor e = embedding(w, tokens);
  EXPECT_EQ(e.shape(), (Shape{2, 3, 3}));
  // token 5 appears three times, token 3 and 4 never
  backward(sum(e));
  const auto gw = w.grad().to_vector<double>();
  const std::vector<double> count = {1, 2, 0, 0, 0, 3};
  for (int64_t i = 0; i < 18; ++i) EXPECT_EQ(gw[i], count[i / 3]) << i;
}

TEST(GradcheckIndex, Gather) {
  Generator g(43);
  Tensor x = randn({3, 4}, g);
  const Tensor idx1 = ids({3, 3, 0, 1, 2, /**/ 0, 0, 0, 1, 1, /**/ 2, 3, 2, 3, 2}, {3, 5});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return gather(in[0], 1, idx1); }, {x});
  const Tensor idx0 = ids({2, 0, 1, 2, /**/ 2, 2, 0, 0}, {2, 4});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return gather(in[0], 0, idx0); }, {x});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return gather(in[0], -2, idx0); }, {x});
  // 3-d along dim 1 and a non-contiguous source
  Tensor y = randn({2, 3, 4}, g);
  const Tensor idx3 = ids({0, 2, 2, 1, /**/ 1, 1, 1, 1, /**/ 2, 0, 0, 0, /**/ 2, 2, 1, 0}, {2, 2, 4});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return gather(in[0], 1, idx3); }, {y});
  Tensor yt = randn({4, 3, 2}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return gather(permute(in[0], {2, 1, 0}), 1, idx3); }, {yt});
  expect_gradcheck([&](const std::vector<Tensor>& in) { return gather(in[0], 1, in[1]); }, {x, idx1});
}

TEST(GradcheckIndex, ScatterAdd) {
  Generator g(44);
  const Tensor idx1 = ids({3, 3, 0, 1, 2, /**/ 0, 0, 0, 1, 1, /**/ 2, 3, 2, 3, 2}, {3, 5});
  Tensor src = randn({3, 5}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return scatter_add({3, 4}, 1, idx1, in[0]); }, {src});
  // nonlinear after the scatter, so colliding writes matter for the Jacobian
  expect_gradcheck([&](const std::vector<Tensor>& in) { return square(scatter_add({3, 4}, 1, idx1, in[0])); }, {src});
  const Tensor idx0 = ids({2, 0, 1, 2, /**/ 2, 2, 0, 0}, {2, 4});
  Tensor src0 = randn({2, 4}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return exp(scatter_add({3, 4}, 0, idx0, in[0])); }, {src0});
  // a non-contiguous source
  Tensor srct = randn({4, 2}, g);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return scatter_add({3, 4}, 0, idx0, transpose(in[0], 0, 1)); },
                   {srct});
  // gather and scatter_add composed (adjoint pair) with the index as a gradcheck input
  Tensor x = randn({3, 4}, g);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return mul(scatter_add({3, 4}, 1, in[1], gather(in[0], 1, in[1])), in[0]); },
      {x, idx1});
}

// ---------------------------------------------------------------- matmul

void check_matmul(const Shape& sa, const Shape& sb, Generator& g) {
  SCOPED_TRACE("matmul " + shape_str(sa) + " x " + shape_str(sb));
  Tensor a = randn(sa, g), b = randn(sb, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b});
  // each operand alone (the needs_input_grad branches)
  Tensor a_const = leaf(a.detach(), false), b_const = leaf(b.detach(), false);
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b_const});
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a_const, b});
}

TEST(GradcheckMatmul, TwoD) {
  Generator g(51);
  check_matmul({3, 4}, {4, 5}, g);
  check_matmul({1, 4}, {4, 1}, g);
  check_matmul({3, 1}, {1, 5}, g);
}

TEST(GradcheckMatmul, BatchedAndBroadcast) {
  Generator g(52);
  check_matmul({2, 3, 4}, {2, 4, 5}, g);
  check_matmul({2, 1, 3, 4}, {3, 4, 2}, g);  // batch [2,1] with [3] -> [2,3]
  check_matmul({1, 3, 4}, {2, 4, 5}, g);     // batch 1 against 2
  check_matmul({3, 4}, {2, 4, 5}, g);        // 2-d on the left, batched on the right
}

TEST(GradcheckMatmul, OneDimensionalOperands) {
  Generator g(53);
  check_matmul({4}, {4}, g);        // dot product -> scalar
  check_matmul({4}, {4, 5}, g);     // row vector
  check_matmul({3, 4}, {4}, g);     // column vector
  check_matmul({4}, {2, 4, 5}, g);  // vector times a batch
  check_matmul({2, 3, 4}, {4}, g);  // batch times a vector
  Tensor a = randn({4}, g), b = randn({4}, g);
  EXPECT_EQ(matmul(a, b).dim(), 0);
  EXPECT_EQ(matmul(a, randn({2, 4, 5}, g)).shape(), (Shape{2, 5}));
  EXPECT_EQ(matmul(randn({2, 3, 4}, g), b).shape(), (Shape{2, 3}));
}

TEST(GradcheckMatmul, SharedWeight) {
  // a [2, 3, 4] batch of activations times one [4, 5] weight: the weight's gradient is one GEMM
  // over all 6 rows (functions_linalg.cpp's shared-weight path)
  Generator g(54);
  check_matmul({2, 3, 4}, {4, 5}, g);
  check_matmul({2, 2, 3, 4}, {4, 5}, g);
  check_matmul({4}, {4, 5}, g);
  // ...and its value equals the sum of the per-batch products' gradients
  Tensor x = randn({2, 3, 4}, g), w = randn({4, 5}, g);
  const Tensor gout = op::normal({2, 3, 5}, 0.0, 1.0, g, DType::Float64);
  backward(matmul(x, w), gout);
  Tensor expected = Tensor::zeros({4, 5}, DType::Float64);
  for (int64_t i = 0; i < 2; ++i)
    expected = op::add(expected, op::matmul(x.detach().select(0, i).transpose(0, 1), gout.select(0, i)));
  const auto got = w.grad().to_vector<double>(), want = expected.to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12);
}

TEST(GradcheckMatmul, TransposedAndStridedViews) {
  Generator g(55);
  Tensor a = randn({4, 3}, g), b = randn({5, 4}, g);
  // aᵀ [3,4] times bᵀ [4,5]
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(transpose(in[0], 0, 1), transpose(in[1], 0, 1)); },
                   {a, b});
  Tensor c = randn({3, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], transpose(in[1], 0, 1)); }, {c, b});
  // a non-contiguous batch ([2,4,3] transposed to [2,3,4]) times a shared transposed weight
  Tensor x = randn({2, 4, 3}, g);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return matmul(transpose(in[0], 1, 2), transpose(in[1], 0, 1)); }, {x, b});
  // a permuted batch: [3,2,4] -> [2,3,4], times a narrowed weight [4,5] out of [4,7]
  Tensor p = randn({3, 2, 4}, g), w = randn({4, 7}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(permute(in[0], {1, 0, 2}), narrow(in[1], 1, 1, 5)); },
                   {p, w});
  // batched with a transposed batched right operand
  Tensor q = randn({2, 3, 4}, g), r = randn({2, 5, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], transpose(in[1], -1, -2)); }, {q, r});
  // an expanded (stride-0 batch) left operand
  Tensor s = randn({3, 4}, g);
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(expand(in[0], {2, 3, 4}), in[1]); }, {s, randn({2, 4, 5}, g)});
}

// matmul_parts: a [.., K] batch times a [K, N] weight, handed out in parts. Each part goes through its own
// function (one part unused: its gradient slice is the engine's zeros), so each part's gradient must reach
// its own columns of the product; the weight may be a transposed view (as Linear passes it).
TEST(GradcheckMatmul, Parts) {
  Generator g(57);
  Tensor x = randn({2, 3, 4}, g), w = randn({7, 4}, g);
  const auto parts_fn = [](const std::vector<Tensor>& in) {
    const auto parts = matmul_parts(in[0], transpose(in[1], 0, 1), {2, 1, 3, 1}, /*bf16=*/false);
    EXPECT_EQ(parts.size(), 4u);
    return cat({exp(parts[0]), parts[1] * 3.0, square(parts[3])}, -1);
  };
  expect_gradcheck(parts_fn, {x, w});
  Tensor x_const = leaf(x.detach(), false);
  expect_gradcheck(parts_fn, {x_const, w});
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul_parts(in[0], in[1], {0, 5}, false)[1]; },
                   {randn({3, 4}, g), randn({4, 5}, g)});
}

TEST(GradcheckMatmul, PartsRejectBadArguments) {
  Generator g(58);
  const Tensor x = randn({2, 3, 4}, g), w = randn({4, 5}, g);
  EXPECT_THROW(matmul_parts(x, w, {2, 2}, false), Error);      // 4 columns of 5
  EXPECT_THROW(matmul_parts(x, w, {6, -1}, false), Error);     // a negative size
  EXPECT_THROW(matmul_parts(x, randn({2, 4, 5}, g), {5}, false), Error);  // not a [K, N] weight
  EXPECT_THROW(matmul_parts(x, w, {5}, /*bf16=*/true), Error);  // bfloat16 products of float64 operands
}

TEST(GradcheckMatmul, ChainedLayers) {
  Generator g(56);
  Tensor x = randn({2, 3, 4}, g), w1 = randn({4, 5}, g), w2 = randn({5, 2}, g);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return matmul(tanh(matmul(in[0], in[1])), in[2]); }, {x, w1, w2});
  // x·xᵀ: the same tensor on both sides
  expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], transpose(in[0], -1, -2)); }, {x});
}

}  // namespace
