// cuda/context.h — the GPU's queue of work and the library handles bound to it.
//
// Every kernel, copy and cuBLAS call of the backend goes on one stream per process (this build runs
// on one GPU, cuda:0). One stream keeps the order of work the order of the program, so the caching
// allocator can hand a freed block to the next op at once: any kernel that still reads it was queued
// before the kernel that writes it. The stream is non-blocking (it does not wait for the legacy
// default stream) so its work can be captured into a CUDA graph.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace ssm::cuda {

int device_count();            // 0 when there is no GPU or no driver (never throws)
cudaStream_t stream();         // the backend's stream (created on first use)
cublasHandle_t cublas();       // cuBLAS, bound to stream()
void synchronize();            // wait for everything queued on stream()

// A scratch buffer for cuBLAS that lives as long as the process (graph capture needs a
// workspace that is not allocated during capture).
void* cublas_workspace();
size_t cublas_workspace_bytes();

// Matmuls in float32 may use TF32 tensor cores (10-bit mantissa inputs, float32 accumulation):
// off by default; SSM_TF32=1 in the environment, or set_tf32(true), turns it on.
void set_tf32(bool on);
bool tf32();

}  // namespace ssm::cuda
