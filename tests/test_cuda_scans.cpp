// tests/test_cuda_scans.cpp — the chunked scans on a CUDA device against the same scans on the CPU.
//
// Fresh random inputs, the same on both devices; forward values (y, final state) and every input gradient
// (autograd backward of a random weighting of both outputs) must agree: ~1e-5 relative in float32 (the GPU
// sums in other orders), ~1e-10 in float64. Shapes cover L below, at and off a multiple of the chunk,
// several groups per head count (Mamba-2), ranks R = 1, 2, 4 (Mamba-3), and states given or absent.
// Without a GPU (or in a build without CUDA) every test here skips, saying so.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/functions.h"
#include "compare_helpers.h"
#include "cuda_test_helpers.h"
#ifdef SSM_WITH_CUDA
#include "cuda/context.h"
#include "cuda/ssd_chunk_mma.h"
#include "cuda/ssm_kernels.h"
#endif
#include "ssm/mamba3_scan.h"
#include "ssm/ssd_scan.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace ssm;
using ssm::testing::expect_close;
using ssm::testing::max_abs;

namespace {

using ScanFn = std::function<ScanOutput(const std::vector<Tensor>&)>;

struct RunResult {
  Tensor y, final_state;       // on the CPU
  std::vector<Tensor> grads;   // on the CPU, one per defined input, in input order
};

// Runs fn on `device` in `dtype` with inputs as leaves, then backward of Σ y·wy + Σ final·wf.
RunResult run_on(const std::vector<Tensor>& inputs, const Tensor& wy, const Tensor& wf, DType dtype, Device device,
                 const ScanFn& fn) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      leaves.push_back(Tensor());
      continue;
    }
    Tensor leaf = t.to(dtype).to(device).clone();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  const ScanOutput out = fn(leaves);
  EXPECT_EQ(out.y.device(), device);
  EXPECT_EQ(out.final_state.device(), device);
  const Tensor loss =
      add(sum(mul(out.y, wy.to(dtype).to(device))), sum(mul(out.final_state, wf.to(dtype).to(device))));
  backward(loss);
  RunResult r{out.y.detach().to(Device::cpu()), out.final_state.detach().to(Device::cpu()), {}};
  for (const Tensor& leaf : leaves)
    if (leaf.defined()) {
      EXPECT_TRUE(leaf.grad().defined());
      EXPECT_EQ(leaf.grad().device(), device);
      r.grads.push_back(leaf.grad().to(Device::cpu()));
    }
  return r;
}

// Tolerances relative to each tensor's largest value (gradients like dA sum over every position).
void expect_same_results(const RunResult& got, const RunResult& want, DType dtype, const std::vector<std::string>& names) {
  const double tol = dtype == DType::Float32 ? 3e-5 : 1e-10;
  const auto close = [&](const Tensor& a, const Tensor& b, const std::string& what) {
    expect_close(a, b, tol * std::max(max_abs(b), 1.0), tol, what);
  };
  close(got.y, want.y, "y");
  close(got.final_state, want.final_state, "final state");
  ASSERT_EQ(got.grads.size(), want.grads.size());
  for (size_t i = 0; i < want.grads.size(); ++i) close(got.grads[i], want.grads[i], names[i]);
}

using CudaScanTest = ssm::testing::CudaTest;

// ---- Mamba-2 ----

struct SsdInputs {
  std::vector<Tensor> in;  // x, dt, A, B, C, D, h0 (h0 undefined without a state)
  Tensor wy, wf;
};

SsdInputs random_ssd(uint64_t seed, int64_t batch, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N,
                     bool with_state) {
  Generator gen(seed);
  const DType f64 = DType::Float64;
  SsdInputs s;
  s.in = {op::normal({batch, L, H, P}, 0, 1, gen, f64),  op::uniform({batch, L, H}, 0.05, 0.9, gen, f64),
          op::uniform({H}, -1.5, -0.2, gen, f64),         op::normal({batch, L, G, N}, 0, 1, gen, f64),
          op::normal({batch, L, G, N}, 0, 1, gen, f64),   op::normal({H}, 0, 1, gen, f64),
          with_state ? op::normal({batch, H, P, N}, 0, 1, gen, f64) : Tensor()};
  s.wy = op::normal({batch, L, H, P}, 0, 1, gen, f64);
  s.wf = op::normal({batch, H, P, N}, 0, 1, gen, f64);
  return s;
}

