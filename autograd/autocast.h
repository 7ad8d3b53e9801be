// autograd/autocast.h — mixed precision for the matmuls: bfloat16 operands, float32 everything else.
//
// Inside an AutocastGuard scope (per thread, like NoGradGuard), the layers' matmuls (nn::Linear, the tied
// LM head) go through autocast_matmul: both operands are rounded to bfloat16, multiplied with float32
// accumulation, and the product — rounded to bfloat16, as the GPU's bf16 GEMM returns it — comes back
// as float32. The weights stay float32 (the optimiser updates these "master" copies); the casts are
// autograd ops, so the backward's matmuls run on bfloat16 gradients and each weight's gradient arrives
// in float32. Norms, the scans, their states, the loss and every reduction stay float32.
//
// Why no loss scaling: float16 has 5 exponent bits, so gradients below ~6e-8 flush to zero and loss
// scaling shifts them into range; bfloat16 keeps float32's 8 exponent bits (~1e-38 to 3e38) and gives
// up mantissa instead (8 bits, ~3 significant digits), so small gradients are representable as they are.
//
// On a GPU the bf16 product is cuBLAS's (tensor cores). The CPU has no bf16 GEMM: it multiplies the
// rounded operands in float32 and rounds the product, the same numbers up to the order of the sums, so
// autocast runs (and is tested) on either device.
#pragma once
#include "tensor/tensor.h"

namespace ssm {

class Autocast {
 public:
  static bool enabled();
  static void set_enabled(bool on);
};

class AutocastGuard {
 public:
  explicit AutocastGuard(bool on = true) : previous_(Autocast::enabled()) { Autocast::set_enabled(on); }
  ~AutocastGuard() { Autocast::set_enabled(previous_); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool previous_;
};

// matmul(a, b), through bfloat16 when autocast is on and a and b are float32 (float64 stays exact:
// gradient checks run in it).
Tensor autocast_matmul(const Tensor& a, const Tensor& b);

}  // namespace ssm
