// tensor/cpu/dot.h — Σ a_i b_i, fast and reproducible; shared by the GEMM's few-rows path and the
// chunked scans' elementwise passes.
//
// Eight independent partial sums, combined in a fixed order: the compiler vectorises the loop (a
// plain `acc += a*b` loop is one dependent add per element, ~4 cycles each, which in the scans'
// elementwise passes cost as much as their GEMMs). Deterministic: the order depends on n only.
#pragma once
#include <cstdint>

namespace ssm::cpu {

template <class T>
inline T dot(const T* a, const T* b, int64_t n) {
  T s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  T r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

}  // namespace ssm::cpu
