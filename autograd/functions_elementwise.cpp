// autograd/functions_elementwise.cpp — arithmetic, unary math, where and casts, each with its backward.
//
// Notation in the comments: g = d(loss)/d(out), the gradient arriving at the op's output.
// Broadcasting in the forward pass becomes summation in the backward pass: op::sum_to folds a
// gradient back to the shape of the input it belongs to.
#include "autograd/functions.h"

namespace ssm {

using Grads = std::vector<Tensor>;

// ---------------------------------------------------------------- arithmetic

// out = a + b:  da = g,  db = g
Tensor add(const Tensor& a, const Tensor& b) {
  return record("add", {a, b}, op::add(a, b), {}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Node&) {
    return Grads{op::sum_to(g, sa), op::sum_to(g, sb)};
  });
}

// out = a - b:  da = g,  db = -g
Tensor sub(const Tensor& a, const Tensor& b) {
  return record("sub", {a, b}, op::sub(a, b), {}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Node&) {
    return Grads{op::sum_to(g, sa), op::sum_to(op::neg(g), sb)};
  });
}

// out = a * b:  da = g * b,  db = g * a
Tensor mul(const Tensor& a, const Tensor& b) {
  return record("mul", {a, b}, op::mul(a, b), {a, b}, [](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    Grads grads(2);
    if (n.needs_input_grad(0)) grads[0] = op::sum_to(op::mul(g, s[1]), s[0].shape());
    if (n.needs_input_grad(1)) grads[1] = op::sum_to(op::mul(g, s[0]), s[1].shape());
    return grads;
  });
}

// out = a / b:  da = g / b,  db = -g * a / b^2 = -g * out / b
Tensor div(const Tensor& a, const Tensor& b) {
  const Tensor out = op::div(a, b);
  return record("div", {a, b}, out, {b, out}, [sa = a.shape()](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    const Tensor g_over_b = op::div(g, s[0]);
    Grads grads(2);
    if (n.needs_input_grad(0)) grads[0] = op::sum_to(g_over_b, sa);
    if (n.needs_input_grad(1)) grads[1] = op::sum_to(op::neg(op::mul(g_over_b, s[1])), s[0].shape());
    return grads;
  });
}

