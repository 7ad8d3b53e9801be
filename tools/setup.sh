#!/usr/bin/env bash
# tools/setup.sh — install what the build needs on Debian/Ubuntu, only where it is missing.
# Used by tools/quickstart.sh and tools/test.sh; safe to run repeatedly.
set -euo pipefail

packages=(cmake g++ make libgtest-dev libbenchmark-dev libopenblas-dev nlohmann-json3-dev libtomlplusplus-dev libcurl4-openssl-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages the tests use to read our checkpoints the way PyTorch users do (safetensors'
# own parser). Best effort: without them that one test skips and says why.
if ! python3 -c "import safetensors, numpy" 2>/dev/null; then
  echo "setup: installing the Python packages safetensors and numpy"
  python3 -m pip install --quiet safetensors numpy 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages safetensors numpy ||
    echo "setup: warning: could not install safetensors/numpy; the Python read-back test will skip" >&2
fi
