// cuda/mamba3_gate.cu — Mamba-3's fused output gate on the GPU (math: ssm/mamba3_output.h).
//
//   o_r = y_r + D ψ_r ⊙ x,   out = Σ_r φ_r ⊙ o_r ⊙ silu(z ⊙ ζ_r)
//
// Forward and the input gradients: one thread per element (row, h, p) of out, looping over the ranks
// (dx and dz sum over r inside the thread). The parameter gradients dψ, dζ, dφ [H, R, P] and dD [H]
// sum over all rows: one thread per (chunk of rows, h, r, p) sums its chunk in row order into a
// partial, and the caller adds the partials in chunk order (op::sum) — fixed order, no atomics.
// Neighbouring threads own neighbouring p, so every read is coalesced. SISO passes ψ = ζ = φ = null,
// read as 1.
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"

namespace ssm::cuda {
namespace {

// The quantities of one (row, r, h, p) term that forward and both backward kernels share.
template <class T>
struct GateTerm {
  T x, z;               // this (row, h, p)'s inputs
  T psi, zeta, phi;     // this (h, r, p)'s parameters (1 for SISO)
  T o, gate_in, sig;    // o_r, s = z ζ_r, σ(s)
  __device__ GateTerm(const GateLayout& s, const T* y, const T* x_, const T* z_, const T* D, const T* psi_,
                      const T* zeta_, const T* phi_, int64_t row, int64_t h, int64_t r, int64_t p) {
    const int64_t hrp = (h * s.R + r) * s.P + p, hp = h * s.P + p;
    x = x_[row * s.x_stride + hp];
    z = z_[row * s.z_stride + hp];
    psi = psi_ ? psi_[hrp] : T(1);
    zeta = zeta_ ? zeta_[hrp] : T(1);
    phi = phi_ ? phi_[hrp] : T(1);
    o = y[((row * s.R + r) * s.H + h) * s.P + p] + D[h] * psi * x;
    gate_in = z * zeta;
    sig = T(1) / (T(1) + exp_of(-gate_in));
  }
  __device__ T gate() const { return gate_in * sig; }  // silu(s)
  // ∂out/∂s · dout, with silu'(s) = σ(s)(1 + s(1 − σ(s)))
  __device__ T d_gate_in(T dout) const { return dout * phi * o * sig * (T(1) + gate_in * (T(1) - sig)); }
};

// body(row, h, p, i) for every element i of out's [rows, H, P] (cuda/launch.cuh)
template <class Body>
__device__ void for_each_gate_element(const GateLayout& s, Body body) {
  for_each_row_element(s.rows, s.H, s.P, body);
}

RowLaunch gate_rows(const GateLayout& s) { return row_launch(s.rows, s.H * s.P); }

template <class T>
__global__ void gate_forward_kernel(GateLayout s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                                    const T* zeta, const T* phi, T* out) {
  for_each_gate_element(s, [&](int64_t row, int h, int p, int64_t i) {
    T acc = 0;
    for (int64_t r = 0; r < s.R; ++r) {
      const GateTerm<T> t(s, y, x, z, D, psi, zeta, phi, row, h, r, p);
      acc += t.phi * t.o * t.gate();
    }
    out[i] = acc;
  });
}

// dy_r = dout φ_r silu(s_r),  dx = D Σ_r ψ_r dy_r,  dz = Σ_r ζ_r ds_r
template <class T>
__global__ void gate_backward_inputs_kernel(GateLayout s, const T* y, const T* x, const T* z, const T* D,
                                            const T* psi, const T* zeta, const T* phi, const T* dout, T* dy, T* dx,
                                            T* dz) {
  for_each_gate_element(s, [&](int64_t row, int h, int p, int64_t i) {
    T dx_acc = 0, dz_acc = 0;
    for (int64_t r = 0; r < s.R; ++r) {
      const GateTerm<T> t(s, y, x, z, D, psi, zeta, phi, row, h, r, p);
      const T d_o = dout[i] * t.phi * t.gate();
      dy[((row * s.R + r) * s.H + h) * s.P + p] = d_o;
      dx_acc += D[h] * t.psi * d_o;
      dz_acc += t.zeta * t.d_gate_in(dout[i]);
    }
    dx[i] = dx_acc;
    dz[i] = dz_acc;
  });
}

// Per chunk of rows and (h, r, p): Σ D do_r x (dψ), Σ z ds_r (dζ), Σ dout o_r silu(s_r) (dφ), Σ do_r ψ_r x (dD's terms)
template <class T>
__global__ void gate_backward_params_kernel(GateLayout s, int64_t chunks, const T* y, const T* x, const T* z,
                                            const T* D, const T* psi, const T* zeta, const T* phi, const T* dout,
                                            T* param_partial) {
  const int64_t HRP = s.H * s.R * s.P;
  for_each_param_partial(s.rows, chunks, s.H, s.R, s.P, [&](int64_t chunk, int64_t hrp, int64_t h, int64_t r,
                                                            int64_t p, int64_t row_begin, int64_t row_end) {
    T dpsi = 0, dzeta = 0, dphi = 0, dD_terms = 0;
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t at = (row * s.H + h) * s.P + p;
      const GateTerm<T> t(s, y, x, z, D, psi, zeta, phi, row, h, r, p);
      const T d_o = dout[at] * t.phi * t.gate();
      dpsi += D[h] * d_o * t.x;
      dzeta += t.z * t.d_gate_in(dout[at]);
      dphi += dout[at] * t.o * t.gate();
      dD_terms += d_o * t.psi * t.x;
    }
    T* out = param_partial + chunk * 4 * HRP + hrp;
    out[0] = dpsi;
    out[HRP] = dzeta;
    out[2 * HRP] = dphi;
    out[3 * HRP] = dD_terms;
  });
}

}  // namespace

