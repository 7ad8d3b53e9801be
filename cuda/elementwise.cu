// cuda/elementwise.cu — copy, fill, unary math, binary arithmetic and where on the GPU.
//
// One kernel per element type (the operation is a switch inside it: uniform across a launch, so it
// costs no divergence, and it keeps the number of compiled kernels small). The scalar functions
// match the CPU backend's (tensor/cpu/elementwise.cpp): sigmoid and softplus never overflow, NaN
// propagates through maximum/minimum. 16-bit floats are computed in float32.
#include <array>
#include <cmath>
#include <type_traits>

#include "cuda/device_math.cuh"
#include "cuda/device_types.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace ssm::cuda {
namespace {

template <class T>
T* base(const Tensor& t) { return static_cast<T*>(t.raw_data()); }

template <class C>
__device__ C apply_unary(UnaryOp op, C v, C a, C b) {
  switch (op) {
    case UnaryOp::Neg: return -v;
    case UnaryOp::Abs: return v < C(0) ? -v : v;
    case UnaryOp::Sign: return static_cast<C>((C(0) < v) - (v < C(0)));
    case UnaryOp::Square: return v * v;
    case UnaryOp::Relu: return v > C(0) ? v : C(0);
    case UnaryOp::Clamp: return v < a ? a : (v > b ? b : v);
    default: break;
  }
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case UnaryOp::Exp: return exp(v);
      case UnaryOp::Log: return log(v);
      case UnaryOp::Log1p: return log1p(v);
      case UnaryOp::Expm1: return expm1(v);
      case UnaryOp::Sqrt: return sqrt(v);
      case UnaryOp::Rsqrt: return C(1) / sqrt(v);
      case UnaryOp::Tanh: return tanh(v);
      case UnaryOp::Sigmoid: return sigmoid_of(v);
      case UnaryOp::Silu: return v * sigmoid_of(v);
      case UnaryOp::Softplus: return softplus_of(v);
      case UnaryOp::Sin: return sin(v);
      case UnaryOp::Cos: return cos(v);
      case UnaryOp::Reciprocal: return C(1) / v;
      case UnaryOp::Floor: return floor(v);
      case UnaryOp::PowScalar: return pow(v, a);
      default: break;
    }
  }
  return v;  // unreachable: integer-only ops were refused on the host
}

bool integer_unary_supported(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: case UnaryOp::Abs: case UnaryOp::Sign: case UnaryOp::Square: case UnaryOp::Relu:
    case UnaryOp::Clamp: return true;
    default: return false;
  }
}

// base^exponent for integers, exact (the device's pow(double, double) may land one ulp under an integer,
// which truncates to the integer below). A negative exponent gives |base|^−k < 1 truncated to 0, as the
// CPU's static_cast of std::pow does, except for bases ±1.
template <class C>
__device__ C integer_pow(C base, C exponent) {
  if (exponent < 0) return base == 1 ? C(1) : base == -1 ? (exponent % 2 != 0 ? C(-1) : C(1)) : C(0);
  C result = 1;
  while (exponent > 0) {  // square-and-multiply over the exponent's bits
    if (exponent % 2 != 0) result *= base;
    exponent /= 2;
    if (exponent > 0) base *= base;
  }
  return result;
}

template <class C>
__device__ C apply_binary(BinaryOp op, C p, C q) {
  switch (op) {
    case BinaryOp::Add: return p + q;
    case BinaryOp::Sub: return p - q;
    case BinaryOp::Mul: return p * q;
    case BinaryOp::Div: return p / q;
    case BinaryOp::Maximum: return (p != p || p > q) ? p : q;
    case BinaryOp::Minimum: return (p != p || p < q) ? p : q;
    case BinaryOp::Pow:
      if constexpr (std::is_floating_point_v<C>) return pow(p, q);
      else return integer_pow(p, q);
    case BinaryOp::Eq: return static_cast<C>(p == q);
    case BinaryOp::Ne: return static_cast<C>(p != q);
    case BinaryOp::Lt: return static_cast<C>(p < q);
    case BinaryOp::Le: return static_cast<C>(p <= q);
    case BinaryOp::Gt: return static_cast<C>(p > q);
    case BinaryOp::Ge: return static_cast<C>(p >= q);
  }
  return p;
}

// Each op tries four values a thread first (for_each_quad), then one a thread for any layout.
template <class S, class D>
void copy_typed(const Tensor& src, const Tensor& dst) {
  const S* from = base<S>(src);
  D* to = base<D>(dst);
  const auto four = [=] __device__(const int64_t(&off)[2]) {
    const Quad<S> in = load_quad(from + off[1]);
    Quad<D> out;
    for (int k = 0; k < 4; ++k) out.v[k] = convert<D>(in.v[k]);
    store_quad(to + off[0], out);
  };
  if (for_each_quad<2>(dst.shape(), {dst.strides(), src.strides()}, quad_aligned(to) && quad_aligned(from), four))
    return;
  for_each_element<2>(dst.shape(), {dst.strides(), src.strides()},
                      [=] __device__(const int64_t(&off)[2]) { to[off[0]] = convert<D>(from[off[1]]); });
}

