// The two engines of the generic SSD of one sequence on their own, with R rows per time step: the
// chunked GEMMs (ssm/ssd_chunk_core.h) and the register recurrence (ssm/ssd_recurrent_core.h), each
// forward (Y and every chunk state) and backward (dQ, dK, dV, da, dS_0) against a plain sequential
// evaluation of the generic recurrence and its sequential adjoint (both test-only, below), for
// chunk sizes 1, 3, 8 and lengths that are and are not multiples of them. The inputs are strided
// views into larger buffers (like Mamba-3's [L, R, H, N] layout), so the strides are exercised too.
// The sequential adjoint is itself checked against central finite differences.
// Also the Mamba-2 scan built on the core (ssm/ssd_scan_chunked.cpp) in the cases its own tests
// leave out: one head per group (dB, dC written in place), and bitwise equality across thread counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "ssm/ssd_chunk_core.h"
#include "ssm/ssd_recurrent_core.h"
#include "ssm/ssd_scan.h"
#include "tensor/error.h"
#include "tensor/random.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace ssm;

namespace {

// One sequence's inputs as strided views: row i of Q lives at q[i * row_stride + offset] (etc).
struct CoreCase {
  int64_t L, R, N, P;
  int64_t row_stride;  // stride of the Q/K/V/dY buffers (≥ max(N, P)), each view starts at `offset`
  int64_t offset;
  int64_t a_stride;
  std::vector<double> q, k, v, a, s0, dy, ds_final;

  int64_t rows() const { return L * R; }
  const double* Q() const { return q.data() + offset; }
  const double* K() const { return k.data() + offset; }
  const double* V() const { return v.data() + offset; }
  const double* dY() const { return dy.data() + offset; }
};

CoreCase make_case(uint64_t seed, int64_t L, int64_t R, int64_t N, int64_t P) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  std::uniform_real_distribution<double> decay(-1.2, -0.02);
  CoreCase c{L, R, N, P, std::max(N, P) + 3, 2, 3, {}, {}, {}, {}, {}, {}, {}};
  const size_t buf = static_cast<size_t>(c.rows() * c.row_stride + c.offset);
  auto fill = [&](std::vector<double>& x, size_t n, bool random) {
    x.assign(n, 0);
    for (double& e : x) e = random ? normal(rng) : 0;
  };
  fill(c.q, buf, true);
  fill(c.k, buf, true);
  fill(c.v, buf, true);
  fill(c.dy, buf, true);
  c.a.assign(static_cast<size_t>(L * c.a_stride), 99.0);  // the gaps must never be read
  for (int64_t t = 0; t < L; ++t) c.a[t * c.a_stride] = decay(rng);
  fill(c.s0, P * N, true);
  fill(c.ds_final, P * N, true);
  return c;
}

// ---- the plain sequential recurrence and its adjoint (test-only) ----
//   h_t = e^{a_t} h_{t−1} + Σ_r V_{t,r} K_{t,r}ᵀ,  Y_{t,r} = h_t Q_{t,r}
struct SeqResult {
  std::vector<double> y, h_final;               // Y [rows, P] (dense), h_{L−1} [P, N]
  std::vector<double> dq, dk, dv, da, ds0;      // dense [rows, N], [rows, N], [rows, P], [L], [P, N]
};

