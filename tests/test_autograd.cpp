// Engine semantics of the autograd layer (autograd/engine.cpp, node.cpp, grad_mode.cpp):
// accumulation into .grad, diamonds and deep chains, retain_grad, implied/explicit seeds,
// retain_graph, in-place modification of saved tensors, NoGradGuard, integer outputs,
// user-defined Functions (multi-output, wrong gradients), a hand-derived two-layer network, the
// float32 path, and a check that gradcheck itself can fail.
#include <gtest/gtest.h>

#include <pthread.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "tensor/random.h"

namespace {

using namespace ssm;

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}
Tensor randn(const Shape& s, Generator& g, DType dtype = DType::Float64) {
  return leaf(op::normal(s, 0.0, 1.0, g, dtype));
}
Tensor vec(const std::vector<double>& v) { return leaf(Tensor::from_vector<double>(v, {static_cast<int64_t>(v.size())})); }

// The message of the ssm::Error that `fn` throws ("" and a failure when it throws nothing).
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an ssm::Error";
  return "";
}

void expect_near(const Tensor& got, const Tensor& want, double tol) {
  ASSERT_TRUE(got.defined());
  ASSERT_EQ(got.shape(), want.shape());
  const auto a = got.to_vector<double>(), b = want.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << "element " << i;
}

// ---------------------------------------------------------------- accumulation and graph shapes

TEST(AutogradEngine, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = vec({1, 2, 3});
  backward(sum(x * 3.0));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3, 3, 3}));
  backward(sum(x * x));  // + 2x
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{5, 7, 9}));
  x.set_grad(Tensor());
  EXPECT_FALSE(x.grad().defined());
  backward(sum(x * 3.0));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3, 3, 3}));
}

TEST(AutogradEngine, LeafGradIsAFreshContiguousTensor) {
  // sum's backward yields an expanded (stride-0) view of the seed; the leaf's .grad must be its own
  // contiguous storage so that in-place accumulation and optimiser updates are safe.
  Tensor x = leaf(Tensor::zeros({3, 4}, DType::Float64));
  backward(sum(x));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().is_contiguous());
  backward(sum(x));
  for (double v : x.grad().to_vector<double>()) EXPECT_EQ(v, 2.0);
  // add's backward passes the incoming gradient through unchanged: the two leaves' .grad and the
  // caller's seed must still be three separate tensors
  Tensor a = vec({1, 2}), b = vec({3, 4});
  const Tensor seed = Tensor::from_vector<double>({1, 1}, {2});
  backward(a + b, seed);
  op::add_(a.grad(), op::scalar_like(a.grad(), 100.0));
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{101, 101}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{1, 1}));
  EXPECT_EQ(seed.to_vector<double>(), (std::vector<double>{1, 1}));
  // ...and a leaf fed straight by mul's saved input is not aliased with it
  Tensor c = vec({1, 2}), d = vec({3, 4});
  backward(sum(c * d));
  op::add_(c.grad(), op::scalar_like(c.grad(), 100.0));
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{3, 4}));
}

TEST(AutogradEngine, BackwardOnALeafItself) {
  Tensor x = leaf(Tensor::scalar(2.0, DType::Float64));
  backward(x);
  EXPECT_EQ(x.grad().item<double>(), 1.0);
}

TEST(AutogradEngine, DiamondGraphSumsBothPaths) {
  Tensor x = vec({1, 2, 3});
  Tensor y = x * x + x;  // dy/dx = 2x + 1
  backward(sum(y));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3, 5, 7}));
  // a wider diamond: h feeds three consumers that meet again
  Tensor z = vec({0.5, -1.0});
  Tensor h = exp(z);
  backward(sum(h * 2.0 + h * h + sin(h)));  // d/dz = h * (2 + 2h + cos h)
  const auto hv = op::exp(z.detach()).to_vector<double>();
  const auto gz = z.grad().to_vector<double>();
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(gz[i], hv[i] * (2 + 2 * hv[i] + std::cos(hv[i])), 1e-12);
}

