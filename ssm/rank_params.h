// ssm/rank_params.h — Mamba-3's per-(head, rank, channel) MIMO parameters ψ, ζ, φ (mimo_x, mimo_z, mimo_o,
// each [H, R, P]) as plain arrays for the fused CPU loops. SISO has none of them (R = 1 and each is 1), so
// undefined ones read a buffer of ones: the loops over channels stay branch-free. Shared by the output
// gate (ssm/mamba3_output.cpp) and the fused decoding step (ssm/mamba3_step.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace ssm {

template <class T>
struct RankParams {
  std::vector<T> ones;
  const T *psi, *zeta, *phi;
  // psi, zeta, phi: contiguous [H, R, P] tensors, all defined or all undefined; count = H·R·P
  RankParams(const Tensor& psi_t, const Tensor& zeta_t, const Tensor& phi_t, int64_t count) {
    if (!psi_t.defined()) ones.assign(count, T(1));
    psi = psi_t.defined() ? psi_t.data<T>() : ones.data();
    zeta = zeta_t.defined() ? zeta_t.data<T>() : ones.data();
    phi = phi_t.defined() ? phi_t.data<T>() : ones.data();
  }
};

}  // namespace ssm
