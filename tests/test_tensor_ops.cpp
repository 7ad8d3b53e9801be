// Tests for the raw ops of tensor/ops.h and tensor/random.h. Every result is compared against a
// naive reference computed here with plain loops over std::vector<double> (the input tensors' own
// values, read back with to_vector), so the engine's broadcasting, strided kernels, reductions,
// GEMM and index kernels are all checked against code that shares nothing with them.
// Inputs come in several layouts (contiguous, transposed, narrowed, expanded with stride 0), and
// some sizes pass the OpenMP threshold (kParallelGrain = 32768 elements) so the parallel paths run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace {

namespace op = ssm::op;
using ssm::DType;
using ssm::Shape;
using ssm::Tensor;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------- reference machinery

// A reference tensor: a shape and its row-major values in double.
struct Ref {
  Shape shape;
  std::vector<double> v;
};

Ref ref_of(const Tensor& t) { return {t.shape(), t.to_vector<double>()}; }

int64_t count_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + idx[d];
  return flat;
}

// NumPy broadcasting, written independently of ssm::broadcast_shapes.
Shape ref_broadcast_shape(const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i + a.size() >= rank ? a[i + a.size() - rank] : 1;
    const int64_t db = i + b.size() >= rank ? b[i + b.size() - rank] : 1;
    EXPECT_TRUE(da == db || da == 1 || db == 1) << "test bug: incompatible shapes";
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// The element of r that broadcasting maps to position `idx` of a (larger-rank) output.
double broadcast_at(const Ref& r, const std::vector<int64_t>& idx) {
  const size_t lead = idx.size() - r.shape.size();
  int64_t flat = 0;
  for (size_t d = 0; d < r.shape.size(); ++d) flat = flat * r.shape[d] + (r.shape[d] == 1 ? 0 : idx[lead + d]);
  return r.v[static_cast<size_t>(flat)];
}

template <class F>
Ref ref_binary(const Ref& a, const Ref& b, F f) {
  Ref out{ref_broadcast_shape(a.shape, b.shape), {}};
  const int64_t n = count_of(out.shape);
  out.v.resize(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const auto idx = unravel(k, out.shape);
    out.v[k] = f(broadcast_at(a, idx), broadcast_at(b, idx));
  }
  return out;
}

template <class F>
Ref ref_unary(const Ref& x, F f) {
  Ref out{x.shape, x.v};
  for (double& v : out.v) v = f(v);
  return out;
}

bool close(double got, double want, double rtol, double atol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::abs(got - want) <= atol + rtol * std::abs(want);
}

// Compare shape and values; `scale` (optional) gives a per-element magnitude for the tolerance
// (e.g. Σ|terms| of a sum) instead of |want|.
void expect_close(const Tensor& got, const Ref& want, double rtol, double atol = 0,
                  const std::vector<double>* scale = nullptr) {
  ASSERT_EQ(got.shape(), want.shape);
  const auto g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.v.size());
  int failures = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double w = want.v[i];
    bool ok;
    if (scale && std::isfinite(w)) ok = std::abs(g[i] - w) <= atol + rtol * (*scale)[i];
    else ok = close(g[i], w, rtol, atol);
    if (!ok && failures++ < 5)
      ADD_FAILURE() << "element " << i << " of " << ssm::shape_str(want.shape) << ": got " << g[i] << ", want " << w;
  }
  EXPECT_EQ(failures, 0);
}

void expect_exact(const Tensor& got, const Ref& want) { expect_close(got, want, 0, 0); }

// Tight tolerance for a dtype: float64 ~1e-12 relative, float32 ~1e-5 relative, integers exact.
double rtol_for(DType dt) {
  switch (dt) {
    case DType::Float64: return 1e-12;
    case DType::Float32: return 1e-5;
    default: return 0;
  }
}

// ---------------------------------------------------------------- inputs

// Random values in [lo, hi) (or multiples of 0.25 there when `quarters`, so comparisons see ties),
// converted to dtype.
Tensor random_tensor(const Shape& shape, DType dt, std::mt19937_64& rng, double lo = -2, double hi = 2,
                     bool quarters = false) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(count_of(shape)));
  for (double& x : v) {
    x = dist(rng);
    if (quarters || ssm::is_integer(dt)) x = std::round(x * (ssm::is_integer(dt) ? 1 : 4)) / (ssm::is_integer(dt) ? 1 : 4);
  }
  return Tensor::from_vector(v, shape).to(dt);
}

enum class Layout { Contiguous, Transposed, Narrowed, Expanded };
const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous: return "contiguous";
    case Layout::Transposed: return "transposed";
    case Layout::Narrowed: return "narrowed";
    case Layout::Expanded: return "expanded";
  }
  return "?";
}

// A tensor of `shape` laid out as asked (a view into a larger/differently shaped base).
Tensor make_input(const Shape& shape, Layout layout, DType dt, std::mt19937_64& rng, double lo = -2, double hi = 2,
                  bool quarters = false) {
  const size_t rank = shape.size();
  if (layout == Layout::Transposed && rank >= 2) {
    Shape base_shape = shape;
    std::swap(base_shape[rank - 1], base_shape[rank - 2]);
    Tensor t = random_tensor(base_shape, dt, rng, lo, hi, quarters).transpose(-1, -2);
    EXPECT_EQ(t.shape(), shape);
    return t;
  }
  if ((layout == Layout::Narrowed || layout == Layout::Transposed) && rank >= 1) {
    Shape base_shape = shape;
    for (int64_t& d : base_shape) d += 2;
    Tensor t = random_tensor(base_shape, dt, rng, lo, hi, quarters);
    for (size_t d = 0; d < rank; ++d) t = t.narrow(static_cast<int64_t>(d), 1, shape[d]);
    return t;
  }
  if (layout == Layout::Expanded && rank >= 1 && shape[0] != 1) {
    Shape base_shape = shape;
    base_shape[0] = 1;
    return random_tensor(base_shape, dt, rng, lo, hi, quarters).expand(shape);
  }
  return random_tensor(shape, dt, rng, lo, hi, quarters);
}

// ---------------------------------------------------------------- binary ops

struct BinaryCase {
  const char* name;
  Tensor (*fn)(const Tensor&, const Tensor&);
  double (*ref)(double, double);
  bool ties;      // use quarter-valued inputs so equal pairs occur
  bool integer;   // also run on int32/int64
};

double ref_max(double a, double b) { return (std::isnan(a) || a > b) ? a : b; }
double ref_min(double a, double b) { return (std::isnan(a) || a < b) ? a : b; }

const std::vector<BinaryCase>& binary_cases() {
  static const std::vector<BinaryCase> cases{
      {"add", op::add, [](double a, double b) { return a + b; }, false, true},
      {"sub", op::sub, [](double a, double b) { return a - b; }, false, true},
      {"mul", op::mul, [](double a, double b) { return a * b; }, false, true},
      {"div", op::div, [](double a, double b) { return a / b; }, false, false},
      {"maximum", op::maximum, ref_max, true, true},
      {"minimum", op::minimum, ref_min, true, true},
      {"eq", op::eq, [](double a, double b) { return a == b ? 1.0 : 0.0; }, true, true},
      {"ne", op::ne, [](double a, double b) { return a != b ? 1.0 : 0.0; }, true, true},
      {"lt", op::lt, [](double a, double b) { return a < b ? 1.0 : 0.0; }, true, true},
      {"le", op::le, [](double a, double b) { return a <= b ? 1.0 : 0.0; }, true, true},
      {"gt", op::gt, [](double a, double b) { return a > b ? 1.0 : 0.0; }, true, true},
      {"ge", op::ge, [](double a, double b) { return a >= b ? 1.0 : 0.0; }, true, true},
  };
  return cases;
}

const std::vector<std::pair<Shape, Shape>>& broadcast_pairs() {
  static const std::vector<std::pair<Shape, Shape>> pairs{
      {{2, 1, 4}, {3, 1}}, {{3, 4}, {4}},     {{4}, {3, 4}},       {{3, 4}, {}},     {{}, {}},
      {{}, {2, 3}},        {{1}, {5, 1, 1}},  {{2, 3, 4}, {2, 3, 4}}, {{4, 1}, {1, 5}}, {{0, 3}, {3}},
      {{2, 1, 1, 3}, {1, 4, 1}}, {{3, 1}, {3, 1}}};
  return pairs;
}

const std::vector<std::pair<Layout, Layout>> kLayoutPairs{{Layout::Contiguous, Layout::Contiguous},
                                                          {Layout::Transposed, Layout::Narrowed},
                                                          {Layout::Narrowed, Layout::Expanded},
                                                          {Layout::Expanded, Layout::Transposed}};

TEST(TensorOps, BinaryOpsBroadcastOnEveryLayoutAndDtype) {
  std::mt19937_64 rng(1);
  for (const auto& c : binary_cases()) {
    for (DType dt : {DType::Float64, DType::Float32, DType::Int32, DType::Int64}) {
      if (ssm::is_integer(dt) && !c.integer) continue;
      for (const auto& [sa, sb] : broadcast_pairs()) {
        for (const auto& [la, lb] : kLayoutPairs) {
          SCOPED_TRACE(std::string(c.name) + " " + ssm::dtype_name(dt) + " " + ssm::shape_str(sa) + " " +
                       layout_name(la) + " with " + ssm::shape_str(sb) + " " + layout_name(lb));
          const Tensor a = make_input(sa, la, dt, rng, -2, 2, c.ties);
          const Tensor b = make_input(sb, lb, dt, rng, -2, 2, c.ties);
          const Tensor out = c.fn(a, b);
          EXPECT_EQ(out.dtype(), dt);  // comparisons too: 0/1 in the inputs' dtype
          EXPECT_TRUE(out.is_contiguous());
          expect_close(out, ref_binary(ref_of(a), ref_of(b), c.ref), rtol_for(dt) * 0.1);
        }
      }
    }
  }
}

