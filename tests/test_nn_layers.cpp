// Tests for nn/module.h, nn/layers.h, nn/functional.h and nn/init.h.
//
// Every forward is compared with a naive reference written here with plain loops over host
// vectors (no hard-coded outputs). Each fused autograd function (rms_norm, gated_rms_norm,
// cross_entropy, causal_conv1d) is also run through ssm::gradcheck in float64 and compared, values
// and gradients, with a "composed twin" built from the elementwise autograd ops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "nn/functional.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "tensor/random.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using namespace ssm;
using ssm::nn::StateDict;

// ---------------------------------------------------------------- helpers

Tensor rand_t(const Shape& shape, Generator& gen, DType dtype = DType::Float32, double lo = -1.0, double hi = 1.0) {
  return op::uniform(shape, lo, hi, gen, dtype);
}

Tensor leaf(const Shape& shape, Generator& gen, DType dtype = DType::Float64, double lo = -1.0, double hi = 1.0) {
  Tensor t = rand_t(shape, gen, dtype, lo, hi);
  t.set_requires_grad(true);
  return t;
}

std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

double sigmoid_d(double v) { return 1.0 / (1.0 + std::exp(-v)); }
double silu_d(double v) { return v * sigmoid_d(v); }

// |a - b| <= atol + rtol·|b| elementwise, reporting the first few mismatches.
void expect_close(const std::vector<double>& got, const std::vector<double>& want, double atol, double rtol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = atol + rtol * std::abs(want[i]);
    if (!(std::abs(got[i] - want[i]) <= tol) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (tol " << tol << ")";
  }
}

void expect_close(const Tensor& got, const std::vector<double>& want, double atol, double rtol,
                  const std::string& what) {
  expect_close(vals(got), want, atol, rtol, what);
}

// Message of the ssm::Error thrown by f ("" and a failure if nothing is thrown).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ssm exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an ssm::Error";
  return "";
}

#define EXPECT_HAS(msg, part) EXPECT_NE(std::string(msg).find(part), std::string::npos) << "message: " << (msg)

void clear_grads(const std::vector<Tensor>& ts) {
  for (const Tensor& t : ts)
    if (t.defined()) t.set_grad(Tensor());
}

// Runs f twice (fused vs twin) on the same leaves and compares the outputs and the gradients of
// sum(out · r) for a fixed random r.
void compare_with_twin(const std::function<Tensor(const std::vector<Tensor>&)>& fused,
                       const std::function<Tensor(const std::vector<Tensor>&)>& twin, const std::vector<Tensor>& inputs,
                       const std::string& what, double tol = 1e-12) {
  Generator gen(1234);
  clear_grads(inputs);
  const Tensor y1 = fused(inputs);
  const Tensor r = rand_t(y1.shape(), gen, y1.dtype());
  backward(sum(mul(y1, r)));
  std::vector<std::vector<double>> g1;
  for (const Tensor& t : inputs) g1.push_back(t.defined() && t.requires_grad() ? vals(t.grad()) : std::vector<double>{});
  clear_grads(inputs);
  const Tensor y2 = twin(inputs);
  ASSERT_EQ(y1.shape(), y2.shape()) << what;
  backward(sum(mul(y2, r)));
  expect_close(y1, vals(y2), tol, tol, what + " value");
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !inputs[i].requires_grad()) continue;
    expect_close(g1[i], vals(inputs[i].grad()), tol, tol, what + " grad of input " + std::to_string(i));
  }
  clear_grads(inputs);
}

void expect_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                      const std::string& what) {
  const GradcheckResult result = gradcheck(f, inputs);
  EXPECT_TRUE(result.ok) << what << ": " << result.message;
}

// The gradients of `params` (summed over row blocks) have the same bits with one thread and with three.
void expect_parameter_grads_independent_of_threads(const std::function<Tensor(const std::vector<Tensor>&)>& fused,
                                                   const std::vector<Tensor>& inputs,
                                                   const std::vector<Tensor>& params, Generator& gen,
                                                   const std::string& what) {
#ifdef _OPENMP
  const Tensor y = fused(inputs);
  const Tensor dy = rand_t(y.shape(), gen, y.dtype());
  std::vector<std::vector<std::vector<double>>> grads;  // [thread count][param]
  const int threads = omp_get_max_threads();
  for (const int t : {1, 3}) {
    omp_set_num_threads(t);
    clear_grads(inputs);
    backward(sum(mul(fused(inputs), dy)));
    grads.emplace_back();
    for (const Tensor& p : params) grads.back().push_back(vals(p.grad()));
  }
  omp_set_num_threads(threads);
  clear_grads(inputs);
  for (size_t i = 0; i < params.size(); ++i) EXPECT_EQ(grads[0][i], grads[1][i]) << what << ", parameter " << i;
#else
  (void)fused, (void)inputs, (void)params, (void)gen, (void)what;
#endif
}

// ---------------------------------------------------------------- naive references

// rms norm over groups of n consecutive channels of rows of width D; w has D entries.
std::vector<double> naive_rms_norm(const std::vector<double>& x, const std::vector<double>& w, int64_t D, int64_t n,
                                   double eps) {
  std::vector<double> y(x.size());
  for (size_t row = 0; row < x.size() / D; ++row)
    for (int64_t g0 = 0; g0 < D; g0 += n) {
      double ss = 0;
      for (int64_t k = 0; k < n; ++k) ss += x[row * D + g0 + k] * x[row * D + g0 + k];
      const double r = 1.0 / std::sqrt(ss / n + eps);
      for (int64_t k = 0; k < n; ++k) y[row * D + g0 + k] = x[row * D + g0 + k] * r * w[g0 + k];
    }
  return y;
}

// y[.., o] = b[o] + Σ_i x[.., i] W[o, i]
std::vector<double> naive_linear(const std::vector<double>& x, const std::vector<double>& W,
                                 const std::vector<double>* b, int64_t in, int64_t out) {
  const size_t rows = x.size() / in;
  std::vector<double> y(rows * out);
  for (size_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b ? (*b)[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += x[r * in + i] * W[o * in + i];
      y[r * out + o] = acc;
    }
  return y;
}

// ---------------------------------------------------------------- composed twins

Tensor twin_rms_norm(const Tensor& x, const Tensor& w, double eps, int64_t group_size) {
  const int64_t D = x.size(-1), n = group_size > 0 ? group_size : D;
  Shape grouped(x.shape().begin(), x.shape().end() - 1);
  grouped.push_back(D / n);
  grouped.push_back(n);
  const Tensor xg = reshape(x, grouped);
  const Tensor normed = mul(xg, rsqrt(add(mean(square(xg), {-1}, true), eps)));
  return mul(reshape(normed, x.shape()), w);
}

Tensor twin_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const int64_t V = logits.size(-1);
  const Tensor z = reshape(logits, {-1, V});
  const std::vector<int64_t> t = targets.to_vector<int64_t>();
  std::vector<int64_t> safe(t.size());
  std::vector<double> keep(t.size());
  double count = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const bool ignored = t[i] == ignore_index;
    safe[i] = ignored ? 0 : t[i];
    keep[i] = ignored ? 0.0 : 1.0;
    count += keep[i];
  }
  const int64_t N = static_cast<int64_t>(t.size());
  const Tensor idx = Tensor::from_vector<int64_t>(safe, {N, 1});
  const Tensor mask = Tensor::from_vector<double>(keep, {N, 1}).to(logits.dtype());
  const Tensor per_row = sub(logsumexp(z, {-1}, true), gather(z, 1, idx));  // [N, 1]
  return mul(sum(mul(per_row, mask)), count > 0 ? 1.0 / count : 0.0);
}

