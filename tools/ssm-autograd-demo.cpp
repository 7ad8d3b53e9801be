// tools/ssm-autograd-demo.cpp — the engine in one screen: fit a two-layer network with autograd.
//
// Learns y = sin(x) on [-3, 3] with h = tanh(x·W1 + b1), y = h·W2 + b2, plain gradient descent,
// and checks one gradient against a finite difference on the way. Walked through line by line in
// docs/01-autograd-from-scratch.md.
//
//   ssm-autograd-demo [--steps N] [--hidden H] [--lr LR] [--seed S]
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "autograd/functions.h"
#include "tasks/flags.h"
#include "tasks/session.h"
#include "tensor/random.h"

using namespace ssm;

namespace {

struct Options {
  int64_t steps = 3000;
  int64_t hidden = 32;
  double lr = 0.03;
  int64_t seed = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  tasks::FlagParser flags("ssm-autograd-demo", "[--steps N] [--hidden H] [--lr LR] [--seed S]",
                          "Fits y = sin(x) with a two-layer tanh network trained by this engine's autograd.");
  flags.option("steps", &o.steps, "N", "gradient-descent steps");
  flags.option("hidden", &o.hidden, "H", "hidden units");
  flags.option("lr", &o.lr, "LR", "learning rate");
  flags.option("seed", &o.seed, "S", "random seed");
  if (tasks::parse_tool_flags(flags, argc, argv).help) {
    std::printf("%s", flags.help().c_str());
    std::exit(0);
  }
  SSM_CHECK(o.steps > 0 && o.hidden > 0 && o.lr > 0, "--steps, --hidden and --lr must be positive");
  SSM_CHECK(o.seed >= 0, "--seed must be non-negative, got ", o.seed);
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  Generator gen(static_cast<uint64_t>(opt.seed));

  // data: 64 points x in [-3, 3], targets sin(x); shapes [64, 1]
  const Tensor x = op::uniform({64, 1}, -3.0, 3.0, gen);
  const Tensor y = op::sin(x);

  // parameters (leaves that require grad)
  const Tensor w1 = op::normal({1, opt.hidden}, 0.0, 1.0, gen).set_requires_grad(true);
  const Tensor b1 = Tensor::zeros({opt.hidden}).set_requires_grad(true);
  const Tensor w2 = op::normal({opt.hidden, 1}, 0.0, 1.0 / std::sqrt(opt.hidden), gen).set_requires_grad(true);
  const Tensor b2 = Tensor::zeros({1}).set_requires_grad(true);
  const Tensor params[] = {w1, b1, w2, b2};

  auto loss_of = [&] {
    const Tensor h = tanh(matmul(x, w1) + b1);  // [64, H]
    const Tensor pred = matmul(h, w2) + b2;     // [64, 1]
    return mean(square(pred - y));              // scalar
  };

  for (int64_t step = 0; step <= opt.steps; ++step) {
    for (const Tensor& p : params) p.set_grad(Tensor());
    const Tensor loss = loss_of();
    backward(loss);
    if (step == 0) {  // d loss / d b2 by central differences, to show backward is right
      NoGradGuard no_grad;
      const double eps = 1e-3, saved = b2.data<float>()[0];
      b2.data<float>()[0] = static_cast<float>(saved + eps);
      const double up = loss_of().item<float>();
      b2.data<float>()[0] = static_cast<float>(saved - eps);
      const double down = loss_of().item<float>();
      b2.data<float>()[0] = static_cast<float>(saved);
      std::printf("check: dloss/db2 by backward %.5f, by finite differences %.5f\n", b2.grad().item<float>(),
                  (up - down) / (2 * eps));
    }
    if (step % (opt.steps / 10 > 0 ? opt.steps / 10 : 1) == 0)
      std::printf("step %5lld  loss %.6f\n", static_cast<long long>(step), loss.item<float>());
    NoGradGuard no_grad;
    for (const Tensor& p : params) op::binary_(BinaryOp::Sub, p, op::mul(p.grad(), opt.lr));  // p -= lr * grad
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "ssm-autograd-demo: %s\n", e.what());
  return 1;
}
