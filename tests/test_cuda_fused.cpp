// tests/test_cuda_fused.cpp — the hand-fused GPU kernels (cuda/ssm_fused.h, cuda/nn_fused.h) against their
// CPU loops: Mamba-3's rates, angle steps, keys/queries, MIMO values and output gate, RMSNorm (plain and
// gated), the causal conv1d (+ SiLU) and the softmax cross-entropy (forward, and every gradient through
// autograd), the fused AdamW / SGD-momentum updates, the optimiser's state round trip on the device, and
// gradient clipping.
// Fresh random inputs on the host, the same op on both devices, compared elementwise. Without a GPU
// (or in a build without CUDA) every test here skips, saying so.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "compare_helpers.h"
#include "cuda_test_helpers.h"
#include "nn/functional.h"
#include "nn/optim.h"
#include "ssm/mamba3_angles.h"
#include "ssm/mamba3_keys.h"
#include "ssm/mamba3_output.h"
#include "ssm/mamba3_rates.h"
#include "ssm/mamba3_values.h"
#include "ssm/partial_sums.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace {

using ssm::Device;
using ssm::DType;
using ssm::Generator;
using ssm::Tensor;
using ssm::testing::expect_close;
using ssm::testing::max_abs;
namespace op = ssm::op;
namespace nn = ssm::nn;

class CudaFusedTest : public ssm::testing::CudaTest {
 protected:
  Tensor randn(const ssm::Shape& shape, DType dtype) { return op::normal(shape, 0, 1, gen_, dtype); }
  Generator gen_{20261205};
};
class CudaMamba3Keys : public CudaFusedTest {};
class CudaOutputGate : public CudaFusedTest {};
class CudaMamba3Values : public CudaFusedTest {};
class CudaMamba3Angles : public CudaFusedTest {};
class CudaOptim : public CudaFusedTest {};
class CudaNormAndLoss : public CudaFusedTest {};
class CudaConv : public CudaFusedTest {};
class CudaMamba3Rates : public CudaFusedTest {};

// ~1e-5 relative in float32, ~1e-10 in float64; absolute slack scaled by the tensor's size, since a
// gradient summed over many rows may be near 0 where its terms are not.
void expect_matches(const Tensor& gpu, const Tensor& cpu, DType dtype, const std::string& what) {
  ASSERT_TRUE(gpu.defined() && cpu.defined()) << what;
  const double rtol = dtype == DType::Float32 ? 1e-5 : 1e-10;
  expect_close(gpu.to(Device::cpu()), cpu, rtol * (1 + max_abs(cpu)), rtol, what);
}

// The op on `device`: fresh leaves (undefined inputs stay undefined), the output, and the gradient
// of Σ out ⊙ weights with respect to each defined input, all brought back to the host.
struct Run {
  Tensor out;
  std::vector<Tensor> grads;
};
template <class Op>
Run run_on(Device device, const std::vector<Tensor>& inputs, const Tensor& weights, Op op) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      leaves.emplace_back();
      continue;
    }
    Tensor leaf = t.to(device).detach().clone();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  const Tensor out = op(leaves);
  EXPECT_EQ(out.device(), device);
  ssm::backward(ssm::sum(out * weights.to(device)));
  Run run{out.detach().to(Device::cpu()), {}};
  for (const Tensor& leaf : leaves) run.grads.push_back(leaf.defined() ? leaf.grad().to(Device::cpu()) : Tensor());
  return run;
}

template <class Op>
void expect_same_on_both_devices(const std::vector<Tensor>& inputs, const Tensor& weights, DType dtype, Op op,
                                 const std::vector<std::string>& names) {
  const Run cpu = run_on(Device::cpu(), inputs, weights, op);
  const Run gpu = run_on(Device::cuda(), inputs, weights, op);
  expect_matches(gpu.out, cpu.out, dtype, "forward");
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined()) expect_matches(gpu.grads[i], cpu.grads[i], dtype, "d" + names[i]);
}

// ================================================================ the two-stage sum of GPU partials (runs on the CPU too)

