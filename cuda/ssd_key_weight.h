// cuda/ssd_key_weight.h — the chunked SSD's optional key weights (cuda/ssm_kernels.h, ChunkScanInputs::
// k_weight): K_{t,r} = w_t k_{t,r}, with w one value per step and head (Mamba-3's w_t = γ_t + η_{t+1}).
//
// The tensor-core kernels apply the weights inside their products, so K is never written out, and give
// ∂ℒ/∂k and ∂ℒ/∂w themselves (cuda/ssd_chunk_mma.cu). The CUDA-core kernels (float64, and heads the tensor
// cores do not take) read K from memory: form_weighted_keys writes it once into a scratch for them. Their
// backward yields dK = ∂ℒ/∂K, and key_weight_grads maps it back in one pass over the keys:
//   dk_{t,r} = w_t dK_{t,r},   dw_t = Σ_r <dK_{t,r}, k_{t,r}>.
#pragma once
#include "cuda/ssm_kernels.h"

namespace ssm::cuda {

// The weighted keys of every sequence into `keys`, laid out [batch, heads, L·R, N] (weighted_keys_layout).
template <class T>
void form_weighted_keys(const ChunkScanInputs<T>& in, T* keys);
SeqLayout weighted_keys_layout(const ChunkScanSizes& z);

// grads.dk holds dK on entry; it leaves holding dk, and grads.dw receives dw.
template <class T>
void key_weight_grads(const ChunkScanInputs<T>& in, const ChunkScanGrads<T>& grads);

}  // namespace ssm::cuda