TEST(AutogradEngine, DeepChainDoesNotOverflowTheStack) {
  Tensor x = vec({1.0, -2.0});
  Tensor y = x;
  const int depth = 2000;
  for (int i = 0; i < depth; ++i) y = y + x;
  backward(sum(y));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{depth + 1.0, depth + 1.0}));
  // a long chain of unary ops with a multiplicative gradient
  Tensor s = vec({0.3});
  Tensor t = s;
  for (int i = 0; i < depth; ++i) t = t * 1.0005;
  backward(sum(t));
  EXPECT_NEAR(s.grad().item<double>(), std::pow(1.0005, depth), 1e-9);
}

// Runs `body` on a thread with only `stack_bytes` of stack, so that work proportional to the
// graph's depth on the stack (recursion per node) overflows quickly instead of at millions of nodes.
void run_on_small_stack(size_t stack_bytes, void (*body)()) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, stack_bytes), 0);
  pthread_t thread;
  auto trampoline = [](void* fn) -> void* {
    reinterpret_cast<void (*)()>(fn)();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, trampoline, reinterpret_cast<void*>(body)), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
}

TEST(AutogradEngine, DeepGraphIsFreedWithoutRecursion) {
  // 12000 chained nodes on a 256 KiB stack: freeing them one nested shared_ptr destructor per
  // node (~30+ bytes of stack each) would crash; the backward pass must be iterative as well.
  run_on_small_stack(256 * 1024, [] {
    Tensor x = vec({1.0});
    {
      Tensor y = x;
      for (int i = 0; i < 12000; ++i) y = y + x;
      backward(sum(y));
    }  // the whole graph is freed here
    EXPECT_EQ(x.grad().item<double>(), 12001.0);
  });
}

TEST(AutogradEngine, RetainGradOnNonLeaf) {
  Tensor x = vec({1, 2, 3});
  Tensor h = x * 2.0;
  h.retain_grad();
  Tensor k = h + 1.0;  // no retain_grad
  backward(sum(k * h));  // d/dh = k + h = 2h + 1,  d/dk = h
  ASSERT_TRUE(h.grad().defined());
  EXPECT_EQ(h.grad().to_vector<double>(), (std::vector<double>{5, 9, 13}));
  EXPECT_FALSE(k.grad().defined());
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{10, 18, 26}));
  // retain_grad on the root keeps the seed; on a leaf it changes nothing
  Tensor x2 = vec({1, 2, 3});
  Tensor r = sum(x2 * x2);
  r.retain_grad();
  x2.retain_grad();
  backward(r);
  EXPECT_EQ(r.grad().item<double>(), 1.0);
  EXPECT_TRUE(x2.is_leaf());
  EXPECT_EQ(x2.grad().to_vector<double>(), (std::vector<double>{2, 4, 6}));
}

TEST(AutogradEngine, NonScalarNeedsAnExplicitGradient) {
  Generator g(61);
  Tensor x = randn({3, 4}, g);
  Tensor y = x * 2.0;
  const std::string msg = error_of([&] { backward(y); });
  EXPECT_NE(msg.find("[3, 4]"), std::string::npos) << msg;
  // with an explicit gradient it works (and the error above did not free the graph)
  const Tensor gy = op::normal({3, 4}, 0.0, 1.0, g, DType::Float64);
  backward(y, gy);
  expect_near(x.grad(), op::mul(gy, 2.0), 0);
  // a gradient of the wrong shape or dtype is refused
  Tensor y2 = x * 3.0;
  EXPECT_THROW(backward(y2, Tensor::ones({4, 3}, DType::Float64)), Error);
  EXPECT_THROW(backward(y2, Tensor::ones({3, 4}, DType::Float32)), Error);
  // a one-element non-scalar tensor may omit it
  Tensor one = leaf(Tensor::ones({1, 1}, DType::Float64));
  backward(one * 5.0);
  EXPECT_EQ(one.grad().item<double>(), 5.0);
}

