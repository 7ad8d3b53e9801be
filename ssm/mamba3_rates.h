// ssm/mamba3_rates.h — Mamba-3's per-(token, head) rates as one autograd node (spec §3.3 steps 2–4):
//
//   A   = min(−f(dd_A), −A_floor),   f(x) = 1 + x for x ≥ 0, 1/(1 − x) for x < 0
//   DT  = softplus(dd_dt + dt_bias)
//   adt = A·DT,   γ = DT·σ(trap),   η = DT − γ
//
// Backward, with the incoming gradients g_adt, g_γ, g_η, g_DT (DT also feeds the angles, step 7):
//   dDT      = g_DT + g_adt·A + g_γ·σ(trap) + g_η·(1 − σ(trap))
//   d dd_dt  = dDT · σ(dd_dt + dt_bias)             (softplus' = σ),   d dt_bias = Σ_{b,t} d dd_dt
//   d trap   = (g_γ − g_η) · DT · σ(trap)(1 − σ(trap))
//   d dd_A   = −g_adt · DT · f'(dd_A) where the floor does not bind (−f ≤ −A_floor), else 0;
//              f'(x) = 1 for x ≥ 0, 1/(1 − x)² for x < 0
// Composed from elementwise ops this was ~13 nodes forward (and about twice as many kernels backward)
// over [batch, L, H]; fused it is one pass each way. The decoding step (ssm/mamba3_step.cpp, and its
// kernel's twin of rates_of in cuda/mamba3_rates.cuh) evaluates the same rates_of.
#pragma once
#include <algorithm>
#include <cmath>

#include "tensor/cpu/sigmoid.h"
#include "tensor/tensor.h"

namespace ssm {

// dd_dt, dd_A, trap [batch, L, H] (views of in_proj's output are read in place), dt_bias [H].
struct Mamba3Rates {
  Tensor adt, gamma, eta, DT;  // each [batch, L, H], contiguous
};
Mamba3Rates mamba3_rates(const Tensor& dd_dt, const Tensor& dd_A, const Tensor& trap, const Tensor& dt_bias,
                         double A_floor);

namespace mamba3 {

// f(x) = 1 + x for x ≥ 0 and 1/(1 − x) for x < 0, and its slope f'(x). f divides by 1 − min(x, 0),
// written as 1 + (|x| − max(x, 0)), which is the same number exactly: with min, GCC moves the division
// into a branch (for x ≥ 0 it is 1/1), and the forward's loop with a branch in it does not vectorise.
template <class T>
T heavy_tail(T x) {
  return std::max(x, T(0)) + T(1) / (T(1) + (std::abs(x) - std::max(x, T(0))));
}
template <class T>
T heavy_tail_slope(T x) {
  return x >= 0 ? T(1) : T(1) / ((T(1) - x) * (T(1) - x));
}

// The rates of one (token, head) from dt_in = dd_dt + dt_bias, a_in = dd_A and trap. σ and softplus are
// tensor/cpu/sigmoid.h's, without a library call in float. Declared inline: GCC inlines an implicitly
// inline template only under a smaller size limit, and the CPU loops over heads vectorise only with the
// math inlined.
template <class T>
struct Rates {
  T A, DT, gamma, eta;
};
template <class T>
inline Rates<T> rates_of(T dt_in, T a_in, T trap, T A_floor) {
  const T DT = cpu::softplus(dt_in);
  const T gamma = DT * cpu::sigmoid(trap);
  return {std::min(-heavy_tail(a_in), -A_floor), DT, gamma, DT - gamma};
}

// Their gradients (the header's backward) with respect to dt_in, a_in and trap.
template <class T>
struct RateGrads {
  T dt_in, a_in, trap;
};
template <class T>
inline RateGrads<T> rate_grads(T dt_in, T a_in, T trap, T A_floor, T g_adt, T g_gamma, T g_eta, T g_DT) {
  const T DT = cpu::softplus(dt_in), sig = cpu::sigmoid(trap), f = heavy_tail(a_in);
  const T A = std::min(-f, -A_floor);
  const T dDT = g_DT + g_adt * A + g_gamma * sig + g_eta * (T(1) - sig);
  const T d_a = -f <= -A_floor ? -g_adt * DT * heavy_tail_slope(a_in) : T(0);  // the floor passes nothing
  return {dDT * cpu::sigmoid(dt_in), d_a, (g_gamma - g_eta) * DT * sig * (T(1) - sig)};
}

}  // namespace mamba3
}  // namespace ssm
