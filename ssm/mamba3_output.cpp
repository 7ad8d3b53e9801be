// ssm/mamba3_output.cpp — see mamba3_output.h. Forward and backward walk the same (row = (b, t), h, r, p)
// loops; the per-head parameter gradients are summed per row block (tensor/cpu/row_blocks.h).
// Tensors on a CUDA device run the same math as kernels (cuda/mamba3_gate.cu).
#include "ssm/mamba3_output.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/node.h"
#include "ssm/fused_device.h"
#include "ssm/rank_params.h"
#include "ssm/rows_in_place.h"
#include "tensor/cpu/row_blocks.h"
#include "tensor/cpu/sigmoid.h"
#include "tensor/cpu/vector_clones.h"
#include "tensor/ops.h"
#if SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#endif

namespace ssm {
namespace {

struct OutputSizes {
  int64_t rows, R, H, P;  // rows = batch · L
};

OutputSizes sizes_of(const Tensor& y) { return {y.size(0) * y.size(1), y.size(2), y.size(3), y.size(4)}; }

// Both devices write every element of the gate's outputs (out, dx, dz), so they start uninitialised: the CPU
// loops zero each row's values just before they add the ranks' terms, in cache, and on the GPU the thread of
// an element writes it with rank 0's term and adds the other ranks' (there is at least one rank).
Tensor output_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

// The CPU loops' view of the saved inputs y, x, z, D, ψ, ζ, φ (x and z read in place: ssm/rows_in_place.h).
template <class T>
struct GateInputs {
  OutputSizes s;
  const T *y, *x, *z, *D;
  int64_t x_rs, z_rs;
  RankParams<T> rp;
  GateInputs(const std::vector<Tensor>& c, const OutputSizes& sizes)
      : s(sizes), y(c[0].data<T>()), x(c[1].data<T>()), z(c[2].data<T>()), D(c[3].data<T>()),
        x_rs(row_stride(c[1], 2)), z_rs(row_stride(c[2], 2)), rp(c[4], c[5], c[6], sizes.H * sizes.R * sizes.P) {}
};

// One row (b, t) of the forward: out_h = Σ_r φ_r ⊙ (y_r + D_h ψ_r ⊙ x_h) ⊙ silu(z_h ⊙ ζ_r).
// The p loops vectorise (float: cpu::sigmoid has no call in it); the __restrict pointers and the locals
// P and D_h tell the compiler that the stores do not change what the loops read.
template <class T>
SSM_VECTOR_CLONES void gate_forward_row(const GateInputs<T>& in, int64_t row, T* out) {
  const OutputSizes& s = in.s;
  const int64_t P = s.P;
  for (int64_t h = 0; h < s.H; ++h) {
    const T D_h = in.D[h];
    const T *__restrict xh = in.x + row * in.x_rs + h * P, *__restrict zh = in.z + row * in.z_rs + h * P;
    T* __restrict oh = out + (row * s.H + h) * P;
    std::fill(oh, oh + P, T(0));
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t hr = (h * s.R + r) * P;
      const T *__restrict yr = in.y + ((row * s.R + r) * s.H + h) * P, *__restrict psi = in.rp.psi + hr,
              *__restrict zeta = in.rp.zeta + hr, *__restrict phi = in.rp.phi + hr;
      for (int64_t p = 0; p < P; ++p) {
        const T o = yr[p] + D_h * psi[p] * xh[p], gate_in = zh[p] * zeta[p];
        oh[p] += phi[p] * o * gate_in * cpu::sigmoid(gate_in);
      }
    }
  }
}

// The backward's incoming gradient and its outputs dy, dx, dz (contiguous).
template <class T>
struct GateGrads {
  const T* dout;
  T *dy, *dx, *dz;
};

// One row (b, t) of the backward: its dy, dx, dz, and its terms of dD [H], dψ, dζ, dφ [H, R, P] added
// to the row block's partial sums at dD (dψ, dζ, dφ follow dD).
template <class T>
SSM_VECTOR_CLONES void gate_backward_row(const GateInputs<T>& in, const GateGrads<T>& out, int64_t row, T* dD) {
  const OutputSizes& s = in.s;
  const int64_t P = s.P, HRP = s.H * s.R * P;  // as in the forward: locals and __restrict let the p loop vectorise
  for (int64_t h = 0; h < s.H; ++h) {
    const int64_t at = (row * s.H + h) * P;
    const T D_h = in.D[h];
    const T *__restrict xh = in.x + row * in.x_rs + h * P, *__restrict zh = in.z + row * in.z_rs + h * P,
            *__restrict gh = out.dout + at;
    T *__restrict dxh = out.dx + at, *__restrict dzh = out.dz + at;
    std::fill(dxh, dxh + P, T(0));
    std::fill(dzh, dzh + P, T(0));
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t hr = (h * s.R + r) * P, yi = ((row * s.R + r) * s.H + h) * P;
      const T *__restrict yr = in.y + yi, *__restrict psi = in.rp.psi + hr, *__restrict zeta = in.rp.zeta + hr,
              *__restrict phi = in.rp.phi + hr;
      T *__restrict dyr = out.dy + yi, *__restrict dpsi = dD + s.H + hr, *__restrict dzeta = dpsi + HRP,
        *__restrict dphi = dzeta + HRP;
      T dD_h = 0;
#pragma omp simd reduction(+ : dD_h)  // a float sum vectorises only when allowed to; lane order is fixed
      for (int64_t p = 0; p < P; ++p) {
        const T o = yr[p] + D_h * psi[p] * xh[p];
        const T gate_in = zh[p] * zeta[p], sig = cpu::sigmoid(gate_in), gate = gate_in * sig;
        const T d_o = gh[p] * phi[p] * gate;
        dyr[p] = d_o;
        dxh[p] += D_h * psi[p] * d_o;
        dD_h += d_o * psi[p] * xh[p];
        dpsi[p] += D_h * d_o * xh[p];
        dphi[p] += gh[p] * o * gate;
        const T d_gate_in = gh[p] * phi[p] * o * sig * (T(1) + gate_in * (T(1) - sig));  // silu'
        dzh[p] += zeta[p] * d_gate_in;
        dzeta[p] += zh[p] * d_gate_in;
      }
      dD[h] += dD_h;
    }
  }
}