TEST(AutogradEngine, SecondBackwardNeedsRetainGraph) {
  Tensor x = vec({1, 2}), w = vec({3, 4});
  Tensor loss = sum(x * w);
  backward(loss);
  const std::string msg = error_of([&] { backward(loss); });
  EXPECT_NE(msg.find("retain_graph"), std::string::npos) << msg;
  // the failed call must not have accumulated anything
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3, 4}));

  Tensor a = vec({1, 2}), b = vec({3, 4});
  Tensor loss2 = sum(exp(a) * b);
  backward(loss2, Tensor(), /*retain_graph=*/true);
  const auto first_a = a.grad().to_vector<double>(), first_b = b.grad().to_vector<double>();
  backward(loss2, Tensor(), /*retain_graph=*/true);
  backward(loss2);  // the last call may free it
  const auto ga = a.grad().to_vector<double>(), gb = b.grad().to_vector<double>();
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(ga[i], 3 * first_a[i], 1e-12);
    EXPECT_NEAR(gb[i], 3 * first_b[i], 1e-12);
  }
  EXPECT_THROW(backward(loss2), Error);
}

TEST(AutogradEngine, InPlaceModificationOfSavedTensorIsCaught) {
  {
    Tensor x = vec({1, 2}), w = vec({3, 4});
    Tensor y = sum(x * w);  // mul saves x and w
    w.detach().fill_(0.0);   // writes w's storage
    const std::string msg = error_of([&] { backward(y); });
    EXPECT_NE(msg.find("modified in place"), std::string::npos) << msg;
    EXPECT_NE(msg.find("mul"), std::string::npos) << msg;
  }
  {
    Tensor x = vec({1, 2}), w = vec({3, 4});
    Tensor y = sum(x * w);
    op::add_(w, op::scalar_like(w, 1.0));
    EXPECT_NE(error_of([&] { backward(y); }).find("modified in place"), std::string::npos);
  }
  {
    // through a view that shares storage: writing part of w still invalidates the saved w
    Tensor x = vec({1, 2, 3}), w = vec({3, 4, 5});
    Tensor y = sum(x * w);
    w.narrow(0, 2, 1).fill_(7.0);
    EXPECT_NE(error_of([&] { backward(y); }).find("modified in place"), std::string::npos);
  }
  {
    // ops that save nothing (add) are unaffected by in-place writes of their inputs
    Tensor x = vec({1, 2}), w = vec({3, 4});
    Tensor y = sum(x + w);
    w.detach().fill_(0.0);
    EXPECT_NO_THROW(backward(y));
    EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 1}));
  }
}

TEST(AutogradEngine, NoGradGuard) {
  Tensor x = vec({1, 2});
  EXPECT_TRUE(GradMode::enabled());
  {
    NoGradGuard outer;
    EXPECT_FALSE(GradMode::enabled());
    Tensor y = exp(x * 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    {
      NoGradGuard inner;
      EXPECT_FALSE(GradMode::enabled());
    }
    EXPECT_FALSE(GradMode::enabled());  // the inner guard restores "off", not "on"
    EXPECT_THROW(backward(sum(y)), Error);
  }
  EXPECT_TRUE(GradMode::enabled());
  Tensor z = x * 2.0;
  EXPECT_TRUE(z.requires_grad());
  EXPECT_NE(z.grad_fn(), nullptr);
  // set_enabled(true) inside a guard, then the guard's exit still restores the outer state
  {
    NoGradGuard guard;
    GradMode::set_enabled(true);
    EXPECT_TRUE((x * 2.0).requires_grad());
  }
  EXPECT_TRUE(GradMode::enabled());
}

TEST(AutogradEngine, BackwardWithoutRequiresGradThrows) {
  Tensor x = Tensor::ones({3}, DType::Float64);
  Tensor y = sum(x * 2.0);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(backward(y), Error);
  EXPECT_THROW(backward(Tensor()), Error);
}

TEST(AutogradEngine, IntegerOutputsNeverRequireGrad) {
  Tensor x = vec({1.5, -2.5});
  const Tensor i = to_dtype(x, DType::Int64);
  EXPECT_FALSE(i.requires_grad());
  EXPECT_EQ(i.grad_fn(), nullptr);
  const Tensor i32 = to_dtype(x * 2.0, DType::Int32);
  EXPECT_FALSE(i32.requires_grad());
  // integer leaves cannot ask for gradients
  EXPECT_THROW(Tensor::from_vector<int64_t>({1, 2}, {2}).set_requires_grad(true), Error);
  // set_requires_grad on a non-leaf throws (either value)
  Tensor y = x * 2.0;
  EXPECT_THROW(y.set_requires_grad(false), Error);
  EXPECT_THROW(y.set_requires_grad(true), Error);
  // index_select with an int64 index: the result is differentiable, the index is not
  Tensor e = index_select(x, 0, Tensor::from_vector<int64_t>({1, 1, 0}, {3}));
  EXPECT_TRUE(e.requires_grad());
  backward(sum(e));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 2}));
}

