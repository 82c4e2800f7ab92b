"""Which integer dot-product instructions a target's integer kernels are built on.

A scheme fixes the packed layouts the integer rewrite emits (dot_packing.py), the tensor
intrinsic the int8 schedules tensorize with (intrinsics.py), and the register budget of their
tiles. It is read from the target's TOML (triple, mcpu, features), never from a board's name:

    target                          scheme  instruction            grid of the packed operands
    x86 with +avx512vnni            vnni    vpdpbusd               uint8 x int8, depth 4
    x86-64-v3 / v4 or +avx2         avx2    vpmaddwd               int16 x int16, depth 2
    aarch64 with +dotprod           sdot    sdot                   int8 x int8, depth 4
    aarch64 (Armv8.0 NEON)          neon    smull + saddlp + addp  int8 x int8, depth 4

Every scheme computes the same exact int32 accumulators, so an artifact's outputs are bit for
bit the same on every target.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.compiler import intrinsics
from edgekit.target_spec import TargetSpec

LANES = intrinsics.LANES
# x86 CPU levels that include AVX2 (LLVM's names).
_AVX2_CPUS = ("x86-64-v3", "x86-64-v4", "haswell", "skylake", "znver1", "znver2", "znver3", "znver4", "znver5")


@dataclass(frozen=True)
class DotScheme:
    """One target's int8 dot product: operand grids, depth per step and register cost."""

    name: str  # a key of intrinsics.IMPLEMENTATIONS
    instruction: str  # what a disassembly of the library shows
    depth: int  # reduction elements per step (input channels packed innermost)
    data_dtype: str  # the activations' grid in the packed layout
    weight_dtype: str  # the packed weights' dtype
    vector_bits: int  # width of one accumulator register

    @property
    def accumulators_per_block(self) -> int:
        """Vector registers holding one block of 16 int32 accumulators."""
        return LANES * 32 // self.vector_bits

    def intrinsic(self) -> str:
        """The registered tensor intrinsic's name (registered on first use)."""
        return intrinsics.register(self.name)

    def deep_intrinsic(self) -> tuple[str, int] | None:
        """(name, steps) of the intrinsic doing `steps` depth steps of one contiguous row per call, if
        the scheme has one (sdot: by-element sdot on one 16-byte load), else None."""
        return intrinsics.register_deep(self.name)

    def max_pixels(self, vector_registers: int) -> int:
        """Output columns per register tile: accumulators plus one block of weights, a broadcast and
        two spare registers must fit the register file (a tile that does not fit spills)."""
        blocks = (vector_registers - self.accumulators_per_block - 3) // self.accumulators_per_block
        return max(1, min(8, blocks))


SCHEMES = {
    "vnni": DotScheme("vnni", "vpdpbusd", 4, "uint8", "int8", 512),
    "avx2": DotScheme("avx2", "vpmaddwd", 2, "int16", "int16", 256),
    "sdot": DotScheme("sdot", "sdot", 4, "int8", "int8", 128),
    "neon": DotScheme("neon", "smull", 4, "int8", "int8", 128),
}


def scheme_for(target: TargetSpec) -> DotScheme | None:
    """The dot-product scheme `target`'s CPU has, or None (plain int32 kernels)."""
    features = set(target.cpu.features)
    if target.machine == "x86_64":
        if "+avx512vnni" in features:
            return SCHEMES["vnni"]
        if "+avx2" in features or target.cpu.mcpu in _AVX2_CPUS:
            return SCHEMES["avx2"]
        return None
    if target.machine == "aarch64":
        return SCHEMES["sdot"] if "+dotprod" in features else SCHEMES["neon"]
    return None
