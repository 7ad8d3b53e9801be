// tensor/cpu/cpu_backend.cpp — the host backend: aligned memory plus the kernels of kernels.h.
#include <cstdlib>
#include <cstring>

#include "tensor/cpu/block_cache.h"
#include "tensor/cpu/gemm.h"
#include "tensor/cpu/kernels.h"

namespace ssm {
namespace cpu {

// [batch, M, K] x [batch, K, N] -> out [batch, M, N] (contiguous). Operands keep their strides:
// a transposed weight is read in place by the GEMM's packing, never copied.
void matmul(const Tensor& x, const Tensor& y, const Tensor& out) {
  const int64_t batch = x.shape()[0], M = x.shape()[1], K = x.shape()[2], N = y.shape()[2];
  const auto& xs = x.strides();
  const auto& ys = y.strides();
  dispatch_float(x.dtype(), "matmul", [&](auto t) {
    using T = decltype(t);
    gemm_batched(batch, M, N, K, T(1), x.data<T>(), xs[0], xs[1], xs[2], y.data<T>(), ys[0], ys[1], ys[2], T(0),
                 out.data<T>(), M * N, N);
  });
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  int device_count() const override { return 1; }
  void synchronize() override {}  // every CPU kernel has finished when it returns
  MemoryStats memory_stats() const override { return {}; }  // host memory is the process's (see getrusage)
  void reset_peak_memory() override {}

  void* allocate(size_t bytes) override { return bytes == 0 ? nullptr : blocks_.allocate(bytes); }
  void deallocate(void* ptr, size_t bytes) noexcept override { blocks_.deallocate(ptr, bytes); }
  void copy_to_host(const Tensor& src, void* host) override {
    std::memcpy(host, src.raw_data(), src.numel() * dtype_size(src.dtype()));
  }
  void copy_from_host(const void* host, const Tensor& dst) override {
    std::memcpy(dst.raw_data(), host, dst.numel() * dtype_size(dst.dtype()));
  }

  void copy(const Tensor& src, const Tensor& dst) override { cpu::copy(src, dst); }
  void fill(const Tensor& dst, double value) override { cpu::fill(dst, value); }
  void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) override { cpu::unary(op, x, out, a, b); }
  void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) override { cpu::binary(op, x, y, out); }
  void where(const Tensor& c, const Tensor& x, const Tensor& y, const Tensor& out) override { cpu::where(c, x, y, out); }
  void reduce(ReduceOp op, const Tensor& x, const Tensor& out) override { cpu::reduce(op, x, out); }
  void cumsum(const Tensor& x, int64_t dim, bool reverse, const Tensor& out) override {
    cpu::cumsum(x, dim, reverse, out);
  }
  void matmul(const Tensor& x, const Tensor& y, const Tensor& out) override { cpu::matmul(x, y, out); }
  void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) override {
    cpu::index_select(x, dim, index, out);
  }
  void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override {
    cpu::index_add(out, dim, index, src);
  }
  void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) override {
    cpu::gather(x, dim, index, out);
  }
  void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override {
    cpu::scatter_add(out, dim, index, src);
  }

 private:
  BlockCache blocks_;
};

}  // namespace cpu

// Never destroyed: tensors released during static destruction must still find their allocator.
Backend& cpu_backend() {
  static cpu::CpuBackend* const backend = new cpu::CpuBackend();
  return *backend;
}

}  // namespace ssm
