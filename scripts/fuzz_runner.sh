#!/usr/bin/env bash
# Fuzz the on-device runner's .npy reader (edgekit/runtime/runner/src/npy.cc) with libFuzzer, ASan and
# UBSan for a bounded time, starting from valid .npy files written by numpy.
#   scripts/fuzz_runner.sh [SECONDS]     (default 60; needs clang + libFuzzer: scripts/setup_cross.sh)
# Prints the number of runs and crashes; exits 1 if any input crashed the reader.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
work=${FUZZ_WORK:-build/fuzz}
python=${PYTHON:-.venv/bin/python}
src=edgekit/runtime/runner/src
mkdir -p "$work/seeds" "$work/corpus" "$work/crashes"

clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I "$src" edgekit/runtime/runner/fuzz/npy_fuzz.cc "$src/npy.cc" "$src/dtype.cc" -o "$work/npy_fuzz"

# Seeds: every dtype, 0-d to 4-d, empty arrays, format versions 1.0-3.0, and files the reader
# must refuse (Fortran order, big-endian, strings, structured, truncated).
"$python" - "$work/seeds" <<'PY'
import io, sys
from pathlib import Path
import numpy as np
from numpy.lib import format as npy_format

out = Path(sys.argv[1])
arrays = {
    "f4_image": np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4),
    "f8_scalar": np.array(3.5),
    "i8_vector": np.arange(5, dtype=np.int64),
    "u1_matrix": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "i1": np.array([-1, 2], dtype=np.int8), "i2": np.array([7], dtype=np.int16), "i4": np.zeros((2, 2), np.int32),
    "u2": np.array([1], np.uint16), "u4": np.array([1], np.uint32), "u8": np.array([1], np.uint64),
    "f2": np.array([1.5], np.float16), "bool": np.array([True, False]), "empty": np.zeros((0, 3), np.float32),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    "big_endian": np.arange(3, dtype=">f4"), "unicode": np.array(["ab"]),
    "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]),
}
for name, array in arrays.items():
    for version in [(1, 0), (2, 0), (3, 0)] if name == "f4_image" else [None]:
        buffer = io.BytesIO()
        npy_format.write_array(buffer, array, version=version, allow_pickle=False)
        data = buffer.getvalue()
        suffix = f"_v{version[0]}" if version else ""
        (out / f"{name}{suffix}.npy").write_bytes(data)
(out / "truncated.npy").write_bytes((out / "f4_image_v1.npy").read_bytes()[:-3])
PY

"$work/npy_fuzz" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 -timeout=10 \
  -dict=edgekit/runtime/runner/fuzz/npy.dict -artifact_prefix="$work/crashes/" \
  "$work/corpus" "$work/seeds" >"$work/fuzz.log" 2>&1 || true

runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz.log" | grep -o '[0-9]*$' | tail -1)
crashes=$(find "$work/crashes" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
echo "fuzz_runner: ${seconds} s, runs: ${runs:-0}, crashes: ${crashes}, corpus: $(find "$work/corpus" -type f | wc -l) inputs (log: $work/fuzz.log)"
if [ "$crashes" -gt 0 ] || [ -z "$runs" ]; then
  tail -30 "$work/fuzz.log" >&2
  exit 1
fi