TEST(TensorOps, DivisionByZeroFollowsIeee) {
  const Tensor a = Tensor::from_vector(std::vector<double>{1, -1, 0, 2}, {4});
  const Tensor b = Tensor::from_vector(std::vector<double>{0, 0, 0, -0.0}, {4});
  const auto q = op::div(a, b).to_vector<double>();
  EXPECT_EQ(q[0], kInf);
  EXPECT_EQ(q[1], -kInf);
  EXPECT_TRUE(std::isnan(q[2]));
  EXPECT_EQ(q[3], -kInf);
}

TEST(TensorOps, MaximumMinimumPropagateNaN) {
  const Tensor a = Tensor::from_vector(std::vector<double>{kNaN, 1, kNaN, 2}, {4});
  const Tensor b = Tensor::from_vector(std::vector<double>{1, kNaN, kNaN, 3}, {4});
  for (const Tensor& r : {op::maximum(a, b), op::minimum(a, b)}) {
    const auto v = r.to_vector<double>();
    EXPECT_TRUE(std::isnan(v[0]) && std::isnan(v[1]) && std::isnan(v[2]));
  }
  EXPECT_EQ(op::maximum(a, b).to_vector<double>()[3], 3.0);
  EXPECT_EQ(op::minimum(a, b).to_vector<double>()[3], 2.0);
  // comparisons with NaN are false except ne
  EXPECT_EQ(op::eq(a, a).to_vector<double>(), (std::vector<double>{0, 1, 0, 1}));
  EXPECT_EQ(op::ne(a, a).to_vector<double>(), (std::vector<double>{1, 0, 1, 0}));
  EXPECT_EQ(op::lt(a, b).to_vector<double>(), (std::vector<double>{0, 0, 0, 1}));
}

TEST(TensorOps, PowBinary) {
  std::mt19937_64 rng(2);
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (const auto& [sa, sb] : broadcast_pairs()) {
      for (const auto& [la, lb] : kLayoutPairs) {
        SCOPED_TRACE(std::string(ssm::dtype_name(dt)) + " " + ssm::shape_str(sa) + " ^ " + ssm::shape_str(sb));
        const Tensor a = make_input(sa, la, dt, rng, 0.1, 3);
        const Tensor b = make_input(sb, lb, dt, rng, -2.5, 2.5);
        expect_close(op::pow(a, b), ref_binary(ref_of(a), ref_of(b), [](double x, double y) { return std::pow(x, y); }),
                     rtol_for(dt));
      }
    }
  }
  // negative bases with integral exponents, and integer tensors (non-negative exponents)
  const Tensor nb = Tensor::from_vector(std::vector<double>{-2, -3, -0.5, 4}, {4});
  const Tensor ne = Tensor::from_vector(std::vector<double>{2, 3, -2, 0.5}, {4});
  expect_close(op::pow(nb, ne), Ref{{4}, {4, -27, 4, 2}}, 1e-15);
  const Tensor ib = Tensor::from_vector(std::vector<int64_t>{-2, 3, 0, 5, 7}, {5});
  const Tensor ie = Tensor::from_vector(std::vector<int64_t>{3, 2, 0, 1, 0}, {5});
  EXPECT_EQ(op::pow(ib, ie).to_vector<int64_t>(), (std::vector<int64_t>{-8, 9, 1, 5, 1}));
}

TEST(TensorOps, BinaryDispatcherAndScalarForms) {
  std::mt19937_64 rng(3);
  const Tensor a = make_input({3, 4}, Layout::Transposed, DType::Float64, rng);
  const Tensor b = make_input({4}, Layout::Narrowed, DType::Float64, rng);
  expect_exact(op::binary(ssm::BinaryOp::Sub, a, b), ref_binary(ref_of(a), ref_of(b), std::minus<double>()));
  expect_exact(op::add(a, 2.5), ref_unary(ref_of(a), [](double x) { return x + 2.5; }));
  expect_exact(op::mul(a, -3.0), ref_unary(ref_of(a), [](double x) { return x * -3.0; }));
  const Tensor f = make_input({5}, Layout::Contiguous, DType::Float32, rng);
  expect_close(op::mul(f, 0.1), ref_unary(ref_of(f), [](double x) { return x * static_cast<double>(0.1f); }), 1e-7);
  // the scalar is converted to the tensor's dtype: 2.5 becomes 2 for an int tensor
  const Tensor i = Tensor::from_vector(std::vector<int64_t>{1, -4, 7}, {3});
  EXPECT_EQ(op::add(i, 2.5).to_vector<int64_t>(), (std::vector<int64_t>{3, -2, 9}));
  EXPECT_EQ(op::mul(i, -2).to_vector<int64_t>(), (std::vector<int64_t>{-2, 8, -14}));
  const Tensor s = op::scalar_like(f, 1.5);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.dtype(), DType::Float32);
  EXPECT_EQ(s.item<float>(), 1.5f);
  const Tensor z = op::zeros_like(a), o = op::ones_like(i);
  EXPECT_EQ(z.shape(), a.shape());
  EXPECT_EQ(z.dtype(), DType::Float64);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(z.to_vector<double>(), std::vector<double>(12, 0.0));
  EXPECT_EQ(o.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 1}));
}

TEST(TensorOps, InPlaceBinaryWritesThroughViews) {
  std::mt19937_64 rng(4);
  for (DType dt : {DType::Float64, DType::Float32, DType::Int64}) {
    SCOPED_TRACE(ssm::dtype_name(dt));
    const Tensor base = random_tensor({5, 6}, dt, rng);
    const Tensor before = base.clone();
    const Tensor view = base.transpose(0, 1).narrow(0, 1, 4).narrow(1, 1, 3);  // [4, 3] of base[1..3][1..4]
    const Tensor b = make_input({3}, Layout::Narrowed, dt, rng);
    const Ref want = ref_binary(ref_of(view), ref_of(b), std::plus<double>());
    op::add_(view, b);
    expect_close(view, want, rtol_for(dt) * 0.1);
    // elements outside the view are untouched
    const auto got = base.to_vector<double>(), old = before.to_vector<double>();
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 6; ++j)
        if (!(i >= 1 && i <= 3 && j >= 1 && j <= 4)) {
          EXPECT_EQ(got[i * 6 + j], old[i * 6 + j]) << i << "," << j;
        }
    // other kinds through the dispatcher, with a broadcast column
    const Tensor c = make_input({4, 1}, Layout::Contiguous, dt, rng);
    const Ref want2 = ref_binary(ref_of(view), ref_of(c), [](double x, double y) { return x * y; });
    op::binary_(ssm::BinaryOp::Mul, view, c);
    expect_close(view, want2, rtol_for(dt) * 0.1);
    const Tensor d = make_input({4, 3}, Layout::Transposed, dt, rng);
    const Ref want3 = ref_binary(ref_of(view), ref_of(d), ref_max);
    op::binary_(ssm::BinaryOp::Maximum, view, d);
    expect_exact(view, want3);
  }
}

// ---------------------------------------------------------------- unary ops

struct UnaryCase {
  const char* name;
  Tensor (*fn)(const Tensor&);
  double (*ref)(double);
  double lo, hi;
};

double ref_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double ref_softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
double ref_sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }

const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases{
      {"neg", op::neg, [](double x) { return -x; }, -5, 5},
      {"exp", op::exp, [](double x) { return std::exp(x); }, -8, 8},
      {"log", op::log, [](double x) { return std::log(x); }, 0.01, 20},
      {"log1p", op::log1p, [](double x) { return std::log1p(x); }, -0.99, 5},
      {"expm1", op::expm1, [](double x) { return std::expm1(x); }, -3, 3},
      {"sqrt", op::sqrt, [](double x) { return std::sqrt(x); }, 0, 20},
      {"rsqrt", op::rsqrt, [](double x) { return 1.0 / std::sqrt(x); }, 0.01, 20},
      {"tanh", op::tanh, [](double x) { return std::tanh(x); }, -6, 6},
      {"sigmoid", op::sigmoid, ref_sigmoid, -30, 30},
      {"silu", op::silu, [](double x) { return x * ref_sigmoid(x); }, -30, 30},
      {"softplus", op::softplus, ref_softplus, -30, 30},
      {"sin", op::sin, [](double x) { return std::sin(x); }, -6, 6},
      {"cos", op::cos, [](double x) { return std::cos(x); }, -6, 6},
      {"abs", op::abs, [](double x) { return std::abs(x); }, -5, 5},
      {"sign", op::sign, ref_sign, -5, 5},
      {"square", op::square, [](double x) { return x * x; }, -5, 5},
      {"reciprocal", op::reciprocal, [](double x) { return 1.0 / x; }, -4, 4},
      {"relu", op::relu, [](double x) { return x > 0 ? x : 0.0; }, -5, 5},
  };
  return cases;
}

