// tensor/backend.h — the interface every device implements: memory and the primitive kernels.
//
// Ops (tensor/ops.cpp) validate their arguments, allocate outputs and then call the backend of the
// tensors' device, so a new device (cuda/) plugs in here without touching any call site. The set
// of kernels is deliberately small (tinygrad's lesson): everything else is composed from them.
//
// What a backend may assume, because ops.cpp checked it:
//   * every tensor argument lives on this backend's device;
//   * shapes agree (elementwise inputs arrive already broadcast to the output's shape as stride-0
//     views) and dtypes agree unless the kernel says otherwise;
//   * outputs of reduce/cumsum/matmul/index/gather kernels are freshly allocated and contiguous;
//     outputs of the elementwise kernels (copy, fill, unary, binary, where) may be strided views,
//     which is how in-place updates write through views.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "tensor/device.h"

namespace ssm {

class Tensor;
class Generator;

enum class UnaryOp {
  Neg, Exp, Log, Log1p, Expm1, Sqrt, Rsqrt, Tanh, Sigmoid, Silu, Softplus, Sin, Cos, Abs, Sign,
  Square, Reciprocal, Relu,
  Floor,     // largest integer ≤ x (not differentiated: a step function)
  Clamp,     // min(max(x, a), b)
  PowScalar, // x^a
};
enum class BinaryOp { Add, Sub, Mul, Div, Maximum, Minimum, Pow, Eq, Ne, Lt, Le, Gt, Ge };
enum class ReduceOp { Sum, Max, Min };

// Bytes of device memory a backend holds: `in_use` by live tensors, its high-water mark `peak_in_use`
// (since the last reset), and `reserved` from the device (in use plus cached for reuse).
struct MemoryStats {
  size_t in_use = 0;
  size_t peak_in_use = 0;
  size_t reserved = 0;
};

// A recorded sequence of device work that re-runs with one launch (a CUDA graph): the same kernels
// on the same addresses, so its inputs are tensors written in place before replay() and its outputs
// tensors the recorded work wrote. The memory the work allocated stays reserved for it until this
// object is destroyed.
class CapturedWork {
 public:
  virtual ~CapturedWork() = default;
  virtual void replay() = 0;  // queued like any other work; returns at once
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // ---- the devices behind this backend ----
  virtual int device_count() const = 0;      // 0 when the machine has none (or no driver)
  virtual void synchronize() = 0;            // wait for all queued work (kernels run asynchronously)
  virtual MemoryStats memory_stats() const = 0;
  virtual void reset_peak_memory() = 0;
  // Records what `work` queues (without running it) for replay, or returns nullptr when this backend
  // cannot (the CPU has nothing to gain: its kernels are not launched). `work` must not wait for the
  // device (no item(), no copies to the host) and must allocate the same way on every call.
  virtual std::unique_ptr<CapturedWork> capture(const std::function<void()>& work) {
    (void)work;
    return nullptr;
  }

  // ---- memory ----
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) noexcept = 0;
  virtual void copy_to_host(const Tensor& src_contiguous, void* host) = 0;
  virtual void copy_from_host(const void* host, const Tensor& dst_contiguous) = 0;

  // ---- elementwise ----
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;  // dtypes may differ: converts
  virtual void fill(const Tensor& dst, double value) = 0;
  virtual void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) = 0;
  virtual void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) = 0;
  virtual void where(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out) = 0;  // cond: any dtype, != 0

  // ---- reductions and scans ----
  // out has x's rank with size 1 in every reduced dimension (keepdim form).
  virtual void reduce(ReduceOp op, const Tensor& x, const Tensor& out) = 0;
  virtual void cumsum(const Tensor& x, int64_t dim, bool reverse, const Tensor& out) = 0;

  // ---- linear algebra ----
  // Batched: x is [batch, M, K], y is [batch, K, N] (any strides, batch stride 0 allowed), out is [batch, M, N].
  virtual void matmul(const Tensor& x, const Tensor& y, const Tensor& out) = 0;

  // ---- indexing (index tensors are int32 or int64; values were range-checked by the op) ----
  // out = x with dimension `dim` replaced by the entries index[0..n): out[.., i, ..] = x[.., index[i], ..]
  virtual void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) = 0;
  // out[.., index[i], ..] += src[.., i, ..]  (the adjoint of index_select; repeated indices accumulate)
  virtual void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) = 0;
  // torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1 (index has out's shape)
  virtual void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) = 0;
  // the adjoint of gather: out[i][index[i][j][k]][k] += src[i][j][k]
  virtual void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) = 0;
};

// The backend that owns `device`; throws if that device's backend was not built into this binary,
// or the machine has no such device.
Backend& backend_for(Device device);

// Whether tensors can be made on `device` here (GPU tests skip when this is false).
bool device_available(Device device);

}  // namespace ssm