Tensor twin_causal_conv1d(const Tensor& x, const Tensor& w, const Tensor& b, bool with_silu = false) {
  const int64_t Bn = x.size(0), L = x.size(1), C = x.size(2), K = w.size(2);
  const Tensor xp = cat({Tensor::zeros({Bn, K - 1, C}, x.dtype()), x}, 1);
  Tensor out = b.defined() ? mul(expand(b, x.shape()), 1.0) : Tensor::zeros(x.shape(), x.dtype());
  for (int64_t j = 0; j < K; ++j) out = add(out, mul(narrow(xp, 1, j, L), select(select(w, 2, j), 1, 0)));
  return with_silu ? silu(out) : out;
}

// ---------------------------------------------------------------- a small module tree

class Tree : public nn::Module {
 public:
  explicit Tree(Generator& gen) {
    scale = register_parameter("scale", Tensor::ones({4}));
    proj = register_module("proj", std::make_shared<nn::Linear>(4, 3, true, gen));
    mlp = register_module("mlp", std::make_shared<nn::GatedMLP>(3, 100, gen));  // hidden 128
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.5));
  }
  Tensor scale;
  std::shared_ptr<nn::Linear> proj;
  std::shared_ptr<nn::GatedMLP> mlp;
  std::shared_ptr<nn::Dropout> drop;
};

class Outer : public nn::Module {
 public:
  explicit Outer(Generator& gen) {
    inner = register_module("inner", std::make_shared<Tree>(gen));
    norm = register_module("norm", std::make_shared<nn::RMSNorm>(3));
  }
  std::shared_ptr<Tree> inner;
  std::shared_ptr<nn::RMSNorm> norm;
};

std::vector<std::string> names_of(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, _] : m.named_parameters()) out.push_back(name);
  return out;
}

std::vector<std::vector<double>> snapshot(const nn::Module& m) {
  std::vector<std::vector<double>> out;
  for (const Tensor& p : m.parameters()) out.push_back(vals(p));
  return out;
}

// ================================================================ Module

TEST(NnModule, DottedNamesInRegistrationOrder) {
  Generator gen(1);
  Tree tree(gen);
  const std::vector<std::string> expected = {"scale", "proj.weight", "proj.bias", "mlp.fc1.weight", "mlp.fc2.weight"};
  EXPECT_EQ(names_of(tree), expected);

  Outer outer(gen);
  const std::vector<std::string> nested = {"inner.scale",          "inner.proj.weight",    "inner.proj.bias",
                                           "inner.mlp.fc1.weight", "inner.mlp.fc2.weight", "norm.weight"};
  EXPECT_EQ(names_of(outer), nested);
  // The handles are the layers' own tensors.
  const auto named = outer.named_parameters();
  EXPECT_TRUE(named[1].second.is_same(outer.inner->proj->weight));
  EXPECT_TRUE(named[3].second.is_same(outer.inner->mlp->fc1->weight));
  EXPECT_TRUE(named[5].second.is_same(outer.norm->weight));
  for (const Tensor& p : outer.parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_TRUE(p.is_leaf());
  }
}

TEST(NnModule, NumParameters) {
  Generator gen(2);
  Tree tree(gen);
  // scale 4, proj 4·3 + 3, fc1 (2·128)·3, fc2 3·128
  EXPECT_EQ(tree.num_parameters(), 4 + 12 + 3 + 256 * 3 + 3 * 128);
  Outer outer(gen);
  EXPECT_EQ(outer.num_parameters(), tree.num_parameters() + 3);
  EXPECT_EQ(outer.parameters().size(), 6u);
}

TEST(NnModule, StateDictHoldsTheParametersThemselves) {
  Generator gen(3);
  Outer m(gen);
  const StateDict sd = m.state_dict();
  ASSERT_EQ(sd.size(), 6u);
  for (const auto& [name, p] : m.named_parameters()) {
    ASSERT_TRUE(sd.count(name)) << name;
    EXPECT_TRUE(sd.at(name).is_same(p)) << name;
  }
  // Writing through the state dict writes the parameter.
  {
    NoGradGuard ng;
    sd.at("norm.weight").fill_(7.0);
  }
  EXPECT_EQ(vals(m.norm->weight), std::vector<double>(3, 7.0));
}

TEST(NnModule, LoadStateDictCopiesValuesAndKeepsHandles) {
  Generator gen_a(4), gen_b(5);
  Outer a(gen_a), b(gen_b);
  const Tensor handle = a.inner->proj->weight;
  const auto before_b = snapshot(b);
  ASSERT_NE(snapshot(a), before_b);
  a.load_state_dict(b.state_dict());
  EXPECT_EQ(snapshot(a), before_b);
  EXPECT_TRUE(a.inner->proj->weight.is_same(handle));
  EXPECT_TRUE(a.named_parameters()[1].second.is_same(handle));
  // Copies, not aliases: changing b afterwards leaves a alone.
  {
    NoGradGuard ng;
    b.inner->proj->weight.fill_(0.25);
  }
  EXPECT_EQ(vals(a.inner->proj->weight), before_b[1]);
  EXPECT_TRUE(a.inner->proj->weight.requires_grad());
  EXPECT_TRUE(a.inner->proj->weight.is_leaf());

  // Values of another dtype are converted to the parameter's dtype.
  StateDict f64;
  for (const auto& [name, p] : b.named_parameters()) f64.emplace(name, p.to(DType::Float64).detach());
  Outer c(gen_a);
  c.load_state_dict(f64);
  EXPECT_EQ(snapshot(c), snapshot(b));
  EXPECT_EQ(c.inner->scale.dtype(), DType::Float32);
}

TEST(NnModule, LoadStateDictErrorsNameTheKeyAndLeaveParametersUnchanged) {
  Generator gen_a(6), gen_b(7);
  Outer a(gen_a), b(gen_b);
  const auto before = snapshot(a);
  auto fresh = [&] {
    StateDict sd;
    for (const auto& [name, p] : b.named_parameters()) sd.emplace(name, p.clone());
    return sd;
  };

  {  // missing key (the last one, so everything before it would have been copied by a careless loader)
    StateDict sd = fresh();
    sd.erase("norm.weight");
    const std::string msg = error_of([&] { a.load_state_dict(sd); });
    EXPECT_HAS(msg, "missing");
    EXPECT_HAS(msg, "norm.weight");
    EXPECT_EQ(snapshot(a), before);
  }
  {  // unexpected key
    StateDict sd = fresh();
    sd.emplace("inner.extra.weight", Tensor::zeros({2}));
    const std::string msg = error_of([&] { a.load_state_dict(sd); });
    EXPECT_HAS(msg, "unexpected");
    EXPECT_HAS(msg, "inner.extra.weight");
    EXPECT_EQ(snapshot(a), before);
  }
  {  // wrong shape: both shapes named
    StateDict sd = fresh();
    sd["inner.mlp.fc2.weight"] = Tensor::zeros({128, 3});
    const std::string msg = error_of([&] { a.load_state_dict(sd); });
    EXPECT_HAS(msg, "inner.mlp.fc2.weight");
    EXPECT_HAS(msg, "[128, 3]");
    EXPECT_HAS(msg, "[3, 128]");
    EXPECT_EQ(snapshot(a), before);
  }
  {  // the same parameter count but a transposed layout is still a shape error
    StateDict sd = fresh();
    sd["inner.proj.weight"] = Tensor::zeros({4, 3});
    const std::string msg = error_of([&] { a.load_state_dict(sd); });
    EXPECT_HAS(msg, "inner.proj.weight");
    EXPECT_HAS(msg, "[4, 3]");
    EXPECT_HAS(msg, "[3, 4]");
    EXPECT_EQ(snapshot(a), before);
  }
}