TEST(PartialSums, TwoStageSumOfPaddedRowsEqualsTheSumOverRows) {
  Generator gen(7);
  for (const int64_t rows : {0, 1, 2, 5, 16, 17, 1000}) {
    const ssm::PartialRows split = ssm::split_partial_rows(rows);
    EXPECT_GE(split.padded(), rows);
    EXPECT_LT(split.padded() - rows, std::max<int64_t>(split.per_chunk, 1)) << "pads at most one chunk";
    const Tensor values = op::normal({rows, 3, 4}, 0, 1, gen, DType::Float64);
    const Tensor padded = op::cat({values, Tensor::zeros({split.padded() - rows, 3, 4}, DType::Float64)}, 0);
    expect_close(ssm::sum_partial_rows(padded, split), op::sum(values, {0}), 1e-12, 1e-12,
                 "rows " + std::to_string(rows));
  }
}

// ================================================================ RMSNorm, cross-entropy

TEST_F(CudaNormAndLoss, RMSNormMatchesTheCpu) {
  struct Case {
    int64_t rows, D, group;  // group 0: the whole row
  };
  const std::vector<Case> cases = {
      {3, 7, 0},     // narrower than a warp
      {100, 64, 0},  // several row blocks of dw, the last one short
      {70, 96, 32},  // groups of a warp's width
      {5, 768, 0},   // the 130M model's width
      {33, 20, 4},   // groups narrower than a warp
      {0, 16, 0},    // no rows: dw is zeros
  };
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const Case& c : cases)
      for (const std::string gate : {"none", "before", "after"}) {  // the gate before or after the norm
        SCOPED_TRACE(std::to_string(c.rows) + "x" + std::to_string(c.D) + " group " + std::to_string(c.group) +
                     " gate " + gate + " " + ssm::dtype_name(dtype));
        const std::vector<Tensor> inputs = {op::mul(randn({c.rows, c.D}, dtype), 2.0),
                                            gate == "none" ? Tensor() : op::mul(randn({c.rows, c.D}, dtype), 2.0),
                                            op::add(op::mul(randn({c.D}, dtype), 0.3), 1.0)};
        expect_same_on_both_devices(
            inputs, randn({c.rows, c.D}, dtype), dtype,
            [&](const std::vector<Tensor>& in) {
              if (gate == "none") return nn::rms_norm(in[0], in[2], 1e-5, c.group);
              return nn::gated_rms_norm(in[0], in[1], in[2], 1e-5, c.group, gate == "after");
            },
            {"x", "z", "w"});
      }
}

// The depthwise causal conv, with and without SiLU and bias: taps 1..4 (sequences shorter than the
// taps among them), more rows than one block of the weight sums with sequences crossing the blocks,
// and no rows at all (zero weight gradients).
TEST_F(CudaConv, CausalConv1dMatchesTheCpu) {
  struct Case {
    int64_t batch, L, C, K;
  };
  const std::vector<Case> cases = {
      {2, 3, 5, 4},     // L < K
      {1, 7, 3, 1},     // one tap
      {3, 45, 40, 4},   // 135 rows: five row blocks, the last short, sequences crossing them
      {2, 70, 300, 3},  // channels past one block of the sums kernel
      {0, 4, 8, 4},     // no rows
  };
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const Case& c : cases)
      for (const bool with_bias : {true, false})
        for (const bool with_silu : {true, false}) {
          SCOPED_TRACE(std::to_string(c.batch) + "x" + std::to_string(c.L) + "x" + std::to_string(c.C) + " K " +
                       std::to_string(c.K) + (with_bias ? " bias" : "") + (with_silu ? " silu" : "") + " " +
                       ssm::dtype_name(dtype));
          const std::vector<Tensor> inputs = {randn({c.batch, c.L, c.C}, dtype), randn({c.C, 1, c.K}, dtype),
                                              with_bias ? randn({c.C}, dtype) : Tensor()};
          expect_same_on_both_devices(
              inputs, randn({c.batch, c.L, c.C}, dtype), dtype,
              [&](const std::vector<Tensor>& in) { return nn::causal_conv1d(in[0], in[1], in[2], with_silu); },
              {"x", "w", "bias"});
        }
}

