// ssm/mamba3_output.h — Mamba-3's output stage as one autograd node (spec §3.6, §3.7, no outproj norm):
//
//   o_{t,r}  = y_{t,r} + D · ψ_r ⊙ x_t                  (the D skip on the rank-projected input)
//   out_t    = Σ_r φ_r ⊙ o_{t,r} ⊙ silu(z_t ⊙ ζ_r)      (gate, then contract the ranks)
//
// SISO is R = 1 with ψ = ζ = φ = 1 (pass them undefined): out = (y + D x) ⊙ silu(z).
// Composed from elementwise ops this is ~8 passes forward and ~20 backward over [batch, L, R, H, P]
// tensors, plus the broadcast reductions for the per-head parameters; fused it is one pass each way.
// Backward, with g_r = silu(z ⊙ ζ_r) and do_r = dout ⊙ φ_r ⊙ g_r:
//   dy_r = do_r,   dx = D Σ_r ψ_r ⊙ do_r,   dD = Σ <do_r, ψ_r ⊙ x>,   dψ_r = Σ_{b,t} D do_r ⊙ x
//   dφ_r = Σ_{b,t} dout ⊙ o_r ⊙ g_r,   ds_r = dout ⊙ φ_r ⊙ o_r ⊙ silu'(z ⊙ ζ_r),
//   dz = Σ_r ζ_r ⊙ ds_r,   dζ_r = Σ_{b,t} z ⊙ ds_r
#pragma once
#include "tensor/tensor.h"

namespace ssm {

// y [batch, L, R, H, P], x and z [batch, L, H, P], D [H], psi/zeta/phi [H, R, P] (or all undefined when
// R = 1) → out [batch, L, H, P].
Tensor mamba3_output_gate(const Tensor& y, const Tensor& x, const Tensor& z, const Tensor& D, const Tensor& psi,
                          const Tensor& zeta, const Tensor& phi);

}  // namespace ssm
