// ssm/ssd_scan.h — the Mamba-2 SSD scan (spec §2.3, §2.6), a differentiable op.
//
// Glossary (code name = spec symbol):
//   x  [batch, L, H, P]   input per head            x_t
//   dt [batch, L, H]      step size, after softplus  dt_t
//   A  [H]                negative decay rate        A      (a_t = exp(dt_t·A))
//   B  [batch, L, G, N]   input matrix per group     B_t    (head h reads group h / (H/G))
//   C  [batch, L, G, N]   output matrix per group    C_t
//   D  [H]                skip connection            D
//   initial_state [batch, H, P, N] or undefined (zeros)                 h_{-1}
// Per batch and head:
//   h_t = a_t · h_{t−1} + dt_t · x_t B_tᵀ     (P×N)
//   y_t = h_t C_t + D · x_t
// Returns y [batch, L, H, P] and the final state h_{L−1} [batch, H, P, N].
//
// This file declares the readable *reference*: plain loops in the math's own order, forward and
// backward (the sequential adjoint of §2.6) side by side in ssd_scan_reference.cpp. It is what the
// chunked fast path is tested against, and it passes gradcheck in float64. CPU only.
#pragma once
#include "tensor/tensor.h"

namespace ssm {

struct ScanOutput {
  Tensor y;
  Tensor final_state;
};

ScanOutput ssd_scan_reference(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                              const Tensor& D, const Tensor& initial_state = Tensor());

// The chunked SSD (spec §2.4, backward §2.6): the same op and result as ssd_scan_reference, computed
// chunk by chunk — an intra-chunk quadratic form (Q Kᵀ ⊙ decay mask) · V plus inter-chunk state
// passing — keeping one state S_c per chunk (not per step) for the hand-written chunked backward.
// L need not be a multiple of chunk_size (the last chunk is just shorter, which equals the spec's
// zero padding). chunk_size must be positive. float32 and float64; on the CPU, or on a CUDA device when
// the inputs are there (ssm/scan_cuda.h: the same math on the GPU).
ScanOutput ssd_scan_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                            const Tensor& D, const Tensor& initial_state, int64_t chunk_size);

// Shape/dtype/device validation shared by the scan implementations (throws ssm::Error).
void check_ssd_inputs(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                      const Tensor& D, const Tensor& initial_state);

}  // namespace ssm
