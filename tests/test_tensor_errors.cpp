// Tests that the raw tensor layer rejects bad input with ssm::Error, and that each message names
// the op and the offending shapes/dtypes (the architecture's error convention). GMock is not
// linked, so messages are checked with a small substring helper.
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace {

namespace op = ssm::op;
using ssm::DType;
using ssm::Tensor;

// Runs f, which must throw ssm::Error whose message contains every one of `parts`.
template <class F>
void check_error(int line, F&& f, std::initializer_list<std::string_view> parts) {
  SCOPED_TRACE(testing::Message() << "error check at line " << line);
  std::string msg;
  try {
    f();
  } catch (const ssm::Error& e) {
    msg = e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ssm exception: " << e.what();
    return;
  }
  if (msg.empty()) {
    ADD_FAILURE() << "did not throw ssm::Error";
    return;
  }
  for (std::string_view p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "expected \"" << p << "\" in the message: " << msg;
}
#define EXPECT_SSM_ERROR(...) check_error(__LINE__, __VA_ARGS__)

Tensor f32(const ssm::Shape& s) { return Tensor::zeros(s, DType::Float32); }
Tensor f64(const ssm::Shape& s) { return Tensor::zeros(s, DType::Float64); }
Tensor i64(const ssm::Shape& s) { return Tensor::zeros(s, DType::Int64); }
Tensor ids(const std::vector<int64_t>& v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

// ---------------------------------------------------------------- binary ops

TEST(TensorErrors, BroadcastMismatchNamesOpAndShapes) {
  EXPECT_SSM_ERROR([] { op::add(f32({2, 3}), f32({4})); }, {"add", "[2, 3]", "[4]", "broadcast"});
  EXPECT_SSM_ERROR([] { op::sub(f32({2, 3}), f32({3, 3})); }, {"sub", "[2, 3]", "[3, 3]"});
  EXPECT_SSM_ERROR([] { op::mul(f32({5, 2, 3}), f32({4, 1})); }, {"mul", "[5, 2, 3]", "[4, 1]"});
  EXPECT_SSM_ERROR([] { op::div(f32({2}), f32({3})); }, {"div", "[2]", "[3]"});
  EXPECT_SSM_ERROR([] { op::lt(f32({2}), f32({3})); }, {"lt", "[2]", "[3]"});
  EXPECT_SSM_ERROR([] { op::maximum(f32({2}), f32({3})); }, {"maximum", "[2]", "[3]"});
  EXPECT_SSM_ERROR([] { op::pow(f32({2}), f32({3})); }, {"pow", "[2]", "[3]"});
  EXPECT_SSM_ERROR([] { op::where(f32({2}), f32({3}), f32({3})); }, {"where", "[2]", "[3]"});
  EXPECT_SSM_ERROR([] { op::where(f32({3}), f32({3}), f32({2, 2})); }, {"where", "[3]", "[2, 2]"});
  // in place: the result would not fit in a
  EXPECT_SSM_ERROR([] { op::add_(f32({3}), f32({2, 3})); }, {"add", "[2, 3]", "[3]", "in place"});
  EXPECT_SSM_ERROR([] { op::binary_(ssm::BinaryOp::Mul, f32({3}), f32({4})); }, {"mul", "[3]", "[4]"});
  EXPECT_SSM_ERROR([] { f32({2, 4}).copy_(f32({3})); }, {"copy_", "[3]", "[2, 4]"});
  EXPECT_SSM_ERROR([] { f32({3}).copy_(f32({2, 3})); }, {"copy_", "[2, 3]", "[3]"});
}

TEST(TensorErrors, DtypeMismatchNamesBothDtypes) {
  EXPECT_SSM_ERROR([] { op::add(f32({2}), f64({2})); }, {"add", "float32[2]", "float64[2]"});
  EXPECT_SSM_ERROR([] { op::eq(i64({2}), f32({2})); }, {"eq", "int64", "float32"});
  EXPECT_SSM_ERROR([] { op::add_(f32({2}), f64({2})); }, {"add", "float32", "float64"});
  EXPECT_SSM_ERROR([] { op::where(f32({2}), f32({2}), f64({2})); }, {"where", "float32", "float64"});
  EXPECT_SSM_ERROR([] { op::matmul(f32({2, 2}), f64({2, 2})); }, {"matmul", "float32", "float64"});
  EXPECT_SSM_ERROR([] { op::cat({f32({2}), f64({2})}, 0); }, {"cat", "float32", "float64"});
}

TEST(TensorErrors, IntegerDivisionIsRejected) {
  EXPECT_SSM_ERROR([] { op::div(i64({3}), i64({3})); }, {"div", "int64[3]", "integer"});
  EXPECT_SSM_ERROR([] { op::div(Tensor::ones({2}, DType::Int32), Tensor::ones({2}, DType::Int32)); }, {"div", "int32"});
  EXPECT_SSM_ERROR([] { op::binary(ssm::BinaryOp::Div, i64({1}), i64({1})); }, {"div", "int64"});
}

TEST(TensorErrors, FloatOnlyMathRejectsIntegers) {
  EXPECT_SSM_ERROR([] { op::exp(i64({3})); }, {"exp", "int64[3]", "float32 or float64"});
  EXPECT_SSM_ERROR([] { op::log(Tensor::ones({2, 2}, DType::Int32)); }, {"log", "int32[2, 2]"});
  EXPECT_SSM_ERROR([] { op::sigmoid(i64({1})); }, {"sigmoid", "int64"});
  EXPECT_SSM_ERROR([] { op::softplus(i64({1})); }, {"softplus", "int64"});
  EXPECT_SSM_ERROR([] { op::sqrt(i64({1})); }, {"sqrt", "int64"});
  EXPECT_SSM_ERROR([] { op::reciprocal(i64({1})); }, {"reciprocal", "int64"});
  EXPECT_SSM_ERROR([] { op::pow(i64({1}), 2.0); }, {"pow", "int64"});
  EXPECT_SSM_ERROR([] { op::mean(i64({4})); }, {"mean", "int64[4]"});
  EXPECT_SSM_ERROR([] { op::logsumexp(i64({4})); }, {"logsumexp", "int64[4]"});
  EXPECT_SSM_ERROR([] { op::matmul(i64({2, 2}), i64({2, 2})); }, {"matmul", "int64[2, 2]"});
  // storage-only dtypes are not computed on the CPU: the message says so and how to convert
  const Tensor bf = f32({2}).to(DType::BFloat16);
  EXPECT_SSM_ERROR([&] { op::add(bf, bf); }, {"bfloat16", "Float32"});
  EXPECT_SSM_ERROR([&] { op::exp(bf); }, {"exp", "bfloat16"});
  EXPECT_SSM_ERROR([&] { op::sum(bf); }, {"bfloat16"});
}

// ---------------------------------------------------------------- matmul

TEST(TensorErrors, MatmulShapeErrors) {
  EXPECT_SSM_ERROR([] { op::matmul(f32({2, 3}), f32({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]", "inner"});
  EXPECT_SSM_ERROR([] { op::matmul(f32({3}), f32({4})); }, {"matmul", "[3]", "[4]"});
  EXPECT_SSM_ERROR([] { op::matmul(f32({2, 3, 4}), f32({3}));}, {"matmul", "[2, 3, 4]", "[3]"});
  EXPECT_SSM_ERROR([] { op::matmul(f32({2, 3, 4}), f32({3, 4, 5})); }, {"matmul", "[2]", "[3]"});  // batch dims
  EXPECT_SSM_ERROR([] { op::matmul(f32({}), f32({3})); }, {"matmul", "float32[]", "at least one dimension"});
  // a product in another dtype than the operands': only bfloat16 → float32, and only on a GPU
  EXPECT_SSM_ERROR([] { op::matmul(f32({2, 3}), f32({3, 4}), DType::Float64); }, {"matmul", "float64", "float32"});
}

// ---------------------------------------------------------------- indexing

TEST(TensorErrors, IndexOutOfRange) {
  EXPECT_SSM_ERROR([] { op::index_select(f32({3, 4}), 0, ids({0, 3})); }, {"index_select", "index 3", "size 3"});
  EXPECT_SSM_ERROR([] { op::index_select(f32({3, 4}), 1, ids({-1})); }, {"index_select", "index -1", "size 4"});
  EXPECT_SSM_ERROR([] { op::embedding(f32({10, 4}), Tensor::from_vector(std::vector<int32_t>{1, 10}, {1, 2})); },
                   {"embedding", "index 10", "size 10"});
  EXPECT_SSM_ERROR([] { op::embedding(f32({10, 4}), ids({-2})); }, {"embedding", "-2"});
  EXPECT_SSM_ERROR([] { op::gather(f32({2, 3}), 1, Tensor::from_vector(std::vector<int64_t>{0, 1, 3, 0, 0, 0}, {2, 3})); },
                   {"gather", "index 3", "size 3"});
  EXPECT_SSM_ERROR([] { op::scatter_add({2, 3}, 0, Tensor::from_vector(std::vector<int64_t>{0, 2, 0}, {1, 3}), f32({1, 3})); },
                   {"scatter_add", "index 2", "size 2"});
  EXPECT_SSM_ERROR([] { op::index_add({4, 2}, 0, ids({4}), f32({1, 2})); }, {"index_add", "index 4", "size 4"});
}

TEST(TensorErrors, IndexArgumentShapesAndDtypes) {
  EXPECT_SSM_ERROR([] { op::index_select(f32({3}), 0, f32({1})); }, {"index_select", "int32 or int64", "float32[1]"});
  EXPECT_SSM_ERROR([] { op::index_select(f32({3}), 0, i64({1, 1})); }, {"index_select", "1-d", "int64[1, 1]"});
  EXPECT_SSM_ERROR([] { op::index_select(f32({3}), 1, ids({0})); }, {"index_select", "dimension 1", "rank 1"});
  EXPECT_SSM_ERROR([] { op::embedding(f32({10}), ids({0})); }, {"embedding", "float32[10]"});
  EXPECT_SSM_ERROR([] { op::embedding(f32({10, 4}), f32({2})); }, {"embedding", "float32[2]"});
  EXPECT_SSM_ERROR([] { op::gather(f32({2, 3}), 0, i64({2})); }, {"gather", "int64[2]", "[2, 3]"});       // rank
  EXPECT_SSM_ERROR([] { op::gather(f32({2, 3}), 0, i64({2, 4})); }, {"gather", "int64[2, 4]", "[2, 3]"});  // other dim
  EXPECT_SSM_ERROR([] { op::gather(f32({2, 3}), 2, i64({2, 3})); }, {"gather", "dimension 2"});
  EXPECT_SSM_ERROR([] { op::gather(f32({2, 3}), 0, f64({2, 3})); }, {"gather", "float64"});
  EXPECT_SSM_ERROR([] { op::scatter_add({2, 3}, 0, i64({2, 3}), f32({1, 3})); }, {"scatter_add", "[1, 3]", "[2, 3]"});
  EXPECT_SSM_ERROR([] { op::index_add({4, 2}, 0, ids({0, 1}), f32({3, 2})); }, {"index_add", "[3, 2]", "[2, 2]"});
  EXPECT_SSM_ERROR([] { op::index_add({4, 2}, 0, i64({2, 1}), f32({2, 2})); }, {"index_add", "1-d"});
}

// ---------------------------------------------------------------- dimensions

TEST(TensorErrors, OutOfRangeDims) {
  EXPECT_SSM_ERROR([] { op::sum(f32({2, 3}), {2}); }, {"sum", "dimension 2", "rank 2"});
  EXPECT_SSM_ERROR([] { op::sum(f32({2, 3}), {-3}); }, {"sum", "dimension -3", "rank 2"});
  EXPECT_SSM_ERROR([] { op::sum(f32({2, 3}), {1, -1}); }, {"sum", "twice"});
  EXPECT_SSM_ERROR([] { op::max(f32({2, 3}), {5}); }, {"max", "dimension 5"});
  EXPECT_SSM_ERROR([] { op::mean(f32({2, 3}), {2}); }, {"mean", "dimension 2"});
  EXPECT_SSM_ERROR([] { op::logsumexp(f32({2, 3}), {2}); }, {"logsumexp", "dimension 2"});
  EXPECT_SSM_ERROR([] { op::cumsum(f32({2, 3}), 2); }, {"cumsum", "dimension 2", "rank 2"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).narrow(2, 0, 1); }, {"narrow", "dimension 2", "rank 2"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).transpose(0, 2); }, {"transpose", "dimension 2", "rank 2"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).transpose(-3, 0); }, {"transpose", "dimension -3"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).select(2, 0); }, {"select", "dimension 2"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).unsqueeze(3); }, {"unsqueeze", "dimension 3", "rank 3"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).squeeze(2); }, {"squeeze", "dimension 2"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).size(2); }, {"size", "dimension 2"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).permute({0}); }, {"permute", "float32[2, 3]"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).permute({1, 1}); }, {"permute", "repeated"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).permute({0, 2}); }, {"permute", "dimension 2"});
  EXPECT_SSM_ERROR([] { op::cat({f32({2})}, 1); }, {"cat", "dimension 1"});
  EXPECT_SSM_ERROR([] { op::stack({f32({2})}, 2); }, {"stack", "dimension 2"});
  EXPECT_SSM_ERROR([] { op::split(f32({2}), {2}, 1); }, {"split", "dimension 1"});
  EXPECT_SSM_ERROR([] { Tensor::scalar(1).select(0, 0); }, {"select", "rank 0"});
}

