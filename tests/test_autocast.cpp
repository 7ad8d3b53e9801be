// tests/test_autocast.cpp — bf16 autocast (autograd/autocast.h): the matmul's rounding points exactly, its
// gradients, and a whole language model trained under it (float32 master weights, a loss close to
// float32's, learning). On a GPU, the same model under autocast against the CPU's.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/functions.h"
#include "compare_helpers.h"
#include "cuda_test_helpers.h"
#include "model_test_helpers.h"
#include "nn/optim.h"
#include "ssm/lm.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace ssm;
using namespace ssm::testing;

namespace {

Tensor bf16_round(const Tensor& t) { return t.to(DType::BFloat16).to(DType::Float32); }

Tensor leaf(const Shape& shape, Generator& gen) {
  Tensor t = op::normal(shape, 0, 1, gen, DType::Float32);
  t.set_requires_grad(true);
  return t;
}

// Gradients of Σ out ⊙ weights with respect to a and b, with out = autocast_matmul(a, b) under `on`.
std::vector<Tensor> matmul_grads(const Tensor& a, const Tensor& b, const Tensor& weights, bool on, Tensor* out) {
  a.set_grad(Tensor());
  b.set_grad(Tensor());
  const Tensor y = [&] {
    const AutocastGuard autocast(on);
    return autocast_matmul(a, b);
  }();
  backward(sum(y * weights));
  *out = y.detach();
  return {a.grad(), b.grad()};
}

}  // namespace

TEST(Autocast, IsOffByDefaultAndScoped) {
  EXPECT_FALSE(Autocast::enabled());
  {
    const AutocastGuard on;
    EXPECT_TRUE(Autocast::enabled());
    {
      const AutocastGuard off(false);
      EXPECT_FALSE(Autocast::enabled());
    }
    EXPECT_TRUE(Autocast::enabled());
  }
  EXPECT_FALSE(Autocast::enabled());
}

// Forward: round(a)·round(b); backward: dA = round(g)·round(b)ᵀ, dB = round(a)ᵀ·round(g), all float32 — the
// rounding points of a bf16 GEMM with float32 accumulation and a float32 product.
TEST(Autocast, MatmulRoundsOperandsAndGradientsToBfloat16) {
  Generator gen(41);
  const Tensor a = leaf({3, 37, 24}, gen), b = leaf({24, 19}, gen), g = op::normal({3, 37, 19}, 0, 1, gen);
  Tensor y16, y32;
  const std::vector<Tensor> grads16 = matmul_grads(a, b, g, true, &y16);
  const std::vector<Tensor> grads32 = matmul_grads(a, b, g, false, &y32);

  const Tensor a16 = bf16_round(a.detach()), b16 = bf16_round(b.detach()), g16 = bf16_round(g);
  EXPECT_EQ(y16.dtype(), DType::Float32);
  expect_close(y16, op::matmul(a16, b16), 0, 0, "forward");
  expect_close(grads16[0], op::matmul(g16, b16.transpose(0, 1)), 0, 0, "dA");
  expect_close(grads16[1], op::sum(op::matmul(a16.transpose(1, 2), g16), {0}), 1e-5, 1e-6, "dB");
  for (const Tensor& grad : grads16) EXPECT_EQ(grad.dtype(), DType::Float32);

  // within bf16's precision of the float32 product, and not equal to it (the rounding happened)
  expect_close(y16, y32, 2e-2 * max_abs(y32), 2e-2, "forward vs float32");
  expect_close(grads16[0], grads32[0], 2e-2 * max_abs(grads32[0]), 2e-2, "dA vs float32");
  EXPECT_GT(op::max(op::abs(op::sub(y16, y32))).item<double>(), 0.0);
}

TEST(Autocast, LeavesFloat64AndDisabledMatmulsExact) {
  Generator gen(42);
  const Tensor a = op::normal({5, 7}, 0, 1, gen, DType::Float64), b = op::normal({7, 3}, 0, 1, gen, DType::Float64);
  const AutocastGuard autocast;
  expect_close(autocast_matmul(a, b), op::matmul(a, b), 0, 0, "float64 under autocast");
  const AutocastGuard off(false);
  const Tensor a32 = a.to(DType::Float32), b32 = b.to(DType::Float32);
  expect_close(autocast_matmul(a32, b32), op::matmul(a32, b32), 0, 0, "float32 with autocast off");
}