// ---------------------------------------------------------------- user-defined Functions

// out0 = a * b,  out1 = sin(a) + b²  (a and b the same shape)
struct MulAndMix final : Function {
  MulAndMix() : Function("mul_and_mix") {}
  std::vector<Tensor> seen_grad_outputs;  // what backward received
  std::vector<bool> seen_needs;           // needs_input_grad(0), (1) during backward
  int backward_calls = 0;

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    save_for_backward({in[0], in[1]});
    return {op::mul(in[0], in[1]), op::add(op::sin(in[0]), op::square(in[1]))};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    ++backward_calls;
    seen_grad_outputs = g;
    seen_needs = {needs_input_grad(0), needs_input_grad(1)};
    const auto s = saved();
    const Tensor &a = s[0], &b = s[1];
    std::vector<Tensor> grads(2);
    if (needs_input_grad(0)) grads[0] = op::add(op::mul(g[0], b), op::mul(g[1], op::cos(a)));
    if (needs_input_grad(1)) grads[1] = op::add(op::mul(g[0], a), op::mul(op::mul(g[1], b), 2.0));
    return grads;
  }
};

TEST(AutogradFunction, TwoInputsTwoOutputsGradcheck) {
  Generator g(62);
  Tensor a = randn({3, 4}, g), b = randn({3, 4}, g);
  auto both = [](const std::vector<Tensor>& in) {
    const auto out = apply(std::make_shared<MulAndMix>(), {in[0], in[1]});
    return out[0] * out[1];
  };
  auto only_second = [](const std::vector<Tensor>& in) { return apply(std::make_shared<MulAndMix>(), {in[0], in[1]})[1]; };
  auto only_first = [](const std::vector<Tensor>& in) { return apply(std::make_shared<MulAndMix>(), {in[0], in[1]})[0]; };
  for (const auto& f : {std::function<Tensor(const std::vector<Tensor>&)>(both), {only_second}, {only_first}}) {
    const GradcheckResult r = gradcheck(f, {a, b});
    EXPECT_TRUE(r.ok) << r.message;
  }
  // composed with built-in ops on both sides, and a non-contiguous input
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        const auto out = apply(std::make_shared<MulAndMix>(), {transpose(in[0], 0, 1), exp(in[1])});
        return sum(out[1], {0}) + sum(out[0], {0});
      },
      {randn({4, 3}, g), randn({3, 4}, g)});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(AutogradFunction, UnusedOutputGetsZeroGradient) {
  Generator g(63);
  Tensor a = randn({3, 4}, g), b = randn({3, 4}, g);
  auto fn = std::make_shared<MulAndMix>();
  const auto out = apply(fn, {a, b});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].requires_grad());
  EXPECT_EQ(out[0].grad_fn(), out[1].grad_fn());
  backward(sum(out[1]));  // out[0] does not reach the loss
  ASSERT_EQ(fn->backward_calls, 1);
  ASSERT_EQ(fn->seen_grad_outputs.size(), 2u);
  ASSERT_TRUE(fn->seen_grad_outputs[0].defined());
  EXPECT_EQ(fn->seen_grad_outputs[0].shape(), (Shape{3, 4}));
  for (double v : fn->seen_grad_outputs[0].to_vector<double>()) EXPECT_EQ(v, 0.0);
  expect_near(a.grad(), op::cos(a.detach()), 1e-15);
  expect_near(b.grad(), op::mul(b.detach(), 2.0), 1e-15);
}

