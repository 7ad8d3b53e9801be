#!/usr/bin/env bash
# benchmarks/compare_peer.sh — our whole-model benchmark and the PyTorch peer, one after the other in the
# same call, with the same flags (both accept --preset, --config, --threads, --batch, --seqlen, --steps,
# --warmup, --decode-batches, --decode-tokens):
#   bash benchmarks/compare_peer.sh --threads 2                       # ~1M default, batch 16 x 256
#   bash benchmarks/compare_peer.sh --threads 1 --decode-batches 1
# Needs a release build (SSM_BUILD, default build/release), ../shared/ref/peer_bench.py (SSM_PEER) and
# PyTorch for /usr/bin/python3 (Debian: apt-get install python3-torch).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SSM_BUILD:-$root/build/release}
peer=${SSM_PEER:-$root/../shared/ref/peer_bench.py}
[ -x "$build/bench_lm" ] || { echo "compare_peer: no $build/bench_lm (build first, or set SSM_BUILD)" >&2; exit 1; }
[ -f "$peer" ] || { echo "compare_peer: no peer at $peer (set SSM_PEER)" >&2; exit 1; }
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "compare_peer: /usr/bin/python3 has no torch (apt-get install python3-torch)" >&2; exit 1; }
"$build/bench_lm" "$@"
/usr/bin/python3 "$peer" "$@"
