// ssm/mamba3_keys.h — Mamba-3's keys (from B) or queries (from C) as one autograd node
// (spec §3.3 steps 5, 6 and 8):
//
//   n_{t,r,g} = rmsnorm_N(raw_{t,r,g}) ⊙ w                 (one weight w [N] for all ranks and groups)
//   k_{t,r,h} = n_{t,r,g(h)} + bias[h, r]                 (head h reads group g(h) = h / (H/G))
//   k̃_{t,r,h} = Rot(θ_{t,h}) k_{t,r,h}                    (ssm/rotary.h; θ shared by the ranks)
//
// Composed from tensor ops this is a norm, a broadcast copy to the heads, a bias add and a rotation,
// each a pass over [batch, L, R, H, N] both ways plus the broadcast reductions; fused it is one pass
// each way, reading raw [batch, L, R·G·N] (H/G times smaller than the output).
// Backward, per (t, r, g), with dk = Rot(θ)ᵀ dk̃ for each head of the group:
//   dθ_{t,h} += Σ_r (k̃_a dk̃_b − k̃_b dk̃_a),  dbias[h, r] += dk,  dn = Σ_{h ∈ g} dk,
//   dw += dn ⊙ x̂,  draw = ρ·(dn ⊙ w − x̂·mean(dn ⊙ w ⊙ x̂))     (x̂ = raw·ρ, ρ = (mean(raw²)+ε)^(−1/2))
#pragma once
#include "ssm/rotary.h"
#include "tensor/tensor.h"

namespace ssm {

// raw [batch, L, R·G·N], norm_weight [N], bias [H, R, N], theta [batch, L, H, S] → [batch, L, R, H, N].
// R is bias.size(1), H is bias.size(0), N is norm_weight.size(0).
Tensor mamba3_keys(const Tensor& raw, const Tensor& norm_weight, const Tensor& bias, const Tensor& theta,
                   RotaryPairing pairing, double eps = 1e-5);

}  // namespace ssm
