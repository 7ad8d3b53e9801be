// tests/test_cuda_ops.cpp — every primitive kernel of the CUDA backend against the CPU backend.
//
// Each test makes fresh random inputs on the host, runs the op on both devices and compares. Views
// (transposed, sliced, broadcast) are used on purpose: the kernels must honour strides. Without a GPU
// (or in a build without CUDA) every test here skips, saying so.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "compare_helpers.h"
#include "cuda_test_helpers.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace {

using ssm::Device;
using ssm::DType;
using ssm::Generator;
using ssm::Tensor;
using ssm::testing::expect_close;
namespace op = ssm::op;

class CudaOps : public ssm::testing::CudaTest {
 protected:
  static Tensor gpu(const Tensor& t) { return t.to(Device::cuda()); }
  Tensor randn(const ssm::Shape& shape, DType dtype = DType::Float32) { return op::normal(shape, 0, 1, gen_, dtype); }
  Tensor rand(const ssm::Shape& shape, double low, double high, DType dtype = DType::Float32) {
    return op::uniform(shape, low, high, gen_, dtype);
  }
  Generator gen_{20261123};

  // Views of a [6, 5, 24] tensor, made the same way on either device: those whose rows are contiguous and
  // 4-value aligned run four values a thread in the elementwise kernels (for_each_quad), the others one a thread.
  using View = std::function<Tensor(const Tensor&)>;
  static std::vector<std::pair<std::string, View>> row_views() {
    return {
        {"contiguous", [](const Tensor& t) { return t; }},
        {"slice of rows", [](const Tensor& t) { return t.narrow(1, 1, 3); }},
        {"aligned columns", [](const Tensor& t) { return t.narrow(2, 4, 16); }},
        {"unaligned columns", [](const Tensor& t) { return t.narrow(2, 1, 16); }},
        {"odd width", [](const Tensor& t) { return t.narrow(2, 0, 7); }},
        {"transposed", [](const Tensor& t) { return t.transpose(1, 2); }},
        {"broadcast", [](const Tensor& t) { return t.narrow(1, 0, 1).expand({6, 4, 24}); }},
        {"one value", [](const Tensor& t) { return t.narrow(0, 2, 1).narrow(1, 3, 1).narrow(2, 5, 1); }},
    };
  }
};

// Exact equality after the round trip, for every dtype.
TEST_F(CudaOps, HostDeviceCopiesRoundTripEveryDtype) {
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::BFloat16, DType::Float16}) {
    const Tensor host = op::mul(randn({3, 5, 7}), 50.0).to(dtype);
    const Tensor back = gpu(host).to(Device::cpu());
    EXPECT_EQ(back.device(), Device::cpu());
    EXPECT_EQ(back.to(DType::Float64).to_vector<double>(), host.to(DType::Float64).to_vector<double>())
        << ssm::dtype_name(dtype);
  }
}

// Conversions on the device give the CPU's values, including the saturating float -> int rules and NaN -> 0.
TEST_F(CudaOps, DtypeConversionsMatchTheCpu) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor special = Tensor::from_vector(std::vector<double>{1.5, -2.5, 1e300, -1e300, inf, -inf, nan, 0.1}, {8});
  const Tensor values = op::cat({special, op::mul(randn({40}, DType::Float64), 1e3)}, 0);
  for (DType from : {DType::Float64, DType::Float32}) {
    const Tensor x = values.to(from);
    for (DType to : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::BFloat16, DType::Float16}) {
      const auto cpu = x.to(to).to(DType::Float64).to_vector<double>();
      const auto cuda = gpu(x).to(to).to(DType::Float64).to_vector<double>();
      ASSERT_EQ(cpu.size(), cuda.size());
      for (size_t i = 0; i < cpu.size(); ++i) {
        if (std::isnan(cpu[i])) EXPECT_TRUE(std::isnan(cuda[i])) << i;
        else EXPECT_EQ(cpu[i], cuda[i]) << ssm::dtype_name(from) << " -> " << ssm::dtype_name(to) << " at " << i;
      }
    }
  }
}

