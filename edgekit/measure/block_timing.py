"""Time basic blocks on a core's scheduling model: disassemble each block's bytes with llvm-mc
and let llvm-mca run it as a loop on the core's pipelines (the `mca_cpu` of the target's
[estimate] table). A block's cost is its steady-state cycles per iteration: llvm-mca models
issue width, ports, latencies and dependencies, and nothing outside the core (no cache misses,
no branch mispredictions, no overlap between one block and the next).

Instructions are also sorted into families (dot products, multiply-accumulates, loads, ...) so
an estimate says what the cycles were spent on.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import InputError
from edgekit.files import atomic_file
from edgekit.measure.block_counts import Block

LLVM_VERSION = 19
SETUP_HINT = "run scripts/setup_cross.sh (installs llvm-19 for llvm-mc and llvm-mca)"
# Decode with every extension the cores might use: the guest's CPU model already decided which
# ones run; these only have to be readable.
DECODE_ATTRS = {"aarch64": "+v8.4a,+dotprod,+fullfp16,+rcpc,+crc,+lse,+aes,+sha2,+sha3,+i8mm,+bf16", "x86_64": ""}
LLVM_TRIPLES = {"aarch64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}
# Between blocks in one llvm-mc run: 15 int3 (the longest x86 instruction is 15 bytes), brk #0x656b.
DELIMITERS = {"x86_64": (b"\xcc" * 15, "int3"), "aarch64": (bytes.fromhex("60ad2cd4"), "brk\t#0x656b")}
# Prefixes llvm-mc's x86 disassembler prints as lines of their own.
X86_PREFIXES = frozenset({"lock", "rep", "repe", "repne", "repz", "repnz", "data16", "data32", "addr32", "rex64", "notrack"})
MCA_ITERATIONS = 100
REP_BYTES_PER_CYCLE = 32.0
BLOCKS_PER_MCA_RUN = 400
# Version of the cost cache's contents: bump when the method changes.
CACHE_FORMAT = 3


@dataclass(frozen=True)
class BlockCost:
    cycles: float  # per execution of the block, steady state
    modelled: bool  # False: llvm-mca could not time it (counted at one cycle per instruction)
    families: tuple[str, ...]  # of each instruction, as `family` names them


def block_costs(blocks: list[Block], machine: str, mca_cpu: str, cache: Path | None = None) -> dict[bytes, BlockCost]:
    """The cost of each distinct block body (keyed by its bytes) on `mca_cpu`."""
    check_mca_cpu(machine, mca_cpu)
    cached = _read_cache(cache)
    todo = [b for b in {b.code: b for b in blocks}.values() if _cache_key(b.code) not in cached]
    for start in range(0, len(todo), BLOCKS_PER_MCA_RUN):
        chunk = todo[start:start + BLOCKS_PER_MCA_RUN]
        listings = disassemble_all(chunk, machine)
        cycles = _mca_cycles(listings, machine, mca_cpu)
        for block, lines, cost in zip(chunk, listings, cycles):
            families = tuple(family(_mnemonic(line), line, machine) for line in lines)
            if machine == "x86_64" and len(lines) == 1 and (string_cycles := _rep_string_cycles(lines[0])) is not None:
                cost = string_cycles
            if cost is None:
                cached[_cache_key(block.code)] = BlockCost(cycles=float(block.instructions), modelled=False, families=families)
            else:
                cached[_cache_key(block.code)] = BlockCost(cycles=cost, modelled=True, families=families)
    if cache is not None and todo:
        _write_cache(cache, cached)
    return {b.code: cached[_cache_key(b.code)] for b in blocks}


def disassemble_all(blocks: list[Block], machine: str) -> list[list[str]]:
    """Each block's instructions as assembly lines llvm-mca can read back: one llvm-mc run for
    all of them, with a marker between blocks. The x86 marker is a run of int3 bytes, so that an
    instruction QEMU cut at a page edge swallows a few of them and the next block still starts
    clean; the aarch64 one is a `brk #0x656b` word."""
    marker, marker_text = DELIMITERS[machine]
    lines = _decode(marker.join(b.code for b in blocks) + marker, machine)
    listings: list[list[str]] = []
    current: list[str] = []
    in_marker = False
    for text, _ in lines:
        if text != marker_text:
            current.append(text)
            in_marker = False
        elif not in_marker:
            listings.append(current)
            current, in_marker = [], True
    if len(listings) != len(blocks) or current:
        return [[text for text, _ in _decode(b.code, machine)] for b in blocks]
    return listings


def _decode(code: bytes, machine: str) -> list[tuple[str, int]]:
    command = [_tool("llvm-mc"), "--disassemble", "-show-encoding", f"-triple={LLVM_TRIPLES[machine]}"]
    if DECODE_ATTRS[machine]:
        command.append(f"-mattr={DECODE_ATTRS[machine]}")
    done = subprocess.run(command, input=" ".join(f"0x{byte:02x}" for byte in code), capture_output=True, text=True)
    decoded, prefix = [], ""
    for line in done.stdout.splitlines():
        text, _, encoding = line.partition("encoding: [")
        if not encoding:
            continue
        text = text.strip().rstrip("#/").strip()
        length = encoding.split("]")[0].count(",") + 1
        if text in X86_PREFIXES:
            prefix += text + " "  # llvm-mc prints `lock` on a line of its own: one instruction
            continue
        decoded.append((prefix + text, length))
        prefix = ""
    return decoded


def family(mnemonic: str, line: str, machine: str) -> str:
    """The instruction family an estimate reports: what the hot loops are made of."""
    m = mnemonic.lower()
    if machine == "aarch64":
        if m in ("sdot", "udot", "usdot", "sudot"):
            return "dot product (sdot/udot)"
        if m in ("smmla", "ummla", "usmmla"):
            return "int8 matrix multiply (smmla)"
        if m.startswith(("smlal", "umlal", "sadalp", "uadalp", "smull", "umull", "mla", "mul")) and "v" in line:
            return "int multiply-accumulate (smlal/sadalp/mla)"
        if m in ("fmla", "fmls", "fmul", "fmadd", "fmsub", "fnmadd"):
            return "float multiply-accumulate (fmla)"
        if m.startswith("ld"):
            return "load"
        if m.startswith("st"):
            return "store"
        if m in ("b", "bl", "br", "blr", "ret", "cbz", "cbnz", "tbz", "tbnz") or m.startswith("b."):
            return "branch"
        return "other"
    if m.startswith("vpdpbusd") or m.startswith("vpdpwssd"):
        return "dot product (VNNI vpdpbusd)"
    if m.startswith(("vpmaddubsw", "vpmaddwd", "pmaddubsw", "pmaddwd")):
        return "int multiply-add (vpmaddubsw/vpmaddwd)"
    if m.startswith(("vfmadd", "vfnmadd", "vfmsub", "vmulps", "vmulss")):
        return "float multiply-accumulate (vfmadd)"
    if m.startswith("j") or m.startswith(("call", "ret")):
        return "branch"
    operands = line.split(None, 1)[1] if " " in line or "\t" in line else ""
    if "(" in operands:
        return "store" if operands.rstrip().endswith(")") else "load"
    return "other"


def _mca_cycles(listings: list[list[str]], machine: str, mca_cpu: str) -> list[float | None]:
    source = []
    for index, lines in enumerate(listings):
        source += [f"# LLVM-MCA-BEGIN b{index}", *lines, "# LLVM-MCA-END"]
    command = [
        _tool("llvm-mca"), f"-mtriple={LLVM_TRIPLES[machine]}", f"-mcpu={mca_cpu}", f"-iterations={MCA_ITERATIONS}",
        "-call-latency=1", "-skip-unsupported-instructions=any", "-json",
    ]
    if machine == "aarch64":
        command.append(f"-mattr={DECODE_ATTRS[machine]}")
    done = subprocess.run(command, input="\n".join(source) + "\n", capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        if len(listings) == 1:
            return [None]
        # One block llvm-mca rejects fails the whole run: time the halves apart.
        half = len(listings) // 2
        return _mca_cycles(listings[:half], machine, mca_cpu) + _mca_cycles(listings[half:], machine, mca_cpu)
    regions = {r["Name"]: r["SummaryView"] for r in json.loads(done.stdout)["CodeRegions"]}
    results: list[float | None] = []
    for index in range(len(listings)):
        summary = regions.get(f"b{index}")
        if summary is None or not summary.get("Iterations"):
            results.append(None)
        else:
            results.append(summary["TotalCycles"] / summary["Iterations"])
    return results


def _rep_string_cycles(line: str) -> float | None:
    """Cycles of one iteration of a rep-prefixed string instruction (memset, memcpy in libc).

    QEMU executes `rep stos`/`rep movs` one element per block execution, so the block count is
    the element count; llvm-mca would charge its fixed 100-cycle guess to every element. Fast
    strings (ERMS) move about REP_BYTES_PER_CYCLE bytes per cycle on current x86 cores.
    """
    words = line.split()
    if len(words) < 2 or words[0] not in ("rep", "repe", "repne") or not words[1].startswith(("movs", "stos", "lods", "cmps", "scas")):
        return None
    width = {"b": 1, "w": 2, "l": 4, "d": 4, "q": 8}.get(words[1][-1], 1)
    return width / REP_BYTES_PER_CYCLE


def _mnemonic(line: str) -> str:
    return re.split(r"\s+", line, maxsplit=1)[0]


def _cache_key(code: bytes) -> str:
    return hashlib.sha256(code).hexdigest()[:24]


def _read_cache(path: Path | None) -> dict[str, BlockCost]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("format") != CACHE_FORMAT:
        return {}
    return {k: BlockCost(cycles=v[0], modelled=v[1], families=tuple(v[2])) for k, v in data["blocks"].items()}


def _write_cache(path: Path, costs: dict[str, BlockCost]) -> None:
    data = {"format": CACHE_FORMAT, "blocks": {k: [c.cycles, c.modelled, list(c.families)] for k, c in costs.items()}}
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data))


def _tool(name: str) -> str:
    found = shutil.which(f"{name}-{LLVM_VERSION}") or shutil.which(name)
    if found is None:
        raise InputError(f"{name}-{LLVM_VERSION} is not installed", SETUP_HINT)
    return found


def cost_cache_path(machine: str, mca_cpu: str) -> Path:
    from edgekit.runtime import cache_dir

    return cache_dir() / "mca" / f"{machine}-{mca_cpu}-llvm{LLVM_VERSION}.json"



def check_mca_cpu(machine: str, mca_cpu: str) -> None:
    """llvm-mca falls back to a generic model for a CPU it does not know: refuse that instead."""
    done = subprocess.run([_tool("llvm-mca"), f"-mtriple={LLVM_TRIPLES[machine]}", "-mcpu=help"], capture_output=True, text=True)
    known = {line.split()[0] for line in (done.stdout + done.stderr).splitlines() if line.startswith("  ") and line.split()}
    if mca_cpu not in known:
        raise InputError(f"llvm-mca-{LLVM_VERSION} has no scheduling model named '{mca_cpu}' for {machine}",
                         "set estimate.mca_cpu in the target TOML to one `llvm-mca-19 -mcpu=help` lists")
