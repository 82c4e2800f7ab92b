#!/usr/bin/env bash
# One command on a fresh machine: set up, then export, compile, run and check the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec "${EDGEKIT_VENV:-.venv}/bin/python" scripts/demo.py "$@"
