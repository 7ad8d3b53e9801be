// autograd/autocast.cpp — see autocast.h.
#include "autograd/autocast.h"

#include "autograd/functions.h"

namespace ssm {

namespace {
thread_local bool autocast_enabled = false;
}

bool Autocast::enabled() { return autocast_enabled; }
void Autocast::set_enabled(bool on) { autocast_enabled = on; }

Tensor autocast_matmul(const Tensor& a, const Tensor& b) {
  if (!Autocast::enabled() || a.dtype() != DType::Float32 || b.dtype() != DType::Float32) return matmul(a, b);
  return bf16_matmul(a, b);
}

}  // namespace ssm
