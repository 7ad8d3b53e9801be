// Tests for the raw tensor layer (tensor/tensor.h): creation, metadata, views and their strides,
// writes through views, copies, dtype conversions, data access and the storage version counter.
// Expected values come from plain index arithmetic on the base tensor's row-major values (a view's
// element (i, j, ..) must be base[offset + Σ index·stride]), not from the engine itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tensor/ops.h"
#include "tensor/strided_layout.h"
#include "tensor/tensor.h"

namespace {

using ssm::DType;
using ssm::Shape;
using ssm::Strides;
using ssm::Tensor;

// 0, 1, 2, ... as a float64 tensor (exact in every dtype used here).
Tensor iota(const Shape& shape, DType dtype = DType::Float64) {
  std::vector<double> v(static_cast<size_t>(ssm::numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return Tensor::from_vector(v, shape).to(dtype);
}

uint64_t version_of(const Tensor& t) { return t.impl_ptr()->storage->version(); }
const void* storage_of(const Tensor& t) { return t.impl_ptr()->storage.get(); }

// Row-major multi-indices of a shape, in order.
std::vector<std::vector<int64_t>> all_indices(const Shape& shape) {
  std::vector<std::vector<int64_t>> out;
  const int64_t n = ssm::numel(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    out.push_back(idx);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// Element of a view computed from the base's contiguous values and the view's strides/offset.
double strided_value(const std::vector<double>& base_values, const Tensor& view, const std::vector<int64_t>& idx) {
  int64_t off = view.offset();
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * view.strides()[d];
  return base_values.at(static_cast<size_t>(off));
}

// Every element of `view` (read by to_vector, which gathers row-major) matches the strided formula.
void expect_view_reads(const Tensor& base, const Tensor& view) {
  ASSERT_TRUE(base.is_contiguous());
  ASSERT_EQ(base.offset(), 0);
  const auto base_values = base.to_vector<double>();
  const auto got = view.to_vector<double>();
  const auto indices = all_indices(view.shape());
  ASSERT_EQ(got.size(), indices.size());
  for (size_t k = 0; k < indices.size(); ++k) EXPECT_EQ(got[k], strided_value(base_values, view, indices[k])) << "element " << k;
}

// ---------------------------------------------------------------- creation and metadata

TEST(TensorViews, FactoriesFillEveryDtype) {
  for (DType dt : {DType::Float32, DType::Float64, DType::Int32, DType::Int64}) {
    SCOPED_TRACE(ssm::dtype_name(dt));
    const Tensor z = Tensor::zeros({2, 3}, dt), o = Tensor::ones({2, 3}, dt), f = Tensor::full({4}, -7, dt);
    EXPECT_EQ(z.dtype(), dt);
    EXPECT_EQ(z.shape(), (Shape{2, 3}));
    EXPECT_EQ(z.strides(), (Strides{3, 1}));
    EXPECT_EQ(z.to_vector<double>(), std::vector<double>(6, 0.0));
    EXPECT_EQ(o.to_vector<double>(), std::vector<double>(6, 1.0));
    EXPECT_EQ(f.to_vector<double>(), std::vector<double>(4, -7.0));
    const Tensor e = Tensor::empty({3, 0, 2}, dt);
    EXPECT_EQ(e.numel(), 0);
    EXPECT_EQ(e.dim(), 3);
    EXPECT_TRUE(e.to_vector<double>().empty());
  }
  EXPECT_EQ(Tensor::full({2}, 2.5, DType::Float32).to_vector<float>(), (std::vector<float>{2.5f, 2.5f}));
  EXPECT_EQ(Tensor::zeros({2}).dtype(), DType::Float32);  // default dtype
}

TEST(TensorViews, ScalarIsRankZero) {
  const Tensor s = Tensor::scalar(3.25, DType::Float64);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_TRUE(s.shape().empty());
  EXPECT_TRUE(s.strides().empty());
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.item<double>(), 3.25);
  EXPECT_EQ(s.at({}), 3.25);
  EXPECT_EQ(Tensor::scalar(-2, DType::Int32).item<int32_t>(), -2);
}

TEST(TensorViews, ArangeAndFromVector) {
  const Tensor a = Tensor::arange(6);
  EXPECT_EQ(a.dtype(), DType::Int64);
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(Tensor::arange(4, DType::Float32).to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(Tensor::arange(0).numel(), 0);

  const Tensor f = Tensor::from_vector(std::vector<float>{1.5f, -2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.at({1, 0}), 4.0);
  EXPECT_EQ(f.at({0, 0}), 1.5);
  EXPECT_EQ(Tensor::from_vector(std::vector<double>{1, 2}, {2}).dtype(), DType::Float64);
  EXPECT_EQ(Tensor::from_vector(std::vector<int32_t>{1, 2}, {2, 1}).dtype(), DType::Int32);
  const Tensor i64 = Tensor::from_vector(std::vector<int64_t>{int64_t{1} << 40}, {});
  EXPECT_EQ(i64.dtype(), DType::Int64);
  EXPECT_EQ(i64.item<int64_t>(), int64_t{1} << 40);  // large ints survive exactly
}

TEST(TensorViews, Metadata) {
  const Tensor t = Tensor::zeros({2, 3, 4});
  EXPECT_TRUE(t.defined());
  EXPECT_FALSE(Tensor().defined());
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(-3), 2);
  EXPECT_EQ(t.offset(), 0);
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_EQ(t.describe(), "float32[2, 3, 4] on cpu");
  EXPECT_EQ(Tensor::zeros({}, DType::Int64).describe(), "int64[] on cpu");
  EXPECT_EQ(ssm::numel({}), 1);
  EXPECT_EQ(ssm::shape_str({2, 0}), "[2, 0]");
  EXPECT_EQ(ssm::contiguous_strides({2, 3, 4}), (Strides{12, 4, 1}));
}

TEST(TensorViews, IsContiguous) {
  const Tensor t = iota({3, 4});
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_FALSE(t.transpose(0, 1).is_contiguous());
  EXPECT_TRUE(t.narrow(0, 1, 2).is_contiguous());   // rows: contiguous with an offset
  EXPECT_FALSE(t.narrow(1, 1, 2).is_contiguous());  // columns: gaps between rows
  EXPECT_TRUE(t.narrow(1, 1, 2).narrow(0, 0, 1).is_contiguous());  // a single row segment
  EXPECT_TRUE(t.select(0, 2).is_contiguous());
  EXPECT_FALSE(t.select(1, 2).is_contiguous());
  EXPECT_TRUE(t.unsqueeze(1).is_contiguous());
  EXPECT_TRUE(t.unsqueeze(2).is_contiguous());
  EXPECT_FALSE(t.select(0, 0).expand({2, 4}).is_contiguous());
  // size-1 dims never break contiguity, whatever their stride
  EXPECT_TRUE(t.as_strided({3, 1, 4}, {4, 99, 1}, 0).is_contiguous());
  EXPECT_TRUE(iota({4, 1}).transpose(0, 1).is_contiguous());
}

// ---------------------------------------------------------------- view / reshape

TEST(TensorViews, ViewSharesStorageAndInfersMinusOne) {
  const Tensor t = iota({2, 3, 4});
  const Tensor v = t.view({6, 4});
  EXPECT_EQ(v.shape(), (Shape{6, 4}));
  EXPECT_EQ(v.strides(), (Strides{4, 1}));
  EXPECT_EQ(storage_of(v), storage_of(t));
  EXPECT_EQ(v.to_vector<double>(), t.to_vector<double>());
  EXPECT_EQ(t.view({-1, 4}).shape(), (Shape{6, 4}));
  EXPECT_EQ(t.view({4, -1, 2}).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.view({-1}).shape(), (Shape{24}));
  EXPECT_TRUE(t.view({1, 24, 1}).is_contiguous());  // (strides of size-1 dims are arbitrary)
  EXPECT_EQ(t.view({1, 24, 1}).strides()[1], 1);
  EXPECT_EQ(t.flatten().shape(), (Shape{24}));
  EXPECT_EQ(iota({1}).view({}).dim(), 0);
  EXPECT_EQ(Tensor::zeros({0, 3}).view({-1, 3}).shape(), (Shape{0, 3}));
  EXPECT_EQ(Tensor::zeros({0, 3}).view({3, 0}).shape(), (Shape{3, 0}));
}

TEST(TensorViews, ViewOfNonContiguousWhereStridesAllow) {
  const Tensor base = iota({4, 3});
  // [3, 4] with strides [1, 3]: splitting the (strided) last dim is still a view
  const Tensor tr = base.transpose(0, 1);
  const Tensor v = tr.view({3, 2, 2});
  EXPECT_EQ(v.strides(), (Strides{1, 6, 3}));
  EXPECT_EQ(storage_of(v), storage_of(base));
  expect_view_reads(base, v);
  // merging rows of a column-narrowed tensor: [2, 3, 4] narrowed to [2, 3, 2] merges dims 0 and 1
  const Tensor b3 = iota({2, 3, 4});
  const Tensor n = b3.narrow(2, 1, 2);
  const Tensor m = n.view({6, 2});
  EXPECT_EQ(m.strides(), (Strides{4, 1}));
  EXPECT_EQ(m.offset(), 1);
  expect_view_reads(b3, m);
  EXPECT_EQ(m.to_vector<double>(), n.to_vector<double>());
  // size-1 dims anywhere are free
  const Tensor u = tr.unsqueeze(1).view({3, 1, 4, 1});
  expect_view_reads(base, u);
}

TEST(TensorViews, ReshapeCopiesOnlyWhenItMust) {
  const Tensor base = iota({3, 4});
  const Tensor r = base.reshape({2, 6});
  EXPECT_EQ(storage_of(r), storage_of(base));  // a view
  const Tensor tr = base.transpose(0, 1);      // [4, 3] strides [1, 4]
  const Tensor flat = tr.reshape({12});
  EXPECT_NE(storage_of(flat), storage_of(base));  // had to copy
  EXPECT_TRUE(flat.is_contiguous());
  std::vector<double> expected;
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) expected.push_back(static_cast<double>(j * 4 + i));
  EXPECT_EQ(flat.to_vector<double>(), expected);
  EXPECT_EQ(tr.reshape({-1, 2}).to_vector<double>(), expected);
  EXPECT_THROW(tr.view({12}), ssm::Error);
  // the copy is independent of the base
  flat.fill_(-1);
  EXPECT_EQ(base.at({0, 0}), 0.0);
}

// ---------------------------------------------------------------- permute / transpose / narrow / select

TEST(TensorViews, PermuteAndTranspose) {
  const Tensor base = iota({2, 3, 4});
  const Tensor p = base.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Strides{1, 12, 4}));
  EXPECT_EQ(storage_of(p), storage_of(base));
  expect_view_reads(base, p);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(p.at({k, i, j}), base.at({i, j, k}));
  EXPECT_EQ(base.permute({-1, -3, -2}).strides(), p.strides());

  const Tensor t = base.transpose(0, -1);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (Strides{1, 4, 12}));
  expect_view_reads(base, t);
  EXPECT_EQ(base.transpose(1, 1).strides(), base.strides());
  // transposing twice gives the original layout back
  const Tensor tt = t.transpose(0, 2);
  EXPECT_EQ(tt.strides(), base.strides());
  EXPECT_EQ(tt.to_vector<double>(), base.to_vector<double>());
}

TEST(TensorViews, NarrowAndSelect) {
  const Tensor base = iota({2, 3, 4});
  const Tensor n = base.narrow(1, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(n.strides(), (Strides{12, 4, 1}));
  EXPECT_EQ(n.offset(), 4);
  expect_view_reads(base, n);
  const Tensor n2 = base.narrow(-1, 3, 1);
  EXPECT_EQ(n2.offset(), 3);
  expect_view_reads(base, n2);
  EXPECT_EQ(base.narrow(2, 4, 0).numel(), 0);  // empty narrow at the end is allowed

  const Tensor s = base.select(2, -1);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(s.strides(), (Strides{12, 4}));
  EXPECT_EQ(s.offset(), 3);
  expect_view_reads(base, s);
  const Tensor s0 = base.select(0, 1);
  EXPECT_EQ(s0.offset(), 12);
  EXPECT_EQ(s0.shape(), (Shape{3, 4}));
  // views of views accumulate offsets
  const Tensor ss = base.narrow(2, 1, 3).select(1, 2).narrow(1, 1, 2);  // [2, 2]
  EXPECT_EQ(ss.offset(), 1 + 8 + 1);
  expect_view_reads(base, ss);
  EXPECT_EQ(ss.to_vector<double>(), (std::vector<double>{10, 11, 22, 23}));
}

TEST(TensorViews, ExpandSqueezeUnsqueeze) {
  const Tensor col = iota({3, 1});
  const Tensor e = col.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Strides{0, 1, 0}));
  expect_view_reads(col, e);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(e.at({i, j, k}), static_cast<double>(j));
  EXPECT_EQ(Tensor::scalar(5).expand({2, 2}).strides(), (Strides{0, 0}));
  EXPECT_EQ(iota({3}).expand({3}).strides(), (Strides{1}));

