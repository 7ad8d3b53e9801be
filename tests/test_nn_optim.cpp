// Tests for nn/optim.h and nn/schedule.h.
//
// Optimiser updates are checked against the formulas of optim.h re-computed here with plain
// scalar arithmetic in double; schedules against the peer recipe's formula
// (../shared/ref/peer_train.py) written out in the test.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "nn/functional.h"
#include "nn/gradient_step.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "tensor/random.h"

namespace {

using namespace ssm;
using nn::NamedParameters;
using nn::ParamGroup;
using nn::StateDict;

std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

Tensor param(const std::vector<double>& v, const Shape& shape, DType dtype = DType::Float64) {
  Tensor t = Tensor::from_vector<double>(v, shape).to(dtype);
  t.set_requires_grad(true);
  return t;
}

void set_grad(const Tensor& p, const std::vector<double>& g) {
  p.set_grad(Tensor::from_vector<double>(g, p.shape()).to(p.dtype()));
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << "[" << i << "]";
}

// ---------------------------------------------------------------- hand-computed references

struct AdamRef {
  std::vector<double> p, m, v;
  double beta1, beta2, eps, wd;
  int t = 0;
  void step(const std::vector<double>& g, double lr) {
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] = p[i] - lr * wd * p[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(beta1, t));
      const double v_hat = v[i] / (1 - std::pow(beta2, t));
      p[i] = p[i] - lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

struct SgdRef {
  std::vector<double> p, buf;
  double mu, wd;
  bool first = true;
  void step(const std::vector<double>& g, double lr) {
    if (first) buf.assign(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      if (mu != 0) {
        buf[i] = first ? d : mu * buf[i] + d;
        d = buf[i];
      }
      p[i] -= lr * d;
    }
    first = false;
  }
};

const std::vector<std::vector<double>> kGrads = {
    {0.3, -0.2, 0.05, 1.5, -0.7, 0.0}, {-0.1, 0.4, 0.2, 1.2, 0.3, 0.01}, {0.25, 0.25, -0.5, -2.0, 0.6, -0.02}};
const std::vector<double> kInit = {0.5, -1.0, 2.0, 0.1, -0.3, 0.8};
const std::vector<double> kLrs = {1e-2, 5e-2, 2e-2};  // a schedule changes lr between steps

// ================================================================ AdamW

TEST(NnOptim, AdamWMatchesHandComputedSteps) {
  for (const double wd : {0.0, 0.1})
    for (const double eps : {1e-8, 1e-2})  // the larger eps tells "outside the sqrt" from "inside"
      for (const DType dt : {DType::Float64, DType::Float32}) {
        const Tensor p = param(kInit, {2, 3}, dt);
        nn::AdamW opt({ParamGroup{{{"w", p}}, wd}}, kLrs[0], 0.9, 0.95, eps);
        AdamRef ref{kInit, std::vector<double>(6, 0.0), std::vector<double>(6, 0.0), 0.9, 0.95, eps, wd};
        for (int s = 0; s < 3; ++s) {
          opt.lr = kLrs[s];
          set_grad(p, kGrads[s]);
          opt.step();
          ref.step(kGrads[s], kLrs[s]);
          const double tol = dt == DType::Float64 ? 1e-14 : 2e-6;
          expect_close(vals(p), ref.p, tol,
                       "adamw wd=" + std::to_string(wd) + " eps=" + std::to_string(eps) + " step " + std::to_string(s));
        }
        EXPECT_EQ(opt.step_count, 3);
        const StateDict st = opt.state_dict();
        const double tol = dt == DType::Float64 ? 1e-15 : 1e-6;
        expect_close(vals(st.at("exp_avg.w")), ref.m, tol, "exp_avg");
        expect_close(vals(st.at("exp_avg_sq.w")), ref.v, tol, "exp_avg_sq");
        EXPECT_EQ(st.at("step").item<int64_t>(), 3);
        EXPECT_TRUE(p.is_leaf());
        EXPECT_TRUE(p.requires_grad());
      }
}

TEST(NnOptim, AdamWDefaultHyperparameters) {
  const Tensor p = param(kInit, {6});
  nn::AdamW opt({ParamGroup{{{"v", p}}, 0.0}}, 1e-3);
  EXPECT_EQ(opt.beta1, 0.9);
  EXPECT_EQ(opt.beta2, 0.999);
  EXPECT_EQ(opt.eps, 1e-8);
  EXPECT_EQ(opt.lr, 1e-3);
  AdamRef ref{kInit, std::vector<double>(6, 0.0), std::vector<double>(6, 0.0), 0.9, 0.999, 1e-8, 0.0};
  for (int s = 0; s < 3; ++s) {
    set_grad(p, kGrads[s]);
    opt.step();
    ref.step(kGrads[s], 1e-3);
  }
  expect_close(vals(p), ref.p, 1e-14, "adamw defaults");
}

TEST(NnOptim, DecayGroupsSplitMatricesFromVectorsAndBiases) {
  const NamedParameters named = {
      {"in_proj.weight", param(std::vector<double>(6, 1.0), {2, 3})},
      {"in_proj.bias", param(std::vector<double>(2, 1.0), {2})},
      {"x.B_bias", param(std::vector<double>(6, 1.0), {2, 3})},  // a matrix, but a bias by name
      {"norm.weight", param(std::vector<double>(3, 1.0), {3})},
      {"conv1d.weight", param(std::vector<double>(8, 1.0), {2, 1, 4})},
      {"D", param({1.0}, {})},
      {"embedding.weight", param(std::vector<double>(4, 1.0), {2, 2})},
  };
  const auto groups = nn::decay_groups(named, 0.1);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].weight_decay, 0.1);
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  auto names = [](const ParamGroup& g) {
    std::vector<std::string> out;
    for (const auto& [n, _] : g.params) out.push_back(n);
    return out;
  };
  EXPECT_EQ(names(groups[0]), (std::vector<std::string>{"in_proj.weight", "conv1d.weight", "embedding.weight"}));
  EXPECT_EQ(names(groups[1]), (std::vector<std::string>{"in_proj.bias", "x.B_bias", "norm.weight", "D"}));
  EXPECT_TRUE(groups[0].params[0].second.is_same(named[0].second));