TEST(TensorOps, UnaryMathMatchesStdFunctions) {
  std::mt19937_64 rng(5);
  for (const auto& c : unary_cases()) {
    for (DType dt : {DType::Float64, DType::Float32}) {
      for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::Narrowed, Layout::Expanded}) {
        SCOPED_TRACE(std::string(c.name) + " " + ssm::dtype_name(dt) + " " + layout_name(l));
        const Tensor x = make_input({7, 9}, l, dt, rng, c.lo, c.hi);
        const Tensor y = c.fn(x);
        EXPECT_EQ(y.dtype(), dt);
        expect_close(y, ref_unary(ref_of(x), c.ref), rtol_for(dt), 0);
        // rank 0 too
        const Tensor s = Tensor::scalar(0.5 * (c.lo + c.hi) + 0.25, dt);
        expect_close(c.fn(s), ref_unary(ref_of(s), c.ref), rtol_for(dt));
      }
    }
  }
}

TEST(TensorOps, UnaryAtExtremeInputsStaysFinite) {
  const std::vector<double> xs{-1000, -100, -30, -1e-8, 0, 1e-8, 30, 100, 1000};
  for (DType dt : {DType::Float64, DType::Float32}) {
    SCOPED_TRACE(ssm::dtype_name(dt));
    const Tensor x = Tensor::from_vector(xs, {9}).to(dt);
    // float32 results below ~1e-38 are subnormal: compare those absolutely
    const double atol = dt == DType::Float32 ? 1e-37 : 0;
    for (auto [fn, ref] : std::vector<std::pair<Tensor (*)(const Tensor&), double (*)(double)>>{
             {op::sigmoid, ref_sigmoid},
             {op::softplus, ref_softplus},
             {op::silu, [](double v) { return v * ref_sigmoid(v); }},
             {op::tanh, [](double v) { return std::tanh(v); }}}) {
      const Tensor y = fn(x);
      for (double v : y.to_vector<double>()) EXPECT_TRUE(std::isfinite(v)) << v;
      expect_close(y, ref_unary(ref_of(x), ref), rtol_for(dt), atol);
    }
    const auto sg = op::sigmoid(x).to_vector<double>();
    EXPECT_EQ(sg[0], 0.0);
    EXPECT_EQ(sg[8], 1.0);
    EXPECT_EQ(sg[4], 0.5);
    const auto sp = op::softplus(x).to_vector<double>();
    EXPECT_EQ(sp[8], 1000.0);
    EXPECT_EQ(sp[7], 100.0);
    EXPECT_GE(sp[1], 0.0);
    EXPECT_LT(sp[1], 1e-40);  // softplus(-100) = e^-100 ≈ 3.7e-44
    EXPECT_EQ(sp[0], 0.0);
    EXPECT_NEAR(sp[4], std::log(2.0), 1e-7);
  }
  // IEEE edge values pass through as std:: would give them
  const Tensor e = Tensor::from_vector(std::vector<double>{0, -1, kInf, -kInf}, {4});
  expect_close(op::log(e), Ref{{4}, {-kInf, kNaN, kInf, kNaN}}, 0);
  expect_close(op::sqrt(e), Ref{{4}, {0, kNaN, kInf, kNaN}}, 0);
  expect_close(op::exp(e), Ref{{4}, {1, std::exp(-1.0), kInf, 0}}, 0);
  expect_close(op::sigmoid(e), Ref{{4}, {0.5, ref_sigmoid(-1), 1, 0}}, 1e-15);
  expect_close(op::softplus(e.narrow(0, 0, 2)), Ref{{2}, {std::log(2.0), std::log1p(std::exp(-1.0))}}, 1e-15);
}

TEST(TensorOps, ClampAndScalarPow) {
  std::mt19937_64 rng(6);
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (Layout l : {Layout::Contiguous, Layout::Transposed}) {
      SCOPED_TRACE(std::string(ssm::dtype_name(dt)) + " " + layout_name(l));
      const Tensor x = make_input({6, 5}, l, dt, rng, -2, 2);
      expect_exact(op::clamp(x, -0.5, 0.75), ref_unary(ref_of(x), [](double v) { return std::min(std::max(v, -0.5), 0.75); }));
      expect_exact(op::unary(ssm::UnaryOp::Clamp, x, -1, 1),
                   ref_unary(ref_of(x), [](double v) { return std::min(std::max(v, -1.0), 1.0); }));
      const Tensor p = make_input({6, 5}, l, dt, rng, 0.1, 3);
      for (double e : {2.0, 3.0, 0.5, -1.5, 2.5, 0.0}) {
        SCOPED_TRACE(e);
        expect_close(op::pow(p, e), ref_unary(ref_of(p), [e](double v) { return std::pow(v, e); }), rtol_for(dt));
      }
      // negative bases with integral exponents
      expect_close(op::pow(x, 2.0), ref_unary(ref_of(x), [](double v) { return v * v; }), rtol_for(dt));
      expect_close(op::pow(x, 3.0), ref_unary(ref_of(x), [](double v) { return v * v * v; }), rtol_for(dt));
    }
  }
  // clamp with equal bounds
  EXPECT_EQ(op::clamp(Tensor::from_vector(std::vector<double>{-1, 5}, {2}), 2, 2).to_vector<double>(),
            (std::vector<double>{2, 2}));
}

TEST(TensorOps, IntegerUnaryOps) {
  std::mt19937_64 rng(7);
  for (DType dt : {DType::Int32, DType::Int64}) {
    SCOPED_TRACE(ssm::dtype_name(dt));
    const Tensor x = make_input({5, 6}, Layout::Transposed, dt, rng, -50, 50);
    const Ref rx = ref_of(x);
    expect_exact(op::neg(x), ref_unary(rx, [](double v) { return -v; }));
    expect_exact(op::abs(x), ref_unary(rx, [](double v) { return std::abs(v); }));
    expect_exact(op::sign(x), ref_unary(rx, ref_sign));
    expect_exact(op::square(x), ref_unary(rx, [](double v) { return v * v; }));
    expect_exact(op::relu(x), ref_unary(rx, [](double v) { return std::max(v, 0.0); }));
    expect_exact(op::clamp(x, -10, 20), ref_unary(rx, [](double v) { return std::min(std::max(v, -10.0), 20.0); }));
    EXPECT_EQ(op::neg(x).dtype(), dt);
  }
}

// ---------------------------------------------------------------- where / masked_fill

TEST(TensorOps, WhereBroadcastsAllThree) {
  std::mt19937_64 rng(8);
  struct Case { Shape c, a, b; };
  for (const Case& s : std::vector<Case>{{{3, 4}, {3, 4}, {3, 4}}, {{3, 1}, {1, 4}, {}}, {{4}, {2, 3, 1}, {3, 4}},
                                         {{}, {2, 2}, {2}}, {{2, 1, 4}, {3, 1}, {1}}}) {
    for (DType cdt : {DType::Float64, DType::Int32, DType::Float32}) {
      for (const auto& [la, lb] : kLayoutPairs) {
        SCOPED_TRACE(ssm::shape_str(s.c) + ssm::shape_str(s.a) + ssm::shape_str(s.b) + ssm::dtype_name(cdt) +
                     layout_name(la) + layout_name(lb));
        // cond values in {-1, 0, 1} (any non-zero picks a)
        const Tensor cond = make_input(s.c, lb, cdt, rng, -1.4, 1.4, false);
        const Tensor cq = ssm::is_integer(cdt) ? cond : op::unary(ssm::UnaryOp::Sign, cond);
        const Tensor a = make_input(s.a, la, DType::Float64, rng);
        const Tensor b = make_input(s.b, lb, DType::Float64, rng);
        const Tensor out = op::where(cq, a, b);
        const Ref rc = ref_of(cq), ra = ref_of(a), rb = ref_of(b);
        Ref want{ref_broadcast_shape(ref_broadcast_shape(rc.shape, ra.shape), rb.shape), {}};
        for (int64_t k = 0; k < count_of(want.shape); ++k) {
          const auto idx = unravel(k, want.shape);
          want.v.push_back(broadcast_at(rc, idx) != 0 ? broadcast_at(ra, idx) : broadcast_at(rb, idx));
        }
        expect_exact(out, want);
      }
    }
  }
}

TEST(TensorOps, MaskedFill) {
  std::mt19937_64 rng(9);
  for (DType dt : {DType::Float64, DType::Float32, DType::Int64}) {
    SCOPED_TRACE(ssm::dtype_name(dt));
    const Tensor x = make_input({3, 4}, Layout::Transposed, dt, rng, -9, 9);
    const Tensor mask_row = Tensor::from_vector(std::vector<int32_t>{1, 0, 0, 2}, {4});
    const Tensor mask_col = Tensor::from_vector(std::vector<double>{0, 1, 0}, {3, 1});
    const Ref rx = ref_of(x);
    Ref want_row = rx, want_col = rx;
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        if (j == 0 || j == 3) want_row.v[i * 4 + j] = -7;
        if (i == 1) want_col.v[i * 4 + j] = 5;
      }
    expect_exact(op::masked_fill(x, mask_row, -7), want_row);
    expect_exact(op::masked_fill(x, mask_col, 5), want_col);
    EXPECT_EQ(op::masked_fill(x, mask_col, 5).dtype(), dt);
  }
  // -inf fill, the attention-mask use
  const Tensor s = Tensor::zeros({2, 2});
  const Tensor causal = Tensor::from_vector(std::vector<float>{0, 1, 0, 0}, {2, 2});
  const auto v = op::masked_fill(s, causal, -kInf).to_vector<float>();
  EXPECT_EQ(v[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[0], 0.0f);
}

