// ssm/scan_cuda.h — the chunked Mamba-2 and Mamba-3 scans on the GPU (internal to ssm/): the model-specific
// mappings, done with tensor ops on the device, around the generic chunked SSD of cuda/ssm_kernels.h.
//
// The math is that of the CPU kernels (ssm/ssd_scan_chunked.cpp, ssm/mamba3_scan_chunked.cpp):
//   Mamba-2:  Q = C, K = B (read in place through the group mapping), V = dt·x, a = dt·A, y = Y + D x;
//             dx = D dy + dt dV, ddt = x·dV + A da, dA = Σ dt da, dD = Σ dy·x, dB/dC = Σ_{h∈group} dK_h/dQ_h.
//   Mamba-3:  Q = q̃, K_s = (γ_s + η_{s+1}) k̃_s, V = v, a = ADT, S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ,
//             y_{t,r} −= η_{t+1} Σ_r' (q̃_{t,r}·k̃_{t,r'}) v_{t,r'}  (R×R products per token: batched matmuls),
//             and the adjoint of each of those steps.
// The Function templates (ssd_scan_function.h, mamba3_scan_function.h) call these when the inputs are on a
// CUDA device. In a build without CUDA they throw. Inputs are contiguous and on one CUDA device; the
// returned tensors are contiguous, on that device.
#pragma once
#include <vector>

#include "ssm/mamba3_scan_function.h"
#include "ssm/ssd_scan_function.h"

namespace ssm::scan_cuda {

struct ScanForward {
  Tensor y;       // the scan's output
  Tensor states;  // [batch, nchunks+1, H, P, N]: S_0 .. S_nchunks (the last is the final state)
};

// h0 is defined (zeros when the caller had none).
ScanForward ssd_forward(const SsdSizes& s, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B,
                        const Tensor& C, const Tensor& D, const Tensor& h0);
// {dx, ddt, dA, dB, dC, dD, dh0}
std::vector<Tensor> ssd_backward(const SsdSizes& s, const Tensor& x, const Tensor& dt, const Tensor& A,
                                 const Tensor& B, const Tensor& C, const Tensor& D, const Tensor& states,
                                 const Tensor& dy, const Tensor& dh_final);

// h0, k_prev and v_prev are all defined (zeros for a piece the caller had not), or all undefined for a call
// from no state (S_0 = 0: its terms are left out, and dk_prev, dv_prev come back undefined). The keys'
// weights γ_s + η_{s+1} are applied by the core as it stages the keys (cuda/ssd_key_weight.h).
ScanForward mamba3_forward(const Mamba3Sizes& s, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& adt, const Tensor& gamma, const Tensor& eta, const Tensor& h0,
                           const Tensor& k_prev, const Tensor& v_prev);
// {dq, dk, dv, dadt, dgamma, deta, dh0, dk_prev, dv_prev}
std::vector<Tensor> mamba3_backward(const Mamba3Sizes& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& adt, const Tensor& gamma, const Tensor& eta, const Tensor& h0,
                                    const Tensor& k_prev, const Tensor& v_prev, const Tensor& states,
                                    const Tensor& dy, const Tensor& dh_final);

}  // namespace ssm::scan_cuda