TEST(AutogradFunction, NeedsInputGradAndNoRecording) {
  Generator g(64);
  Tensor a = randn({2}, g);
  const Tensor b = op::normal({2}, 0.0, 1.0, g, DType::Float64);  // needs no gradient
  auto fn = std::make_shared<MulAndMix>();
  const auto out = apply(fn, {a, b});
  backward(sum(out[0] + out[1]));
  EXPECT_EQ(fn->seen_needs, (std::vector<bool>{true, false}));
  EXPECT_FALSE(b.grad().defined());
  // no input requires grad: nothing is recorded
  auto fn2 = std::make_shared<MulAndMix>();
  const auto out2 = apply(fn2, {b, b});
  EXPECT_FALSE(out2[0].requires_grad());
  EXPECT_EQ(out2[0].grad_fn(), nullptr);
  // under NoGradGuard neither
  NoGradGuard guard;
  const auto out3 = apply(std::make_shared<MulAndMix>(), {a, b});
  EXPECT_FALSE(out3[1].requires_grad());
  // and an unrecorded forward keeps nothing alive: its save_for_backward saved no handle to a's storage
  const long handles = a.impl_ptr()->storage.use_count();
  auto fn3 = std::make_shared<MulAndMix>();
  apply(fn3, {a, b});
  EXPECT_EQ(a.impl_ptr()->storage.use_count(), handles);
}

// Returns its input unchanged (the same handle) plus an integer output.
struct IdentityAndCount final : Function {
  IdentityAndCount() : Function("identity_and_count") {}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    return {in[0], Tensor::from_vector<int64_t>({in[0].numel()}, {1})};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    EXPECT_EQ(g[1].dtype(), DType::Int64);  // the integer output's (zero) gradient
    return {g[0]};
  }
};

TEST(AutogradFunction, OutputThatIsAnInputAndIntegerOutput) {
  Tensor x = vec({1, 2, 3});
  const auto out = apply(std::make_shared<IdentityAndCount>(), {x});
  EXPECT_TRUE(x.is_leaf());  // x keeps being a leaf; out[0] is a new handle with a grad_fn
  EXPECT_FALSE(out[0].is_leaf());
  EXPECT_FALSE(out[1].requires_grad());
  EXPECT_EQ(out[1].grad_fn(), nullptr);
  backward(sum(out[0] * 2.0));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 2, 2}));
}

struct BadShape final : Function {
  BadShape() : Function("bad_shape") {}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override { return {op::mul(in[0], 2.0)}; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {op::sum(g[0], {0})}; }  // [3,4] -> [4]
};
struct BadCount final : Function {
  BadCount() : Function("bad_count") {}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override { return {op::mul(in[0], 2.0)}; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {g[0], g[0]}; }
};
struct BadDtype final : Function {
  BadDtype() : Function("bad_dtype") {}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override { return {op::mul(in[0], 2.0)}; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {g[0].to(DType::Float32)}; }
};

TEST(AutogradFunction, WrongGradientsAreReportedWithTheOpName) {
  Generator g(65);
  Tensor x = randn({3, 4}, g);
  const std::string shape_msg = error_of([&] { backward(sum(apply(std::make_shared<BadShape>(), {x})[0])); });
  EXPECT_NE(shape_msg.find("bad_shape"), std::string::npos) << shape_msg;
  EXPECT_NE(shape_msg.find("[4]"), std::string::npos) << shape_msg;
  EXPECT_NE(shape_msg.find("[3, 4]"), std::string::npos) << shape_msg;
  const std::string count_msg = error_of([&] { backward(sum(apply(std::make_shared<BadCount>(), {x})[0])); });
  EXPECT_NE(count_msg.find("bad_count"), std::string::npos) << count_msg;
  const std::string dtype_msg = error_of([&] { backward(sum(apply(std::make_shared<BadDtype>(), {x})[0])); });
  EXPECT_NE(dtype_msg.find("bad_dtype"), std::string::npos) << dtype_msg;
}