SeqResult sequential(const CoreCase& c, bool with_s0) {
  const int64_t L = c.L, R = c.R, N = c.N, P = c.P, rs = c.row_stride;
  auto at = [&](const double* base, int64_t i) { return base + i * rs; };
  std::vector<std::vector<double>> h(static_cast<size_t>(L + 1), std::vector<double>(P * N, 0.0));
  if (with_s0) h[0] = c.s0;  // h[t+1] = h_t; h[0] = h_{−1}
  SeqResult r;
  r.y.assign(c.rows() * P, 0);
  for (int64_t t = 0; t < L; ++t) {
    const double e = std::exp(c.a[t * c.a_stride]);
    for (int64_t j = 0; j < P * N; ++j) h[t + 1][j] = e * h[t][j];
    for (int64_t ri = 0; ri < R; ++ri) {
      const double *vt = at(c.V(), t * R + ri), *kt = at(c.K(), t * R + ri);
      for (int64_t p = 0; p < P; ++p)
        for (int64_t n = 0; n < N; ++n) h[t + 1][p * N + n] += vt[p] * kt[n];
    }
    for (int64_t ri = 0; ri < R; ++ri) {
      const double* qt = at(c.Q(), t * R + ri);
      for (int64_t p = 0; p < P; ++p) {
        double acc = 0;
        for (int64_t n = 0; n < N; ++n) acc += h[t + 1][p * N + n] * qt[n];
        r.y[(t * R + ri) * P + p] = acc;
      }
    }
  }
  r.h_final = h[L];

  // Adjoint: Gn = ∂ℒ/∂h_t from the future; G = Gn + Σ_r dY_{t,r} Q_{t,r}ᵀ is the full ∂ℒ/∂h_t.
  r.dq.assign(c.rows() * N, 0);
  r.dk.assign(c.rows() * N, 0);
  r.dv.assign(c.rows() * P, 0);
  r.da.assign(L, 0);
  std::vector<double> Gn = c.ds_final, G(P * N);
  for (int64_t t = L - 1; t >= 0; --t) {
    G = Gn;
    for (int64_t ri = 0; ri < R; ++ri) {
      const double *qt = at(c.Q(), t * R + ri), *dyt = at(c.dY(), t * R + ri);
      for (int64_t p = 0; p < P; ++p)
        for (int64_t n = 0; n < N; ++n) G[p * N + n] += dyt[p] * qt[n];
    }
    for (int64_t ri = 0; ri < R; ++ri) {
      const int64_t i = t * R + ri;
      const double *vt = at(c.V(), i), *kt = at(c.K(), i), *dyt = at(c.dY(), i);
      for (int64_t p = 0; p < P; ++p)
        for (int64_t n = 0; n < N; ++n) {
          r.dq[i * N + n] += h[t + 1][p * N + n] * dyt[p];  // h_tᵀ dY
          r.dv[i * P + p] += G[p * N + n] * kt[n];          // G K
          r.dk[i * N + n] += G[p * N + n] * vt[p];          // Gᵀ V
        }
    }
    const double e = std::exp(c.a[t * c.a_stride]);
    double gh = 0;
    for (int64_t j = 0; j < P * N; ++j) gh += G[j] * h[t][j];
    r.da[t] = e * gh;
    for (int64_t j = 0; j < P * N; ++j) Gn[j] = e * G[j];
  }
  r.ds0 = Gn;
  return r;
}

// ℒ = <dY, Y> + <dS_final, h_final>, the loss whose gradients the adjoint returns.
double loss(const CoreCase& c, bool with_s0) {
  const SeqResult r = sequential(c, with_s0);
  double l = 0;
  for (int64_t i = 0; i < c.rows(); ++i)
    for (int64_t p = 0; p < c.P; ++p) l += c.dY()[i * c.row_stride + p] * r.y[i * c.P + p];
  for (int64_t j = 0; j < c.P * c.N; ++j) l += c.ds_final[j] * r.h_final[j];
  return l;
}

// ---- running an engine on a case ----

// The two engines of the same contract: the chunked GEMMs (any shape) and the register recurrence
// (P, N ∈ {8, 16, 32}). Each test runs both, the recurrence on shapes it supports.
enum class Engine { Chunked, Recurrent };

std::string name(Engine e) { return e == Engine::Chunked ? "chunked" : "recurrent"; }

constexpr Engine kEngines[] = {Engine::Chunked, Engine::Recurrent};

// Head shapes (N, P) each engine is tested on: the chunked GEMMs on odd sizes, the recurrence on
// sizes it is compiled for, N ≠ P so that a transposed state cannot pass.
struct HeadShape {
  int64_t N, P;
};
std::vector<HeadShape> shapes(Engine e) {
  if (e == Engine::Chunked) return {{5, 4}};
  return {{16, 8}, {8, 32}};
}