TEST(NnModule, LoadStateDictIgnoredKeys) {
  Generator gen_a(8), gen_b(9);
  Outer a(gen_a), b(gen_b);
  StateDict sd = b.state_dict();
  sd.emplace("lm_head.weight", Tensor::zeros({5, 3}));  // e.g. a tied head in an official checkpoint
  EXPECT_THROW(a.load_state_dict(sd), Error);
  EXPECT_NO_THROW(a.load_state_dict(sd, {"lm_head.weight"}));
  EXPECT_EQ(snapshot(a), snapshot(b));
  // An ignored key may also be absent (module.h: "may be absent from state ... or present and ignored").
  EXPECT_NO_THROW(a.load_state_dict(b.state_dict(), {"lm_head.weight"}));
  // Ignoring one key does not excuse another.
  sd.emplace("other", Tensor::zeros({1}));
  EXPECT_THROW(a.load_state_dict(sd, {"lm_head.weight"}), Error);
}

TEST(NnModule, IgnoredKeyThatIsAParameterMayBeAbsent) {
  Generator gen_a(10), gen_b(11);
  Outer a(gen_a), b(gen_b);
  const auto before_norm = vals(a.norm->weight);
  StateDict sd;
  for (const auto& [name, p] : b.named_parameters())
    if (name != "norm.weight") sd.emplace(name, p);
  EXPECT_THROW(a.load_state_dict(sd), Error);
  EXPECT_NO_THROW(a.load_state_dict(sd, {"norm.weight"}));
  EXPECT_EQ(vals(a.norm->weight), before_norm);  // untouched
  EXPECT_EQ(vals(a.inner->proj->weight), vals(b.inner->proj->weight));
  // Present and ignored: not loaded.
  StateDict full;
  for (const auto& [name, p] : b.named_parameters()) full.emplace(name, p.clone());
  {
    NoGradGuard ng;
    full.at("norm.weight").fill_(-3.0);
  }
  EXPECT_NO_THROW(a.load_state_dict(full, {"norm.weight"}));
  EXPECT_EQ(vals(a.norm->weight), before_norm);
  a.load_state_dict(full);
  EXPECT_EQ(vals(a.norm->weight), std::vector<double>(3, -3.0));
}

TEST(NnModule, TrainEvalPropagatesToChildren) {
  Generator gen(12);
  Outer m(gen);
  EXPECT_TRUE(m.is_training());
  EXPECT_TRUE(m.inner->drop->is_training());
  m.eval();
  EXPECT_FALSE(m.is_training());
  EXPECT_FALSE(m.inner->is_training());
  EXPECT_FALSE(m.inner->drop->is_training());
  EXPECT_FALSE(m.inner->mlp->fc1->is_training());
  EXPECT_FALSE(m.norm->is_training());
  const Tensor x = rand_t({4, 5}, gen);
  EXPECT_TRUE(m.inner->drop->forward(x, gen).is_same(x));  // dropout is the identity in eval
  m.train();
  EXPECT_TRUE(m.inner->drop->is_training());
  EXPECT_TRUE(m.inner->mlp->fc2->is_training());
  m.inner->train(false);  // a subtree only
  EXPECT_TRUE(m.is_training());
  EXPECT_FALSE(m.inner->drop->is_training());
  EXPECT_TRUE(m.norm->is_training());
}

TEST(NnModule, ZeroGradDropsEveryGradient) {
  Generator gen(13);
  Tree t(gen);
  const Tensor x = rand_t({2, 4}, gen);
  backward(sum(t.mlp->forward(t.proj->forward(mul(x, t.scale)))));
  for (const Tensor& p : t.parameters()) EXPECT_TRUE(p.grad().defined());
  t.zero_grad();
  for (const Tensor& p : t.parameters()) EXPECT_FALSE(p.grad().defined());
}

// ================================================================ Linear / Embedding / GatedMLP

TEST(NnLayers, LinearForwardMatchesLoops) {
  Generator gen(20);
  for (const bool with_bias : {true, false}) {
    nn::Linear lin(5, 7, with_bias, gen);
    EXPECT_EQ(lin.weight.shape(), (Shape{7, 5}));
    EXPECT_EQ(lin.bias.defined(), with_bias);
    EXPECT_EQ(lin.num_parameters(), with_bias ? 42 : 35);
    const std::vector<double> W = vals(lin.weight);
    const std::vector<double> b = with_bias ? vals(lin.bias) : std::vector<double>{};
    const Tensor xt = rand_t({5, 4}, gen).transpose(0, 1);  // non-contiguous [4, 5]
    expect_close(lin.forward(xt), naive_linear(vals(xt), W, with_bias ? &b : nullptr, 5, 7), 1e-6, 1e-6,
                 "linear transposed input");
    for (const Shape& shape : {Shape{5}, Shape{3, 5}, Shape{2, 3, 5}}) {
      const Tensor x = rand_t(shape, gen);
      const Tensor y = lin.forward(x);
      Shape want_shape = shape;
      want_shape.back() = 7;
      EXPECT_EQ(y.shape(), want_shape);
      expect_close(y, naive_linear(vals(x), W, with_bias ? &b : nullptr, 5, 7), 1e-6, 1e-6, "linear");
    }
  }
}

TEST(NnLayers, LinearGradientsMatchLoops) {
  Generator gen(21);
  nn::Linear lin(4, 3, true, gen);
  const Tensor x = leaf({2, 5, 4}, gen, DType::Float32);
  const Tensor r = rand_t({2, 5, 3}, gen);
  backward(sum(mul(lin.forward(x), r)));
  const auto xv = vals(x), rv = vals(r), W = vals(lin.weight);
  std::vector<double> dW(12, 0.0), db(3, 0.0), dx(40, 0.0);
  for (int row = 0; row < 10; ++row)
    for (int o = 0; o < 3; ++o) {
      db[o] += rv[row * 3 + o];
      for (int i = 0; i < 4; ++i) {
        dW[o * 4 + i] += rv[row * 3 + o] * xv[row * 4 + i];
        dx[row * 4 + i] += rv[row * 3 + o] * W[o * 4 + i];
      }
    }
  expect_close(lin.weight.grad(), dW, 1e-5, 1e-5, "dW");
  expect_close(lin.bias.grad(), db, 1e-5, 1e-5, "db");
  expect_close(x.grad(), dx, 1e-5, 1e-5, "dx");
}

// forward_parts is split(forward(x)) as one node (matmul_parts without a bias, the split itself with one):
// the same parts and the same gradients, bit for bit, with and without a bias; sizes that miss the layer's
// width are an error.
TEST(NnLayers, LinearForwardPartsEqualsTheSplitForward) {
  for (const bool with_bias : {false, true}) {
    SCOPED_TRACE(with_bias ? "with bias" : "no bias");
    Generator gen(23);
    nn::Linear lin(4, 6, with_bias, gen);
    const Tensor x = leaf({2, 5, 4}, gen, DType::Float32);
    const std::vector<int64_t> sizes{1, 3, 2};
    std::vector<std::vector<double>> grads[2];
    std::vector<std::vector<double>> parts[2];
    for (int fused = 0; fused < 2; ++fused) {
      for (const Tensor& t : lin.parameters()) t.set_grad(Tensor());
      x.set_grad(Tensor());
      const std::vector<Tensor> out = fused ? lin.forward_parts(x, sizes) : split(lin.forward(x), sizes, -1);
      Tensor loss = sum(exp(out[0])) + sum(square(out[2]));  // out[1] unused: its gradient is zeros
      backward(loss);
      for (const Tensor& p : out) parts[fused].push_back(vals(p));
      grads[fused] = {vals(x.grad()), vals(lin.weight.grad())};
      if (with_bias) grads[fused].push_back(vals(lin.bias.grad()));
    }
    EXPECT_EQ(parts[1], parts[0]);
    EXPECT_EQ(grads[1], grads[0]);
    EXPECT_THROW(lin.forward_parts(x, {3, 2}), Error);
  }
}

