// ssm/mamba3_angles.h — Mamba-3's per-step rotation angles as one autograd node (spec §3.3 step 7, §3.10):
//
//   ω_{t,h,m} = π·tanh(ang_{t,m})·DT_{t,h}
//
// Backward (the raw angles are shared by the heads, so their gradient sums over them):
//   dDT_{t,h}  = Σ_m dω_{t,h,m} · π·tanh(ang_{t,m})
//   dang_{t,m} = π·(1 − tanh²(ang_{t,m})) · Σ_h dω_{t,h,m} · DT_{t,h}
// As broadcast autograd ops this was a tanh, a scale and an outer product forward, and backward two
// multiplies and two reductions over [batch, L, H, S], each a full pass (~0.4 ms a layer on the GPU at the
// 130M model); fused it is one pass each way. The angles θ = θ_init + Σ_{τ≤t} ω are then op::cumsum's.
#pragma once
#include "tensor/tensor.h"

namespace ssm {

// DT [batch, L, H], ang [batch, L, S] (a column range of in_proj's output is read in place), same dtype and
// device → ω [batch, L, H, S]
Tensor mamba3_angle_steps(const Tensor& DT, const Tensor& ang);

}  // namespace ssm
