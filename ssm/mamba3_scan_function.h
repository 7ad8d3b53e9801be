// ssm/mamba3_scan_function.h — the autograd plumbing the Mamba-3 scans share (internal to ssm/).
//
// Every implementation takes (q, k, v, adt, gamma, eta, initial_state, k_prev, v_prev), saves them with
// the states it keeps, and returns (y, final state); they differ only in their loops over raw memory,
// which a Kernel supplies:
//   static constexpr const char* name;
//   static int64_t stored_states(const Mamba3Sizes&);  // P×N states kept per (batch, head); the last is h_{L−1}
//   template <class T> static void forward(const Mamba3Sizes&, q, k, v, adt, gamma, eta, h0, k_prev, v_prev,
//                                          y, states);
//   template <class T> static void backward(const Mamba3Sizes&, q, k, v, adt, gamma, eta, h0, k_prev, v_prev,
//                                           states, dy, dh_final,
//                                           dq, dk, dv, dadt, dgamma, deta, dh0, dk_prev, dv_prev);
//   static constexpr bool runs_on_cuda;  // true: it also has the tensor-level GPU path
//   static constexpr bool writes_every_gradient;  // true: its backward needs no zeroed gradients
//   static ScanForward cuda_forward(const Mamba3Sizes&, q, k, v, adt, gamma, eta, h0, k_prev, v_prev);
//   static std::vector<Tensor> cuda_backward(const Mamba3Sizes&, q, ..., v_prev, states, dy, dh_final);
// Gradients arrive zeroed, unless the kernel says it writes every element itself (sparing a fill of
// each gradient, ~2% of a CPU training step). All tensors are contiguous, row-major, in the shapes of
// ssm/mamba3_scan.h, and on one device (raw-memory loops for CPU tensors, the cuda_* functions for CUDA
// tensors); undefined input states reach the kernel as zeros, and their gradients are dropped on the way
// out.
#pragma once
#include <memory>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "ssm/mamba3_scan.h"
#include "tensor/ops.h"

namespace ssm {

struct Mamba3Sizes {
  int64_t batch, L, R, H, P, N;
  int64_t Q, nchunks;  // chunk length and count (the sequential reference uses Q = 1)
  bool tf32_products = false;  // autocast was on at the forward: the GPU's chunk products in single TF32

  // Element offsets of rank r, head h in the contiguous layouts of ssm/mamba3_scan.h.
  int64_t key_offset(int64_t b, int64_t t, int64_t r, int64_t h) const { return (((b * L + t) * R + r) * H + h) * N; }
  int64_t value_offset(int64_t b, int64_t t, int64_t r, int64_t h) const {
    return (((b * L + t) * R + r) * H + h) * P;
  }
  int64_t scalar_offset(int64_t b, int64_t t, int64_t h) const { return (b * L + t) * H + h; }  // adt, gamma, eta
  int64_t state_offset(int64_t b, int64_t h) const { return (b * H + h) * P * N; }           // h0, dh_final
  int64_t prev_key_offset(int64_t b, int64_t r, int64_t h) const { return ((b * R + r) * H + h) * N; }
  int64_t prev_value_offset(int64_t b, int64_t r, int64_t h) const { return ((b * R + r) * H + h) * P; }
  // Consecutive ranks of one token and head are H·N (keys) and H·P (values) apart, in k and k_prev alike.
  int64_t key_rank_stride() const { return H * N; }
  int64_t value_rank_stride() const { return H * P; }
};

template <class Kernel>
class Mamba3ScanFunction final : public Function {
 public:
  // Made when the scan is called, inside the forward's autocast scope; the backward runs after the scope
  // has closed, so the precision is read once, here, and forward and backward multiply alike.
  explicit Mamba3ScanFunction(int64_t chunk_size)
      : Function(Kernel::name), chunk_size_(chunk_size), tf32_products_(Autocast::enabled()) {}