// ---------------------------------------------------------------- reductions

enum class Red { Sum, Mean, Max, Min, LogSumExp, Norm };
const char* red_name(Red r) {
  static const char* names[] = {"sum", "mean", "max", "min", "logsumexp", "norm"};
  return names[static_cast<int>(r)];
}

Tensor run_reduction(Red r, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  switch (r) {
    case Red::Sum: return op::sum(x, dims, keepdim);
    case Red::Mean: return op::mean(x, dims, keepdim);
    case Red::Max: return op::max(x, dims, keepdim);
    case Red::Min: return op::min(x, dims, keepdim);
    case Red::LogSumExp: return op::logsumexp(x, dims, keepdim);
    case Red::Norm: return op::norm(x, dims, keepdim);
  }
  return {};
}

// Reference reduction; `scale` receives a magnitude per output for the tolerance (Σ|x| for sums).
Ref ref_reduce(Red r, const Ref& x, std::vector<int64_t> dims, bool keepdim, std::vector<double>* scale) {
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (dims.empty())
    for (int64_t d = 0; d < rank; ++d) dims.push_back(d);
  std::vector<bool> reduced(rank, false);
  for (int64_t d : dims) reduced[d < 0 ? d + rank : d] = true;
  Shape keep_shape = x.shape;
  for (int64_t d = 0; d < rank; ++d)
    if (reduced[d]) keep_shape[d] = 1;
  // walk x in row-major order with an odometer, tracking the flat index of its group
  std::vector<int64_t> group_stride(rank, 0);
  for (int64_t d = rank - 1, run = 1; d >= 0; --d) {
    if (!reduced[d]) group_stride[d] = run;
    run *= keep_shape[d];
  }
  std::vector<std::vector<double>> groups(static_cast<size_t>(count_of(keep_shape)));
  std::vector<int64_t> idx(rank, 0);
  int64_t g = 0;
  for (int64_t k = 0; k < count_of(x.shape); ++k) {
    groups[g].push_back(x.v[k]);
    for (int64_t d = rank - 1; d >= 0; --d) {
      g += group_stride[d];
      if (++idx[d] < x.shape[d]) break;
      g -= group_stride[d] * x.shape[d];
      idx[d] = 0;
    }
  }
  Ref out;
  if (keepdim) out.shape = keep_shape;
  else
    for (int64_t d = 0; d < rank; ++d)
      if (!reduced[d]) out.shape.push_back(x.shape[d]);
  if (scale) scale->clear();
  for (const auto& g : groups) {
    double sum = 0, abs_sum = 0, sq = 0, mx = -kInf, mn = kInf;
    bool nan = false;
    for (double v : g) {
      sum += v;
      abs_sum += std::abs(v);
      sq += v * v;
      if (std::isnan(v)) nan = true;
      mx = std::max(mx, v);
      mn = std::min(mn, v);
    }
    const double n = static_cast<double>(g.size());
    double value = 0, mag = 0;
    switch (r) {
      case Red::Sum: value = sum; mag = abs_sum; break;
      case Red::Mean: value = sum / n; mag = abs_sum / n; break;
      case Red::Max: value = nan ? kNaN : mx; mag = std::abs(value); break;
      case Red::Min: value = nan ? kNaN : mn; mag = std::abs(value); break;
      case Red::Norm: value = std::sqrt(sq); mag = value; break;
      case Red::LogSumExp: {
        if (nan) { value = kNaN; break; }
        if (mx == -kInf || mx == kInf) { value = mx; break; }
        double s = 0;
        for (double v : g) s += std::exp(v - mx);
        value = mx + std::log(s);
        mag = std::max(std::abs(mx), std::abs(std::log(s)));
        break;
      }
    }
    out.v.push_back(value);
    if (scale) scale->push_back(mag);
  }
  return out;
}

void check_reduction(Red r, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, double rtol) {
  SCOPED_TRACE(std::string(red_name(r)) + " dims {" +
               std::accumulate(dims.begin(), dims.end(), std::string(),
                               [](std::string s, int64_t d) { return s + std::to_string(d) + ","; }) +
               "} keepdim " + (keepdim ? "true" : "false") + " of " + x.describe());
  std::vector<double> scale;
  const Ref want = ref_reduce(r, ref_of(x), dims, keepdim, &scale);
  const Tensor got = run_reduction(r, x, dims, keepdim);
  EXPECT_EQ(got.dtype(), x.dtype());
  expect_close(got, want, rtol, 0, &scale);
}

const std::vector<std::vector<int64_t>> kDimSets{{}, {0}, {1}, {2}, {-1}, {0, 2}, {2, 0}, {1, 2}, {0, 1}, {0, 1, 2}, {-3, -2}};

TEST(TensorOps, ReductionsOverDimSetsAndLayouts) {
  std::mt19937_64 rng(10);
  for (DType dt : {DType::Float64, DType::Float32}) {
    // the same [3, 4, 5] shape laid out three ways
    const Tensor contiguous = random_tensor({3, 4, 5}, dt, rng);
    const Tensor permuted = random_tensor({5, 3, 4}, dt, rng).permute({1, 2, 0});
    const Tensor narrowed = make_input({3, 4, 5}, Layout::Narrowed, dt, rng);
    for (const Tensor& x : {contiguous, permuted, narrowed})
      for (Red r : {Red::Sum, Red::Mean, Red::Max, Red::Min, Red::LogSumExp, Red::Norm})
        for (const auto& dims : kDimSets)
          for (bool keepdim : {false, true}) check_reduction(r, x, dims, keepdim, rtol_for(dt));
  }
}

TEST(TensorOps, IntegerReductionsAreExact) {
  std::mt19937_64 rng(11);
  for (DType dt : {DType::Int32, DType::Int64}) {
    const Tensor x = make_input({3, 4, 5}, Layout::Transposed, dt, rng, -1000, 1000);
    for (Red r : {Red::Sum, Red::Max, Red::Min})
      for (const auto& dims : kDimSets)
        for (bool keepdim : {false, true}) check_reduction(r, x, dims, keepdim, 0);
  }
}

TEST(TensorOps, LargeReductionsBothLoopOrdersParallel) {
  // [600, 70] = 42000 elements > kParallelGrain. Reducing dim 1 of the contiguous tensor is the row
  // mode; reducing dim 0 keeps the innermost dim, the column mode. The transposed tensor swaps them.
  // (keepdim and the dim-list handling are covered on small tensors above; here the kernels.)
  std::mt19937_64 rng(12);
  for (DType dt : {DType::Float64, DType::Float32, DType::Int64}) {
    const Tensor x = random_tensor({600, 70}, dt, rng, -100, 100);
    const Tensor xt = random_tensor({600, 70}, dt, rng, -100, 100).transpose(0, 1);  // [70, 600]
    std::vector<Red> reds{Red::Sum, Red::Max, Red::Min};
    if (dt == DType::Float64) reds = {Red::Sum, Red::Mean, Red::Max, Red::Min, Red::LogSumExp, Red::Norm};
    if (dt == DType::Float32) reds = {Red::Sum, Red::Max, Red::LogSumExp};
    for (const Tensor& t : {x, xt})
      for (Red r : reds)
        for (const auto& dims : std::vector<std::vector<int64_t>>{{0}, {1}, {}}) check_reduction(r, t, dims, false, rtol_for(dt));
    check_reduction(Red::Sum, x, {0}, true, rtol_for(dt));
    // three dims, 42000 elements: reduced sets that collapse and sets that do not
    const Tensor x3 = random_tensor({40, 30, 35}, dt, rng, -100, 100);
    for (const auto& dims : std::vector<std::vector<int64_t>>{{0, 2}, {1, 2}, {0, 1}, {1}})
      check_reduction(Red::Sum, x3, dims, false, rtol_for(dt));
  }
}

TEST(TensorOps, MaxMinNaNWinsInBothLoopOrders) {
  std::vector<double> v(4 * 50, 1.0);
  v[2 * 50 + 7] = kNaN;  // row 2, column 7
  const Tensor x = Tensor::from_vector(v, {4, 50});
  for (Red r : {Red::Max, Red::Min}) {
    const auto rows = run_reduction(r, x, {1}, false).to_vector<double>();  // row mode
    const auto cols = run_reduction(r, x, {0}, false).to_vector<double>();  // column mode
    for (int i = 0; i < 4; ++i) EXPECT_EQ(std::isnan(rows[i]), i == 2);
    for (int j = 0; j < 50; ++j) EXPECT_EQ(std::isnan(cols[j]), j == 7);
  }
}

