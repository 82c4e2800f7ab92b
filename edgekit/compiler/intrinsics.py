"""Integer dot-product tensor intrinsics edgekit registers itself, one per dot-product scheme.

Every intrinsic has the same description: 16 int32 accumulators, each adding a DEPTH-deep dot
product of the activation's DEPTH values (broadcast) with its own row of 16 x DEPTH packed
weights. Only the instructions differ (dot_products.py says which target gets which):

- vnni:  one vpdpbusd, uint8 x int8, depth 4 (AVX-512 VNNI);
- sdot:  four sdot, int8 x int8, depth 4 (Armv8.2 dot product: RK3588's A76, Orin's A78AE);
- neon:  per 4 lanes smull, smull2, two saddlp and an addp, int8 x int8, depth 4 (Armv8.0);
- avx2:  two vpmaddwd, int16 x int16, depth 2. vpmaddubsw would do twice the work per
         instruction but saturates its int16 pair sums (255 x 127 x 2 > 32767): results would
         not be exact, so activations and weights widen to int16 and vpmaddwd sums pairs
         exactly into int32.

The accumulator is the schedule's register tile, in "global" scope (schedules/common.py,
cache_accumulator: a "local" buffer costs a workspace allocation per tile in TVM 0.27), and the
activation word is a let binding (`T.bind`): a plain assignment in TVMScript declares a mutable
local variable, which lowers to a 1-element "local" buffer and two more workspace calls.

TVM 0.27's own `dot_16x4_vnni` fails LLVM verification against LLVM 22, whose
`llvm.x86.avx512.vpdpbusd.512` takes <64 x i8> operands where TVM passes <16 x i32>. Importing
`tvm.s_tir.tensor_intrin` would cost ~18 s (it builds every GPU intrinsic), so nothing here
imports it.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

LANES = 16  # int32 accumulators per intrinsic call: one block of output channels


def _description(depth: int, data: str, weight: str):
    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((depth,), data, offset_factor=1),
        B: T.Buffer((16, depth), weight, offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:depth], B[0:16, 0:depth])
            T.writes(C[0:16])
            for i in T.serial(0, 16):
                for k in T.serial(0, depth):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return desc


@T.prim_func(s_tir=True)
def _vnni(
    A: T.Buffer((4,), "uint8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        # The 4 activation bytes, broadcast to all 16 lanes, as the <64 x i8> LLVM 22 expects.
        a_word = T.bind(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"))
        a_bytes = T.bind(T.reinterpret(T.broadcast(a_word, 16), dtype="int8x64"))
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
            C.vload([0], dtype="int32x16"),
            a_bytes,
            B.vload([0, 0], dtype="int8x64"),
            dtype="int32x16",
        )


@T.prim_func(s_tir=True)
def _sdot(
    A: T.Buffer((4,), "int8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        a_word = T.bind(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"))
        a_bytes = T.bind(T.reinterpret(T.broadcast(a_word, 4), dtype="int8x16"))
        # Each sdot: 4 lanes (output channels), each the 4-deep dot product of its 4 weight bytes.
        for j in T.unroll(4):
            C[T.ramp(j * 4, 1, 4)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
                C.vload([j * 4], dtype="int32x4"),
                B.vload([j * 4, 0], dtype="int8x16"),
                a_bytes,
                dtype="int32x4",
            )


def _deep_description(depth: int, steps: int, data: str, weight: str):
    """`steps` consecutive depth steps of one row: A [steps * depth] contiguous, B [steps, 16, depth]."""

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((steps * depth,), data, offset_factor=1),
        B: T.Buffer((steps, 16, depth), weight, offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:steps * depth], B[0:steps, 0:16, 0:depth])
            T.writes(C[0:16])
            for j in T.serial(0, steps):
                for i in T.serial(0, 16):
                    for k in T.serial(0, depth):
                        with T.sblock("update"):
                            vi, vj, vk = T.axis.remap("SRR", [i, j, k])  # in the compute's order: n, rk, ri
                            C[vi] = C[vi] + T.cast(A[vj * depth + vk], "int32") * T.cast(B[vj, vi, vk], "int32")

    return desc


@T.prim_func(s_tir=True)
def _sdot_deep(
    A: T.Buffer((16,), "int8", offset_factor=1),
    B: T.Buffer((4, 16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:16], B[0:4, 0:16, 0:4])
        T.writes(C[0:16])
        # Four depth steps' activations in one 16-byte load; each step's word is picked by the
        # by-element sdot (LLVM folds the lane splat into `sdot v.4s, v.16b, v.4b[j]`), so no
        # ld1r spends a vector-pipe slot on a broadcast (on Neoverse N1 / A76 it does).
        a_words = T.bind(T.reinterpret(A.vload([0], "int8x16"), dtype="int32x4"))
        for j in T.unroll(4):
            for v in T.unroll(4):
                C[T.ramp(v * 4, 1, 4)] = T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
                    C.vload([v * 4], dtype="int32x4"),
                    B.vload([j, v * 4, 0], dtype="int8x16"),
                    T.reinterpret(T.Shuffle([a_words], [j, j, j, j]), dtype="int8x16"),
                    dtype="int32x4",
                )


@T.prim_func(s_tir=True)
def _neon(
    A: T.Buffer((4,), "int8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        a_word = T.bind(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"))
        a_bytes = T.bind(T.reinterpret(T.broadcast(a_word, 2), dtype="int8x8"))
        # int8 x int8 products fit int16 exactly (|p| <= 16384); saddlp widens their pair sums to int32.
        for j in T.unroll(4):
            low = T.bind(T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"), a_bytes, B.vload([j * 4, 0], dtype="int8x8"), dtype="int16x8"
            ))
            high = T.bind(T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"), a_bytes, B.vload([j * 4 + 2, 0], dtype="int8x8"), dtype="int16x8"
            ))
            C[T.ramp(j * 4, 1, 4)] = C.vload([j * 4], dtype="int32x4") + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.addp.v4i32"),
                T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"), low, dtype="int32x4"),
                T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"), high, dtype="int32x4"),
                dtype="int32x4",
            )


@T.prim_func(s_tir=True)
def _avx2(
    A: T.Buffer((2,), "int16", offset_factor=1),
    B: T.Buffer((16, 2), "int16", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:2], B[0:16, 0:2])
        T.writes(C[0:16])
        a_pair = T.bind(T.reinterpret(A.vload([0], "int16x2"), dtype="int32"))
        a_pairs = T.bind(T.reinterpret(T.broadcast(a_pair, 8), dtype="int16x16"))
        # Each vpmaddwd: 8 lanes, each the exact int32 sum of its 2 int16 x int16 products.
        for j in T.unroll(2):
            C[T.ramp(j * 8, 1, 8)] = C.vload([j * 8], dtype="int32x8") + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"), B.vload([j * 8, 0], dtype="int16x16"), a_pairs, dtype="int32x8"
            )


# scheme name -> (intrinsic name, depth, data dtype, weight dtype, implementation)
IMPLEMENTATIONS = {
    "vnni": ("edgekit_vnni_u8i8i32_16x4", 4, "uint8", "int8", _vnni),
    "sdot": ("edgekit_sdot_i8i8i32_16x4", 4, "int8", "int8", _sdot),
    "neon": ("edgekit_neon_i8i8i32_16x4", 4, "int8", "int8", _neon),
    "avx2": ("edgekit_avx2_i16i16i32_16x2", 2, "int16", "int16", _avx2),
}

# scheme name -> (intrinsic name, steps, implementation): several depth steps of one row per call,
# where a scheme gains from reading them as one vector (dense rows are contiguous in depth).
DEEP_IMPLEMENTATIONS = {
    "sdot": ("edgekit_sdot_i8i8i32_16x4x4", 4, _sdot_deep),
}

_registered: set[str] = set()


def register(scheme: str) -> str:
    """Register `scheme`'s intrinsic once per process; its name for `Schedule.tensorize`."""
    name, depth, data, weight, impl = IMPLEMENTATIONS[scheme]
    if scheme not in _registered:
        TensorIntrin.register(name, _description(depth, data, weight), impl, override=True)
        _registered.add(scheme)
    return name


def register_deep(scheme: str) -> tuple[str, int] | None:
    """Register `scheme`'s several-steps intrinsic once per process: (its name, steps), or None."""
    if scheme not in DEEP_IMPLEMENTATIONS:
        return None
    name, steps, impl = DEEP_IMPLEMENTATIONS[scheme]
    _, depth, data, weight, _ = IMPLEMENTATIONS[scheme]
    if name not in _registered:
        TensorIntrin.register(name, _deep_description(depth, steps, data, weight), impl, override=True)
        _registered.add(name)
    return name, steps
