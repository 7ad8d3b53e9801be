// tensor/cpu/aligned_buffer.h — a grow-only, 64-byte-aligned scratch buffer for the CPU kernels.
//
// The GEMM keeps one per thread per role (its packed panels, tensor/cpu/gemm.cpp) and the chunked scan
// core one per operand (ssm/ssd_chunk_core.cpp), so steady-state calls never allocate. The alignment is
// the GEMM micro-kernel's: it loads packed B panels with aligned vector loads, and reads a B that is
// already one such panel (16 float columns, rows 16 apart, 64-byte aligned) in place. Growing does not
// keep the old contents: callers treat the buffer as fresh scratch each time they size it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace ssm::cpu {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(ptr_); }

  // Room for at least `count` values of T (reallocated only when it grows).
  template <class T>
  T* get(int64_t count) {
    const size_t bytes = (static_cast<size_t>(count) * sizeof(T) + 63) / 64 * 64;
    if (bytes > bytes_) {
      std::free(ptr_);
      ptr_ = std::aligned_alloc(64, bytes);
      if (!ptr_) throw std::bad_alloc();
      bytes_ = bytes;
    }
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace ssm::cpu
