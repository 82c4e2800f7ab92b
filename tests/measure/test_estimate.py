"""edgekit estimate: QEMU block counts (edgekit's TCG plugin) timed by llvm-mca on a core model.

The counting is checked on programs whose counts are known by construction (a loop of N trips
between the markers), the timing on blocks whose cost the core model fixes (independent vs
dependent multiply-accumulates), and the whole on real artifacts beside ONNX Runtime.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.measure.block_counts import Block, count_blocks, read_counts
from edgekit.measure.block_timing import block_costs, family
from edgekit.measure.elf_symbols import read_symbols
from edgekit.measure.estimate import estimate_artifact
from edgekit.target_spec import load_target
from tests.conftest import one_line_error

LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
volatile long sink;
__attribute__((noinline)) void work(long trips) {
  for (long i = 0; i < trips; i++) sink += i * 3;
}
int main(int argc, char** argv) {
  long trips = atol(argv[1]);
  work(5000);                     /* before the window: must not count */
  lseek(-0x656b, 0, SEEK_CUR);
  work(trips);
  lseek(-0x656b, 0, SEEK_CUR);
  work(7000);                     /* after the window: must not count */
  printf("%ld\n", sink);
  return 0;
}
"""


def _build_loop(tmp_path: Path, compiler: str) -> Path:
    source = tmp_path / "loop.c"
    source.write_text(LOOP_C)
    binary = tmp_path / f"loop-{compiler}"
    subprocess.run([compiler, "-O1", "-o", str(binary), str(source)], check=True)
    return binary


@pytest.mark.parametrize(("machine", "compiler", "cpu", "sysroot"), [
    ("aarch64", "aarch64-linux-gnu-gcc", "cortex-a76", Path("/usr/aarch64-linux-gnu")),
    ("x86_64", "gcc", "max", None),
])
def test_plugin_counts_exactly_the_marked_window(tmp_path, machine, compiler, cpu, sysroot):
    """The loop body runs `trips` times inside the window (its block count is trips or trips - 1,
    as the compiler rotates the loop), and nothing from the 5000 + 7000 trips outside it counts."""
    binary = _build_loop(tmp_path, compiler)
    counts = {}
    for trips in (1000, 3000):
        result = count_blocks(machine, cpu, [str(binary), str(trips)], tmp_path, sysroot=sysroot)
        assert result.marked
        counts[trips] = max(b.count for b in result.blocks)
    assert counts[1000] in (999, 1000, 1001)
    assert counts[3000] in (2999, 3000, 3001)
    # Everything else in the window is a handful of blocks (the call, the marker's return).
    assert result.dynamic_instructions < 3000 * 12 + 200


def test_counts_without_markers_are_an_error(tmp_path):
    binary = tmp_path / "true"
    binary.write_bytes(Path("/bin/true").read_bytes())
    binary.chmod(0o755)
    with pytest.raises(edgekit.EdgekitError, match="no start and end markers"):
        count_blocks("x86_64", "max", [str(binary)], tmp_path)


def test_read_counts_merges_retranslated_blocks(tmp_path):
    path = tmp_path / "counts.txt"
    path.write_text("# block_counts v1 window=marked\n5 400000 2 4,4 1f2003d51f2003d5\n7 400000 2 4,4 1f2003d51f2003d5\n1 400010 1 4 c0035fd6\n")
    counts = read_counts(path)
    assert sorted(b.count for b in counts.blocks) == [1, 12]
    assert counts.dynamic_instructions == 12 * 2 + 1


def _block(asm_bytes: list[bytes]) -> Block:
    code = b"".join(asm_bytes)
    return Block(count=1, vaddr=0x1000, sizes=tuple(len(b) for b in asm_bytes), code=code)


def _aarch64(text: str) -> bytes:
    """Machine code of `text`, from llvm-mc's encodings."""
    done = subprocess.run(["llvm-mc-19", "-triple=aarch64-linux-gnu", "-mattr=+dotprod", "-show-encoding"],
                          input=text, capture_output=True, text=True, check=True)
    code = b""
    for line in done.stdout.splitlines():
        if "encoding: [" in line:
            code += bytes(int(b, 16) for b in line.split("encoding: [")[1].split("]")[0].split(","))
    return code


def test_neoverse_n1_times_independent_sdots_at_two_per_cycle_and_dependent_ones_at_their_latency(tmp_path):
    """The N1 model (the A76's pipelines) issues sdot on two ASIMD pipes: 8 independent sdots
    take about 4 cycles a loop trip; 8 chained ones take about 8 x their latency."""
    independent = _aarch64("".join(f"sdot v{i}.4s, v20.16b, v21.16b\n" for i in range(8)))
    chained = _aarch64("sdot v0.4s, v20.16b, v21.16b\n" * 8)
    costs = block_costs([_block([independent]), _block([chained])], "aarch64", "neoverse-n1", cache=None)
    fast, slow = costs[independent], costs[chained]
    assert fast.modelled and slow.modelled
    assert fast.families == ("dot product (sdot/udot)",) * 8
    assert 3.5 <= fast.cycles <= 5.0
    assert slow.cycles >= 3 * fast.cycles


