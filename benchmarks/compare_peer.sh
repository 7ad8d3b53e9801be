#!/usr/bin/env bash
# benchmarks/compare_peer.sh — our whole-model benchmark and the PyTorch peer, one after the other in the
# same call, with the same flags (both accept --preset, --config, --threads, --batch, --seqlen, --steps,
# --warmup, --decode-batches, --decode-tokens):
#   bash benchmarks/compare_peer.sh --threads 2                       # ~1M default, batch 16 x 256
#   bash benchmarks/compare_peer.sh --threads 1 --decode-batches 1
#   SSM_BUILD=build/gpu SSM_PYTHON=python3 SSM_PEER_ARGS="--dtype bf16" \
#     bash benchmarks/compare_peer.sh --device cuda --batch 16 --seqlen 256   # on a GPU (peer in bf16 autocast)
# Needs a release build (SSM_BUILD, default build/release), ../shared/ref/peer_bench.py (SSM_PEER) and
# PyTorch for /usr/bin/python3 (SSM_PYTHON; Debian: apt-get install python3-torch). SSM_PEER_ARGS are
# extra flags for the peer only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SSM_BUILD:-$root/build/release}
peer=${SSM_PEER:-$root/../shared/ref/peer_bench.py}
[ -x "$build/bench_lm" ] || { echo "compare_peer: no $build/bench_lm (build first, or set SSM_BUILD)" >&2; exit 1; }
[ -f "$peer" ] || { echo "compare_peer: no peer at $peer (set SSM_PEER)" >&2; exit 1; }
python=${SSM_PYTHON:-/usr/bin/python3}
"$python" -c 'import torch' 2>/dev/null || { echo "compare_peer: $python has no torch (apt-get install python3-torch)" >&2; exit 1; }
"$build/bench_lm" "$@"
# shellcheck disable=SC2086  # SSM_PEER_ARGS is a list of flags
"$python" "$peer" "$@" ${SSM_PEER_ARGS:-}
