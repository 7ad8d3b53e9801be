// cuda/nn_fused.h — raw-pointer entry points of the fused GPU kernels behind nn/'s RMSNorm and softmax
// cross-entropy (the math is written out beside their CPU loops, nn/rms_norm.cpp and nn/cross_entropy.cpp;
// this header only fixes the layouts). Device pointers to contiguous row-major arrays, queued on the
// backend stream; nothing waits for the host. Per-block partial sums are summed by the caller with
// op::sum (fixed order, no atomics: the same bits on every run). Instantiated for float and double.
#pragma once
#include <cstdint>

namespace ssm::cuda {

// ---- RMSNorm over groups of n features (cuda/rms_norm.cu) ----
// x, y [rows, D] with D = G·n, w [D], r [rows, G] (1/rms of each group).
template <class T>
void rms_norm_forward(int64_t rows, int64_t D, int64_t n, double eps, const T* x, const T* w, T* r, T* y);

// Row blocks the weight's gradient is split into: dw_partial is [rms_norm_row_blocks(rows), D].
int64_t rms_norm_row_blocks(int64_t rows);

// dy [rows, D] → dx [rows, D] and dw_partial (either may be null; written in full when not).
template <class T>
void rms_norm_backward(int64_t rows, int64_t D, int64_t n, const T* x, const T* w, const T* r, const T* dy, T* dx,
                       T* dw_partial);

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