TEST_F(CudaConv, MoreTapsThanTheKernelsHoldIsAClearError) {
  const Tensor x = randn({1, 4, 3}, DType::Float32).to(Device::cuda());
  const Tensor w = randn({3, 1, 9}, DType::Float32).to(Device::cuda());
  try {
    nn::causal_conv1d(x, w, Tensor(), true);
    ADD_FAILURE() << "no error for 9 taps on the GPU";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("up to 8 taps, got 9"), std::string::npos) << e.what();
  }
}

// Targets on the logits' device, every fifth row ignored (all of them in one case).
TEST_F(CudaNormAndLoss, CrossEntropyMatchesTheCpu) {
  struct Case {
    int64_t N, V;
    bool all_ignored;
  };
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const Case& c : std::vector<Case>{{5, 7, false}, {300, 256, false}, {9, 3000, false}, {6, 40, true}}) {
      SCOPED_TRACE(std::to_string(c.N) + "x" + std::to_string(c.V) + " " + ssm::dtype_name(dtype));
      std::vector<int64_t> ids(c.N);
      for (int64_t i = 0; i < c.N; ++i) ids[i] = c.all_ignored || i % 5 == 2 ? -100 : (i * 7919 + 13) % c.V;
      const Tensor targets = Tensor::from_vector(ids, {c.N});
      expect_same_on_both_devices(
          {op::mul(randn({c.N, c.V}, dtype), 4.0)}, Tensor::full({}, 0.7, dtype), dtype,
          [&](const std::vector<Tensor>& in) {
            return nn::cross_entropy(in[0], targets.to(in[0].device()), -100);
          },
          {"logits"});
    }
}

TEST_F(CudaNormAndLoss, CrossEntropyTargetOutOfRangeIsReportedAtTheNextWait) {
  const Tensor logits = randn({2, 5}, DType::Float32).to(Device::cuda());
  const Tensor targets = Tensor::from_vector(std::vector<int64_t>{1, 9}, {2}).to(Device::cuda());
  const Tensor loss = nn::cross_entropy(logits, targets, -100);  // queued; nothing waits yet
  try {
    (void)loss.item<float>();
    FAIL() << "no error for target 9 of 5 classes";
  } catch (const ssm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cross_entropy (a target) on cuda:0: index 9 is out of range"),
              std::string::npos)
        << e.what();
  }
}

// ================================================================ mamba3_keys

struct KeysCase {
  int64_t batch, L, R, G, H, N, S;
  ssm::RotaryPairing pairing;
  std::string label() const {
    return "R=" + std::to_string(R) + " G=" + std::to_string(G) + " H=" + std::to_string(H) + " N=" +
           std::to_string(N) + " S=" + std::to_string(S) +
           (pairing == ssm::RotaryPairing::Adjacent ? " adjacent" : " half-split");
  }
};

// The rates read in_proj's columns in place (a row stride apart): the inputs are column ranges of one
// projection, as in the model; dd_A spans the floor's kink (A_floor = 0.5 binds below dd_A = −1).
TEST_F(CudaMamba3Rates, ForwardAndGradientsMatchTheCpu) {
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const auto& [batch, L, H] : std::vector<std::array<int64_t, 3>>{{2, 7, 3}, {4, 65, 24}, {0, 5, 2}}) {
      SCOPED_TRACE(std::to_string(batch) + "x" + std::to_string(L) + "x" + std::to_string(H) + " " +
                   ssm::dtype_name(dtype));
      const std::vector<Tensor> inputs = {op::uniform({batch, L, 3 * H + 2}, -3.0, 2.0, gen_, dtype),
                                          randn({H}, dtype)};
      expect_same_on_both_devices(
          inputs, randn({batch, L, 4 * H}, dtype), dtype,
          [H = H](const std::vector<Tensor>& in) {
            const auto c = ssm::split(in[0], {H, H, H, 2}, -1);
            const ssm::Mamba3Rates r = ssm::mamba3_rates(c[0], c[1], c[2], in[1], 0.5);
            return ssm::cat({r.adt, r.gamma, r.eta, r.DT}, 2);
          },
          {"projection", "dt_bias"});
    }
}