template <class D>
void fill_typed(const Tensor& dst, double value) {
  const D v = convert<D>(value);
  D* to = base<D>(dst);
  const auto four = [=] __device__(const int64_t(&off)[1]) { store_quad(to + off[0], Quad<D>{{v, v, v, v}}); };
  if (for_each_quad<1>(dst.shape(), {dst.strides()}, quad_aligned(to), four)) return;
  for_each_element<1>(dst.shape(), {dst.strides()}, [=] __device__(const int64_t(&off)[1]) { to[off[0]] = v; });
}

template <class T>
void unary_typed(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) {
  using C = compute_t<T>;
  SSM_CHECK(std::is_floating_point_v<C> || integer_unary_supported(op),
            "unary: operation not supported for this dtype on cuda");
  const T* in = base<T>(x);
  T* o = base<T>(out);
  const C ca = convert<C>(a), cb = convert<C>(b);
  const auto apply = [=] __device__(T v) { return convert<T>(apply_unary<C>(op, convert<C>(v), ca, cb)); };
  const auto four = [=] __device__(const int64_t(&off)[2]) {
    const Quad<T> v = load_quad(in + off[1]);
    Quad<T> r;
    for (int k = 0; k < 4; ++k) r.v[k] = apply(v.v[k]);
    store_quad(o + off[0], r);
  };
  if (for_each_quad<2>(out.shape(), {out.strides(), x.strides()}, quad_aligned(o) && quad_aligned(in), four)) return;
  for_each_element<2>(out.shape(), {out.strides(), x.strides()},
                      [=] __device__(const int64_t(&off)[2]) { o[off[0]] = apply(in[off[1]]); });
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  using C = compute_t<T>;
  const T* px = base<T>(x);
  const T* py = base<T>(y);
  T* o = base<T>(out);
  const std::array<Strides, 3> strides = {out.strides(), x.strides(), y.strides()};
  const auto apply = [=] __device__(T p, T q) { return convert<T>(apply_binary<C>(op, convert<C>(p), convert<C>(q))); };
  const auto four = [=] __device__(const int64_t(&off)[3]) {
    const Quad<T> p = load_quad(px + off[1]), q = load_quad(py + off[2]);
    Quad<T> r;
    for (int k = 0; k < 4; ++k) r.v[k] = apply(p.v[k], q.v[k]);
    store_quad(o + off[0], r);
  };
  if (for_each_quad<3>(out.shape(), strides, quad_aligned(o) && quad_aligned(px) && quad_aligned(py), four)) return;
  for_each_element<3>(out.shape(), strides,
                      [=] __device__(const int64_t(&off)[3]) { o[off[0]] = apply(px[off[1]], py[off[2]]); });
}

template <class Cond, class T>
void where_typed(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out) {
  const Cond* pc = base<Cond>(cond);
  const T* px = base<T>(x);
  const T* py = base<T>(y);
  T* o = base<T>(out);
  for_each_element<4>(out.shape(), {out.strides(), cond.strides(), x.strides(), y.strides()},
                      [=] __device__(const int64_t(&off)[4]) {
                        const bool pick_x = convert<compute_t<Cond>>(pc[off[1]]) != compute_t<Cond>(0);
                        o[off[0]] = pick_x ? px[off[2]] : py[off[3]];
                      });
}

}  // namespace

// (Device lambdas may not live inside the generic lambdas of the dtype dispatch: each op's body is
// the template above, and the dispatch only picks its types.)
void copy(const Tensor& src, const Tensor& dst) {
  dispatch_device_all(src.dtype(), "copy", [&](auto s) {
    dispatch_device_all(dst.dtype(), "copy", [&](auto d) { copy_typed<decltype(s), decltype(d)>(src, dst); });
  });
}

void fill(const Tensor& dst, double value) {
  dispatch_device_all(dst.dtype(), "fill", [&](auto d) { fill_typed<decltype(d)>(dst, value); });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) {
  dispatch_device_numeric(x.dtype(), "unary", [&](auto t) { unary_typed<decltype(t)>(op, x, out, a, b); });
}

void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  dispatch_device_numeric(x.dtype(), "binary", [&](auto t) { binary_typed<decltype(t)>(op, x, y, out); });
}

void where(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out) {
  dispatch_device_all(cond.dtype(), "where", [&](auto c) {
    dispatch_device_numeric(x.dtype(), "where", [&](auto t) { where_typed<decltype(c), decltype(t)>(cond, x, y, out); });
  });
}

}  // namespace ssm::cuda
