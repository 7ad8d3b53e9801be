// ssm/ssd_core.h — which engine computes one sequence's SSD on the CPU (the contract of
// ssm/ssd_chunk_core.h): the recurrence on vector registers (ssd_recurrent_core.h) for the head shapes
// it is compiled for, on CPUs where it is the faster one (AVX-512); the chunked GEMMs for every other
// case. Both write the same Y, chunk states and gradients up to rounding, and
// tests/test_ssd_chunk_core.cpp holds each to the sequential definition.
#pragma once
#include "ssm/ssd_chunk_core.h"
#include "ssm/ssd_recurrent_core.h"

namespace ssm::ssd {

inline bool use_recurrence(int64_t P, int64_t N) { return recurrent_is_fast_here() && recurrent_supports(P, N); }

template <class T>
void sequence_forward(const ChunkProblem<T>& p, const T* s0, RowsView<T> y, T* states, int64_t state_stride,
                      bool accumulate = false) {
  if (use_recurrence(p.P, p.N))
    recurrent_forward(p, s0, y, states, state_stride, accumulate);
  else
    chunk_forward(p, s0, y, states, state_stride, accumulate);
}

template <class T>
void sequence_backward(const ChunkProblem<T>& p, const T* states, int64_t state_stride, RowsView<const T> dy,
                       const T* ds_final, const ChunkGrads<T>& grads) {
  if (use_recurrence(p.P, p.N))
    recurrent_backward(p, states, state_stride, dy, ds_final, grads);
  else
    chunk_backward(p, states, state_stride, dy, ds_final, grads);
}

}  // namespace ssm::ssd
