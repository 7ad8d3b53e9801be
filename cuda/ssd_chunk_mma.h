// cuda/ssd_chunk_mma.h — the chunked SSD's per-chunk kernels on tensor cores (cuda/ssd_chunk_mma.cu).
// cuda/ssd_chunk.cu runs them in place of its CUDA-core kernels for the float32 problems they take, and
// runs the passes between chunks itself. Same contracts as there: see cuda/ssm_kernels.h.
#pragma once
#include "cuda/ssm_kernels.h"

namespace ssm::cuda::ssd_chunk_mma {

// Whether this device has tf32 tensor cores (sm_80 or newer).
bool device_has_tf32();

// Whether these kernels take the problem on this device: tf32 tensor cores, N and P multiples of 16,
// one chunk's operands within a block's shared memory, and the state buffers (`states`, and the backward's
// scratch of dS, which the caller allocates whole) 32-byte aligned.
bool takes(const ChunkScanSizes& z, const float* states);

// Forward: S^loc_c into the slot of S_{c+1} and decay[s, c] = T_c; then Y (see cuda/ssd_chunk.cu).
void chunk_state(const ChunkScanInputs<float>& in, float* states, float* decay);
void chunk_output(const ChunkScanInputs<float>& in, const float* states, float* y, SeqLayout y_layout,
                  bool accumulate);

// Backward: Σ_i e^{cs_i} dY_i Q_iᵀ into dS slot c and decay[s, c] = T_c; then dQ, dK, dV and da.
void chunk_dstate(const ChunkScanInputs<float>& in, const float* dy, SeqLayout dy_layout, float* dstates,
                  float* decay);
void chunk_grads(const ChunkScanInputs<float>& in, const float* states, const float* dstates, const float* dy,
                 SeqLayout dy_layout, const ChunkScanGrads<float>& grads);

}  // namespace ssm::cuda::ssd_chunk_mma
