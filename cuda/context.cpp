// cuda/context.cpp — see context.h.
#include "cuda/context.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cuda/check.h"

namespace ssm::cuda {

const char* cublas_status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED (cuBLAS could not start: no GPU or driver?)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED (out of GPU memory)";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE (a size, stride or leading dimension is invalid)";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH (this GPU lacks the feature)";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED (the kernel failed to run)";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED (this combination of types/layouts)";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cuBLAS status";
}

namespace {

struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  void* workspace = nullptr;
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // what cuBLAS recommends for Hopper

  Context() {
    SSM_CUDA_CHECK(cudaSetDevice(0));
    SSM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    SSM_CUBLAS_CHECK(cublasCreate(&cublas));
    SSM_CUBLAS_CHECK(cublasSetStream(cublas, stream));
    SSM_CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
    SSM_CUBLAS_CHECK(cublasSetWorkspace(cublas, workspace, kWorkspaceBytes));
  }
  // Never destroyed (like the CPU backend): tensors freed during static destruction still need it.
};

Context& context() {
  static Context* const ctx = new Context();
  return *ctx;
}

bool tf32_from_environment() {
  const char* value = std::getenv("SSM_TF32");
  return value != nullptr && std::strcmp(value, "0") != 0 && value[0] != '\0';
}
bool tf32_enabled = tf32_from_environment();

}  // namespace

int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky "no device"/"no driver" status
      return 0;
    }
    return n;
  }();
  return count;
}

cudaStream_t stream() { return context().stream; }
cublasHandle_t cublas() { return context().cublas; }
void* cublas_workspace() { return context().workspace; }
size_t cublas_workspace_bytes() { return Context::kWorkspaceBytes; }
void synchronize() { SSM_CUDA_CHECK(cudaStreamSynchronize(stream())); }

void set_tf32(bool on) { tf32_enabled = on; }
bool tf32() { return tf32_enabled; }

}  // namespace ssm::cuda