TEST(NnLayers, EmbeddingForwardAndGradient) {
  Generator gen(22);
  nn::Embedding emb(6, 4, gen);
  EXPECT_EQ(emb.weight.shape(), (Shape{6, 4}));
  const std::vector<int64_t> ids = {0, 5, 2, 2, 5, 3};
  const std::vector<double> W = vals(emb.weight);
  for (const bool int32 : {false, true}) {
    const Tensor id_t = int32 ? Tensor::from_vector<int32_t>({0, 5, 2, 2, 5, 3}, {2, 3})
                              : Tensor::from_vector<int64_t>(ids, {2, 3});
    const Tensor y = emb.forward(id_t);
    EXPECT_EQ(y.shape(), (Shape{2, 3, 4}));
    std::vector<double> want;
    for (int64_t id : ids)
      for (int d = 0; d < 4; ++d) want.push_back(W[id * 4 + d]);
    EXPECT_EQ(vals(y), want);
  }
  // Gradient: rows accumulate, repeated ids add up, unused rows get zero.
  emb.zero_grad();
  const Tensor r = rand_t({2, 3, 4}, gen);
  backward(sum(mul(emb.forward(Tensor::from_vector<int64_t>(ids, {2, 3})), r)));
  std::vector<double> dW(24, 0.0);
  const auto rv = vals(r);
  for (size_t k = 0; k < ids.size(); ++k)
    for (int d = 0; d < 4; ++d) dW[ids[k] * 4 + d] += rv[k * 4 + d];
  expect_close(emb.weight.grad(), dW, 1e-6, 1e-6, "embedding grad");
}

TEST(NnLayers, GatedMLPForwardAndHiddenRounding) {
  Generator gen(23);
  EXPECT_EQ(nn::GatedMLP(3, 100, gen).hidden, 128);
  EXPECT_EQ(nn::GatedMLP(3, 128, gen).hidden, 128);
  EXPECT_EQ(nn::GatedMLP(3, 129, gen).hidden, 256);
  EXPECT_EQ(nn::GatedMLP(3, 1, gen).hidden, 128);
  EXPECT_EQ(nn::GatedMLP(3, 100, gen, 64).hidden, 128);
  EXPECT_EQ(nn::GatedMLP(3, 10, gen, 8).hidden, 16);
  EXPECT_EQ(nn::GatedMLP(3, 10, gen, 1).hidden, 10);

  nn::GatedMLP mlp(5, 20, gen, 8);  // hidden 24
  ASSERT_EQ(mlp.hidden, 24);
  EXPECT_EQ(mlp.fc1->weight.shape(), (Shape{48, 5}));
  EXPECT_EQ(mlp.fc2->weight.shape(), (Shape{5, 24}));
  EXPECT_FALSE(mlp.fc1->bias.defined());
  EXPECT_FALSE(mlp.fc2->bias.defined());
  const Tensor x = rand_t({2, 3, 5}, gen, DType::Float32, -2, 2);
  const Tensor y = mlp.forward(x);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 5}));
  const auto h = naive_linear(vals(x), vals(mlp.fc1->weight), nullptr, 5, 48);  // [6, 48]
  std::vector<double> act(6 * 24);
  for (int r = 0; r < 6; ++r)
    for (int k = 0; k < 24; ++k) act[r * 24 + k] = h[r * 48 + k] * silu_d(h[r * 48 + 24 + k]);
  expect_close(y, naive_linear(act, vals(mlp.fc2->weight), nullptr, 24, 5), 1e-5, 1e-5, "gated mlp");
}

// ================================================================ RMSNorm

TEST(NnLayers, RMSNormForwardMatchesLoops) {
  Generator gen(30);
  for (const int64_t group : {0, 2, 3, 6}) {
    const Tensor x = rand_t({3, 2, 6}, gen, DType::Float32, -3, 3);
    const Tensor w = rand_t({6}, gen, DType::Float32, 0.5, 1.5);
    const Tensor y = nn::rms_norm(x, w, 1e-5, group);
    EXPECT_EQ(y.shape(), x.shape());
    expect_close(y, naive_rms_norm(vals(x), vals(w), 6, group == 0 ? 6 : group, 1e-5), 1e-6, 1e-6,
                 "rms_norm group " + std::to_string(group));
  }
  // A non-contiguous (transposed) input.
  const Tensor xt = rand_t({6, 5}, gen).transpose(0, 1);
  ASSERT_FALSE(xt.is_contiguous());
  const Tensor wt = rand_t({6}, gen);
  expect_close(nn::rms_norm(xt, wt, 1e-5, 3), naive_rms_norm(vals(xt), vals(wt), 6, 3, 1e-5), 1e-6, 1e-6,
               "rms_norm transposed");
  // eps matters for tiny inputs, and a 1-d input works.
  const Tensor tiny = Tensor::from_vector<double>({1e-4, -2e-4, 3e-4}, {3});
  const Tensor w = Tensor::from_vector<double>({1, 2, 3}, {3});
  expect_close(nn::rms_norm(tiny, w, 1e-2), naive_rms_norm(vals(tiny), vals(w), 3, 3, 1e-2), 0, 1e-14, "eps");
  // The layer: weight of ones, the default eps of 1e-5.
  nn::RMSNorm norm(6);
  EXPECT_EQ(vals(norm.weight), std::vector<double>(6, 1.0));
  EXPECT_EQ(norm.eps, 1e-5);
  const Tensor x = rand_t({4, 6}, gen);
  expect_close(norm.forward(x), naive_rms_norm(vals(x), vals(norm.weight), 6, 6, 1e-5), 1e-6, 1e-6, "RMSNorm");
}

TEST(NnLayers, GatedRMSNormForwardMatchesLoops) {
  Generator gen(31);
  const int64_t D = 8;
  for (const bool before : {false, true})
    for (const int64_t group : {0, 4}) {
      const Tensor x = rand_t({2, 3, D}, gen, DType::Float64, -2, 2);
      const Tensor z = rand_t({2, 3, D}, gen, DType::Float64, -3, 3);
      const Tensor w = rand_t({D}, gen, DType::Float64, 0.5, 1.5);
      const auto xv = vals(x), zv = vals(z), wv = vals(w);
      std::vector<double> want;
      const int64_t n = group == 0 ? D : group;
      if (before) {
        want = naive_rms_norm(xv, wv, D, n, 1e-5);
        for (size_t i = 0; i < want.size(); ++i) want[i] *= silu_d(zv[i]);
      } else {
        std::vector<double> u(xv.size());
        for (size_t i = 0; i < u.size(); ++i) u[i] = xv[i] * silu_d(zv[i]);
        want = naive_rms_norm(u, wv, D, n, 1e-5);
      }
      const std::string what = std::string("gated before=") + (before ? "1" : "0") + " group=" + std::to_string(group);
      expect_close(nn::gated_rms_norm(x, z, w, 1e-5, group, before), want, 1e-13, 1e-12, what);
      nn::GatedRMSNorm layer(D, 1e-5, group, before);
      {
        NoGradGuard ng;
        layer.weight.copy_(w);
      }
      expect_close(layer.forward(x.to(DType::Float32), z.to(DType::Float32)), want, 1e-5, 1e-5, what + " layer");
    }
}

