// cuda/ssm_kernels.h — the generic chunked SSD on the GPU, for many sequences at once (raw pointers).
//
// The problem per sequence s = b·H + h (the same as the CPU engine's, one sequence at a time there):
// rows i = t·R + r (t < L time steps, r < R rows per step), Q, K [rows, N], V [rows, P], log decays
// a [L] and an initial state S_0 [P, N]:
//   h_t = e^{a_t} h_{t−1} + Σ_r V_{t,r} K_{t,r}ᵀ  (h_{−1} = S_0),    Y_{t,r} = h_t Q_{t,r}.
// Chunked form (spec §2.4; chunk = `chunk` steps, the last one may be shorter), chunk-local cs_t = Σ_{τ≤t} a_τ,
// T = cs_{last}:
//   Y = (Q Kᵀ ⊙ Λ) V + diag(e^{cs}) Q S_cᵀ,  Λ_{(t,r),(s,r')} = e^{cs_t − cs_s} for s ≤ t (else 0),
//   S_{c+1} = e^T S_c + Σ_s e^{T − cs_s} V_s K_sᵀ.
// Backward (spec §2.6): dS_nchunks = dS_final, dS_c = e^{T_c} dS_{c+1} + Σ_t e^{cs_t} dY_t Q_tᵀ, then per chunk
// dQ, dK, dV and da, as ssm/ssd_chunk_core.cpp's chunk_backward computes them; dS_0 is the last dS.
//
// Operands are read in place: a SeqLayout says where sequence (b, h) starts and how far apart its rows are,
// so a head can read its group's B and C (Mamba-2) or row (t, r) of [batch, L, R, H, N] (Mamba-3) without
// copies. Fixed layouts: S_0, dS_final and dS_0 are [batch, H, P, N]; states are [batch, nchunks+1, H, P, N]
// (S_0 .. S_nchunks, the last is the final state). Everything runs on cuda::stream(); no atomics, so
// results are the same from run to run. float and double.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define SSM_HOST_DEVICE __host__ __device__
#else
#define SSM_HOST_DEVICE
#endif

namespace ssm::cuda {

// Sequence (b, h) of one operand starts at b·batch_stride + (h / heads_per_group)·head_stride, and its
// rows (its steps, for the decays a) are row_stride apart.
struct SeqLayout {
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
  int64_t heads_per_group = 1;
  int64_t row_stride = 0;
};

struct ChunkScanSizes {
  int64_t batch = 0, heads = 0;  // sequences: batch·heads
  int64_t steps = 0, rank = 1;   // L, R (rows = L·R)
  int64_t N = 0, P = 0;          // widths of Q/K and of V/Y
  int64_t chunk = 64;            // time steps per chunk (> 0)
  SSM_HOST_DEVICE int64_t nchunks() const { return (steps + chunk - 1) / chunk; }
};

template <class T>
struct ChunkScanInputs {
  ChunkScanSizes sizes;
  const T *q = nullptr, *k = nullptr, *v = nullptr, *a = nullptr;
  SeqLayout q_layout, k_layout, v_layout, a_layout;
  // The tensor-core kernels' products in single TF32 rather than 3×TF32 (ssd_chunk_mma.cu), as under
  // autocast; the TF32 mode of context.h turns them on for every scan.
  bool tf32_products = false;
  // Optional per-step key weights w (one per step and head, laid out like a): the keys are then
  // K_{t,r} = w_t k_{t,r} with k the rows at `k` (Mamba-3's two-term weight). The tensor-core kernels
  // scale the rows as they stage them; otherwise the weighted keys are formed once into a scratch. Each
  // head must own its key rows (heads_per_group = 1).
  const T* k_weight = nullptr;
  SeqLayout k_weight_layout;
  // Optional, with key weights: a discount e on each step's own keys (laid out like the weights). Row (t, r)
  // then sees the keys of its own step t with weight w_t − e_t and those of earlier steps with their w: the
  // diagonal blocks Λ_{(t,r),(t,r')} of the masked product are scaled by (w_t − e_t) instead of w_t, and the
  // state S_{c+1} keeps w. Mamba-3 sets e_t = η_{t+1}: a token's own term enters with γ_t alone (spec §3.8),
  // which spares its diagonal correction a pass of its own. Only the tensor-core kernels take it
  // (ssd_chunk_takes_own_discount).
  const T* k_own_discount = nullptr;
};

// Gradient outputs (overwritten). Each head must own its rows here (heads_per_group = 1). With key weights,
// dk is ∂ℒ/∂k (the unweighted rows) and dw (laid out like da) is ∂ℒ/∂w_t; with an own-step discount,
// d_own_discount (laid out like dw) is ∂ℒ/∂e_t.
template <class T>
struct ChunkScanGrads {
  T *dq = nullptr, *dk = nullptr, *dv = nullptr, *da = nullptr, *ds0 = nullptr, *dw = nullptr,
    *d_own_discount = nullptr;
  SeqLayout dq_layout, dk_layout, dv_layout, da_layout, dw_layout;
};

// Y (overwritten, or added to with accumulate) and the chunk states. s0 may be nullptr (zeros).
template <class T>
void ssd_chunk_forward(const ChunkScanInputs<T>& in, const T* s0, T* y, SeqLayout y_layout, bool accumulate,
                       T* states);

// The gradients of ℒ(Y, S_nchunks) given dY and dS_final (nullptr: zeros); states from ssd_chunk_forward.
template <class T>
void ssd_chunk_backward(const ChunkScanInputs<T>& in, const T* states, const T* dy, SeqLayout dy_layout,
                        const T* ds_final, const ChunkScanGrads<T>& grads);

// Whether the chunk kernels of this problem run on tensor cores (cuda/ssd_chunk_mma.cu: float32, N and P
// multiples of 16, on sm_80 or newer), the only ones that take an own-step discount; `states` is the
// buffer the forward will write (its alignment counts).
template <class T>
bool ssd_chunk_takes_own_discount(const ChunkScanSizes& z, const T* states);

}  // namespace ssm::cuda