TEST_F(CudaMamba3Keys, ForwardAndGradientsMatchTheCpu) {
  using ssm::RotaryPairing;
  const std::vector<KeysCase> cases = {
      {2, 5, 1, 1, 4, 16, 8, RotaryPairing::Adjacent},    // SISO, every pair rotated
      {2, 7, 1, 2, 4, 16, 5, RotaryPairing::Adjacent},    // SISO, G < H, some dims pass through
      {1, 4, 1, 1, 2, 9, 4, RotaryPairing::Adjacent},     // odd N: the last dim passes through
      {2, 5, 2, 2, 4, 16, 8, RotaryPairing::HalfSplit},   // MIMO, G < H
      {1, 6, 4, 1, 2, 32, 6, RotaryPairing::HalfSplit},   // MIMO, S < N/2
      {1, 3, 2, 1, 2, 160, 40, RotaryPairing::HalfSplit}, // N above the block's thread count
      {3, 37, 2, 2, 4, 8, 0, RotaryPairing::HalfSplit},   // no rotation at all, many rows
      {5, 421, 2, 2, 4, 16, 6, RotaryPairing::HalfSplit}, // more rows than the backward's blocks: each sums several
      {2, 9, 1, 1, 8, 64, 16, RotaryPairing::HalfSplit},  // a warp's unit of 8 x 64 gradient rows, staged
      {1, 3, 1, 1, 2, 160, 40, RotaryPairing::HalfSplit}, // one rank (dθ in the rows kernel), N above the block
      {2, 5, 1, 1, 3, 48, 12, RotaryPairing::Adjacent},   // N not dividing the block: some threads idle
      {2, 5, 2, 1, 3, 48, 20, RotaryPairing::HalfSplit},  // the same with two ranks
      {2, 33, 2, 1, 20, 16, 8, RotaryPairing::HalfSplit}, // the ~1M model's unit (a warp's)
      // above 512 (head, n) values a unit takes a whole block
      {1, 3, 1, 1, 24, 128, 32, RotaryPairing::Adjacent}, // the 130M model's unit
      {2, 9, 2, 1, 8, 80, 20, RotaryPairing::HalfSplit},  // two ranks
      {1, 4, 1, 1, 8, 73, 30, RotaryPairing::Adjacent},   // odd N
      {2, 5, 1, 2, 24, 48, 12, RotaryPairing::Adjacent},  // G < H
      {4, 300, 1, 1, 8, 96, 24, RotaryPairing::Adjacent}, // more rows than the backward's blocks
  };
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const KeysCase& c : cases) {
      SCOPED_TRACE(c.label() + " " + ssm::dtype_name(dtype));
      const int64_t RGN = c.R * c.G * c.N;  // raw: a column range of a wider projection, as in the model
      const std::vector<Tensor> inputs = {randn({c.batch, c.L, RGN + 3}, dtype),
                                          op::add(op::mul(randn({c.N}, dtype), 0.3), 1.0), randn({c.H, c.R, c.N}, dtype),
                                          randn({c.batch, c.L, c.H, c.S}, dtype)};
      const Tensor weights = randn({c.batch, c.L, c.R, c.H, c.N}, dtype);
      expect_same_on_both_devices(
          inputs, weights, dtype,
          [&](const std::vector<Tensor>& in) {
            return ssm::mamba3_keys(ssm::narrow(in[0], 2, 2, RGN), in[1], in[2], in[3], c.pairing);
          },
          {"projection", "norm_weight", "bias", "theta"});
    }
}

TEST_F(CudaMamba3Keys, RejectsInputsOnDifferentDevices) {
  const Tensor raw = randn({1, 2, 8}, DType::Float32).to(Device::cuda());
  EXPECT_THROW(ssm::mamba3_keys(raw, Tensor::ones({8}), Tensor::zeros({1, 1, 8}), Tensor::zeros({1, 2, 1, 2}),
                                ssm::RotaryPairing::Adjacent),
               ssm::Error);
}

// ================================================================ mamba3_output_gate

struct GateCase {
  int64_t batch, L, R, H, P;
  bool mimo;
  bool aligned;  // x and z start every row at a multiple of four values: the kernels' four-lane path
};

