// tensor/cpu/vector_clones.h — SSM_VECTOR_CLONES: compile one function twice, for the baseline x86-64
// (SSE2) and for x86-64-v3 (AVX2, FMA), and let the loader pick the clone this CPU runs (GCC's
// target_clones, resolved once through an ifunc).
//
// The build targets the baseline so that its binaries run on any x86-64 CPU; the GEMM has its own
// hand-written AVX2/AVX-512 kernels, but the fused ops' loops (the Mamba-3 output gate, keys, ...) were
// left 4 floats wide. Their per-channel loops vectorise twice as wide in the v3 clone (the output
// gate's forward ran ~2× faster, forward + backward ~1.5×). Put it on the function that holds the hot
// loops, not on a lambda (a lambda cannot be cloned); the inline helpers it calls are inlined into each
// clone, but a helper the compiler keeps out of line runs its baseline version. It only pays where the
// loops are compute-bound: on the chunked scan's loops (memory-bound) it measured no gain.
//
// FMA contraction makes the two clones differ in the last bits, as the GEMM's kernels of different
// widths already do; on one machine the same clone always runs, so results stay reproducible there.
//
// SSM_VECTOR_CLONES_AVX512 adds a third clone, x86-64-v4 (AVX-512), for code written on 16-float
// vectors that hold their data in registers (the SSD recurrence, ssm/ssd_recurrent_core.cpp). The
// fused ops' plain loops do not get it: GCC's AVX-512 versions of them measured slower than the AVX2
// ones (docs/09 §9.5).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SSM_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define SSM_VECTOR_CLONES_AVX512 __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SSM_VECTOR_CLONES
#define SSM_VECTOR_CLONES_AVX512
#endif
