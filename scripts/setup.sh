#!/usr/bin/env bash
# Set up edgekit in a local virtualenv (.venv, or $EDGEKIT_VENV) on a Debian machine with Python 3.11.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${EDGEKIT_VENV:-.venv}
PYTHON=${PYTHON:-python3}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need_apt=()
# Debian splits venv/ensurepip out of python3; TVM links compiled models with the system g++.
"$PYTHON" -c "import ensurepip, venv" 2>/dev/null || need_apt+=("python3-venv")
command -v g++ >/dev/null || need_apt+=("g++")
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${need_apt[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
# torch first, pinned: this version is the CPU build; any other spec pulls a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "[setup] installing torch 2.13.0 (CPU)"
  "${PIP[@]}" torch==2.13.0
fi
echo "[setup] installing edgekit and its pinned dependencies (apache-tvm 0.27.0.post1, apache-tvm-ffi 0.1.14.post0)"
"${PIP[@]}" -e ".[dev]"
"$VENV/bin/python" -c "import tvm, onnxruntime, edgekit; print(f'[setup] ready: edgekit {edgekit.__version__}, tvm {tvm.__version__}, onnxruntime {onnxruntime.__version__}')"
