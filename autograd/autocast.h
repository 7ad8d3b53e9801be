// autograd/autocast.h — mixed precision for the matmuls: bfloat16 operands, float32 everything else.
//
// Inside an AutocastGuard scope (per thread, like NoGradGuard), the layers' matmuls (nn::Linear, the tied
// LM head) go through autocast_matmul: both operands are rounded to bfloat16 and multiplied with float32
// accumulation into a float32 product (cuBLAS's mixed GEMM: bf16 A and B, float32 C, so no cast of the
// product follows). Backward, the incoming gradient is rounded to bfloat16 and the two products give float32
// gradients the same way. The weights stay float32 (the optimiser updates these "master" copies). Norms, the
// scans, their states, the loss and every reduction stay float32. (PyTorch's autocast returns the product
// in bfloat16; keeping it float32 costs nothing here, saves a cast each way, and is the more precise.)
//
// Why no loss scaling: float16 has 5 exponent bits, so gradients below ~6e-8 flush to zero and loss
// scaling shifts them into range; bfloat16 keeps float32's 8 exponent bits (~1e-38 to 3e38) and gives
// up mantissa instead (8 bits, ~3 significant digits), so small gradients are representable as they are.
//
// On a GPU the bf16 product is cuBLAS's (tensor cores). The CPU has no bf16 GEMM: it multiplies the
// rounded operands in float32, the same numbers up to the order of the sums, so autocast runs (and is
// tested) on either device. The node is autograd's bf16_matmul (autograd/functions_linalg.cpp).
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
// split(autocast_matmul(a, b), sizes, -1) for a weight b, as one node (matmul_parts, autograd/functions.h).
std::vector<Tensor> autocast_matmul_parts(const Tensor& a, const Tensor& b, const std::vector<int64_t>& sizes);

}  // namespace ssm
