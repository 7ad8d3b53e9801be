// cuda/ssm_fused.h — raw-pointer entry points of the hand-fused GPU kernels that the layers above
// tensor/ call for tensors on a CUDA device (the math lives with each op's CPU twin; this header
// only fixes the memory layouts). All pointers are device pointers to contiguous row-major arrays;
// every kernel is queued on the backend stream (cuda/context.h) and returns without waiting.
// Scratch (`*_partial`) is allocated by the caller as tensors (so the caching allocator serves it) and
// summed by the caller in a fixed order (op::sum): no atomics, the same bits on every run.
// Instantiated for float and double.
#pragma once
#include <algorithm>
#include <cstdint>

namespace ssm::cuda {

// The row chunks a fused op's parameter gradients are summed in (its partials' first dim): one thread per
// (chunk, parameter element) adds its chunk's rows in row order, the caller the chunks in chunk order.
inline int64_t param_row_chunks(int64_t rows) { return std::clamp<int64_t>(rows, 1, 256); }

// ---- Mamba-3 keys/queries: rmsnorm ⊙ w, + bias per head, rotation (cuda/mamba3_keys.cu) ----
// raw [rows, R, G, N], w [N], bias [H, R, N], theta [rows, H, S] → out [rows, R, H, N];
// head h reads group h / (H/G); pair m < S is (2m, 2m+1) (adjacent) or (m, m + N/2) (half_split).
struct KeysLayout {
  int64_t rows, R, G, H, N, S;
  int64_t raw_stride;  // between raw's token rows (a column range of in_proj's output, read in place)
  bool half_split;
  double eps;
};

template <class T>
void mamba3_keys_forward(const KeysLayout& s, const T* raw, const T* w, const T* bias, const T* theta, T* out);

// dout [rows, R, H, N] → draw [rows, R, G, N], dtheta [rows, H, S] (both fully written), and per-block
// partials the caller sums over their first dim: dw_partial [slots·R·G, N], dbias_partial [slots, H, R, N]
// with slots from keys_backward_slots(s), passed back in (only these leading rows are written; the caller may
// allocate more, zeroed, to reshape the sum). rho_scratch [rows·R·G] holds each row's 1/rms between the two
// kernels.
template <class T>
int64_t keys_backward_slots(const KeysLayout& s);
template <class T>
void mamba3_keys_backward(const KeysLayout& s, int64_t slots, const T* raw, const T* w, const T* bias, const T* theta,
                          const T* dout, T* draw, T* dtheta, T* dw_partial, T* dbias_partial, T* rho_scratch);

// ---- Mamba-3 rates: A·DT, γ, η, DT per (token, head) (cuda/mamba3_rates.cu) ----
// dd_dt, dd_A, trap: rows of H values, each its own row stride apart (in_proj's columns in place);
// dt_bias [H]. Outputs and their gradients [rows, H] contiguous; a null incoming gradient reads as 0.
template <class T>
struct RateInputs {
  int64_t rows, H;
  const T *dd_dt, *dd_A, *trap;
  int64_t dt_stride, a_stride, trap_stride;
  const T* dt_bias;
  T A_floor;
};

template <class T>
void mamba3_rates_forward(const RateInputs<T>& in, T* adt, T* gamma, T* eta, T* DT);

template <class T>
void mamba3_rates_backward(const RateInputs<T>& in, const T* g_adt, const T* g_gamma, const T* g_eta, const T* g_DT,
                           T* d_dt, T* d_a, T* d_trap);

// ---- Mamba-3 angle steps: ω = π·tanh(ang)·DT per (token, head, pair) (cuda/mamba3_angles.cu) ----
// DT, dDT [rows, H]; ang [rows, S] (row i at ang + i·ang_stride: in_proj's columns in place); scaled and
// dang [rows, S] (scaled = π·tanh(ang), the forward's, which the backward reads); ω, dω [rows, H, S].
struct AngleLayout {
  int64_t rows, H, S;
  int64_t ang_stride;
};

template <class T>
void mamba3_angle_steps_forward(const AngleLayout& s, const T* DT, const T* ang, T* omega, T* scaled);

// The backward reads the forward's `scaled` (contiguous: ang_stride is not read).
template <class T>
void mamba3_angle_steps_backward(const AngleLayout& s, const T* DT, const T* scaled, const T* d_omega, T* dDT,
                                 T* dang);

// ---- Mamba-3 MIMO values: v_r = x ⊙ ψ_r (cuda/mamba3_values.cu; math: ssm/mamba3_values.h) ----
// x [rows, H, P] (row i at x + i·x_stride: a column range of in_proj's output, read in place), psi [H, R, P],
// v and dv [rows, R, H, P], dx [rows, H, P].
struct ValuesLayout {
  int64_t rows, R, H, P;
  int64_t x_stride;
};

template <class T>
void mamba3_values_forward(const ValuesLayout& s, const T* x, const T* psi, T* v);

// dv → dx (fully written) and dpsi_partial [param_row_chunks(rows), H, R, P], per chunk of rows the sums of
// dψ (the caller adds the chunks).
template <class T>
void mamba3_values_backward(const ValuesLayout& s, const T* x, const T* psi, const T* dv, T* dx, T* dpsi_partial);

// ---- Mamba-3 output gate: D skip, SiLU gate, rank contraction (cuda/mamba3_gate.cu) ----
// y [rows, R, H, P], x, z [rows, H, P] (row i at x + i·x_stride, z + i·z_stride: column ranges of in_proj's
// output read in place), D [H], psi/zeta/phi [H, R, P] or all null (SISO: R = 1, read as 1).
struct GateLayout {
  int64_t rows, R, H, P;
  int64_t x_stride, z_stride;
};

template <class T>
void mamba3_gate_forward(const GateLayout& s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                         const T* zeta, const T* phi, T* out);

// The chunks of rows of the gate's backward: ~16 rows each, as its threads take a chunk of one (h, p), so
// that even the ~1M model's [32768 rows, 20 heads, 16] gives the GPU ~650K threads.
inline int64_t gate_row_chunks(int64_t rows) { return std::clamp<int64_t>(rows / 16, 1, 4096); }

// dout [rows, H, P] → dy, dx, dz (fully written) and param_partial [gate_row_chunks(rows), 4, H, R, P] holding
// per chunk of rows the sums for dψ, dζ, dφ and the (r, p) terms of dD (slot 3; the caller sums it over r, p).
template <class T>
void mamba3_gate_backward(const GateLayout& s, const T* y, const T* x, const T* z, const T* D, const T* psi,
                          const T* zeta, const T* phi, const T* dout, T* dy, T* dx, T* dz, T* param_partial);

// ---- Mamba-3 diagonal correction of the chunked scan (cuda/mamba3_diag.cu) ----
// Per token t and head h, with E = q̃ k̃ᵀ over the R ranks (R×R, R ≤ kMaxDiagRank):
//   forward   y_{t,r} −= η_next,t Σ_{r'} E_{r,r'} v_{t,r'}                            (y updated in place)
//   backward  with dE = −η_next dY Vᵀ:  dq̃ += dE k̃,  dk̃ += dEᵀ q̃,  dv += −η_next Eᵀ dY  (added in place),
//             dη_next = −Σ E ⊙ (dY Vᵀ)                                                   (overwritten)
// q, k, dq, dk [rows, R, H, N]; v, y, dy, dv [rows, R, H, P]; eta_next, d_eta_next [rows, H]; rows = batch·L.
struct DiagLayout {
  int64_t rows, R, H, N, P;
};
inline constexpr int64_t kMaxDiagRank = 8;

template <class T>
void mamba3_diag_forward(const DiagLayout& s, const T* q, const T* k, const T* v, const T* eta_next, T* y);

template <class T>
void mamba3_diag_backward(const DiagLayout& s, const T* q, const T* k, const T* v, const T* eta_next, const T* dy,
                          T* dq, T* dk, T* dv, T* d_eta_next);

// ---- Mamba-3 decoding step: the mixer between in_proj and out_proj for one token (cuda/mamba3_step.cu) ----
// rows [batch, width]: each sequence's in_proj output [z | x | B | C | dd_dt | dd_A | trap | ang] with z, x
// [H, P], B, C [R, G, N], dd_dt, dd_A, trap [H], ang [S]. Parameters dt_bias, D [H], B_bias, C_bias [H, R, N],
// w_b, w_c [N], psi/zeta/phi [H, R, P] or all null (SISO), w_norm [H·P] the output-projection norm's weight
// (null: no norm). The cache (angle [batch, H, S], state [batch, H, P, N], k_cache [batch, R, H, N], x_cache
// [batch, H, P]) is read and updated in place; out [batch, H·P].
template <class T>
struct Mamba3StepArgs {
  int64_t batch, H, P, N, R, G, S, width;
  bool half_split;
  double eps_b, eps_c, A_floor, eps_norm;
  const T *rows, *dt_bias, *b_bias, *c_bias, *d_skip, *w_b, *w_c, *psi, *zeta, *phi, *w_norm;
  T *angle, *state, *k_cache, *x_cache, *out;
};
template <class T>
void mamba3_decode_step(const Mamba3StepArgs<T>& args);

// ---- Mamba-2 decoding step: conv step + SiLU, SSD recurrence (cuda/mamba2_step.cu) ----
// rows [batch, width] (in_proj's output for one token: [z | xBC | dt]), w [C, 1, K], conv_bias [C] or null,
// dt_bias, A_log, D [H]; conv_state [batch, K, C] and state [batch, H, P, N] advanced in place;
// xbc [batch, C] scratch (xBC' after the conv); out [batch, d_inner] = h C + D x.
template <class T>
struct Mamba2StepArgs {
  int64_t batch, H, P, N, G, K, C, width, d_inner;
  const T *rows, *w, *conv_bias, *dt_bias, *A_log, *d_skip;
  T *conv_state, *state, *xbc, *out;
};
template <class T>
void mamba2_decode_step(const Mamba2StepArgs<T>& args);

// ---- optimiser updates, one launch for a whole table of tensors (cuda/optim_kernels.cu) ----
template <class T>
struct AdamWSlot {
  T* param;
  const T* grad;
  T* exp_avg;
  T* exp_avg_sq;
  int64_t numel;
};
struct AdamWHyper {
  double lr, weight_decay, beta1, beta2, eps, bias_correction1, bias_correction2;  // 1 − βᵗ
};
template <class T>
void adamw_multi_tensor(const AdamWSlot<T>* slots, int64_t count, const AdamWHyper& hyper);

template <class T>
struct SgdSlot {
  T* param;
  const T* grad;
  T* momentum_buffer;  // null without momentum
  int64_t numel;
  int64_t first_step;  // 1: the buffer starts as the gradient
};
struct SgdHyper {
  double lr, weight_decay, momentum;
};
template <class T>
void sgd_multi_tensor(const SgdSlot<T>* slots, int64_t count, const SgdHyper& hyper);

}  // namespace ssm::cuda