// Copies, casts and fills, four values a thread or one (row_views): both give the CPU's values exactly, for every
// pair of dtypes and every view kind, read from, and written into a window (aligned or not) of a larger tensor.
TEST_F(CudaOps, RowCopiesAndCastsMatchTheCpu) {
  const std::vector<DType> dtypes = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32,
                                     DType::Int64};
  const Tensor base = op::mul(randn({6, 5, 24}, DType::Float64), 40.0);
  auto values = [](const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); };
  for (DType from : dtypes) {
    const Tensor host = base.to(from), device = gpu(host);
    for (const auto& [name, view] : row_views()) {
      const ssm::Shape shape = view(host).shape();
      for (DType to : dtypes) {
        const std::string what = name + ": " + ssm::dtype_name(from) + " -> " + ssm::dtype_name(to);
        EXPECT_EQ(values(view(device).to(to)), values(view(host).to(to))) << what;
        for (int64_t column : {0, 4, 1}) {
          auto window = [&](Tensor t) {
            for (size_t d = 0; d < shape.size(); ++d)
              t = t.narrow(static_cast<int64_t>(d), d == 2 ? column : 0, shape[d]);
            return t;
          };
          const Tensor device_into = Tensor::zeros({8, 32, 32}, to, Device::cuda());
          const Tensor host_into = Tensor::zeros({8, 32, 32}, to);
          window(device_into).copy_(view(device));
          window(host_into).copy_(view(host));
          EXPECT_EQ(values(device_into), values(host_into)) << what << ", into column " << column;
          window(device_into).fill_(-2.5);
          window(host_into).fill_(-2.5);
          EXPECT_EQ(values(device_into), values(host_into)) << what << ", filled at column " << column;
        }
      }
    }
  }
}

TEST_F(CudaOps, UnaryOpsOnStridedViewsMatchTheCpu) {
  using ssm::UnaryOp;
  struct Case {
    UnaryOp op;
    double low, high, a, b;
  };
  const std::vector<Case> cases = {
      {UnaryOp::Neg, -3, 3, 0, 0},        {UnaryOp::Exp, -5, 5, 0, 0},      {UnaryOp::Log, 0.01, 9, 0, 0},
      {UnaryOp::Log1p, -0.9, 9, 0, 0},    {UnaryOp::Expm1, -3, 3, 0, 0},    {UnaryOp::Sqrt, 0, 9, 0, 0},
      {UnaryOp::Rsqrt, 0.01, 9, 0, 0},    {UnaryOp::Tanh, -4, 4, 0, 0},     {UnaryOp::Sigmoid, -30, 30, 0, 0},
      {UnaryOp::Silu, -30, 30, 0, 0},     {UnaryOp::Softplus, -40, 40, 0, 0}, {UnaryOp::Sin, -7, 7, 0, 0},
      {UnaryOp::Cos, -7, 7, 0, 0},        {UnaryOp::Abs, -3, 3, 0, 0},      {UnaryOp::Sign, -3, 3, 0, 0},
      {UnaryOp::Square, -3, 3, 0, 0},     {UnaryOp::Reciprocal, 0.1, 5, 0, 0}, {UnaryOp::Relu, -3, 3, 0, 0},
      {UnaryOp::Floor, -9, 9, 0, 0},      {UnaryOp::Clamp, -3, 3, -1, 0.5}, {UnaryOp::PowScalar, 0.1, 4, 1.7, 0},
  };
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const Case& c : cases) {
      const Tensor x = rand({6, 9, 11}, c.low, c.high, dtype).transpose(0, 2).narrow(1, 2, 5);  // strided
      const Tensor cpu = op::unary(c.op, x, c.a, c.b);
      const Tensor cuda = op::unary(c.op, gpu(x), c.a, c.b);
      EXPECT_EQ(cuda.device(), Device::cuda());
      const double tol = dtype == DType::Float64 ? 1e-13 : 2e-6;
      expect_close(cuda, cpu, tol, tol, std::string("unary ") + std::to_string(static_cast<int>(c.op)));
    }
  }
  // integers: the ops defined on them
  const Tensor ints = op::mul(randn({50}), 20.0).to(DType::Int64);
  for (UnaryOp kind : {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign, UnaryOp::Square, UnaryOp::Relu})
    EXPECT_EQ(op::unary(kind, gpu(ints)).to_vector<int64_t>(), op::unary(kind, ints).to_vector<int64_t>());
}