template <class T>
void mamba3_gate_forward(const GateLayout& s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                         const T* zeta, const T* phi, T* out) {
  const int64_t total = s.rows * s.H * s.P;
  if (total == 0) return;
  const RowLaunch rows = gate_rows(s);
  gate_forward_kernel<T><<<rows.blocks, rows.threads, 0, stream()>>>(s, y, x, z, D, psi, zeta, phi, out);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_gate_backward(const GateLayout& s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                          const T* zeta, const T* phi, const T* dout, T* dy, T* dx, T* dz, T* param_partial) {
  const int64_t total = s.rows * s.H * s.P;
  if (total > 0) {
    const RowLaunch rows = gate_rows(s);
    gate_backward_inputs_kernel<T><<<rows.blocks, rows.threads, 0, stream()>>>(s, y, x, z, D, psi, zeta, phi, dout,
                                                                               dy, dx, dz);
    SSM_CUDA_CHECK_LAUNCH();
  }
  const int64_t chunks = param_row_chunks(s.rows), partials = chunks * s.H * s.R * s.P;
  if (partials == 0) return;
  gate_backward_params_kernel<T><<<blocks_for(partials), kThreads, 0, stream()>>>(s, chunks, y, x, z, D, psi, zeta,
                                                                                  phi, dout, param_partial);
  SSM_CUDA_CHECK_LAUNCH();
}

#define SSM_INSTANTIATE_GATE(T)                                                                                   \
  template void mamba3_gate_forward<T>(const GateLayout&, const T*, const T*, const T*, const T*, const T*,       \
                                       const T*, const T*, T*);                                                   \
  template void mamba3_gate_backward<T>(const GateLayout&, const T*, const T*, const T*, const T*, const T*,      \
                                        const T*, const T*, const T*, T*, T*, T*, T*);
SSM_INSTANTIATE_GATE(float)
SSM_INSTANTIATE_GATE(double)
#undef SSM_INSTANTIATE_GATE

}  // namespace ssm::cuda
