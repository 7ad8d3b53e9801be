// The chunked Mamba-2 SSD scan (ssm/ssd_scan_chunked.cpp) against the sequential reference:
// forward (y and final state) and every input gradient, over lengths that are and are not
// multiples of the chunk size, one and two groups, with and without an initial state; plus a
// float64 gradcheck of the chunked op itself and float32 agreement. Head shapes of both CPU engines:
// odd ones (the chunked GEMMs) and ones the register recurrence is compiled for.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <tuple>
#include <utility>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "compare_helpers.h"
#include "ssm/ssd_scan.h"
#include "tensor/random.h"

using namespace ssm;
using ssm::testing::expect_close;

namespace {

struct ChunkInputs {
  Tensor x, dt, A, B, C, D, h0;  // h0 undefined when without_state
  Tensor wy, wf;                 // loss weights for y and final state
};

// batch 2, H 4, P 3, N 5 (or the given P, N), G groups
ChunkInputs random_chunk_inputs(uint64_t seed, int64_t L, int64_t G, bool with_state, int64_t P = 3, int64_t N = 5) {
  Generator gen(seed);
  const DType f64 = DType::Float64;
  ChunkInputs in;
  in.x = op::normal({2, L, 4, P}, 0, 1, gen, f64);
  in.dt = op::uniform({2, L, 4}, 0.05, 0.9, gen, f64);
  in.A = op::uniform({4}, -1.5, -0.2, gen, f64);
  in.B = op::normal({2, L, G, N}, 0, 1, gen, f64);
  in.C = op::normal({2, L, G, N}, 0, 1, gen, f64);
  in.D = op::normal({4}, 0, 1, gen, f64);
  if (with_state) in.h0 = op::normal({2, 4, P, N}, 0, 1, gen, f64);
  in.wy = op::normal({2, L, 4, P}, 0, 1, gen, f64);
  in.wf = op::normal({2, 4, P, N}, 0, 1, gen, f64);
  return in;
}

using ScanFn = std::function<ScanOutput(const std::vector<Tensor>&)>;

struct RunResult {
  Tensor y, final_state;
  std::vector<Tensor> grads;  // one per defined input, in order x, dt, A, B, C, D, (h0)
};

RunResult run_with_grads(const ChunkInputs& in, DType dtype, const ScanFn& fn) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : {in.x, in.dt, in.A, in.B, in.C, in.D, in.h0}) {
    if (!t.defined()) {
      leaves.push_back(Tensor());
      continue;
    }
    Tensor leaf = t.to(dtype).clone();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  const ScanOutput out = fn(leaves);
  const Tensor loss = add(sum(mul(out.y, in.wy.to(dtype))), sum(mul(out.final_state, in.wf.to(dtype))));
  backward(loss);
  RunResult r{out.y.detach(), out.final_state.detach(), {}};
  for (const Tensor& leaf : leaves)
    if (leaf.defined()) {
      EXPECT_TRUE(leaf.grad().defined());
      r.grads.push_back(leaf.grad());
    }
  return r;
}

ScanFn reference_fn() {
  return [](const std::vector<Tensor>& v) { return ssd_scan_reference(v[0], v[1], v[2], v[3], v[4], v[5], v[6]); };
}
ScanFn chunked_fn(int64_t chunk) {
  return [chunk](const std::vector<Tensor>& v) {
    return ssd_scan_chunked(v[0], v[1], v[2], v[3], v[4], v[5], v[6], chunk);
  };
}

const char* const kNames[] = {"dx", "ddt", "dA", "dB", "dC", "dD", "dh0"};

}  // namespace