struct CoreResult {
  std::vector<double> y, states, dq, dk, dv, da, ds0;  // y, dq, dk, dv dense; da dense [L]
};

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Runs forward then backward in precision T. Outputs go into strided buffers too (row stride
// out_rs, a/da stride a_stride), with `accumulate` on top of a known pre-fill that is subtracted.
template <class T>
CoreResult run_core(Engine engine, const CoreCase& c, int64_t chunk, bool with_s0, bool with_ds_final,
                    bool accumulate, const T* key_weight = nullptr) {
  const int64_t rows = c.rows(), N = c.N, P = c.P, rs = c.row_stride, PN = P * N;
  const std::vector<T> q = cast<T>(c.q), k = cast<T>(c.k), v = cast<T>(c.v), a = cast<T>(c.a),
                       s0 = cast<T>(c.s0), dy = cast<T>(c.dy), dsf = cast<T>(c.ds_final);
  ssd::ChunkProblem<T> p;
  p.steps = c.L;
  p.rank = c.R;
  p.N = N;
  p.P = P;
  p.chunk = chunk;
  p.q = {q.data() + c.offset, rs};
  p.k = {k.data() + c.offset, rs};
  p.v = {v.data() + c.offset, rs};
  p.a = {a.data(), c.a_stride};
  p.k_weight = {key_weight, 1};

  const int64_t out_rs = std::max(N, P) + 1, state_stride = PN + 2;
  const T fill = accumulate ? T(0.25) : T(-7);  // overwrite mode must not read it
  std::vector<T> y(rows * out_rs, fill), states((p.nchunks() + 1) * state_stride, T(0));
  const T* s0_or_null = with_s0 ? s0.data() : nullptr;
  if (engine == Engine::Chunked)
    ssd::chunk_forward(p, s0_or_null, ssd::RowsView<T>{y.data(), out_rs}, states.data(), state_stride);
  else
    ssd::recurrent_forward(p, s0_or_null, ssd::RowsView<T>{y.data(), out_rs}, states.data(), state_stride);

  std::vector<T> dq(rows * out_rs, fill), dk(rows * out_rs, fill), dv(rows * out_rs, fill),
      da(c.L * c.a_stride, fill), ds0(PN, fill);
  ssd::ChunkGrads<T> g;
  g.dq = {dq.data(), out_rs};
  g.dk = {dk.data(), out_rs};
  g.dv = {dv.data(), out_rs};
  g.da = {da.data(), c.a_stride};
  g.ds0 = ds0.data();
  g.accumulate = accumulate;
  const ssd::RowsView<const T> dy_rows{dy.data() + c.offset, rs};
  const T* dsf_or_null = with_ds_final ? dsf.data() : nullptr;
  if (engine == Engine::Chunked)
    ssd::chunk_backward(p, states.data(), state_stride, dy_rows, dsf_or_null, g);
  else
    ssd::recurrent_backward(p, states.data(), state_stride, dy_rows, dsf_or_null, g);

  const double base = accumulate ? 0.25 : 0.0;
  auto dense = [&](const std::vector<T>& src, int64_t n_rows, int64_t width, int64_t stride) {
    std::vector<double> out(n_rows * width);
    for (int64_t i = 0; i < n_rows; ++i)
      for (int64_t j = 0; j < width; ++j) out[i * width + j] = double(src[i * stride + j]) - base;
    return out;
  };
  CoreResult r;
  r.y = dense(y, rows, P, out_rs);
  for (double& e : r.y) e += base;  // y is always overwritten
  for (int64_t cidx = 0; cidx <= p.nchunks(); ++cidx)
    for (int64_t j = 0; j < PN; ++j) r.states.push_back(double(states[cidx * state_stride + j]));
  r.dq = dense(dq, rows, N, out_rs);
  r.dk = dense(dk, rows, N, out_rs);
  r.dv = dense(dv, rows, P, out_rs);
  r.da = dense(da, c.L, 1, c.a_stride);
  r.ds0 = dense(ds0, 1, PN, PN);
  return r;
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::abs(got[i] - want[i]);
    if (d > worst) worst = d, at = i;
  }
  EXPECT_LE(worst, tol) << what << ": element " << at << " got " << got[at] << " expected " << want[at];
}

}  // namespace

TEST(SsdChunkCore, SequentialAdjointMatchesFiniteDifferences) {
  CoreCase c = make_case(3, 5, 2, 3, 2);
  const SeqResult r = sequential(c, true);
  const double h = 1e-6;
  auto check = [&](std::vector<double>& buf, int64_t index, double analytic, const std::string& what) {
    const double keep = buf[index];
    buf[index] = keep + h;
    const double up = loss(c, true);
    buf[index] = keep - h;
    const double down = loss(c, true);
    buf[index] = keep;
    EXPECT_NEAR((up - down) / (2 * h), analytic, 1e-7) << what << " " << index;
  };
  for (int64_t i = 0; i < c.rows(); ++i)
    for (int64_t n = 0; n < c.N; ++n) {
      check(c.q, c.offset + i * c.row_stride + n, r.dq[i * c.N + n], "dq");
      check(c.k, c.offset + i * c.row_stride + n, r.dk[i * c.N + n], "dk");
    }
  for (int64_t i = 0; i < c.rows(); ++i)
    for (int64_t p = 0; p < c.P; ++p) check(c.v, c.offset + i * c.row_stride + p, r.dv[i * c.P + p], "dv");
  for (int64_t t = 0; t < c.L; ++t) check(c.a, t * c.a_stride, r.da[t], "da");
  for (int64_t j = 0; j < c.P * c.N; ++j) check(c.s0, j, r.ds0[j], "ds0");
}

