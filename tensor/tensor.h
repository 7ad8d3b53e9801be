// tensor/tensor.h — the n-dimensional Tensor: a view (shape, strides, offset, dtype) of shared storage.
//
// A Tensor is a cheap handle (one shared_ptr): copying it aliases the same tensor, like a Python
// reference. Views — view/reshape, permute/transpose, narrow/select, expand, (un)squeeze — make a
// new handle onto the same Storage without copying data; writing through a view writes the base.
//
// These methods are the *raw* data layer: they never record anything for autograd. The
// differentiable versions of every op are the free functions in autograd/functions.h
// (ssm::reshape, ssm::matmul, a + b, ...). A tensor still carries its autograd slots here
// (requires_grad, grad, grad_fn) so that autograd/ can attach a graph to it; their meaning is
// documented in autograd/engine.h.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/shape.h"
#include "tensor/storage.h"

namespace ssm {

class Node;  // autograd/node.h: the operation that produced a tensor

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  // autograd slots (owned and interpreted by autograd/)
  bool requires_grad = false;
  bool retains_grad = false;            // keep .grad on a non-leaf after backward
  std::shared_ptr<TensorImpl> grad;     // accumulated gradient (same shape), or null
  std::shared_ptr<Node> grad_fn;        // the op that made this tensor, null for leaves
  uint32_t output_nr = 0;               // which output of grad_fn this is
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (no storage); defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation (contiguous, uninitialised unless said) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::Float32, Device device = Device::cpu());  // rank 0
  static Tensor arange(int64_t n, DType dtype = DType::Int64, Device device = Device::cpu());
  // Copy host values into a new CPU tensor of the C++ type's dtype; values.size() must equal numel(shape).
  template <class T> static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return ssm::numel(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  std::string describe() const;  // "float32[2, 3] on cpu", for error messages

  // ---- data access (CPU) ----
  void* raw_data() const;  // address of element 0 of this view (on its device)
  template <class T> T* data() const;                       // checks dtype and device
  template <class T> T item() const;                        // the single element of a 1-element tensor
  template <class T> std::vector<T> to_vector() const;      // all elements, row-major, converted to T
  double at(std::initializer_list<int64_t> index) const;    // one element as double (tests, debugging)

  // ---- views: no copy, shared storage ----
  Tensor view(Shape shape) const;              // one -1 entry is inferred; throws if strides don't allow it
  Tensor reshape(Shape shape) const;           // a view when possible, else a contiguous copy
  Tensor flatten() const { return reshape({numel()}); }
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow to one and drop the dimension
  Tensor expand(const Shape& shape) const;          // broadcast size-1 (or new leading) dims with stride 0
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor as_strided(const Shape& shape, const Strides& strides, int64_t offset) const;

  // ---- copies ----
  Tensor contiguous() const;  // *this if already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor detach() const;      // same data, no autograd history, requires_grad false

  // ---- in-place writes (bump the storage's version counter) ----
  const Tensor& copy_(const Tensor& src) const;  // broadcasts src to this shape; converts dtype
  const Tensor& fill_(double value) const;
  const Tensor& zero_() const { return fill_(0.0); }
  // Throws if this is a broadcast view (a stride-0 dim of size > 1): an in-place op would write
  // each memory cell several times. `op` names the caller in the message.
  void check_writable(const char* op) const;

  // ---- autograd slots (see autograd/engine.h) ----
  bool requires_grad() const { return impl().requires_grad; }
  const Tensor& set_requires_grad(bool on) const;  // only on leaves
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& grad) const { impl_->grad = grad.impl_; }
  void retain_grad() const;
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }

  // ---- identity ----
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  std::string to_string(int64_t max_elements = 64) const;  // values, for printing

 private:
  TensorImpl& impl() const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& t);

}  // namespace ssm