TEST(TensorOps, LogSumExpWithInfiniteAndHugeValues) {
  for (DType dt : {DType::Float64, DType::Float32}) {
    SCOPED_TRACE(ssm::dtype_name(dt));
    const Tensor x = Tensor::from_vector(std::vector<double>{-kInf, -kInf, -kInf,   //
                                                             1000, 1000, 1000,      //
                                                             1000, -1000, 0,        //
                                                             -kInf, 0, -kInf,       //
                                                             -1000, -1000, -1001},
                                         {5, 3})
                         .to(dt);
    const auto rows = op::logsumexp(x, {1}).to_vector<double>();
    EXPECT_EQ(rows[0], -kInf);
    EXPECT_NEAR(rows[1], 1000 + std::log(3.0), 1000 * rtol_for(dt));
    EXPECT_EQ(rows[2], 1000.0);
    EXPECT_EQ(rows[3], 0.0);
    EXPECT_NEAR(rows[4], -1000 + std::log(2 + std::exp(-1.0)), 1000 * rtol_for(dt));
    for (bool keepdim : {false, true}) {
      check_reduction(Red::LogSumExp, x, {1}, keepdim, rtol_for(dt));
      check_reduction(Red::LogSumExp, x, {0}, keepdim, rtol_for(dt));
      check_reduction(Red::LogSumExp, x.transpose(0, 1), {0}, keepdim, rtol_for(dt));
      check_reduction(Red::LogSumExp, x, {}, keepdim, rtol_for(dt));
    }
    for (double v : op::logsumexp(x, {0}).to_vector<double>()) EXPECT_TRUE(std::isfinite(v));
    // +inf anywhere makes the result +inf (not NaN from inf - inf); NaN stays NaN
    const Tensor y = Tensor::from_vector(std::vector<double>{kInf, 0, -kInf, kInf, kInf, kInf, kNaN, 1}, {4, 2}).to(dt);
    const auto r = op::logsumexp(y, {1}).to_vector<double>();
    EXPECT_EQ(r[0], kInf);
    EXPECT_EQ(r[1], kInf);
    EXPECT_EQ(r[2], kInf);
    EXPECT_TRUE(std::isnan(r[3]));
    check_reduction(Red::LogSumExp, y, {0}, false, rtol_for(dt));
  }
}

TEST(TensorOps, ReductionsOfEdgeShapes) {
  // rank 0: every reduction is the identity (logsumexp/norm of one element)
  const Tensor s = Tensor::scalar(-2.5, DType::Float64);
  EXPECT_EQ(op::sum(s).item<double>(), -2.5);
  EXPECT_EQ(op::max(s).dim(), 0);
  EXPECT_EQ(op::logsumexp(s).item<double>(), -2.5);
  EXPECT_EQ(op::norm(s).item<double>(), 2.5);
  // summing an empty dimension gives zeros
  const Tensor e = Tensor::zeros({0, 3}, DType::Float64);
  const Tensor se = op::sum(e, {0});
  EXPECT_EQ(se.shape(), (Shape{3}));
  EXPECT_EQ(se.to_vector<double>(), std::vector<double>(3, 0.0));
  EXPECT_EQ(op::sum(e).item<double>(), 0.0);
  EXPECT_EQ(op::sum(e, {1}).shape(), (Shape{0}));
  // keepdim over all dims keeps the rank
  EXPECT_EQ(op::sum(Tensor::ones({2, 3, 4}), {}, true).shape(), (Shape{1, 1, 1}));
  // reducing a broadcast (stride-0) view
  const Tensor b = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}).expand({4, 3});
  EXPECT_EQ(op::sum(b, {0}).to_vector<double>(), (std::vector<double>{4, 8, 12}));
  EXPECT_EQ(op::sum(b, {1}).to_vector<double>(), (std::vector<double>{6, 6, 6, 6}));
  // reduce() dispatcher
  EXPECT_EQ(op::reduce(ssm::ReduceOp::Max, b, {1}, true).to_vector<double>(), (std::vector<double>{3, 3, 3, 3}));
  // float32 sums of long rows accumulate in double
  const Tensor many = Tensor::full({100000}, 0.1, DType::Float32);
  EXPECT_NEAR(op::sum(many).item<double>(), 100000 * static_cast<double>(0.1f), 1e-2);
}

TEST(TensorOps, SumToIsTheAdjointOfBroadcast) {
  std::mt19937_64 rng(13);
  for (DType dt : {DType::Float64, DType::Float32}) {
    const Tensor x = make_input({2, 3, 4}, Layout::Transposed, dt, rng);
    const Ref rx = ref_of(x);
    for (const Shape& target : std::vector<Shape>{{3, 1}, {4}, {1, 1, 4}, {}, {2, 3, 4}, {1, 3, 4}, {2, 1, 1}, {1}}) {
      SCOPED_TRACE(ssm::shape_str(target));
      Ref want{target, std::vector<double>(static_cast<size_t>(count_of(target)), 0.0)};
      std::vector<double> scale(want.v.size(), 0.0);
      for (int64_t k = 0; k < count_of(rx.shape); ++k) {
        const auto idx = unravel(k, rx.shape);
        int64_t flat = 0;
        const size_t lead = idx.size() - target.size();
        for (size_t d = 0; d < target.size(); ++d) flat = flat * target[d] + (target[d] == 1 ? 0 : idx[lead + d]);
        want.v[flat] += rx.v[k];
        scale[flat] += std::abs(rx.v[k]);
      }
      expect_close(op::sum_to(x, target), want, rtol_for(dt), 0, &scale);
    }
  }
}

// ---------------------------------------------------------------- cumsum

TEST(TensorOps, CumsumAlongEveryDimBothDirections) {
  std::mt19937_64 rng(14);
  for (DType dt : {DType::Float64, DType::Float32, DType::Int32, DType::Int64}) {
    const Tensor contiguous = random_tensor({3, 4, 5}, dt, rng, -10, 10);
    const Tensor permuted = random_tensor({4, 5, 3}, dt, rng, -10, 10).permute({2, 0, 1});
    for (const Tensor& x : {contiguous, permuted}) {
      for (bool reverse : {false, true}) {
        const Ref rx = ref_of(x);
        for (int64_t dim : {0, 1, 2, -1, -3}) {
          SCOPED_TRACE(x.describe() + " dim " + std::to_string(dim) + (reverse ? " reverse" : ""));
          const int64_t d = dim < 0 ? dim + 3 : dim;
          Ref want = rx;
          std::vector<double> scale(rx.v.size());
          for (int64_t k = 0; k < count_of(rx.shape); ++k) {
            auto idx = unravel(k, rx.shape);
            const int64_t at = idx[d], from = reverse ? at : 0, to = reverse ? rx.shape[d] - 1 : at;
            double s = 0, m = 0;
            for (int64_t j = from; j <= to; ++j) {
              idx[d] = j;
              s += rx.v[ravel(idx, rx.shape)];
              m += std::abs(rx.v[ravel(idx, rx.shape)]);
            }
            want.v[k] = s;
            scale[k] = m;
          }
          const Tensor got = op::cumsum(x, dim, reverse);
          EXPECT_EQ(got.dtype(), dt);
          expect_close(got, want, rtol_for(dt), 0, &scale);
        }
      }
    }
  }
  // a long parallel scan: 300 columns of 200
  const Tensor big = random_tensor({200, 300}, DType::Float64, rng);
  const Tensor cs = op::cumsum(big, 0);
  const auto bv = big.to_vector<double>(), cv = cs.to_vector<double>();
  for (int64_t j = 0; j < 300; ++j) {
    double s = 0;
    for (int64_t i = 0; i < 200; ++i) {
      s += bv[i * 300 + j];
      ASSERT_NEAR(cv[i * 300 + j], s, 1e-12 * 400);
    }
  }
}

// ---------------------------------------------------------------- matmul

// NumPy matmul on reference tensors, with Σ|a·b| per output for the tolerance.
Ref ref_matmul(const Ref& a_in, const Ref& b_in, std::vector<double>* scale) {
  Shape as = a_in.shape, bs = b_in.shape;
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  EXPECT_EQ(bs[bs.size() - 2], K);
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const Shape batch = ref_broadcast_shape(a_batch, b_batch);
  Ref out;
  out.shape = batch;
  if (!a_vec) out.shape.push_back(M);
  if (!b_vec) out.shape.push_back(N);
  scale->clear();
  for (int64_t bi = 0; bi < count_of(batch); ++bi) {
    const auto idx = unravel(bi, batch);
    // batch offsets into a and b (broadcast batch dims read index 0)
    auto batch_flat = [&](const Shape& s) {
      int64_t flat = 0;
      const size_t lead = idx.size() - s.size();
      for (size_t d = 0; d < s.size(); ++d) flat = flat * s[d] + (s[d] == 1 ? 0 : idx[lead + d]);
      return flat;
    };
    const int64_t a_off = batch_flat(a_batch) * M * K, b_off = batch_flat(b_batch) * K * N;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        long double s = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          const long double p = static_cast<long double>(a_in.v[a_off + m * K + k]) * b_in.v[b_off + k * N + n];
          s += p;
          mag += p < 0 ? -p : p;
        }
        out.v.push_back(static_cast<double>(s));
        scale->push_back(static_cast<double>(mag));
      }
  }
  return out;
}

void check_matmul(const Tensor& a, const Tensor& b) {
  SCOPED_TRACE(a.describe() + " x " + b.describe() + (a.is_contiguous() ? "" : " (a strided)") +
               (b.is_contiguous() ? "" : " (b strided)"));
  std::vector<double> scale;
  const Ref want = ref_matmul(ref_of(a), ref_of(b), &scale);
  const Tensor got = op::matmul(a, b);
  EXPECT_EQ(got.dtype(), a.dtype());
  // error bound relative to Σ|a·b|: float64 1e-12, float32 1e-5 (K ≤ 129 here)
  expect_close(got, want, a.dtype() == DType::Float64 ? 1e-12 : 1e-5, 1e-300, &scale);
}

