// ssm/mamba3_output.cpp — see mamba3_output.h. Forward and backward walk the same (row = (b, t), h, r, p)
// loops; the per-head parameter gradients are summed per row block (ssm/row_blocks.h).
#include "ssm/mamba3_output.h"

#include <cmath>
#include <vector>

#include "autograd/node.h"
#include "ssm/row_blocks.h"
#include "tensor/ops.h"

namespace ssm {
namespace {

struct OutputSizes {
  int64_t rows, R, H, P;  // rows = batch · L
};

// The per-(h, r, p) parameters; undefined ones (SISO) read as 1.
template <class T>
struct RankParams {
  const T *psi, *zeta, *phi;
  T at(const T* p, int64_t i) const { return p ? p[i] : T(1); }
};

template <class T>
T sigmoid(T s) {
  return T(1) / (T(1) + std::exp(-s));
}

class OutputGateFunction final : public Function {
 public:
  OutputGateFunction() : Function("mamba3_output_gate") {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    std::vector<Tensor> c;
    for (const Tensor& t : in) c.push_back(t.defined() ? t.contiguous() : Tensor());
    const OutputSizes s{c[0].size(0) * c[0].size(1), c[0].size(2), c[0].size(3), c[0].size(4)};
    Tensor out = Tensor::zeros(c[1].shape(), c[1].dtype());
    dispatch_float(c[0].dtype(), "mamba3_output_gate", [&](auto tag) {
      using T = decltype(tag);
      const T *y = c[0].data<T>(), *x = c[1].data<T>(), *z = c[2].data<T>(), *D = c[3].data<T>();
      const RankParams<T> rp{ptr<T>(c[4]), ptr<T>(c[5]), ptr<T>(c[6])};
      T* po = out.data<T>();
      cpu::parallel_for(s.rows, s.rows * s.R * s.H * s.P * 8, [&](int64_t row) {
        for (int64_t h = 0; h < s.H; ++h)
          for (int64_t r = 0; r < s.R; ++r)
            for (int64_t p = 0; p < s.P; ++p) {
              const int64_t hp = row * s.H * s.P + h * s.P + p, hrp = (h * s.R + r) * s.P + p;
              const T o = y[((row * s.R + r) * s.H + h) * s.P + p] + D[h] * rp.at(rp.psi, hrp) * x[hp];
              const T gate_in = z[hp] * rp.at(rp.zeta, hrp);
              po[hp] += rp.at(rp.phi, hrp) * o * gate_in * sigmoid(gate_in);
            }
      });
    });
    save_for_backward(c);
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const std::vector<Tensor> c = saved();
    const Tensor dout = grad_out[0].contiguous();
    const OutputSizes s{c[0].size(0) * c[0].size(1), c[0].size(2), c[0].size(3), c[0].size(4)};
    const int64_t HRP = s.H * s.R * s.P;
    Tensor dy = op::zeros_like(c[0]), dx = op::zeros_like(c[1]), dz = op::zeros_like(c[2]);
    // per block: dD [H], dψ, dζ, dφ [H, R, P]
    Tensor partial = Tensor::zeros({kRowBlocks, s.H + 3 * HRP}, c[0].dtype());
    dispatch_float(c[0].dtype(), "mamba3_output_gate", [&](auto tag) {
      using T = decltype(tag);
      const T *y = c[0].data<T>(), *x = c[1].data<T>(), *z = c[2].data<T>(), *D = c[3].data<T>();
      const T* g = dout.data<T>();
      const RankParams<T> rp{ptr<T>(c[4]), ptr<T>(c[5]), ptr<T>(c[6])};
      T *pdy = dy.data<T>(), *pdx = dx.data<T>(), *pdz = dz.data<T>();
      for_row_blocks(s.rows, s.rows * HRP * 16, [&](int64_t block, int64_t row_begin, int64_t row_end) {
        T* dD = partial.data<T>() + block * (s.H + 3 * HRP);
        T *dpsi = dD + s.H, *dzeta = dpsi + HRP, *dphi = dzeta + HRP;
        for (int64_t row = row_begin; row < row_end; ++row)
          for (int64_t h = 0; h < s.H; ++h)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t p = 0; p < s.P; ++p) {
                const int64_t hp = row * s.H * s.P + h * s.P + p, hrp = (h * s.R + r) * s.P + p;
                const int64_t yi = ((row * s.R + r) * s.H + h) * s.P + p;
                const T psi = rp.at(rp.psi, hrp), zeta = rp.at(rp.zeta, hrp), phi = rp.at(rp.phi, hrp);
                const T o = y[yi] + D[h] * psi * x[hp];
                const T gate_in = z[hp] * zeta, sig = sigmoid(gate_in), gate = gate_in * sig;
                const T d_o = g[hp] * phi * gate;
                pdy[yi] = d_o;
                pdx[hp] += D[h] * psi * d_o;
                dD[h] += d_o * psi * x[hp];
                dpsi[hrp] += D[h] * d_o * x[hp];
                dphi[hrp] += g[hp] * o * gate;
                const T d_gate_in = g[hp] * phi * o * sig * (T(1) + gate_in * (T(1) - sig));  // silu'
                pdz[hp] += zeta * d_gate_in;
                dzeta[hrp] += z[hp] * d_gate_in;
              }
      });
    });
    const Tensor totals = op::sum(partial, {0});
    std::vector<Tensor> grads = {dy, dx, dz, totals.narrow(0, 0, s.H).contiguous(), Tensor(), Tensor(), Tensor()};
    for (int i = 0; i < 3 && c[4].defined(); ++i)
      grads[4 + i] = totals.narrow(0, s.H + i * HRP, HRP).view(c[4].shape()).contiguous();
    return grads;
  }

 private:
  template <class T>
  static const T* ptr(const Tensor& t) {
    return t.defined() ? t.data<T>() : nullptr;
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
  SSM_CHECK(mimo || R == 1, "mamba3_output_gate: rank ", R, " needs psi, zeta and phi");
  for (const Tensor& t : {psi, zeta, phi})
    SSM_CHECK(!t.defined() || t.shape() == per_rank, "mamba3_output_gate: MIMO parameters must be ",
              shape_str(per_rank), ", got ", t.describe());
  for (const Tensor& t : {x, z, D, psi, zeta, phi})
    SSM_CHECK(!t.defined() || (t.dtype() == y.dtype() && t.device().is_cpu()), "mamba3_output_gate: ", t.describe(),
              " must be a cpu tensor of y's dtype");
  return apply(std::make_shared<OutputGateFunction>(), {y, x, z, D, psi, zeta, phi})[0];
}

}  // namespace ssm