  // Through AdamW: with zero gradients only the decayed group moves, by exactly (1 - lr·wd).
  nn::AdamW opt(groups, 0.5);
  for (const auto& [_, p] : named) p.set_grad(op::zeros_like(p));
  opt.step();
  for (const auto& [name, p] : named) {
    const bool decayed = name == "in_proj.weight" || name == "conv1d.weight" || name == "embedding.weight";
    for (double v : vals(p)) EXPECT_DOUBLE_EQ(v, decayed ? 1.0 - 0.5 * 0.1 : 1.0) << name;
  }
}

TEST(NnOptim, WeightDecayOnlyOnTheDecayedGroup) {
  // The same gradients on a decayed matrix and an undecayed vector: each follows its own formula.
  const Tensor w = param(kInit, {2, 3});
  const Tensor b = param(kInit, {6});
  nn::AdamW opt(nn::decay_groups({{"w", w}, {"b", b}}, 0.2), 0.05, 0.9, 0.95);
  AdamRef rw{kInit, std::vector<double>(6, 0.0), std::vector<double>(6, 0.0), 0.9, 0.95, 1e-8, 0.2};
  AdamRef rb{kInit, std::vector<double>(6, 0.0), std::vector<double>(6, 0.0), 0.9, 0.95, 1e-8, 0.0};
  for (int s = 0; s < 3; ++s) {
    set_grad(w, kGrads[s]);
    set_grad(b, kGrads[s]);
    opt.step();
    rw.step(kGrads[s], 0.05);
    rb.step(kGrads[s], 0.05);
  }
  expect_close(vals(w), rw.p, 1e-14, "decayed");
  expect_close(vals(b), rb.p, 1e-14, "not decayed");
  EXPECT_NE(vals(w), vals(b));
}