TEST(SsdChunkCore, MatchesSequentialRecurrenceFloat64) {
  uint64_t seed = 1000;
  for (Engine engine : kEngines)
    for (HeadShape shape : shapes(engine))
      for (int64_t R : {2, 1, 3})
        for (int64_t L : {1, 7, 16, 37})
          for (int64_t chunk : {1, 3, 8})
            for (bool with_state : {false, true}) {
              SCOPED_TRACE(name(engine) + " N=" + std::to_string(shape.N) + " P=" + std::to_string(shape.P) +
                           " R=" + std::to_string(R) + " L=" + std::to_string(L) + " chunk=" + std::to_string(chunk) +
                           " state=" + std::to_string(with_state));
              const CoreCase c = make_case(seed++, L, R, shape.N, shape.P);
              const SeqResult want = sequential(c, with_state);
              const CoreResult got = run_core<double>(engine, c, chunk, with_state, with_state, /*accumulate=*/false);
              expect_near_all(got.y, want.y, 1e-10, "y");
              const int64_t PN = c.P * c.N, nchunks = (L + chunk - 1) / chunk;
              const std::vector<double> last(got.states.end() - PN, got.states.end());
              expect_near_all(last, want.h_final, 1e-10, "final state");
              const std::vector<double> first(got.states.begin(), got.states.begin() + PN);
              expect_near_all(first, with_state ? c.s0 : std::vector<double>(PN, 0.0), 0, "S_0");
              EXPECT_EQ(static_cast<int64_t>(got.states.size()), (nchunks + 1) * PN);
              // With ds_final = nullptr the adjoint starts from zero.
              CoreCase c0 = c;
              if (!with_state) std::fill(c0.ds_final.begin(), c0.ds_final.end(), 0.0);
              const SeqResult want_b = sequential(c0, with_state);
              expect_near_all(got.dq, want_b.dq, 1e-10, "dq");
              expect_near_all(got.dk, want_b.dk, 1e-10, "dk");
              expect_near_all(got.dv, want_b.dv, 1e-10, "dv");
              expect_near_all(got.da, want_b.da, 1e-10, "da");
              expect_near_all(got.ds0, want_b.ds0, 1e-10, "ds0");
            }
}

// Sequences longer than the recurrent backward's window of rows loaded ahead (128 steps): L = 300 is two
// whole windows and a partial one at chunk 8, and windows that end inside no chunk boundary at chunk 3
// (42 chunks, 126 steps). Under the sanitizers this also checks that no window reads past the rows.
TEST(SsdChunkCore, LongSequencesMatchTheSequentialRecurrence) {
  const int64_t L = 300, R = 2;
  for (Engine engine : kEngines)
    for (int64_t chunk : {8, 3}) {
      SCOPED_TRACE(name(engine) + " chunk=" + std::to_string(chunk));
      const HeadShape shape = shapes(engine).front();
      const CoreCase c = make_case(300 + chunk, L, R, shape.N, shape.P);
      const SeqResult want = sequential(c, true);
      const CoreResult got = run_core<double>(engine, c, chunk, true, true, false);
      expect_near_all(got.y, want.y, 1e-10, "y");
      expect_near_all(got.dq, want.dq, 1e-10, "dq");
      expect_near_all(got.dk, want.dk, 1e-10, "dk");
      expect_near_all(got.dv, want.dv, 1e-10, "dv");
      expect_near_all(got.da, want.da, 1e-10, "da");
      expect_near_all(got.ds0, want.ds0, 1e-10, "ds0");
    }
}

TEST(SsdChunkCore, IntermediateStatesAreTheRecurrenceAtChunkEnds) {
  const int64_t L = 11, R = 2, chunk = 4;
  for (Engine engine : kEngines) {
    SCOPED_TRACE(name(engine));
    const HeadShape shape = shapes(engine).front();
    const CoreCase c = make_case(77, L, R, shape.N, shape.P);
    const CoreResult got = run_core<double>(engine, c, chunk, true, true, false);
    const int64_t PN = c.P * c.N;
    for (int64_t cidx = 1; cidx * chunk < L; ++cidx) {  // S_c = h_{c·chunk − 1}: run the prefix
      CoreCase prefix = c;
      prefix.L = cidx * chunk;
      const SeqResult want = sequential(prefix, true);
      const std::vector<double> s(got.states.begin() + cidx * PN, got.states.begin() + (cidx + 1) * PN);
      expect_near_all(s, want.h_final, 1e-10, "S_" + std::to_string(cidx));
    }
  }
}

