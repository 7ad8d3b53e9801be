// cuda/mamba3_gate.cu — Mamba-3's fused output gate on the GPU (math: ssm/mamba3_output.h).
//
//   o_r = y_r + D ψ_r ⊙ x,   out = Σ_r φ_r ⊙ o_r ⊙ silu(z ⊙ ζ_r)
//
// Forward: one thread per (row, h, p) of out, looping over the ranks. Backward: one kernel for the input
// and the parameter gradients, a thread per (chunk of rows, h, p) that, rank by rank, walks its
// chunk's rows in row order: it writes dy_r, adds rank r's terms to dx and dz (written by itself at r = 0),
// and sums the chunk's dψ, dζ, dφ and dD terms of (h, r, p) into a partial, which the caller adds up in
// chunk order (op::sum) — fixed order, no atomics. So y, x, z and dout are read once per rank, where a
// kernel for the inputs and another for the parameters read them twice (at the 130M model 400 MB a layer).
// Neighbouring threads own neighbouring p, so every read is coalesced; where the rows are aligned for it a
// thread takes four neighbouring p (LaneValues), in the same order of sums. SISO passes ψ = ζ = φ = null,
// read as 1.
#include <initializer_list>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"

namespace ssm::cuda {
namespace {

// The quantities of one (row, r, h, p) term that the forward and the backward kernel share, from its values.
template <class T>
struct GateTerm {
  T x, z;               // this (row, h, p)'s inputs
  T psi, zeta, phi;     // this (h, r, p)'s parameters (1 for SISO)
  T o, gate_in, sig;    // o_r, s = z ζ_r, σ(s)
  __device__ GateTerm(T y, T x_, T z_, T D, T psi_, T zeta_, T phi_)
      : x(x_), z(z_), psi(psi_), zeta(zeta_), phi(phi_), o(y + D * psi_ * x_), gate_in(z_ * zeta_),
        sig(T(1) / (T(1) + exp_of(-gate_in))) {}
  __device__ T gate() const { return gate_in * sig; }  // silu(s)
  // ∂out/∂s · dout, with silu'(s) = σ(s)(1 + s(1 − σ(s)))
  __device__ T d_gate_in(T dout) const { return dout * phi * o * sig * (T(1) + gate_in * (T(1) - sig)); }
};

// A thread's Lanes consecutive p of one row: with four, each array's values move as one Quad access (the
// launchers take four lanes only where every row start is Quad-aligned: gate_lanes_of_four). One value a
// thread, the gate kernels moved their 400 MB (forward) and 700 MB (backward) a layer at the 130M model at
// ~1.4 and ~2.1 TB/s (ncu: 277 and 338 µs) of the H100's ~3.3; with four the 130M step went 209.0 → 203.4 ms.
template <int Lanes, class T>
struct LaneValues {
  T v[Lanes];
  __device__ T& operator[](int l) { return v[l]; }
  __device__ T operator[](int l) const { return v[l]; }
};

template <int Lanes, class T>
__device__ LaneValues<Lanes, T> load_lanes(const T* at) {
  LaneValues<Lanes, T> out;
  if constexpr (Lanes == 4) {
    const Quad<T> q = load_quad(at);
    for (int l = 0; l < 4; ++l) out[l] = q.v[l];
  } else {
    for (int l = 0; l < Lanes; ++l) out[l] = at[l];
  }
  return out;
}

// A parameter's lanes at [h, r, p ...), or ones when the parameter is null (SISO)
template <int Lanes, class T>
__device__ LaneValues<Lanes, T> load_param_lanes(const T* param, int64_t hrp) {
  if (param) return load_lanes<Lanes>(param + hrp);
  LaneValues<Lanes, T> ones;
  for (int l = 0; l < Lanes; ++l) ones[l] = T(1);
  return ones;
}

template <int Lanes, class T>
__device__ void store_lanes(T* at, const LaneValues<Lanes, T>& values) {
  if constexpr (Lanes == 4) {
    store_quad(at, Quad<T>{{values[0], values[1], values[2], values[3]}});
  } else {
    for (int l = 0; l < Lanes; ++l) at[l] = values[l];
  }
}

// The offsets of (row, h, p)'s values: in x, z and the [rows, H, P] arrays (out, dout, dx, dz), and of rank r's
// in y and dy ([rows, R, H, P]) and in the parameters ([H, R, P]).
struct GateAt {
  int64_t x, z, hp_row;
  __device__ GateAt(const GateLayout& s, int64_t row, int64_t h, int64_t p)
      : x(row * s.x_stride + h * s.P + p), z(row * s.z_stride + h * s.P + p), hp_row((row * s.H + h) * s.P + p) {}
  __device__ static int64_t y(const GateLayout& s, int64_t row, int64_t r, int64_t h, int64_t p) {
    return ((row * s.R + r) * s.H + h) * s.P + p;
  }
  __device__ static int64_t param(const GateLayout& s, int64_t r, int64_t h, int64_t p) {
    return (h * s.R + r) * s.P + p;
  }
};

// A thread per (row, h, Lanes consecutive p) of out, looping over the ranks.
template <int Lanes, class T>
__global__ void gate_forward_kernel(GateLayout s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                                    const T* zeta, const T* phi, T* out) {
  for_each_row_element(s.rows, s.H, s.P / Lanes, [&](int64_t row, int h, int lane_group, int64_t) {
    const int64_t p = int64_t{lane_group} * Lanes;
    const GateAt at(s, row, h, p);
    const auto xs = load_lanes<Lanes>(x + at.x), zs = load_lanes<Lanes>(z + at.z);
    LaneValues<Lanes, T> acc{};
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t hrp = GateAt::param(s, r, h, p);
      const auto ys = load_lanes<Lanes>(y + GateAt::y(s, row, r, h, p));
      const auto psis = load_param_lanes<Lanes>(psi, hrp), zetas = load_param_lanes<Lanes>(zeta, hrp),
                 phis = load_param_lanes<Lanes>(phi, hrp);
      for (int l = 0; l < Lanes; ++l) {
        const GateTerm<T> t(ys[l], xs[l], zs[l], D[h], psis[l], zetas[l], phis[l]);
        acc[l] += t.phi * t.o * t.gate();
      }
    }
    store_lanes(out + at.hp_row, acc);
  });
}

// With ds_r = ∂out/∂s_r · dout:  dy_r = dout φ_r silu(s_r),  dx = D Σ_r ψ_r dy_r,  dz = Σ_r ζ_r ds_r; and per
// chunk of rows and (h, r, p): Σ D dy_r x (dψ), Σ z ds_r (dζ), Σ dout o_r silu(s_r) (dφ), Σ dy_r ψ_r x (dD's
// terms). A thread per (chunk, h, Lanes consecutive p) (for_each_param_partial over groups of Lanes p, one rank:
// it loops over the ranks).
template <int Lanes, class T>
__global__ void gate_backward_kernel(GateLayout s, int64_t chunks, const T* y, const T* x, const T* z, const T* D,
                                     const T* psi, const T* zeta, const T* phi, const T* dout, T* dy, T* dx, T* dz,
                                     T* param_partial) {
  const int64_t HRP = s.H * s.R * s.P;
  for_each_param_partial(s.rows, chunks, s.H, 1, s.P / Lanes, [&](int64_t chunk, int64_t, int64_t h, int64_t,
                                                                  int64_t lane_group, int64_t row_begin,
                                                                  int64_t row_end) {
    const int64_t p = lane_group * Lanes;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t hrp = GateAt::param(s, r, h, p);
      const auto psis = load_param_lanes<Lanes>(psi, hrp), zetas = load_param_lanes<Lanes>(zeta, hrp),
                 phis = load_param_lanes<Lanes>(phi, hrp);
      LaneValues<Lanes, T> dpsi{}, dzeta{}, dphi{}, dD_terms{};
      for (int64_t row = row_begin; row < row_end; ++row) {
        const GateAt at(s, row, h, p);
        const int64_t y_at = GateAt::y(s, row, r, h, p);
        const auto xs = load_lanes<Lanes>(x + at.x), zs = load_lanes<Lanes>(z + at.z), ys = load_lanes<Lanes>(y + y_at),
                   g = load_lanes<Lanes>(dout + at.hp_row);
        auto dxs = r == 0 ? LaneValues<Lanes, T>{} : load_lanes<Lanes>(dx + at.hp_row),
             dzs = r == 0 ? LaneValues<Lanes, T>{} : load_lanes<Lanes>(dz + at.hp_row);
        LaneValues<Lanes, T> d_o;
        for (int l = 0; l < Lanes; ++l) {
          const GateTerm<T> t(ys[l], xs[l], zs[l], D[h], psis[l], zetas[l], phis[l]);
          const T ds = t.d_gate_in(g[l]);
          d_o[l] = g[l] * t.phi * t.gate();
          dxs[l] += D[h] * t.psi * d_o[l];
          dzs[l] += t.zeta * ds;
          dpsi[l] += D[h] * d_o[l] * t.x;
          dzeta[l] += t.z * ds;
          dphi[l] += g[l] * t.o * t.gate();
          dD_terms[l] += d_o[l] * t.psi * t.x;
        }
        store_lanes(dy + y_at, d_o);
        store_lanes(dx + at.hp_row, dxs);
        store_lanes(dz + at.hp_row, dzs);
      }
      T* out = param_partial + chunk * 4 * HRP + hrp;
      store_lanes(out, dpsi);
      store_lanes(out + HRP, dzeta);
      store_lanes(out + 2 * HRP, dphi);
      store_lanes(out + 3 * HRP, dD_terms);
    }
  });
}

