// autograd/autocast.cpp — see autocast.h.
#include "autograd/autocast.h"

#include "autograd/functions.h"

namespace ssm {

namespace {
thread_local bool autocast_enabled = false;

// Autocast's rule: float32 products go through bfloat16 while it is on (float64 stays exact: gradient checks).
bool through_bf16(const Tensor& a, const Tensor& b) {
  return autocast_enabled && a.dtype() == DType::Float32 && b.dtype() == DType::Float32;
}
}  // namespace

bool Autocast::enabled() { return autocast_enabled; }
void Autocast::set_enabled(bool on) { autocast_enabled = on; }

Tensor autocast_matmul(const Tensor& a, const Tensor& b) {
  return through_bf16(a, b) ? bf16_matmul(a, b) : matmul(a, b);
}

std::vector<Tensor> autocast_matmul_parts(const Tensor& a, const Tensor& b, const std::vector<int64_t>& sizes) {
  return matmul_parts(a, b, sizes, through_bf16(a, b));
}

}  // namespace ssm
