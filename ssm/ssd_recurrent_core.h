// ssm/ssd_recurrent_core.h — the generic SSD of one sequence (the contract of ssm/ssd_chunk_core.h: same
// ChunkProblem, same Y, same chunk states S_0 .. S_nchunks, same gradients) computed as the plain
// recurrence, step by step, with the P×N state held in vector registers. It is the CPU's fast path
// for small heads; ssd_core.h picks between it and the chunked GEMMs.
//
//   h_t = e^{a_t} h_{t−1} + Σ_r V_{t,r} K_{t,r}ᵀ,   Y_{t,r} = h_t Q_{t,r}                     (spec §2.3, §3.6)
// and its adjoint (spec §2.6, the sequential adjoint), with G_t = ∂ℒ/∂h_t carried backward
// (G_{t−1} ← e^{a_t} G_t, then the read-outs of step t−1 added):
//   G_t += Σ_r dY_{t,r} Q_{t,r}ᵀ,   dQ_{t,r} = h_tᵀ dY_{t,r},   dK_{t,r} = G_tᵀ V_{t,r},
//   dV_{t,r} = G_t K_{t,r},   da_t = e^{a_t} ⟨G_t, h_{t−1}⟩.
//
// Why a recurrence beats the chunked form here. Per time step the recurrence costs (1 + 2R)·P·N
// multiply-adds forward and about three times that backward; the chunked form (§2.4) costs about
// ¾·chunk·R²·(N + P) + 2·R·P·N forward. At the ~1M model's heads (P = N = 16, R = 2, chunk 32) that is
// 1.3K against ~4K, and every one of the recurrence's is a full-width vector FMA on registers (one
// column of the state is one 16-float vector), where the chunked form spends its time in the
// overhead of GEMMs on 16-wide operands and in passes over 64×64 masks. The chunked form wins once
// the state no longer fits in registers and L1 (the 130M heads: P = 64, N = 128, 32 KB a state), and
// always on the GPU, where its products run on tensor cores.
//
// The backward replays each chunk's steps from its stored state S_c (the chunk length sets how much
// it keeps: chunk + 1 states of P×N), then walks them in reverse. The state is kept both by rows and by
// columns so that every product above is a broadcast multiply-add, never a horizontal sum.
#pragma once
#include "ssm/ssd_chunk_core.h"

namespace ssm::ssd {

// The head shapes the recurrence is compiled for: P and N each 8, 16 or 32.
bool recurrent_supports(int64_t P, int64_t N);

// Whether this CPU runs the recurrence faster than the chunked GEMMs: x86-64 with AVX-512, where a
// 16-value row is one register. Elsewhere the compiler splits each row into narrower halves and the
// kernels ran ~2× slower than the GEMMs (AVX2 clone at P = N = 16, R = 2: 260 against 174 ns a step
// forward, 720–750 against 400 backward), so ssd_core.h keeps the GEMMs there.
bool recurrent_is_fast_here();

// As chunk_forward / chunk_backward (ssd_chunk_core.h); a shape it is not compiled for throws ssm::Error.
template <class T>
void recurrent_forward(const ChunkProblem<T>& p, const T* s0, RowsView<T> y, T* states, int64_t state_stride,
                       bool accumulate = false);
template <class T>
void recurrent_backward(const ChunkProblem<T>& p, const T* states, int64_t state_stride, RowsView<const T> dy,
                        const T* ds_final, const ChunkGrads<T>& grads);

}  // namespace ssm::ssd