// out = max(a, b): the gradient goes to the larger input; on a tie each gets half (as PyTorch does).
static Tensor extremum(const char* name, BinaryOp kind, BinaryOp wins, const Tensor& a, const Tensor& b) {
  return record(name, {a, b}, op::binary(kind, a, b), {a, b}, [wins](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    const Tensor tie_half = op::mul(op::eq(s[0], s[1]), 0.5);
    const Tensor share_a = op::add(op::binary(wins, s[0], s[1]), tie_half);  // 1, 0.5 or 0
    const Tensor share_b = op::add(op::binary(wins, s[1], s[0]), tie_half);
    return Grads{op::sum_to(op::mul(g, share_a), s[0].shape()), op::sum_to(op::mul(g, share_b), s[1].shape())};
  });
}
Tensor maximum(const Tensor& a, const Tensor& b) { return extremum("maximum", BinaryOp::Maximum, BinaryOp::Gt, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum("minimum", BinaryOp::Minimum, BinaryOp::Lt, a, b); }

// out = a^b:  da = g * b * a^(b-1) (0 where b = 0: a^0 is constant, and 0 * 0^-1 would be NaN at a = 0),
//             db = g * out * log(a)
Tensor pow(const Tensor& a, const Tensor& b) {
  const Tensor out = op::pow(a, b);
  return record("pow", {a, b}, out, {a, b, out}, [](const Tensor& g, const Node& n) {
    const auto s = n.saved();
    Grads grads(2);
    if (n.needs_input_grad(0)) {
      const Tensor dout_da = op::mul(s[1], op::pow(s[0], op::add(s[1], -1.0)));
      const Tensor zero = op::scalar_like(dout_da, 0.0);
      grads[0] = op::sum_to(op::mul(g, op::where(op::eq(s[1], zero), zero, dout_da)), s[0].shape());
    }
    if (n.needs_input_grad(1)) grads[1] = op::sum_to(op::mul(g, op::mul(s[2], op::log(s[0]))), s[1].shape());
    return grads;
  });
}

// out = a + c:  da = g
Tensor add(const Tensor& a, double c) {
  return record("add_scalar", {a}, op::add(a, c), {}, [](const Tensor& g, const Node&) { return Grads{g}; });
}

// out = a * c:  da = g * c
Tensor mul(const Tensor& a, double c) {
  return record("mul_scalar", {a}, op::mul(a, c), {}, [c](const Tensor& g, const Node&) { return Grads{op::mul(g, c)}; });
}

// out = x^p:  dx = g * p * x^(p-1)  (0 for p = 0: 0 * 0^-1 would be NaN at x = 0)
Tensor pow(const Tensor& x, double p) {
  return record("pow_scalar", {x}, op::pow(x, p), {x}, [p](const Tensor& g, const Node& n) {
    if (p == 0.0) return Grads{op::zeros_like(n.saved()[0])};
    return Grads{op::mul(op::mul(g, op::pow(n.saved()[0], p - 1.0)), p)};
  });
}

// ---------------------------------------------------------------- unary math
// Each derivative is written in terms of whichever of x and out makes it cheapest.

// Record a unary op whose derivative needs x (and not out).
template <class Derivative>
static Tensor unary_of_x(const char* name, const Tensor& x, const Tensor& out, Derivative dout_dx) {
  return record(name, {x}, out, {x}, [dout_dx](const Tensor& g, const Node& n) {
    return Grads{op::mul(g, dout_dx(n.saved()[0]))};
  });
}
// Record a unary op whose derivative is cheapest in terms of out.
template <class Derivative>
static Tensor unary_of_out(const char* name, const Tensor& x, const Tensor& out, Derivative dout_dx) {
  return record(name, {x}, out, {out}, [dout_dx](const Tensor& g, const Node& n) {
    return Grads{op::mul(g, dout_dx(n.saved()[0]))};
  });
}

Tensor neg(const Tensor& x) {
  return record("neg", {x}, op::neg(x), {}, [](const Tensor& g, const Node&) { return Grads{op::neg(g)}; });
}
// d e^x = e^x
Tensor exp(const Tensor& x) { return unary_of_out("exp", x, op::exp(x), [](const Tensor& out) { return out; }); }
// d log x = 1/x
Tensor log(const Tensor& x) { return unary_of_x("log", x, op::log(x), [](const Tensor& v) { return op::reciprocal(v); }); }
// d log(1+x) = 1/(1+x)
Tensor log1p(const Tensor& x) {
  return unary_of_x("log1p", x, op::log1p(x), [](const Tensor& v) { return op::reciprocal(op::add(v, 1.0)); });
}
// d (e^x - 1) = e^x = out + 1
Tensor expm1(const Tensor& x) {
  return unary_of_out("expm1", x, op::expm1(x), [](const Tensor& out) { return op::add(out, 1.0); });
}
// d sqrt(x) = 1 / (2 sqrt(x))
Tensor sqrt(const Tensor& x) {
  return unary_of_out("sqrt", x, op::sqrt(x), [](const Tensor& out) { return op::mul(op::reciprocal(out), 0.5); });
}
// d x^(-1/2) = -1/2 x^(-3/2) = -1/2 out^3
Tensor rsqrt(const Tensor& x) {
  return unary_of_out("rsqrt", x, op::rsqrt(x), [](const Tensor& out) { return op::mul(op::pow(out, 3.0), -0.5); });
}
// d tanh x = 1 - tanh^2 x
Tensor tanh(const Tensor& x) {
  return unary_of_out("tanh", x, op::tanh(x), [](const Tensor& out) { return op::add(op::neg(op::square(out)), 1.0); });
}
// d σ(x) = σ(x)(1 - σ(x))
Tensor sigmoid(const Tensor& x) {
  return unary_of_out("sigmoid", x, op::sigmoid(x),
                      [](const Tensor& s) { return op::mul(s, op::add(op::neg(s), 1.0)); });
}
// d x·σ(x) = σ(x)(1 + x(1 - σ(x)))
Tensor silu(const Tensor& x) {
  return unary_of_x("silu", x, op::silu(x), [](const Tensor& v) {
    const Tensor s = op::sigmoid(v);
    return op::mul(s, op::add(op::mul(v, op::add(op::neg(s), 1.0)), 1.0));
  });
}
// d log(1 + e^x) = σ(x)
Tensor softplus(const Tensor& x) {
  return unary_of_x("softplus", x, op::softplus(x), [](const Tensor& v) { return op::sigmoid(v); });
}
Tensor sin(const Tensor& x) { return unary_of_x("sin", x, op::sin(x), [](const Tensor& v) { return op::cos(v); }); }
Tensor cos(const Tensor& x) {
  return unary_of_x("cos", x, op::cos(x), [](const Tensor& v) { return op::neg(op::sin(v)); });
}
Tensor abs(const Tensor& x) { return unary_of_x("abs", x, op::abs(x), [](const Tensor& v) { return op::sign(v); }); }
Tensor square(const Tensor& x) {
  return unary_of_x("square", x, op::square(x), [](const Tensor& v) { return op::mul(v, 2.0); });
}
Tensor relu(const Tensor& x) {
  return unary_of_x("relu", x, op::relu(x), [](const Tensor& v) { return op::gt(v, op::scalar_like(v, 0.0)); });
}
Tensor clamp(const Tensor& x, double min, double max) {
  return unary_of_x("clamp", x, op::clamp(x, min, max), [min, max](const Tensor& v) {
    return op::mul(op::ge(v, op::scalar_like(v, min)), op::le(v, op::scalar_like(v, max)));
  });
}

// ---------------------------------------------------------------- selection and casts

// out = cond ? a : b:  da = g where cond (else 0),  db = g where !cond
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return record("where", {cond, a, b}, op::where(cond, a, b), {cond},
                [sa = a.shape(), sb = b.shape()](const Tensor& g, const Node& n) {
                  const Tensor c = n.saved()[0];
                  const Tensor zero = op::scalar_like(g, 0.0);
                  return Grads{Tensor(), op::sum_to(op::where(c, g, zero), sa), op::sum_to(op::where(c, zero, g), sb)};
                });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, op::scalar_like(x, value), x);
}

// A cast's gradient is the incoming gradient cast back.
Tensor to_dtype(const Tensor& x, DType dtype) {
  return record("to_dtype", {x}, x.to(dtype), {}, [from = x.dtype()](const Tensor& g, const Node&) {
    return Grads{g.to(from)};
  });
}

}  // namespace ssm
