// cuda/reduce.cu — sum/max/min over any set of dims, and cumsum, on the GPU.
//
// A reduction splits x's dims into kept ones (indexing the output) and reduced ones (folded), each
// group collapsed (tensor/strided_layout.h). Each output is folded by a team of threads:
//   * a whole warp when x's innermost dim is reduced and contiguous (a norm over features): the
//     32 lanes read neighbouring elements, then combine their partial results by shuffles;
//   * one thread otherwise (a sum over tokens of a [tokens, features] tensor): neighbouring threads
//     own neighbouring outputs, so their reads are neighbours too;
//   * and when there are too few outputs to keep the GPU busy, each fold is split in segments folded
//     side by side, and a second pass folds the segments' results.
// Sums accumulate in float64 for float64, int64 for integers and float32 otherwise; max/min let NaN win.
#include <cuda/std/limits>

#include "cuda/device_types.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace ssm::cuda {
namespace {

template <class T>
using Acc = std::conditional_t<std::is_integral_v<T>, int64_t, std::conditional_t<std::is_same_v<T, double>, double, float>>;

template <class A>
__device__ A fold_init(ReduceOp op) {
  if (op == ReduceOp::Sum) return A(0);
  if constexpr (std::is_floating_point_v<A>) {
    return op == ReduceOp::Max ? -::cuda::std::numeric_limits<A>::infinity() : ::cuda::std::numeric_limits<A>::infinity();
  } else {
    return op == ReduceOp::Max ? ::cuda::std::numeric_limits<A>::lowest() : ::cuda::std::numeric_limits<A>::max();
  }
}

template <class A>
__device__ A fold(ReduceOp op, A acc, A x) {
  if (op == ReduceOp::Sum) return acc + x;
  if (x != x || acc != acc) return x != x ? x : acc;
  return op == ReduceOp::Max ? (x > acc ? x : acc) : (x < acc ? x : acc);
}

__device__ inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

template <class A>
__device__ A shuffle_down(A v, int lane_delta) {
  return __shfl_down_sync(0xffffffffu, v, lane_delta);
}

// Each fold is done by `team` consecutive threads (1 or 32). A fold is one output's reduced elements,
// or with splits > 1 one of `splits` consecutive segments of them, whose result goes to partial[o·splits +
// segment] for a second pass to fold (see reduce()). A warp folds one segment (its lanes read neighbours);
// lone threads fold the same segment of neighbouring outputs, so that their reads are neighbours.
template <class T, class Out>
__global__ void reduce_kernel(ReduceOp op, const T* x, Out* out, int64_t n_out, int64_t n_reduced,
                              StridedIndex<2> kept, StridedIndex<1> reduced, int team, int64_t splits,
                              int64_t segment) {
  using A = Acc<T>;
  // Grid-stride over folds; the 32 lanes of a team share a fold, so a warp loops (and shuffles) together.
  for (int64_t thread = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; thread / team < n_out * splits;
       thread += int64_t{gridDim.x} * blockDim.x) {
    const int64_t fold_index = thread / team;
    const int64_t o = team == 1 ? fold_index % n_out : fold_index / splits;
    const int64_t seg = team == 1 ? fold_index / n_out : fold_index % splits;
    const int lane = static_cast<int>(thread % team);
    int64_t kept_off[2];
    kept.offsets(o, kept_off);
    const int64_t end = splits == 1 ? n_reduced : imin(n_reduced, (seg + 1) * segment);
    A acc = fold_init<A>(op);
    for (int64_t r = seg * segment + lane; r < end; r += team) {
      int64_t reduced_off[1];
      reduced.offsets(r, reduced_off);
      acc = fold<A>(op, acc, convert<A>(x[kept_off[0] + reduced_off[0]]));
    }
    if (team == 32) {
      for (int delta = 16; delta > 0; delta /= 2) acc = fold<A>(op, acc, shuffle_down(acc, delta));
    }
    if (lane == 0) out[splits == 1 ? kept_off[1] : o * splits + seg] = convert<Out>(acc);
  }
}

// A thread per (segment, line), lines fastest so neighbouring threads read neighbouring lines. A line of
// `length` is walked in the cumsum's order (k = 0, 1, ..; element i = k, or length − 1 − k in reverse) and cut
// into segments of `segment` steps; segment s covers k in [s·segment, (s+1)·segment). With one segment per
// line (segment ≥ length) this is the whole cumsum, a thread per line; with several, a first pass
// (segment_sums_kernel) writes each segment's sum and this pass starts each segment from the sum of the
// segments before it, in segment order — a fixed order, so results are the same run to run. x and out never
// overlap (the backend's contract), and saying so (__restrict__) lets the unrolled loop issue the next loads
// before the previous sums are stored: the loads no longer wait for each other, only the additions do.
template <class T>
using CumsumAcc = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

struct CumsumLines {
  int64_t n_lines, length, segment, x_step, out_step;
  StridedIndex<2> lines;
  bool reverse;
  __device__ int64_t element(int64_t k) const { return reverse ? length - 1 - k : k; }
};

// Thread i's segment: line i % n_lines, segment i / n_lines, the line's offsets in x and out, and the
// segment's steps [k_begin, k_end).
struct Segment {
  int64_t line, seg, k_begin, k_end;
  int64_t off[2];
  __device__ Segment(const CumsumLines& c, int64_t i) : line(i % c.n_lines), seg(i / c.n_lines) {
    k_begin = seg * c.segment;
    k_end = imin(c.length, k_begin + c.segment);
    c.lines.offsets(line, off);
  }
};

template <class T>
__global__ void segment_sums_kernel(const T* __restrict__ x, CumsumAcc<T>* __restrict__ sums, CumsumLines c,
                                    int64_t n_segments) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < c.n_lines * n_segments;
       i += int64_t{gridDim.x} * blockDim.x) {
    const Segment g(c, i);
    CumsumAcc<T> acc = 0;
#pragma unroll 8
    for (int64_t k = g.k_begin; k < g.k_end; ++k) acc += convert<CumsumAcc<T>>(x[g.off[0] + c.element(k) * c.x_step]);
    sums[i] = acc;
  }
}

