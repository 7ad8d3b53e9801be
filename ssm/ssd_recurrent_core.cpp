// ssm/ssd_recurrent_core.cpp — the SSD recurrence of one sequence on vector registers (contract and math
// in ssd_recurrent_core.h).
//
// Layouts. The state h (P×N) is held as vectors: by columns, Col h[n] = h[:, n] (P values), or by
// rows, Row h[p] = h[p, :] (N values). Each product of the recurrence then is a sum of vectors
// scaled by broadcast scalars:
//   forward, by columns:  h[:, n] = e^{a} h[:, n] + Σ_r V_r · K_r[n],     Y_r = Σ_n Q_r[n] · h[:, n]
//   backward, by rows:    dQ_r = Σ_p dY_r[p] · h[p, :],                  dK_r = Σ_p V_r[p] · G[p, :]
//   backward, by columns: dV_r = Σ_n K_r[n] · G[:, n]
// so G is kept both ways (each update done twice, which costs less than the horizontal sums a single
// layout would need), and the replayed states by rows, which is also the layout of the stored S_c.
// P and N are template arguments, so the compiler keeps the vectors in registers and unrolls the
// loops over them.
#include "ssm/ssd_recurrent_core.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ssm/ssd_prefetch.h"
#include "tensor/cpu/aligned_buffer.h"
#include "tensor/cpu/vector_clones.h"
#include "tensor/error.h"

