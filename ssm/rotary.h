// ssm/rotary.h — Mamba-3's data-dependent rotation of one key or query row (spec §3.3 step 8, §3.4).
//
// Pair m (m < S) of the state dimension is rotated by the angle θ_m; the other dimensions pass through:
//   (a, b) → (a cos θ − b sin θ,  a sin θ + b cos θ)
// SISO pairs adjacent dimensions (2m, 2m+1); MIMO pairs the halves (m, m + N/2). The two conventions
// give different models (a checkpoint must run with the one it was trained with).
//
// Backward (y the rotated row, dy its gradient): dx = Rot(θ)ᵀ dy = Rot(−θ) dy, and since ∂y_a/∂θ = −y_b
// and ∂y_b/∂θ = y_a, dθ_m = y_a dy_b − y_b dy_a. These row functions serve the fused key/query op
// (ssm/mamba3_keys.h), forward and backward alike.
#pragma once
#include <cmath>
#include <cstdint>

namespace ssm {

enum class RotaryPairing { Adjacent, HalfSplit };

struct RotaryPairs {
  RotaryPairing pairing;
  int64_t N, S;  // row width, rotated pairs (2S ≤ N)
  int64_t first(int64_t m) const { return pairing == RotaryPairing::Adjacent ? 2 * m : m; }
  int64_t second(int64_t m) const { return pairing == RotaryPairing::Adjacent ? 2 * m + 1 : m + N / 2; }

  // cos θ_m and sin θ_m of one row's angles, computed once by the caller: one row of angles rotates
  // every rank's key, and its gradient again, and sin/cos were the fused key op's costliest calls.
  template <class T>
  void cos_sin(const T* theta, T* cos_theta, T* sin_theta) const {
    for (int64_t m = 0; m < S; ++m) {
      const T angle = theta[m], c = std::cos(angle), s = std::sin(angle);  // one sincos call
      cos_theta[m] = c;
      sin_theta[m] = s;
    }
  }

  // dst = Rot(sign·θ) src from θ's cosines and sines (in place allowed); sign −1 applies Rotᵀ
  template <class T>
  void rotate(const T* src, const T* cos_theta, const T* sin_theta, T* dst, T sign = T(1)) const {
    if (dst != src)
      for (int64_t n = 0; n < N; ++n) dst[n] = src[n];
    for (int64_t m = 0; m < S; ++m) {
      const T c = cos_theta[m], s = sign * sin_theta[m], a = dst[first(m)], b = dst[second(m)];
      dst[first(m)] = a * c - b * s;
      dst[second(m)] = a * s + b * c;
    }
  }

  // dst[n] = src[partner(n)] over all N lanes: the pairing extended to the whole row (adjacent lanes, or
  // the halves), an odd N's last lane its own partner. The fused keys rotate a row as c ⊙ x + s ⊙ swap(x)
  // (ssm/mamba3_keys.cpp), whose coefficients give the lanes outside the S rotated pairs weight 0.
  template <class T>
  void swap_lanes(const T* __restrict src, T* __restrict dst) const {
    const int64_t half = N / 2;
    if (pairing == RotaryPairing::Adjacent) {
      for (int64_t i = 0; i < half; ++i) {
        dst[2 * i] = src[2 * i + 1];
        dst[2 * i + 1] = src[2 * i];
      }
    } else {
      for (int64_t i = 0; i < half; ++i) {
        dst[i] = src[i + half];
        dst[i + half] = src[i];
      }
    }
    if (N % 2) dst[N - 1] = src[N - 1];
  }

  // dθ_m += y_a dy_b − y_b dy_a for the rotated row y and its gradient dy
  template <class T>
  void add_angle_grad(const T* y, const T* dy, T* dtheta) const {
    for (int64_t m = 0; m < S; ++m) dtheta[m] += y[first(m)] * dy[second(m)] - y[second(m)] * dy[first(m)];
  }
};

}  // namespace ssm