ScanFn ssd_chunked(int64_t chunk) {
  return [chunk](const std::vector<Tensor>& v) { return ssd_scan_chunked(v[0], v[1], v[2], v[3], v[4], v[5], v[6], chunk); };
}

const std::vector<std::string> kSsdNames = {"dx", "ddt", "dA", "dB", "dC", "dD", "dh0"};

class CudaSsdScan : public CudaScanTest {};

TEST_F(CudaSsdScan, MatchesCpuChunkedForwardAndBackward) {
  uint64_t seed = 7100;
  for (DType dtype : {DType::Float32, DType::Float64})
    for (int64_t L : {5, 16, 37})
      for (int64_t chunk : {8, 16, 64})
        for (int64_t G : {1, 2, 4})
          for (bool with_state : {false, true}) {
            SCOPED_TRACE(std::string(dtype_name(dtype)) + " L=" + std::to_string(L) + " chunk=" +
                         std::to_string(chunk) + " G=" + std::to_string(G) + " state=" + std::to_string(with_state));
            const SsdInputs s = random_ssd(seed++, 2, L, 4, 3, G, 5, with_state);
            const RunResult cpu = run_on(s.in, s.wy, s.wf, dtype, Device::cpu(), ssd_chunked(chunk));
            const RunResult gpu = run_on(s.in, s.wy, s.wf, dtype, Device::cuda(), ssd_chunked(chunk));
            expect_same_results(gpu, cpu, dtype, kSsdNames);
          }
}

// Model-sized heads (P = 64, N = 32, several tiles per chunk) and a chunk of 128 steps.
TEST_F(CudaSsdScan, MatchesCpuAtModelSizes) {
  uint64_t seed = 7300;
  for (DType dtype : {DType::Float32, DType::Float64})
    for (int64_t chunk : {64, 128}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " chunk=" + std::to_string(chunk));
      const SsdInputs s = random_ssd(seed++, 2, 300, 4, 64, 2, 32, true);
      const RunResult cpu = run_on(s.in, s.wy, s.wf, dtype, Device::cpu(), ssd_chunked(chunk));
      const RunResult gpu = run_on(s.in, s.wy, s.wf, dtype, Device::cuda(), ssd_chunked(chunk));
      expect_same_results(gpu, cpu, dtype, kSsdNames);
    }
}

// Heads too large for the kernels to stage a chunk's operands in shared memory (P = N = 256): they read
// them from global memory instead, and must give the same results.
TEST_F(CudaSsdScan, MatchesCpuWhenHeadsDoNotFitSharedMemory) {
  uint64_t seed = 7350;
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const SsdInputs s = random_ssd(seed++, 1, 70, 2, 256, 1, 256, true);
    const RunResult cpu = run_on(s.in, s.wy, s.wf, dtype, Device::cpu(), ssd_chunked(64));
    const RunResult gpu = run_on(s.in, s.wy, s.wf, dtype, Device::cuda(), ssd_chunked(64));
    expect_same_results(gpu, cpu, dtype, kSsdNames);
  }
}

// No atomics: two runs give the same bits.
TEST_F(CudaSsdScan, IsDeterministic) {
  const SsdInputs s = random_ssd(7400, 2, 70, 4, 16, 2, 8, true);
  const RunResult a = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cuda(), ssd_chunked(16));
  const RunResult b = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cuda(), ssd_chunked(16));
  EXPECT_EQ(a.y.to_vector<float>(), b.y.to_vector<float>());
  for (size_t i = 0; i < a.grads.size(); ++i)
    EXPECT_EQ(a.grads[i].to_vector<float>(), b.grads[i].to_vector<float>()) << kSsdNames[i];
}