  // in = {q, k, v, adt, gamma, eta, initial_state, k_prev, v_prev}; the last three may be undefined.
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor q = in[0].contiguous(), k = in[1].contiguous(), v = in[2].contiguous(), adt = in[3].contiguous(),
                 gamma = in[4].contiguous(), eta = in[5].contiguous();
    const Mamba3Sizes s = sizes(q, v);
    // A call from no state at all (training) has S_0 = 0: the GPU mapping then leaves S_0's terms out
    // (ssm/scan_cuda.h) rather than forming them from zeros. Otherwise a missing piece is zeros.
    const bool stateless = !in[6].defined() && !in[7].defined() && !in[8].defined() && !q.device().is_cpu();
    const auto state = [&](const Tensor& t, const Shape& shape) {
      return stateless ? Tensor() : or_zeros(t, shape, q);
    };
    const Tensor h0 = state(in[6], {s.batch, s.H, s.P, s.N});
    const Tensor k_prev = state(in[7], {s.batch, s.R, s.H, s.N});
    const Tensor v_prev = state(in[8], {s.batch, s.R, s.H, s.P});
    const int64_t kept = Kernel::stored_states(s);
    if constexpr (Kernel::runs_on_cuda) {
      if (!q.device().is_cpu()) {
        const auto out = Kernel::cuda_forward(s, q, k, v, adt, gamma, eta, h0, k_prev, v_prev);
        save_for_backward({q, k, v, adt, gamma, eta, h0, k_prev, v_prev, out.states});
        return {out.y, out.states.select(1, kept - 1).contiguous()};
      }
    }
    Tensor y = Tensor::empty({s.batch, s.L, s.R, s.H, s.P}, q.dtype());
    Tensor states = Tensor::empty({s.batch, kept, s.H, s.P, s.N}, q.dtype());
    dispatch_float(q.dtype(), Kernel::name, [&](auto tag) {
      using T = decltype(tag);
      Kernel::template forward<T>(s, q.data<T>(), k.data<T>(), v.data<T>(), adt.data<T>(), gamma.data<T>(),
                                  eta.data<T>(), h0.data<T>(), k_prev.data<T>(), v_prev.data<T>(), y.data<T>(),
                                  states.data<T>());
    });
    save_for_backward({q, k, v, adt, gamma, eta, h0, k_prev, v_prev, states});
    return {y, states.select(1, kept - 1).contiguous()};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_out) override {
    const std::vector<Tensor> saved_tensors = saved();
    const Tensor &q = saved_tensors[0], &k = saved_tensors[1], &v = saved_tensors[2], &adt = saved_tensors[3],
                 &gamma = saved_tensors[4], &eta = saved_tensors[5], &h0 = saved_tensors[6],
                 &k_prev = saved_tensors[7], &v_prev = saved_tensors[8], &states = saved_tensors[9];
    const Mamba3Sizes s = sizes(q, v);
    const Tensor dy = grad_out[0].contiguous(), dh_final = grad_out[1].contiguous();
    std::vector<Tensor> grads;
    if constexpr (Kernel::runs_on_cuda) {
      if (!q.device().is_cpu())
        grads = Kernel::cuda_backward(s, q, k, v, adt, gamma, eta, h0, k_prev, v_prev, states, dy, dh_final);
    }
    if (grads.empty()) {  // the CPU loops
      for (size_t i = 0; i < kInputs; ++i) {
        const Tensor& t = saved_tensors[i];
        grads.push_back(Kernel::writes_every_gradient ? Tensor::empty(t.shape(), t.dtype()) : op::zeros_like(t));
      }
      dispatch_float(q.dtype(), Kernel::name, [&](auto tag) {
        using T = decltype(tag);
        Kernel::template backward<T>(s, q.data<T>(), k.data<T>(), v.data<T>(), adt.data<T>(), gamma.data<T>(),
                                     eta.data<T>(), h0.data<T>(), k_prev.data<T>(), v_prev.data<T>(),
                                     states.data<T>(), dy.data<T>(), dh_final.data<T>(), grads[0].data<T>(),
                                     grads[1].data<T>(), grads[2].data<T>(), grads[3].data<T>(), grads[4].data<T>(),
                                     grads[5].data<T>(), grads[6].data<T>(), grads[7].data<T>(), grads[8].data<T>());
      });
    }
    // An undefined input (a zero state) has no edge, so it needs no gradient, like any input without one.
    for (size_t i = 0; i < kInputs; ++i)
      if (!needs_input_grad(i)) grads[i] = Tensor();
    return grads;
  }

 private:
  static constexpr size_t kInputs = 9;

  // t, or zeros of the given shape with like's dtype and device
  static Tensor or_zeros(const Tensor& t, const Shape& shape, const Tensor& like) {
    return t.defined() ? t.contiguous() : Tensor::zeros(shape, like.dtype(), like.device());
  }
  Mamba3Sizes sizes(const Tensor& q, const Tensor& v) const {
    const int64_t L = q.size(1);
    return {q.size(0), L, q.size(2), q.size(3), v.size(4), q.size(4), chunk_size_, (L + chunk_size_ - 1) / chunk_size_,
            tf32_products_};
  }
  int64_t chunk_size_;
  bool tf32_products_;
};

template <class Kernel>
ScanOutput run_mamba3_scan(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& adt, const Tensor& gamma,
                           const Tensor& eta, const Tensor& initial_state, const Tensor& k_prev, const Tensor& v_prev,
                           int64_t chunk_size) {
  check_mamba3_inputs(q, k, v, adt, gamma, eta, initial_state, k_prev, v_prev);
  SSM_CHECK(Kernel::runs_on_cuda || q.device().is_cpu(), Kernel::name, " runs on the CPU only, got ", q.describe(),
            " (mamba3_scan_chunked runs on CUDA devices too)");
  SSM_CHECK(chunk_size > 0, Kernel::name, ": chunk_size must be positive, got ", chunk_size);
  const auto out = apply(std::make_shared<Mamba3ScanFunction<Kernel>>(chunk_size),
                         {q, k, v, adt, gamma, eta, initial_state, k_prev, v_prev});
  return {out[0], out[1]};
}

}  // namespace ssm
