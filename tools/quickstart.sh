#!/usr/bin/env bash
# tools/quickstart.sh — install dependencies, build, and run the main program.
# For now that is the autograd demo (a two-layer network fitted by this engine's autograd);
# arguments are passed on to it (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" --target ssm-autograd-demo
./build/release/ssm-autograd-demo "$@"