  const Tensor t = iota({3, 4});
  EXPECT_EQ(t.unsqueeze(0).shape(), (Shape{1, 3, 4}));
  EXPECT_EQ(t.unsqueeze(0).strides(), (Strides{12, 4, 1}));
  EXPECT_EQ(t.unsqueeze(1).shape(), (Shape{3, 1, 4}));
  EXPECT_EQ(t.unsqueeze(1).strides(), (Strides{4, 4, 1}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(t.unsqueeze(2).strides(), (Strides{4, 1, 1}));
  EXPECT_EQ(t.unsqueeze(-3).shape(), (Shape{1, 3, 4}));
  EXPECT_EQ(Tensor::scalar(1).unsqueeze(0).shape(), (Shape{1}));
  const Tensor sq = t.unsqueeze(1).squeeze(1);
  EXPECT_EQ(sq.shape(), t.shape());
  EXPECT_EQ(sq.strides(), t.strides());
  EXPECT_EQ(col.squeeze(-1).shape(), (Shape{3}));
  expect_view_reads(t, t.transpose(0, 1).unsqueeze(1));
}

TEST(TensorViews, AsStrided) {
  const Tensor base = iota({12});
  const Tensor a = base.as_strided({3, 2}, {1, 3}, 2);  // element (i, j) = base[2 + i + 3j]
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j) EXPECT_EQ(a.at({i, j}), static_cast<double>(2 + i + 3 * j));
  EXPECT_EQ(a.offset(), 2);
  const Tensor windows = base.as_strided({5, 4}, {2, 1}, 0);  // overlapping sliding windows
  expect_view_reads(base, windows);
  EXPECT_EQ(windows.at({4, 3}), 11.0);
  const Tensor one = base.as_strided({}, {}, 7);
  EXPECT_EQ(one.item<double>(), 7.0);
}

// in_runs_of (tensor/strided_layout.h) picks the layouts that the GPU's elementwise kernels take four values at a
// time (for_each_quad in cuda/launch.cuh): rows contiguous in every tensor, a multiple of 4 long and 4-aligned
// apart. The expected layouts are worked out by hand from the views' strides.
TEST(StridedLayout, RunsOfFourOnlyWhereEveryTensorHasAlignedContiguousRows) {
  const Tensor base = Tensor::zeros({6, 5, 24});
  const auto runs = [](const Tensor& src) {
    const Tensor dst = Tensor::zeros(src.shape());  // contiguous
    return ssm::in_runs_of<2>(4, dst.shape(), {dst.strides(), src.strides()});
  };
  const auto expect_runs = [&](const Tensor& src, const Shape& shape, const Strides& dst, const Strides& from) {
    const auto r = runs(src);
    ASSERT_TRUE(r.has_value()) << src.describe();
    EXPECT_EQ(r->shape, shape);
    EXPECT_EQ(r->strides[0], dst);
    EXPECT_EQ(r->strides[1], from);
  };
  expect_runs(base, {180}, {4}, {4});                                    // one row of 720 values
  expect_runs(base.narrow(1, 1, 3), {6, 18}, {72, 4}, {120, 4});        // whole rows: 6 of 72 values
  expect_runs(base.narrow(2, 4, 16), {30, 4}, {16, 4}, {24, 4});        // columns 4..19 of 30 rows
  expect_runs(base.narrow(1, 0, 1).expand({6, 4, 24}), {6, 4, 6}, {96, 24, 4}, {120, 0, 4});  // a broadcast row
  EXPECT_FALSE(runs(base.narrow(2, 0, 7)));                             // rows of 7
  EXPECT_FALSE(runs(base.transpose(1, 2)));                             // innermost stride 24
  EXPECT_FALSE(runs(base.narrow(2, 0, 1).expand({6, 5, 24})));          // innermost stride 0
  EXPECT_FALSE(runs(Tensor::zeros({6, 26}).narrow(1, 0, 24)));          // rows 26 apart
  EXPECT_FALSE(runs(base.narrow(0, 2, 1).narrow(1, 3, 1).narrow(2, 5, 1)));  // one value
}

// ---------------------------------------------------------------- writes through views

TEST(TensorViews, FillThroughNarrowChangesBase) {
  const Tensor base = Tensor::zeros({4, 5}, DType::Float64);
  base.narrow(1, 1, 3).narrow(0, 2, 2).fill_(7);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 5; ++j)
      EXPECT_EQ(base.at({i, j}), (i >= 2 && j >= 1 && j <= 3) ? 7.0 : 0.0) << i << "," << j;
}