TEST(NnOptim, ParametersWithoutGradAreSkipped) {
  const Tensor a = param(kInit, {6});
  const Tensor b = param(kInit, {2, 3});
  nn::AdamW adam({ParamGroup{{{"a", a}, {"b", b}}, 0.1}}, 0.1);
  set_grad(a, kGrads[0]);
  adam.step();
  EXPECT_NE(vals(a), kInit);
  EXPECT_EQ(vals(b), kInit);  // no grad: not even decayed
  const StateDict st = adam.state_dict();
  EXPECT_TRUE(st.count("exp_avg.a"));
  EXPECT_FALSE(st.count("exp_avg.b"));
  EXPECT_FALSE(st.count("exp_avg_sq.b"));
  for (const auto& [k, t] : st) EXPECT_TRUE(t.defined()) << k;

  for (const double mu : {0.0, 0.9}) {
    const Tensor c = param(kInit, {6});
    const Tensor d = param(kInit, {6});
    nn::SGD sgd({ParamGroup{{{"c", c}, {"d", d}}, 0.1}}, 0.1, mu);
    set_grad(c, kGrads[0]);
    sgd.step();
    EXPECT_NE(vals(c), kInit);
    EXPECT_EQ(vals(d), kInit);
    for (const auto& [k, t] : sgd.state_dict()) EXPECT_TRUE(t.defined()) << "momentum " << mu << ": " << k;
    EXPECT_FALSE(sgd.state_dict().count("momentum_buffer.d"));
  }
}

TEST(NnOptim, ZeroGradDropsGradients) {
  const Tensor a = param(kInit, {6});
  nn::AdamW opt({ParamGroup{{{"a", a}}, 0.0}}, 0.1);
  set_grad(a, kGrads[0]);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  opt.step();  // nothing to do
  EXPECT_EQ(vals(a), kInit);
}

TEST(NnOptim, ConstructorRejectsParametersThatDoNotRequireGrad) {
  const Tensor t = Tensor::zeros({3});
  EXPECT_THROW(nn::AdamW({ParamGroup{{{"t", t}}, 0.0}}, 0.1), Error);
}

// ================================================================ SGD

TEST(NnOptim, SGDMatchesHandComputedSteps) {
  for (const double mu : {0.0, 0.9})
    for (const double wd : {0.0, 0.05})
      for (const DType dt : {DType::Float64, DType::Float32}) {
        const Tensor p = param(kInit, {3, 2}, dt);
        nn::SGD opt({ParamGroup{{{"p", p}}, wd}}, kLrs[0], mu);
        SgdRef ref{kInit, {}, mu, wd};
        for (int s = 0; s < 3; ++s) {
          opt.lr = kLrs[s];
          set_grad(p, kGrads[s]);
          opt.step();
          ref.step(kGrads[s], kLrs[s]);
          expect_close(vals(p), ref.p, dt == DType::Float64 ? 1e-15 : 1e-6,
                       "sgd mu=" + std::to_string(mu) + " wd=" + std::to_string(wd) + " step " + std::to_string(s));
        }
        const StateDict st = opt.state_dict();
        EXPECT_EQ(st.at("step").item<int64_t>(), 3);
        if (mu != 0) {
          expect_close(vals(st.at("momentum_buffer.p")), ref.buf, dt == DType::Float64 ? 1e-15 : 1e-6, "buffer");
        } else {
          EXPECT_EQ(st.size(), 1u) << "plain SGD keeps no buffers";
        }
      }
}

