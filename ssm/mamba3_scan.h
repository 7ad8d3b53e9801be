// ssm/mamba3_scan.h — the Mamba-3 exponential-trapezoidal scan (spec §3.5, §3.6, §3.8, §3.10),
// a differentiable op. SISO is the R = 1 case.
//
// Glossary (code name = spec symbol), per batch b, time t, rank r, head h:
//   q      [batch, L, R, H, N]  rotated, biased query   q̃_{t,r}   (C after norm, bias, rotation)
//   k      [batch, L, R, H, N]  rotated, biased key     k̃_{t,r}   (B after norm, bias, rotation)
//   v      [batch, L, R, H, P]  value                   v_{t,r} = x_t ⊙ ψ_r   (SISO: x_t)
//   adt    [batch, L, H]        log decay               ADT_t = A_t·DT_t      (α_t = exp(ADT_t))
//   gamma  [batch, L, H]        current-input weight    γ_t = DT_t·σ_t
//   eta    [batch, L, H]        previous-input weight   η_t = DT_t·(1−σ_t)    (β_t = α_t·η_t)
//   initial_state [batch, H, P, N]  h_{−1}                     (undefined = zeros)
//   k_prev        [batch, R, H, N]  k̃ of the token before t=0  (undefined = zeros)
//   v_prev        [batch, R, H, P]  v of the token before t=0  (undefined = zeros)
// Per batch and head (one P×N state shared by the R ranks):
//   h_t     = α_t h_{t−1} + β_t Σ_r v_{t−1,r} k̃_{t−1,r}ᵀ + γ_t Σ_r v_{t,r} k̃_{t,r}ᵀ
//   y_{t,r} = h_t q̃_{t,r}
// (v_{−1}, k̃_{−1}) = (v_prev, k_prev). Returns y [batch, L, R, H, P] — without the D skip, which
// the block adds — and the final state h_{L−1} [batch, H, P, N]. The final state excludes the pending
// η_L v_{L−1} k̃_{L−1}ᵀ term: the next call adds it through its own k_prev/v_prev (spec §6.6).
//
// Everything around the scan (norms, biases, rotation, gates, D) is ordinary autograd in the block;
// the scan itself is one node with a hand-written backward. float32 and float64. The reference is CPU
// only; the chunked form also runs on a CUDA device when its inputs are there (ssm/scan_cuda.h).
#pragma once
#include "ssm/ssd_scan.h"

namespace ssm {

// The readable reference: the recurrence step by step, with the sequential adjoint of §3.10
// (restricted to the scan's own inputs). It stores every h_t.
ScanOutput mamba3_scan_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& adt,
                                 const Tensor& gamma, const Tensor& eta, const Tensor& initial_state = Tensor(),
                                 const Tensor& k_prev = Tensor(), const Tensor& v_prev = Tensor());

// The chunked form (§3.8): the generic chunked SSD of ssm/ssd_core.h with rows (t, r), keys weighted
// by w_s = γ_s + η_{s+1}, the initial state S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ and a diagonal
// correction; one P×N state kept per chunk for its chunked adjoint. The same op and result as the
// reference, for any chunk_size > 0 (L need not be a multiple).
ScanOutput mamba3_scan_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& adt,
                               const Tensor& gamma, const Tensor& eta, const Tensor& initial_state,
                               const Tensor& k_prev, const Tensor& v_prev, int64_t chunk_size);

// Shape/dtype/device validation shared by the Mamba-3 scan implementations (throws ssm::Error).
void check_mamba3_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& adt, const Tensor& gamma,
                         const Tensor& eta, const Tensor& initial_state, const Tensor& k_prev, const Tensor& v_prev);

}  // namespace ssm
