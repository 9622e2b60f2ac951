#!/usr/bin/env bash
# The GPU window: one command on a GPU machine, from the repository root with .device/ carried
# (made here by `node packages/backend-cuda/scripts/bundle-device.mjs`; see
# packages/backend-cuda/GPU.md):
#
#   bash scripts/gpu-window.sh OUT SECONDS
#
# Unpacks Node, the bundles, the fatbins, koffi and Dawn from .device/ into
# $PEFT_GPU_WINDOW_RUN_DIR (default $TMPDIR/peft-gpu-window; xz, or Python's lzma module where xz
# is missing), then runs scripts/gpu-window.mjs: the stages smoke,
# llama, conformance, neox and webgpu, each under its time-out, each leaving OUT/<n>-<stage>.json,
# all within SECONDS counted from now.
#
# PEFT_GPU_WINDOW_EMULATE=1: the same stages on the host emulator with this machine's node (no
# unpacking). `bash scripts/gpu-window.sh --unpack DIR` only unpacks .device/ into DIR and prints
# the packed node's version.
set -euo pipefail
started=$(date +%s)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
caller=$PWD
cd "$root"

have() { command -v "$1" >/dev/null 2>&1; }

# decompress FILE.xz DEST: xz, else Python's lzma module.
decompress() {
  if have xz; then
    xz -dc "$1" >"$2"
  elif have python3; then
    echo "gpu-window: no xz here: decompressing $1 with python3's lzma module"
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  else
    echo "gpu-window: cannot decompress $1: neither xz nor python3 is here" >&2
    return 1
  fi
}

# untar FILE.tar.xz DIR: tar with xz, else Python's tarfile module.
untar() {
  if have xz; then
    xz -dc "$1" | tar -x -C "$2"
  elif have python3; then
    echo "gpu-window: no xz here: unpacking $1 with python3's tarfile module"
    python3 -c '
import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as t:
    t.extractall(sys.argv[2], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
' "$1" "$2"
  else
    echo "gpu-window: cannot unpack $1: neither xz nor python3 is here" >&2
    return 1
  fi
}

# unpack DIR: .device/node-*.xz → DIR/node, .device/*.tar.xz → DIR/ (skipped when DIR holds this packing already).
unpack() {
  local dir=$1 node_xz stamp
  node_xz=$(ls .device/node-*.xz 2>/dev/null | head -n 1 || true)
  if [ -z "$node_xz" ]; then
    echo "gpu-window: no .device/node-*.xz: pack on the dev machine first (node packages/backend-cuda/scripts/bundle-device.mjs) and carry .device/" >&2
    return 1
  fi
  stamp=$(ls -l .device/*.xz | sha256sum | cut -c1-16)
  if [ -x "$dir/node" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "gpu-window: $dir is unpacked already"
    return 0
  fi
  # Only a folder this script made (it has .stamp) or an empty one is replaced.
  if [ -n "$(ls -A "$dir" 2>/dev/null)" ] && [ ! -e "$dir/.stamp" ]; then
    echo "gpu-window: $dir is not empty and was not unpacked here: name another folder" >&2
    return 1
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  decompress "$node_xz" "$dir/node.tmp" && chmod +x "$dir/node.tmp" && mv "$dir/node.tmp" "$dir/node"
  for archive in .device/*.tar.xz; do
    [ -e "$archive" ] || { echo "gpu-window: no .device/*.tar.xz: pack again (bundle-device.mjs) and carry all of .device/" >&2; return 1; }
    untar "$archive" "$dir"
  done
  echo "$stamp" >"$dir/.stamp"
  echo "gpu-window: unpacked .device into $dir in $(($(date +%s) - started)) s"
}

if [ "${1:-}" = "--unpack" ]; then
  [ $# -eq 2 ] || { echo "usage: bash scripts/gpu-window.sh --unpack DIR" >&2; exit 64; }
  dir=$(cd "$caller" && mkdir -p "$2" && cd "$2" && pwd)
  unpack "$dir"
  echo "gpu-window: node $("$dir/node" --version)"
  exit 0
fi
if [ $# -ne 2 ]; then
  echo "usage: bash scripts/gpu-window.sh OUT SECONDS  (see packages/backend-cuda/GPU.md)" >&2
  exit 64
fi
out=$(cd "$caller" && mkdir -p "$1" && cd "$1" && pwd)

if [ "${PEFT_GPU_WINDOW_EMULATE:-}" = "1" ]; then
  node=$(command -v node) || { echo "gpu-window: emulator mode needs node on PATH" >&2; exit 1; }
else
  # Outside .device/, so that .device/ stays what was packed (and what the transfer size counted).
  run="${PEFT_GPU_WINDOW_RUN_DIR:-${TMPDIR:-/tmp}/peft-gpu-window}"
  unpack "$run"
  node="$run/node"
  export PEFT_GPU_WINDOW_DIST="$run/peft/dist"
  export NODE_PATH="$run/node_modules"
fi
export PEFT_GPU_WINDOW_STARTED=$started
exec "$node" scripts/gpu-window.mjs "$out" "$2"