TEST(SsdChunkCore, AccumulateAddsToTheOutputs) {
  for (Engine engine : kEngines) {
    SCOPED_TRACE(name(engine));
    const HeadShape shape = shapes(engine).front();
    const CoreCase c = make_case(5, 13, 2, shape.N, shape.P);
    const SeqResult want = sequential(c, true);
    const CoreResult got = run_core<double>(engine, c, 3, true, true, /*accumulate=*/true);  // minus the pre-fill
    expect_near_all(got.dq, want.dq, 1e-10, "dq");
    expect_near_all(got.dk, want.dk, 1e-10, "dk");
    expect_near_all(got.dv, want.dv, 1e-10, "dv");
    expect_near_all(got.da, want.da, 1e-10, "da");
    expect_near_all(got.ds0, want.ds0, 1e-10, "ds0");
  }
}

// At the ~1M model's heads (N = P = 16, R = 2) and an odd pair, over several chunks.
TEST(SsdChunkCore, Float32AgreesWithFloat64) {
  for (Engine engine : kEngines)
    for (HeadShape shape : {HeadShape{16, 8}, HeadShape{16, 16}}) {
      SCOPED_TRACE(name(engine) + " N=" + std::to_string(shape.N) + " P=" + std::to_string(shape.P));
      const CoreCase c = make_case(9, 70, 2, shape.N, shape.P);
      const SeqResult want = sequential(c, true);
      const CoreResult got = run_core<float>(engine, c, 32, true, true, false);
      auto scale = [](const std::vector<double>& v) {
        double m = 1;
        for (double e : v) m = std::max(m, std::abs(e));
        return m;
      };
      expect_near_all(got.y, want.y, 2e-5 * scale(want.y), "y");
      expect_near_all(got.dq, want.dq, 2e-5 * scale(want.dq), "dq");
      expect_near_all(got.dk, want.dk, 2e-5 * scale(want.dk), "dk");
      expect_near_all(got.dv, want.dv, 2e-5 * scale(want.dv), "dv");
      expect_near_all(got.da, want.da, 2e-5 * scale(want.da), "da");
      expect_near_all(got.ds0, want.ds0, 2e-5 * scale(want.ds0), "ds0");
    }
}

// The recurrence is compiled for P, N ∈ {8, 16, 32} and says so; every other shape takes the GEMMs,
// and asking the recurrence itself for one is an error that names the shape, not a crash.
// (Whether a CPU uses it for those shapes, recurrent_is_fast_here, depends on the CPU: not tested.)
TEST(SsdChunkCore, RecurrenceSupportsTheShapesItIsCompiledFor) {
  for (int64_t P : {8, 16, 32})
    for (int64_t N : {8, 16, 32}) EXPECT_TRUE(ssd::recurrent_supports(P, N)) << P << " " << N;
  for (auto [P, N] : {std::pair<int64_t, int64_t>{4, 16}, {16, 5}, {64, 128}, {24, 16}})
    EXPECT_FALSE(ssd::recurrent_supports(P, N)) << P << " " << N;
  const CoreCase c = make_case(12, /*L=*/3, /*R=*/1, /*N=*/5, /*P=*/4);
  try {
    run_core<double>(Engine::Recurrent, c, 2, true, true, false);
    ADD_FAILURE() << "the recurrence ran a shape it is not compiled for";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("P = 4, N = 5"), std::string::npos) << e.what();
  }
}