namespace ssm::ssd {
namespace {

// W values of T in one vector (GCC/Clang vector extension: elementwise + − ×, a scalar operand is
// broadcast). W·sizeof(T) may exceed the widest register; the compiler then uses several. Aligned
// only as T: a vector's natural alignment depends on the instruction set (16 bytes in the baseline
// build, 32 in the AVX2 clone), so memory one clone allocates could break another's aligned moves.
template <class T, int W>
struct VecOf {
  typedef T type __attribute__((vector_size(W * sizeof(T)), aligned(sizeof(T))));
};
template <class T, int W>
using Vec = typename VecOf<T, W>::type;

// Rows in memory carry only T's alignment, so vectors move through memcpy (an unaligned load/store).
// GCC warns that returning a vector wider than the baseline's registers has another ABI with AVX;
// these helpers are inlined into each clone and never called across one, so there is no ABI to match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
template <class V, class T>
V load(const T* src) {
  V v;
  std::memcpy(&v, src, sizeof v);
  return v;
}
template <class V, class T>
void store(const V& v, T* dst, bool add) {
  const V out = add ? v + load<V>(dst) : v;
  std::memcpy(dst, &out, sizeof out);
}

// The state between memory (P×N row-major, the chunk states' layout) and the column vectors.
template <class T, int P, int N>
void columns_from(const T* state, Vec<T, P>* col) {
  for (int n = 0; n < N; ++n)
    for (int p = 0; p < P; ++p) col[n][p] = state ? state[p * N + n] : T(0);
}
template <class T, int P, int N>
void columns_to(const Vec<T, P>* col, T* state) {
  for (int p = 0; p < P; ++p)
    for (int n = 0; n < N; ++n) state[p * N + n] = col[n][p];
}

// How many steps ahead the forward kernel prefetches a step's rows (ssd_prefetch.h; the backward loads
// windows of rows instead, kTouchSteps below).
constexpr int64_t kAhead = 8;

template <class T>
T key_weight(const ChunkProblem<T>& p, int64_t t) {
  return p.k_weight.data ? p.k_weight[t] : T(1);
}

// Per-thread scratch, grown on demand:
// * a chunk's decays e^{a_t}, computed before its steps run: exp is a call, and around a call every
//   vector register (the state) would be saved and restored;
// * (backward) its replayed states h_{t0−1} .. h_{t0+q−1} by rows;
// * (backward) the overlaps G_t ⊙ h_{t−1} summed over rows, whose sums over n (da) are taken after the
//   chunk: summing a vector's values inside the step loop went through the stack.
template <class T>
struct Scratch {
  cpu::AlignedBuffer decays, states, overlaps;
};

template <class T>
T* chunk_decays(const ChunkProblem<T>& p, int64_t t0, int64_t steps, cpu::AlignedBuffer& room) {
  T* decay = room.template get<T>(steps);
  for (int64_t s = 0; s < steps; ++s) decay[s] = std::exp(p.a[t0 + s]);
  return decay;
}

// The backward's rows of time steps [t0, t1), loaded into cache before its walks (ssd_prefetch.h,
// touch_rows): Q, K, V, dY to be read, dQ and dV to be written. dK goes to the caller's scratch, in order.
template <class T>
void touch_backward_rows(const ChunkProblem<T>& p, int64_t t0, int64_t t1, RowsView<const T> dy,
                         const ChunkGrads<T>& g) {
  const int64_t i0 = t0 * p.rank, rows = (t1 - t0) * p.rank;
  touch_rows(p.q.row(i0), rows, p.q.row_stride, p.N);
  touch_rows(p.k.row(i0), rows, p.k.row_stride, p.N);
  touch_rows(p.v.row(i0), rows, p.v.row_stride, p.P);
  touch_rows(dy.row(i0), rows, dy.row_stride, p.P);
  touch_rows<T>(g.dq.row(i0), rows, g.dq.row_stride, p.N);
  touch_rows<T>(g.dv.row(i0), rows, g.dv.row_stride, p.P);
}

// The backward touches its rows a window of kTouchSteps time steps (whole chunks) at a time: ~100 KB at the
// ~1M model's heads, at most ~400 KB at the largest compiled shapes with R = 4, so a window stays in L2
// while its chunks run.
constexpr int64_t kTouchSteps = 128;

template <class T, int P, int N>
SSM_VECTOR_CLONES_AVX512 void forward_kernel(const ChunkProblem<T>& p, const T* s0, RowsView<T> y, T* states,
                                         int64_t state_stride, bool accumulate) {
  using Col = Vec<T, P>;
  thread_local Scratch<T> scratch;
  Col h[N];  // h_t by columns
  columns_from<T, P, N>(s0, h);
  columns_to<T, P, N>(h, states);  // S_0 (s0 may alias it)
  const int64_t R = p.rank;
  for (int64_t c = 0; c < p.nchunks(); ++c) {
    const int64_t t0 = c * p.chunk, steps = std::min(p.chunk, p.steps - t0);
    const T* decay = chunk_decays(p, t0, steps, scratch.decays);
    for (int64_t t = t0; t < t0 + steps; ++t) {
      prefetch_steps(p, t + kAhead, t + kAhead + 1, y.data, y.row_stride);
      const T w = key_weight(p, t);
      for (int n = 0; n < N; ++n) h[n] *= decay[t - t0];
      for (int64_t i = t * R; i < (t + 1) * R; ++i) {
        const Col v = load<Col>(p.v.row(i)) * w;
        const T* k = p.k.row(i);
        for (int n = 0; n < N; ++n) h[n] += k[n] * v;
      }
      for (int64_t i = t * R; i < (t + 1) * R; ++i) {
        const T* q = p.q.row(i);
        Col even{}, odd{};  // two chains of dependent adds, not one
        for (int n = 0; n < N; n += 2) {
          even += q[n] * h[n];
          odd += q[n + 1] * h[n + 1];
        }
        store(even + odd, y.row(i), accumulate);
      }
    }
    columns_to<T, P, N>(h, states + (c + 1) * state_stride);
  }
}

template <class T, int P, int N>
SSM_VECTOR_CLONES_AVX512 void backward_kernel(const ChunkProblem<T>& p, const T* states, int64_t state_stride,
                                          RowsView<const T> dy, const T* ds_final, const ChunkGrads<T>& g) {
  using Col = Vec<T, P>;
  using Row = Vec<T, N>;
  thread_local Scratch<T> scratch;
  const int64_t R = p.rank;
  const bool acc = g.accumulate;
  Row G[P];   // G_t = ∂ℒ/∂h_t by rows
  Col Gc[N];  // and by columns
  for (int row = 0; row < P; ++row) G[row] = ds_final ? load<Row>(ds_final + row * N) : Row{};
  columns_from<T, P, N>(ds_final, Gc);
  const int64_t max_steps = std::min(p.chunk, p.steps);
  Row* hist = reinterpret_cast<Row*>(scratch.states.template get<T>((max_steps + 1) * P * N));
  Row* overlaps = reinterpret_cast<Row*>(scratch.overlaps.template get<T>(max_steps * N));

  const int64_t window = std::max<int64_t>(1, kTouchSteps / p.chunk);  // chunks per touched window
  for (int64_t c = p.nchunks() - 1; c >= 0; --c) {
    const int64_t t0 = c * p.chunk, steps = std::min(p.chunk, p.steps - t0);
    if (c > 0) prefetch_rows(states + (c - 1) * state_stride, 1, 0, P * N);
    if (c % window == window - 1 || c == p.nchunks() - 1)  // the walk back enters window c / window
      touch_backward_rows(p, (c / window) * window * p.chunk, t0 + steps, dy, g);
    const T* decay = chunk_decays(p, t0, steps, scratch.decays);
    // Replay: hist[s] = h_{t0+s−1} by rows, from hist[0] = S_c.
    for (int row = 0; row < P; ++row) hist[row] = load<Row>(states + c * state_stride + row * N);
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = t0 + s;
      const T w = key_weight(p, t);
      const Row* prev = hist + s * P;
      Row* cur = hist + (s + 1) * P;
      for (int row = 0; row < P; ++row) cur[row] = prev[row] * decay[s];
      for (int64_t i = t * R; i < (t + 1) * R; ++i) {
        const Row k = load<Row>(p.k.row(i)) * w;
        const T* v = p.v.row(i);
        for (int row = 0; row < P; ++row) cur[row] += v[row] * k;
      }
    }
    // Reverse: G_t = e^{a_{t+1}} G_{t+1} + Σ_r dY_{t,r} Q_{t,r}ᵀ, then the step's gradients.
    for (int64_t s = steps - 1; s >= 0; --s) {
      const int64_t t = t0 + s;
      const T w = key_weight(p, t);
      const Row *h = hist + (s + 1) * P, *h_prev = hist + s * P;
      for (int64_t i = t * R; i < (t + 1) * R; ++i) {
        const T *dyi = dy.row(i), *qi = p.q.row(i);
        const Row q_row = load<Row>(qi);
        const Col dy_col = load<Col>(dyi);
        for (int row = 0; row < P; ++row) G[row] += dyi[row] * q_row;
        for (int n = 0; n < N; ++n) Gc[n] += qi[n] * dy_col;
      }
      for (int64_t i = t * R; i < (t + 1) * R; ++i) {
        const T *dyi = dy.row(i), *v = p.v.row(i), *k = p.k.row(i);
        Row dq{}, dk{};
        for (int row = 0; row < P; ++row) {
          dq += dyi[row] * h[row];
          dk += v[row] * G[row];
        }
        Col dv{};
        for (int n = 0; n < N; ++n) dv += k[n] * Gc[n];
        store(dq, g.dq.row(i), acc);
        store(dk, g.dk.row(i), acc);
        store(dv * w, g.dv.row(i), acc);
      }
      Row overlap{};  // ⟨G_t, h_{t−1}⟩ before its sum over n
      for (int row = 0; row < P; ++row) overlap += G[row] * h_prev[row];
      overlaps[s] = overlap;
      for (int row = 0; row < P; ++row) G[row] *= decay[s];
      for (int n = 0; n < N; ++n) Gc[n] *= decay[s];
    }
    for (int64_t s = 0; s < steps; ++s) {
      const T* overlap = reinterpret_cast<const T*>(overlaps + s);
      T dot = 0;
      for (int n = 0; n < N; ++n) dot += overlap[n];
      T& da = g.da[t0 + s];
      da = acc ? da + decay[s] * dot : decay[s] * dot;
    }
  }
  for (int row = 0; row < P; ++row) store(G[row], g.ds0 + row * N, acc);
}

// The kernels for each supported (P, N), looked up at run time.
template <class T>
struct Kernels {
  decltype(&forward_kernel<T, 8, 8>) forward;
  decltype(&backward_kernel<T, 8, 8>) backward;
};

template <class T, int P>
Kernels<T> kernels_for_n(int64_t N) {
  switch (N) {
    case 8: return {forward_kernel<T, P, 8>, backward_kernel<T, P, 8>};
    case 16: return {forward_kernel<T, P, 16>, backward_kernel<T, P, 16>};
    case 32: return {forward_kernel<T, P, 32>, backward_kernel<T, P, 32>};
    default: return {nullptr, nullptr};
  }
}

template <class T>
Kernels<T> kernels(int64_t P, int64_t N) {
  switch (P) {
    case 8: return kernels_for_n<T, 8>(N);
    case 16: return kernels_for_n<T, 16>(N);
    case 32: return kernels_for_n<T, 32>(N);
    default: return {nullptr, nullptr};
  }
}

}  // namespace

