// cuda/cuda_backend.cpp — the GPU backend: the caching allocator, host<->device copies and the
// kernels of kernels.h, behind tensor/backend.h.
//
// Work is queued on the one stream of context.h and runs asynchronously: an op returns as soon as
// its kernel is queued. The host waits only where it must see results — copies to the host (and so
// item(), to_vector(), printing) and synchronize().
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/graph.h"
#include "cuda/kernels.h"

namespace ssm {
namespace cuda {
namespace {

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  int device_count() const override { return cuda::device_count(); }
  void synchronize() override { cuda::check_index_faults(); }  // waits, then reports a bad index
  MemoryStats memory_stats() const override { return allocator_.stats(); }
  void reset_peak_memory() override { allocator_.reset_peak(); }
  std::unique_ptr<CapturedWork> capture(const std::function<void()>& work) override {
    return capture_graph(allocator_, work);
  }

  void* allocate(size_t bytes) override { return allocator_.allocate(bytes); }
  void deallocate(void* ptr, size_t bytes) noexcept override { allocator_.deallocate(ptr, bytes); }
  void copy_to_host(const Tensor& src, void* host) override {
    const size_t bytes = src.numel() * dtype_size(src.dtype());
    if (bytes == 0) return;
    SSM_CUDA_CHECK(cudaMemcpyAsync(host, src.raw_data(), bytes, cudaMemcpyDeviceToHost, stream()));
    cuda::check_index_faults();  // waits for the copy; values computed from a bad index never reach the host
  }
  void copy_from_host(const void* host, const Tensor& dst) override {
    const size_t bytes = dst.numel() * dtype_size(dst.dtype());
    if (bytes == 0) return;
    SSM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), host, bytes, cudaMemcpyHostToDevice, stream()));
    cuda::synchronize();  // the host buffer may be freed as soon as we return
  }

  void copy(const Tensor& src, const Tensor& dst) override { cuda::copy(src, dst); }
  void fill(const Tensor& dst, double value) override { cuda::fill(dst, value); }
  void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) override { cuda::unary(op, x, out, a, b); }
  void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) override { cuda::binary(op, x, y, out); }
  void where(const Tensor& c, const Tensor& x, const Tensor& y, const Tensor& out) override { cuda::where(c, x, y, out); }
  void reduce(ReduceOp op, const Tensor& x, const Tensor& out) override { cuda::reduce(op, x, out); }
  void cumsum(const Tensor& x, int64_t dim, bool reverse, const Tensor& out) override {
    cuda::cumsum(x, dim, reverse, out);
  }
  void matmul(const Tensor& x, const Tensor& y, const Tensor& out) override { cuda::matmul(x, y, out); }
  void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) override {
    cuda::index_select(x, dim, index, out);
  }
  void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override {
    cuda::index_add(out, dim, index, src);
  }
  void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) override {
    cuda::gather(x, dim, index, out);
  }
  void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override {
    cuda::scatter_add(out, dim, index, src);
  }

 private:
  mutable CachingAllocator allocator_;
};

}  // namespace
}  // namespace cuda

// Never destroyed: tensors released during static destruction must still find their allocator.
Backend& cuda_backend() {
  static cuda::CudaBackend* const backend = new cuda::CudaBackend();
  return *backend;
}

}  // namespace ssm
