// ssm/ssd_chunk_core.cpp — the generic chunked SSD of one sequence as GEMMs (contract in ssd_chunk_core.h).
//
// Notation per chunk: q time steps starting at t0, m = q·R rows starting at row i0 = t0·R; row i of the
// chunk belongs to step t(i) = i / R. Matrices are chunk-local and row-major:
//   Q, K  m×N     V, Y, dY  m×P     S_c, dS  P×N     Λ, M, dM  m×m
// Λ is kept at row level (Λ_ij = e^{cs_t(i) − cs_t(j)} for t(j) ≤ t(i)), so every masked product is a
// plain elementwise pass over the lower block triangle j < (t(i)+1)·R, whatever R is.
//
// Why Λ is built by products, not by exp: Λ has m² entries but only q distinct decay factors e^{a_t};
// one exp per entry (what a direct exp(seg_ts) costs) would take longer than all the GEMMs of the chunk.
// Row (t, 0) of Λ is row (t−1, 0) times e^{a_t}, with 1 on the diagonal block; the ranks of one step
// share the row. Every factor is e^{a} (≤ 1 for a ≤ 0), so nothing overflows — unlike the factorised
// e^{cs_t}·e^{−cs_s}, which overflows once cs_s < −88 (float) — and the relative error grows only by
// one rounding per step of distance (≤ chunk roundings, far inside every tolerance we test).
#include "ssm/ssd_chunk_core.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ssm/ssd_prefetch.h"
#include "tensor/cpu/aligned_buffer.h"
#include "tensor/cpu/gemm.h"

namespace ssm::ssd {
namespace {

// Per-thread scratch, sized for the largest chunk seen so far and reused (grow-only), so that
// steady-state calls never allocate. The buffers are cache-line aligned (tensor/cpu/aligned_buffer.h):
// a GEMM operand of exactly 16 float columns is then read in place rather than packed
// (tensor/cpu/gemm.cpp), which at P = N = 16 is most of the chunk's products.
template <class T>
struct Scratch {
  T *lam, *mm, *dm;          // m×m: Λ (row level), M = (Q Kᵀ) ⊙ Λ, dM
  T *qc, *kc, *vc, *yc;      // the chunk's rows of Q, K (m×N), V and Y or dY (m×P), contiguous
  T *kq, *vw;                // m×N: w-scaled K / e^{cs}-scaled Q;  m×P: w-scaled V
  T *dql, *dkl, *dvl;        // chunk-local dQ, dK (m×N) and dV (m×P)
  T *ds, *dsc;               // P×N: dS = ∂ℒ/∂S_{c+1}, dS_c = ∂ℒ/∂S_c
  T *ecs, *dcs, *rsum, *csum; // e^{cs_t}, ∂ℒ/∂cs_t (q); row and column sums of Ξ (m)

  void fit(int64_t m, int64_t q, int64_t N, int64_t P) {
    cpu::AlignedBuffer* next = buffers;
    for (T** v : {&lam, &mm, &dm}) *v = (next++)->get<T>(m * m);
    for (T** v : {&kq, &dql, &dkl, &qc, &kc}) *v = (next++)->get<T>(m * N);
    for (T** v : {&vw, &dvl, &vc, &yc}) *v = (next++)->get<T>(m * P);
    for (T** v : {&ds, &dsc}) *v = (next++)->get<T>(P * N);
    for (T** v : {&ecs, &dcs}) *v = (next++)->get<T>(q);
    for (T** v : {&rsum, &csum}) *v = (next++)->get<T>(m);
  }

 private:
  cpu::AlignedBuffer buffers[18];  // one per array above
};

template <class T>
Scratch<T>& thread_scratch(int64_t m, int64_t q, int64_t N, int64_t P) {
  thread_local Scratch<T> s;
  s.fit(m, q, N, P);
  return s;
}

// dst (m×w, row stride w) = src rows (view), or the other way round.
template <class T>
void load_rows(int64_t m, int64_t w, RowsView<const T> src, T* dst) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < w; ++j) dst[i * w + j] = src.row(i)[j];
}
// The same with row i scaled by weight[i / R] (rows (t, r) share step t's weight).
template <class T>
void load_weighted_rows(int64_t m, int64_t w, int64_t R, RowsView<const T> src, StridedVec<const T> weight, T* dst) {
  for (int64_t i = 0; i < m; ++i) {
    const T scale = weight[i / R];
    for (int64_t j = 0; j < w; ++j) dst[i * w + j] = scale * src.row(i)[j];
  }
}
template <class T>
void store_rows(int64_t m, int64_t w, const T* src, RowsView<T> dst, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    T* d = dst.row(i);
    const T* s = src + i * w;
    if (accumulate)
      for (int64_t j = 0; j < w; ++j) d[j] += s[j];
    else
      for (int64_t j = 0; j < w; ++j) d[j] = s[j];
  }
}

