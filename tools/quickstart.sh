#!/usr/bin/env bash
# tools/quickstart.sh — install dependencies, build the tools, and pretrain the ~1M-parameter default
# model: ssm-train --experiment tinystories-mamba3. Arguments are passed on to ssm-train, e.g.
#   bash tools/quickstart.sh                                        # downloads TinyStories (HF_ENDPOINT honoured)
#   bash tools/quickstart.sh --tinystories-dir ../shared/data/tinystories   # offline: a local copy or the sample
#   bash tools/quickstart.sh --set steps=200                        # a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" --target ssm-train ssm-infer ssm-generate
exec ./build/release/ssm-train --experiment tinystories-mamba3 "$@"
