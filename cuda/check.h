// cuda/check.h — every CUDA runtime and cuBLAS call goes through one of these checks.
//
// A failed call throws ssm::Error naming the call as written, where it was made and the library's
// own explanation, e.g.
//   cudaMalloc(&block, bytes) failed at cuda/caching_allocator.cpp:41: out of memory (cudaErrorMemoryAllocation)
// Kernel launches are checked with SSM_CUDA_CHECK_LAUNCH() right after the <<<...>>> line: a bad
// launch configuration is reported there, not at some later unrelated call.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "tensor/error.h"

namespace ssm::cuda {

const char* cublas_status_name(cublasStatus_t status);

}  // namespace ssm::cuda

#define SSM_CUDA_CHECK(call)                                                                                  \
  do {                                                                                                        \
    const cudaError_t ssm_cuda_status = (call);                                                               \
    if (ssm_cuda_status != cudaSuccess)                                                                       \
      throw ::ssm::Error(::ssm::detail::concat(#call, " failed at ", __FILE__, ":", __LINE__, ": ",           \
                                               cudaGetErrorString(ssm_cuda_status), " (",                     \
                                               cudaGetErrorName(ssm_cuda_status), ")"));                      \
  } while (0)

#define SSM_CUBLAS_CHECK(call)                                                                                \
  do {                                                                                                        \
    const cublasStatus_t ssm_cublas_status = (call);                                                          \
    if (ssm_cublas_status != CUBLAS_STATUS_SUCCESS)                                                           \
      throw ::ssm::Error(::ssm::detail::concat(#call, " failed at ", __FILE__, ":", __LINE__, ": ",           \
                                               ::ssm::cuda::cublas_status_name(ssm_cublas_status)));          \
  } while (0)

#define SSM_CUDA_CHECK_LAUNCH() SSM_CUDA_CHECK(cudaGetLastError())