// A view of the rows of one chunk of a view.
template <class T>
RowsView<T> chunk_rows(RowsView<T> v, int64_t first_row) {
  return {v.row(first_row), v.row_stride};
}

// The chunk of time steps [t0, t0+q) of a problem, its rows of Q, K, V copied into contiguous
// scratch (row strides N, N, P). Why copy: the callers' rows are strided — one head inside
// [.., H, N], H·N values apart; at the ~1M model's 1280 bytes, the 64 rows of a chunk fall into
// only 16 of L1's 64 sets, and a chunk's operands evict one another between its dozen products.
// Contiguous, they stay in L1 for the whole chunk (and the GEMMs read them in place).
template <class T>
struct Chunk {
  int64_t t0, q, m, i0;  // first step, steps, rows (q·R), first row (t0·R)
  const T *Q, *K, *V;

  Chunk(const ChunkProblem<T>& p, int64_t c, Scratch<T>& w)
      : t0(c * p.chunk), q(std::min(p.chunk, p.steps - c * p.chunk)), m(q * p.rank), i0(t0 * p.rank),
        Q(w.qc), K(w.kc), V(w.vc) {
    load_rows(m, p.N, chunk_rows(p.q, i0), w.qc);
    if (p.k_weight.data)
      load_weighted_rows(m, p.N, p.rank, chunk_rows(p.k, i0), {&p.k_weight[t0], p.k_weight.stride}, w.kc);
    else
      load_rows(m, p.N, chunk_rows(p.k, i0), w.kc);
    load_rows(m, p.P, chunk_rows(p.v, i0), w.vc);
  }
};

// x·e, flushed to 0 once it falls below the smallest normal number. A decay that small contributes
// nothing (relative 1e-38 in float), but left alone the products would go on as subnormals, which
// the CPU handles in slow microcode — and in float that happens within a chunk (cs < −87, e.g.
// 64 steps of dt·A = −1.4).
template <class T>
inline T decay_product(T x, T e) {
  const T v = x * e;
  return v < std::numeric_limits<T>::min() ? T(0) : v;
}

// ecs[t] = e^{cs_t} (cs = chunk-local inclusive cumsum of a, §2.4 step 1) and the row-level mask Λ
// (m×m, row stride m; only the lower block triangle j < (t(i)+1)·R is written, §2.4 step 2).
template <class T>
void build_decay(const ChunkProblem<T>& p, const Chunk<T>& ch, T* ecs, T* lam) {
  const int64_t R = p.rank, m = ch.m;
  for (int64_t t = 0; t < ch.q; ++t) {
    const T e = std::exp(p.a[ch.t0 + t]);
    ecs[t] = t == 0 ? e : decay_product(ecs[t - 1], e);  // e^{cs_t}, by the same products as Λ
    T* row = lam + t * R * m;
    if (t > 0) {  // Λ_{t,s} = Λ_{t−1,s} · e^{a_t} for s < t
      const T* prev = row - R * m;
      for (int64_t j = 0; j < t * R; ++j) row[j] = decay_product(prev[j], e);
    }
    std::fill(row + t * R, row + (t + 1) * R, T(1));  // s = t: e^0, for every rank pair
    for (int64_t r = 1; r < R; ++r) std::memcpy(row + r * m, row, static_cast<size_t>((t + 1) * R) * sizeof(T));
  }
}

