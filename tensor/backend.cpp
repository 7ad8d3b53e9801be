// tensor/backend.cpp — the registry from device kind to backend.
//
// The CPU backend is always present (tensor/cpu/). Other backends register themselves at static
// initialisation time from their own library, so tensor/ never includes their headers.
#include "tensor/backend.h"

#include "tensor/error.h"

namespace ssm {

Backend& cpu_backend();  // tensor/cpu/cpu_backend.cpp

namespace {
Backend* registered_backends[2] = {nullptr, nullptr};
}

void register_backend(DeviceKind kind, Backend* backend) { registered_backends[static_cast<int>(kind)] = backend; }

Backend& backend_for(Device device) {
  if (device.kind == DeviceKind::CPU) return cpu_backend();
  Backend* backend = registered_backends[static_cast<int>(device.kind)];
  SSM_CHECK(backend != nullptr, "device ", device.str(),
            " is not available: this binary was built without its backend (configure with -DSSM_CUDA=ON on a machine with nvcc)");
  return *backend;
}

}  // namespace ssm
