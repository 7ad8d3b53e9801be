// ssm/mamba3_values.h — MIMO's rank up-projection of the values as one autograd node (spec §3.5):
//
//   v_{r,h,p} = x_{h,p} · ψ_{h,r,p}      for every leading index (token or batch row)
//
// Backward:  dx_{h,p} = Σ_r dv_{r,h,p} ψ_{h,r,p},   dψ_{h,r,p} = Σ_rows dv_{r,h,p} x_{h,p}.
// As broadcast autograd ops this is a strided multiply forward and two multiplies plus two broadcast
// reductions backward over [rows, R, H, P]; fused it is one pass each way on the CPU, and on the GPU one
// kernel forward and two backward (cuda/mamba3_values.cu), reading x in place.
#pragma once
#include "tensor/tensor.h"

namespace ssm {

// x [.., H, P], psi [H, R, P] (same dtype and device) → v [.., R, H, P]
Tensor mamba3_values(const Tensor& x, const Tensor& psi);

}  // namespace ssm