TEST(TensorErrors, NarrowSelectSqueezeOutOfRange) {
  EXPECT_SSM_ERROR([] { f32({4}).narrow(0, 2, 3); }, {"narrow", "[2, 5)", "float32[4]"});
  EXPECT_SSM_ERROR([] { f32({4, 2}).narrow(0, -1, 2); }, {"narrow", "float32[4, 2]"});
  EXPECT_SSM_ERROR([] { f32({4, 2}).narrow(1, 0, -1); }, {"narrow", "dimension 1"});
  EXPECT_SSM_ERROR([] { f32({4, 2}).select(1, 2); }, {"select", "index 2", "float32[4, 2]"});
  EXPECT_SSM_ERROR([] { f32({4, 2}).select(0, -5); }, {"select", "index -5"});
  EXPECT_SSM_ERROR([] { f32({4, 2}).squeeze(0); }, {"squeeze", "size 4", "float32[4, 2]"});
  EXPECT_SSM_ERROR([] { f32({4, 2}).at({4, 0}); }, {"at", "index 4", "float32[4, 2]"});
  EXPECT_SSM_ERROR([] { f32({4, 2}).at({0}); }, {"at", "float32[4, 2]"});
}

// ---------------------------------------------------------------- views

TEST(TensorErrors, ViewAndReshapeErrors) {
  const Tensor t = f32({2, 3}).transpose(0, 1);  // [3, 2] strides [1, 3]
  EXPECT_SSM_ERROR([&] { t.view({6}); }, {"view", "float32[3, 2]", "[1, 3]", "[6]", "reshape"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).view({4}); }, {"view", "[4]", "[2, 3]", "6 elements"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).view({-1, 4}); }, {"view", "-1", "6 elements"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).reshape({-1, -1}); }, {"reshape", "more than one -1"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).reshape({7}); }, {"reshape", "[7]", "[2, 3]"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).reshape({-2, -3}); }, {"reshape", "negative"});
}

