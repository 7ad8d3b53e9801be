// cuda/nn_fused.h — raw-pointer entry points of the fused GPU kernels behind nn/'s RMSNorm (plain and
// gated), causal conv1d (+ SiLU) and softmax cross-entropy (the math is written out beside their CPU loops,
// nn/rms_norm.cpp, nn/conv1d.cpp and nn/cross_entropy.cpp; this header only fixes the layouts). Device pointers to contiguous row-major arrays, queued on the
// backend stream; nothing waits for the host. Per-block partial sums are summed by the caller with
// op::sum (fixed order, no atomics: the same bits on every run). Instantiated for float and double.
#pragma once
#include <cstdint>

namespace ssm::cuda {

// ---- RMSNorm over groups of n features, with an optional SiLU gate (cuda/rms_norm.cu) ----
// x, y [rows, D] with D = G·n, w [D], r [rows, G] (1/rms of each group). z [rows, D] is the gate, or null
// for none; gate_before_norm says whether it multiplies x before the norm or the output after it.
template <class T>
void rms_norm_forward(int64_t rows, int64_t D, int64_t n, double eps, const T* x, const T* z, bool gate_before_norm,
                      const T* w, T* r, T* y);

// Row blocks the weight's gradient is split into: dw_partial is [rms_norm_row_blocks(rows), D].
int64_t rms_norm_row_blocks(int64_t rows);

// dy [rows, D] → dx, dz [rows, D] and dw_partial (each may be null, dz is without a gate; written in full
// when not).
template <class T>
void rms_norm_backward(int64_t rows, int64_t D, int64_t n, const T* x, const T* z, bool gate_before_norm,
                       const T* w, const T* r, const T* dy, T* dx, T* dz, T* dw_partial);

// ---- depthwise causal conv1d, optionally with SiLU (cuda/conv1d.cu) ----
// x, out [rows = B·L, C] (sequences of L rows), taps [K, C] (the weight w[c, 0, j] at taps[j·C + c]),
// bias [C] or null. K ≤ 8 and rows·C < 2³¹ (clear errors otherwise).
template <class T>
void causal_conv1d_forward(int64_t rows, int64_t L, int64_t C, int64_t K, const T* x, const T* taps, const T* bias,
                           bool silu, T* out);

// Row blocks the weight's and bias's gradients are split into: partial is
// [causal_conv1d_row_blocks(rows), K + 1, C], the taps' sums in rows 0..K−1 and the bias's in row K.
int64_t causal_conv1d_row_blocks(int64_t rows);

// g [rows, C] → partial (written in full) and dx (may be null). With SiLU, g_pre [rows, C] receives the
// gradient reaching the pre-activation (dx is computed from it); without, g_pre is unused.
template <class T>
void causal_conv1d_backward(int64_t rows, int64_t L, int64_t C, int64_t K, const T* x, const T* taps, const T* bias,
                            bool silu, const T* g, T* g_pre, T* partial, T* dx);

// ---- softmax cross-entropy over rows of V logits (cuda/cross_entropy.cu) ----
// z [N, V], target [N]. Per row: kept = 0 where target == ignore_index (and where it is out of range:
// that is recorded and reported as an error at the host's next wait, like the index ops), else 1;
// lse = logsumexp(z_i) and row_loss = lse − z_i[target] on kept rows, 0 on the others.
template <class T>
void cross_entropy_forward(int64_t N, int64_t V, const T* z, const int64_t* target, int64_t ignore_index, T* lse,
                           T* row_loss, T* kept);

// dz_i = g · kept_i / max(count, 1) · (softmax(z_i) − onehot(target_i)); g and count are device scalars
// (the loss's incoming gradient and Σ kept), read by the kernel so the host never waits for them.
template <class T>
void cross_entropy_backward(int64_t N, int64_t V, const T* z, const int64_t* target, const T* lse, const T* kept,
                            const T* count, const T* g, T* dz);

}  // namespace ssm::cuda