TEST(TensorViews, CopyThroughTransposeChangesBase) {
  const Tensor base = Tensor::zeros({3, 4}, DType::Float64);
  const Tensor src = iota({4, 3});
  base.transpose(0, 1).copy_(src);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(base.at({i, j}), src.at({j, i}));
}

TEST(TensorViews, FillAndCopyThroughSelectChangesBase) {
  const Tensor base = iota({3, 4});
  base.select(1, 2).fill_(-1);
  base.select(0, 0).copy_(Tensor::full({4}, 9, DType::Float64));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      const double expect = i == 0 ? 9.0 : (j == 2 ? -1.0 : static_cast<double>(i * 4 + j));
      EXPECT_EQ(base.at({i, j}), expect) << i << "," << j;
    }
}

TEST(TensorViews, WriteThroughChainedViews) {
  const Tensor base = Tensor::zeros({2, 3, 4}, DType::Int64);
  // permute -> narrow -> select: writes base[i][1..2][3]
  const Tensor v = base.permute({2, 0, 1}).narrow(2, 1, 2).select(0, 3);  // [2, 2]
  v.copy_(Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4}, {2, 2}));
  const auto got = base.to_vector<int64_t>();
  std::vector<int64_t> expected(24, 0);
  expected[0 * 12 + 1 * 4 + 3] = 1;
  expected[0 * 12 + 2 * 4 + 3] = 2;
  expected[1 * 12 + 1 * 4 + 3] = 3;
  expected[1 * 12 + 2 * 4 + 3] = 4;
  EXPECT_EQ(got, expected);
}