def test_families_sort_the_instructions_reports_count():
    assert family("sdot", "sdot v0.4s, v1.16b, v2.16b", "aarch64") == "dot product (sdot/udot)"
    assert family("smlal", "smlal v0.4s, v1.4h, v2.4h", "aarch64") == "int multiply-accumulate (smlal/sadalp/mla)"
    assert family("ldr", "ldr q0, [x1]", "aarch64") == "load"
    assert family("vpdpbusd", "vpdpbusd %zmm1, %zmm2, %zmm0", "x86_64") == "dot product (VNNI vpdpbusd)"
    assert family("vpmaddwd", "vpmaddwd %ymm1, %ymm0, %ymm0", "x86_64") == "int multiply-add (vpmaddubsw/vpmaddwd)"
    assert family("vmovdqu", "vmovdqu (%rax), %ymm0", "x86_64") == "load"
    assert family("vmovdqu", "vmovdqu %ymm0, (%rax)", "x86_64") == "store"


@pytest.fixture(scope="module")
def rk3588_int8(tmp_path_factory, demo_onnx):
    from tests.conftest import CALIB_DATA

    folder = tmp_path_factory.mktemp("estimate")
    qdq = folder / "digits.int8.onnx"
    edgekit.quantize(demo_onnx, CALIB_DATA, qdq)
    return qdq, edgekit.compile(qdq, folder / "digits_rk3588", target="rk3588")


@pytest.mark.slow
def test_estimate_of_an_rk3588_int8_build_is_deterministic_runs_sdot_and_names_its_kernels(rk3588_int8):
    _, artifact = rk3588_int8
    first = estimate_artifact(artifact, runs=2)
    second = estimate_artifact(artifact, runs=2)
    assert first.cycles == second.cycles and first.instructions == second.instructions
    assert first.modelled > 0.99
    assert first.families.get("dot product (sdot/udot)", 0) > 0
    assert first.ms == pytest.approx(first.cycles / 2.4e6)
    # The library's kernels hold most of the cycles, and a conv is the costliest kernel.
    kernels = [k for k in first.kernels if not k.name.startswith("(")]
    assert sum(k.share for k in kernels) > 0.5
    assert "conv2d" in kernels[0].name


@pytest.mark.slow
def test_cli_estimates_beside_onnx_runtime_and_gates_on_the_ratio(rk3588_int8, cli, tmp_path):
    qdq, artifact = rk3588_int8
    report = tmp_path / "estimate.json"
    result = cli("estimate", artifact, "--reference", qdq, "--runs", "2", "--json", report)
    assert result.exit_code == 0, result.stderr
    edgekit_side, ort_side = json.loads(report.read_text())["estimates"]
    assert ort_side["program"].startswith("onnxruntime") and ort_side["cycles"] > 0
    assert ort_side["families"].get("dot product (sdot/udot)", 0) > 0  # ONNX Runtime's A76 kernels are sdot ones too
    ratio = edgekit_side["cycles"] / ort_side["cycles"]
    gated = cli("estimate", artifact, "--reference", qdq, "--runs", "2", "--max-ratio", f"{ratio / 2:.4f}")
    assert gated.exit_code == 1
    assert "ONNX Runtime > --max-ratio" in one_line_error(gated, "edgekit: gate failed: ")
    passed = cli("estimate", artifact, "--reference", qdq, "--runs", "2", "--max-ratio", f"{ratio * 1.01:.4f}")
    assert passed.exit_code == 0, passed.stderr


def test_estimate_refuses_a_target_without_a_core_model(cli, demo_artifact):
    """QEMU 7.2 cannot run AVX-512, so x86_64-avx512 has no [estimate] table: one line, exit 2."""
    assert load_target("x86_64-avx512").estimate is None
    result = cli("estimate", demo_artifact, "--target", "x86_64-avx512")
    assert result.exit_code == 2
    assert "no [estimate] table" in one_line_error(result)
    gated = cli("estimate", demo_artifact, "--max-ratio", "1")
    assert gated.exit_code == 2
    assert "--reference" in one_line_error(gated)


@pytest.mark.slow
def test_x86_64_estimate_counts_the_same_instructions_as_the_build_runs(demo_artifact, demo_onnx, tmp_path):
    """On x86_64 (AVX2 under QEMU's max CPU) edgekit's and ONNX Runtime's estimates are both
    available, and each runs its own kernels: edgekit's from model.so, ONNX Runtime's not."""
    estimate = estimate_artifact(demo_artifact, runs=2)
    assert estimate.target == "x86_64" and estimate.mca_cpu == "znver5"
    assert estimate.modelled > 0.99
    library = read_symbols(demo_artifact / "model.so")
    assert library.names, "model.so has function symbols"
    assert sum(k.share for k in estimate.kernels if not k.name.startswith("(")) > 0.5
    assert np.isfinite(estimate.ms) and estimate.ms > 0
