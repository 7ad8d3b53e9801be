// The Mamba-3 scans. The sequential reference (ssm/mamba3_scan_reference.cpp): float64 gradcheck over all
// nine inputs, values and gradients against a twin composed of differentiable tensor ops, the hand-off of
// (state, k_prev, v_prev) across a split sequence, float32 against float64, and argument validation.
// The chunked fast path (ssm/mamba3_scan_chunked.cpp): equal to the reference in value and every gradient
// over chunk sizes (1, 2, 3, > L, L not a multiple), ranks and initial states, on odd head shapes (the
// chunked GEMMs) and on shapes the CPU runs through the register recurrence; its own gradcheck, in both
// engines; float32; bitwise the same for any thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "compare_helpers.h"
#include "ssm/mamba3_scan.h"
#include "tensor/random.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace ssm;
using ssm::testing::expect_close;
using ssm::testing::max_abs;

namespace {

constexpr int64_t kBatch = 2, kHeads = 2, kP = 3, kN = 4;

struct Mamba3Inputs {
  Tensor q, k, v, adt, gamma, eta;
  Tensor h0, k_prev, v_prev;  // undefined when without_state
  Tensor wy, wf;              // random loss weights for y and the final state
  std::vector<Tensor> scan_inputs() const { return {q, k, v, adt, gamma, eta, h0, k_prev, v_prev}; }
};

// float64, batch 2, H 2, P 3, N 4 (or the given P, N); γ, η in (0.05, 0.9) and adt in (−1.5, −0.1) as a
// trained block produces.
Mamba3Inputs random_inputs(uint64_t seed, int64_t L, int64_t R, bool with_state, int64_t kP = ::kP,
                           int64_t kN = ::kN) {
  Generator gen(seed);
  const DType f64 = DType::Float64;
  Mamba3Inputs in;
  in.q = op::normal({kBatch, L, R, kHeads, kN}, 0, 1, gen, f64);
  in.k = op::normal({kBatch, L, R, kHeads, kN}, 0, 1, gen, f64);
  in.v = op::normal({kBatch, L, R, kHeads, kP}, 0, 1, gen, f64);
  in.adt = op::uniform({kBatch, L, kHeads}, -1.5, -0.1, gen, f64);
  in.gamma = op::uniform({kBatch, L, kHeads}, 0.05, 0.9, gen, f64);
  in.eta = op::uniform({kBatch, L, kHeads}, 0.05, 0.9, gen, f64);
  if (with_state) {
    in.h0 = op::normal({kBatch, kHeads, kP, kN}, 0, 1, gen, f64);
    in.k_prev = op::normal({kBatch, R, kHeads, kN}, 0, 1, gen, f64);
    in.v_prev = op::normal({kBatch, R, kHeads, kP}, 0, 1, gen, f64);
  }
  in.wy = op::normal({kBatch, L, R, kHeads, kP}, 0, 1, gen, f64);
  in.wf = op::normal({kBatch, kHeads, kP, kN}, 0, 1, gen, f64);
  return in;
}

using ScanFn = std::function<ScanOutput(const std::vector<Tensor>&)>;

ScanOutput reference_scan(const std::vector<Tensor>& in) {
  return mamba3_scan_reference(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8]);
}

ScanFn chunked_scan(int64_t chunk) {
  return [chunk](const std::vector<Tensor>& in) {
    return mamba3_scan_chunked(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], chunk);
  };
}

// ---- the test-only twin: §3.6 step by step, from differentiable ops, so autograd derives its backward ----

// kv = Σ_r v_r k_rᵀ per (batch, head): k [batch, R, H, N], v [batch, R, H, P] -> [batch, H, P, N]
Tensor outer_product_sum(const Tensor& k, const Tensor& v) {
  return matmul(permute(v, {0, 2, 3, 1}), permute(k, {0, 2, 1, 3}));
}

// a per-(batch, head) scalar [batch, H] shaped to scale [batch, H, P, N] states
Tensor per_head(const Tensor& x) { return reshape(x, {x.size(0), x.size(1), 1, 1}); }