TEST_F(CudaOps, BinaryOpsBroadcastLikeTheCpu) {
  using ssm::BinaryOp;
  const std::vector<BinaryOp> ops = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum,
                                     BinaryOp::Minimum, BinaryOp::Pow, BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt,
                                     BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge};
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int32, DType::Int64}) {
    const bool integer = dtype == DType::Int32 || dtype == DType::Int64;
    // a [4, 1, 5] against b [3, 1] -> [4, 3, 5]; positive b so Div and Pow are defined (and ints never divide by 0)
    Tensor a = rand({4, 1, 5}, 0.5, 3, DType::Float64), b = rand({3, 1}, 0.5, 2, DType::Float64);
    if (integer) a = op::mul(a, 3.0), b = op::add(b, 0.5);
    a = a.to(dtype), b = b.to(dtype);
    for (BinaryOp kind : ops) {
      if (integer && kind == BinaryOp::Div) continue;  // refused by the op on every device
      const Tensor cpu = op::binary(kind, a, b), cuda = op::binary(kind, gpu(a), gpu(b));
      const double tol = dtype == DType::Float32 ? 2e-6 : 1e-13;
      expect_close(cuda, cpu, integer ? 0 : tol, integer ? 0 : tol, "binary " + std::to_string(static_cast<int>(kind)));
    }
  }
  // NaN propagates through maximum/minimum on both devices
  const Tensor with_nan = Tensor::from_vector(std::vector<float>{1, NAN, 3}, {3});
  const auto m = op::maximum(gpu(with_nan), gpu(Tensor::from_vector(std::vector<float>{2, 2, NAN}, {3}))).to_vector<float>();
  EXPECT_EQ(m[0], 2.0f);
  EXPECT_TRUE(std::isnan(m[1]));
  EXPECT_TRUE(std::isnan(m[2]));
}

// Unary and binary ops, four values a thread or one (row_views), against the CPU; the binary ones with a view
// and a row broadcast along it (a bias: outer strides 0), and with two views. The CPU backend does not compute in
// bfloat16: there the reference is the float32 result rounded, as the GPU computes bf16 in float32 and rounds.
// (exp and silu take float types only, on either device.)
TEST_F(CudaOps, ElementwiseOpsOnRowsMatchTheCpu) {
  using ssm::BinaryOp;
  using ssm::UnaryOp;
  for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16}) {
    const bool bf16 = dtype == DType::BFloat16;
    const double tol = dtype == DType::Float64 ? 1e-13 : bf16 ? 1e-2 : 2e-6;
    const auto on_cpu = [&](const Tensor& t) { return bf16 ? t.to(DType::Float32) : t; };
    const std::vector<UnaryOp> unary_ops = bf16 ? std::vector<UnaryOp>{UnaryOp::Square}
                                                : std::vector<UnaryOp>{UnaryOp::Exp, UnaryOp::Silu, UnaryOp::Square};
    const Tensor host = rand({6, 5, 24}, 0.5, 3, dtype), other = rand({6, 5, 24}, 0.5, 3, dtype);
    const Tensor device = gpu(host), device_other = gpu(other);
    for (const auto& [name, view] : row_views()) {
      const Tensor x = view(host), x_gpu = view(device);
      const Tensor row = rand({x.shape().back()}, 0.5, 2, dtype);
      for (UnaryOp kind : unary_ops)
        expect_close(op::unary(kind, x_gpu), op::unary(kind, on_cpu(x)).to(dtype), tol, tol, name + " unary");
      for (BinaryOp kind : {BinaryOp::Add, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum}) {
        expect_close(op::binary(kind, x_gpu, gpu(row)), op::binary(kind, on_cpu(x), on_cpu(row)).to(dtype), tol, tol,
                     name + " with a row");
        expect_close(op::binary(kind, x_gpu, view(device_other)),
                     op::binary(kind, on_cpu(x), on_cpu(view(other))).to(dtype), tol, tol, name + " with a view");
      }
    }
  }
}