TEST(NnOptim, SGDFirstStepBufferIsTheGradient) {
  // PyTorch semantics: after one step with momentum, the buffer is g (not (1 - dampening)·g or μ·0 + g scaled).
  const Tensor p = param({1.0, 2.0}, {2});
  nn::SGD opt({ParamGroup{{{"p", p}}, 0.0}}, 0.1, 0.9);
  set_grad(p, {0.5, -1.0});
  opt.step();
  EXPECT_EQ(vals(opt.state_dict().at("momentum_buffer.p")), (std::vector<double>{0.5, -1.0}));
  expect_close(vals(p), {1.0 - 0.05, 2.0 + 0.1}, 1e-15, "first step");
  set_grad(p, {0.5, -1.0});
  opt.step();
  expect_close(vals(opt.state_dict().at("momentum_buffer.p")), {0.5 * 1.9, -1.0 * 1.9}, 1e-15, "second buffer");
}

// ================================================================ clip_grad_norm

TEST(NnOptim, ClipGradNorm) {
  for (const DType dt : {DType::Float64, DType::Float32}) {
    const Tensor a = param({0, 0, 0}, {3}, dt), b = param({0, 0, 0, 0}, {2, 2}, dt), c = param({0}, {1}, dt);
    const std::vector<double> ga = {3.0, -4.0, 1.0}, gb = {2.0, 0.5, -1.5, 6.0};
    double want = 0;
    for (double g : ga) want += g * g;
    for (double g : gb) want += g * g;
    want = std::sqrt(want);
    set_grad(a, ga);
    set_grad(b, gb);  // c has no grad: skipped
    const double tol = dt == DType::Float64 ? 1e-14 : 1e-6;
    const double norm = nn::clip_grad_norm({a, b, c}, 1.0);
    EXPECT_NEAR(norm, want, tol * want);
    EXPECT_FALSE(c.grad().defined());
    double after = 0;
    for (const Tensor& p : {a, b})
      for (double g : vals(p.grad())) after += g * g;
    EXPECT_NEAR(std::sqrt(after), 1.0, 2e-6);
    EXPECT_LE(std::sqrt(after), 1.0 + tol);
    // Direction preserved.
    const double scale = vals(a.grad())[0] / ga[0];
    expect_close(vals(a.grad()), {ga[0] * scale, ga[1] * scale, ga[2] * scale}, tol, "a dir");
    expect_close(vals(b.grad()), {gb[0] * scale, gb[1] * scale, gb[2] * scale, gb[3] * scale}, tol, "b dir");

    // Below the threshold: returned norm, gradients untouched bit for bit.
    set_grad(a, ga);
    set_grad(b, gb);
    const auto before_a = vals(a.grad()), before_b = vals(b.grad());
    EXPECT_NEAR(nn::clip_grad_norm({a, b, c}, 100.0), want, tol * want);
    EXPECT_EQ(vals(a.grad()), before_a);
    EXPECT_EQ(vals(b.grad()), before_b);
  }
  // No gradients at all: norm 0, nothing happens.
  const Tensor p = param({1.0}, {1});
  EXPECT_EQ(nn::clip_grad_norm({p}, 1.0), 0.0);
}

// clip_grad_norm_ leaves the norm where the gradients are, as a float64 scalar, and scales the same way.
TEST(NnOptim, ClipGradNormInPlaceReturnsTheNormAsATensor) {
  const Tensor a = param({0, 0}, {2}, DType::Float32), b = param({0}, {1}, DType::Float32);
  set_grad(a, {3.0, -4.0});
  set_grad(b, {12.0});
  const Tensor norm = nn::clip_grad_norm_({a, b}, 6.5);
  EXPECT_EQ(norm.dtype(), DType::Float64);
  EXPECT_EQ(norm.dim(), 0);
  EXPECT_DOUBLE_EQ(norm.item<double>(), 13.0);
  const double scale = 6.5 / (13.0 + 1e-6);
  expect_close(vals(a.grad()), {3.0 * scale, -4.0 * scale}, 1e-7, "a scaled");
  expect_close(vals(b.grad()), {12.0 * scale}, 1e-7, "b scaled");
}

// ================================================================ state_dict round trip

