// nn/functional.h — the fused, differentiable building blocks the layers are made of.
//
// Each is an autograd Function (autograd/node.h) whose backward is written by hand next to its
// forward (in the .cpp named after it), so a norm or a loss is one node in the graph instead of
// a dozen. Each has a composed twin in the tests (built from the elementwise autograd ops) that
// its values and gradients are compared with, plus a float64 gradcheck.
//   rms_norm.cpp       rms_norm, gated_rms_norm
//   cross_entropy.cpp  cross_entropy
//   conv1d.cpp         causal_conv1d
//   dropout.cpp        dropout
// SiLU, softplus and sigmoid are the autograd functions ssm::silu / ssm::softplus / ssm::sigmoid.
#pragma once
#include <cstdint>

#include "autograd/functions.h"
#include "tensor/random.h"

namespace ssm::nn {

// y = x · (mean(x²) + eps)^(-1/2) · w, the mean taken over consecutive groups of `group_size`
// channels of the last dim (group_size 0 = the whole last dim). x [.., D], w [D].
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-5, int64_t group_size = 0);

// The Mamba output norm (spec §1, "Gated RMSNorm"), z the gate, same shape as x:
//   norm_before_gate = false:  y = rms_norm(x · silu(z)) · w
//   norm_before_gate = true:   y = rms_norm(x) · w · silu(z)
Tensor gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& weight, double eps = 1e-5,
                      int64_t group_size = 0, bool norm_before_gate = false);

// Mean cross-entropy of logits [.., V] against integer targets [..]; rows whose target equals
// ignore_index count for nothing (loss masking). Computed as logsumexp(row) - row[target] so no
// exp overflows. If every row is ignored the loss is 0 with zero gradient.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);

// Depthwise causal convolution along time: x [B, L, C], weight [C, 1, K] (the official layout),
// bias [C] or undefined:  out[b, t, c] = bias[c] + Σ_j weight[c, 0, j] · x[b, t - K + 1 + j, c],
// with zeros before t = 0; then SiLU if `silu` (Mamba-2's conv and activation as one node).
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu = false);

// Inverted dropout: in training, zero each element with probability p and scale the rest by
// 1/(1-p); the identity otherwise.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace ssm::nn
