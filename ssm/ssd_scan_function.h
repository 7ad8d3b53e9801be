// ssm/ssd_scan_function.h — the autograd plumbing the two SSD scans share (internal to ssm/).
//
// Both scans take (x, dt, A, B, C, D, initial_state), save (x, dt, A, B, C, D, states) and return
// (y, final state); they differ only in their loops over raw memory, which a Kernel supplies:
//   static constexpr const char* name;
//   static int64_t stored_states(const SsdSizes&);  // P×N states kept per (batch, head); the last is final
//   template <class T> static void forward(const SsdSizes&, x, dt, A, B, C, D, h0, y, states);
//   template <class T> static void backward(const SsdSizes&, x, dt, A, B, C, D, states, dy, dh_final,
//                                           dx, ddt, dA, dB, dC, dD, dh0);   // gradients arrive zeroed
//   static constexpr bool runs_on_cuda;  // true: it also has the tensor-level GPU path
//   static ScanForward cuda_forward(const SsdSizes&, x, dt, A, B, C, D, h0);          // {y, states}
//   static std::vector<Tensor> cuda_backward(const SsdSizes&, x, dt, A, B, C, D, states, dy, dh_final);
// All tensors are contiguous, row-major, in the shapes of ssm/ssd_scan.h, and on one device: the raw-memory
// loops run for CPU tensors, the cuda_* functions (when the Kernel has them) for CUDA tensors.
#pragma once
#include <memory>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "ssm/ssd_scan.h"
#include "tensor/ops.h"

namespace ssm {

struct SsdSizes {
  int64_t batch, L, H, P, G, N;
  int64_t Q, nchunks;  // chunk length and count (the sequential reference uses Q = 1)
  bool tf32_products = false;  // autocast was on at the forward: the GPU's chunk products in single TF32
  int64_t group_of(int64_t h) const { return h / (H / G); }
};

template <class Kernel>
class SsdScanFunction final : public Function {
 public:
  // Made when the scan is called, inside the forward's autocast scope; the backward runs after the scope
  // has closed, so the precision is read once, here, and forward and backward multiply alike.
  explicit SsdScanFunction(int64_t chunk_size)
      : Function(Kernel::name), chunk_size_(chunk_size), tf32_products_(Autocast::enabled()) {}

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor x = in[0].contiguous(), dt = in[1].contiguous(), A = in[2].contiguous(), B = in[3].contiguous(),
                 C = in[4].contiguous(), D = in[5].contiguous();
    const SsdSizes s = sizes(x, B);
    const Tensor h0 =
        in[6].defined() ? in[6].contiguous() : Tensor::zeros({s.batch, s.H, s.P, s.N}, x.dtype(), x.device());
    const int64_t kept = Kernel::stored_states(s);
    if constexpr (Kernel::runs_on_cuda) {
      if (!x.device().is_cpu()) {
        const auto out = Kernel::cuda_forward(s, x, dt, A, B, C, D, h0);
        save_for_backward({x, dt, A, B, C, D, out.states});
        return {out.y, out.states.select(1, kept - 1).contiguous()};
      }
    }
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    Tensor states = Tensor::empty({s.batch, kept, s.H, s.P, s.N}, x.dtype());
    dispatch_float(x.dtype(), Kernel::name, [&](auto tag) {
      using T = decltype(tag);
      Kernel::template forward<T>(s, x.data<T>(), dt.data<T>(), A.data<T>(), B.data<T>(), C.data<T>(), D.data<T>(),
                                  h0.data<T>(), y.data<T>(), states.data<T>());
    });
    save_for_backward({x, dt, A, B, C, D, states});
    return {y, states.select(1, kept - 1).contiguous()};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const auto saved_tensors = saved();
    const Tensor &x = saved_tensors[0], &dt = saved_tensors[1], &A = saved_tensors[2], &B = saved_tensors[3],
                 &C = saved_tensors[4], &D = saved_tensors[5], &states = saved_tensors[6];
    const SsdSizes s = sizes(x, B);
    const Tensor dy = grad_out[0].contiguous(), dh_final = grad_out[1].contiguous();
    if constexpr (Kernel::runs_on_cuda) {
      if (!x.device().is_cpu()) {
        std::vector<Tensor> grads = Kernel::cuda_backward(s, x, dt, A, B, C, D, states, dy, dh_final);
        if (!needs_input_grad(6)) grads[6] = Tensor();
        return grads;
      }
    }
    std::vector<Tensor> grads = {op::zeros_like(x), op::zeros_like(dt), op::zeros_like(A), op::zeros_like(B),
                                 op::zeros_like(C), op::zeros_like(D),
                                 Tensor::zeros({s.batch, s.H, s.P, s.N}, x.dtype())};
    dispatch_float(x.dtype(), Kernel::name, [&](auto tag) {
      using T = decltype(tag);
      Kernel::template backward<T>(s, x.data<T>(), dt.data<T>(), A.data<T>(), B.data<T>(), C.data<T>(), D.data<T>(),
                                   states.data<T>(), dy.data<T>(), dh_final.data<T>(), grads[0].data<T>(),
                                   grads[1].data<T>(), grads[2].data<T>(), grads[3].data<T>(), grads[4].data<T>(),
                                   grads[5].data<T>(), grads[6].data<T>());
    });
    if (!needs_input_grad(6)) grads[6] = Tensor();
    return grads;
  }

 private:
  SsdSizes sizes(const Tensor& x, const Tensor& B) const {
    const int64_t L = x.size(1);
    return {x.size(0), L, x.size(2), x.size(3), B.size(2), B.size(3), chunk_size_, (L + chunk_size_ - 1) / chunk_size_,
            tf32_products_};
  }
  int64_t chunk_size_;
  bool tf32_products_;
};

template <class Kernel>
ScanOutput run_ssd_scan(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                        const Tensor& D, const Tensor& initial_state, int64_t chunk_size) {
  check_ssd_inputs(x, dt, A, B, C, D, initial_state);
  SSM_CHECK(Kernel::runs_on_cuda || x.device().is_cpu(), Kernel::name, " runs on the CPU only, got ", x.describe(),
            " (ssd_scan_chunked runs on CUDA devices too)");
  SSM_CHECK(chunk_size > 0, Kernel::name, ": chunk_size must be positive, got ", chunk_size);
  const auto out = apply(std::make_shared<SsdScanFunction<Kernel>>(chunk_size), {x, dt, A, B, C, D, initial_state});
  return {out[0], out[1]};
}

}  // namespace ssm
