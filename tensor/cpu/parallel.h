// tensor/cpu/parallel.h — the one place the CPU backend opens OpenMP parallel regions.
//
// A parallel region costs a few microseconds; a 16-element add costs nanoseconds. So work is only
// split across threads when its size (in elements touched, or a cost estimate) passes a threshold.
// Without OpenMP everything here runs serially. Bodies must not throw (exceptions cannot leave an
// OpenMP region): kernels validate everything before they get here.
#pragma once
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ssm::cpu {

// Below this many elements of work a kernel runs on the calling thread.
inline constexpr int64_t kParallelGrain = 32768;

inline int max_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

// Run body(i) for i in [0, count), split across threads when total_work >= kParallelGrain.
template <class Body>
void parallel_for(int64_t count, int64_t total_work, Body&& body) {
#ifdef _OPENMP
  if (total_work >= kParallelGrain && count > 1 && max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
#else
  (void)total_work;
#endif
  for (int64_t i = 0; i < count; ++i) body(i);
}

}  // namespace ssm::cpu
