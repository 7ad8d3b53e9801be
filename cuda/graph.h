// cuda/graph.h — capturing the work queued on the backend's stream into a CUDA graph, for replay.
//
// A model's decoding step is hundreds of small kernels; launched one by one, each costs the host a few
// microseconds of C++ and a launch, and the GPU waits between them. Captured once into a graph, the
// whole step re-runs with one cudaGraphLaunch and the kernels follow each other back to back. The graph
// replays the same kernels on the same addresses: its inputs are tensors written in place before each
// replay and its outputs tensors the captured work wrote, which the caching allocator keeps reserved
// (a capture pool, cuda/caching_allocator.h) for as long as the graph lives.
#pragma once
#include <functional>
#include <memory>

#include "cuda/caching_allocator.h"
#include "tensor/backend.h"

namespace ssm::cuda {

// Runs `work` with the stream in capture mode (its kernels are recorded, not run) and returns the
// instantiated graph. Relaxed capture mode: the allocator may still cudaMalloc new blocks meanwhile.
std::unique_ptr<CapturedWork> capture_graph(CachingAllocator& allocator, const std::function<void()>& work);

}  // namespace ssm::cuda
