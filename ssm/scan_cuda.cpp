// ssm/scan_cuda.cpp — the GPU mappings of ssm/scan_cuda.h: tensor ops on the device around the core kernels
// of cuda/ssm_kernels.h. Layout notes: a SeqLayout says where sequence (b, h) starts in an operand and how far
// apart its rows are, so the core reads B and C (Mamba-2: head h reads group h / (H/G)) and q̃, k̃, v
// (Mamba-3: row (t, r) of [batch, L, R, H, ·] is H·width after row (t, r−1)) where they are.
// Gradients of Q and K come back per head ([batch, L, (R,) H, N]); Mamba-2 sums them over each group's heads.
#include "ssm/scan_cuda.h"

#ifdef SSM_WITH_CUDA
#include "cuda/ssm_fused.h"
#include "cuda/ssm_kernels.h"
#endif

namespace ssm::scan_cuda {

#ifdef SSM_WITH_CUDA
namespace {

using cuda::SeqLayout;

// [batch, L, heads·rank-rows..., width] with one row per (t, r) and `heads` heads of `width` values each.
SeqLayout rows_layout(int64_t L, int64_t R, int64_t heads, int64_t width, int64_t heads_per_group = 1) {
  return SeqLayout{L * R * heads * width, width, heads_per_group, heads * width};
}
// [batch, L, H]: one value per step and head.
SeqLayout steps_layout(int64_t L, int64_t H) { return SeqLayout{L * H, 1, 1, H}; }

Tensor empty_like_on(const Shape& shape, const Tensor& like) { return Tensor::empty(shape, like.dtype(), like.device()); }
Tensor zeros_on(const Shape& shape, const Tensor& like) { return Tensor::zeros(shape, like.dtype(), like.device()); }

// The core's problem: Q, K, V, a in the given layouts (with key weights: K = w k, k the rows in `k`, and
// optionally an own-step discount on them, cuda/ssm_kernels.h), and the precision of its products.
struct CoreOperands {
  cuda::ChunkScanSizes sizes;
  Tensor q, k, v, a, k_weight, k_own_discount;
  SeqLayout lq, lk, lv, la, lkw;
  bool tf32_products = false;