TEST_F(CudaOutputGate, ForwardAndGradientsMatchTheCpu) {
  const std::vector<GateCase> cases = {
      {2, 5, 1, 3, 8, false, true},    // SISO: ψ = ζ = φ = 1
      {2, 5, 1, 3, 8, false, false},   // the same, one lane a thread
      {2, 6, 2, 4, 16, true, true},    // MIMO
      {2, 6, 2, 4, 16, true, false},   // the same, one lane a thread
      {3, 100, 4, 2, 5, true, true},   // more rows than parameter chunks, uneven chunks (P odd: one lane)
      {3, 100, 3, 2, 8, true, true},   // the same with four lanes
      {1, 3, 1, 2, 4, true, true},     // MIMO parameters with one rank
  };
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const GateCase& c : cases) {
      SCOPED_TRACE("R=" + std::to_string(c.R) + " H=" + std::to_string(c.H) + " P=" + std::to_string(c.P) +
                   " rows=" + std::to_string(c.batch * c.L) + (c.mimo ? " mimo " : " siso ") +
                   (c.aligned ? "aligned " : "odd offsets ") + ssm::dtype_name(dtype));
      const ssm::Shape xz{c.batch, c.L, c.H, c.P}, per_rank{c.H, c.R, c.P};
      // x and z: column ranges of one wider projection, read in place as in the model; unaligned, a column
      // between them makes its width odd
      const int64_t HP = c.H * c.P, gap = c.aligned ? 0 : 1;
      const std::vector<Tensor> inputs = {randn({c.batch, c.L, c.R, c.H, c.P}, dtype),
                                          randn({c.batch, c.L, 2 * HP + gap}, dtype),
                                          randn({c.H}, dtype),
                                          c.mimo ? randn(per_rank, dtype) : Tensor(),
                                          c.mimo ? randn(per_rank, dtype) : Tensor(),
                                          c.mimo ? randn(per_rank, dtype) : Tensor()};
      expect_same_on_both_devices(
          inputs, randn(xz, dtype), dtype,
          [&](const std::vector<Tensor>& in) {
            const Tensor x = ssm::reshape(ssm::narrow(in[1], 2, 0, HP), xz),
                         z = ssm::reshape(ssm::narrow(in[1], 2, HP + gap, HP), xz);
            return ssm::mamba3_output_gate(in[0], x, z, in[2], in[3], in[4], in[5]);
          },
          {"y", "projection", "D", "psi", "zeta", "phi"});
    }
}

// ================================================================ mamba3_angle_steps

TEST_F(CudaMamba3Angles, ForwardAndGradientsMatchTheCpu) {
  struct Case {
    int64_t batch, L, H, S;
  };
  const std::vector<Case> cases = {
      {2, 5, 3, 4},    // the ~1M model's form (H heads, S pairs)
      {1, 3, 40, 33},  // more heads and pairs than a warp's lanes
      {2, 4, 2, 0},    // no rotated pairs: dDT is zero
  };
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const Case& c : cases) {
      SCOPED_TRACE("H=" + std::to_string(c.H) + " S=" + std::to_string(c.S) + " " + ssm::dtype_name(dtype));
      expect_same_on_both_devices(  // ang: a column range of a wider projection, read in place as in the model
          {randn({c.batch, c.L, c.H}, dtype), randn({c.batch, c.L, c.S + 3}, dtype)},
          randn({c.batch, c.L, c.H, c.S}, dtype), dtype,
          [&](const std::vector<Tensor>& in) { return ssm::mamba3_angle_steps(in[0], ssm::narrow(in[1], 2, 1, c.S)); },
          {"DT", "projection"});
    }
}

// ================================================================ mamba3_values

