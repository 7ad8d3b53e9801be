// cuda/mamba3_gate.cu — Mamba-3's fused output gate on the GPU (math: ssm/mamba3_output.h).
//
//   o_r = y_r + D ψ_r ⊙ x,   out = Σ_r φ_r ⊙ o_r ⊙ silu(z ⊙ ζ_r)
//
// Forward: one thread per element (row, h, p) of out, looping over the ranks. Backward: one kernel for
// the input and the parameter gradients, a thread per (chunk of rows, h, p) that, rank by rank, walks its
// chunk's rows in row order: it writes dy_r, adds rank r's terms to dx and dz (written by itself at r = 0),
// and sums the chunk's dψ, dζ, dφ and dD terms of (h, r, p) into a partial, which the caller adds up in
// chunk order (op::sum) — fixed order, no atomics. So y, x, z and dout are read once per rank, where a
// kernel for the inputs and another for the parameters read them twice (at the 130M model 400 MB a layer).
// Neighbouring threads own neighbouring p, so every read is coalesced. SISO passes ψ = ζ = φ = null, read
// as 1.
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"

namespace ssm::cuda {
namespace {

// The quantities of one (row, r, h, p) term that the forward and the backward kernel share.
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

template <class T>
__global__ void gate_forward_kernel(GateLayout s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                                    const T* zeta, const T* phi, T* out) {
  for_each_row_element(s.rows, s.H, s.P, [&](int64_t row, int h, int p, int64_t i) {
    T acc = 0;
    for (int64_t r = 0; r < s.R; ++r) {
      const GateTerm<T> t(s, y, x, z, D, psi, zeta, phi, row, h, r, p);
      acc += t.phi * t.o * t.gate();
    }
    out[i] = acc;
  });
}

// With ds_r = ∂out/∂s_r · dout:  dy_r = dout φ_r silu(s_r),  dx = D Σ_r ψ_r dy_r,  dz = Σ_r ζ_r ds_r; and per
// chunk of rows and (h, r, p): Σ D dy_r x (dψ), Σ z ds_r (dζ), Σ dout o_r silu(s_r) (dφ), Σ dy_r ψ_r x (dD's
// terms). (for_each_param_partial with one rank gives a thread per (chunk, h, p); it loops over the ranks.)
template <class T>
__global__ void gate_backward_kernel(GateLayout s, int64_t chunks, const T* y, const T* x, const T* z, const T* D,
                                     const T* psi, const T* zeta, const T* phi, const T* dout, T* dy, T* dx, T* dz,
                                     T* param_partial) {
  const int64_t HRP = s.H * s.R * s.P;
  for_each_param_partial(s.rows, chunks, s.H, 1, s.P, [&](int64_t chunk, int64_t, int64_t h, int64_t, int64_t p,
                                                          int64_t row_begin, int64_t row_end) {
    for (int64_t r = 0; r < s.R; ++r) {
      T dpsi = 0, dzeta = 0, dphi = 0, dD_terms = 0;
      for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t at = (row * s.H + h) * s.P + p;
        const GateTerm<T> t(s, y, x, z, D, psi, zeta, phi, row, h, r, p);
        const T g = dout[at], d_o = g * t.phi * t.gate(), ds = t.d_gate_in(g);
        dy[((row * s.R + r) * s.H + h) * s.P + p] = d_o;
        const T dx_r = D[h] * t.psi * d_o, dz_r = t.zeta * ds;
        dx[at] = r == 0 ? dx_r : dx[at] + dx_r;
        dz[at] = r == 0 ? dz_r : dz[at] + dz_r;
        dpsi += D[h] * d_o * t.x;
        dzeta += t.z * ds;
        dphi += g * t.o * t.gate();
        dD_terms += d_o * t.psi * t.x;
      }
      T* out = param_partial + chunk * 4 * HRP + (h * s.R + r) * s.P + p;
      out[0] = dpsi;
      out[HRP] = dzeta;
      out[2 * HRP] = dphi;
      out[3 * HRP] = dD_terms;
    }
  });
}

}  // namespace

template <class T>
void mamba3_gate_forward(const GateLayout& s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                         const T* zeta, const T* phi, T* out) {
  const int64_t total = s.rows * s.H * s.P;
  if (total == 0) return;
  const RowLaunch rows = row_launch(s.rows, s.H * s.P);
  gate_forward_kernel<T><<<rows.blocks, rows.threads, 0, stream()>>>(s, y, x, z, D, psi, zeta, phi, out);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_gate_backward(const GateLayout& s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                          const T* zeta, const T* phi, const T* dout, T* dy, T* dx, T* dz, T* param_partial) {
  const int64_t chunks = gate_row_chunks(s.rows), threads = chunks * s.H * s.P;
  if (threads == 0) return;
  gate_backward_kernel<T><<<blocks_for(threads), kThreads, 0, stream()>>>(s, chunks, y, x, z, D, psi, zeta, phi, dout,
                                                                          dy, dx, dz, param_partial);
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