TEST_F(CudaSsdScan, ReferenceRejectsCudaTensors) {
  const SsdInputs s = random_ssd(7500, 1, 4, 2, 3, 1, 5, false);
  std::vector<Tensor> g;
  for (const Tensor& t : s.in) g.push_back(t.defined() ? t.to(Device::cuda()) : Tensor());
  try {
    ssd_scan_reference(g[0], g[1], g[2], g[3], g[4], g[5], g[6]);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CPU only"), std::string::npos) << e.what();
  }
  // mixed devices are an error too
  EXPECT_THROW(ssd_scan_chunked(g[0], s.in[1], g[2], g[3], g[4], g[5], g[6], 4), Error);
}

// ---- Mamba-3 ----

struct Mamba3Inputs {
  std::vector<Tensor> in;  // q, k, v, adt, gamma, eta, h0, k_prev, v_prev (the last three undefined without state)
  Tensor wy, wf;
};

Mamba3Inputs random_mamba3(uint64_t seed, int64_t batch, int64_t L, int64_t R, int64_t H, int64_t P, int64_t N,
                           bool with_state) {
  Generator gen(seed);
  const DType f64 = DType::Float64;
  Mamba3Inputs s;
  s.in = {op::normal({batch, L, R, H, N}, 0, 1, gen, f64),
          op::normal({batch, L, R, H, N}, 0, 1, gen, f64),
          op::normal({batch, L, R, H, P}, 0, 1, gen, f64),
          op::uniform({batch, L, H}, -1.5, -0.1, gen, f64),
          op::uniform({batch, L, H}, 0.05, 0.9, gen, f64),
          op::uniform({batch, L, H}, 0.05, 0.9, gen, f64),
          with_state ? op::normal({batch, H, P, N}, 0, 1, gen, f64) : Tensor(),
          with_state ? op::normal({batch, R, H, N}, 0, 1, gen, f64) : Tensor(),
          with_state ? op::normal({batch, R, H, P}, 0, 1, gen, f64) : Tensor()};
  s.wy = op::normal({batch, L, R, H, P}, 0, 1, gen, f64);
  s.wf = op::normal({batch, H, P, N}, 0, 1, gen, f64);
  return s;
}

ScanFn mamba3_chunked(int64_t chunk) {
  return [chunk](const std::vector<Tensor>& v) {
    return mamba3_scan_chunked(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], chunk);
  };
}

const std::vector<std::string> kMamba3Names = {"dq", "dk", "dv", "dadt", "dgamma", "deta", "dh0", "dk_prev", "dv_prev"};

class CudaMamba3Scan : public CudaScanTest {};

TEST_F(CudaMamba3Scan, MatchesCpuChunkedForwardAndBackward) {
  uint64_t seed = 8100;
  for (DType dtype : {DType::Float32, DType::Float64})
    for (int64_t L : {1, 5, 16, 37})
      for (int64_t chunk : {8, 64})
        for (int64_t R : {1, 2, 4})
          for (bool with_state : {false, true}) {
            SCOPED_TRACE(std::string(dtype_name(dtype)) + " L=" + std::to_string(L) + " chunk=" +
                         std::to_string(chunk) + " R=" + std::to_string(R) + " state=" + std::to_string(with_state));
            const Mamba3Inputs s = random_mamba3(seed++, 2, L, R, 2, 3, 4, with_state);
            const RunResult cpu = run_on(s.in, s.wy, s.wf, dtype, Device::cpu(), mamba3_chunked(chunk));
            const RunResult gpu = run_on(s.in, s.wy, s.wf, dtype, Device::cuda(), mamba3_chunked(chunk));
            expect_same_results(gpu, cpu, dtype, kMamba3Names);
          }
}

TEST_F(CudaMamba3Scan, MatchesCpuAtModelSizes) {
  uint64_t seed = 8300;
  for (DType dtype : {DType::Float32, DType::Float64})
    for (int64_t R : {1, 4}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " R=" + std::to_string(R));
      const Mamba3Inputs s = random_mamba3(seed++, 2, 150, R, 4, 32, 32, true);
      const RunResult cpu = run_on(s.in, s.wy, s.wf, dtype, Device::cpu(), mamba3_chunked(64));
      const RunResult gpu = run_on(s.in, s.wy, s.wf, dtype, Device::cuda(), mamba3_chunked(64));
      expect_same_results(gpu, cpu, dtype, kMamba3Names);
    }
}