// Fixed data for a tiny classifier.
struct Batch {
  Tensor x, y;
};
Batch make_batch(uint64_t seed, int64_t n = 8, int64_t in = 4, int64_t classes = 3) {
  Generator gen(seed);
  Batch b;
  b.x = op::uniform({n, in}, -1, 1, gen);
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<int64_t>(gen.next_u64() % classes);
  b.y = Tensor::from_vector<int64_t>(y, {n});
  return b;
}

class Classifier : public nn::Module {
 public:
  explicit Classifier(Generator& gen) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8, true, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 3, true, gen));
  }
  Tensor forward(const Tensor& x) const { return fc2->forward(tanh(fc1->forward(x))); }
  std::shared_ptr<nn::Linear> fc1, fc2;
};

void train_step(Classifier& m, nn::Optimizer& opt, const nn::WarmupCosine& sched, uint64_t data_seed) {
  const Batch b = make_batch(data_seed);
  opt.zero_grad();
  backward(nn::cross_entropy(m.forward(b.x), b.y));
  nn::clip_grad_norm(m.parameters(), 1.0);
  opt.lr = sched(opt.step_count);
  opt.step();
}

// On the CPU a GradientStep captures nothing: every run() calls the body on the inputs, whose gradients
// are those of the plain loop.
TEST(NnGradientStep, OnTheCpuEveryStepRunsTheBody) {
  Generator gen(5);
  Classifier model(gen), twin(gen);
  twin.load_state_dict(model.state_dict());
  int calls = 0;
  nn::GradientStep step(model.parameters(), Device::cpu(), [&](const std::vector<Tensor>& in) {
    ++calls;
    const Tensor loss = nn::cross_entropy(model.forward(in[0]), in[1]);
    backward(loss);
    return loss;
  });
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const Batch b = make_batch(seed);
    for (const Tensor& p : model.parameters()) p.set_grad(Tensor());
    for (const Tensor& p : twin.parameters()) p.set_grad(Tensor());
    const Tensor loss = step.run({b.x, b.y});
    const Tensor want = nn::cross_entropy(twin.forward(b.x), b.y);
    backward(want);
    EXPECT_FALSE(step.last_replayed());
    EXPECT_EQ(loss.item<double>(), want.item<double>());
    const auto got_params = model.parameters(), want_params = twin.parameters();
    for (size_t i = 0; i < got_params.size(); ++i) EXPECT_EQ(vals(got_params[i].grad()), vals(want_params[i].grad()));
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(step.captures(), 0);
}

std::vector<std::vector<double>> snapshot(const nn::Module& m) {
  std::vector<std::vector<double>> out;
  for (const Tensor& p : m.parameters()) out.push_back(vals(p));
  return out;
}

TEST(NnOptim, AdamWStateDictRoundTripIsBitIdentical) {
  Generator g1(1), g2(2);
  Classifier a(g1), b(g2);
  const nn::WarmupCosine sched{1e-2, 2, 10};
  nn::AdamW opt_a(nn::decay_groups(a.named_parameters(), 0.1), 1e-2, 0.9, 0.95);
  for (uint64_t s = 0; s < 3; ++s) train_step(a, opt_a, sched, 100 + s);

  // A checkpoint: model and optimiser state, loaded into a fresh model and optimiser.
  b.load_state_dict(a.state_dict());
  nn::AdamW opt_b(nn::decay_groups(b.named_parameters(), 0.1), 1e-2, 0.9, 0.95);
  const StateDict st = opt_a.state_dict();
  EXPECT_EQ(st.size(), 1u + 2u * 4u);  // step + exp_avg/exp_avg_sq × 4 parameters
  opt_b.load_state_dict(st);
  EXPECT_EQ(opt_b.step_count, 3);
  for (uint64_t s = 3; s < 5; ++s) {
    train_step(a, opt_a, sched, 100 + s);
    train_step(b, opt_b, sched, 100 + s);
  }
  EXPECT_EQ(snapshot(a), snapshot(b));  // bit for bit
  EXPECT_EQ(opt_b.step_count, 5);
  const StateDict sa = opt_a.state_dict(), sb = opt_b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [k, t] : sa) EXPECT_EQ(vals(t), vals(sb.at(k))) << k;

  // Without the optimiser state the continuation differs (the test above is not vacuous).
  Generator g3(1);
  Classifier d(g3);
  nn::AdamW opt_d(nn::decay_groups(d.named_parameters(), 0.1), 1e-2, 0.9, 0.95);
  for (uint64_t s = 0; s < 3; ++s) train_step(d, opt_d, sched, 100 + s);
  nn::AdamW opt_fresh(nn::decay_groups(d.named_parameters(), 0.1), 1e-2, 0.9, 0.95);
  opt_fresh.step_count = 3;
  for (uint64_t s = 3; s < 5; ++s) train_step(d, opt_fresh, sched, 100 + s);
  EXPECT_NE(snapshot(d), snapshot(a));
}

