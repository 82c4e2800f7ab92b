#!/usr/bin/env bash
# One command on a fresh machine: set up, then run the whole test suite (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Cross toolchain, qemu-user and cmake: the runner and arm64 tests build and run real binaries.
scripts/setup_cross.sh
# An aarch64 Python with ONNX Runtime for qemu: `edgekit estimate --reference` on arm targets.
scripts/setup_ort_aarch64.sh
# Headless Chromium and fonts: tests/test_report.py renders `edgekit report` pages and checks the console.
scripts/setup_report.sh
status=0
"${EDGEKIT_VENV:-.venv}/bin/python" -m pytest "$@" || status=$?
if [ "$status" = 5 ]; then
  # pytest's 5 means no test was collected: a broken selection, never a pass.
  echo "[test] pytest collected no tests" >&2
  exit 1
fi
exit "$status"