TEST(TensorViews, CopyBroadcastsAndConverts) {
  const Tensor t = Tensor::zeros({3, 4}, DType::Float64);
  t.copy_(iota({4}));  // a row, broadcast down
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(t.at({i, j}), static_cast<double>(j));
  t.copy_(iota({3, 1}));  // a column, broadcast across
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(t.at({i, j}), static_cast<double>(i));
  t.copy_(Tensor::scalar(2.5, DType::Float64));
  EXPECT_EQ(t.to_vector<double>(), std::vector<double>(12, 2.5));
  // broadcasting into a transposed view
  const Tensor u = Tensor::zeros({4, 3}, DType::Float64);
  u.transpose(0, 1).copy_(iota({4}));  // u^T[i][j] = j  => u[j][i] = j
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(u.at({i, j}), static_cast<double>(i));
  // converting copies: int -> float, float -> int (truncation toward zero, like static_cast)
  const Tensor f = Tensor::zeros({2}, DType::Float32);
  f.copy_(Tensor::from_vector(std::vector<int32_t>{-3, 5}, {2}));
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{-3, 5}));
  const Tensor i = Tensor::zeros({4}, DType::Int32);
  i.copy_(Tensor::from_vector(std::vector<double>{2.7, -2.7, 0.5, -0.5}, {4}));
  EXPECT_EQ(i.to_vector<int32_t>(), (std::vector<int32_t>{2, -2, 0, 0}));
  // copying from an expanded (stride-0) source
  const Tensor w = Tensor::zeros({2, 3}, DType::Float64);
  w.copy_(iota({3, 1}).transpose(0, 1).expand({2, 3}));
  EXPECT_EQ(w.to_vector<double>(), (std::vector<double>{0, 1, 2, 0, 1, 2}));
}

