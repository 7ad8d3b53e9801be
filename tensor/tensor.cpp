// tensor/tensor.cpp — Tensor creation, views and copies. See tensor.h for the contract.
#include "tensor/tensor.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <ostream>
#include <sstream>

#include "tensor/backend.h"

namespace ssm {

// ---------------------------------------------------------------- creation

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) SSM_CHECK(d >= 0, "empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(ssm::numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  SSM_CHECK(n >= 0, "arange: negative length ", n);
  std::vector<double> values(static_cast<size_t>(n));
  std::iota(values.begin(), values.end(), 0.0);
  return from_vector(values, {n}).to(dtype).to(device);
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  SSM_CHECK(static_cast<int64_t>(values.size()) == ssm::numel(shape), "from_vector: ", values.size(),
            " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>::value);
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);

// ---------------------------------------------------------------- metadata

TensorImpl& Tensor::impl() const {
  SSM_CHECK(impl_ != nullptr, "use of an undefined tensor (default-constructed, or a gradient that was never computed)");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return detail::concat(dtype_name(dtype()), shape_str(shape()), " on ", device().str());
}

// ---------------------------------------------------------------- data access

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + offset() * static_cast<int64_t>(dtype_size(dtype()));
}

template <class T>
T* Tensor::data() const {
  SSM_CHECK(dtype() == dtype_of<T>::value, "data<", dtype_name(dtype_of<T>::value), ">: tensor is ", describe());
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template BFloat16* Tensor::data<BFloat16>() const;
template Float16* Tensor::data<Float16>() const;

template <class T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = to(Device::cpu()).to(dtype_of<T>::value).contiguous();
  const T* p = host.data<T>();
  return std::vector<T>(p, p + host.numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;

template <class T>
T Tensor::item() const {
  SSM_CHECK(numel() == 1, "item: tensor has ", numel(), " elements, expected exactly 1 (", describe(), ")");
  return to_vector<T>()[0];
}
template float Tensor::item() const;
template double Tensor::item() const;
template int32_t Tensor::item() const;
template int64_t Tensor::item() const;

double Tensor::at(std::initializer_list<int64_t> index) const {
  SSM_CHECK(static_cast<int64_t>(index.size()) == dim(), "at: ", index.size(), " indices for ", describe());
  int64_t off = 0, d = 0;
  for (int64_t i : index) {
    SSM_CHECK(i >= 0 && i < shape()[d], "at: index ", i, " out of range in dimension ", d, " of ", describe());
    off += i * strides()[d++];
  }
  return as_strided({}, {}, offset() + off).item<double>();
}

// ---------------------------------------------------------------- views

Tensor Tensor::as_strided(const Shape& shape, const Strides& strides, int64_t offset) const {
  SSM_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape), " and strides ", shape_str(strides),
            " differ in rank");
  if (ssm::numel(shape) > 0) {  // every reachable element must lie inside the storage
    int64_t lowest = offset, highest = offset;
    for (size_t d = 0; d < shape.size(); ++d) {
      SSM_CHECK(shape[d] >= 0, "as_strided: negative size in ", shape_str(shape));
      const int64_t reach = (shape[d] - 1) * strides[d];
      (reach < 0 ? lowest : highest) += reach;
    }
    const int64_t capacity = static_cast<int64_t>(impl().storage->bytes() / dtype_size(dtype()));
    SSM_CHECK(lowest >= 0 && highest < capacity, "as_strided: shape ", shape_str(shape), " with strides ",
              shape_str(strides), " and offset ", offset, " reaches outside the storage of ", capacity, " elements");
  }
  auto v = std::make_shared<TensorImpl>();
  v->storage = impl().storage;
  v->shape = shape;
  v->strides = strides;
  v->offset = offset;
  v->dtype = dtype();
  return Tensor(std::move(v));
}