TEST_F(CudaOps, WhereFillAndInPlaceWritesThroughViews) {
  const Tensor cond = op::gt(randn({5, 1, 7}), Tensor::scalar(0.0)).to(DType::Int32);
  const Tensor a = randn({5, 4, 7}), b = randn({4, 1});
  expect_close(op::where(gpu(cond), gpu(a), gpu(b)), op::where(cond, a, b), 0, 0, "where");

  // fill_ and copy_ through a transposed slice write into the base tensor on both devices
  Tensor host = randn({6, 8}), device = gpu(host);
  host.transpose(0, 1).narrow(0, 2, 3).fill_(7.5);
  device.transpose(0, 1).narrow(0, 2, 3).fill_(7.5);
  const Tensor src = randn({8});
  host.select(0, 4).copy_(src);
  device.select(0, 4).copy_(gpu(src));
  expect_close(device, host, 0, 0, "fill_/copy_ through views");
}

TEST_F(CudaOps, ReductionsOverAnyDimsMatchTheCpu) {
  // [9, 70, 33]: dims {2} reduce contiguous rows (warp per output), {0} and {1} strided columns, {0, 2} both
  const std::vector<std::vector<int64_t>> dim_sets = {{2}, {1}, {0}, {0, 2}, {}, {1, 2}};
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = randn({9, 70, 33}, dtype);
    for (const auto& dims : dim_sets) {
      for (bool keepdim : {false, true}) {
        // float32 sums: the CPU accumulates in float64, the GPU in float32 (lanes, then a shuffle tree)
        const double atol = dtype == DType::Float32 ? 1e-4 : 1e-12, rtol = dtype == DType::Float32 ? 1e-5 : 1e-12;
        expect_close(op::sum(gpu(x), dims, keepdim), op::sum(x, dims, keepdim), atol, rtol, "sum");
        expect_close(op::max(gpu(x), dims, keepdim), op::max(x, dims, keepdim), 0, 0, "max");
        expect_close(op::min(gpu(x), dims, keepdim), op::min(x, dims, keepdim), 0, 0, "min");
      }
    }
    // a permuted (non-contiguous) input
    const Tensor p = x.permute({2, 0, 1});
    expect_close(op::sum(gpu(p), {2}), op::sum(p, {2}), 1e-4, 1e-5, "sum of a permuted view");
  }
  const Tensor ints = op::mul(randn({7, 40}), 100.0).to(DType::Int64);
  EXPECT_EQ(op::sum(gpu(ints), {1}).to_vector<int64_t>(), op::sum(ints, {1}).to_vector<int64_t>());
  EXPECT_EQ(op::max(gpu(ints), {0}).to_vector<int64_t>(), op::max(ints, {0}).to_vector<int64_t>());
  // NaN wins a max on both devices
  Tensor with_nan = randn({2, 64});
  with_nan.select(0, 1).narrow(0, 17, 1).fill_(NAN);
  const auto m = op::max(gpu(with_nan), {1}).to_vector<float>();
  EXPECT_FALSE(std::isnan(m[0]));
  EXPECT_TRUE(std::isnan(m[1]));
}