ScanOutput composed_scan(const std::vector<Tensor>& in) {
  const Tensor &q = in[0], &k = in[1], &v = in[2], &adt = in[3], &gamma = in[4], &eta = in[5];
  const int64_t batch = q.size(0), L = q.size(1), R = q.size(2), H = q.size(3), N = q.size(4), P = v.size(4);
  Tensor state = in[6].defined() ? in[6] : Tensor::zeros({batch, H, P, N}, q.dtype());
  Tensor k_before = in[7].defined() ? in[7] : Tensor::zeros({batch, R, H, N}, q.dtype());
  Tensor v_before = in[8].defined() ? in[8] : Tensor::zeros({batch, R, H, P}, q.dtype());
  std::vector<Tensor> ys;
  for (int64_t t = 0; t < L; ++t) {
    const Tensor alpha = exp(select(adt, 1, t)), beta = mul(alpha, select(eta, 1, t));
    const Tensor k_now = select(k, 1, t), v_now = select(v, 1, t);
    state = add(add(mul(per_head(alpha), state), mul(per_head(beta), outer_product_sum(k_before, v_before))),
                mul(per_head(select(gamma, 1, t)), outer_product_sum(k_now, v_now)));
    // y_{t,r} = h_t q̃_{t,r}: [batch, H, P, N] · [batch, H, N, R] -> [batch, H, P, R] -> [batch, R, H, P]
    ys.push_back(permute(matmul(state, permute(select(q, 1, t), {0, 2, 3, 1})), {0, 3, 1, 2}));
    k_before = k_now;
    v_before = v_now;
  }
  return {stack(ys, 1), state};
}

// ---- running an implementation with gradients ----

Tensor weighted_loss(const ScanOutput& out, const Mamba3Inputs& in) {
  const DType dtype = out.y.dtype();
  return add(sum(mul(out.y, in.wy.to(dtype))), sum(mul(out.final_state, in.wf.to(dtype))));
}

struct RunResult {
  Tensor y, final_state;
  std::vector<Tensor> grads;  // one per defined input, in the order of Mamba3Inputs::scan_inputs()
};

// Fresh leaves of `dtype` (undefined inputs stay undefined), the scan, then backward of the weighted loss.
RunResult run_with_grads(const Mamba3Inputs& in, DType dtype, const ScanFn& fn) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : in.scan_inputs()) {
    Tensor leaf = t.defined() ? t.to(dtype).clone() : Tensor();
    if (leaf.defined()) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  const ScanOutput out = fn(leaves);
  backward(weighted_loss(out, in));
  RunResult r{out.y.detach(), out.final_state.detach(), {}};
  for (const Tensor& leaf : leaves)
    if (leaf.defined()) {
      EXPECT_TRUE(leaf.grad().defined());
      r.grads.push_back(leaf.grad());
    }
  return r;
}

void expect_same_run(const RunResult& got, const RunResult& want, double atol, const std::string& what) {
  expect_close(got.y, want.y, atol, 0, what + " y");
  expect_close(got.final_state, want.final_state, atol, 0, what + " final_state");
  ASSERT_EQ(got.grads.size(), want.grads.size()) << what;
  for (size_t i = 0; i < want.grads.size(); ++i)
    expect_close(got.grads[i], want.grads[i], atol, 0, what + " grad of input " + std::to_string(i));
}

const char* const kNames[] = {"q", "k", "v", "adt", "gamma", "eta", "initial_state", "k_prev", "v_prev"};

// gradcheck of `scan` over all nine inputs. Every element of y and of the final state, each scaled by
// its random loss weight, is an output row of the checked Jacobian: that checks the weighted-sum
// loss's gradient and every other combination.
GradcheckResult gradcheck_scan(const Mamba3Inputs& in, const ScanFn& scan) {
  std::vector<Tensor> leaves = in.scan_inputs();
  for (Tensor& t : leaves) t.set_requires_grad(true);
  auto f = [&in, &scan](const std::vector<Tensor>& x) {
    const ScanOutput out = scan(x);
    return cat({reshape(mul(out.y, in.wy), {-1}), reshape(mul(out.final_state, in.wf), {-1})}, 0);
  };
  return gradcheck(f, leaves);
}

}  // namespace

