"""Count how often each basic block of a program runs, under QEMU user mode with edgekit's TCG
plugin (qemu_plugin/block_counts.c), between the two markers the program sets around its timed
loop (the runner's `run_iterations`; the ONNX Runtime guest script's loop).

The plugin is compiled here with the host C compiler once per source version and cached. QEMU
runs the guest with one thread: the plugin's counters are not atomic, and the estimate is of a
single core.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EdgekitError, InputError
from edgekit.files import atomic_file

PLUGIN_SOURCE = Path(__file__).resolve().parent / "qemu_plugin" / "block_counts.c"
SETUP_HINT = "run scripts/setup_cross.sh (installs qemu-user, gcc and llvm-19)"
# The marker is lseek(fd=-0x656b): the plugin matches the guest's syscall number.
LSEEK_SYSCALL = {"aarch64": 62, "x86_64": 8}
QEMU_BINARY = {"aarch64": "qemu-aarch64", "x86_64": "qemu-x86_64"}


@dataclass(frozen=True)
class Block:
    """One translated basic block and how often it ran inside the marked window."""

    count: int
    vaddr: int
    sizes: tuple[int, ...]  # instruction lengths in bytes
    code: bytes

    @property
    def instructions(self) -> int:
        return len(self.sizes)


@dataclass(frozen=True)
class BlockCounts:
    blocks: tuple[Block, ...]
    marked: bool  # False: the guest never set both markers and the counts are of the whole run

    @property
    def dynamic_instructions(self) -> int:
        return sum(b.count * b.instructions for b in self.blocks)


def count_blocks(machine: str, qemu_cpu: str, command: list[str], work_dir: Path, sysroot: Path | None = None,
                 env: dict[str, str] | None = None, timeout_s: float = 3600.0) -> BlockCounts:
    """Run `command` (a guest program and its arguments) under QEMU for `machine` with CPU model
    `qemu_cpu`, and return its block counts inside the marked window.

    Raises InputError when QEMU or a compiler is missing, EdgekitError when the guest fails or
    sets no markers (then nothing would say which instructions are the inference).
    """
    if machine not in QEMU_BINARY:
        raise InputError(f"no QEMU user-mode emulator is known for {machine}", f"known: {', '.join(QEMU_BINARY)}")
    qemu = _require(QEMU_BINARY[machine])
    plugin = plugin_library()
    out = Path(work_dir) / "block_counts.txt"
    qemu_command = [qemu, "-cpu", qemu_cpu]
    if sysroot is not None:
        qemu_command += ["-L", str(sysroot)]
    qemu_command += ["-plugin", f"file={plugin},out={out},mark={LSEEK_SYSCALL[machine]}", *command]
    try:
        done = subprocess.run(qemu_command, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise EdgekitError(f"the guest ran past {timeout_s:.0f} s under {Path(qemu).name}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise EdgekitError(f"the guest failed under {Path(qemu).name} (exit {done.returncode}): {' | '.join(tail)}")
    counts = read_counts(out)
    if not counts.marked:
        raise EdgekitError(f"{Path(command[0]).name} set no start and end markers around its timed loop, so no window of the run is the inference")
    return counts


def read_counts(path: Path) -> BlockCounts:
    """Parse the plugin's output, merging blocks that QEMU translated more than once."""
    text = Path(path).read_text()
    header, *lines = text.splitlines()
    merged: dict[tuple[int, bytes], list] = {}
    for line in lines:
        count, vaddr, _, sizes, code = line.split()
        key = (int(vaddr, 16), bytes.fromhex(code))
        entry = merged.setdefault(key, [0, tuple(int(s) for s in sizes.split(","))])
        entry[0] += int(count)
    blocks = tuple(Block(count=c, vaddr=v, sizes=s, code=code) for (v, code), (c, s) in merged.items())
    return BlockCounts(blocks=blocks, marked="window=marked" in header)


def plugin_library() -> Path:
    """The compiled plugin, built once per source version into the cache."""
    from edgekit.runtime import cache_dir

    source = PLUGIN_SOURCE.read_bytes()
    folder = cache_dir() / "qemu-plugin" / hashlib.sha256(source).hexdigest()[:16]
    library = folder / "block_counts.so"
    if library.is_file():
        return library
    compiler = _require(os.environ.get("CC", "gcc"))
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(library) as tmp:
        done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(PLUGIN_SOURCE)], capture_output=True, text=True)
        if done.returncode != 0:
            raise EdgekitError(f"building the QEMU plugin failed: {done.stderr.strip().splitlines()[-1:]}")
    return library


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise InputError(f"{tool} is not installed", SETUP_HINT)
    return found
