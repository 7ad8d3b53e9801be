// ssm/fused_device.h — which devices the hand-fused ops (mamba3_keys, mamba3_output_gate) run on.
//
// Each op has a CPU loop and, in a build with CUDA (SSM_WITH_CUDA), a kernel in cuda/ (cuda/ssm_fused.h)
// used when its tensors are on a CUDA device. In a build without CUDA a device tensor cannot be made,
// but the check still says clearly what went wrong rather than reading device memory on the host.
#pragma once
#include <initializer_list>

#include "tensor/tensor.h"

namespace ssm {

// Throws unless every defined tensor is on `first`'s device and that device has a kernel in this build.
inline void check_fused_device(const char* op, const Tensor& first, std::initializer_list<Tensor> others) {
  const Device device = first.device();
  for (const Tensor& t : others)
    SSM_CHECK(!t.defined() || t.device() == device, op, ": ", t.describe(), " is not on ", device.str(),
              " like the op's first input");
#if SSM_WITH_CUDA
  SSM_CHECK(device.is_cpu() || device.kind == DeviceKind::CUDA, op, ": no kernel for ", device.str());
#else
  SSM_CHECK(device.is_cpu(), op, ": ", device.str(), " tensors need a build with CUDA (SSM_CUDA=ON)");
#endif
}

}  // namespace ssm
