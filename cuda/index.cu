// cuda/index.cu — index_select / index_add and gather / scatter_add on the GPU.
//
// Index values live on the device, so their range is checked by the kernels as they read them
// (cuda/index_fault.cuh): a thread that meets an index outside [0, size) moves nothing and records the
// fault, and check_index_faults — called by the backend's synchronize and copies to the host — throws.
// As on the CPU (tensor/cpu/index.cpp), tensors are seen as [outer, dim, inner] blocks of contiguous
// memory (inputs are made contiguous first; outputs arrive contiguous), one thread per element
// moved. The adding kernels use atomic adds, so repeated indices are safe; unlike the CPU, the order
// in which a repeated index's contributions are added varies from run to run (float sums may differ
// in the last bits).
#include "cuda/device_types.cuh"
#include "cuda/index_fault.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace ssm::cuda {
namespace {

struct Blocks {
  int64_t outer = 1, inner = 1;
};
Blocks blocks_around(const Shape& shape, int64_t dim) {
  Blocks b;
  for (int64_t d = 0; d < dim; ++d) b.outer *= shape[d];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) b.inner *= shape[d];
  return b;
}

template <class Fn>
void with_index(const Tensor& index, Fn&& fn) {
  if (index.dtype() == DType::Int32) fn(static_cast<const int32_t*>(index.raw_data()));
  else fn(static_cast<const int64_t*>(index.raw_data()));
}

template <class T>
__device__ void atomic_add(T* address, T value) {
  if constexpr (std::is_same_v<T, int64_t>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(address), static_cast<unsigned long long>(value));
  } else {
    atomicAdd(address, value);
  }
}

__device__ IndexFault g_index_fault;

template <class I>
__device__ bool index_in_range(IndexOpKind op, I i, int64_t size) {
  return index_in_range(&g_index_fault, op, i, size);
}

const char* index_op_name(int op) {
  switch (static_cast<IndexOpKind>(op)) {
    case IndexOpKind::IndexSelect: return "index_select";
    case IndexOpKind::IndexAdd: return "index_add";
    case IndexOpKind::Gather: return "gather";
    case IndexOpKind::ScatterAdd: return "scatter_add";
    case IndexOpKind::CrossEntropyTarget: return "cross_entropy (a target)";
  }
  return "an index op";
}

