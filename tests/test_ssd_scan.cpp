// The Mamba-2 SSD scan reference (ssm/ssd_scan_reference.cpp): gradcheck in float64, the
// recurrence against an independent naive evaluation, and carrying state across a split sequence.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "ssm/ssd_scan.h"
#include "tensor/random.h"

using namespace ssm;

namespace {

struct ScanInputs {
  Tensor x, dt, A, B, C, D, h0;
};

// batch 2, L 5, H 4, P 3, G 2, N 2 (heads 0,1 -> group 0; heads 2,3 -> group 1)
ScanInputs random_inputs(uint64_t seed, DType dtype, int64_t L = 5) {
  Generator gen(seed);
  ScanInputs in;
  in.x = op::normal({2, L, 4, 3}, 0, 1, gen, dtype);
  in.dt = op::uniform({2, L, 4}, 0.1, 0.9, gen, dtype);
  in.A = op::uniform({4}, -1.5, -0.2, gen, dtype);
  in.B = op::normal({2, L, 2, 2}, 0, 1, gen, dtype);
  in.C = op::normal({2, L, 2, 2}, 0, 1, gen, dtype);
  in.D = op::normal({4}, 0, 1, gen, dtype);
  in.h0 = op::normal({2, 4, 3, 2}, 0, 1, gen, dtype);
  return in;
}

}  // namespace

TEST(SsdScan, ReferencePassesGradcheck) {
  ScanInputs in = random_inputs(1, DType::Float64);
  std::vector<Tensor> leaves = {in.x, in.dt, in.A, in.B, in.C, in.D, in.h0};
  for (Tensor& t : leaves) t.set_requires_grad(true);
  // Check y and the final state together: loss terms from both outputs.
  auto f = [](const std::vector<Tensor>& v) {
    const ScanOutput out = ssd_scan_reference(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    return cat({reshape(out.y, {-1}), reshape(mul(out.final_state, 0.7), {-1})}, 0);
  };
  const GradcheckResult r = gradcheck(f, leaves);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(SsdScan, MatchesNaiveRecurrence) {
  const ScanInputs in = random_inputs(2, DType::Float64);
  const ScanOutput out = ssd_scan_reference(in.x, in.dt, in.A, in.B, in.C, in.D, in.h0);
  // Unroll h_t = a_t h_{t-1} + dt_t x_t B_tᵀ into a closed form:
  //   h_t = (Π_{τ≤t} a_τ) h0 + Σ_{s≤t} (Π_{s<τ≤t} a_τ) dt_s x_s B_sᵀ
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t t = 0; t < 5; ++t)
        for (int64_t p = 0; p < 3; ++p) {
          const int64_t g = h / 2;
          double y = in.D.at({h}) * in.x.at({b, t, h, p});
          for (int64_t n = 0; n < 2; ++n) {
            double log_decay = 0;
            for (int64_t tau = 0; tau <= t; ++tau) log_decay += in.dt.at({b, tau, h}) * in.A.at({h});
            double state = std::exp(log_decay) * in.h0.at({b, h, p, n});
            for (int64_t s = 0; s <= t; ++s) {
              double segment = 0;
              for (int64_t tau = s + 1; tau <= t; ++tau) segment += in.dt.at({b, tau, h}) * in.A.at({h});
              state += std::exp(segment) * in.dt.at({b, s, h}) * in.x.at({b, s, h, p}) * in.B.at({b, s, g, n});
            }
            y += state * in.C.at({b, t, g, n});
            if (t == 4) { EXPECT_NEAR(out.final_state.at({b, h, p, n}), state, 1e-12); }
          }
          EXPECT_NEAR(out.y.at({b, t, h, p}), y, 1e-12);
        }
}

TEST(SsdScan, SplitSequenceWithCarriedStateEqualsWhole) {
  const ScanInputs in = random_inputs(3, DType::Float64, 8);
  const ScanOutput whole = ssd_scan_reference(in.x, in.dt, in.A, in.B, in.C, in.D, in.h0);
  auto part = [&](const Tensor& t, int64_t start, int64_t len) { return t.narrow(1, start, len); };
  const ScanOutput first = ssd_scan_reference(part(in.x, 0, 3), part(in.dt, 0, 3), in.A, part(in.B, 0, 3),
                                              part(in.C, 0, 3), in.D, in.h0);
  const ScanOutput second = ssd_scan_reference(part(in.x, 3, 5), part(in.dt, 3, 5), in.A, part(in.B, 3, 5),
                                               part(in.C, 3, 5), in.D, first.final_state);
  const auto joined = op::cat({first.y, second.y}, 1).to_vector<double>();
  const auto expected = whole.y.to_vector<double>();
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(joined[i], expected[i], 1e-12);
  const auto final_split = second.final_state.to_vector<double>(), final_whole = whole.final_state.to_vector<double>();
  for (size_t i = 0; i < final_whole.size(); ++i) EXPECT_NEAR(final_split[i], final_whole[i], 1e-12);
}

TEST(SsdScan, RejectsBadShapes) {
  const ScanInputs in = random_inputs(4, DType::Float32);
  try {
    ssd_scan_reference(in.x, in.dt, in.A, in.B.narrow(2, 0, 1).expand({2, 5, 3, 2}).contiguous(), in.C, in.D);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("groups do not divide"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ssd_scan_reference(in.x, in.dt.narrow(1, 0, 4), in.A, in.B, in.C, in.D), Error);
}