// Four lanes a thread when every row the kernels touch starts Quad-aligned: P and the strides of x and z
// multiples of four, and every base pointer aligned (the model's x and z, column ranges of in_proj's output,
// are when its widths are; the tests also take the one-lane path, with an odd projection width).
template <class T>
bool gate_lanes_of_four(const GateLayout& s, std::initializer_list<const T*> arrays) {
  bool aligned = s.P % 4 == 0 && s.x_stride % 4 == 0 && s.z_stride % 4 == 0;
  for (const T* a : arrays) aligned = aligned && (a == nullptr || quad_aligned(a));
  return aligned;
}

}  // namespace

template <class T>
void mamba3_gate_forward(const GateLayout& s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                         const T* zeta, const T* phi, T* out) {
  if (s.rows * s.H * s.P == 0) return;
  const bool four = gate_lanes_of_four(s, {y, x, z, psi, zeta, phi, static_cast<const T*>(out)});
  const RowLaunch rows = row_launch(s.rows, s.H * s.P / (four ? 4 : 1));
  (four ? gate_forward_kernel<4, T> : gate_forward_kernel<1, T>)<<<rows.blocks, rows.threads, 0, stream()>>>(
      s, y, x, z, D, psi, zeta, phi, out);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T>
void mamba3_gate_backward(const GateLayout& s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                          const T* zeta, const T* phi, const T* dout, T* dy, T* dx, T* dz, T* param_partial) {
  const bool four = gate_lanes_of_four(s, {y, x, z, psi, zeta, phi, dout, static_cast<const T*>(dy),
                                           static_cast<const T*>(dx), static_cast<const T*>(dz),
                                           static_cast<const T*>(param_partial)});
  const int64_t chunks = gate_row_chunks(s.rows), threads = chunks * s.H * s.P / (four ? 4 : 1);
  if (threads == 0) return;
  (four ? gate_backward_kernel<4, T> : gate_backward_kernel<1, T>)<<<blocks_for(threads), kThreads, 0, stream()>>>(
      s, chunks, y, x, z, D, psi, zeta, phi, dout, dy, dx, dz, param_partial);
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