  template <class T>
  cuda::ChunkScanInputs<T> inputs() const {
    cuda::ChunkScanInputs<T> in;
    in.sizes = sizes;
    in.q = q.data<T>();
    in.k = k.data<T>();
    in.v = v.data<T>();
    in.a = a.data<T>();
    in.q_layout = lq;
    in.k_layout = lk;
    in.v_layout = lv;
    in.a_layout = la;
    in.tf32_products = tf32_products;
    if (k_weight.defined()) {
      in.k_weight = k_weight.data<T>();
      in.k_weight_layout = lkw;
    }
    if (k_own_discount.defined()) in.k_own_discount = k_own_discount.data<T>();
    return in;
  }
};

// Runs the core forward: Y into y (accumulating onto it with accumulate), states [batch, nchunks+1, H, P, N].
void core_forward(const CoreOperands& op_in, const Tensor& s0, const Tensor& y, SeqLayout ly, bool accumulate,
                  const Tensor& states) {
  dispatch_float(y.dtype(), "scan (cuda)", [&](auto tag) {
    using T = decltype(tag);
    cuda::ssd_chunk_forward<T>(op_in.inputs<T>(), s0.defined() ? s0.data<T>() : nullptr, y.data<T>(), ly, accumulate,
                               states.data<T>());
  });
}

// The core's gradients: dQ, dK (per head, [batch, rows..., H, N] like lq_out), dV, da, dS_0; with key
// weights dK is ∂ℒ/∂k (the unweighted rows) and dw, shaped like da, ∂ℒ/∂w; with an own-step discount
// d_own_discount, shaped like da, its gradient.
struct CoreGrads {
  Tensor dq, dk, dv, da, ds0, dw, d_own_discount;
};

CoreGrads core_backward(const CoreOperands& op_in, const Tensor& states, const Tensor& dy, SeqLayout ldy,
                        const Tensor& dh_final, const Shape& dqk_shape, SeqLayout ldqk, const Shape& dv_shape,
                        SeqLayout ldv, const Shape& da_shape, SeqLayout lda, const Shape& state_shape) {
  CoreGrads g{empty_like_on(dqk_shape, dy), empty_like_on(dqk_shape, dy), empty_like_on(dv_shape, dy),
              empty_like_on(da_shape, dy), empty_like_on(state_shape, dy),
              op_in.k_weight.defined() ? empty_like_on(da_shape, dy) : Tensor(),
              op_in.k_own_discount.defined() ? empty_like_on(da_shape, dy) : Tensor()};
  dispatch_float(dy.dtype(), "scan backward (cuda)", [&](auto tag) {
    using T = decltype(tag);
    cuda::ChunkScanGrads<T> out;
    out.dq = g.dq.data<T>();
    out.dk = g.dk.data<T>();
    out.dv = g.dv.data<T>();
    out.da = g.da.data<T>();
    out.ds0 = g.ds0.data<T>();
    out.dq_layout = ldqk;
    out.dk_layout = ldqk;
    out.dv_layout = ldv;
    out.da_layout = lda;
    if (g.dw.defined()) {
      out.dw = g.dw.data<T>();
      out.dw_layout = lda;
    }
    if (g.d_own_discount.defined()) out.d_own_discount = g.d_own_discount.data<T>();
    cuda::ssd_chunk_backward<T>(op_in.inputs<T>(), states.data<T>(), dy.data<T>(), ldy, dh_final.data<T>(), out);
  });
  return g;
}

cuda::ChunkScanSizes core_sizes(int64_t batch, int64_t H, int64_t L, int64_t R, int64_t N, int64_t P, int64_t chunk) {
  cuda::ChunkScanSizes z;
  z.batch = batch;
  z.heads = H;
  z.steps = L;
  z.rank = R;
  z.N = N;
  z.P = P;
  z.chunk = chunk;
  return z;
}

// ---- Mamba-2 ----

CoreOperands ssd_operands(const SsdSizes& s, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B,
                          const Tensor& C) {
  CoreOperands o;
  o.sizes = core_sizes(s.batch, s.H, s.L, 1, s.N, s.P, s.Q);
  o.tf32_products = s.tf32_products;
  o.q = C;
  o.k = B;
  o.v = op::mul(x, dt.unsqueeze(3));  // V_t = dt_t x_t
  o.a = op::mul(dt, A);               // a_t = dt_t A
  o.lq = o.lk = rows_layout(s.L, 1, s.G, s.N, s.H / s.G);
  o.lv = rows_layout(s.L, 1, s.H, s.P);
  o.la = steps_layout(s.L, s.H);
  return o;
}

// ---- Mamba-3 ----

// η_{t+1} (0 at t = L−1): [batch, L, H].
Tensor eta_next(const Mamba3Sizes& s, const Tensor& eta) {
  const Tensor last = zeros_on({s.batch, 1, s.H}, eta);
  return s.L > 1 ? op::cat({eta.narrow(1, 1, s.L - 1), last}, 1) : last;
}

// q̃, k̃ [batch, L, R, H, N], v [batch, L, R, H, P] as the diagonal correction's kernels read them.
cuda::DiagLayout diag_layout(const Mamba3Sizes& s) { return {s.batch * s.L, s.R, s.H, s.N, s.P}; }

// The previous token's pending term, per head: v_prev as [batch, H, P, R] and k_prev as [batch, H, R, N].
Tensor prev_values(const Tensor& v_prev) { return v_prev.permute({0, 2, 3, 1}).contiguous(); }
Tensor prev_keys(const Tensor& k_prev) { return k_prev.permute({0, 2, 1, 3}).contiguous(); }
Tensor eta0_of(const Tensor& eta) { return eta.select(1, 0).unsqueeze(2).unsqueeze(3); }  // [batch, H, 1, 1]

struct Mamba3Core {
  CoreOperands operands;
  Tensor s0, eta_next, weight;  // S_0 [batch, H, P, N]; η_next and w = γ + η_next [batch, L, H]
  // Whether the core weighs a token's own term with γ itself (own-step discount η_next, on tensor cores);
  // if not, the diagonal correction's kernels (cuda/mamba3_diag.cu) take the excess η_next back off.
  bool own_term_in_core = false;
};

// `states` is the buffer the core's forward writes (whether the core runs on tensor cores depends on it).
Mamba3Core mamba3_core(const Mamba3Sizes& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& adt,
                       const Tensor& gamma, const Tensor& eta, const Tensor& h0, const Tensor& k_prev,
                       const Tensor& v_prev, const Tensor& states) {
  Mamba3Core c;
  c.eta_next = eta_next(s, eta);
  c.weight = op::add(gamma, c.eta_next);
  CoreOperands& o = c.operands;
  o.sizes = core_sizes(s.batch, s.H, s.L, s.R, s.N, s.P, s.Q);
  dispatch_float(q.dtype(), "mamba3 scan (cuda)", [&](auto tag) {
    using T = decltype(tag);
    c.own_term_in_core = cuda::ssd_chunk_takes_own_discount<T>(o.sizes, states.data<T>());
  });
  o.tf32_products = s.tf32_products;
  o.q = q;
  o.k = k;
  o.k_weight = c.weight;  // K_s = w_s k̃_s, applied by the core (cuda/ssd_key_weight.h)
  if (c.own_term_in_core) o.k_own_discount = c.eta_next;  // the diagonal block sees w − η_next = γ
  o.v = v;
  o.a = adt;
  o.lq = o.lk = rows_layout(s.L, s.R, s.H, s.N);
  o.lv = rows_layout(s.L, s.R, s.H, s.P);
  o.la = o.lkw = steps_layout(s.L, s.H);
  // S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ; from no state (h0, k_prev, v_prev undefined) none: zeros,
  // which the core reads as a null S_0
  if (h0.defined())
    c.s0 = op::add(h0, op::mul(eta0_of(eta), op::matmul(prev_values(v_prev), prev_keys(k_prev)))).contiguous();
  return c;
}

}  // namespace

ScanForward ssd_forward(const SsdSizes& s, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B,
                        const Tensor& C, const Tensor& D, const Tensor& h0) {
  const CoreOperands o = ssd_operands(s, x, dt, A, B, C);
  Tensor y = op::mul(x, D.unsqueeze(1)).contiguous();  // D x, onto which the core adds Y
  Tensor states = empty_like_on({s.batch, s.nchunks + 1, s.H, s.P, s.N}, x);
  core_forward(o, h0, y, o.lv, /*accumulate=*/true, states);
  return {y, states};
}

std::vector<Tensor> ssd_backward(const SsdSizes& s, const Tensor& x, const Tensor& dt, const Tensor& A,
                                 const Tensor& B, const Tensor& C, const Tensor& D, const Tensor& states,
                                 const Tensor& dy, const Tensor& dh_final) {
  const CoreOperands o = ssd_operands(s, x, dt, A, B, C);
  const SeqLayout lv = rows_layout(s.L, 1, s.H, s.P);
  const CoreGrads g = core_backward(o, states, dy, lv, dh_final, {s.batch, s.L, s.H, s.N},
                                    rows_layout(s.L, 1, s.H, s.N), {s.batch, s.L, s.H, s.P}, lv, {s.batch, s.L, s.H},
                                    steps_layout(s.L, s.H), {s.batch, s.H, s.P, s.N});
  const Tensor dx = op::add(op::mul(dy, D.unsqueeze(1)), op::mul(g.dv, dt.unsqueeze(3)));  // D dy + dt dV
  const Tensor ddt = op::add(op::sum(op::mul(x, g.dv), {3}), op::mul(g.da, A));          // x·dV + A da
  const Tensor dA = op::sum(op::mul(dt, g.da), {0, 1});                                   // Σ dt da
  const Tensor dD = op::sum(op::mul(dy, x), {0, 1, 3});                                   // Σ dy·x
  // dB, dC: the per-head dK, dQ summed over the heads of each group
  const Shape grouped{s.batch, s.L, s.G, s.H / s.G, s.N};
  const Tensor dB = op::sum(g.dk.view(grouped), {3});
  const Tensor dC = op::sum(g.dq.view(grouped), {3});
  return {dx.contiguous(), ddt.contiguous(), dA.contiguous(), dB.contiguous(), dC.contiguous(), dD.contiguous(),
          g.ds0};
}

ScanForward mamba3_forward(const Mamba3Sizes& s, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& adt, const Tensor& gamma, const Tensor& eta, const Tensor& h0,
                           const Tensor& k_prev, const Tensor& v_prev) {
  Tensor y = empty_like_on({s.batch, s.L, s.R, s.H, s.P}, q);
  Tensor states = empty_like_on({s.batch, s.nchunks + 1, s.H, s.P, s.N}, q);
  const Mamba3Core c = mamba3_core(s, q, k, v, adt, gamma, eta, h0, k_prev, v_prev, states);
  core_forward(c.operands, c.s0, y, c.operands.lv, /*accumulate=*/false, states);
  if (c.own_term_in_core) return {y, states};
  // diagonal correction: y_{t,r} −= η_{t+1} Σ_{r'} (q̃_{t,r}·k̃_{t,r'}) v_{t,r'}, in place (cuda/mamba3_diag.cu)
  dispatch_float(y.dtype(), "mamba3 scan (cuda)", [&](auto tag) {
    using T = decltype(tag);
    cuda::mamba3_diag_forward<T>(diag_layout(s), q.data<T>(), k.data<T>(), v.data<T>(), c.eta_next.data<T>(),
                                 y.data<T>());
  });
  return {y, states};
}

std::vector<Tensor> mamba3_backward(const Mamba3Sizes& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& adt, const Tensor& gamma, const Tensor& eta, const Tensor& h0,
                                    const Tensor& k_prev, const Tensor& v_prev, const Tensor& states,
                                    const Tensor& dy, const Tensor& dh_final) {
  const Mamba3Core c = mamba3_core(s, q, k, v, adt, gamma, eta, h0, k_prev, v_prev, states);
  const SeqLayout lk = rows_layout(s.L, s.R, s.H, s.N), lv = rows_layout(s.L, s.R, s.H, s.P);
  const CoreGrads g = core_backward(c.operands, states, dy, lv, dh_final, q.shape(), lk, v.shape(), lv,
                                    {s.batch, s.L, s.H}, steps_layout(s.L, s.H), {s.batch, s.H, s.P, s.N});

  // K_s = w_s k̃_s: the core hands back dk̃ = w dK and dw_s = Σ_r <dK_{s,r}, k̃_{s,r}> [batch, L, H], which
  // feeds dγ_s and dη_{s+1}
  const Tensor &dk = g.dk, &dw = g.dw;

  // The diagonal correction y −= η_next · E V (per token and head, E = q̃ k̃ᵀ), backwards: from the core
  // when it took it (the own-step discount's gradient), else added in place to dq̃, dk̃ and dV
  // (cuda/mamba3_diag.cu): dE = −η_next dY Vᵀ, dq̃ += dE k̃, dk̃ += dEᵀ q̃, dV −= η_next Eᵀ dY,
  // dη_next = −Σ E ⊙ (dY Vᵀ)
  Tensor d_eta_next = g.d_own_discount;
  if (!c.own_term_in_core) {
    d_eta_next = empty_like_on({s.batch, s.L, s.H}, dy);
    dispatch_float(dy.dtype(), "mamba3 scan backward (cuda)", [&](auto tag) {
      using T = decltype(tag);
      cuda::mamba3_diag_backward<T>(diag_layout(s), q.data<T>(), k.data<T>(), v.data<T>(), c.eta_next.data<T>(),
                                    dy.data<T>(), g.dq.data<T>(), dk.data<T>(), g.dv.data<T>(), d_eta_next.data<T>());
    });
  }

  // S_0 = h_init + η_0 Σ_r v_prev,r k_prev,rᵀ: dh_init = dS_0, dv_prev,r = η_0 dS_0 k_prev,r,
  // dk_prev,r = η_0 dS_0ᵀ v_prev,r, dη_0 = Σ_r v_prev,rᵀ dS_0 k_prev,r (from no state: no inputs to
  // differentiate, and dη_0 = 0)
  Tensor dk_prev, dv_prev, d_eta0 = zeros_on({s.batch, s.H}, dy);
  if (h0.defined()) {
    const Tensor vp = prev_values(v_prev), kp = prev_keys(k_prev), eta0 = eta0_of(eta);
    const Tensor dS0_kp = op::matmul(g.ds0, kp.transpose(2, 3));                                 // [batch, H, P, R]
    dv_prev = op::mul(dS0_kp, eta0).permute({0, 3, 1, 2}).contiguous();                        // [batch, R, H, P]
    dk_prev = op::mul(op::matmul(g.ds0.transpose(2, 3), vp), eta0).permute({0, 3, 1, 2}).contiguous();  // [b, R, H, N]
    d_eta0 = op::sum(op::mul(vp, dS0_kp), {2, 3});                                             // [batch, H]
  }

  // dη_0 from S_0; dη_{t+1} from step t's key weight and diagonal correction
  const Tensor to_next = op::add(dw, d_eta_next);
  const Tensor first = d_eta0.unsqueeze(1);
  const Tensor deta = s.L > 1 ? op::cat({first, to_next.narrow(1, 0, s.L - 1)}, 1) : first;

  return {g.dq,
          dk,
          g.dv,
          g.da,
          dw,
          deta.contiguous(),
          g.ds0,
          dk_prev,
          dv_prev};
}

#else  // a build without CUDA: no tensor can be on a GPU, so these are never reached

namespace {
[[noreturn]] void no_cuda() { throw Error("scan: this build has no CUDA backend (configure with -DSSM_CUDA=ON)"); }
}  // namespace

ScanForward ssd_forward(const SsdSizes&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&, const Tensor&) {
  no_cuda();
}
std::vector<Tensor> ssd_backward(const SsdSizes&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  no_cuda();
}
ScanForward mamba3_forward(const Mamba3Sizes&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                           const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  no_cuda();
}
std::vector<Tensor> mamba3_backward(const Mamba3Sizes&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                    const Tensor&, const Tensor&, const Tensor&) {
  no_cuda();
}

#endif

}  // namespace ssm::scan_cuda