template <class T>
__global__ void cumsum_kernel(const T* __restrict__ x, T* __restrict__ out, const CumsumAcc<T>* __restrict__ sums,
                              CumsumLines c, int64_t n_segments) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < c.n_lines * n_segments;
       i += int64_t{gridDim.x} * blockDim.x) {
    const Segment g(c, i);
    CumsumAcc<T> acc = 0;
    for (int64_t s = 0; s < g.seg; ++s) acc += sums[s * c.n_lines + g.line];
#pragma unroll 8
    for (int64_t k = g.k_begin; k < g.k_end; ++k) {
      const int64_t e = c.element(k);
      acc += convert<CumsumAcc<T>>(x[g.off[0] + e * c.x_step]);
      out[g.off[1] + e * c.out_step] = convert<T>(acc);
    }
  }
}

}  // namespace

// Threads that keep the GPU busy; a reduction with fewer folds than this splits them (below).
constexpr int64_t kBusyThreads = 64 * 1024;
// Elements per split fold, at least, per thread of its team: a lone thread's loads are strided and each
// waits its turn in the sum, so its segments are short; a warp's 32 lanes share a segment.
constexpr int64_t kMinSegmentPerThread = 16;
// A cumsum cuts its lines into segments until about this many threads walk them (a segment's thread is
// lighter than a fold's: one load and one store a step, no shuffles), each segment at least
// kMinCumsumSegment steps long: a segment costs a second read of its elements and a sum of the segments
// before it.
constexpr int64_t kCumsumThreads = 256 * 1024;
constexpr int64_t kMinCumsumSegment = 64;

