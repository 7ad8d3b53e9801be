// ssm/key_row.h — one Mamba-3 key or query row before its rotation (spec §3.3 steps 5–6): the raw row of B
// (or C) is RMS-normalised, x̂ = raw·ρ with ρ = (mean(raw²) + eps)^(−1/2), then scaled and biased per head.
// Shared by the fused key op (ssm/mamba3_keys.cpp) and the fused decoding step (ssm/mamba3_step.cpp).
#pragma once
#include <cmath>
#include <cstdint>

namespace ssm {

// x̂ = raw·ρ into xhat; returns ρ
template <class T>
T normalise(const T* raw, int64_t N, double eps, T* xhat) {
  T squares = 0;
  for (int64_t n = 0; n < N; ++n) squares += raw[n] * raw[n];
  const T rho = T(1) / std::sqrt(squares / T(N) + T(eps));
  for (int64_t n = 0; n < N; ++n) xhat[n] = raw[n] * rho;
  return rho;
}

// out = x̂ ⊙ w + bias (the key before its rotation)
template <class T>
void scale_and_bias(const T* xhat, const T* w, const T* bias, int64_t N, T* out) {
  for (int64_t n = 0; n < N; ++n) out[n] = xhat[n] * w[n] + bias[n];
}

}  // namespace ssm
