// ssm/ssd_scan_chunked.cpp — the chunked Mamba-2 SSD scan and its chunked adjoint (spec §2.4, §2.6).
//
// The chunk work is the generic SSD of one sequence (ssm/ssd_core.h: GEMMs per chunk, or for small heads
// the same contract as a recurrence in registers), run once per (batch, head) sequence with R = 1 and,
// in the generic form of §2.4,
//   Q_t = C_t,  K_t = B_t  (the head's group; read in place, row stride G·N),
//   V_t = dt_t x_t  (built per sequence in a per-thread scratch),  a_t = dt_t A,
// then y = Y + D x. Forward keeps S_0 .. S_nchunks per (batch, head) in `states`, which backward reads.
// Backward maps the generic gradients back (§2.6, last paragraph):
//   dx_t = D dy_t + dt_t dV_t,  ddt_t = x_t·dV_t + A da_t,  dA = Σ dt_t da_t,  dD = Σ dy_t·x_t,
//   dB = Σ_{h∈group} dK_h,  dC = Σ_{h∈group} dQ_h.
//
// Threads: sequences (batch × head) run in parallel, each on one thread with its GEMMs serial. Every
// output element is produced by one fixed sequence of operations whatever the thread count: sums
// over heads (dB, dC when several heads share a group) and over batch (dA, dD) go through per-head
// buffers that are reduced afterwards in a fixed order. So results are bitwise identical from run
// to run and for any number of threads.
//
// CUDA tensors take the GPU path of ssm/scan_cuda.h (the same mapping as tensor ops around the GPU core).
#include <algorithm>
#include <memory>
#include <vector>

#include "ssm/scan_cuda.h"
#include "ssm/ssd_core.h"
#include "ssm/ssd_scan_function.h"
#include "tensor/cpu/parallel.h"

namespace ssm {
namespace {

// Per-thread scratch of one sequence: V = dt·x (L×P), a = dt·A (L), and in backward dV and da. Grow-only
// and kept by the thread (like the core's chunk scratch), so repeated calls do not allocate.
template <class T>
struct SeqScratch {
  std::vector<T> v, a, dv, da;
  static SeqScratch& get(int64_t L, int64_t P) {
    thread_local SeqScratch s;
    auto grow = [](std::vector<T>& b, int64_t n) {
      if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
    };
    grow(s.v, L * P);
    grow(s.dv, L * P);
    grow(s.a, L);
    grow(s.da, L);
    return s;
  }
};

// Rows of one head inside [batch, L, H, P] are H·P values apart (a page apart every few rows), so the
// hardware prefetchers miss them: the sweeps below ask for the row kAhead steps ahead themselves.
constexpr int64_t kAhead = 16;

// dt [batch, L, H] ↔ head-major [batch, H, L]. A head reads its dt (and writes its ddt) as one
// contiguous row instead of one value per 64-byte line, and two threads never write the same line of
// ddt (false sharing: neighbouring heads of a [.., H] row sit on one line).
template <class T>
void to_head_major(const SsdSizes& s, const T* src, T* dst) {
  cpu::parallel_for(s.batch * s.L, s.batch * s.L * s.H, [&](int64_t bt) {
    const int64_t b = bt / s.L, t = bt % s.L;
    for (int64_t h = 0; h < s.H; ++h) dst[(b * s.H + h) * s.L + t] = src[bt * s.H + h];
  });
}
template <class T>
void from_head_major(const SsdSizes& s, const T* src, T* dst) {
  cpu::parallel_for(s.batch * s.L, s.batch * s.L * s.H, [&](int64_t bt) {
    const int64_t b = bt / s.L, t = bt % s.L;
    for (int64_t h = 0; h < s.H; ++h) dst[bt * s.H + h] = src[(b * s.H + h) * s.L + t];
  });
}

template <class T>
std::unique_ptr<T[]> uninitialised(int64_t n) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(n)]);
}

