// ssm/ssd_chunk_core.h — the generic chunked SSD (spec §2.4 forward, §2.6 chunked backward) for ONE
// sequence (one batch element and head), shared by the Mamba-2 scan (ssm/ssd_scan_chunked.cpp) and the
// Mamba-3 scan (spec §3.8, rows (t, r)). Internal to ssm/: no Tensors, no autograd, raw strided memory.
//
// The recurrence, over time steps t = 0..L−1 with R rows per step (row i = t·R + r, rows = L·R):
//   h_t = e^{a_t} h_{t−1} + Σ_r V_{t,r} K_{t,r}ᵀ      (P×N; h_{−1} = S_0)
//   Y_{t,r} = h_t Q_{t,r}                              (P)
// with Q, K [rows, N], V [rows, P], a [L] (log decays, ≤ 0 in the models; the code does not assume it).
// R = 1 is Mamba-2 (Q = C, K = B, V = dt·x, a = dt·A); Mamba-3 uses rows (t, r) and subtracts its own
// diagonal correction outside (this core's mask includes s = t for all rank pairs).
//
// Chunked form (chunks of `chunk` time steps = chunk·R rows; a short last chunk equals the spec's
// zero padding). Per chunk, chunk-local t, s: cs_t = Σ_{τ≤t} a_τ, T = cs_{q−1},
//   Λ_{(t,r),(s,r')} = e^{cs_t − cs_s} for s ≤ t, 0 otherwise          (decay mask, time indices only)
//   M = (Q Kᵀ) ⊙ Λ,   Y = M V + diag(e^{cs_t}) Q S_cᵀ                  (§2.4 steps 3, 6)
//   S_{c+1} = e^T S_c + Σ_s e^{T−cs_s} V_s K_sᵀ                          (§2.4 steps 4, 5)
// Every product is a cpu::gemm call on per-thread scratch, so the work per chunk is a handful of
// small GEMMs plus O(rows²) elementwise mask work (no per-element exp: Λ is built by products).
//
// Chunk size: per token, the intra-chunk work grows with chunk·R·(N+P) and the state work with P·N,
// while per-chunk overheads shrink with the chunk; at the ~1M model's heads (P = N = 16, R = 1) chunks
// of 32–64 steps are fastest and 128 is ~25% slower (benchmarks/bench_ssd_scan.cpp).
//
// Threads: the functions are serial (their GEMMs run on the calling thread when called inside a
// parallel region); callers parallelise over sequences. Each thread keeps its own scratch, grown on
// demand and reused, so steady-state calls do not allocate. Results do not depend on the thread.
#pragma once
#include <cstdint>

#include "tensor/cpu/dot.h"

namespace ssm::ssd {

// A row-major matrix view: element (i, j) at data[i * row_stride + j] (unit column stride).
template <class T>
struct RowsView {
  T* data = nullptr;
  int64_t row_stride = 0;
  T* row(int64_t i) const { return data + i * row_stride; }
};

// A vector view: element t at data[t * stride].
template <class T>
struct StridedVec {
  T* data = nullptr;
  int64_t stride = 1;
  T& operator[](int64_t t) const { return data[t * stride]; }
};

// The inputs of one sequence.
template <class T>
struct ChunkProblem {
  int64_t steps = 0;   // L, time steps
  int64_t rank = 1;    // R, rows per time step
  int64_t N = 0;       // width of Q and K (state columns)
  int64_t P = 0;       // width of V and Y (state rows)
  int64_t chunk = 64;  // time steps per chunk (> 0)
  RowsView<const T> q, k, v;  // [L·R, N], [L·R, N], [L·R, P]
  StridedVec<const T> a;      // [L]
  // Optional per-step key weights w [L]: the keys are then K_{t,r} = w_t · k_{t,r}, scaled as the
  // chunk's rows are loaded (Mamba-3's γ_t + η_{t+1}), and ∂ℒ/∂K is the gradient for those scaled keys.
  StridedVec<const T> k_weight;

  int64_t rows() const { return steps * rank; }
  int64_t nchunks() const { return (steps + chunk - 1) / chunk; }
};

// Forward. Writes Y [L·R, P] (overwriting it, or adding to it with accumulate = true: e.g. on top of a
// skip term D·x the caller wrote while it built V) and the chunk states S_0 .. S_nchunks (each P×N,
// row-major, the c-th at states + c·state_stride; S_nchunks is the final state h_{L−1}). s0 is the
// initial state (P×N, may be nullptr for zeros, and may alias states[0]).
template <class T>
void chunk_forward(const ChunkProblem<T>& p, const T* s0, RowsView<T> y, T* states, int64_t state_stride,
                   bool accumulate = false);

// Gradient outputs of one sequence: ∂ℒ/∂Q, ∂ℒ/∂K [L·R, N], ∂ℒ/∂V [L·R, P], ∂ℒ/∂a [L], ∂ℒ/∂S_0 [P, N].
// With accumulate = false they are overwritten, otherwise added to (e.g. Mamba-3's extra key terms).
template <class T>
struct ChunkGrads {
  RowsView<T> dq, dk, dv;
  StridedVec<T> da;
  T* ds0 = nullptr;
  bool accumulate = false;
};

// Backward (spec §2.6 chunked, steps 1–5): chunks in reverse, carrying dS = ∂ℒ/∂S_{c+1}, which
// starts as ds_final (nullptr = zeros). states are those chunk_forward wrote for the same problem;
// dy is ∂ℒ/∂Y [L·R, P].
template <class T>
void chunk_backward(const ChunkProblem<T>& p, const T* states, int64_t state_stride, RowsView<const T> dy,
                    const T* ds_final, const ChunkGrads<T>& grads);

}  // namespace ssm::ssd