#if SSM_WITH_CUDA
// The sizes and device pointers of the saved inputs y, x, z, D, ψ, ζ, φ (null for SISO's undefined ones).
template <class T>
struct GatePointers {
  cuda::GateLayout layout;
  const T *y, *x, *z, *D, *psi, *zeta, *phi;
  GatePointers(const std::vector<Tensor>& c, const OutputSizes& s)
      : layout{s.rows, s.R, s.H, s.P, row_stride(c[1], 2), row_stride(c[2], 2)}, y(c[0].data<T>()),
        x(c[1].data<T>()), z(c[2].data<T>()), D(c[3].data<T>()),
        psi(c[4].defined() ? c[4].data<T>() : nullptr), zeta(c[5].defined() ? c[5].data<T>() : nullptr),
        phi(c[6].defined() ? c[6].data<T>() : nullptr) {}
};
#endif

class OutputGateFunction final : public Function {
 public:
  OutputGateFunction() : Function("mamba3_output_gate") {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    std::vector<Tensor> c;  // x and z are column ranges of in_proj's output, read in place
    for (size_t i = 0; i < in.size(); ++i)
      c.push_back(!in[i].defined() ? in[i] : i == 1 || i == 2 ? rows_readable(in[i], 2) : in[i].contiguous());
    const OutputSizes s = sizes_of(c[0]);
    Tensor out = output_like(c[1]);
    save_for_backward(c);
    if (!out.device().is_cpu()) {
#if SSM_WITH_CUDA
      dispatch_float(c[0].dtype(), "mamba3_output_gate", [&](auto tag) {
        using T = decltype(tag);
        const GatePointers<T> ptr(c, s);
        cuda::mamba3_gate_forward<T>(ptr.layout, ptr.y, ptr.x, ptr.z, ptr.D, ptr.psi, ptr.zeta, ptr.phi,
                                     out.data<T>());
      });
#endif
      return {out};
    }
    dispatch_float(c[0].dtype(), "mamba3_output_gate", [&](auto tag) {
      using T = decltype(tag);
      const GateInputs<T> in(c, s);
      T* po = out.data<T>();
      cpu::parallel_for(s.rows, s.rows * s.R * s.H * s.P * 8, [&](int64_t row) { gate_forward_row(in, row, po); });
    });
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const std::vector<Tensor> c = saved();
    const Tensor dout = grad_out[0].contiguous();
    const OutputSizes s = sizes_of(c[0]);
    const int64_t HRP = s.H * s.R * s.P;
    Tensor dy = Tensor::empty(c[0].shape(), c[0].dtype(), c[0].device()), dx = output_like(c[1]),
           dz = output_like(c[2]);
    if (!dy.device().is_cpu()) return backward_cuda(c, s, dout, dy, dx, dz);
    // per block: dD [H], dψ, dζ, dφ [H, R, P]
    Tensor partial = Tensor::zeros({cpu::kRowBlocks, s.H + 3 * HRP}, c[0].dtype());
    dispatch_float(c[0].dtype(), "mamba3_output_gate", [&](auto tag) {
      using T = decltype(tag);
      const GateInputs<T> in(c, s);
      const GateGrads<T> grads{dout.data<T>(), dy.data<T>(), dx.data<T>(), dz.data<T>()};
      cpu::for_row_blocks(s.rows, s.rows * HRP * 16, [&](int64_t block, int64_t row_begin, int64_t row_end) {
        T* dD = partial.data<T>() + block * (s.H + 3 * HRP);
        for (int64_t row = row_begin; row < row_end; ++row) gate_backward_row(in, grads, row, dD);
      });
    });
    const Tensor totals = op::sum(partial, {0});
    std::vector<Tensor> grads = {dy, dx, dz, totals.narrow(0, 0, s.H).contiguous(), Tensor(), Tensor(), Tensor()};
    for (int i = 0; i < 3 && c[4].defined(); ++i)
      grads[4 + i] = totals.narrow(0, s.H + i * HRP, HRP).view(c[4].shape()).contiguous();
    return grads;
  }