TEST(TensorOps, MatmulShapesFollowNumPy) {
  std::mt19937_64 rng(15);
  for (DType dt : {DType::Float64, DType::Float32}) {
    auto r = [&](const Shape& s) { return random_tensor(s, dt, rng); };
    struct Case { Shape a, b, out; };
    for (const Case& c : std::vector<Case>{
             {{2, 3}, {3, 4}, {2, 4}},
             {{2, 1, 3, 4}, {5, 4, 6}, {2, 5, 3, 6}},
             {{5, 3, 4}, {2, 1, 4, 6}, {2, 5, 3, 6}},
             {{4}, {4}, {}},
             {{4}, {4, 5}, {5}},
             {{3, 4}, {4}, {3}},
             {{2, 3, 4}, {4}, {2, 3}},
             {{2, 2, 3, 4}, {4}, {2, 2, 3}},
             {{4}, {2, 4, 5}, {2, 5}},
             {{2, 3, 4}, {4, 5}, {2, 3, 5}},
             {{3, 4}, {2, 4, 5}, {2, 3, 5}},
             {{1, 3, 4}, {1, 4, 5}, {1, 3, 5}},
             {{3, 2, 1, 4}, {1, 4, 2}, {3, 2, 1, 2}},
         }) {
      SCOPED_TRACE(ssm::shape_str(c.a) + " x " + ssm::shape_str(c.b));
      const Tensor a = r(c.a), b = r(c.b);
      EXPECT_EQ(op::matmul(a, b).shape(), c.out);
      check_matmul(a, b);
    }
  }
}

TEST(TensorOps, MatmulStridedOperands) {
  std::mt19937_64 rng(16);
  for (DType dt : {DType::Float64, DType::Float32}) {
    // transposed 2-d operands (a weight used as W^T is read in place)
    check_matmul(random_tensor({4, 3}, dt, rng).transpose(0, 1), random_tensor({5, 4}, dt, rng).transpose(0, 1));
    check_matmul(random_tensor({3, 4}, dt, rng), random_tensor({5, 4}, dt, rng).transpose(0, 1));
    check_matmul(random_tensor({4, 3}, dt, rng).transpose(0, 1), random_tensor({4, 5}, dt, rng));
    // batched, transposed inner dims
    check_matmul(random_tensor({2, 4, 3}, dt, rng).transpose(1, 2), random_tensor({2, 5, 4}, dt, rng).transpose(1, 2));
    // batch dim that is not outermost in memory
    check_matmul(random_tensor({3, 2, 4}, dt, rng).transpose(0, 1), random_tensor({2, 4, 5}, dt, rng));
    // narrowed operands (row stride > cols)
    check_matmul(make_input({3, 4}, Layout::Narrowed, dt, rng), make_input({4, 6}, Layout::Narrowed, dt, rng));
    check_matmul(make_input({2, 3, 4}, Layout::Narrowed, dt, rng), make_input({4, 6}, Layout::Narrowed, dt, rng));
    // a batch operand that is a stride-0 broadcast
    check_matmul(random_tensor({1, 3, 4}, dt, rng).expand({5, 3, 4}), random_tensor({5, 4, 2}, dt, rng));
    check_matmul(random_tensor({5, 3, 4}, dt, rng), random_tensor({4, 2}, dt, rng).expand({5, 4, 2}));
    // transposed activations times a weight (the reshape-to-2-d path must copy correctly)
    check_matmul(random_tensor({4, 2, 3}, dt, rng).permute({1, 2, 0}), random_tensor({4, 6}, dt, rng));
    // 1-d strided vectors
    check_matmul(make_input({5}, Layout::Narrowed, dt, rng), make_input({5, 3}, Layout::Transposed, dt, rng));
    check_matmul(make_input({3, 5}, Layout::Transposed, dt, rng), make_input({5}, Layout::Narrowed, dt, rng));
  }
}

TEST(TensorOps, MatmulOddSizes) {
  std::mt19937_64 rng(17);
  const std::vector<int64_t> sizes{1, 7, 33, 129};
  for (DType dt : {DType::Float64, DType::Float32}) {
    int variant = 0;
    for (int64_t M : sizes)
      for (int64_t K : sizes)
        for (int64_t N : sizes) {
          ++variant;
          const Tensor a = variant % 2 ? random_tensor({M, K}, dt, rng) : random_tensor({K, M}, dt, rng).transpose(0, 1);
          const Tensor b = variant % 3 ? random_tensor({K, N}, dt, rng) : random_tensor({N, K}, dt, rng).transpose(0, 1);
          check_matmul(a, b);
        }
    check_matmul(random_tensor({3, 33, 7}, dt, rng), random_tensor({3, 7, 129}, dt, rng));
  }
}

TEST(TensorOps, MatmulEmptyInnerDimensionGivesZeros) {
  const Tensor a = Tensor::zeros({3, 0}, DType::Float64), b = Tensor::zeros({0, 4}, DType::Float64);
  const Tensor c = op::matmul(a, b);
  EXPECT_EQ(c.shape(), (Shape{3, 4}));
  EXPECT_EQ(c.to_vector<double>(), std::vector<double>(12, 0.0));
  const Tensor a3 = Tensor::zeros({2, 3, 0}, DType::Float32);
  EXPECT_EQ(op::matmul(a3, Tensor::zeros({0, 4}, DType::Float32)).to_vector<float>(), std::vector<float>(24, 0.0f));
}

// ---------------------------------------------------------------- indexing

Tensor index_tensor(const std::vector<int64_t>& v, DType dt, const Shape& shape) {
  return Tensor::from_vector(v, shape).to(dt);
}

std::vector<int64_t> random_indices(size_t n, int64_t size, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> dist(0, size - 1);
  std::vector<int64_t> v(n);
  for (auto& i : v) i = dist(rng);
  return v;
}

TEST(TensorOps, IndexSelectAlongEachDim) {
  std::mt19937_64 rng(18);
  for (DType xdt : {DType::Float64, DType::Float32, DType::Int32}) {
    const Tensor contiguous = random_tensor({4, 5, 6}, xdt, rng, -100, 100);
    const Tensor permuted = random_tensor({6, 4, 5}, xdt, rng, -100, 100).permute({1, 2, 0});
    for (const Tensor& x : {contiguous, permuted}) {
      const Ref rx = ref_of(x);
      for (int64_t dim : {0, 1, 2, -1}) {
        const int64_t d = dim < 0 ? dim + 3 : dim;
        for (DType idt : {DType::Int64, DType::Int32}) {
          SCOPED_TRACE(x.describe() + " dim " + std::to_string(dim) + " " + ssm::dtype_name(idt));
          auto idx = random_indices(7, x.shape()[d], rng);
          idx[3] = idx[1];  // repeats are allowed
          // the index itself is a strided view (every other element of a longer vector)
          std::vector<int64_t> spread(14, -1);
          for (size_t i = 0; i < 7; ++i) spread[2 * i] = idx[i];
          const Tensor index = index_tensor(spread, idt, {14}).as_strided({7}, {2}, 0);
          Shape out_shape = x.shape();
          out_shape[d] = 7;
          Ref want{out_shape, {}};
          for (int64_t k = 0; k < count_of(out_shape); ++k) {
            auto i = unravel(k, out_shape);
            i[d] = idx[i[d]];
            want.v.push_back(rx.v[ravel(i, rx.shape)]);
          }
          const Tensor got = op::index_select(x, dim, index);
          EXPECT_EQ(got.dtype(), xdt);
          expect_exact(got, want);
        }
      }
    }
  }
  // an empty index gives an empty dimension
  EXPECT_EQ(op::index_select(Tensor::ones({3, 2}), 0, Tensor::zeros({0}, DType::Int64)).shape(), (Shape{0, 2}));
}

TEST(TensorOps, EmbeddingLooksUpRows) {
  std::mt19937_64 rng(19);
  const Tensor w = random_tensor({10, 3}, DType::Float32, rng);
  const Ref rw = ref_of(w);
  for (DType idt : {DType::Int32, DType::Int64}) {
    const std::vector<int64_t> ids{0, 9, 3, 3, 7, 1, 0, 2};
    const Tensor out = op::embedding(w, index_tensor(ids, idt, {2, 4}));
    Ref want{{2, 4, 3}, {}};
    for (int64_t id : ids)
      for (int64_t j = 0; j < 3; ++j) want.v.push_back(rw.v[id * 3 + j]);
    expect_exact(out, want);
    // rank-0 ids give one row
    expect_exact(op::embedding(w, index_tensor({4}, idt, {})), Ref{{3}, {rw.v[12], rw.v[13], rw.v[14]}});
  }
  // transposed ids and a strided weight
  const Tensor wt = random_tensor({3, 10}, DType::Float64, rng).transpose(0, 1);
  const Tensor ids = index_tensor({1, 2, 3, 4, 5, 6}, DType::Int64, {2, 3}).transpose(0, 1);  // [[1,4],[2,5],[3,6]]
  const Ref rwt = ref_of(wt);
  Ref want{{3, 2, 3}, {}};
  for (int64_t id : {1, 4, 2, 5, 3, 6})
    for (int64_t j = 0; j < 3; ++j) want.v.push_back(rwt.v[id * 3 + j]);
  expect_exact(op::embedding(wt, ids), want);
  // large enough for the parallel copy path: 800 lookups of 64 = 51200 elements
  const Tensor big_w = random_tensor({500, 64}, DType::Float32, rng);
  const auto big_ids = random_indices(800, 500, rng);
  const Tensor big = op::embedding(big_w, index_tensor(big_ids, DType::Int32, {40, 20}));
  const Ref rb = ref_of(big_w);
  Ref want_big{{40, 20, 64}, {}};
  for (int64_t id : big_ids)
    for (int64_t j = 0; j < 64; ++j) want_big.v.push_back(rb.v[id * 64 + j]);
  expect_exact(big, want_big);
}