// Few outputs over many elements: the kernel splits each fold in segments and folds their results in a
// second pass (columns of a [tokens, features] tensor, long rows, a whole tensor, a permuted view).
TEST_F(CudaOps, LongReductionsSplitInSegmentsMatchTheCpu) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const double atol = dtype == DType::Float32 ? 1e-3 : 1e-10, rtol = dtype == DType::Float32 ? 1e-5 : 1e-12;
    const Tensor columns = randn({4099, 5}, dtype), rows = randn({3, 20011}, dtype);
    for (const auto& [x, dims] : std::vector<std::pair<Tensor, std::vector<int64_t>>>{
             {columns, {0}}, {rows, {1}}, {rows, {0, 1}}, {randn({130, 7, 40}, dtype).permute({2, 0, 1}), {1, 2}}}) {
      expect_close(op::sum(gpu(x), dims), op::sum(x, dims), atol, rtol, "sum");
      expect_close(op::max(gpu(x), dims), op::max(x, dims), 0, 0, "max");
      expect_close(op::min(gpu(x), dims), op::min(x, dims), 0, 0, "min");
    }
  }
  const Tensor ints = op::mul(randn({5000, 3}), 1000.0).to(DType::Int64);
  EXPECT_EQ(op::sum(gpu(ints), {0}).to_vector<int64_t>(), op::sum(ints, {0}).to_vector<int64_t>());
  EXPECT_EQ(op::min(gpu(ints), {0}).to_vector<int64_t>(), op::min(ints, {0}).to_vector<int64_t>());
  // a NaN deep inside one segment still wins that column's max
  Tensor with_nan = randn({6000, 2});
  with_nan.select(1, 1).narrow(0, 4321, 1).fill_(NAN);
  const auto m = op::max(gpu(with_nan), {0}).to_vector<float>();
  EXPECT_FALSE(std::isnan(m[0]));
  EXPECT_TRUE(std::isnan(m[1]));
}

TEST_F(CudaOps, CumsumForwardAndReverseMatchesTheCpu) {
  const Tensor x = randn({5, 300, 6}, DType::Float32).transpose(0, 2);  // [6, 300, 5], strided
  for (int64_t dim = 0; dim < 3; ++dim)
    for (bool reverse : {false, true})
      expect_close(op::cumsum(gpu(x), dim, reverse), op::cumsum(x, dim, reverse), 1e-5, 1e-5,
                   "cumsum dim " + std::to_string(dim));
  // few long lines: each cut into segments summed side by side (an uneven last one), integers exactly
  const Tensor long_lines = randn({3, 5000, 2}, DType::Float64);
  for (bool reverse : {false, true}) {
    expect_close(op::cumsum(gpu(long_lines), 1, reverse), op::cumsum(long_lines, 1, reverse), 1e-12, 1e-12,
                 "long lines");
    const Tensor ints = op::mul(long_lines, 1000.0).to(DType::Int64);
    EXPECT_EQ(op::cumsum(gpu(ints), 1, reverse).to_vector<int64_t>(),
              op::cumsum(ints, 1, reverse).to_vector<int64_t>());
  }
}

