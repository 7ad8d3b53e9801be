#!/usr/bin/env bash
# tools/test.sh — the test command (what .ci/run calls): install dependencies, build, run the suite,
# then run it again built with AddressSanitizer + UndefinedBehaviorSanitizer.
#   SSM_SKIP_SANITIZE=1 bash tools/test.sh   # only the release build
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
jobs=$(nproc)

echo "== release build and tests"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs"

if [[ "${SSM_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== ASan + UBSan build and tests"
  # The sanitizers instrument host code only; the CUDA backend was compiled (and its CPU-side tests
  # run) by the release build above, and GPU memory is checked by compute-sanitizer (tools/gpu_test.sh).
  cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSSM_SANITIZE=ON -DSSM_BUILD_BENCHMARKS=OFF \
    -DSSM_CUDA=OFF >/dev/null
  cmake --build build/sanitize -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build/sanitize --output-on-failure -j"$jobs"
fi
echo "== all tests passed"