TEST(TensorOps, IndexAddAccumulatesRepeatedIndices) {
  std::mt19937_64 rng(20);
  const Shape shape{5, 4, 3};
  for (DType dt : {DType::Float64, DType::Float32, DType::Int64}) {
    for (int64_t dim : {0, 1, 2}) {
      for (DType idt : {DType::Int64, DType::Int32}) {
        SCOPED_TRACE(std::string(ssm::dtype_name(dt)) + " dim " + std::to_string(dim) + " " + ssm::dtype_name(idt));
        auto idx = random_indices(6, shape[dim], rng);
        idx[4] = idx[0];
        idx[5] = idx[0];  // the same target three times
        Shape src_shape = shape;
        src_shape[dim] = 6;
        const Tensor src = make_input(src_shape, Layout::Transposed, dt, rng, -10, 10);
        const Ref rs = ref_of(src);
        Ref want{shape, std::vector<double>(static_cast<size_t>(count_of(shape)), 0.0)};
        std::vector<double> scale(want.v.size(), 0.0);
        for (int64_t k = 0; k < count_of(src_shape); ++k) {
          auto i = unravel(k, src_shape);
          i[dim] = idx[i[dim]];
          want.v[ravel(i, shape)] += rs.v[k];
          scale[ravel(i, shape)] += std::abs(rs.v[k]);
        }
        expect_close(op::index_add(shape, dim, index_tensor(idx, idt, {6}), src), want, rtol_for(dt), 0, &scale);
      }
    }
  }
  // larger than the parallel grain: [4, 10, 1000] gathered from 30 rows with repeats
  const Tensor big_src = random_tensor({4, 30, 1000}, DType::Float64, rng);
  const auto big_idx = random_indices(30, 10, rng);
  const Tensor big = op::index_add({4, 10, 1000}, 1, index_tensor(big_idx, DType::Int64, {30}), big_src);
  const Ref rb = ref_of(big_src);
  std::vector<double> want(40000, 0.0);
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t i = 0; i < 30; ++i)
      for (int64_t k = 0; k < 1000; ++k) want[(o * 10 + big_idx[i]) * 1000 + k] += rb.v[(o * 30 + i) * 1000 + k];
  expect_close(big, Ref{{4, 10, 1000}, want}, 1e-12, 1e-12);
}