// ---------------------------------------------------------------- copies

TEST(TensorViews, ContiguousAndCloneAreIndependent) {
  const Tensor base = iota({3, 4});
  EXPECT_TRUE(base.contiguous().is_same(base));  // already contiguous: the same handle
  const Tensor tr = base.transpose(0, 1);
  const Tensor c = tr.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(storage_of(c), storage_of(base));
  EXPECT_EQ(c.to_vector<double>(), tr.to_vector<double>());
  c.fill_(0);
  EXPECT_EQ(base.at({1, 2}), 6.0);

  const Tensor k = base.clone();
  EXPECT_NE(storage_of(k), storage_of(base));
  EXPECT_EQ(k.to_vector<double>(), base.to_vector<double>());
  k.fill_(-5);
  EXPECT_EQ(base.at({2, 3}), 11.0);
  base.fill_(42);
  EXPECT_EQ(k.at({2, 3}), -5.0);

  const Tensor nk = iota({4, 5}).narrow(1, 1, 3).clone();  // clone of a strided view
  EXPECT_TRUE(nk.is_contiguous());
  EXPECT_EQ(nk.offset(), 0);
  EXPECT_EQ(nk.at({3, 2}), 18.0);

  const Tensor d = base.detach();
  EXPECT_EQ(storage_of(d), storage_of(base));
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
}