TEST_F(CudaOps, MatmulHonoursTransposedBroadcastAndSlicedOperands) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const double tol = dtype == DType::Float32 ? 2e-5 : 1e-12;
    const Tensor a = randn({3, 33, 17}, dtype), w = randn({17, 29}, dtype);
    expect_close(op::matmul(gpu(a), gpu(w)), op::matmul(a, w), tol, tol, "batched x shared weight");
    const Tensor wt = randn({29, 17}, dtype).transpose(0, 1);  // a Linear's weight, read transposed
    expect_close(op::matmul(gpu(a), gpu(wt)), op::matmul(a, wt), tol, tol, "transposed weight");
    const Tensor at = randn({3, 17, 33}, dtype).transpose(1, 2), b = randn({3, 17, 5}, dtype);
    expect_close(op::matmul(gpu(at), gpu(b)), op::matmul(at, b), tol, tol, "transposed batched lhs");
    const Tensor sliced = randn({3, 40, 50}, dtype).narrow(1, 3, 33).narrow(2, 7, 17);  // row stride 50
    expect_close(op::matmul(gpu(sliced), gpu(w)), op::matmul(sliced, w), tol, tol, "sliced lhs");
    const Tensor v = randn({17}, dtype), row = randn({1, 17}, dtype);
    expect_close(op::matmul(gpu(a), gpu(v)), op::matmul(a, v), tol, tol, "matrix x vector");
    expect_close(op::matmul(gpu(row), gpu(w)), op::matmul(row, w), tol, tol, "one row");
    const Tensor expanded = randn({1, 17, 8}, dtype).expand({3, 17, 8});  // batch stride 0
    expect_close(op::matmul(gpu(a), gpu(expanded)), op::matmul(a, expanded), tol, tol, "broadcast batch");
  }
  // bfloat16 in and out, float32 accumulation: close to the float32 product of the rounded inputs
  const Tensor a = randn({64, 96}).to(DType::BFloat16), b = randn({96, 48}).to(DType::BFloat16);
  const Tensor ref = op::matmul(a.to(DType::Float32), b.to(DType::Float32));
  expect_close(op::matmul(gpu(a), gpu(b)).to(DType::Float32), ref, 5e-2, 1e-2, "bfloat16 matmul");
  // bfloat16 in, float32 out (autocast's product): the float32 product of the rounded inputs, unrounded,
  // also with a transposed operand as the layers pass their weights
  const Tensor product = op::matmul(gpu(a), gpu(b), DType::Float32);
  EXPECT_EQ(product.dtype(), DType::Float32);
  expect_close(product, ref, 1e-5, 1e-5, "bfloat16 operands, float32 product");
  const Tensor bt = randn({48, 96}).to(DType::BFloat16).transpose(0, 1);
  expect_close(op::matmul(gpu(a), gpu(bt), DType::Float32),
               op::matmul(a.to(DType::Float32), bt.to(DType::Float32)), 1e-5, 1e-5, "transposed weight");
}

TEST_F(CudaOps, IndexOpsMatchTheCpu) {
  for (DType index_type : {DType::Int32, DType::Int64}) {
    const Tensor table = randn({50, 12});
    const Tensor ids = rand({7, 9}, 0, 50, DType::Float64).to(index_type);
    expect_close(op::embedding(gpu(table), gpu(ids)), op::embedding(table, ids), 0, 0, "embedding");
    const Tensor picks = rand({20}, 0, 12, DType::Float64).to(index_type);  // repeats are certain
    const Tensor x = randn({4, 12, 6});
    expect_close(op::index_select(gpu(x), 1, gpu(picks)), op::index_select(x, 1, picks), 0, 0, "index_select");
    const Tensor src = randn({4, 20, 6});
    expect_close(op::index_add({4, 12, 6}, 1, gpu(picks), gpu(src)), op::index_add({4, 12, 6}, 1, picks, src), 1e-6,
                 1e-6, "index_add with repeated indices");
    const Tensor gidx = rand({4, 5, 6}, 0, 12, DType::Float64).to(index_type);
    expect_close(op::gather(gpu(x), 1, gpu(gidx)), op::gather(x, 1, gidx), 0, 0, "gather");
    const Tensor gsrc = randn({4, 5, 6});
    expect_close(op::scatter_add({4, 12, 6}, 1, gpu(gidx), gpu(gsrc)), op::scatter_add({4, 12, 6}, 1, gidx, gsrc),
                 1e-6, 1e-6, "scatter_add");
  }
  const Tensor parts = randn({3, 4});
  expect_close(op::cat({gpu(parts), gpu(op::mul(parts, 2.0))}, 1), op::cat({parts, op::mul(parts, 2.0)}, 1), 0, 0,
               "cat");
}