// M = G ⊙ Λ in place on the lower block triangle, 0 above it (so full GEMMs with M stay causal).
template <class T>
void apply_mask(int64_t m, int64_t R, const T* lam, T* g) {
  for (int64_t i = 0; i < m; ++i) {
    const int64_t jmax = (i / R + 1) * R;
    T* gi = g + i * m;
    const T* li = lam + i * m;
    for (int64_t j = 0; j < jmax; ++j) gi[j] *= li[j];
    std::fill(gi + jmax, gi + m, T(0));
  }
}

// Causal products touch only the lower block triangle of the m×m matrices. Splitting the rows into
// bands of ~kBandRows (R-aligned, so a band never cuts a step's diagonal block) lets each band's GEMM
// stop at the band's last column (or start at its first row, for the transposed products): about
// 5/8 of the full work at m = 128, 3/4 at m = 64, for a few more (small) GEMM calls.
constexpr int64_t kBandRows = 32;  // measured: 16 and 64 were no better at chunk 32..128 (P = N = 16)

template <class F>
void for_each_band(int64_t m, int64_t R, F&& band) {
  const int64_t h = std::max<int64_t>(R, (kBandRows / R) * R);
  for (int64_t r0 = 0; r0 < m; r0 += h) band(r0, std::min(m, r0 + h));
}

}  // namespace

template <class T>
void chunk_forward(const ChunkProblem<T>& p, const T* s0, RowsView<T> y, T* states, int64_t state_stride,
                   bool accumulate) {
  const int64_t N = p.N, P = p.P, R = p.rank, PN = P * N;
  if (s0 == nullptr)
    std::fill(states, states + PN, T(0));
  else if (s0 != states)
    std::memcpy(states, s0, static_cast<size_t>(PN) * sizeof(T));
  if (p.steps <= 0) return;
  const int64_t max_q = std::min(p.chunk, p.steps);
  Scratch<T>& w = thread_scratch<T>(max_q * R, max_q, N, P);

  for (int64_t c = 0; c < p.nchunks(); ++c) {
    const Chunk<T> ch(p, c, w);
    const int64_t m = ch.m;
    const T* Sc = states + c * state_stride;
    T* Sn = states + (c + 1) * state_stride;
    T* Y = w.yc;  // the chunk's Y, stored into y at the end
    T *lam = w.lam, *M = w.mm, *ecs = w.ecs;
    prefetch_chunk(p, c + 1, y.data, y.row_stride);  // Y rows are written: fetch them too
    build_decay(p, ch, ecs, lam);

    // §2.4 step 3: M = (Q Kᵀ) ⊙ Λ (band rows [r0, r1) need columns < r1 only).
    for_each_band(m, R, [&](int64_t r0, int64_t r1) {
      cpu::gemm(r1 - r0, r1, N, T(1), ch.Q + r0 * N, N, 1, ch.K, 1, N, T(0), M + r0 * m, m);
    });
    apply_mask(m, R, lam, M);

    // §2.4 steps 3 and 6: Y = M V, then Y += (diag(e^{cs_t}) Q) S_cᵀ.
    for_each_band(m, R, [&](int64_t r0, int64_t r1) {
      cpu::gemm(r1 - r0, P, r1, T(1), M + r0 * m, m, 1, ch.V, P, 1, T(0), Y + r0 * P, P);
    });
    T* qe = w.kq;
    for (int64_t i = 0; i < m; ++i) {
      const T e = ecs[i / R];
      for (int64_t n = 0; n < N; ++n) qe[i * N + n] = e * ch.Q[i * N + n];
    }
    cpu::gemm(m, P, N, T(1), qe, N, 1, Sc, 1, N, T(1), Y, P);
    store_rows(m, P, Y, chunk_rows(y, ch.i0), accumulate);

    // §2.4 steps 4–5: S_{c+1} = e^T S_c + Vᵀ diag(w) K with w_i = e^{T − cs_t(i)} = Λ_{last row, i}.
    const T* wrow = lam + (m - 1) * m;
    T* kw = w.kq;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t n = 0; n < N; ++n) kw[i * N + n] = wrow[i] * ch.K[i * N + n];
    const T eT = ecs[ch.q - 1];
    for (int64_t e = 0; e < PN; ++e) Sn[e] = eT * Sc[e];
    cpu::gemm(P, N, m, T(1), ch.V, 1, P, kw, N, 1, T(1), Sn, N);
  }
}