TEST(Mamba3Scan, ReferencePassesGradcheckOverAllInputs) {
  for (int64_t R : {1, 2}) {
    SCOPED_TRACE("R=" + std::to_string(R));
    const GradcheckResult r = gradcheck_scan(random_inputs(10 + R, /*L=*/5, R, /*with_state=*/true), reference_scan);
    EXPECT_TRUE(r.ok) << r.message;
  }
}

TEST(Mamba3Scan, MatchesComposedTwinValuesAndGradients) {
  uint64_t seed = 100;
  for (int64_t L : {1, 2, 7})
    for (int64_t R : {1, 2, 3})
      for (bool with_state : {false, true}) {
        SCOPED_TRACE("L=" + std::to_string(L) + " R=" + std::to_string(R) + " state=" + std::to_string(with_state));
        const Mamba3Inputs in = random_inputs(seed++, L, R, with_state);
        const RunResult twin = run_with_grads(in, DType::Float64, composed_scan);
        const RunResult got = run_with_grads(in, DType::Float64, reference_scan);
        ASSERT_EQ(got.grads.size(), with_state ? 9u : 6u);
        expect_same_run(got, twin, 1e-10, "reference vs twin");
        EXPECT_GT(max_abs(got.y), 0.1);  // not trivially equal: the outputs carry signal
      }
}

TEST(Mamba3Scan, UndefinedInputStatesActAsZeros) {
  Mamba3Inputs in = random_inputs(7, /*L=*/4, /*R=*/2, /*with_state=*/false);
  const RunResult undefined_states = run_with_grads(in, DType::Float64, reference_scan);
  in.h0 = Tensor::zeros({kBatch, kHeads, kP, kN}, DType::Float64);
  in.k_prev = Tensor::zeros({kBatch, 2, kHeads, kN}, DType::Float64);
  in.v_prev = Tensor::zeros({kBatch, 2, kHeads, kP}, DType::Float64);
  RunResult zero_states = run_with_grads(in, DType::Float64, reference_scan);
  ASSERT_EQ(zero_states.grads.size(), 9u);
  // A zero initial state still has a gradient (dh0 = α_0 G_0); the undefined one has none to compare.
  // dk_prev ∝ v_prev and dv_prev ∝ k_prev, so those two vanish here.
  EXPECT_GT(max_abs(zero_states.grads[6]), 0.1);
  EXPECT_EQ(max_abs(zero_states.grads[7]), 0.0);
  EXPECT_EQ(max_abs(zero_states.grads[8]), 0.0);
  zero_states.grads.resize(6);
  expect_same_run(undefined_states, zero_states, 1e-14, "undefined vs zero states");
}

TEST(Mamba3Scan, GradientsOnlyForInputsThatRequireThem) {
  const Mamba3Inputs in = random_inputs(8, /*L=*/3, /*R=*/1, /*with_state=*/true);
  std::vector<Tensor> inputs = in.scan_inputs();
  inputs[2].set_requires_grad(true);  // v only
  inputs[7].set_requires_grad(true);  // and k_prev
  backward(weighted_loss(reference_scan(inputs), in));
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_EQ(inputs[i].grad().defined(), i == 2 || i == 7) << kNames[i];
}

TEST(Mamba3Scan, HandOffAcrossSplitEqualsWholeScan) {
  constexpr int64_t L = 8;
  for (int64_t R : {1, 2})
    for (int64_t T : {1, 3, 7}) {
      SCOPED_TRACE("R=" + std::to_string(R) + " T=" + std::to_string(T));
      const Mamba3Inputs in = random_inputs(200 + 10 * R + T, L, R, /*with_state=*/true);
      const RunResult whole = run_with_grads(in, DType::Float64, reference_scan);
      // Scan [0, T), then [T, L) from the first part's final state and its last token's k, v (spec §6.6).
      auto split_scan = [T](const std::vector<Tensor>& x) {
        auto part = [&x](size_t i, int64_t start, int64_t len) { return narrow(x[i], 1, start, len); };
        const ScanOutput first = reference_scan({part(0, 0, T), part(1, 0, T), part(2, 0, T), part(3, 0, T),
                                                 part(4, 0, T), part(5, 0, T), x[6], x[7], x[8]});
        const ScanOutput second =
            reference_scan({part(0, T, L - T), part(1, T, L - T), part(2, T, L - T), part(3, T, L - T),
                            part(4, T, L - T), part(5, T, L - T), first.final_state, select(x[1], 1, T - 1),
                            select(x[2], 1, T - 1)});
        return ScanOutput{cat({first.y, second.y}, 1), second.final_state};
      };
      const RunResult split = run_with_grads(in, DType::Float64, split_scan);
      // Values, and the gradients that flow back through the handed-off state, k_prev and v_prev.
      expect_same_run(split, whole, 1e-12, "split vs whole");
    }
}