// An index outside the table is found by the kernel and reported at the next wait for the GPU (here the
// read of the result), naming the op, the index and the size; the fault is then cleared.
TEST_F(CudaOps, OutOfRangeIndicesAreReportedAtTheNextWait) {
  const Tensor table = gpu(randn({10, 4}));
  const Tensor ids = gpu(Tensor::from_vector(std::vector<int64_t>{3, 12, 1}, {3}));
  const Tensor rows = op::embedding(table, ids);  // queued; nothing waits yet
  try {
    (void)rows.to_vector<float>();
    FAIL() << "no error for index 12 in a table of 10 rows";
  } catch (const ssm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("index 12 is out of range for a dimension of size 10"), std::string::npos)
        << e.what();
  }
  const Tensor good = gpu(Tensor::from_vector(std::vector<int64_t>{3, 9}, {2}));
  EXPECT_EQ(op::embedding(table, good).to_vector<float>().size(), 8u);  // cleared: the next read is fine
  const Tensor negative = gpu(Tensor::from_vector(std::vector<int32_t>{0, -1, 2, 3}, {1, 4}));
  const Tensor picked = op::gather(table, 0, negative);
  EXPECT_THROW(ssm::backend_for(Device::cuda()).synchronize(), ssm::Error);  // an explicit wait reports it too
}

// Composed ops and their autograd backward run on the device unchanged: the gradients agree with the CPU's.
TEST_F(CudaOps, AutogradThroughComposedOpsMatchesTheCpu) {
  const Tensor x0 = randn({4, 10, 16}), w0 = randn({16, 24}), ids = rand({4, 10}, 0, 24, DType::Float64).to(DType::Int64);
  auto run = [&](Device device) {
    const Tensor x = x0.to(device).detach().set_requires_grad(true), w = w0.to(device).detach().set_requires_grad(true);
    using namespace ssm;
    const Tensor h = silu(matmul(x, w));
    const Tensor logp = log_softmax(h * 0.5 + cumsum(h, 1) * 0.01, -1);
    const Tensor picked = gather(logp, 2, unsqueeze(ids.to(device), -1));
    const Tensor loss = mean(picked) * -1.0 + mean(square(rsqrt(sum(square(x), {-1}) + 1.0)));
    backward(loss);
    return std::vector<Tensor>{loss, x.grad(), w.grad()};
  };
  const auto cpu = run(Device::cpu()), cuda = run(Device::cuda());
  expect_close(cuda[0], cpu[0], 1e-6, 1e-5, "loss");
  expect_close(cuda[1], cpu[1], 1e-6, 1e-4, "dloss/dx");
  expect_close(cuda[2], cpu[2], 1e-6, 1e-4, "dloss/dw");
}

// Steady state: the same sequence of allocations reuses cached blocks — nothing new is reserved.
TEST_F(CudaOps, CachingAllocatorReusesBlocksAndReportsPeak) {
  ssm::Backend& backend = ssm::backend_for(Device::cuda());
  auto step = [&] {
    const Tensor a = gpu(randn({256, 300})), b = op::exp(a), c = op::matmul(b, a.transpose(0, 1));
    return op::sum(c).item<float>();
  };
  (void)step();
  const ssm::MemoryStats warm = backend.memory_stats();
  for (int i = 0; i < 5; ++i) (void)step();
  const ssm::MemoryStats after = backend.memory_stats();
  EXPECT_EQ(after.reserved, warm.reserved) << "steady-state steps must not reserve new device memory";
  EXPECT_EQ(after.in_use, warm.in_use) << "every temporary went back to the cache";
  EXPECT_GE(after.peak_in_use, after.in_use + 256 * 256 * 4) << "the peak saw the 256x256 product";
  backend.reset_peak_memory();
  EXPECT_EQ(backend.memory_stats().peak_in_use, backend.memory_stats().in_use);
}

TEST_F(CudaOps, MixingDevicesIsAClearError) {
  const Tensor host = randn({3}), device = gpu(host);
  try {
    (void)op::add(host, device);
    FAIL() << "adding a CPU and a CUDA tensor must throw";
  } catch (const ssm::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cpu"), std::string::npos) << message;
    EXPECT_NE(message.find("cuda:0"), std::string::npos) << message;
  }
  EXPECT_THROW((void)Tensor::zeros({2}, DType::Float32, Device::cuda(99)), ssm::Error);
}

}  // namespace
