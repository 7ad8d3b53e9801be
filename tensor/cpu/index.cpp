// tensor/cpu/index.cpp — index_select / index_add and gather / scatter_add on the CPU.
//
// All four see their tensors as [outer, dim, inner] blocks of contiguous memory (inputs are made
// contiguous first; outputs arrive contiguous). The adding kernels (index_add, scatter_add) split
// threads over outer and inner positions only, never over the indexed dim, so repeated indices
// never race and the sums come out in the same order on every run.
#include <algorithm>

#include "tensor/cpu/kernels.h"
#include "tensor/cpu/parallel.h"

namespace ssm::cpu {
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
  if (index.dtype() == DType::Int32) fn(index.data<int32_t>());
  else fn(index.data<int64_t>());
}

constexpr int64_t kInnerStrip = 256;  // inner elements per task in the adding kernels

}  // namespace

void index_select(const Tensor& x_in, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor x = x_in.contiguous();
  const Blocks b = blocks_around(x.shape(), dim);
  const int64_t size = x.shape()[dim], n = index.numel();
  const size_t row_bytes = static_cast<size_t>(b.inner) * dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  with_index(index, [&](auto* idx) {
    parallel_for(b.outer * n, b.outer * n * b.inner, [&](int64_t task) {
      const int64_t o = task / n, i = task % n;
      std::copy_n(src + ((o * size + idx[i]) * b.inner) * dtype_size(x.dtype()), row_bytes,
                  dst + ((o * n + i) * b.inner) * dtype_size(x.dtype()));
    });
  });
}

void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src_in) {
  const Tensor src = src_in.contiguous();
  const Blocks b = blocks_around(out.shape(), dim);
  const int64_t size = out.shape()[dim], n = index.numel();
  const int64_t strips = (b.inner + kInnerStrip - 1) / kInnerStrip;
  dispatch_numeric(src.dtype(), "index_add", [&](auto t) {
    using T = decltype(t);
    const T* ps = src.data<T>();
    T* po = out.data<T>();
    with_index(index, [&](auto* idx) {
      parallel_for(b.outer * strips, b.outer * n * b.inner, [&](int64_t task) {
        const int64_t o = task / strips, first = (task % strips) * kInnerStrip;
        const int64_t width = std::min(kInnerStrip, b.inner - first);
        for (int64_t i = 0; i < n; ++i) {
          T* to = po + (o * size + idx[i]) * b.inner + first;
          const T* from = ps + (o * n + i) * b.inner + first;
          for (int64_t j = 0; j < width; ++j) to[j] += from[j];
        }
      });
    });
  });
}

void gather(const Tensor& x_in, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor x = x_in.contiguous();
  const Blocks xb = blocks_around(x.shape(), dim), ib = blocks_around(index.shape(), dim);
  const int64_t size = x.shape()[dim], n = index.shape()[dim];
  dispatch_all(x.dtype(), "gather", [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    with_index(index, [&](auto* idx) {
      // index [outer, n, inner_i] picks from x [outer, size, inner_x]; inner_i <= inner_x by shape rules
      parallel_for(ib.outer * n, out.numel(), [&](int64_t task) {
        const int64_t o = task / n, j = task % n;
        for (int64_t k = 0; k < ib.inner; ++k) {
          const int64_t at = (o * n + j) * ib.inner + k;
          po[at] = px[(o * size + idx[at]) * xb.inner + k];
        }
      });
    });
  });
}

void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src_in) {
  const Tensor src = src_in.contiguous();
  const Blocks ob = blocks_around(out.shape(), dim), ib = blocks_around(index.shape(), dim);
  const int64_t size = out.shape()[dim], n = index.shape()[dim];
  dispatch_numeric(src.dtype(), "scatter_add", [&](auto t) {
    using T = decltype(t);
    const T* ps = src.data<T>();
    T* po = out.data<T>();
    with_index(index, [&](auto* idx) {
      parallel_for(ib.outer, src.numel(), [&](int64_t o) {
        for (int64_t j = 0; j < n; ++j)
          for (int64_t k = 0; k < ib.inner; ++k) {
            const int64_t at = (o * n + j) * ib.inner + k;
            po[(o * size + idx[at]) * ob.inner + k] += ps[at];
          }
      });
    });
  });
}

}  // namespace ssm::cpu