TEST_F(CudaMamba3Values, ForwardAndGradientsMatchTheCpu) {
  struct Case {
    int64_t batch, L, R, H, P;
  };
  const std::vector<Case> cases = {
      {2, 5, 2, 3, 8},    // the model's form
      {1, 4, 1, 2, 4},    // one rank
      {3, 150, 4, 2, 5},  // more rows than parameter chunks, uneven chunks, P off the warp
  };
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const Case& c : cases) {
      SCOPED_TRACE("R=" + std::to_string(c.R) + " H=" + std::to_string(c.H) + " P=" + std::to_string(c.P) +
                   " rows=" + std::to_string(c.batch * c.L) + " " + ssm::dtype_name(dtype));
      const int64_t HP = c.H * c.P;  // x: a column range of a wider projection, read in place as in the model
      expect_same_on_both_devices(
          {randn({c.batch, c.L, HP + 3}, dtype), randn({c.H, c.R, c.P}, dtype)},
          randn({c.batch, c.L, c.R, c.H, c.P}, dtype), dtype,
          [&](const std::vector<Tensor>& in) {
            return ssm::mamba3_values(ssm::reshape(ssm::narrow(in[0], 2, 2, HP), {c.batch, c.L, c.H, c.P}), in[1]);
          },
          {"projection", "psi"});
    }
}

// ================================================================ optimisers

// The same parameters (several shapes, one empty, two groups with and without weight decay) on both devices.
struct TwinParams {
  std::vector<nn::ParamGroup> cpu, gpu;
};
TwinParams twin_params(Generator& gen, DType dtype) {
  const std::vector<ssm::Shape> shapes = {{4, 3}, {7}, {2, 3, 5}, {0}, {300, 7}};
  TwinParams twins{{{{}, 0.1}, {{}, 0.0}}, {{{}, 0.1}, {{}, 0.0}}};
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Tensor value = op::normal(shapes[i], 0, 1, gen, dtype);
    Tensor on_cpu = value.clone(), on_gpu = value.to(Device::cuda());
    on_cpu.set_requires_grad(true);
    on_gpu.set_requires_grad(true);
    const std::string name = "p" + std::to_string(i);
    twins.cpu[i % 2].params.emplace_back(name, on_cpu);
    twins.gpu[i % 2].params.emplace_back(name, on_gpu);
  }
  return twins;
}

// Fresh random gradients, the same on both devices (the third parameter gets none on odd steps: skipped).
void set_twin_grads(const TwinParams& twins, Generator& gen, int step) {
  for (size_t g = 0; g < twins.cpu.size(); ++g)
    for (size_t i = 0; i < twins.cpu[g].params.size(); ++i) {
      const Tensor& p = twins.cpu[g].params[i].second;
      const bool skip = step % 2 == 1 && twins.cpu[g].params[i].first == "p2";
      const Tensor grad = skip ? Tensor() : op::normal(p.shape(), 0, 1, gen, p.dtype());
      p.set_grad(grad);
      twins.gpu[g].params[i].second.set_grad(skip ? Tensor() : grad.to(Device::cuda()).clone());  // never aliased
    }
}

void expect_same_state(const nn::Optimizer& gpu, const nn::Optimizer& cpu, const TwinParams& twins, DType dtype) {
  for (size_t g = 0; g < twins.cpu.size(); ++g)
    for (size_t i = 0; i < twins.cpu[g].params.size(); ++i)
      expect_matches(twins.gpu[g].params[i].second, twins.cpu[g].params[i].second, dtype, twins.cpu[g].params[i].first);
  const nn::StateDict gs = gpu.state_dict(), cs = cpu.state_dict();
  ASSERT_EQ(gs.size(), cs.size());
  for (const auto& [key, t] : cs) {
    ASSERT_TRUE(gs.count(key)) << key;
    if (key == "step") continue;
    EXPECT_EQ(gs.at(key).device(), Device::cuda()) << key;
    expect_matches(gs.at(key), t, dtype, key);
  }
}

TEST_F(CudaOptim, AdamWStepsMatchTheCpu) {
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(ssm::dtype_name(dtype));
    const TwinParams twins = twin_params(gen_, dtype);
    nn::AdamW cpu(twins.cpu, 1e-2, 0.9, 0.95, 1e-8), gpu(twins.gpu, 1e-2, 0.9, 0.95, 1e-8);
    for (int step = 0; step < 4; ++step) {
      cpu.lr = gpu.lr = 1e-2 * (1 + step);
      set_twin_grads(twins, gen_, step);
      cpu.step();
      gpu.step();
      expect_same_state(gpu, cpu, twins, dtype);
    }
  }
}