// The 130M model's heads (P = 64, N = 128, chunk 64): staged in shared memory in float32, too large to
// stage in float64.
TEST_F(CudaMamba3Scan, MatchesCpuAt130mHeads) {
  uint64_t seed = 8400;
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Mamba3Inputs s = random_mamba3(seed++, 1, 100, 1, 2, 64, 128, true);
    const RunResult cpu = run_on(s.in, s.wy, s.wf, dtype, Device::cpu(), mamba3_chunked(64));
    const RunResult gpu = run_on(s.in, s.wy, s.wf, dtype, Device::cuda(), mamba3_chunked(64));
    expect_same_results(gpu, cpu, dtype, kMamba3Names);
  }
}

// The tensor-core chunk kernels (cuda/ssd_chunk_mma.cu) take float32 heads whose N and P are multiples of
// 16; the rest of this file's float32 cases at model sizes run on them too. Here a chunk's rows are padded
// (R = 3, chunk 8: 24 rows in tiles of 16), N differs from P both ways, and the last chunk is partial.
TEST_F(CudaMamba3Scan, TensorCoreKernelsMatchCpuWithPaddedRows) {
  uint64_t seed = 8450;
  for (int64_t R : {1, 3})
    for (auto [P, N] : {std::pair<int64_t, int64_t>{16, 48}, {32, 16}}) {
      SCOPED_TRACE("R=" + std::to_string(R) + " P=" + std::to_string(P) + " N=" + std::to_string(N));
#ifdef SSM_WITH_CUDA
      cuda::ChunkScanSizes z;
      z.batch = 2, z.heads = 2, z.steps = 37, z.rank = R, z.N = N, z.P = P, z.chunk = 8;
      const float* aligned = nullptr;  // takes() asks the state buffer's alignment; address 0 is aligned
      if (cuda::ssd_chunk_mma::device_has_tf32()) {
        ASSERT_TRUE(cuda::ssd_chunk_mma::takes(z, aligned)) << "these sizes should run on tensor cores";
      }
#endif
      const Mamba3Inputs s = random_mamba3(seed++, 2, 37, R, 2, P, N, true);
      const RunResult cpu = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cpu(), mamba3_chunked(8));
      const RunResult gpu = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cuda(), mamba3_chunked(8));
      expect_same_results(gpu, cpu, DType::Float32, kMamba3Names);
    }
}

// TF32 mode (SSM_TF32=1, cuda/context.h) runs the tensor-core chunk products as single TF32 products
// (10-bit mantissas, ~1e-3 relative): at the 130M heads every result stays within 1e-2 of the CPU's,
// relative to each tensor's largest value.
TEST_F(CudaMamba3Scan, Tf32ModeMatchesCpuToTf32Precision) {
#ifdef SSM_WITH_CUDA
  const bool was = cuda::tf32();
  cuda::set_tf32(true);
  const Mamba3Inputs s = random_mamba3(8460, 1, 100, 1, 2, 64, 128, true);
  const RunResult cpu = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cpu(), mamba3_chunked(64));
  const RunResult gpu = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cuda(), mamba3_chunked(64));
  cuda::set_tf32(was);
  const auto close = [](const Tensor& a, const Tensor& b, const std::string& what) {
    const double tol = 1e-2 * std::max(max_abs(b), 1.0);
    expect_close(a, b, tol, 1e-2, what);
  };
  close(gpu.y, cpu.y, "y");
  close(gpu.final_state, cpu.final_state, "final state");
  for (size_t i = 0; i < cpu.grads.size(); ++i) close(gpu.grads[i], cpu.grads[i], kMamba3Names[i]);
#endif
}