// Resolve one -1 entry of a requested shape against the element count.
static Shape infer_shape(Shape shape, int64_t count, const Shape& from, const char* op) {
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      SSM_CHECK(infer_at < 0, op, ": more than one -1 in ", shape_str(shape));
      infer_at = static_cast<int64_t>(i);
    } else {
      SSM_CHECK(shape[i] >= 0, op, ": negative size in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    SSM_CHECK(known > 0 && count % known == 0, op, ": cannot infer -1 in ", shape_str(shape), " for ", count, " elements");
    shape[infer_at] = count / known;
  }
  SSM_CHECK(ssm::numel(shape) == count, op, ": shape ", shape_str(shape), " is invalid for a tensor of shape ",
            shape_str(from), " (", count, " elements)");
  return shape;
}

// Strides for viewing (old_shape, old_strides) as new_shape without copying, or empty if impossible.
// Walk both shapes in groups of dimensions with equal element counts; within each old group the
// dimensions must be contiguous with respect to each other, then the new group is laid out inside it.
static std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& new_shape) {
  if (ssm::numel(old_shape) == 0) return contiguous_strides(new_shape);
  Strides out(new_shape.size());
  int64_t oi = 0, ni = 0;
  const int64_t orank = static_cast<int64_t>(old_shape.size()), nrank = static_cast<int64_t>(new_shape.size());
  while (oi < orank || ni < nrank) {
    // skip size-1 dims on both sides (their strides don't matter)
    if (ni < nrank && new_shape[ni] == 1) { out[ni] = 1; ++ni; continue; }
    if (oi < orank && old_shape[oi] == 1) { ++oi; continue; }
    if (oi >= orank || ni >= nrank) return std::nullopt;
    // take one old group whose dims chain contiguously, and the new dims with the same count
    int64_t old_count = old_shape[oi], group_end = oi;
    int64_t new_count = new_shape[ni], new_start = ni;
    while (old_count != new_count) {
      if (old_count < new_count) {
        int64_t next = group_end + 1;
        while (next < orank && old_shape[next] == 1) ++next;
        if (next >= orank || old_strides[group_end] != old_strides[next] * old_shape[next]) return std::nullopt;
        group_end = next;
        old_count *= old_shape[group_end];
      } else {
        if (++ni >= nrank) return std::nullopt;
        new_count *= new_shape[ni];
      }
    }
    int64_t stride = old_strides[group_end];
    for (int64_t k = ni; k >= new_start; --k) {
      out[k] = stride;
      stride *= new_shape[k];
    }
    oi = group_end + 1;
    ++ni;
  }
  return out;
}

Tensor Tensor::view(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), this->shape(), "view");
  auto strides = view_strides(this->shape(), this->strides(), shape);
  SSM_CHECK(strides.has_value(), "view: cannot view ", describe(), " with strides ", shape_str(this->strides()),
            " as ", shape_str(shape), " without a copy (use reshape, or contiguous() first)");
  return as_strided(shape, *strides, offset());
}