TEST(NnLayers, RMSNormGradcheckAndTwin) {
  Generator gen(32);
  for (const int64_t group : {0, 2}) {
    const Tensor x = leaf({2, 3, 4}, gen);
    const Tensor w = leaf({4}, gen, DType::Float64, 0.5, 1.5);
    auto fused = [group](const std::vector<Tensor>& in) { return nn::rms_norm(in[0], in[1], 1e-5, group); };
    auto twin = [group](const std::vector<Tensor>& in) { return twin_rms_norm(in[0], in[1], 1e-5, group); };
    expect_gradcheck(fused, {x, w}, "rms_norm group " + std::to_string(group));
    compare_with_twin(fused, twin, {x, w}, "rms_norm twin group " + std::to_string(group));
  }
  // Only one input requiring grad.
  const Tensor x = leaf({3, 4}, gen);
  const Tensor w = rand_t({4}, gen, DType::Float64);
  auto fused = [](const std::vector<Tensor>& in) { return nn::rms_norm(in[0], in[1]); };
  auto twin = [](const std::vector<Tensor>& in) { return twin_rms_norm(in[0], in[1], 1e-5, 0); };
  expect_gradcheck(fused, {x, w}, "rms_norm x only");
  compare_with_twin(fused, twin, {x, w}, "rms_norm x only");
  const Tensor x2 = rand_t({3, 4}, gen, DType::Float64);
  const Tensor w2 = leaf({4}, gen);
  expect_gradcheck(fused, {x2, w2}, "rms_norm w only");
  compare_with_twin(fused, twin, {x2, w2}, "rms_norm w only");
}

// Many rows (more than the backward's 32 row blocks of dw partials), float32 and float64: the CPU row
// loops against the tensor-op twin, and dw's bits the same for one thread and three.
// Gated too (the gate before and after the norm; "none" is the plain RMSNorm).
TEST(NnLayers, RMSNormRowLoopsOnManyRowsMatchTheTwinAndAnyThreadCount) {
  Generator gen(34);
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const int64_t group : {0, 4})
      for (const std::string gate : {"none", "before", "after"}) {
        const Tensor x = leaf({5, 37, 12}, gen, dtype, -2, 2);
        // (no gradient for z without a gate)
        const Tensor z = gate == "none" ? rand_t({5, 37, 12}, gen, dtype, -3, 3) : leaf({5, 37, 12}, gen, dtype, -3, 3);
        const Tensor w = leaf({12}, gen, dtype, 0.5, 1.5);
        auto fused = [=](const std::vector<Tensor>& in) {
          if (gate == "none") return nn::rms_norm(in[0], in[2], 1e-5, group);
          return nn::gated_rms_norm(in[0], in[1], in[2], 1e-5, group, gate == "after");
        };
        auto twin = [=](const std::vector<Tensor>& in) {
          if (gate == "none") return twin_rms_norm(in[0], in[2], 1e-5, group);
          if (gate == "after") return mul(twin_rms_norm(in[0], in[2], 1e-5, group), silu(in[1]));
          return twin_rms_norm(mul(in[0], silu(in[1])), in[2], 1e-5, group);
        };
        const std::string what = std::string(dtype_name(dtype)) + " group " + std::to_string(group) + " gate " + gate;
        compare_with_twin(fused, twin, {x, z, w}, "rms_norm " + what, dtype == DType::Float32 ? 2e-5 : 1e-12);
        expect_parameter_grads_independent_of_threads(fused, {x, z, w}, {w}, gen, what);
      }
}

// An empty batch: no output, and the weight's gradient is an empty sum — zeros, not whatever memory held.
TEST(NnLayers, RMSNormOfNoRowsGivesAZeroWeightGradient) {
  Generator gen(35);
  const Tensor x = leaf({0, 16}, gen);
  const Tensor w = leaf({16}, gen, DType::Float64, 0.5, 1.5);
  backward(sum(nn::rms_norm(x, w)));
  EXPECT_EQ(x.grad().shape(), (Shape{0, 16}));
  EXPECT_EQ(vals(w.grad()), std::vector<double>(16, 0.0));
}

TEST(NnLayers, GatedRMSNormGradcheckAndTwin) {
  Generator gen(33);
  for (const bool before : {false, true})
    for (const int64_t group : {0, 3}) {
      const Tensor x = leaf({2, 6}, gen);
      const Tensor z = leaf({2, 6}, gen, DType::Float64, -2, 2);
      const Tensor w = leaf({6}, gen, DType::Float64, 0.5, 1.5);
      auto fused = [=](const std::vector<Tensor>& in) {
        return nn::gated_rms_norm(in[0], in[1], in[2], 1e-5, group, before);
      };
      auto twin = [=](const std::vector<Tensor>& in) {
        return before ? mul(twin_rms_norm(in[0], in[2], 1e-5, group), silu(in[1]))
                      : twin_rms_norm(mul(in[0], silu(in[1])), in[2], 1e-5, group);
      };
      const std::string what = std::string("gated before=") + (before ? "1" : "0") + " group=" + std::to_string(group);
      expect_gradcheck(fused, {x, z, w}, what);
      compare_with_twin(fused, twin, {x, z, w}, what);
    }
}

// ================================================================ causal_conv1d

std::vector<double> naive_conv(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>* b,
                               int64_t Bn, int64_t L, int64_t C, int64_t K) {
  std::vector<double> out(Bn * L * C);
  for (int64_t bi = 0; bi < Bn; ++bi)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double acc = b ? (*b)[c] : 0.0;
        for (int64_t j = 0; j < K; ++j) {
          const int64_t src = t - K + 1 + j;
          if (src >= 0) acc += w[c * K + j] * x[(bi * L + src) * C + c];
        }
        out[(bi * L + t) * C + c] = acc;
      }
  return out;
}

TEST(NnLayers, CausalConv1dForwardMatchesLoops) {
  Generator gen(40);
  for (const bool with_silu : {false, true})
    for (const bool with_bias : {true, false})
      for (int64_t K = 1; K <= 4; ++K)
        for (const int64_t L : {1, 2, 5}) {  // L < K included
          const int64_t Bn = 2, C = 3;
          const Tensor x = rand_t({Bn, L, C}, gen, DType::Float64);
          const Tensor w = rand_t({C, 1, K}, gen, DType::Float64);
          const Tensor b = with_bias ? rand_t({C}, gen, DType::Float64) : Tensor();
          const std::vector<double> bv = with_bias ? vals(b) : std::vector<double>{};
          const Tensor y = nn::causal_conv1d(x, w, b, with_silu);
          EXPECT_EQ(y.shape(), x.shape());
          std::vector<double> want = naive_conv(vals(x), vals(w), with_bias ? &bv : nullptr, Bn, L, C, K);
          if (with_silu)
            for (double& v : want) v = silu_d(v);
          expect_close(y, want, 1e-15, 1e-14,
                       "conv K=" + std::to_string(K) + " L=" + std::to_string(L) + " bias=" +
                           std::to_string(with_bias) + " silu=" + std::to_string(with_silu));
        }
  // The layer (float32), its layout and init bound 1/sqrt(K).
  nn::CausalConv1d conv(5, 4, true, gen);
  EXPECT_EQ(conv.weight.shape(), (Shape{5, 1, 4}));
  EXPECT_EQ(conv.bias.shape(), (Shape{5}));
  for (const Tensor& p : {conv.weight, conv.bias})
    for (double v : vals(p)) EXPECT_LE(std::abs(v), 0.5);
  const Tensor x = rand_t({2, 6, 5}, gen);
  const auto bv = vals(conv.bias);
  std::vector<double> want = naive_conv(vals(x), vals(conv.weight), &bv, 2, 6, 5, 4);
  expect_close(conv.forward(x), want, 1e-6, 1e-6, "CausalConv1d");
  for (double& v : want) v = silu_d(v);
  expect_close(conv.forward(x, /*silu=*/true), want, 1e-6, 1e-6, "CausalConv1d + SiLU");
}