TEST(TensorErrors, ExpandToIncompatibleShape) {
  EXPECT_SSM_ERROR([] { f32({3}).expand({4}); }, {"expand", "float32[3]", "[4]"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).expand({2, 2, 4}); }, {"expand", "float32[2, 3]", "[2, 2, 4]"});
  EXPECT_SSM_ERROR([] { f32({2, 3}).expand({3}); }, {"expand", "float32[2, 3]", "fewer dimensions"});
}

// ---------------------------------------------------------------- joining and splitting

TEST(TensorErrors, CatStackSplitErrors) {
  EXPECT_SSM_ERROR([] { op::cat({f32({2, 3}), f32({2, 4})}, 0); }, {"cat", "[2, 3]", "[2, 4]"});
  EXPECT_SSM_ERROR([] { op::cat({f32({2, 3}), f32({3})}, 0); }, {"cat", "[2, 3]", "[3]", "rank"});
  EXPECT_SSM_ERROR([] { op::cat({}, 0); }, {"cat", "no tensors"});
  EXPECT_SSM_ERROR([] { op::stack({f32({2, 3}), f32({3, 2})}, 0); }, {"stack", "[2, 3]", "[3, 2]"});
  EXPECT_SSM_ERROR([] { op::stack({}, 0); }, {"stack", "no tensors"});
  EXPECT_SSM_ERROR([] { op::split(f32({4, 2}), {2, 3}, 0); }, {"split", "5", "float32[4, 2]", "4"});
  EXPECT_SSM_ERROR([] { op::split(f32({4, 2}), {1}, 1); }, {"split", "1", "float32[4, 2]", "2"});
}