TEST(NnOptim, SGDStateDictRoundTrip) {
  Generator g1(3), g2(4);
  Classifier a(g1), b(g2);
  const nn::WarmupCosine sched{0.1, 1, 10};
  nn::SGD opt_a(nn::decay_groups(a.named_parameters(), 0.01), 0.1, 0.9);
  for (uint64_t s = 0; s < 3; ++s) train_step(a, opt_a, sched, 200 + s);
  b.load_state_dict(a.state_dict());
  nn::SGD opt_b(nn::decay_groups(b.named_parameters(), 0.01), 0.1, 0.9);
  opt_b.load_state_dict(opt_a.state_dict());
  for (uint64_t s = 3; s < 5; ++s) {
    train_step(a, opt_a, sched, 200 + s);
    train_step(b, opt_b, sched, 200 + s);
  }
  EXPECT_EQ(snapshot(a), snapshot(b));
}

TEST(NnOptim, OptimizerLoadStateDictErrors) {
  Generator g1(5);
  Classifier a(g1);
  const nn::WarmupCosine sched{1e-2, 2, 10};
  nn::AdamW opt(nn::decay_groups(a.named_parameters(), 0.1), 1e-2);
  for (uint64_t s = 0; s < 2; ++s) train_step(a, opt, sched, 300 + s);
  auto copy = [&] {
    StateDict out;
    for (const auto& [k, t] : opt.state_dict()) out.emplace(k, t.clone());
    return out;
  };
  const StateDict good = copy();
  auto unchanged = [&] {
    const StateDict now = opt.state_dict();
    EXPECT_EQ(now.size(), good.size());
    for (const auto& [k, t] : good) EXPECT_EQ(vals(now.at(k)), vals(t)) << k;
    EXPECT_EQ(opt.step_count, 2);
  };
  auto message = [&](const StateDict& st) -> std::string {
    try {
      opt.load_state_dict(st);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no error";
    return "";
  };
  {
    StateDict st = copy();
    st.emplace("exp_avg.fc3.weight", Tensor::zeros({3}));
    EXPECT_NE(message(st).find("exp_avg.fc3.weight"), std::string::npos);
    unchanged();
  }
  {
    StateDict st = copy();
    st.emplace("momentum_buffer.fc1.weight", Tensor::zeros({8, 4}));  // a kind AdamW does not have
    EXPECT_NE(message(st).find("momentum_buffer.fc1.weight"), std::string::npos);
    unchanged();
  }
  {
    StateDict st = copy();
    st["exp_avg_sq.fc2.weight"] = Tensor::zeros({8, 3});
    const std::string msg = message(st);
    EXPECT_NE(msg.find("exp_avg_sq.fc2.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[8, 3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[3, 8]"), std::string::npos) << msg;
    unchanged();
  }
  {
    StateDict st = copy();
    st.erase("step");
    EXPECT_NE(message(st).find("step"), std::string::npos);
    unchanged();
  }
  {  // half of a parameter's state (exp_avg without exp_avg_sq) is a broken checkpoint
    StateDict st = copy();
    st.erase("exp_avg_sq.fc1.bias");
    EXPECT_NE(message(st).find("fc1.bias"), std::string::npos);
    unchanged();
  }
  // The good one still loads, and values are converted to the parameter dtype.
  StateDict st64;
  for (const auto& [k, t] : good) st64.emplace(k, k == "step" ? t : t.to(DType::Float64));
  EXPECT_NO_THROW(opt.load_state_dict(st64));
  unchanged();
  EXPECT_EQ(opt.state_dict().at("exp_avg.fc1.weight").dtype(), DType::Float32);
}

// ================================================================ gradient accumulation

TEST(NnOptim, GradientAccumulationEqualsFullBatch) {
  Generator gen(7);
  nn::Linear lin(6, 5, true, gen);
  const Tensor x = op::uniform({8, 6}, -1, 1, gen);
  const Tensor y = Tensor::from_vector<int64_t>({0, 4, 2, 2, 1, 3, 0, 4}, {8});
  backward(nn::cross_entropy(lin.forward(x), y));
  const auto full_w = vals(lin.weight.grad()), full_b = vals(lin.bias.grad());
  lin.zero_grad();
  for (int64_t half = 0; half < 2; ++half) {
    const Tensor xs = x.narrow(0, half * 4, 4), ys = y.narrow(0, half * 4, 4);
    backward(mul(nn::cross_entropy(lin.forward(xs), ys), 0.5));  // no zeroing in between
  }
  expect_close(vals(lin.weight.grad()), full_w, 1e-6, "accumulated weight grad");
  expect_close(vals(lin.bias.grad()), full_b, 1e-6, "accumulated bias grad");
}

// ================================================================ schedules

double peer_lr(double lr, int64_t warmup, int64_t steps, int64_t s) {
  return lr * std::min(1.0, (s + 1) / static_cast<double>(warmup)) *
         (0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * std::min(1.0, s / static_cast<double>(steps)))));
}