// The generic problem of sequence (b, h): Q = C and K = B of the head's group (in place), V = dt·x and
// a = dt·A built into ws (dt_h: this head's dt, contiguous). With y given (forward), the same sweep
// writes y = D x, which the core then adds Y to (it reads the same rows of x: no second pass for y).
template <class T>
ssd::ChunkProblem<T> sequence_problem(const SsdSizes& s, int64_t b, int64_t h, const T* x, const T* dt_h,
                                      const T* A, const T* B, const T* C, const T* D, T* y, SeqScratch<T>& ws) {
  const int64_t P = s.P, g = s.group_of(h), rs = s.H * P, off = (b * s.L * s.H + h) * P;
  for (int64_t t = 0; t < s.L; ++t) {
    const T step = dt_h[t];
    ws.a[t] = step * A[h];
    const T* xt = x + off + t * rs;
    if (t + kAhead < s.L) __builtin_prefetch(xt + kAhead * rs);
    T* vt = ws.v.data() + t * P;
    for (int64_t p = 0; p < P; ++p) vt[p] = step * xt[p];
    if (y) {
      T* yt = y + off + t * rs;
      if (t + kAhead < s.L) __builtin_prefetch(yt + kAhead * rs, 1);
      for (int64_t p = 0; p < P; ++p) yt[p] = D[h] * xt[p];
    }
  }
  ssd::ChunkProblem<T> p;
  p.steps = s.L;
  p.rank = 1;
  p.N = s.N;
  p.P = P;
  p.chunk = s.Q;
  p.q = {C + (b * s.L * s.G + g) * s.N, s.G * s.N};
  p.k = {B + (b * s.L * s.G + g) * s.N, s.G * s.N};
  p.v = {ws.v.data(), P};
  p.a = {ws.a.data(), 1};
  return p;
}

// A cost estimate for parallel_for's threshold (multiply-adds per sequence, roughly).
int64_t scan_work(const SsdSizes& s) { return s.batch * s.H * s.L * (s.Q + s.P) * (s.P + s.N); }

struct ChunkedKernel {
  static constexpr const char* name = "ssd_scan_chunked";
  static int64_t stored_states(const SsdSizes& s) { return s.nchunks + 1; }  // S_0 .. S_nchunks
  static constexpr bool runs_on_cuda = true;

  static scan_cuda::ScanForward cuda_forward(const SsdSizes& s, const Tensor& x, const Tensor& dt, const Tensor& A,
                                             const Tensor& B, const Tensor& C, const Tensor& D, const Tensor& h0) {
    return scan_cuda::ssd_forward(s, x, dt, A, B, C, D, h0);
  }
  static std::vector<Tensor> cuda_backward(const SsdSizes& s, const Tensor& x, const Tensor& dt, const Tensor& A,
                                           const Tensor& B, const Tensor& C, const Tensor& D, const Tensor& states,
                                           const Tensor& dy, const Tensor& dh_final) {
    return scan_cuda::ssd_backward(s, x, dt, A, B, C, D, states, dy, dh_final);
  }

  template <class T>
  static void forward(const SsdSizes& s, const T* x, const T* dt, const T* A, const T* B, const T* C, const T* D,
                      const T* h0, T* y, T* states) {
    const int64_t PN = s.P * s.N, P = s.P;
    const std::unique_ptr<T[]> dt_hm = uninitialised<T>(s.batch * s.H * s.L);
    to_head_major(s, dt, dt_hm.get());
    cpu::parallel_for(s.batch * s.H, scan_work(s), [&](int64_t bh) {
      const int64_t b = bh / s.H, h = bh % s.H;
      SeqScratch<T>& ws = SeqScratch<T>::get(s.L, P);
      const ssd::ChunkProblem<T> p =
          sequence_problem(s, b, h, x, dt_hm.get() + bh * s.L, A, B, C, D, y, ws);  // and y = D x
      ssd::sequence_forward(p, h0 + bh * PN, ssd::RowsView<T>{y + (b * s.L * s.H + h) * P, s.H * P},
                            states + (b * (s.nchunks + 1) * s.H + h) * PN, s.H * PN, /*accumulate=*/true);
    });
  }

