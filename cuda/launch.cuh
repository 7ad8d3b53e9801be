// cuda/launch.cuh — launching elementwise work over strided tensors.
//
// for_each_element<N>(shape, {strides...}, body) runs body(offsets) once per element of `shape`,
// where offsets[k] is that element's offset (in elements) in the k-th of N layouts. The layouts are
// collapsed first (tensor/strided_layout.h), so contiguous tensors index with one multiply and
// transposed or broadcast views pay a division per remaining dimension. One thread per element,
// grid-stride loop, on the backend's stream. launch() and shared_limit() serve kernels that need more
// than the default 48 KiB of dynamic shared memory.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

#include "cuda/check.h"
#include "cuda/context.h"
#include "tensor/strided_layout.h"

namespace ssm::cuda {

inline constexpr int kThreads = 256;

// Blocks for n threads (capped: the grid-stride loops cover the rest).
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, int64_t{1} << 20));
}

// A block per row (the kernel loops over rows grid-stride) whose threads share out the row's `width`
// values: as many warps as a row needs, at most 512 threads. Finding an element's place inside a row is
// then a 32-bit division, not the 64-bit ones of a flat index (each a ~100-instruction routine).
struct RowLaunch {
  unsigned blocks;
  int threads;
};
inline RowLaunch row_launch(int64_t rows, int64_t width) {
  return {static_cast<unsigned>(std::clamp<int64_t>(rows, 1, int64_t{1} << 20)),
          static_cast<int>(std::clamp<int64_t>((width + 31) / 32 * 32, 32, 512))};
}

// The elements (row, col) of a block of rows × `cols` that one of `threads` threads sharing them takes (this
// one `first`): e = first, then every `threads`-th, of e = row·cols + col — found by stepping with a carry, not
// by dividing each e (a division per element was among the SSM kernels' largest instruction counts). By
// default the whole block's: threadIdx.x, every blockDim.x-th.
struct TileWalk {
  int row, col, cols, row_step, col_step;
  __device__ TileWalk(int cols_, unsigned first, unsigned threads)
      : row(first / cols_), col(first % cols_), cols(cols_), row_step(threads / cols_), col_step(threads % cols_) {}
  __device__ explicit TileWalk(int cols_) : TileWalk(cols_, threadIdx.x, blockDim.x) {}
  __device__ void next() {
    row += row_step;
    col += col_step;
    if (col >= cols) {
      col -= cols;
      ++row;
    }
  }
};

// body(row, h, p, i) for every element i = (row·H + h)·P + p of a [rows, H, P] array, in a kernel launched
// by row_launch(rows, H·P): finding h and p is one 32-bit division (H·P < 2^31), where the flat index took
// three 64-bit divisions or remainders, more than a fused op's own math per element.
template <class Body>
__device__ void for_each_row_element(int64_t rows, int64_t H, int64_t P, Body body) {
  const int HP = static_cast<int>(H * P), width = static_cast<int>(P);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x)
    for (int c = static_cast<int>(threadIdx.x); c < HP; c += blockDim.x) {
      const int h = c / width;
      body(row, h, c - h * width, row * HP + c);
    }
}

// body(chunk, hrp, h, r, p, row_begin, row_end) for every element (chunk, hrp) of a [chunks, H·R·P] array of
// per-chunk partial sums, hrp = (h·R + r)·P + p, one thread each, grid-stride: the fused ops' parameter
// gradients, each thread adding its chunk's rows [row_begin, row_end) of `rows` in row order (the caller sums
// the chunks in chunk order: no atomics). Neighbouring threads take neighbouring p, so row reads coalesce.
template <class Body>
__device__ void for_each_param_partial(int64_t rows, int64_t chunks, int64_t H, int64_t R, int64_t P, Body body) {
  const int64_t HRP = H * R * P, total = chunks * HRP;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t hrp = i % HRP, chunk = i / HRP;
    body(chunk, hrp, hrp / (P * R), hrp / P % R, hrp % P, rows * chunk / chunks, rows * (chunk + 1) / chunks);
  }
}

inline constexpr int kMaxDims = 8;  // after collapsing; views of the models never come near it

template <int N>
struct StridedIndex {
  int rank = 0;
  bool narrow = false;  // every flat index fits 32 bits: divide in 32 bits (a 64-bit division is ~4x the work)
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  __device__ void offsets(int64_t flat, int64_t (&off)[N]) const {
    if (narrow) walk<uint32_t>(static_cast<uint32_t>(flat), off);
    else walk<uint64_t>(static_cast<uint64_t>(flat), off);
  }