// P 3, N 5 runs the chunked GEMMs; P 16, N 8 the register recurrence (ssm/ssd_recurrent_core.h) on a
// CPU with AVX-512, the GEMMs elsewhere.
TEST(SsdScanChunked, MatchesReferenceForwardAndBackwardFloat64) {
  uint64_t seed = 100;
  for (auto [P, N] : {std::pair<int64_t, int64_t>{3, 5}, {16, 8}})
    for (int64_t L : {1, 7, 16, 37})
      for (int64_t chunk : {4, 8, 16})
        for (int64_t G : {1, 2})
          for (bool with_state : {false, true}) {
            SCOPED_TRACE("P=" + std::to_string(P) + " N=" + std::to_string(N) + " L=" + std::to_string(L) + " chunk=" +
                         std::to_string(chunk) + " G=" + std::to_string(G) + " state=" + std::to_string(with_state));
            const ChunkInputs in = random_chunk_inputs(seed++, L, G, with_state, P, N);
            const RunResult ref = run_with_grads(in, DType::Float64, reference_fn());
            const RunResult got = run_with_grads(in, DType::Float64, chunked_fn(chunk));
            expect_close(got.y, ref.y, 1e-10, 0, "y");
            expect_close(got.final_state, ref.final_state, 1e-10, 0, "final_state");
            ASSERT_EQ(got.grads.size(), ref.grads.size());
            ASSERT_EQ(got.grads.size(), with_state ? 7u : 6u);
            for (size_t i = 0; i < ref.grads.size(); ++i) expect_close(got.grads[i], ref.grads[i], 1e-9, 0, kNames[i]);
          }
}

TEST(SsdScanChunked, ChunkedPassesGradcheck) {
  for (auto [P, N, chunk] : {std::tuple<int64_t, int64_t, int64_t>{3, 5, 2}, {3, 5, 3}, {8, 8, 3}}) {
    const ChunkInputs in = random_chunk_inputs(7, 5, 2, true, P, N);
    std::vector<Tensor> leaves = {in.x, in.dt, in.A, in.B, in.C, in.D, in.h0};
    for (Tensor& t : leaves) t.set_requires_grad(true);
    auto f = [chunk](const std::vector<Tensor>& v) {
      const ScanOutput out = ssd_scan_chunked(v[0], v[1], v[2], v[3], v[4], v[5], v[6], chunk);
      return cat({reshape(out.y, {-1}), reshape(mul(out.final_state, 0.7), {-1})}, 0);
    };
    const GradcheckResult r = gradcheck(f, leaves);
    EXPECT_TRUE(r.ok) << "P " << P << " N " << N << " chunk " << chunk << ": " << r.message;
  }
}

TEST(SsdScanChunked, Float32AgreesWithFloat64Reference) {
  uint64_t seed = 500;
  for (int64_t L : {7, 37})
    for (int64_t chunk : {4, 16}) {
      SCOPED_TRACE("L=" + std::to_string(L) + " chunk=" + std::to_string(chunk));
      const ChunkInputs in = random_chunk_inputs(seed++, L, 2, true);
      const RunResult ref = run_with_grads(in, DType::Float64, reference_fn());
      const RunResult ref32 = run_with_grads(in, DType::Float32, reference_fn());
      const RunResult got = run_with_grads(in, DType::Float32, chunked_fn(chunk));
      EXPECT_EQ(got.y.dtype(), DType::Float32);
      expect_close(got.y, ref.y, 1e-4, 1e-4, "y");
      expect_close(got.final_state, ref.final_state, 1e-4, 1e-4, "final_state");
      expect_close(got.y, ref32.y, 1e-4, 1e-4, "y vs float32 reference");
      // Gradients sum many terms (dA over all positions): compare relative to each tensor's scale.
      for (size_t i = 0; i < ref.grads.size(); ++i) {
        const auto v = ref.grads[i].to_vector<double>();
        double scale = 0;
        for (double e : v) scale = std::max(scale, std::abs(e));
        expect_close(got.grads[i], ref.grads[i], 1e-4 * std::max(scale, 1.0), 1e-4, kNames[i]);
      }
    }
}

TEST(SsdScanChunked, RejectsBadArguments) {
  const ChunkInputs in = random_chunk_inputs(9, 5, 2, true);
  EXPECT_THROW(ssd_scan_chunked(in.x, in.dt, in.A, in.B, in.C, in.D, in.h0, 0), Error);
  EXPECT_THROW(ssd_scan_chunked(in.x, in.dt.narrow(1, 0, 4), in.A, in.B, in.C, in.D, in.h0, 4), Error);
  try {
    ssd_scan_chunked(in.x, in.dt, in.A, in.B.narrow(2, 0, 1).expand({2, 5, 3, 5}).contiguous(), in.C, in.D, in.h0, 4);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("groups do not divide"), std::string::npos) << e.what();
  }
}