  template <class T>
  static void backward(const SsdSizes& s, const T* x, const T* dt, const T* A, const T* B, const T* C, const T* D,
                       const T* states, const T* dy, const T* dh_final, T* dx, T* ddt, T* dA, T* dB, T* dC, T* dD,
                       T* dh0) {
    const int64_t PN = s.P * s.N, P = s.P, N = s.N, L = s.L, H = s.H, G = s.G;
    // One head per group: each head owns its rows of dB and dC, written in place. Otherwise each head
    // writes its own dK, dQ (L×N, uninitialised: the core overwrites every row) for the reduction below.
    const bool own_group = H == G;
    std::unique_ptr<T[]> dk_heads, dq_heads;
    if (!own_group) {
      dk_heads = uninitialised<T>(s.batch * H * L * N);
      dq_heads = uninitialised<T>(s.batch * H * L * N);
    }
    const std::unique_ptr<T[]> dt_hm = uninitialised<T>(s.batch * H * L), ddt_hm = uninitialised<T>(s.batch * H * L);
    to_head_major(s, dt, dt_hm.get());
    std::vector<T> dA_part(static_cast<size_t>(s.batch * H)), dD_part(static_cast<size_t>(s.batch * H));

    cpu::parallel_for(s.batch * H, scan_work(s), [&](int64_t bh) {
      const int64_t b = bh / H, h = bh % H, g = s.group_of(h);
      SeqScratch<T>& ws = SeqScratch<T>::get(L, P);
      const T* dt_h = dt_hm.get() + bh * L;
      T* ddt_h = ddt_hm.get() + bh * L;
      const ssd::ChunkProblem<T> p = sequence_problem<T>(s, b, h, x, dt_h, A, B, C, D, nullptr, ws);
      ssd::ChunkGrads<T> gr;
      if (own_group) {
        gr.dq = {dC + (b * L * G + g) * N, G * N};
        gr.dk = {dB + (b * L * G + g) * N, G * N};
      } else {
        gr.dq = {dq_heads.get() + bh * L * N, N};
        gr.dk = {dk_heads.get() + bh * L * N, N};
      }
      gr.dv = {ws.dv.data(), P};
      gr.da = {ws.da.data(), 1};
      gr.ds0 = dh0 + bh * PN;
      const int64_t rs = H * P, off = (b * L * H + h) * P;
      ssd::sequence_backward(p, states + (b * (s.nchunks + 1) * H + h) * PN, H * PN,
                             ssd::RowsView<const T>{dy + off, rs}, dh_final + bh * PN, gr);

      // Map back to Mamba-2: V_t = dt_t x_t, a_t = dt_t A, y = Y + D x.
      T dA_acc = 0, dD_acc = 0;
      for (int64_t t = 0; t < L; ++t) {
        const T step = dt_h[t];
        const T *xt = x + off + t * rs, *dyt = dy + off + t * rs, *dvt = ws.dv.data() + t * P;
        T* dxt = dx + off + t * rs;
        if (t + kAhead < L) {
          __builtin_prefetch(xt + kAhead * rs);
          __builtin_prefetch(dyt + kAhead * rs);
          __builtin_prefetch(dxt + kAhead * rs, 1);
        }
        for (int64_t q = 0; q < P; ++q) dxt[q] = D[h] * dyt[q] + step * dvt[q];
        const T xdv = cpu::dot(xt, dvt, P);
        dD_acc += cpu::dot(dyt, xt, P);
        ddt_h[t] = xdv + A[h] * ws.da[t];
        dA_acc += step * ws.da[t];
      }
      dA_part[bh] = dA_acc;
      dD_part[bh] = dD_acc;
    });

    from_head_major(s, ddt_hm.get(), ddt);
    // Sums over heads and batch, each in a fixed order (deterministic for any thread count).
    if (!own_group) {
      const int64_t hpg = H / G;
      cpu::parallel_for(s.batch * L, s.batch * L * H * N, [&](int64_t bt) {
        const int64_t b = bt / L, t = bt % L;
        for (int64_t g = 0; g < G; ++g) {
          T* db = dB + (bt * G + g) * N;
          T* dc = dC + (bt * G + g) * N;
          for (int64_t h = g * hpg; h < (g + 1) * hpg; ++h) {
            const T* dk = dk_heads.get() + ((b * H + h) * L + t) * N;
            const T* dq = dq_heads.get() + ((b * H + h) * L + t) * N;
            for (int64_t n = 0; n < N; ++n) {
              db[n] += dk[n];
              dc[n] += dq[n];
            }
          }
        }
      });
    }
    for (int64_t h = 0; h < H; ++h)
      for (int64_t b = 0; b < s.batch; ++b) {
        dA[h] += dA_part[b * H + h];
        dD[h] += dD_part[b * H + h];
      }
  }
};

}  // namespace

ScanOutput ssd_scan_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                            const Tensor& D, const Tensor& initial_state, int64_t chunk_size) {
  return run_ssd_scan<ChunkedKernel>(x, dt, A, B, C, D, initial_state, chunk_size);
}

}  // namespace ssm