 private:
  // The backward kernel writes dy, dx, dz and per-chunk partials [chunks, 4, H, R, P] of dψ, dζ, dφ and dD's
  // (r, p) terms; the sums over chunks (and r, p for dD) are op::sum's.
  static std::vector<Tensor> backward_cuda(const std::vector<Tensor>& c, const OutputSizes& s,
                                           [[maybe_unused]] const Tensor& dout, const Tensor& dy, const Tensor& dx,
                                           const Tensor& dz) {
    const Tensor partial = Tensor::empty({cuda_param_chunks(s.rows), 4, s.H, s.R, s.P}, c[0].dtype(), c[0].device());
#if SSM_WITH_CUDA
    dispatch_float(c[0].dtype(), "mamba3_output_gate", [&](auto tag) {
      using T = decltype(tag);
      const GatePointers<T> ptr(c, s);
      cuda::mamba3_gate_backward<T>(ptr.layout, ptr.y, ptr.x, ptr.z, ptr.D, ptr.psi, ptr.zeta, ptr.phi,
                                    dout.data<T>(), dy.data<T>(), dx.data<T>(), dz.data<T>(), partial.data<T>());
    });
#endif
    const Tensor totals = op::sum(partial, {0});  // [4, H, R, P]
    std::vector<Tensor> grads = {dy, dx, dz, op::sum(totals.select(0, 3), {1, 2}), Tensor(), Tensor(), Tensor()};
    for (int i = 0; i < 3 && c[4].defined(); ++i) grads[4 + i] = totals.select(0, i).contiguous();
    return grads;
  }

  static int64_t cuda_param_chunks([[maybe_unused]] int64_t rows) {
#if SSM_WITH_CUDA
    return cuda::gate_row_chunks(rows);
#else
    return 1;
#endif
  }
};

}  // namespace

Tensor mamba3_output_gate(const Tensor& y, const Tensor& x, const Tensor& z, const Tensor& D, const Tensor& psi,
                          const Tensor& zeta, const Tensor& phi) {
  SSM_CHECK(y.defined() && x.defined() && z.defined() && D.defined(), "mamba3_output_gate: undefined input");
  SSM_CHECK(y.dim() == 5, "mamba3_output_gate: y must be [batch, L, R, H, P], got ", y.describe());
  const int64_t R = y.size(2), H = y.size(3), P = y.size(4);
  const Shape xz{y.size(0), y.size(1), H, P}, per_rank{H, R, P};
  SSM_CHECK(x.shape() == xz && z.shape() == xz, "mamba3_output_gate: x and z must be ", shape_str(xz), ", got ",
            x.describe(), " and ", z.describe());
  SSM_CHECK(D.shape() == Shape{H}, "mamba3_output_gate: D must be [", H, "], got ", D.describe());
  const bool mimo = psi.defined();
  SSM_CHECK(mimo == zeta.defined() && mimo == phi.defined(), "mamba3_output_gate: psi, zeta, phi go together");
  SSM_CHECK(R >= 1, "mamba3_output_gate: y has no ranks (", y.describe(), ")");
  SSM_CHECK(mimo || R == 1, "mamba3_output_gate: rank ", R, " needs psi, zeta and phi");
  for (const Tensor& t : {psi, zeta, phi})
    SSM_CHECK(!t.defined() || t.shape() == per_rank, "mamba3_output_gate: MIMO parameters must be ",
              shape_str(per_rank), ", got ", t.describe());
  for (const Tensor& t : {x, z, D, psi, zeta, phi})
    SSM_CHECK(!t.defined() || t.dtype() == y.dtype(), "mamba3_output_gate: ", t.describe(), " must have y's dtype");
  check_fused_device("mamba3_output_gate", y, {x, z, D, psi, zeta, phi});
  return apply(std::make_shared<OutputGateFunction>(), {y, x, z, D, psi, zeta, phi})[0];
}

}  // namespace ssm