template <class T>
void chunk_backward(const ChunkProblem<T>& p, const T* states, int64_t state_stride, RowsView<const T> dy,
                    const T* ds_final, const ChunkGrads<T>& grads) {
  const int64_t N = p.N, P = p.P, R = p.rank, PN = P * N;
  const bool acc = grads.accumulate;
  const int64_t max_q = std::max<int64_t>(1, std::min(p.chunk, p.steps));
  Scratch<T>& w = thread_scratch<T>(max_q * R, max_q, N, P);
  T* dS = w.ds;   // ∂ℒ/∂S_{c+1}
  T* dSc = w.dsc; // ∂ℒ/∂S_c, built during chunk c
  if (ds_final)
    std::memcpy(dS, ds_final, static_cast<size_t>(PN) * sizeof(T));
  else
    std::fill(dS, dS + PN, T(0));

  for (int64_t c = p.nchunks() - 1; c >= 0; --c) {
    const Chunk<T> ch(p, c, w);
    const int64_t m = ch.m, q = ch.q;
    const T* Sc = states + c * state_stride;
    T* dY = w.yc;  // the chunk's rows of dY, contiguous like Q, K, V
    load_rows(m, P, chunk_rows(dy, ch.i0), dY);
    T *lam = w.lam, *M = w.mm, *dM = w.dm, *ecs = w.ecs, *dcs = w.dcs;
    T *kq = w.kq, *vw = w.vw, *dQ = w.dql, *dK = w.dkl, *dV = w.dvl;
    T *rsum = w.rsum, *csum = w.csum;
    prefetch_chunk(p, c - 1, dy.data, dy.row_stride);
    if (c > 0) prefetch_rows(states + (c - 1) * state_stride, 1, 0, PN);  // S_{c−1}, written long ago
    build_decay(p, ch, ecs, lam);
    for_each_band(m, R, [&](int64_t r0, int64_t r1) {  // recompute M = (Q Kᵀ) ⊙ Λ
      cpu::gemm(r1 - r0, r1, N, T(1), ch.Q + r0 * N, N, 1, ch.K, 1, N, T(0), M + r0 * m, m);
    });
    apply_mask(m, R, lam, M);
    std::fill(dcs, dcs + q, T(0));
    const T eT = ecs[q - 1];
    T dT = 0;

    // Step 1, the state update S_{c+1} = e^T S_c + Σ_s w_s V_s K_sᵀ (w_s = e^{T−cs_s} = Λ_{last, s}):
    //   dV_s = w_s dS K_s  → dV = diag(w) K dSᵀ;    dK_s = w_s dSᵀ V_s  → dK = diag(w) V dS;
    //   g_s = w_s V_sᵀ dS K_s = V_s · dV_s;  dcs_s −= g_s;  dT += Σ g_s + e^T <dS, S_c>;  dS_c = e^T dS.
    const T* wrow = lam + (m - 1) * m;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t n = 0; n < N; ++n) kq[i * N + n] = wrow[i] * ch.K[i * N + n];
      for (int64_t j = 0; j < P; ++j) vw[i * P + j] = wrow[i] * ch.V[i * P + j];
    }
    cpu::gemm(m, P, N, T(1), kq, N, 1, dS, 1, N, T(0), dV, P);
    cpu::gemm(m, N, P, T(1), vw, P, 1, dS, N, 1, T(0), dK, N);
    for (int64_t i = 0; i < m; ++i) {
      const T* vi = ch.V + i * P;
      const T g = cpu::dot(vi, dV + i * P, P);
      dcs[i / R] -= g;
      dT += g;
    }
    for (int64_t e = 0; e < PN; ++e) dSc[e] = eT * dS[e];
    dT += eT * cpu::dot(dS, Sc, PN);

    // Step 2, Y_off_t = e^{cs_t} S_c Q_t:
    //   dQ_t = e^{cs_t} S_cᵀ dY_t  → dQ = diag(e^{cs}) dY S_c;   dcs_t += e^{cs_t} dY_tᵀ S_c Q_t = dQ_t · Q_t;
    //   dS_c += Σ_t e^{cs_t} dY_t Q_tᵀ  → dS_c += dYᵀ diag(e^{cs}) Q.
    cpu::gemm(m, N, P, T(1), dY, P, 1, Sc, N, 1, T(0), dQ, N);
    for (int64_t i = 0; i < m; ++i) {
      const T e = ecs[i / R];
      const T* qi = ch.Q + i * N;
      T* dqi = dQ + i * N;
      for (int64_t n = 0; n < N; ++n) {
        dqi[n] *= e;
        kq[i * N + n] = e * qi[n];  // kq now holds diag(e^{cs}) Q
      }
      dcs[i / R] += cpu::dot(dqi, qi, N);
    }
    cpu::gemm(P, N, m, T(1), dY, 1, P, kq, N, 1, T(1), dSc, N);

    // Step 3, Y_diag = M V with M = (Q Kᵀ) ⊙ Λ:
    //   dM = (dY Vᵀ) ⊙ causal;  dV += Mᵀ dY;  Ξ = dM ⊙ M: dcs_t += Σ_s Ξ_ts, dcs_s −= Σ_t Ξ_ts;
    //   dQ += (dM ⊙ Λ) K;  dK += (dM ⊙ Λ)ᵀ Q.
    // Bands: rows [r0, r1) of dM need columns < r1; rows [r0, r1) of Mᵀ (columns of M) need M's rows ≥ r0.
    for_each_band(m, R, [&](int64_t r0, int64_t r1) {
      cpu::gemm(r1 - r0, r1, P, T(1), dY + r0 * P, P, 1, ch.V, 1, P, T(0), dM + r0 * m, m);
      cpu::gemm(r1 - r0, P, m - r0, T(1), M + r0 * m + r0, 1, m, dY + r0 * P, P, 1, T(1), dV + r0 * P, P);
    });
    std::fill(csum, csum + m, T(0));
    for (int64_t i = 0; i < m; ++i) {
      const int64_t jmax = (i / R + 1) * R;
      T* dmi = dM + i * m;
      const T* mi = M + i * m;
      const T* li = lam + i * m;
      rsum[i] = cpu::dot(dmi, mi, jmax);
      for (int64_t j = 0; j < jmax; ++j) {
        csum[j] += dmi[j] * mi[j];
        dmi[j] *= li[j];
      }
      std::fill(dmi + jmax, dmi + m, T(0));
    }
    for (int64_t i = 0; i < m; ++i) dcs[i / R] += rsum[i] - csum[i];
    for_each_band(m, R, [&](int64_t r0, int64_t r1) {
      cpu::gemm(r1 - r0, N, r1, T(1), dM + r0 * m, m, 1, ch.K, N, 1, T(1), dQ + r0 * N, N);
      cpu::gemm(r1 - r0, N, m - r0, T(1), dM + r0 * m + r0, 1, m, ch.Q + r0 * N, N, 1, T(1),
                dK + r0 * N, N);
    });

    // Step 4: dcs_{q−1} += dT, then da_τ = Σ_{t≥τ} dcs_t (a reverse cumsum inside the chunk).
    dcs[q - 1] += dT;
    T run = 0;
    for (int64_t t = q - 1; t >= 0; --t) {
      run += dcs[t];
      T& da = grads.da[ch.t0 + t];
      da = acc ? da + run : run;
    }
    store_rows(m, N, dQ, chunk_rows(grads.dq, ch.i0), acc);
    store_rows(m, N, dK, chunk_rows(grads.dk, ch.i0), acc);
    store_rows(m, P, dV, chunk_rows(grads.dv, ch.i0), acc);

    // Step 5: carry ∂ℒ/∂S_c to the previous chunk.
    std::swap(dS, dSc);
  }
  store_rows(1, PN, dS, RowsView<T>{grads.ds0, PN}, acc);
}

template void chunk_forward<float>(const ChunkProblem<float>&, const float*, RowsView<float>, float*, int64_t, bool);
template void chunk_forward<double>(const ChunkProblem<double>&, const double*, RowsView<double>, double*, int64_t,
                                    bool);
template void chunk_backward<float>(const ChunkProblem<float>&, const float*, int64_t, RowsView<const float>,
                                    const float*, const ChunkGrads<float>&);
template void chunk_backward<double>(const ChunkProblem<double>&, const double*, int64_t, RowsView<const double>,
                                     const double*, const ChunkGrads<double>&);

}  // namespace ssm::ssd