 private:
  // Peel the coordinates off the flat index, innermost dimension first.
  template <class I>
  __device__ void walk(I flat, int64_t (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const I size = static_cast<I>(sizes[d]);
      const I i = d == 0 ? flat : flat % size;
      flat = d == 0 ? 0 : flat / size;
      for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(i) * strides[k][d];
    }
  }
};

template <int N>
StridedIndex<N> strided_index(const Shape& shape, const std::array<Strides, N>& strides) {
  const CollapsedLayout<N> layout = collapse<N>(shape, strides);
  StridedIndex<N> index;
  index.rank = static_cast<int>(layout.shape.size());
  index.narrow = numel(shape) <= int64_t{UINT32_MAX};
  SSM_CHECK(index.rank <= kMaxDims, "cuda: a strided view of ", index.rank, " non-mergeable dimensions (at most ",
            kMaxDims, " are supported); make it contiguous first");
  for (int d = 0; d < index.rank; ++d) {
    index.sizes[d] = layout.shape[d];
    for (int k = 0; k < N; ++k) index.strides[k][d] = layout.strides[k][d];
  }
  return index;
}

template <int N, class Body>
__global__ void elementwise_kernel(int64_t total, StridedIndex<N> index, Body body) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    int64_t off[N];
    index.offsets(i, off);
    body(off);
  }
}

template <int N, class Body>
void for_each_element(const Shape& shape, const std::array<Strides, N>& strides, Body body) {
  const int64_t total = numel(shape);
  if (total == 0) return;
  elementwise_kernel<N><<<blocks_for(total), kThreads, 0, stream()>>>(total, strided_index<N>(shape, strides), body);
  SSM_CUDA_CHECK_LAUNCH();
}

// Four values moved as one access: 16 bytes of float32, 8 of bfloat16.
template <class T>
struct alignas(4 * sizeof(T)) Quad {
  T v[4];
};
template <class T>
bool quad_aligned(const T* p) { return reinterpret_cast<uintptr_t>(p) % sizeof(Quad<T>) == 0; }
template <class T>
__device__ Quad<T> load_quad(const T* p) { return *reinterpret_cast<const Quad<T>*>(p); }
template <class T>
__device__ void store_quad(T* p, const Quad<T>& q) { *reinterpret_cast<Quad<T>*>(p) = q; }

// for_each_element four values at a time: body(offsets) for the first of every four consecutive elements,
// whose four values lie contiguous, Quad-aligned, in each of the N layouts. Most of the models' elementwise
// work is rows of contiguous values (whole tensors, slices of whole rows, a bias broadcast along rows); read
// and written one value a thread, it reached about a third of the memory bandwidth, with one wide access per
// tensor per four values most of it. That needs the layouts in runs of 4 (in_runs_of, tensor/strided_layout.h)
// and every base pointer Quad-aligned (`aligned`). Returns false, having done nothing, otherwise.
template <int N, class Body>
bool for_each_quad(const Shape& shape, const std::array<Strides, N>& strides, bool aligned, Body body) {
  if (!aligned) return false;
  const std::optional<CollapsedLayout<N>> quads = in_runs_of<N>(4, shape, strides);
  if (!quads) return false;
  for_each_element<N>(quads->shape, quads->strides, body);
  return true;
}

// Launches a kernel of `threads` per block that needs `bytes` of dynamic shared memory (asking for more
// than the default 48 KiB).
template <class Kernel, class... Args>
void launch(Kernel kernel, dim3 grid, int threads, size_t bytes, Args... args) {
  if (bytes > 48 * 1024)
    SSM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  kernel<<<grid, threads, bytes, stream()>>>(args...);
  SSM_CUDA_CHECK_LAUNCH();
}

// How many blocks of `kernel` (`threads` each, `bytes` of dynamic shared memory) the whole GPU holds at once.
// A grid-stride kernel launched with that many runs in one wave, with no tail of a second, partial one.
template <class Kernel>
int64_t resident_blocks(Kernel kernel, int threads, size_t bytes) {
  int device = 0, sms = 0, per_sm = 0;
  SSM_CUDA_CHECK(cudaGetDevice(&device));
  SSM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  if (bytes > 48 * 1024)  // (the occupancy query counts on the launch's opt-in, as launch() sets it)
    SSM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  SSM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, bytes));
  return static_cast<int64_t>(std::max(per_sm, 1)) * sms;
}

// The most dynamic shared memory a block of this device may ask for.
inline size_t shared_limit() {
  static const size_t limit = [] {
    int device = 0, bytes = 0;
    SSM_CUDA_CHECK(cudaGetDevice(&device));
    SSM_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    return static_cast<size_t>(bytes);
  }();
  return limit;
}

}  // namespace ssm::cuda