TEST(NnSchedule, WarmupCosineMatchesPeerFormula) {
  const double lr = 2e-3;
  const int64_t warmup = 50, steps = 1000;
  const nn::WarmupCosine sched{lr, warmup, steps};
  EXPECT_EQ(sched.min_ratio, 0.1);
  for (const int64_t s : {int64_t{0}, int64_t{1}, warmup - 1, warmup, int64_t{123}, steps / 2, steps - 1, steps,
                          steps + 1, int64_t{5000}})
    EXPECT_NEAR(sched(s), peer_lr(lr, warmup, steps, s), 1e-15 * lr) << "step " << s;
  // Landmarks, independent of the formula's arrangement.
  EXPECT_NEAR(sched(0), lr / warmup * (0.1 + 0.9 * 0.5 * (1 + std::cos(0.0))), 1e-18);
  EXPECT_NEAR(sched(warmup - 1), lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 49 / 1000.0))), 1e-18);
  EXPECT_NEAR(sched(steps / 2), lr * 0.55, 1e-15);
  EXPECT_NEAR(sched(steps), lr * 0.1, 1e-18);
  EXPECT_NEAR(sched(steps + 100), lr * 0.1, 1e-18);
  // Monotone: up during warm-up, down after.
  for (int64_t s = 1; s < warmup; ++s) EXPECT_GT(sched(s), sched(s - 1)) << s;
  for (int64_t s = warmup + 1; s <= steps; ++s) EXPECT_LE(sched(s), sched(s - 1)) << s;
  // No warm-up.
  const nn::WarmupCosine flat{1.0, 0, 10};
  EXPECT_DOUBLE_EQ(flat(0), 1.0);
  EXPECT_DOUBLE_EQ(flat(10), 0.1);
}

