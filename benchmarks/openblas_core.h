// benchmarks/openblas_core.h — make sure OpenBLAS, our benchmarks' yardstick, runs its best kernels.
//
// OpenBLAS picks its kernels by CPU model once, when the library loads. Older releases (Debian 12
// ships 0.3.21) do not know recent Xeons and fall back to their generic "Prescott" (SSE3) kernels:
// on this project's Sapphire-Rapids-class CI machine that is ~30 GFLOP/s instead of ~175 on two
// cores, and every "ours vs OpenBLAS" ratio and the CPU utilisation (whose denominator is OpenBLAS)
// would look 5× better than it is. OPENBLAS_CORETYPE overrides the choice but must be set before
// the library loads, so a benchmark that finds the generic kernels on a CPU with AVX-512 or AVX2
// runs itself again with OPENBLAS_CORETYPE=SkylakeX or Haswell (saying so on stderr). A user's own
// OPENBLAS_CORETYPE is left alone.
#pragma once
#if SSM_HAVE_OPENBLAS
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" char* openblas_get_corename(void);

namespace bench {

// Call first in main(): returns (with the best kernels loaded) or re-executes the program.
inline void use_best_openblas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const char* core = openblas_get_corename();
  if (core == nullptr || strcasecmp(core, "prescott") != 0) return;
  __builtin_cpu_init();
  const char* best = __builtin_cpu_supports("avx512f") ? "SkylakeX" : __builtin_cpu_supports("avx2") ? "Haswell" : nullptr;
  if (best == nullptr) return;  // the generic kernels are the right ones
  std::fprintf(stderr, "note: OpenBLAS chose its generic %s kernels on this CPU; running again with OPENBLAS_CORETYPE=%s\n",
               core, best);
  setenv("OPENBLAS_CORETYPE", best, 1);
  execv("/proc/self/exe", argv);
  std::perror("note: could not re-execute; OpenBLAS figures use its generic kernels");  // execv returned
}

inline const char* openblas_core() { return openblas_get_corename(); }

}  // namespace bench
#endif