TEST(TensorOps, GatherAndScatterAddAlongEachDimOf3d) {
  std::mt19937_64 rng(21);
  const Shape xs{3, 4, 5};
  for (DType dt : {DType::Float64, DType::Float32, DType::Int32}) {
    const Tensor contiguous = random_tensor(xs, dt, rng, -50, 50);
    const Tensor permuted = random_tensor({5, 3, 4}, dt, rng, -50, 50).permute({1, 2, 0});
    for (const Tensor& x : {contiguous, permuted}) {
      const Ref rx = ref_of(x);
      for (int64_t dim : {0, 1, 2}) {
        for (DType idt : {DType::Int64, DType::Int32}) {
          SCOPED_TRACE(x.describe() + " dim " + std::to_string(dim) + " " + ssm::dtype_name(idt));
          Shape is = xs;
          is[dim] = 6;  // more picks than the dim has: repeats guaranteed
          const auto idx = random_indices(static_cast<size_t>(count_of(is)), xs[dim], rng);
          // the index arrives as a transposed view of its own base
          Shape base_is = is;
          std::swap(base_is[0], base_is[2]);
          std::vector<int64_t> base_vals(idx.size());
          for (int64_t k = 0; k < count_of(is); ++k) {
            const auto i = unravel(k, is);
            base_vals[ravel({i[2], i[1], i[0]}, base_is)] = idx[k];
          }
          const Tensor index = index_tensor(base_vals, idt, base_is).transpose(0, 2);
          ASSERT_EQ(index.to_vector<int64_t>(), idx);

          Ref want{is, {}};
          for (int64_t k = 0; k < count_of(is); ++k) {
            auto i = unravel(k, is);
            i[dim] = idx[k];
            want.v.push_back(rx.v[ravel(i, xs)]);
          }
          const Tensor got = op::gather(x, dim, index);
          EXPECT_EQ(got.dtype(), dt);
          expect_exact(got, want);

          const Tensor src = make_input(is, Layout::Transposed, dt, rng, -50, 50);
          const Ref rs = ref_of(src);
          Ref sw{xs, std::vector<double>(static_cast<size_t>(count_of(xs)), 0.0)};
          std::vector<double> scale(sw.v.size(), 0.0);
          for (int64_t k = 0; k < count_of(is); ++k) {
            auto i = unravel(k, is);
            i[dim] = idx[k];
            sw.v[ravel(i, xs)] += rs.v[k];
            scale[ravel(i, xs)] += std::abs(rs.v[k]);
          }
          expect_close(op::scatter_add(xs, dim, index, src), sw, rtol_for(dt), 0, &scale);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- joining and splitting

TEST(TensorOps, CatAlongEachDim) {
  std::mt19937_64 rng(22);
  for (DType dt : {DType::Float64, DType::Int64}) {
    for (int64_t dim : {0, 1, 2, -1}) {
      SCOPED_TRACE(std::string(ssm::dtype_name(dt)) + " dim " + std::to_string(dim));
      const int64_t d = dim < 0 ? dim + 3 : dim;
      std::vector<Tensor> parts;
      const std::vector<int64_t> sizes{2, 1, 3, 0};
      for (size_t p = 0; p < sizes.size(); ++p) {
        Shape s{2, 3, 4};
        s[d] = sizes[p];
        parts.push_back(make_input(s, p % 2 ? Layout::Transposed : Layout::Narrowed, dt, rng, -9, 9));
      }
      Shape out_shape{2, 3, 4};
      out_shape[d] = 6;
      Ref want{out_shape, {}};
      for (int64_t k = 0; k < count_of(out_shape); ++k) {
        auto i = unravel(k, out_shape);
        size_t p = 0;
        while (i[d] >= sizes[p]) i[d] -= sizes[p++];
        want.v.push_back(ref_of(parts[p]).v[ravel(i, parts[p].shape())]);
      }
      const Tensor got = op::cat(parts, dim);
      EXPECT_TRUE(got.is_contiguous());
      expect_exact(got, want);
    }
  }
  // a single part is a copy
  const Tensor one = Tensor::ones({2, 2});
  const Tensor c = op::cat({one}, 0);
  c.fill_(3);
  EXPECT_EQ(one.at({0, 0}), 1.0);
  // with a dtype, each part converted as it is copied: the same values as joining, then converting
  const std::vector<Tensor> wide{random_tensor({2, 3}, DType::Float64, rng),
                                 random_tensor({3, 2}, DType::Float64, rng).transpose(0, 1)};
  const Tensor narrowed = op::cat(wide, 1, DType::BFloat16);
  EXPECT_EQ(narrowed.dtype(), DType::BFloat16);
  expect_exact(narrowed, ref_of(op::cat(wide, 1).to(DType::BFloat16)));
}

TEST(TensorOps, StackAlongEachDim) {
  std::mt19937_64 rng(23);
  const std::vector<Tensor> parts{random_tensor({2, 3}, DType::Float64, rng),
                                  random_tensor({3, 2}, DType::Float64, rng).transpose(0, 1),
                                  make_input({2, 3}, Layout::Expanded, DType::Float64, rng)};
  for (int64_t dim : {0, 1, 2, -1}) {
    SCOPED_TRACE(dim);
    const int64_t d = dim < 0 ? dim + 3 : dim;
    Shape out_shape{2, 3};
    out_shape.insert(out_shape.begin() + d, 3);
    Ref want{out_shape, {}};
    for (int64_t k = 0; k < count_of(out_shape); ++k) {
      auto i = unravel(k, out_shape);
      const int64_t p = i[d];
      i.erase(i.begin() + d);
      want.v.push_back(ref_of(parts[p]).v[ravel(i, {2, 3})]);
    }
    expect_exact(op::stack(parts, dim), want);
  }
}

TEST(TensorOps, SplitGivesViews) {
  std::mt19937_64 rng(24);
  const Tensor x = random_tensor({3, 5, 2}, DType::Float64, rng);
  const Ref rx = ref_of(x);
  const auto parts = op::split(x, {1, 2, 0, 2}, 1);
  ASSERT_EQ(parts.size(), 4u);
  int64_t start = 0;
  for (const Tensor& p : parts) {
    EXPECT_EQ(p.impl_ptr()->storage, x.impl_ptr()->storage);
    Ref want{{3, p.shape()[1], 2}, {}};
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < p.shape()[1]; ++j)
        for (int64_t k = 0; k < 2; ++k) want.v.push_back(rx.v[(i * 5 + start + j) * 2 + k]);
    expect_exact(p, want);
    start += p.shape()[1];
  }
  EXPECT_EQ(parts[2].numel(), 0);
  parts[1].fill_(-1);  // a view: writes reach x
  EXPECT_EQ(x.at({2, 2, 1}), -1.0);
  EXPECT_EQ(x.at({2, 3, 1}), rx.v[(2 * 5 + 3) * 2 + 1]);
  // split of a non-contiguous tensor, negative dim, then cat restores it
  const Tensor t = x.transpose(0, 2);  // [2, 5, 3]
  const auto halves = op::split(t, {2, 1}, -1);
  EXPECT_EQ(halves[0].shape(), (Shape{2, 5, 2}));
  expect_exact(op::cat(halves, -1), ref_of(t));
}

// ---------------------------------------------------------------- random

TEST(TensorOps, UniformAndNormalAreReproducible) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    ssm::Generator g1(42), g2(42), g3(43);
    const auto u1 = op::uniform({1000}, -3, 5, g1, dt).to_vector<double>();
    const auto u2 = op::uniform({1000}, -3, 5, g2, dt).to_vector<double>();
    const auto u3 = op::uniform({1000}, -3, 5, g3, dt).to_vector<double>();
    EXPECT_EQ(u1, u2);
    EXPECT_NE(u1, u3);
    for (double v : u1) {
      EXPECT_GE(v, -3.0);
      EXPECT_LE(v, 5.0);
    }
    const auto n1 = op::normal({7, 11}, 1, 2, g1, dt).to_vector<double>();
    const auto n2 = op::normal({7, 11}, 1, 2, g2, dt).to_vector<double>();
    const auto n3 = op::normal({7, 11}, 1, 2, g3, dt).to_vector<double>();
    EXPECT_EQ(n1, n2);
    EXPECT_NE(n1, n3);
    EXPECT_EQ(op::normal({3}, 0, 1, g1, dt).dtype(), dt);
  }
  // re-seeding restarts the stream
  ssm::Generator g(5);
  const auto a = op::uniform({50}, 0, 1, g).to_vector<float>();
  g.manual_seed(5);
  EXPECT_EQ(op::uniform({50}, 0, 1, g).to_vector<float>(), a);
  // a seed of 0 still gives a non-degenerate stream
  ssm::Generator z(0);
  EXPECT_NE(z.next_u64(), z.next_u64());
}

TEST(TensorOps, RandomMomentsWithinStatisticalBounds) {
  ssm::Generator g(2024);
  const int64_t n = 100000;
  const auto v = op::normal({n}, 3, 2, g, DType::Float64).to_vector<double>();
  double mean = 0;
  for (double x : v) mean += x;
  mean /= n;
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  const double sd = std::sqrt(var / (n - 1));
  // standard errors: mean 2/sqrt(n) ≈ 0.0063, std ≈ 2/sqrt(2n) ≈ 0.0045; bounds are > 4 sigma
  EXPECT_NEAR(mean, 3.0, 0.03);
  EXPECT_NEAR(sd, 2.0, 0.02);
  int64_t beyond2 = 0;
  for (double x : v) beyond2 += std::abs(x - 3) > 4;  // |z| > 2: 4.55 %
  EXPECT_NEAR(static_cast<double>(beyond2) / n, 0.0455, 0.005);

  const auto u = op::uniform({n}, -1, 3, g, DType::Float64).to_vector<double>();
  double um = 0, uv = 0;
  for (double x : u) um += x;
  um /= n;
  for (double x : u) uv += (x - um) * (x - um);
  uv /= n - 1;
  EXPECT_NEAR(um, 1.0, 0.02);             // se ≈ 0.0037
  EXPECT_NEAR(uv, 16.0 / 12.0, 0.02);     // se ≈ 0.0038
}

TEST(TensorOps, RandpermIsAPermutation) {
  ssm::Generator g(7), g_same(7);
  for (int64_t n : {0, 1, 2, 10, 1000}) {
    const Tensor p = op::randperm(n, g);
    EXPECT_EQ(p.dtype(), DType::Int64);
    EXPECT_EQ(p.shape(), (Shape{n}));
    auto v = p.to_vector<int64_t>();
    EXPECT_EQ(v, op::randperm(n, g_same).to_vector<int64_t>());
    std::sort(v.begin(), v.end());
    std::vector<int64_t> iota(static_cast<size_t>(n));
    std::iota(iota.begin(), iota.end(), int64_t{0});
    EXPECT_EQ(v, iota);
  }
  // it actually shuffles
  const auto p = op::randperm(1000, g).to_vector<int64_t>();
  int64_t fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed += p[i] == i;
  EXPECT_LT(fixed, 10);
}

TEST(TensorOps, GeneratorStateReplays) {
  ssm::Generator g(99);
  (void)op::normal({13}, 0, 1, g);  // advance a bit
  const ssm::Generator::State saved = g.state();
  const auto a = op::uniform({100}, 0, 1, g, DType::Float64).to_vector<double>();
  const auto b = op::normal({10}, 0, 1, g, DType::Float64).to_vector<double>();
  const auto p = op::randperm(20, g).to_vector<int64_t>();
  const uint64_t u = g.next_u64();
  ssm::Generator other(1);
  other.set_state(saved);
  EXPECT_EQ(op::uniform({100}, 0, 1, other, DType::Float64).to_vector<double>(), a);
  EXPECT_EQ(op::normal({10}, 0, 1, other, DType::Float64).to_vector<double>(), b);
  EXPECT_EQ(op::randperm(20, other).to_vector<int64_t>(), p);
  EXPECT_EQ(other.next_u64(), u);
  EXPECT_EQ(other.state(), g.state());
  // next_double is in [0, 1)
  for (int i = 0; i < 1000; ++i) {
    const double d = g.next_double();
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
  }
}

// ---------------------------------------------------------------- large tensors: the parallel paths

TEST(TensorOps, LargeElementwiseMatchesSerialReference) {
  // 300 x 200 = 60000 elements > kParallelGrain (32768)
  std::mt19937_64 rng(25);
  for (DType dt : {DType::Float64, DType::Float32}) {
    SCOPED_TRACE(ssm::dtype_name(dt));
    const Tensor a = random_tensor({300, 200}, dt, rng);
    const Tensor at = random_tensor({200, 300}, dt, rng).transpose(0, 1);  // [300, 200], strided
    const Tensor row = random_tensor({200}, dt, rng);
    const Tensor big_row = random_tensor({40000}, dt, rng);  // one row longer than a block (16384)
    const double rt = rtol_for(dt) * 0.1;
    expect_close(op::add(a, at), ref_binary(ref_of(a), ref_of(at), std::plus<double>()), rt);
    expect_close(op::mul(at, row), ref_binary(ref_of(at), ref_of(row), std::multiplies<double>()), rt);
    expect_close(op::exp(at), ref_unary(ref_of(at), [](double x) { return std::exp(x); }), rtol_for(dt));
    if (dt == DType::Float32) continue;  // the rest once, in float64
    expect_close(op::sub(row, at), ref_binary(ref_of(row), ref_of(at), std::minus<double>()), rt);
    expect_close(op::gt(a, at), ref_binary(ref_of(a), ref_of(at), [](double x, double y) { return x > y ? 1.0 : 0.0; }), 0);
    expect_close(op::div(big_row, op::add(op::abs(big_row), 1.0)),
                 ref_unary(ref_of(big_row), [](double x) { return x / (std::abs(x) + 1); }), rtol_for(dt));
    expect_close(op::sigmoid(a), ref_unary(ref_of(a), ref_sigmoid), rtol_for(dt));
    expect_close(op::where(op::gt(a, at), a, at), ref_binary(ref_of(a), ref_of(at), ref_max), 0);
    // copies and fills of strided views
    expect_exact(at.contiguous(), ref_of(at));
    expect_exact(at.to(DType::Float32), ref_unary(ref_of(at), [](double x) { return static_cast<double>(static_cast<float>(x)); }));
    const Tensor target = Tensor::zeros({200, 300}, dt);
    target.transpose(0, 1).copy_(a);
    expect_exact(target.transpose(0, 1), ref_of(a));
    target.narrow(1, 100, 150).fill_(2);
    const auto tv = target.to_vector<double>();
    const auto av = a.to_vector<double>();
    for (int64_t i = 0; i < 200; ++i)
      for (int64_t j = 0; j < 300; ++j)
        ASSERT_EQ(tv[i * 300 + j], (j >= 100 && j < 250) ? 2.0 : av[j * 200 + i]) << i << "," << j;
    // in place through a transposed view
    const Tensor acc = a.clone();
    const Ref want = ref_binary(ref_of(acc.transpose(0, 1)), ref_of(at.transpose(0, 1)), std::plus<double>());
    op::add_(acc.transpose(0, 1), at.transpose(0, 1));
    expect_close(acc.transpose(0, 1), want, rt);
  }
  const Tensor ia = random_tensor({300, 200}, DType::Int32, rng, -1000, 1000);
  const Tensor ib = random_tensor({200, 300}, DType::Int32, rng, -1000, 1000).transpose(0, 1);
  expect_exact(op::mul(ia, ib), ref_binary(ref_of(ia), ref_of(ib), std::multiplies<double>()));
  expect_exact(op::relu(ib), ref_unary(ref_of(ib), [](double x) { return std::max(x, 0.0); }));
}

}  // namespace