TEST(NnSchedule, WarmupStableDecayKeySteps) {
  const double lr = 3e-3, min_ratio = 0.1;
  const int64_t warmup = 10, total = 100, decay = 20;
  const nn::WarmupStableDecay sched{lr, warmup, total, decay, min_ratio};
  // Warm-up as the cosine schedule's: (s+1)/warmup.
  EXPECT_DOUBLE_EQ(sched(0), lr * 0.1);
  EXPECT_DOUBLE_EQ(sched(4), lr * 0.5);
  EXPECT_DOUBLE_EQ(sched(9), lr);
  // Stable plateau.
  for (const int64_t s : {10, 11, 50, 79}) EXPECT_DOUBLE_EQ(sched(s), lr) << s;
  // Linear decay over the last 20 steps (80..99), reaching min_ratio·lr at the last step.
  auto decayed = [&](int64_t s) { return lr * (1.0 - (1.0 - min_ratio) * (s - 79) / 20.0); };
  EXPECT_NEAR(sched(80), decayed(80), 1e-18);  // decay start: one step down
  EXPECT_LT(sched(80), lr);
  EXPECT_NEAR(sched(89), lr * (1.0 - 0.9 * 0.5), 1e-18);  // middle
  EXPECT_NEAR(sched(89), decayed(89), 1e-18);
  EXPECT_NEAR(sched(99), lr * min_ratio, 1e-18);  // end
  for (const int64_t s : {100, 101, 1000}) EXPECT_NEAR(sched(s), lr * min_ratio, 1e-18) << s;
  for (int64_t s = 80; s < 100; ++s) EXPECT_LT(sched(s), sched(s - 1)) << s;
  // Default min_ratio 0: decays to zero.
  const nn::WarmupStableDecay to_zero{1.0, 0, 10, 4};
  EXPECT_DOUBLE_EQ(to_zero(0), 1.0);
  EXPECT_DOUBLE_EQ(to_zero(5), 1.0);
  EXPECT_DOUBLE_EQ(to_zero(6), 0.75);
  EXPECT_DOUBLE_EQ(to_zero(7), 0.5);
  EXPECT_DOUBLE_EQ(to_zero(9), 0.0);
  EXPECT_DOUBLE_EQ(to_zero(12), 0.0);
}

// ================================================================ end to end

class MLP : public nn::Module {
 public:
  explicit MLP(Generator& gen) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(3, 32, true, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(32, 1, true, gen));
  }
  Tensor forward(const Tensor& x) const { return fc2->forward(tanh(fc1->forward(x))); }
  std::shared_ptr<nn::Linear> fc1, fc2;
};

TEST(NnOptim, TinyMLPRegressionTrainsWithAdamWAndWarmupCosine) {
  Generator gen(2024);
  const int64_t n = 64;
  const Tensor x = op::uniform({n, 3}, -1, 1, gen);
  std::vector<double> yv(n);
  const auto xv = vals(x);
  for (int64_t i = 0; i < n; ++i)  // a smooth non-linear target
    yv[i] = std::sin(2.0 * xv[i * 3]) + 0.5 * xv[i * 3 + 1] * xv[i * 3 + 2] - 0.3 * xv[i * 3 + 2];
  const Tensor y = Tensor::from_vector<double>(yv, {n, 1}).to(DType::Float32);

  MLP model(gen);
  nn::AdamW opt(nn::decay_groups(model.named_parameters(), 0.01), 0.0, 0.9, 0.95);
  const nn::WarmupCosine sched{2e-2, 20, 200};
  auto loss_fn = [&] { return mean(square(sub(model.forward(x), y))); };
  double first = 0, last = 0;
  for (int64_t step = 0; step < 200; ++step) {
    opt.zero_grad();
    const Tensor loss = loss_fn();
    if (step == 0) first = loss.item<double>();
    backward(loss);
    nn::clip_grad_norm(model.parameters(), 1.0);
    opt.lr = sched(step);
    opt.step();
  }
  {
    NoGradGuard ng;
    last = loss_fn().item<double>();
  }
  EXPECT_TRUE(std::isfinite(last));
  EXPECT_LT(last * 10, first) << "loss " << first << " -> " << last;
}

}  // namespace
