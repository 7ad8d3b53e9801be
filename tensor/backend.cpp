// tensor/backend.cpp — from a device to the backend that runs it.
//
// The CPU backend is always present (tensor/cpu/). The CUDA backend (cuda/) is compiled into the
// same library when the build found nvcc (SSM_WITH_CUDA); tensor/ only declares its entry point.
#include "tensor/backend.h"

#include "tensor/error.h"

namespace ssm {

Backend& cpu_backend();  // tensor/cpu/cpu_backend.cpp
#if SSM_WITH_CUDA
Backend& cuda_backend();  // cuda/cuda_backend.cpp
#endif

namespace {
Backend* backend_or_null(DeviceKind kind) {
  if (kind == DeviceKind::CPU) return &cpu_backend();
#if SSM_WITH_CUDA
  return &cuda_backend();
#else
  return nullptr;
#endif
}
}  // namespace

bool device_available(Device device) {
  const Backend* backend = backend_or_null(device.kind);
  return backend != nullptr && device.index >= 0 && device.index < backend->device_count();
}

Backend& backend_for(Device device) {
  Backend* backend = backend_or_null(device.kind);
  SSM_CHECK(backend != nullptr, "device ", device.str(),
            " is not available: this binary was built without its backend (configure on a machine with nvcc, "
            "or with -DSSM_CUDA=ON)");
  SSM_CHECK(device.index >= 0 && device.index < backend->device_count(), "device ", device.str(),
            " is not available: this machine has ", backend->device_count(), " ", backend->name(),
            " device(s)", backend->device_count() == 0 ? " (no GPU, or no NVIDIA driver)" : "");
  return *backend;
}

}  // namespace ssm
