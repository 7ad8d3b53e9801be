#!/usr/bin/env bash
# tools/gpu_test.sh — the GPU test command, for a machine with an NVIDIA GPU (CI has none: there the Cuda*
# tests skip, saying so). Builds for this GPU, runs the whole suite (the Cuda* tests now run for real, and
# the tools' end-to-end tests train on the GPU), then runs the CUDA tests again under compute-sanitizer
# memcheck, which fails on any out-of-bounds or misaligned device access or CUDA API error (blocks the
# caching allocator keeps until exit are by design, so leaks are not checked).
#   bash tools/gpu_test.sh                                    # install, build in build/gpu, test
#   SSM_BUILD=build/gpu SSM_SKIP_BUILD=1 bash tools/gpu_test.sh  # test an existing build
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SSM_BUILD:-build/gpu}
command -v nvidia-smi >/dev/null && nvidia-smi -L || { echo "gpu_test: no NVIDIA GPU visible (nvidia-smi)" >&2; exit 1; }
if [[ "${SSM_SKIP_BUILD:-0}" != 1 ]]; then
  bash tools/setup.sh
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSSM_CUDA=ON -DSSM_CUDA_ARCHITECTURES="$arch" >/dev/null
  cmake --build "$build" -j"$(nproc)"
fi
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

echo "== the CUDA tests"
"$build/ssm_tests" --gtest_filter='Cuda*' --gtest_brief=1
echo "== the whole suite"
"$build/ssm_tests" --gtest_brief=1
echo "== compute-sanitizer memcheck of the CUDA tests"
"$sanitizer" --tool memcheck --error-exitcode 1 "$build/ssm_tests" --gtest_filter='Cuda*' --gtest_brief=1
echo "== all GPU tests passed"