TEST(Mamba3Scan, Float32AgreesWithFloat64) {
  const Mamba3Inputs in = random_inputs(300, /*L=*/16, /*R=*/2, /*with_state=*/true);
  const RunResult f64 = run_with_grads(in, DType::Float64, reference_scan);
  const RunResult f32 = run_with_grads(in, DType::Float32, reference_scan);
  EXPECT_EQ(f32.y.dtype(), DType::Float32);
  EXPECT_EQ(f32.grads[0].dtype(), DType::Float32);
  // Relative to each tensor's scale, so that elements near zero do not demand absolute float32 accuracy.
  auto expect_relative = [](const Tensor& a, const Tensor& b, const std::string& what) {
    expect_close(a, b, 1e-5 * max_abs(b), 1e-5, what);
  };
  expect_relative(f32.y, f64.y, "y");
  expect_relative(f32.final_state, f64.final_state, "final_state");
  ASSERT_EQ(f32.grads.size(), 9u);
  for (size_t i = 0; i < 9; ++i) expect_relative(f32.grads[i], f64.grads[i], std::string("d") + kNames[i]);
}

TEST(Mamba3Scan, RejectsBadShapes) {
  const Mamba3Inputs in = random_inputs(400, /*L=*/5, /*R=*/2, /*with_state=*/true);
  auto expect_rejected = [&in](std::vector<Tensor> args, const std::string& what) {
    try {
      reference_scan(args);
      ADD_FAILURE() << what << ": expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("mamba3_scan"), std::string::npos) << what << ": " << e.what();
    }
  };
  auto with = [&in](size_t i, const Tensor& replacement) {
    std::vector<Tensor> args = in.scan_inputs();
    args[i] = replacement;
    return args;
  };
  expect_rejected(with(0, in.q.select(2, 0)), "q not 5-d");
  expect_rejected(with(1, in.k.narrow(4, 0, 3)), "k's N differs from q's");
  expect_rejected(with(2, in.v.narrow(2, 0, 1)), "v's R differs");
  expect_rejected(with(3, in.adt.narrow(1, 0, 4)), "adt's L differs");
  expect_rejected(with(4, in.gamma.narrow(2, 0, 1)), "gamma's H differs");
  expect_rejected(with(5, Tensor()), "eta undefined");
  expect_rejected(with(6, in.h0.narrow(2, 0, 2)), "initial state's P differs");
  expect_rejected(with(7, in.k_prev.narrow(1, 0, 1)), "k_prev's R differs");
  expect_rejected(with(8, in.v_prev.narrow(3, 0, 2)), "v_prev's P differs");
  expect_rejected(with(5, in.eta.to(DType::Float32)), "eta's dtype differs");
  try {
    reference_scan(with(1, in.k.narrow(4, 0, 3)));
  } catch (const Error& e) {  // the message names the shapes involved
    EXPECT_NE(std::string(e.what()).find("[2, 5, 2, 2, 3]"), std::string::npos) << e.what();
  }
}

// ---- the chunked fast path against the reference ----

TEST(Mamba3ScanChunked, EqualsTheReferenceInValueAndEveryGradient) {
  uint64_t seed = 300;
  for (int64_t L : {1, 5, 13})
    for (int64_t chunk : {1, 2, 3, 4, 8, 20})
      for (int64_t R : {1, 2, 3})
        for (bool with_state : {false, true}) {
          SCOPED_TRACE("L=" + std::to_string(L) + " chunk=" + std::to_string(chunk) + " R=" + std::to_string(R) +
                       " state=" + std::to_string(with_state));
          const Mamba3Inputs in = random_inputs(seed++, L, R, with_state);
          const RunResult want = run_with_grads(in, DType::Float64, reference_scan);
          const RunResult got = run_with_grads(in, DType::Float64, chunked_scan(chunk));
          expect_same_run(got, want, 1e-9, "chunked vs reference");
        }
}