// square with a deliberately wrong backward: 2x the true gradient (factor 4 instead of 2)
struct WrongSquare final : Function {
  explicit WrongSquare(double factor) : Function("wrong_square"), factor_(factor) {}
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    save_for_backward({in[0]});
    return {op::mul(in[0], in[0])};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    return {op::mul(op::mul(g[0], saved()[0]), factor_)};
  }
  double factor_;
};

TEST(AutogradGradcheck, DetectsAWrongBackward) {
  Generator g(66);
  Tensor x = randn({3, 4}, g);
  const auto with_factor = [](double factor) {
    return [factor](const std::vector<Tensor>& in) { return apply(std::make_shared<WrongSquare>(factor), {in[0]})[0]; };
  };
  const GradcheckResult right = gradcheck(with_factor(2.0), {x});
  EXPECT_TRUE(right.ok) << right.message;
  const GradcheckResult wrong = gradcheck(with_factor(4.0), {x});
  EXPECT_FALSE(wrong.ok);
  EXPECT_FALSE(static_cast<bool>(wrong));
  EXPECT_NE(wrong.message.find("gradcheck"), std::string::npos) << wrong.message;
  // even a tiny relative error (1e-3) is far outside the default tolerance
  const GradcheckResult slightly = gradcheck(with_factor(2.002), {x});
  EXPECT_FALSE(slightly.ok);
  // a gradient put in the wrong place (transposed) with the right total is caught too
  const GradcheckResult misplaced = gradcheck(
      [](const std::vector<Tensor>& in) {
        struct Misplaced final : Function {
          Misplaced() : Function("misplaced") {}
          std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
            save_for_backward({in[0]});
            return {op::square(in[0])};
          }
          std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
            // reverse the order of the elements: same multiset of values, wrong positions
            const Tensor true_grad = op::mul(op::mul(g[0], saved()[0]), 2.0).contiguous();
            const auto v = true_grad.to_vector<double>();
            return {Tensor::from_vector<double>({v.rbegin(), v.rend()}, true_grad.shape())};
          }
        };
        return apply(std::make_shared<Misplaced>(), {in[0]})[0];
      },
      {x});
  EXPECT_FALSE(misplaced.ok);
  // float32 inputs are refused
  EXPECT_THROW(gradcheck([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {randn({2}, g, DType::Float32)}),
               Error);
}

// ---------------------------------------------------------------- a network checked by hand

struct Mlp {
  Tensor x, y, w1, b1, w2, b2;
};

Mlp make_mlp(Generator& g, DType dtype) {
  const int64_t n = 5, d = 4, h = 6, o = 3;
  Mlp m;
  m.x = op::normal({n, d}, 0.0, 1.0, g, dtype);
  m.y = op::normal({n, o}, 0.0, 1.0, g, dtype);
  m.w1 = randn({d, h}, g, dtype);
  m.b1 = randn({h}, g, dtype);
  m.w2 = randn({h, o}, g, dtype);
  m.b2 = randn({o}, g, dtype);
  return m;
}

Tensor mlp_loss(const Mlp& m) {
  const Tensor hidden = tanh(matmul(m.x, m.w1) + m.b1);
  const Tensor out = matmul(hidden, m.w2) + m.b2;
  const Tensor diff = out - m.y;
  return mean(diff * diff);
}