TEST(NnLayers, CausalConv1dGradcheckAndTwin) {
  Generator gen(41);
  for (const bool with_silu : {false, true})
    for (const bool with_bias : {true, false})
      for (const auto& [K, L] : std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {3, 4}, {4, 2}}) {
        const Tensor x = leaf({2, L, 3}, gen);
        const Tensor w = leaf({3, 1, K}, gen);
        const Tensor b = with_bias ? leaf({3}, gen) : Tensor();
        auto fused = [=](const std::vector<Tensor>& in) { return nn::causal_conv1d(in[0], in[1], in[2], with_silu); };
        auto twin = [=](const std::vector<Tensor>& in) { return twin_causal_conv1d(in[0], in[1], in[2], with_silu); };
        const std::string what = "conv K=" + std::to_string(K) + " L=" + std::to_string(L) + " bias=" +
                                 std::to_string(with_bias) + " silu=" + std::to_string(with_silu);
        expect_gradcheck(fused, {x, w, b}, what);
        compare_with_twin(fused, twin, {x, w, b}, what);
      }
  // Only the weight requires grad, then only the input.
  for (const bool with_silu : {false, true}) {
    auto fused = [=](const std::vector<Tensor>& in) { return nn::causal_conv1d(in[0], in[1], in[2], with_silu); };
    const Tensor b = rand_t({2}, gen, DType::Float64);
    expect_gradcheck(fused, {rand_t({1, 5, 2}, gen, DType::Float64), leaf({2, 1, 4}, gen), b}, "conv w only");
    expect_gradcheck(fused, {leaf({1, 5, 2}, gen), rand_t({2, 1, 4}, gen, DType::Float64), b}, "conv x only");
  }
}

// Many rows (more than the backward's 32 row blocks of weight sums), sequences shorter and longer than a
// block, float32 and float64: the CPU row loops against the tensor-op twin, and the weight's and bias's
// gradient bits the same for one thread and three.
TEST(NnLayers, CausalConv1dRowLoopsOnManyRowsMatchTheTwinAndAnyThreadCount) {
  Generator gen(42);
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const int64_t L : {7, 45}) {
      const Tensor x = leaf({5, L, 24}, gen, dtype, -2, 2);
      const Tensor w = leaf({24, 1, 4}, gen, dtype);
      const Tensor b = leaf({24}, gen, dtype);
      auto fused = [](const std::vector<Tensor>& in) { return nn::causal_conv1d(in[0], in[1], in[2], true); };
      auto twin = [](const std::vector<Tensor>& in) { return twin_causal_conv1d(in[0], in[1], in[2], true); };
      const std::string what = std::string(dtype_name(dtype)) + " L " + std::to_string(L);
      compare_with_twin(fused, twin, {x, w, b}, "conv " + what, dtype == DType::Float32 ? 2e-5 : 1e-12);
      expect_parameter_grads_independent_of_threads(fused, {x, w, b}, {w, b}, gen, what);
    }
}

// An empty batch: no output, and the weight's and bias's gradients are empty sums — zeros.
TEST(NnLayers, CausalConv1dOfNoRowsGivesZeroWeightGradients) {
  Generator gen(43);
  const Tensor x = leaf({0, 4, 3}, gen);
  const Tensor w = leaf({3, 1, 4}, gen);
  const Tensor b = leaf({3}, gen);
  backward(sum(nn::causal_conv1d(x, w, b, true)));
  EXPECT_EQ(x.grad().shape(), (Shape{0, 4, 3}));
  EXPECT_EQ(vals(w.grad()), std::vector<double>(12, 0.0));
  EXPECT_EQ(vals(b.grad()), std::vector<double>(3, 0.0));
}

// ================================================================ cross_entropy

double naive_cross_entropy(const std::vector<double>& z, const std::vector<int64_t>& t, int64_t V,
                           int64_t ignore_index, std::vector<double>* grad = nullptr) {
  double total = 0;
  int64_t kept = 0;
  for (size_t i = 0; i < t.size(); ++i) kept += t[i] != ignore_index;
  if (grad) grad->assign(z.size(), 0.0);
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == ignore_index) continue;
    double mx = -INFINITY;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, z[i * V + v]);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(z[i * V + v] - mx);
    const double lse = mx + std::log(s);
    total += lse - z[i * V + t[i]];
    if (grad)
      for (int64_t v = 0; v < V; ++v)
        (*grad)[i * V + v] = (std::exp(z[i * V + v] - lse) - (v == t[i] ? 1.0 : 0.0)) / static_cast<double>(kept);
  }
  return kept ? total / static_cast<double>(kept) : 0.0;
}

TEST(NnLayers, CrossEntropyMatchesLoops) {
  Generator gen(50);
  const int64_t V = 7;
  const std::vector<int64_t> t = {3, -100, 0, 6, 2, -100};
  for (const DType dt : {DType::Float64, DType::Float32}) {
    const Tensor z = leaf({2, 3, V}, gen, dt, -4, 4);
    const Tensor targets = Tensor::from_vector<int64_t>(t, {2, 3});
    const Tensor loss = nn::cross_entropy(z, targets);
    EXPECT_EQ(loss.dim(), 0);
    EXPECT_EQ(loss.dtype(), dt);
    std::vector<double> g;
    const double want = naive_cross_entropy(vals(z), t, V, -100, &g);
    const double tol = dt == DType::Float64 ? 1e-14 : 1e-6;
    EXPECT_NEAR(loss.item<double>(), want, tol * std::max(1.0, std::abs(want)));
    backward(loss);
    expect_close(z.grad(), g, tol, tol, "cross_entropy grad");
    // Ignored rows get exactly zero gradient.
    const auto gz = vals(z.grad());
    for (int64_t v = 0; v < V; ++v) {
      EXPECT_EQ(gz[1 * V + v], 0.0);
      EXPECT_EQ(gz[5 * V + v], 0.0);
    }
  }
}

// Enough rows and classes for the CPU row loops to run on several threads: values and gradients
// against the tensor-op twin, float32 and float64, with some rows ignored.
TEST(NnLayers, CrossEntropyRowLoopsOnManyRowsMatchTheTwin) {
  Generator gen(55);
  const int64_t N = 120, V = 300;
  std::vector<int64_t> t(N);
  for (int64_t i = 0; i < N; ++i) t[i] = i % 7 == 3 ? -100 : (i * 37) % V;
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor z = leaf({4, N / 4, V}, gen, dtype, -6, 6);
    const Tensor targets = Tensor::from_vector<int64_t>(t, {4, N / 4});
    auto fused = [](const std::vector<Tensor>& in) { return nn::cross_entropy(in[0], in[1]); };
    auto twin = [](const std::vector<Tensor>& in) { return twin_cross_entropy(in[0], in[1], -100); };
    compare_with_twin(fused, twin, {z, targets}, std::string("cross_entropy ") + dtype_name(dtype),
                      dtype == DType::Float32 ? 1e-5 : 1e-12);
  }
}

TEST(NnLayers, CrossEntropyInt32TargetsAndCustomIgnoreIndex) {
  Generator gen(51);
  const int64_t V = 5;
  const Tensor z = rand_t({4, V}, gen, DType::Float64, -2, 2);
  const std::vector<int64_t> t = {1, 4, 0, 4};
  const double want = naive_cross_entropy(vals(z), t, V, -100);
  const Tensor t32 = Tensor::from_vector<int32_t>({1, 4, 0, 4}, {4});
  EXPECT_NEAR(nn::cross_entropy(z, t32).item<double>(), want, 1e-14);
  EXPECT_NEAR(nn::cross_entropy(z, Tensor::from_vector<int64_t>(t, {4})).item<double>(), want, 1e-14);
  // ignore_index inside the vocabulary (e.g. a pad id): class 4 rows drop out.
  EXPECT_NEAR(nn::cross_entropy(z, t32, 4).item<double>(), naive_cross_entropy(vals(z), t, V, 4), 1e-14);
}