namespace {

// y, the final state and the gradients of x, dt, A, B, C, D, h0 for ℒ = <wy, y> + <wf, final state>.
std::vector<std::vector<double>> mamba2_outputs(bool chunked, int64_t G, DType dtype, uint64_t seed) {
  Generator gen(seed);
  const int64_t batch = 2, L = 61, H = 4, P = 3, N = 5;  // big enough for the scan to go parallel
  const DType f64 = DType::Float64;
  std::vector<Tensor> in = {op::normal({batch, L, H, P}, 0, 1, gen, f64), op::uniform({batch, L, H}, 0.05, 0.9, gen, f64),
                            op::uniform({H}, -1.5, -0.2, gen, f64),       op::normal({batch, L, G, N}, 0, 1, gen, f64),
                            op::normal({batch, L, G, N}, 0, 1, gen, f64), op::normal({H}, 0, 1, gen, f64),
                            op::normal({batch, H, P, N}, 0, 1, gen, f64)};
  const Tensor wy = op::normal({batch, L, H, P}, 0, 1, gen, f64).to(dtype);
  const Tensor wf = op::normal({batch, H, P, N}, 0, 1, gen, f64).to(dtype);
  for (Tensor& t : in) {
    t = t.to(dtype).clone();
    t.set_requires_grad(true);
  }
  const ScanOutput out = chunked ? ssd_scan_chunked(in[0], in[1], in[2], in[3], in[4], in[5], in[6], 8)
                                 : ssd_scan_reference(in[0], in[1], in[2], in[3], in[4], in[5], in[6]);
  backward(add(sum(mul(out.y, wy)), sum(mul(out.final_state, wf))));
  std::vector<std::vector<double>> r = {out.y.to_vector<double>(), out.final_state.to_vector<double>()};
  for (const Tensor& t : in) r.push_back(t.grad().to_vector<double>());
  return r;
}

const char* const kMamba2Names[] = {"y", "final_state", "dx", "ddt", "dA", "dB", "dC", "dD", "dh0"};

}  // namespace

TEST(SsdChunkCore, Mamba2OneHeadPerGroupMatchesReference) {
  const auto want = mamba2_outputs(false, /*G=*/4, DType::Float64, 11);
  const auto got = mamba2_outputs(true, /*G=*/4, DType::Float64, 11);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) expect_near_all(got[i], want[i], 1e-9, kMamba2Names[i]);
}

TEST(SsdChunkCore, Mamba2ChunkedIsBitwiseTheSameForAnyThreadCount) {
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  for (int64_t G : {1, 2, 4}) {
    omp_set_num_threads(1);
    const auto one = mamba2_outputs(true, G, DType::Float32, 21);
    omp_set_num_threads(3);
    const auto three = mamba2_outputs(true, G, DType::Float32, 21);
    omp_set_num_threads(threads);
    ASSERT_EQ(one.size(), three.size());
    for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(one[i], three[i]) << kMamba2Names[i] << " G=" << G;
  }
#else
  GTEST_SKIP() << "built without OpenMP";
#endif
}

// Per-step key weights (ChunkProblem::k_weight, Mamba-3's γ + η_next) give the same problem as the keys
// scaled beforehand, forward and backward (dK is the scaled keys' gradient): in the chunked engine the
// very bits, in the recurrence up to rounding (it scales V or the sum instead of each key, which
// costs one product per row, not one per value).
TEST(SsdChunkCore, KeyWeightsEqualPrescaledKeys) {
  for (Engine engine : kEngines)
    for (int64_t R : {1, 2}) {
      SCOPED_TRACE(name(engine) + " R=" + std::to_string(R));
      const CoreCase c = make_case(77 + R, /*L=*/37, R, /*N=*/16, /*P=*/16);
      std::vector<double> weight(c.L);
      for (int64_t t = 0; t < c.L; ++t) weight[t] = 0.25 + 0.5 * std::abs(std::sin(0.7 * double(t)));
      CoreCase scaled = c;
      for (int64_t i = 0; i < c.rows(); ++i)
        for (int64_t n = 0; n < c.N; ++n) {
          double& e = scaled.k[c.offset + i * c.row_stride + n];
          e = double(float(weight[i / R]) * float(e));  // rounded as the core rounds it in float
        }
      const CoreResult want = run_core<float>(engine, scaled, 8, true, true, false);
      const std::vector<float> w32(weight.begin(), weight.end());
      const CoreResult got = run_core<float>(engine, c, 8, true, true, false, w32.data());
      const double tol = engine == Engine::Chunked ? 0.0 : 1e-5;  // relative to the largest value
      auto expect_same = [tol](const std::vector<double>& g, const std::vector<double>& w, const char* what) {
        double m = 1;
        for (double e : w) m = std::max(m, std::abs(e));
        expect_near_all(g, w, tol * m, what);
      };
      expect_same(got.y, want.y, "y");
      expect_same(got.states, want.states, "states");
      expect_same(got.dq, want.dq, "dq");
      expect_same(got.dk, want.dk, "dk");
      expect_same(got.dv, want.dv, "dv");
      expect_same(got.da, want.da, "da");
      expect_same(got.ds0, want.ds0, "ds0");
    }
}