// Under bf16 autocast the tensor-core kernels' products are single TF32 (autocast's reduced-precision
// operands), chosen at the forward: the backward runs after the autocast scope has closed and multiplies
// alike. So every result equals TF32 mode's exactly, and differs from the 3×TF32 products' (the switch
// did happen).
TEST_F(CudaMamba3Scan, AutocastRunsTheChunkProductsInTf32) {
#ifdef SSM_WITH_CUDA
  if (!cuda::ssd_chunk_mma::device_has_tf32()) GTEST_SKIP() << "this GPU has no TF32 tensor cores (sm_80+)";
  const Mamba3Inputs s = random_mamba3(8470, 1, 100, 1, 2, 64, 128, true);
  const ScanFn under_autocast = [](const std::vector<Tensor>& in) {
    const AutocastGuard autocast;
    return mamba3_chunked(64)(in);
  };
  const RunResult autocast = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cuda(), under_autocast);
  const RunResult split = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cuda(), mamba3_chunked(64));
  const bool was = cuda::tf32();
  cuda::set_tf32(true);
  const RunResult tf32 = run_on(s.in, s.wy, s.wf, DType::Float32, Device::cuda(), mamba3_chunked(64));
  cuda::set_tf32(was);
  const auto identical = [](const Tensor& got, const Tensor& want, const std::string& what) {
    EXPECT_TRUE(got.to_vector<float>() == want.to_vector<float>()) << what << " differs from TF32 mode's";
  };
  identical(autocast.y, tf32.y, "y");
  identical(autocast.final_state, tf32.final_state, "final state");
  for (size_t i = 0; i < tf32.grads.size(); ++i) identical(autocast.grads[i], tf32.grads[i], kMamba3Names[i]);
  EXPECT_GT(max_abs(sub(autocast.y, split.y)), 0.0) << "autocast should change the products' precision";
#endif
}

// The own-step discount that folds Mamba-3's diagonal correction into the core is the tensor-core kernels'
// alone (the float32 cases above at N, P multiples of 16 run it; the others run the correction's own
// kernels). Asked of the CUDA-core kernels — float64 here — the core refuses, naming it, rather than
// dropping it.
TEST_F(CudaMamba3Scan, CoreRefusesAnOwnStepDiscountOffTensorCores) {
#ifdef SSM_WITH_CUDA
  cuda::ChunkScanSizes z;
  z.batch = 1, z.heads = 1, z.steps = 4, z.rank = 1, z.N = 16, z.P = 16, z.chunk = 4;
  const DType f64 = DType::Float64;
  const Tensor rows = Tensor::zeros({4, 16}, f64, Device::cuda()), steps = Tensor::zeros({4}, f64, Device::cuda());
  const Tensor y = Tensor::zeros({4, 16}, f64, Device::cuda());
  const Tensor states = Tensor::zeros({2, 16, 16}, f64, Device::cuda());
  const cuda::SeqLayout row_layout{64, 16, 1, 16}, step_layout{4, 1, 1, 1};
  cuda::ChunkScanInputs<double> in;
  in.sizes = z;
  in.q = in.k = in.v = rows.data<double>();
  in.a = in.k_weight = in.k_own_discount = steps.data<double>();
  in.q_layout = in.k_layout = in.v_layout = row_layout;
  in.a_layout = in.k_weight_layout = step_layout;
  EXPECT_FALSE(cuda::ssd_chunk_takes_own_discount(z, states.data<double>()));
  try {
    cuda::ssd_chunk_forward<double>(in, nullptr, y.data<double>(), row_layout, false, states.data<double>());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("own-step discount"), std::string::npos) << e.what();
  }
#endif
}

TEST_F(CudaMamba3Scan, ReferenceRejectsCudaTensors) {
  const Mamba3Inputs s = random_mamba3(8500, 1, 3, 2, 2, 3, 4, false);
  std::vector<Tensor> g;
  for (const Tensor& t : s.in) g.push_back(t.defined() ? t.to(Device::cuda()) : Tensor());
  try {
    mamba3_scan_reference(g[0], g[1], g[2], g[3], g[4], g[5]);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CPU only"), std::string::npos) << e.what();
  }
}

}  // namespace