TEST(TensorViews, ToSameDtypeOrDeviceAliases) {
  const Tensor t = iota({3}, DType::Float32);
  EXPECT_TRUE(t.to(DType::Float32).is_same(t));
  EXPECT_TRUE(t.to(ssm::Device::cpu()).is_same(t));
  EXPECT_FALSE(t.to(DType::Float64).is_same(t));
}

// ---------------------------------------------------------------- dtype conversions

TEST(TensorViews, DtypeRoundTripsAreExactWhereRepresentable) {
  // integers and dyadic fractions are exact in every float type
  const std::vector<double> values{0, 1, -1, 2.5, -0.375, 1024, -65536, 16777216, 0.5, 3};
  const Tensor d = Tensor::from_vector(values, {10});
  EXPECT_EQ(d.to(DType::Float32).to(DType::Float64).to_vector<double>(), values);
  const std::vector<double> ints{0, 1, -1, 7, -2147483647.0, 2147483647.0, 123456789};
  const Tensor di = Tensor::from_vector(ints, {7});
  EXPECT_EQ(di.to(DType::Int32).to(DType::Int64).to(DType::Float64).to_vector<double>(), ints);
  EXPECT_EQ(di.to(DType::Int64).to(DType::Int32).to(DType::Float64).to_vector<double>(), ints);

  // float64 -> float32 rounds like static_cast<float>
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> dist(-1e6, 1e6);
  std::vector<double> many(257);
  for (double& v : many) v = dist(rng);
  const auto as_f = Tensor::from_vector(many, {257}).to(DType::Float32).to_vector<float>();
  for (size_t i = 0; i < many.size(); ++i) EXPECT_EQ(as_f[i], static_cast<float>(many[i]));
  // float -> int truncates toward zero
  EXPECT_EQ(Tensor::from_vector(std::vector<float>{1.9f, -1.9f, 100.5f}, {3}).to(DType::Int64).to_vector<int64_t>(),
            (std::vector<int64_t>{1, -1, 100}));
  // int64 beyond 2^53 -> float64 rounds like static_cast<double>
  const int64_t big = (int64_t{1} << 53) + 1;
  EXPECT_EQ(Tensor::from_vector(std::vector<int64_t>{big}, {1}).to(DType::Float64).item<double>(), static_cast<double>(big));
  // int32 <-> int64 negative values
  EXPECT_EQ(Tensor::from_vector(std::vector<int64_t>{-5, -2147483648LL}, {2}).to(DType::Int32).to_vector<int32_t>(),
            (std::vector<int32_t>{-5, std::numeric_limits<int32_t>::min()}));
  // a conversion of a strided view converts the view's elements in row-major order
  const Tensor tr = iota({2, 3}).transpose(0, 1).to(DType::Int32);
  EXPECT_TRUE(tr.is_contiguous());
  EXPECT_EQ(tr.to_vector<int32_t>(), (std::vector<int32_t>{0, 3, 1, 4, 2, 5}));
}

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// The bfloat16 nearest to f (finite f), ties to an even mantissa: chosen by comparing distances in double.
float bf16_reference(float f) {
  const uint32_t u = float_to_bits(f);
  const uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
  const double dlo = std::abs(static_cast<double>(bits_to_float(lo)) - f);
  const double dhi = std::abs(static_cast<double>(bits_to_float(hi)) - f);  // hi may be inf: then dlo wins unless tie
  if (dlo < dhi) return bits_to_float(lo);
  if (dhi < dlo) return bits_to_float(hi);
  return ((lo >> 16) & 1u) ? bits_to_float(hi) : bits_to_float(lo);
}