TEST(NnLayers, CrossEntropyOneRowAndNonContiguousLogits) {
  Generator gen(54);
  const Tensor z = rand_t({5}, gen, DType::Float64, -2, 2);  // one row, a rank-0 target
  EXPECT_NEAR(nn::cross_entropy(z, Tensor::from_vector<int64_t>({3}, {})).item<double>(),
              naive_cross_entropy(vals(z), {3}, 5, -100), 1e-14);
  const Tensor zt = leaf({4, 3}, gen).transpose(0, 1);  // [3, 4], non-contiguous
  const std::vector<int64_t> t = {1, 0, 3};
  std::vector<double> g;
  const double want = naive_cross_entropy(vals(zt), t, 4, -100, &g);
  EXPECT_NEAR(nn::cross_entropy(zt, Tensor::from_vector<int64_t>(t, {3})).item<double>(), want, 1e-14);
  // The gradient through the transposed view lands back in the [4, 3] leaf's layout.
  const Tensor base = leaf({4, 3}, gen);
  backward(nn::cross_entropy(transpose(base, 0, 1), Tensor::from_vector<int64_t>(t, {3})));
  naive_cross_entropy(vals(base.transpose(0, 1)), t, 4, -100, &g);
  expect_close(base.grad().transpose(0, 1), g, 1e-14, 1e-12, "transposed grad");
}

TEST(NnLayers, CrossEntropyAllIgnoredIsZeroWithZeroGradient) {
  Generator gen(52);
  const Tensor z = leaf({3, 4}, gen);
  const Tensor loss = nn::cross_entropy(z, Tensor::from_vector<int64_t>({-100, -100, -100}, {3}));
  EXPECT_EQ(loss.item<double>(), 0.0);
  backward(loss);
  for (double g : vals(z.grad())) EXPECT_EQ(g, 0.0);
}

TEST(NnLayers, CrossEntropyHugeLogitsStayFinite) {
  for (const DType dt : {DType::Float32, DType::Float64}) {
    const Tensor z = Tensor::from_vector<double>({1000, 0, -1000, 1000, 999, 0, -1e4, 2e4, 1e4}, {3, 3}).to(dt);
    z.set_requires_grad(true);
    const std::vector<int64_t> t = {0, 1, 0};
    const Tensor loss = nn::cross_entropy(z, Tensor::from_vector<int64_t>(t, {3}));
    std::vector<double> g;
    const double want = naive_cross_entropy(vals(z), t, 3, -100, &g);
    ASSERT_TRUE(std::isfinite(loss.item<double>()));
    EXPECT_NEAR(loss.item<double>(), want, 1e-6 * want);  // = (log(1+e^-1) + 1 + 3e4) / 3
    EXPECT_NEAR(want, (std::log1p(std::exp(-1.0)) + 1.0 + 3e4) / 3.0, 1e-9);
    backward(loss);
    for (double v : vals(z.grad())) EXPECT_TRUE(std::isfinite(v));
    const double gtol = dt == DType::Float32 ? 1e-4 : 1e-12;  // float32: z - lse loses ~ulp(1e4)
    expect_close(z.grad(), g, gtol, gtol, "huge logits grad");
  }
}

TEST(NnLayers, CrossEntropyGradcheckAndTwin) {
  Generator gen(53);
  const int64_t V = 5;
  for (const std::vector<int64_t>& t : {std::vector<int64_t>{0, 4, 2, 1}, std::vector<int64_t>{3, -100, 1, -100}}) {
    const Tensor z = leaf({2, 2, V}, gen, DType::Float64, -3, 3);
    const Tensor targets = Tensor::from_vector<int64_t>(t, {2, 2});
    auto fused = [](const std::vector<Tensor>& in) { return nn::cross_entropy(in[0], in[1]); };
    auto twin = [](const std::vector<Tensor>& in) { return twin_cross_entropy(in[0], in[1], -100); };
    expect_gradcheck(fused, {z, targets}, "cross_entropy");
    compare_with_twin(fused, twin, {z, targets}, "cross_entropy twin");
  }
  // A non-unit upstream gradient (loss · 3) scales the gradient.
  const Tensor z = leaf({3, V}, gen);
  const Tensor targets = Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  auto fused = [](const std::vector<Tensor>& in) { return mul(nn::cross_entropy(in[0], in[1]), 3.0); };
  auto twin = [](const std::vector<Tensor>& in) { return mul(twin_cross_entropy(in[0], in[1], -100), 3.0); };
  compare_with_twin(fused, twin, {z, targets}, "cross_entropy x3");
}

// ================================================================ dropout

TEST(NnLayers, DropoutTrainZeroesAboutPAndScalesTheRest) {
  Generator gen(60);
  const int64_t n = 20000;
  for (const double p : {0.1, 0.5, 0.9}) {
    const Tensor x = leaf({n}, gen, DType::Float32, 1.0, 2.0);  // never 0, so a zero means dropped
    const Tensor y = nn::dropout(x, p, true, gen);
    const auto xv = vals(x), yv = vals(y);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (yv[i] == 0.0) {
        ++zeros;
      } else {
        EXPECT_NEAR(yv[i], xv[i] / (1.0 - p), 1e-6 * yv[i]) << i;
      }
    }
    // Binomial(n, p): 5 standard deviations.
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(zeros), n * p, 5 * sd) << "p=" << p;
    // Backward is the same mask.
    backward(sum(y));
    const auto gv = vals(x.grad());
    for (int64_t i = 0; i < n; ++i) {
      const double want = yv[i] == 0.0 ? 0.0 : 1.0 / (1.0 - p);
      if (std::abs(gv[i] - want) > 1e-6 * want) {
        ADD_FAILURE() << "dropout grad[" << i << "] " << gv[i] << " vs " << want;
        break;
      }
    }
  }
}

TEST(NnLayers, DropoutEvalAndZeroPAreIdentityAndBadPThrows) {
  Generator gen(61);
  const Tensor x = rand_t({10, 10}, gen);
  EXPECT_TRUE(nn::dropout(x, 0.5, false, gen).is_same(x));
  EXPECT_TRUE(nn::dropout(x, 0.0, true, gen).is_same(x));
  const auto state = gen.state();
  nn::dropout(x, 0.3, false, gen);
  EXPECT_EQ(gen.state(), state);  // eval draws nothing
  EXPECT_THROW(nn::dropout(x, 1.0, true, gen), Error);
  EXPECT_THROW(nn::dropout(x, -0.1, true, gen), Error);
  // Same seed, same mask.
  Generator g1(7), g2(7);
  EXPECT_EQ(vals(nn::dropout(x, 0.5, true, g1)), vals(nn::dropout(x, 0.5, true, g2)));
}

// ================================================================ init

TEST(NnLayers, KaimingUniformBoundsAndReproducibility) {
  for (const int64_t fan_in : {1, 25, 160}) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    Generator g1(99), g2(99), g3(100);
    const Tensor a = Tensor::empty({4000}), b = Tensor::empty({4000}), c = Tensor::empty({4000});
    nn::init::kaiming_uniform_(a, fan_in, g1);
    nn::init::kaiming_uniform_(b, fan_in, g2);
    nn::init::kaiming_uniform_(c, fan_in, g3);
    const auto av = vals(a);
    EXPECT_EQ(av, vals(b));
    EXPECT_NE(av, vals(c));
    double lo = 1e9, hi = -1e9, mean = 0;
    for (double v : av) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      mean += v / av.size();
    }
    EXPECT_GE(lo, -bound);
    EXPECT_LE(hi, bound);
    EXPECT_LT(lo, -0.99 * bound);  // the whole range is used
    EXPECT_GT(hi, 0.99 * bound);
    EXPECT_NEAR(mean, 0.0, 5 * bound / std::sqrt(3.0 * av.size()));
  }
  Generator gen(1);
  EXPECT_THROW(nn::init::kaiming_uniform_(Tensor::empty({3}), 0, gen), Error);
}