void reduce(ReduceOp op, const Tensor& x, const Tensor& out) {
  Shape kept_shape, reduced_shape;
  Strides kept_x, kept_out, reduced_x;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (out.shape()[d] == x.shape()[d]) {
      kept_shape.push_back(x.shape()[d]);
      kept_x.push_back(x.strides()[d]);
      kept_out.push_back(out.strides()[d]);
    } else {
      reduced_shape.push_back(x.shape()[d]);
      reduced_x.push_back(x.strides()[d]);
    }
  }
  const StridedIndex<2> kept = strided_index<2>(kept_shape, {kept_x, kept_out});
  const StridedIndex<1> reduced = strided_index<1>(reduced_shape, {reduced_x});
  const int64_t n_out = out.numel(), n_reduced = numel(reduced_shape);
  if (n_out == 0) return;
  const bool row_mode = reduced.rank > 0 && reduced.strides[0][reduced.rank - 1] == 1 && n_reduced >= 32;
  const int team = row_mode ? 32 : 1;
  // Few long folds (a parameter's gradient summed over every token, a norm of a whole tensor) would leave
  // most of the GPU idle while each thread or warp walks thousands of elements. Split each fold into
  // segments folded side by side into partial[n_out, splits], then fold those partials in a second pass.
  // The order of the additions is fixed by the sizes alone, so results stay the same from run to run.
  const int64_t splits = std::clamp<int64_t>(
      std::min(kBusyThreads / (n_out * team), n_reduced / (kMinSegmentPerThread * team)), 1, 4096);
  const int64_t segment = (n_reduced + splits - 1) / splits;
  dispatch_device_numeric(x.dtype(), "reduce", [&](auto t) {
    using T = decltype(t);
    using A = Acc<T>;
    const T* x_data = static_cast<const T*>(x.raw_data());
    T* out_data = static_cast<T*>(out.raw_data());
    if (splits == 1) {
      reduce_kernel<T, T><<<blocks_for(n_out * team), kThreads, 0, stream()>>>(op, x_data, out_data, n_out, n_reduced,
                                                                              kept, reduced, team, 1, n_reduced);
      SSM_CUDA_CHECK_LAUNCH();
      return;
    }
    const Tensor partial = Tensor::empty({n_out * splits}, dtype_of<A>::value, Device::cuda());
    reduce_kernel<T, A><<<blocks_for(n_out * splits * team), kThreads, 0, stream()>>>(
        op, x_data, partial.data<A>(), n_out, n_reduced, kept, reduced, team, splits, segment);
    SSM_CUDA_CHECK_LAUNCH();
    // pass 2: partial row o (contiguous, `splits` long) folds into out at o's place
    Strides partial_strides(kept_shape.size());
    for (int64_t d = static_cast<int64_t>(kept_shape.size()) - 1, step = splits; d >= 0; --d) {
      partial_strides[d] = step;
      step *= kept_shape[d];
    }
    const int team2 = splits >= 32 ? 32 : 1;
    reduce_kernel<A, T><<<blocks_for(n_out * team2), kThreads, 0, stream()>>>(
        op, partial.data<A>(), out_data, n_out, splits, strided_index<2>(kept_shape, {partial_strides, kept_out}),
        strided_index<1>(Shape{splits}, {Strides{1}}), team2, 1, splits);
    SSM_CUDA_CHECK_LAUNCH();
  });
}

void cumsum(const Tensor& x, int64_t dim, bool reverse, const Tensor& out) {
  Shape lines_shape = x.shape();
  Strides lines_x = x.strides(), lines_out = out.strides();
  lines_shape.erase(lines_shape.begin() + dim);
  lines_x.erase(lines_x.begin() + dim);
  lines_out.erase(lines_out.begin() + dim);
  const int64_t n_lines = numel(lines_shape), length = x.shape()[dim];
  if (n_lines == 0 || length == 0) return;
  // Few long lines (the rotary angles' cumsum over 2048 tokens: 6144 lines at the 130M model) would keep a
  // few SMs busy for the whole scan, each thread walking its line alone: cut them into segments instead.
  const int64_t n_segments = std::clamp<int64_t>(
      std::min(kCumsumThreads / n_lines, length / kMinCumsumSegment), 1, 4096);
  const CumsumLines c{n_lines, length, (length + n_segments - 1) / n_segments, x.strides()[dim], out.strides()[dim],
                      strided_index<2>(lines_shape, {lines_x, lines_out}), reverse};
  dispatch_device_numeric(x.dtype(), "cumsum", [&](auto t) {
    using T = decltype(t);
    using A = CumsumAcc<T>;
    const T* x_data = static_cast<const T*>(x.raw_data());
    Tensor sums;
    if (n_segments > 1) {
      sums = Tensor::empty({n_segments * n_lines}, dtype_of<A>::value, Device::cuda());
      segment_sums_kernel<T><<<blocks_for(n_lines * n_segments), kThreads, 0, stream()>>>(x_data, sums.data<A>(), c,
                                                                                          n_segments);
      SSM_CUDA_CHECK_LAUNCH();
    }
    cumsum_kernel<T><<<blocks_for(n_lines * n_segments), kThreads, 0, stream()>>>(
        x_data, static_cast<T*>(out.raw_data()), sums.defined() ? sums.data<A>() : nullptr, c, n_segments);
    SSM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ssm::cuda