// Runs body(i) for i in [0, n) on the GPU, one thread each.
template <class Body>
__global__ void for_each_index_kernel(int64_t n, Body body) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) body(i);
}
template <class Body>
void for_each_index(int64_t n, Body body) {
  if (n == 0) return;
  for_each_index_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(n, body);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class T, class I>
void index_select_typed(const Tensor& x, int64_t dim, const I* idx, int64_t n, const Tensor& out) {
  const Blocks b = blocks_around(x.shape(), dim);
  const int64_t size = x.shape()[dim];
  const T* src = static_cast<const T*>(x.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  for_each_index(out.numel(), [=] __device__(int64_t at) {
    const int64_t k = at % b.inner, row = at / b.inner, i = row % n, o = row / n;
    dst[at] = index_in_range(IndexOpKind::IndexSelect, idx[i], size) ? src[(o * size + idx[i]) * b.inner + k] : T(0);
  });
}

template <class T, class I>
void index_add_typed(const Tensor& out, int64_t dim, const I* idx, int64_t n, const Tensor& src) {
  const Blocks b = blocks_around(out.shape(), dim);
  const int64_t size = out.shape()[dim];
  const T* from = static_cast<const T*>(src.raw_data());
  T* to = static_cast<T*>(out.raw_data());
  for_each_index(src.numel(), [=] __device__(int64_t at) {
    const int64_t k = at % b.inner, row = at / b.inner, i = row % n, o = row / n;
    if (index_in_range(IndexOpKind::IndexAdd, idx[i], size)) atomic_add(to + (o * size + idx[i]) * b.inner + k, from[at]);
  });
}

// index [outer, n, inner_i] picks from x [outer, size, inner_x]
template <class T, class I>
void gather_typed(const Tensor& x, int64_t dim, const Tensor& index, const I* idx, const Tensor& out) {
  const Blocks xb = blocks_around(x.shape(), dim), ib = blocks_around(index.shape(), dim);
  const int64_t size = x.shape()[dim], n = index.shape()[dim];
  const T* src = static_cast<const T*>(x.raw_data());
  T* dst = static_cast<T*>(out.raw_data());
  for_each_index(out.numel(), [=] __device__(int64_t at) {
    const int64_t k = at % ib.inner, o = at / ib.inner / n;
    dst[at] = index_in_range(IndexOpKind::Gather, idx[at], size) ? src[(o * size + idx[at]) * xb.inner + k] : T(0);
  });
}

template <class T, class I>
void scatter_add_typed(const Tensor& out, int64_t dim, const Tensor& index, const I* idx, const Tensor& src) {
  const Blocks ob = blocks_around(out.shape(), dim), ib = blocks_around(index.shape(), dim);
  const int64_t size = out.shape()[dim], n = index.shape()[dim];
  const T* from = static_cast<const T*>(src.raw_data());
  T* to = static_cast<T*>(out.raw_data());
  for_each_index(src.numel(), [=] __device__(int64_t at) {
    const int64_t k = at % ib.inner, o = at / ib.inner / n;
    if (index_in_range(IndexOpKind::ScatterAdd, idx[at], size)) atomic_add(to + (o * size + idx[at]) * ob.inner + k, from[at]);
  });
}

}  // namespace

IndexFault* index_fault_record() {
  static IndexFault* const record = [] {
    void* address = nullptr;
    SSM_CUDA_CHECK(cudaGetSymbolAddress(&address, g_index_fault));
    return static_cast<IndexFault*>(address);
  }();
  return record;
}

void check_index_faults() {
  IndexFault fault{};
  SSM_CUDA_CHECK(cudaMemcpyFromSymbolAsync(&fault, g_index_fault, sizeof fault, 0, cudaMemcpyDeviceToHost, stream()));
  SSM_CUDA_CHECK(cudaStreamSynchronize(stream()));
  if (fault.op == 0) return;
  const IndexFault cleared{};
  SSM_CUDA_CHECK(cudaMemcpyToSymbolAsync(g_index_fault, &cleared, sizeof cleared, 0, cudaMemcpyHostToDevice, stream()));
  SSM_CUDA_CHECK(cudaStreamSynchronize(stream()));
  throw Error(detail::concat(index_op_name(fault.op), " on cuda:0: index ", fault.index,
                             " is out of range for a dimension of size ", fault.size,
                             " (found by the GPU kernel; reported when the host next waited for the GPU)"));
}

void index_select(const Tensor& x_in, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor x = x_in.contiguous();
  dispatch_device_all(x.dtype(), "index_select", [&](auto t) {
    with_index(index, [&](auto* idx) { index_select_typed<decltype(t)>(x, dim, idx, index.numel(), out); });
  });
}

void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src_in) {
  const Tensor src = src_in.contiguous();
  dispatch_device_numeric(src.dtype(), "index_add", [&](auto t) {
    with_index(index, [&](auto* idx) { index_add_typed<decltype(t)>(out, dim, idx, index.numel(), src); });
  });
}

void gather(const Tensor& x_in, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor x = x_in.contiguous();
  dispatch_device_all(x.dtype(), "gather", [&](auto t) {
    with_index(index, [&](auto* idx) { gather_typed<decltype(t)>(x, dim, index, idx, out); });
  });
}

void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src_in) {
  const Tensor src = src_in.contiguous();
  dispatch_device_numeric(src.dtype(), "scatter_add", [&](auto t) {
    with_index(index, [&](auto* idx) { scatter_add_typed<decltype(t)>(out, dim, index, idx, src); });
  });
}

}  // namespace ssm::cuda