// Heads a CPU with AVX-512 runs through the register recurrence (ssm/ssd_recurrent_core.h) rather than
// the chunked GEMMs: P, N ∈ {8, 16, 32} (the test above covers the GEMMs' odd shapes; elsewhere these
// shapes take the GEMMs too, and tests/test_ssd_chunk_core.cpp runs the recurrence itself on any CPU).
TEST(Mamba3ScanChunked, RecurrentEngineEqualsTheReferenceInValueAndEveryGradient) {
  uint64_t seed = 400;
  for (auto [P, N] : {std::pair<int64_t, int64_t>{8, 16}, {16, 16}})
    for (int64_t L : {1, 13})
      for (int64_t chunk : {1, 3, 20})
        for (int64_t R : {1, 2})
          for (bool with_state : {false, true}) {
            SCOPED_TRACE("P=" + std::to_string(P) + " N=" + std::to_string(N) + " L=" + std::to_string(L) +
                         " chunk=" + std::to_string(chunk) + " R=" + std::to_string(R) +
                         " state=" + std::to_string(with_state));
            const Mamba3Inputs in = random_inputs(seed++, L, R, with_state, P, N);
            const RunResult want = run_with_grads(in, DType::Float64, reference_scan);
            const RunResult got = run_with_grads(in, DType::Float64, chunked_scan(chunk));
            expect_same_run(got, want, 1e-9, "recurrent engine vs reference");
          }
}

TEST(Mamba3ScanChunked, RecurrentEnginePassesGradcheckOverAllInputs) {
  const Mamba3Inputs in = random_inputs(34, /*L=*/5, /*R=*/2, /*with_state=*/true, /*P=*/8, /*N=*/8);
  const GradcheckResult r = gradcheck_scan(in, chunked_scan(3));
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Mamba3ScanChunked, PassesGradcheckOverAllInputs) {
  const GradcheckResult r = gradcheck_scan(random_inputs(31, /*L=*/6, /*R=*/2, /*with_state=*/true), chunked_scan(4));
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Mamba3ScanChunked, Float32AgreesWithTheFloat64Reference) {
  const Mamba3Inputs in = random_inputs(32, /*L=*/70, /*R=*/2, /*with_state=*/true);
  const RunResult want = run_with_grads(in, DType::Float64, reference_scan);
  const RunResult got = run_with_grads(in, DType::Float32, chunked_scan(16));
  expect_close(got.y, want.y, 1e-5 * max_abs(want.y), 0, "y");
  expect_close(got.final_state, want.final_state, 1e-5 * max_abs(want.final_state), 0, "final state");
  for (size_t i = 0; i < want.grads.size(); ++i)
    expect_close(got.grads[i], want.grads[i], 1e-5 * max_abs(want.grads[i]), 0, kNames[i]);
}

TEST(Mamba3ScanChunked, BitwiseTheSameForAnyThreadCount) {
#ifdef _OPENMP
  // long enough that the per-sequence loop and the per-token passes both go parallel
  const Mamba3Inputs in = random_inputs(33, /*L=*/700, /*R=*/2, /*with_state=*/true);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const RunResult one = run_with_grads(in, DType::Float32, chunked_scan(16));
  omp_set_num_threads(3);
  const RunResult three = run_with_grads(in, DType::Float32, chunked_scan(16));
  omp_set_num_threads(threads);
  EXPECT_EQ(one.y.to_vector<float>(), three.y.to_vector<float>());
  EXPECT_EQ(one.final_state.to_vector<float>(), three.final_state.to_vector<float>());
  ASSERT_EQ(one.grads.size(), three.grads.size());
  for (size_t i = 0; i < one.grads.size(); ++i)
    EXPECT_EQ(one.grads[i].to_vector<float>(), three.grads[i].to_vector<float>()) << kNames[i];
#else
  GTEST_SKIP() << "built without OpenMP";
#endif
}