TEST(NnLayers, LinearDefaultInitWithinBound) {
  Generator gen(70);
  nn::Linear lin(160, 768, true, gen);
  const double bound = 1.0 / std::sqrt(160.0);
  for (const Tensor& p : {lin.weight, lin.bias}) {
    double mx = 0;
    for (double v : vals(p)) mx = std::max(mx, std::abs(v));
    EXPECT_LE(mx, bound);
    EXPECT_GT(mx, 0.95 * bound);
  }
  // The same seed builds the same layer.
  Generator g1(5), g2(5);
  EXPECT_EQ(vals(nn::Linear(8, 4, true, g1).weight), vals(nn::Linear(8, 4, true, g2).weight));
}

TEST(NnLayers, EmbeddingInitIsStandardNormal) {
  Generator gen(71);
  nn::Embedding emb(256, 160, gen);
  const auto v = vals(emb.weight);
  const double n = static_cast<double>(v.size());
  double mean = 0, sq = 0;
  for (double x : v) mean += x / n;
  for (double x : v) sq += (x - mean) * (x - mean) / n;
  EXPECT_NEAR(mean, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(sq), 1.0, 0.02);
  const double frac_within_1 =
      std::count_if(v.begin(), v.end(), [](double x) { return std::abs(x) < 1.0; }) / n;  // 68.27%
  EXPECT_NEAR(frac_within_1, 0.6827, 0.01);
  Generator g2(3);
  const Tensor t = Tensor::empty({1000}, DType::Float64);
  nn::init::normal_(t, 2.0, 0.02, g2);
  double m2 = 0;
  for (double x : vals(t)) m2 += x / 1000;
  EXPECT_NEAR(m2, 2.0, 0.003);
  nn::init::constant_(t, 0.5);
  EXPECT_EQ(vals(t), std::vector<double>(1000, 0.5));
}

// ================================================================ errors

TEST(NnLayers, ErrorsNameTheOpAndShapes) {
  Generator gen(80);
  nn::Linear lin(4, 3, true, gen);
  std::string msg = error_of([&] { lin.forward(Tensor::zeros({2, 5})); });
  EXPECT_HAS(msg, "Linear");
  EXPECT_HAS(msg, "[2, 5]");
  EXPECT_HAS(msg, "4");

  msg = error_of([&] { nn::rms_norm(Tensor::zeros({2, 5}), Tensor::ones({4})); });
  EXPECT_HAS(msg, "rms_norm");
  EXPECT_HAS(msg, "[2, 5]");
  EXPECT_HAS(msg, "[4]");
  msg = error_of([&] { nn::rms_norm(Tensor::zeros({2, 6}), Tensor::ones({6}), 1e-5, 4); });
  EXPECT_HAS(msg, "rms_norm");
  EXPECT_HAS(msg, "4");
  msg = error_of([&] { nn::gated_rms_norm(Tensor::zeros({2, 6}), Tensor::zeros({2, 5}), Tensor::ones({6})); });
  EXPECT_HAS(msg, "gated_rms_norm");
  EXPECT_HAS(msg, "[2, 5]");
  EXPECT_HAS(msg, "[2, 6]");

  msg = error_of([&] { nn::causal_conv1d(Tensor::zeros({1, 3, 5}), Tensor::zeros({4, 1, 3}), Tensor()); });
  EXPECT_HAS(msg, "causal_conv1d");
  EXPECT_HAS(msg, "[4, 1, 3]");
  EXPECT_HAS(msg, "5");
  msg = error_of([&] { nn::causal_conv1d(Tensor::zeros({3, 5}), Tensor::zeros({5, 1, 3}), Tensor()); });
  EXPECT_HAS(msg, "causal_conv1d");
  EXPECT_HAS(msg, "[3, 5]");
  msg = error_of([&] { nn::causal_conv1d(Tensor::zeros({1, 3, 5}), Tensor::zeros({5, 1, 3}), Tensor::zeros({4})); });
  EXPECT_HAS(msg, "causal_conv1d");
  EXPECT_HAS(msg, "[4]");

  const Tensor z = Tensor::zeros({2, 5});
  msg = error_of([&] { nn::cross_entropy(z, Tensor::from_vector<int64_t>({1, 5}, {2})); });
  EXPECT_HAS(msg, "cross_entropy");
  EXPECT_HAS(msg, "target 5");
  EXPECT_HAS(msg, "[0, 5)");
  msg = error_of([&] { nn::cross_entropy(z, Tensor::from_vector<int32_t>({-1, 0}, {2})); });
  EXPECT_HAS(msg, "cross_entropy");
  EXPECT_HAS(msg, "-1");
  msg = error_of([&] { nn::cross_entropy(z, Tensor::from_vector<int64_t>({1, 2, 3}, {3})); });
  EXPECT_HAS(msg, "cross_entropy");
  EXPECT_HAS(msg, "[3]");
  EXPECT_HAS(msg, "[2, 5]");
  msg = error_of([&] { nn::cross_entropy(z, Tensor::zeros({2})); });
  EXPECT_HAS(msg, "cross_entropy");
  EXPECT_HAS(msg, "float32[2]");
}

}  // namespace

// ---- the official LM initialisation rule (spec §4.3)
namespace {
class TinyLm : public ssm::nn::Module {
 public:
  explicit TinyLm(ssm::Generator& gen) {
    embedding = register_module("embedding", std::make_shared<ssm::nn::Embedding>(64, 16, gen));
    in_proj = register_module("in_proj", std::make_shared<ssm::nn::Linear>(16, 32, true, gen));
    out_proj = register_module("out_proj", std::make_shared<ssm::nn::Linear>(32, 16, true, gen));
    conv = register_module("conv", std::make_shared<ssm::nn::CausalConv1d>(8, 4, true, gen));
  }
  std::shared_ptr<ssm::nn::Embedding> embedding;
  std::shared_ptr<ssm::nn::Linear> in_proj, out_proj;
  std::shared_ptr<ssm::nn::CausalConv1d> conv;
};
}  // namespace

TEST(NnLayers, OfficialLmInitFollowsTheSpec) {
  ssm::Generator gen(3);
  TinyLm model(gen);
  const auto conv_bias_before = model.conv->bias.to_vector<float>();
  const auto in_proj_before = model.in_proj->weight.to_vector<float>();
  const int64_t n_layer = 4;
  ssm::nn::init::official_lm_init(model, n_layer, gen);
  for (float b : model.in_proj->bias.to_vector<float>()) EXPECT_EQ(b, 0.0f);   // Linear biases zeroed
  for (float b : model.out_proj->bias.to_vector<float>()) EXPECT_EQ(b, 0.0f);
  EXPECT_EQ(model.conv->bias.to_vector<float>(), conv_bias_before);            // conv untouched
  EXPECT_EQ(model.in_proj->weight.to_vector<float>(), in_proj_before);         // other Linears keep their init
  const double bound = 1.0 / std::sqrt(32.0) / std::sqrt(static_cast<double>(n_layer));
  double largest = 0;
  for (float w : model.out_proj->weight.to_vector<float>()) largest = std::max(largest, std::abs(double(w)));
  EXPECT_LE(largest, bound);
  EXPECT_GT(largest, 0.8 * bound);  // 512 draws fill the range
  double sum_sq = 0;
  const auto emb = model.embedding->weight.to_vector<float>();
  for (float w : emb) sum_sq += double(w) * w;
  EXPECT_NEAR(std::sqrt(sum_sq / emb.size()), 0.02, 0.002);  // N(0, 0.02) over 1024 draws
}