// ---------------------------------------------------------------- data access and creation

TEST(TensorErrors, DataAccessErrors) {
  EXPECT_SSM_ERROR([] { f32({2, 3}).item<float>(); }, {"item", "6 elements", "float32[2, 3]"});
  EXPECT_SSM_ERROR([] { f32({0}).item<double>(); }, {"item", "0 elements"});
  EXPECT_SSM_ERROR([] { f32({2}).data<double>(); }, {"data<float64>", "float32[2]"});
  EXPECT_SSM_ERROR([] { i64({2}).data<int32_t>(); }, {"data<int32>", "int64[2]"});
  EXPECT_SSM_ERROR([] { Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}); }, {"from_vector", "3 values", "[2, 2]"});
  EXPECT_SSM_ERROR([] { Tensor::empty({2, -1}); }, {"empty", "[2, -1]"});
  EXPECT_SSM_ERROR([] { Tensor::zeros({-3}); }, {"[-3]"});
  EXPECT_SSM_ERROR([] { Tensor::arange(-1); }, {"arange", "-1"});
}

TEST(TensorErrors, UndefinedTensor) {
  const Tensor u;
  EXPECT_SSM_ERROR([&] { (void)u.shape(); }, {"undefined tensor"});
  EXPECT_SSM_ERROR([&] { (void)u.numel(); }, {"undefined tensor"});
  EXPECT_SSM_ERROR([&] { u.fill_(1); }, {"undefined tensor"});
  EXPECT_SSM_ERROR([&] { u.to_vector<float>(); }, {"undefined tensor"});
  EXPECT_SSM_ERROR([&] { u.view({1}); }, {"undefined tensor"});
  EXPECT_SSM_ERROR([&] { f32({2}).copy_(u); }, {"undefined tensor"});
  EXPECT_SSM_ERROR([&] { op::add(u, f32({2})); }, {"add", "undefined"});
  EXPECT_SSM_ERROR([&] { op::mul(f32({2}), u); }, {"mul", "undefined"});
  EXPECT_SSM_ERROR([&] { op::exp(u); }, {"exp", "undefined"});
  EXPECT_SSM_ERROR([&] { op::sum(u); }, {"sum", "undefined"});
  EXPECT_SSM_ERROR([&] { op::mean(u); }, {"mean", "undefined"});
  EXPECT_SSM_ERROR([&] { op::logsumexp(u); }, {"logsumexp", "undefined"});
  EXPECT_SSM_ERROR([&] { op::cumsum(u, 0); }, {"cumsum", "undefined"});
  EXPECT_SSM_ERROR([&] { op::matmul(u, f32({2, 2})); }, {"matmul", "undefined"});
  EXPECT_SSM_ERROR([&] { op::where(u, f32({2}), f32({2})); }, {"where", "undefined"});
  EXPECT_SSM_ERROR([&] { op::index_select(u, 0, ids({0})); }, {"index_select", "undefined"});
  EXPECT_SSM_ERROR([&] { op::gather(u, 0, ids({0})); }, {"gather", "undefined"});
  EXPECT_SSM_ERROR([&] { op::cat({f32({2}), u}, 0); }, {"cat", "undefined"});
  EXPECT_SSM_ERROR([&] { op::split(u, {1}, 0); }, {"split", "undefined"});
  EXPECT_EQ(u.to_string(), "Tensor(undefined)");
  EXPECT_EQ(u.describe(), "undefined tensor");
}

