// tensor/cpu/elementwise.cpp — copy, fill, unary math, binary arithmetic and where on the CPU.
//
// Each kernel is "a scalar function applied along rows" (strided_loop.h finds the rows). The
// scalar functions are written for numerical safety first: sigmoid and softplus never overflow.
#include <cmath>
#include <limits>
#include <type_traits>

#include "tensor/cpu/kernels.h"
#include "tensor/cpu/scalar_math.h"
#include "tensor/cpu/strided_loop.h"

namespace ssm::cpu {
namespace {

// Value conversion between element types; the 16-bit float types go through float.
template <class T>
constexpr bool is_half_v = std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>;

// Floating -> integer saturates (NaN -> 0) instead of the undefined behaviour of a plain cast.
template <class To, class From>
To convert(From v) {
  if constexpr (is_half_v<From>) {
    return convert<To>(static_cast<float>(v));
  } else if constexpr (is_half_v<To>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (v != v) return 0;
    if (v <= static_cast<From>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (v >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

template <class T>
T* base(const Tensor& t) { return static_cast<T*>(t.raw_data()); }

// out[i] = f(in[i]) along rows; one instantiation per (In, Out, f).
template <class In, class Out, class F>
void map_unary(const Tensor& in, const Tensor& out, F f) {
  const In* x = base<In>(in);
  Out* o = base<Out>(out);
  for_each_row<2>(out.shape(), {out.strides(), in.strides()}, [&](int64_t n, auto off, auto st) {
    Out* po = o + off[0];
    const In* px = x + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) po[i] = f(px[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i * st[0]] = f(px[i * st[1]]);
    }
  });
}

template <class T, class F>
void map_binary(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  const T* pa = base<T>(a);
  const T* pb = base<T>(b);
  T* o = base<T>(out);
  for_each_row<3>(out.shape(), {out.strides(), a.strides(), b.strides()}, [&](int64_t n, auto off, auto st) {
    T* po = o + off[0];
    const T* x = pa + off[1];
    const T* y = pb + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) po[i] = f(x[i], y[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {  // tensor (op) broadcast scalar/row: common
      const T yv = y[0];
      for (int64_t i = 0; i < n; ++i) po[i] = f(x[i], yv);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
    }
  });
}

template <class T> T sign_of(T x) { return static_cast<T>((T(0) < x) - (x < T(0))); }

template <class T>
void unary_typed(UnaryOp op, const Tensor& x, const Tensor& out, T a, T b) {
  auto run = [&](auto f) { map_unary<T, T>(x, out, f); };
  switch (op) {
    case UnaryOp::Neg: return run([](T v) { return static_cast<T>(-v); });
    case UnaryOp::Abs: return run([](T v) { return v < T(0) ? static_cast<T>(-v) : v; });
    case UnaryOp::Sign: return run([](T v) { return sign_of(v); });
    case UnaryOp::Square: return run([](T v) { return static_cast<T>(v * v); });
    case UnaryOp::Relu: return run([](T v) { return v > T(0) ? v : T(0); });
    case UnaryOp::Clamp: return run([=](T v) { return v < a ? a : (v > b ? b : v); });
    default: break;
  }
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::Exp: return run([](T v) { return std::exp(v); });
      case UnaryOp::Log: return run([](T v) { return std::log(v); });
      case UnaryOp::Log1p: return run([](T v) { return std::log1p(v); });
      case UnaryOp::Expm1: return run([](T v) { return std::expm1(v); });
      case UnaryOp::Sqrt: return run([](T v) { return std::sqrt(v); });
      case UnaryOp::Rsqrt: return run([](T v) { return T(1) / std::sqrt(v); });
      case UnaryOp::Tanh: return run([](T v) { return std::tanh(v); });
      case UnaryOp::Sigmoid: return run([](T v) { return sigmoid_of(v); });
      case UnaryOp::Silu: return run([](T v) { return v * sigmoid_of(v); });
      case UnaryOp::Softplus: return run([](T v) { return softplus_of(v); });
      case UnaryOp::Sin: return run([](T v) { return std::sin(v); });
      case UnaryOp::Cos: return run([](T v) { return std::cos(v); });
      case UnaryOp::Reciprocal: return run([](T v) { return T(1) / v; });
      case UnaryOp::Floor: return run([](T v) { return std::floor(v); });
      case UnaryOp::PowScalar: return run([=](T v) { return std::pow(v, a); });
      default: break;
    }
  }
  throw Error("unary: operation not supported for this dtype on cpu");
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  auto run = [&](auto f) { map_binary<T>(x, y, out, f); };
  switch (op) {
    case BinaryOp::Add: return run([](T p, T q) { return static_cast<T>(p + q); });
    case BinaryOp::Sub: return run([](T p, T q) { return static_cast<T>(p - q); });
    case BinaryOp::Mul: return run([](T p, T q) { return static_cast<T>(p * q); });
    case BinaryOp::Div: return run([](T p, T q) { return static_cast<T>(p / q); });
    // NaN propagates through maximum/minimum, as in NumPy and PyTorch
    case BinaryOp::Maximum: return run([](T p, T q) { return (p != p || p > q) ? p : q; });
    case BinaryOp::Minimum: return run([](T p, T q) { return (p != p || p < q) ? p : q; });
    case BinaryOp::Pow: return run([](T p, T q) { return static_cast<T>(std::pow(p, q)); });
    case BinaryOp::Eq: return run([](T p, T q) { return static_cast<T>(p == q); });
    case BinaryOp::Ne: return run([](T p, T q) { return static_cast<T>(p != q); });
    case BinaryOp::Lt: return run([](T p, T q) { return static_cast<T>(p < q); });
    case BinaryOp::Le: return run([](T p, T q) { return static_cast<T>(p <= q); });
    case BinaryOp::Gt: return run([](T p, T q) { return static_cast<T>(p > q); });
    case BinaryOp::Ge: return run([](T p, T q) { return static_cast<T>(p >= q); });
  }
}

}  // namespace

void copy(const Tensor& src, const Tensor& dst) {
  dispatch_all(src.dtype(), "copy", [&](auto s) {
    using S = decltype(s);
    dispatch_all(dst.dtype(), "copy", [&](auto d) {
      using D = decltype(d);
      map_unary<S, D>(src, dst, [](S v) { return convert<D>(v); });
    });
  });
}

void fill(const Tensor& dst, double value) {
  dispatch_all(dst.dtype(), "fill", [&](auto d) {
    using D = decltype(d);
    const D v = convert<D>(value);
    D* o = base<D>(dst);
    for_each_row<1>(dst.shape(), {dst.strides()}, [&](int64_t n, auto off, auto st) {
      for (int64_t i = 0; i < n; ++i) o[off[0] + i * st[0]] = v;
    });
  });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) {
  dispatch_numeric(x.dtype(), "unary", [&](auto t) {
    using T = decltype(t);
    unary_typed<T>(op, x, out, convert<T>(a), convert<T>(b));
  });
}

void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  dispatch_numeric(x.dtype(), "binary", [&](auto t) { binary_typed<decltype(t)>(op, x, y, out); });
}

void where(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out) {
  dispatch_numeric(cond.dtype(), "where", [&](auto c) {
    using C = decltype(c);
    dispatch_numeric(x.dtype(), "where", [&](auto t) {
      using T = decltype(t);
      const C* pc = base<C>(cond);
      const T* px = base<T>(x);
      const T* py = base<T>(y);
      T* o = base<T>(out);
      for_each_row<4>(out.shape(), {out.strides(), cond.strides(), x.strides(), y.strides()},
                      [&](int64_t n, auto off, auto st) {
                        for (int64_t i = 0; i < n; ++i)
                          o[off[0] + i * st[0]] = pc[off[1] + i * st[1]] != C(0) ? px[off[2] + i * st[2]]
                                                                                  : py[off[3] + i * st[3]];
                      });
    });
  });
}

}  // namespace ssm::cpu
