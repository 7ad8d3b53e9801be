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
  const Tensor a16 = to_dtype(a, DType::BFloat16), b16 = to_dtype(b, DType::BFloat16);
  if (!a.device().is_cpu()) return to_dtype(matmul(a16, b16), DType::Float32);  // cuBLAS bf16, float32 accumulation
  // the CPU: float32 products of the rounded operands, the product rounded as the GPU returns it
  const Tensor product = matmul(to_dtype(a16, DType::Float32), to_dtype(b16, DType::Float32));
  return to_dtype(to_dtype(product, DType::BFloat16), DType::Float32);
}

}  // namespace ssm