TEST(TensorErrors, RequiresGradNeedsFloatingLeaf) {
  EXPECT_SSM_ERROR([] { i64({3}).set_requires_grad(true); }, {"set_requires_grad", "int64[3]", "floating"});
  EXPECT_SSM_ERROR([] { Tensor::ones({2}, DType::Int32).set_requires_grad(true); }, {"set_requires_grad", "int32[2]"});
  // allowed: float tensors, and switching it off on an int tensor
  EXPECT_NO_THROW(f32({2}).set_requires_grad(true));
  EXPECT_NO_THROW(f64({2}).set_requires_grad(true));
  EXPECT_NO_THROW(i64({2}).set_requires_grad(false));
  const Tensor t = f32({2});
  t.set_requires_grad(true);
  EXPECT_TRUE(t.requires_grad());
}

// ---------------------------------------------------------------- other argument checks

TEST(TensorErrors, ReductionAndElementwiseArgumentChecks) {
  EXPECT_SSM_ERROR([] { op::max(f32({0, 3}), {0}); }, {"max", "empty dimension 0", "float32[0, 3]"});
  EXPECT_SSM_ERROR([] { op::min(f32({0})); }, {"min", "empty"});
  EXPECT_SSM_ERROR([] { op::clamp(f32({2}), 1, 0); }, {"clamp", "min", "max"});
  EXPECT_SSM_ERROR([] { op::sum_to(f32({2, 4}), {3}); }, {"sum_to", "[3]", "[2, 4]"});
  EXPECT_SSM_ERROR([] { op::sum_to(f32({4}), {2, 4}); }, {"sum_to", "[2, 4]", "[4]"});
}

