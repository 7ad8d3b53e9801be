// ssm/rotary.h — Mamba-3's data-dependent rotation of the keys and queries (spec §3.3 step 8, §3.4).
//
// Pair m (m < S) of the state dimension is rotated by the angle θ_m; the other dimensions pass through:
//   (a, b) → (a cos θ − b sin θ,  a sin θ + b cos θ)
// SISO pairs adjacent dimensions (2m, 2m+1); MIMO pairs the halves (m, m + N/2). The two conventions
// give different models (a checkpoint must run with the one it was trained with).
//
// Backward (y the rotated output, dy its gradient): dx = Rot(θ)ᵀ dy, and since ∂y_a/∂θ = −y_b and
// ∂y_b/∂θ = y_a, dθ_m = Σ_r (y_a dy_b − y_b dy_a) — summed over the ranks that share one angle.
#pragma once
#include "tensor/tensor.h"

namespace ssm {

enum class RotaryPairing { Adjacent, HalfSplit };

// x [batch, L, R, H, N], angles [batch, L, H, S] (2S ≤ N) → x rotated; one autograd node.
Tensor rotate_pairs(const Tensor& x, const Tensor& angles, RotaryPairing pairing);

}  // namespace ssm
