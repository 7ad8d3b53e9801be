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
#include <cstring>
#include <string>

#include "autograd/functions.h"
#include "tensor/random.h"

using namespace ssm;

namespace {

struct Options {
  int steps = 3000;
  int hidden = 32;
  double lr = 0.03;
  uint64_t seed = 0;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: ssm-autograd-demo [--steps N] [--hidden H] [--lr LR] [--seed S]\n"
               "Fits y = sin(x) with a two-layer tanh network trained by this engine's autograd.\n"
               "  --steps N   gradient-descent steps (default 3000)\n"
               "  --hidden H  hidden units (default 32)\n"
               "  --lr LR     learning rate (default 0.03)\n"
               "  --seed S    random seed (default 0)\n");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      usage(stdout);
      std::exit(0);
    }
    SSM_CHECK(i + 1 < argc, "flag ", flag, " needs a value (see --help)");
    const std::string value = argv[++i];
    char* end = nullptr;
    if (flag == "--steps") o.steps = static_cast<int>(std::strtol(value.c_str(), &end, 10));
    else if (flag == "--hidden") o.hidden = static_cast<int>(std::strtol(value.c_str(), &end, 10));
    else if (flag == "--lr") o.lr = std::strtod(value.c_str(), &end);
    else if (flag == "--seed") o.seed = std::strtoull(value.c_str(), &end, 10);
    else throw Error("unknown flag " + flag + " (see --help)");
    SSM_CHECK(end && *end == '\0', "flag ", flag, ": '", value, "' is not a number");
  }
  SSM_CHECK(o.steps > 0 && o.hidden > 0 && o.lr > 0, "--steps, --hidden and --lr must be positive");
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  Generator gen(opt.seed);

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

  for (int step = 0; step <= opt.steps; ++step) {
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
      std::printf("step %5d  loss %.6f\n", step, loss.item<float>());
    NoGradGuard no_grad;
    for (const Tensor& p : params) op::binary_(BinaryOp::Sub, p, op::mul(p.grad(), opt.lr));  // p -= lr * grad
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "ssm-autograd-demo: %s\n", e.what());
  return 1;
}