TEST(TensorErrors, RandomArgumentChecks) {
  ssm::Generator g(1);
  EXPECT_SSM_ERROR([&] { op::uniform({2}, 0, 1, g, DType::Int64); }, {"uniform", "int64"});
  EXPECT_SSM_ERROR([&] { op::normal({2}, 0, 1, g, DType::Int32); }, {"normal", "int32"});
  EXPECT_SSM_ERROR([&] { op::uniform({2}, 1, 0, g); }, {"uniform", "low", "high"});
  EXPECT_SSM_ERROR([&] { op::normal({2}, 0, -1, g); }, {"normal", "std"});
  EXPECT_SSM_ERROR([&] { op::uniform({-2}, 0, 1, g); }, {"uniform", "[-2]"});
  EXPECT_SSM_ERROR([&] { op::randperm(-1, g); }, {"randperm", "-1"});
}

TEST(TensorErrors, UnavailableDevice) {
  // a device this machine lacks (a CPU-only build, no GPU, or an index past the last GPU) is a clear error
  EXPECT_FALSE(ssm::device_available(ssm::Device::cuda(99)));
  EXPECT_SSM_ERROR([&] { (void)Tensor::zeros({2}, DType::Float32, ssm::Device::cuda(99)); }, {"cuda:99", "not available"});
}

}  // namespace