TEST(TensorViews, BFloat16RoundsToNearestEven) {
  const float one = 1.0f;
  const float e8 = std::ldexp(1.0f, -8);  // half an ulp of bfloat16 at 1
  const std::vector<float> values{
      1.0f, one + e8,                        // tie -> even (1.0)
      one + 3 * e8,                          // tie -> even (1 + 2^-6)
      one + e8 + std::ldexp(1.0f, -20),      // just above the tie -> up
      one + e8 - std::ldexp(1.0f, -20),      // just below the tie -> down
      -(one + e8), -(one + 3 * e8), 3.14159265f, -2.71828f, 1e-30f, -1e30f, 0.0f, -0.0f,
      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  const Tensor f = Tensor::from_vector(values, {static_cast<int64_t>(values.size())});
  const Tensor b = f.to(DType::BFloat16);
  EXPECT_EQ(b.dtype(), DType::BFloat16);
  const auto back = b.to_vector<float>();
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 1.0f);
  EXPECT_EQ(back[2], one + 4 * e8);
  EXPECT_EQ(back[3], one + 2 * e8);
  EXPECT_EQ(back[4], 1.0f);
  EXPECT_EQ(back[5], -1.0f);
  EXPECT_EQ(back[6], -(one + 4 * e8));
  EXPECT_TRUE(std::isinf(back[13]) && back[13] > 0);
  EXPECT_TRUE(std::isinf(back[14]) && back[14] < 0);
  EXPECT_TRUE(std::signbit(back[12]));
  for (size_t i = 0; i < values.size(); ++i)
    if (std::isfinite(values[i])) {
      EXPECT_EQ(back[i], bf16_reference(values[i])) << values[i];
    }
  EXPECT_EQ(b.data<ssm::BFloat16>()[0].bits, 0x3f80);  // 1.0 is the top half of 0x3f800000

  // many random floats against the independent reference
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> bits(0, 0xffffffffu);
  std::vector<float> rnd;
  while (rnd.size() < 4096) {
    const float v = bits_to_float(bits(rng));
    if (std::isfinite(v) && std::abs(v) < 3e38f) rnd.push_back(v);
  }
  const auto rb = Tensor::from_vector(rnd, {4096}).to(DType::BFloat16).to(DType::Float32).to_vector<float>();
  for (size_t i = 0; i < rnd.size(); ++i) ASSERT_EQ(float_to_bits(rb[i]), float_to_bits(bf16_reference(rnd[i]))) << rnd[i];
  // the largest float rounds up to infinity, as IEEE nearest-even does
  EXPECT_TRUE(std::isinf(ssm::BFloat16(std::numeric_limits<float>::max()).operator float()));
}

TEST(TensorViews, BFloat16KeepsNaN) {
  // NaNs whose payload lives only in the low 16 bits must not collapse to infinity
  const std::vector<float> nans{std::numeric_limits<float>::quiet_NaN(), bits_to_float(0x7f800001u),
                                bits_to_float(0xff800001u), bits_to_float(0x7fffffffu)};
  const auto back = Tensor::from_vector(nans, {4}).to(DType::BFloat16).to_vector<float>();
  for (float v : back) EXPECT_TRUE(std::isnan(v));
  EXPECT_TRUE(std::isnan(Tensor::from_vector(nans, {4}).to(DType::BFloat16).to(DType::Float64).to_vector<double>()[1]));
}

TEST(TensorViews, Float16Conversions) {
  const std::vector<float> values{1.0f, 65504.0f, 65520.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -25),
                                  3 * std::ldexp(1.0f, -25), std::ldexp(1.0f, -14), 1.0f + std::ldexp(1.0f, -11), -2.0f};
  const auto back = Tensor::from_vector(values, {9}).to(DType::Float16).to_vector<float>();
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 65504.0f);                    // the largest half
  EXPECT_TRUE(std::isinf(back[2]));                // halfway to 2^16 rounds (to even) to infinity
  EXPECT_EQ(back[3], std::ldexp(1.0f, -24));       // smallest subnormal
  EXPECT_EQ(back[4], 0.0f);                        // tie between 0 and 2^-24 -> even (0)
  EXPECT_EQ(back[5], std::ldexp(1.0f, -23));       // tie 1.5 ulp -> 2 ulp
  EXPECT_EQ(back[6], std::ldexp(1.0f, -14));       // smallest normal
  EXPECT_EQ(back[7], 1.0f);                        // tie -> even
  EXPECT_EQ(back[8], -2.0f);
}

// ---------------------------------------------------------------- data access