TEST_F(CudaOptim, SgdStepsMatchTheCpu) {
  for (const double momentum : {0.0, 0.9})
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      SCOPED_TRACE("momentum " + std::to_string(momentum) + " " + ssm::dtype_name(dtype));
      const TwinParams twins = twin_params(gen_, dtype);
      nn::SGD cpu(twins.cpu, 0.05, momentum), gpu(twins.gpu, 0.05, momentum);
      for (int step = 0; step < 4; ++step) {
        set_twin_grads(twins, gen_, step);
        cpu.step();
        gpu.step();
        expect_same_state(gpu, cpu, twins, dtype);
      }
    }
}

// A checkpoint's state goes through the host (safetensors); loading it must put the buffers back on
// the parameters' device, as copies, and the resumed optimiser must continue exactly.
TEST_F(CudaOptim, StateDictRoundTripThroughTheHostStaysOnTheDevice) {
  const TwinParams a = twin_params(gen_, DType::Float32);
  nn::AdamW first(a.gpu, 1e-2);
  for (int step = 0; step < 2; ++step) {
    set_twin_grads(a, gen_, 0);
    first.step();
  }
  nn::StateDict saved;
  for (const auto& [key, t] : first.state_dict()) saved.emplace(key, t.to(Device::cpu()));

  // a second optimiser over copies of the same GPU parameters, resumed from the saved state
  TwinParams b = a;
  for (auto& group : b.gpu)
    for (auto& [name, p] : group.params) {
      Tensor copy = p.detach().clone();
      copy.set_requires_grad(true);
      p = copy;
    }
  nn::AdamW resumed(b.gpu, 1e-2);
  resumed.load_state_dict(saved);
  EXPECT_EQ(resumed.step_count, 2);
  for (const auto& [key, t] : resumed.state_dict()) {
    if (key == "step") continue;
    EXPECT_EQ(t.device(), Device::cuda()) << key;
  }

  for (size_t g = 0; g < a.gpu.size(); ++g)
    for (size_t i = 0; i < a.gpu[g].params.size(); ++i) {
      const Tensor grad = op::normal(a.gpu[g].params[i].second.shape(), 0, 1, gen_, DType::Float32).to(Device::cuda());
      a.gpu[g].params[i].second.set_grad(grad);
      b.gpu[g].params[i].second.set_grad(grad.clone());
    }
  first.step();
  resumed.step();
  for (size_t g = 0; g < a.gpu.size(); ++g)
    for (size_t i = 0; i < a.gpu[g].params.size(); ++i)
      EXPECT_EQ(a.gpu[g].params[i].second.to_vector<float>(), b.gpu[g].params[i].second.to_vector<float>())
          << a.gpu[g].params[i].first;
  const nn::StateDict sa = first.state_dict(), sb = resumed.state_dict();
  for (const auto& [key, t] : sa) {
    if (key == "step") continue;
    EXPECT_EQ(t.to_vector<float>(), sb.at(key).to_vector<float>()) << key;
  }
}

TEST_F(CudaOptim, ClipGradNormMatchesTheCpu) {
  for (const double max_norm : {0.5, 1e6}) {  // clipping, and not
    const TwinParams twins = twin_params(gen_, DType::Float64);
    set_twin_grads(twins, gen_, 0);
    std::vector<Tensor> cpu, gpu;
    for (size_t g = 0; g < twins.cpu.size(); ++g)
      for (size_t i = 0; i < twins.cpu[g].params.size(); ++i) {
        cpu.push_back(twins.cpu[g].params[i].second);
        gpu.push_back(twins.gpu[g].params[i].second);
      }
    const double cpu_norm = nn::clip_grad_norm(cpu, max_norm), gpu_norm = nn::clip_grad_norm(gpu, max_norm);
    EXPECT_NEAR(gpu_norm, cpu_norm, 1e-10 * cpu_norm);
    for (size_t i = 0; i < cpu.size(); ++i)
      expect_matches(gpu[i].grad(), cpu[i].grad(), DType::Float64, "grad " + std::to_string(i));
  }
}

}  // namespace