bool recurrent_supports(int64_t P, int64_t N) { return kernels<float>(P, N).forward != nullptr; }

bool recurrent_is_fast_here() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return avx512;
#else
  return false;
#endif
}

template <class T>
Kernels<T> kernels_checked(const ChunkProblem<T>& p) {
  const Kernels<T> k = kernels<T>(p.P, p.N);
  SSM_CHECK(k.forward != nullptr, "ssd recurrence: no kernel for heads of P = ", p.P, ", N = ", p.N,
            " (compiled for 8, 16 and 32 each; recurrent_supports says which)");
  return k;
}

template <class T>
void recurrent_forward(const ChunkProblem<T>& p, const T* s0, RowsView<T> y, T* states, int64_t state_stride,
                       bool accumulate) {
  kernels_checked(p).forward(p, s0, y, states, state_stride, accumulate);
}

template <class T>
void recurrent_backward(const ChunkProblem<T>& p, const T* states, int64_t state_stride, RowsView<const T> dy,
                        const T* ds_final, const ChunkGrads<T>& grads) {
  kernels_checked(p).backward(p, states, state_stride, dy, ds_final, grads);
}

template void recurrent_forward<float>(const ChunkProblem<float>&, const float*, RowsView<float>, float*, int64_t,
                                       bool);
template void recurrent_forward<double>(const ChunkProblem<double>&, const double*, RowsView<double>, double*,
                                        int64_t, bool);
template void recurrent_backward<float>(const ChunkProblem<float>&, const float*, int64_t, RowsView<const float>,
                                        const float*, const ChunkGrads<float>&);
template void recurrent_backward<double>(const ChunkProblem<double>&, const double*, int64_t, RowsView<const double>,
                                         const double*, const ChunkGrads<double>&);

}  // namespace ssm::ssd