TEST(TensorViews, ToVectorItemAt) {
  const Tensor base = iota({2, 3});
  const Tensor tr = base.transpose(0, 1);
  EXPECT_EQ(tr.to_vector<double>(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(tr.to_vector<int32_t>(), (std::vector<int32_t>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(tr.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(tr.at({2, 1}), 5.0);
  EXPECT_EQ(base.narrow(1, 1, 2).at({1, 1}), 5.0);
  EXPECT_EQ(base.select(1, 2).at({1}), 5.0);
  EXPECT_EQ(base.narrow(0, 1, 1).narrow(1, 2, 1).item<double>(), 5.0);  // [1, 1] view
  EXPECT_EQ(base.narrow(0, 1, 1).narrow(1, 2, 1).item<int64_t>(), 5);
  EXPECT_EQ(Tensor::full({1, 1, 1}, 4, DType::Int32).item<float>(), 4.0f);
  const Tensor f = Tensor::from_vector(std::vector<float>{0.1f}, {1});
  EXPECT_EQ(f.item<float>(), 0.1f);
  EXPECT_EQ(f.item<double>(), static_cast<double>(0.1f));
  EXPECT_EQ(*f.data<float>(), 0.1f);
  // data<T>() points at element 0 of the view
  const Tensor n = iota({10}, DType::Int64).narrow(0, 3, 4);
  EXPECT_EQ(n.data<int64_t>()[0], 3);
  EXPECT_EQ(n.raw_data(), static_cast<void*>(n.data<int64_t>()));
  const std::string s = base.to_string();
  EXPECT_NE(s.find("float64[2, 3]"), std::string::npos) << s;
}

// ---------------------------------------------------------------- version counter

TEST(TensorViews, VersionCounterCountsInPlaceWrites) {
  const Tensor t = Tensor::empty({3, 4}, DType::Float64);
  const uint64_t v0 = version_of(t);
  t.fill_(1);
  EXPECT_EQ(version_of(t), v0 + 1);
  t.zero_();
  EXPECT_EQ(version_of(t), v0 + 2);
  const Tensor view = t.transpose(0, 1).narrow(0, 1, 2);
  view.copy_(Tensor::ones({2, 3}, DType::Float64));
  EXPECT_EQ(version_of(t), v0 + 3);  // shared storage: the base sees the view's write
  EXPECT_EQ(version_of(view), v0 + 3);
  ssm::op::add_(t, Tensor::scalar(1, DType::Float64));
  EXPECT_EQ(version_of(t), v0 + 4);
  ssm::op::binary_(ssm::BinaryOp::Mul, view, Tensor::scalar(3, DType::Float64));
  EXPECT_EQ(version_of(t), v0 + 5);
  // reads and out-of-place ops do not count
  (void)ssm::op::add(t, t);
  (void)t.to_vector<double>();
  (void)t.contiguous();
  (void)t.reshape({12});
  EXPECT_EQ(version_of(t), v0 + 5);
  // a clone has its own counter
  const Tensor c = t.clone();
  const uint64_t cv = version_of(c);
  t.fill_(0);
  EXPECT_EQ(version_of(c), cv);
  c.fill_(0);
  EXPECT_EQ(version_of(c), cv + 1);
  EXPECT_EQ(version_of(t), v0 + 6);
}

}  // namespace

// ---- guards added after review: bounds of as_strided, overlapping and broadcast in-place writes

TEST(TensorViews, AsStridedOutsideStorageThrows) {
  const Tensor t = Tensor::arange(4, DType::Float32);
  EXPECT_THROW(t.as_strided({100}, {1}, 0), ssm::Error);
  EXPECT_THROW(t.as_strided({2}, {1}, 3), ssm::Error);
  EXPECT_NO_THROW(t.as_strided({2, 2}, {1, 2}, 0));
}

TEST(TensorViews, CopyFromOverlappingViewReadsOldValues) {
  const Tensor t = Tensor::from_vector<float>({0, 1, 2, 3}, {2, 2});
  t.copy_(t.transpose(0, 1));  // a proper transpose, not a half-updated one
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 2, 1, 3}));
  const Tensor u = Tensor::from_vector<float>({1, 2, 3, 4}, {4});
  ssm::op::add_(u.narrow(0, 1, 3), u.narrow(0, 0, 3));  // u[1:] += u[:3] with the old values
  EXPECT_EQ(u.to_vector<float>(), (std::vector<float>{1, 3, 5, 7}));
}

TEST(TensorViews, InPlaceWriteIntoBroadcastViewThrows) {
  const Tensor row = Tensor::zeros({1, 3});
  const Tensor wide = row.expand({4, 3});
  try {
    wide.copy_(Tensor::ones({4, 3}));
    FAIL() << "expected an error";
  } catch (const ssm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("broadcast view"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ssm::op::add_(wide, Tensor::ones({4, 3})), ssm::Error);
}

TEST(TensorViews, FloatToIntConversionSaturates) {
  const Tensor f = Tensor::from_vector<double>({std::nan(""), 1e30, -1e30, -2.7, 2.7}, {5});
  EXPECT_EQ(f.to(DType::Int32).to_vector<int32_t>(),
            (std::vector<int32_t>{0, std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::lowest(), -2, 2}));
}