namespace {

// Gradients of Σ_k parts_k ⊙ weights_k with respect to a and b, the parts from `parts_of` (a, b).
std::vector<Tensor> parts_grads(const Tensor& a, const Tensor& b, const std::vector<Tensor>& weights,
                                const std::function<std::vector<Tensor>(const Tensor&, const Tensor&)>& parts_of,
                                std::vector<Tensor>* parts) {
  a.set_grad(Tensor());
  b.set_grad(Tensor());
  const std::vector<Tensor> out = parts_of(a, b);
  Tensor loss;
  for (size_t k = 0; k < out.size(); ++k) {
    const Tensor term = sum(out[k] * weights[k]);
    loss = loss.defined() ? loss + term : term;
    parts->push_back(out[k].detach());
  }
  backward(loss);
  return {a.grad(), b.grad()};
}

// The product in parts as one node under autocast (in_proj's path, nn::Linear::forward_parts) gives exactly
// what split(bf16_matmul) gives: the parts' gradients joined straight into bfloat16 are the float32 join
// rounded; and with autocast off, exactly split(matmul). Run on `device`.
void expect_parts_equal_split_product(Device device) {
  Generator gen(45);
  const Tensor a = leaf({2, 29, 24}, gen).to(device).detach(), w = leaf({17, 24}, gen).to(device).detach();
  a.set_requires_grad(true);
  w.set_requires_grad(true);
  const std::vector<int64_t> sizes{5, 3, 9};
  std::vector<Tensor> weights;
  for (const int64_t size : sizes) weights.push_back(op::normal({2, 29, size}, 0, 1, gen).to(device));
  for (const bool on : {true, false}) {
    SCOPED_TRACE(on ? "autocast" : "float32");
    const AutocastGuard autocast(on);
    std::vector<Tensor> fused, split_product;
    const std::vector<Tensor> fused_grads = parts_grads(a, w, weights, [&](const Tensor& x, const Tensor& y) {
      return autocast_matmul_parts(x, transpose(y, 0, 1), sizes);
    }, &fused);
    const std::vector<Tensor> split_grads = parts_grads(a, w, weights, [&](const Tensor& x, const Tensor& y) {
      return split(autocast_matmul(x, transpose(y, 0, 1)), sizes, -1);
    }, &split_product);
    ASSERT_EQ(fused.size(), sizes.size());
    for (size_t k = 0; k < sizes.size(); ++k) expect_close(fused[k], split_product[k], 0, 0, "part");
    expect_close(fused_grads[0], split_grads[0], 0, 0, "da");
    expect_close(fused_grads[1], split_grads[1], 0, 0, "db");
    for (const Tensor& grad : fused_grads) EXPECT_EQ(grad.dtype(), DType::Float32);
  }
}

}  // namespace

TEST(Autocast, MatmulPartsEqualTheSplitProduct) { expect_parts_equal_split_product(Device::cpu()); }

// A Mamba-3 MIMO language model: the loss under autocast is float32's to bf16 precision, every gradient
// arrives in float32 beside its float32 weight, and AdamW steps under autocast learn.
TEST(Autocast, LanguageModelTrainsUnderAutocastWithFloat32MasterWeights) {
  const Variant& variant = kVariants[3];
  Generator gen(43);
  MambaLM model(LMConfig::from_json(variant.json), gen);
  perturb(model, gen);
  const Tensor tokens = random_tokens(4, 24, 30, gen);
  const auto loss_of = [&](bool on) {
    const AutocastGuard autocast(on);
    return lm_loss(model.forward(tokens), tokens);
  };
  const double fp32_loss = loss_of(false).item<double>();
  const Tensor loss = loss_of(true);
  EXPECT_NEAR(loss.item<double>(), fp32_loss, 1e-2 * fp32_loss);
  backward(loss);
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_EQ(p.dtype(), DType::Float32) << name;
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_EQ(p.grad().dtype(), DType::Float32) << name;
  }
  nn::AdamW optimizer(nn::decay_groups(model.named_parameters(), 0.1), 3e-3);
  std::vector<double> curve;
  for (int step = 0; step < 8; ++step) {
    optimizer.zero_grad();
    const Tensor step_loss = loss_of(true);
    backward(step_loss);
    optimizer.step();
    curve.push_back(step_loss.item<double>());
  }
  EXPECT_LT(curve.back(), 0.9 * curve.front());
}

// The same model under autocast on the GPU (cuBLAS bf16, float32 accumulation) and on the CPU (rounded
// float32 products): logits and every gradient agree to bf16's precision.
class CudaAutocast : public CudaTest {};

TEST_F(CudaAutocast, MatmulPartsEqualTheSplitProduct) { expect_parts_equal_split_product(Device::cuda()); }

TEST_F(CudaAutocast, LanguageModelMatchesTheCpuUnderAutocast) {
  for (const Variant& variant : {kVariants[0], kVariants[3]}) {
    SCOPED_TRACE(variant.name);
    Generator gen(44), gen_gpu(44);
    MambaLM cpu_model(LMConfig::from_json(variant.json), gen), gpu_model(LMConfig::from_json(variant.json), gen_gpu);
    perturb(cpu_model, gen);
    perturb(gpu_model, gen_gpu);
    gpu_model.to(Device::cuda());
    const Tensor tokens = random_tokens(3, 37, 30, gen);
    std::vector<Tensor> logits;
    for (MambaLM* model : {&cpu_model, &gpu_model}) {
      const AutocastGuard autocast;
      const Tensor out = model->forward(tokens);
      backward(lm_loss(out, tokens));
      logits.push_back(out.detach().to(Device::cpu()));
    }
    expect_close(logits[1], logits[0], 2e-2 * max_abs(logits[0]), 2e-2, "logits");
    const auto cpu_params = cpu_model.named_parameters(), gpu_params = gpu_model.named_parameters();
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      const Tensor expected = cpu_params[i].second.grad(), got = gpu_params[i].second.grad().to(Device::cpu());
      expect_close(got, expected, 3e-2 * max_abs(expected) + 1e-6, 3e-2, cpu_params[i].first);
    }
  }
}
