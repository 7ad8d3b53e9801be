// cuda/mamba3_rates.cuh — the GPU twin of ssm/mamba3_rates.h's scalar math (whose header gives the
// equations, spec §3.3 steps 2–4): the rates of one (token, head) and their gradients. Shared by the rates
// kernels (cuda/mamba3_rates.cu) and the decoding step kernel (cuda/mamba3_step.cu).
#pragma once
#include "cuda/device_math.cuh"

namespace ssm::cuda::mamba3 {

// f(x) = 1 + x for x ≥ 0 and 1/(1 − x) for x < 0, and its slope f'(x)
template <class T>
__device__ inline T heavy_tail(T x) {
  return (x > T(0) ? x : T(0)) + T(1) / (T(1) - (x < T(0) ? x : T(0)));
}
template <class T>
__device__ inline T heavy_tail_slope(T x) {
  return x >= T(0) ? T(1) : T(1) / ((T(1) - x) * (T(1) - x));
}

template <class T>
struct Rates {
  T A, DT, gamma, eta;
};
template <class T>
__device__ inline Rates<T> rates_of(T dt_in, T a_in, T trap, T A_floor) {
  const T DT = softplus_of(dt_in);
  const T gamma = DT * sigmoid_of(trap), f = heavy_tail(a_in);
  return {-f < -A_floor ? -f : -A_floor, DT, gamma, DT - gamma};
}

template <class T>
struct RateGrads {
  T dt_in, a_in, trap;
};
template <class T>
__device__ inline RateGrads<T> rate_grads(T dt_in, T a_in, T trap, T A_floor, T g_adt, T g_gamma, T g_eta, T g_DT) {
  const T DT = softplus_of(dt_in), sig = sigmoid_of(trap), f = heavy_tail(a_in);
  const T A = -f < -A_floor ? -f : -A_floor;
  const T dDT = g_DT + g_adt * A + g_gamma * sig + g_eta * (T(1) - sig);
  const T d_a = -f <= -A_floor ? -g_adt * DT * heavy_tail_slope(a_in) : T(0);  // the floor passes nothing
  return {dDT * sigmoid_of(dt_in), d_a, (g_gamma - g_eta) * DT * sig * (T(1) - sig)};
}

}  // namespace ssm::cuda::mamba3
