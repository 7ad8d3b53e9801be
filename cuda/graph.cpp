// cuda/graph.cpp — see graph.h.
#include "cuda/graph.h"

#include "cuda/check.h"
#include "cuda/context.h"

namespace ssm::cuda {
namespace {

class Graph final : public CapturedWork {
 public:
  Graph(cudaGraphExec_t exec, CachingAllocator& allocator, int pool) : exec_(exec), allocator_(allocator), pool_(pool) {}
  ~Graph() override {
    (void)cudaGraphExecDestroy(exec_);
    allocator_.release_pool(pool_);  // later work on the stream is queued after any replay still running
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  void replay() override { SSM_CUDA_CHECK(cudaGraphLaunch(exec_, stream())); }

 private:
  cudaGraphExec_t exec_;
  CachingAllocator& allocator_;
  int pool_;
};

}  // namespace

std::unique_ptr<CapturedWork> capture_graph(CachingAllocator& allocator, const std::function<void()>& work) {
  const int pool = allocator.begin_pool();
  cudaGraph_t graph = nullptr;
  try {
    SSM_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
    try {
      work();
    } catch (...) {
      (void)cudaStreamEndCapture(stream(), &graph);  // leave the stream usable
      (void)cudaGetLastError();
      if (graph != nullptr) (void)cudaGraphDestroy(graph);
      throw;
    }
    SSM_CUDA_CHECK(cudaStreamEndCapture(stream(), &graph));
    allocator.end_pool();
  } catch (...) {
    allocator.end_pool();
    allocator.release_pool(pool);
    throw;
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  if (status != cudaSuccess) allocator.release_pool(pool);
  SSM_CUDA_CHECK(status);
  return std::make_unique<Graph>(exec, allocator, pool);
}

}  // namespace ssm::cuda