TEST(AutogradNetwork, TwoLayerMlpMatchesHandDerivedGradients) {
  Generator g(67);
  const Mlp m = make_mlp(g, DType::Float64);
  // the network passes gradcheck with respect to all four parameters (it leaves their .grad cleared)
  const GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>& in) {
        Mlp p = m;
        p.w1 = in[0], p.b1 = in[1], p.w2 = in[2], p.b2 = in[3];
        return mlp_loss(p);
      },
      {m.w1, m.b1, m.w2, m.b2});
  EXPECT_TRUE(r.ok) << r.message;

  const Tensor loss = mlp_loss(m);
  backward(loss);

  // Textbook backward pass, with raw ops only:
  //   z = x W1 + b1, h = tanh z, out = h W2 + b2, L = mean((out - y)²) over N·O elements
  //   dout = 2 (out - y) / (N·O);  dW2 = hᵀ dout;  db2 = Σ_rows dout
  //   dh = dout W2ᵀ;  dz = dh ⊙ (1 - h²);  dW1 = xᵀ dz;  db1 = Σ_rows dz
  NoGradGuard no_grad;
  const Tensor w1 = m.w1.detach(), b1 = m.b1.detach(), w2 = m.w2.detach(), b2 = m.b2.detach();
  const Tensor h = op::tanh(op::add(op::matmul(m.x, w1), b1));
  const Tensor out = op::add(op::matmul(h, w2), b2);
  const double count = static_cast<double>(out.numel());
  const Tensor dout = op::mul(op::sub(out, m.y), 2.0 / count);
  const Tensor dw2 = op::matmul(h.transpose(0, 1), dout);
  const Tensor db2 = op::sum(dout, {0});
  const Tensor dh = op::matmul(dout, w2.transpose(0, 1));
  const Tensor dz = op::mul(dh, op::sub(op::ones_like(h), op::mul(h, h)));
  const Tensor dw1 = op::matmul(m.x.transpose(0, 1), dz);
  const Tensor db1 = op::sum(dz, {0});

  const Tensor expected_loss = op::mean(op::square(op::sub(out, m.y)));
  EXPECT_NEAR(loss.item<double>(), expected_loss.item<double>(), 1e-14);
  expect_near(m.w1.grad(), dw1, 1e-13);
  expect_near(m.b1.grad(), db1, 1e-13);
  expect_near(m.w2.grad(), dw2, 1e-13);
  expect_near(m.b2.grad(), db2, 1e-13);
}

TEST(AutogradNetwork, Float32PathMatchesFloat64) {
  Generator g(68);
  const Mlp m32 = make_mlp(g, DType::Float32);
  Mlp m64;
  m64.x = m32.x.to(DType::Float64);
  m64.y = m32.y.to(DType::Float64);
  for (auto [src, dst] : {std::pair{&m32.w1, &m64.w1}, {&m32.b1, &m64.b1}, {&m32.w2, &m64.w2}, {&m32.b2, &m64.b2}})
    *dst = leaf(src->detach().to(DType::Float64));
  const Tensor loss32 = mlp_loss(m32);
  EXPECT_EQ(loss32.dtype(), DType::Float32);
  backward(loss32);
  backward(mlp_loss(m64));
  for (auto [p32, p64] : {std::pair{&m32.w1, &m64.w1}, {&m32.b1, &m64.b1}, {&m32.w2, &m64.w2}, {&m32.b2, &m64.b2}}) {
    ASSERT_TRUE(p32->grad().defined());
    EXPECT_EQ(p32->grad().dtype(), DType::Float32);
    EXPECT_EQ(p64->grad().dtype(), DType::Float64);
    const auto a = p32->grad().to_vector<double>(), b = p64->grad().to_vector<double>();
    double scale = 0;
    for (double v : b) scale = std::max(scale, std::abs(v));
    ASSERT_GT(scale, 0.0);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * scale) << "element " << i;
  }
  // a float32 graph seeded with a float32 gradient of the right shape works; a float64 seed does not
  Tensor v = randn({3}, g, DType::Float32);
  Tensor w = exp(v);
  EXPECT_THROW(backward(w, Tensor::ones({3}, DType::Float64)), Error);
  backward(w, Tensor::ones({3}, DType::Float32));
  EXPECT_EQ(v.grad().dtype(), DType::Float32);
}

}  // namespace