Tensor Tensor::reshape(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), this->shape(), "reshape");
  if (auto strides = view_strides(this->shape(), this->strides(), shape)) return as_strided(shape, *strides, offset());
  return clone().view(shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  SSM_CHECK(static_cast<int64_t>(order.size()) == dim(), "permute: order has ", order.size(), " entries for ", describe());
  Shape shape(order.size());
  Strides strides(order.size());
  std::vector<bool> seen(order.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t d = wrap_dim(order[i], dim(), "permute");
    SSM_CHECK(!seen[d], "permute: dimension ", d, " repeated in the order");
    seen[d] = true;
    shape[i] = this->shape()[d];
    strides[i] = this->strides()[d];
  }
  return as_strided(shape, strides, offset());
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  std::vector<int64_t> order(dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[wrap_dim(dim0, dim(), "transpose")], order[wrap_dim(dim1, dim(), "transpose")]);
  return permute(order);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  SSM_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: range [", start, ", ", start + length,
            ") is outside dimension ", d, " of ", describe());
  Shape shape = this->shape();
  shape[d] = length;
  return as_strided(shape, strides(), offset() + start * strides()[d]);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  SSM_CHECK(index >= -shape()[d] && index < shape()[d], "select: index ", index, " out of range for dimension ", d,
            " of ", describe());
  if (index < 0) index += shape()[d];
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& shape) const {
  SSM_CHECK(shape.size() >= this->shape().size(), "expand: cannot expand ", describe(), " to fewer dimensions ",
            shape_str(shape));
  const size_t lead = shape.size() - this->shape().size();
  Strides strides(shape.size(), 0);
  for (size_t i = 0; i < this->shape().size(); ++i) {
    const int64_t have = this->shape()[i], want = shape[lead + i];
    SSM_CHECK(have == want || have == 1, "expand: cannot expand ", describe(), " to ", shape_str(shape));
    strides[lead + i] = have == want ? this->strides()[i] : 0;
  }
  return as_strided(shape, strides, offset());
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  SSM_CHECK(shape()[d] == 1, "squeeze: dimension ", d, " of ", describe(), " has size ", shape()[d], ", not 1");
  Shape shape = this->shape();
  Strides strides = this->strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return as_strided(shape, strides, offset());
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape shape = this->shape();
  Strides strides = this->strides();
  const int64_t stride = d < dim() ? strides[d] * shape[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return as_strided(shape, strides, offset());
}

// ---------------------------------------------------------------- copies

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  backend_for(device()).copy(*this, out);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == this->dtype()) return *this;
  Tensor out = empty(shape(), dtype, device());
  backend_for(device()).copy(*this, out);
  return out;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  const Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), device);
  if (src.device().is_cpu()) {
    backend_for(device).copy_from_host(src.raw_data(), out);
  } else if (device.is_cpu()) {
    backend_for(src.device()).copy_to_host(src, out.raw_data());
  } else {  // device to device, through the host
    return src.to(Device::cpu()).to(device);
  }
  return out;
}

Tensor Tensor::detach() const { return as_strided(shape(), strides(), offset()); }

const Tensor& Tensor::copy_(const Tensor& src) const {
  SSM_CHECK(src.device() == device(), "copy_: source is ", src.describe(), " but destination is ", describe(),
            " (move it with .to(device) first)");
  SSM_CHECK(broadcast_shapes(src.shape(), shape(), "copy_") == shape(), "copy_: cannot broadcast ", src.describe(),
            " to ", describe());
  check_writable("copy_");
  // Reading a view of the very memory being written (x.copy_(x.transpose(0, 1))) would read
  // half-updated values: copy the source out first.
  const bool overlaps = src.impl_ptr()->storage == impl().storage && (src.offset() != offset() || src.strides() != strides());
  backend_for(device()).copy((overlaps ? src.clone() : src).expand(shape()), *this);
  impl().storage->bump_version();
  return *this;
}

void Tensor::check_writable(const char* op) const {
  for (int64_t d = 0; d < dim(); ++d)
    SSM_CHECK(strides()[d] != 0 || shape()[d] <= 1, op, ": cannot write in place into ", describe(),
              ", a broadcast view whose elements share memory (dimension ", d, " has stride 0); write into a copy");
}

const Tensor& Tensor::fill_(double value) const {
  backend_for(device()).fill(*this, value);
  impl().storage->bump_version();
  return *this;
}

const Tensor& Tensor::set_requires_grad(bool on) const {
  SSM_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be changed (this one was produced by an op; use detach())");
  SSM_CHECK(!on || is_floating(dtype()), "set_requires_grad: gradients need a floating dtype, got ", describe());
  impl().requires_grad = on;
  return *this;
}

void Tensor::retain_grad() const {
  if (!is_leaf()) impl().retains_grad = true;
}

// ---------------------------------------------------------------- printing

std::string Tensor::to_string(int64_t max_elements) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream out;
  out << "Tensor(" << describe() << ") [";
  const bool integral = is_integer(dtype());
  const Tensor flat = to(Device::cpu()).contiguous();
  const auto values = flat.to_vector<double>();
  for (int64_t i = 0; i < std::min<int64_t>(numel(), max_elements); ++i) {
    if (i) out << ", ";
    if (integral) out << static_cast<int64_t>(values[i]); else out << values[i];
  }
  if (numel() > max_elements) out << ", ...";
  out << "]";
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) { return out << t.to_string(); }

}  // namespace ssm
