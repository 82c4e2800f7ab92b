"""Integer dot-product tensor intrinsics edgekit registers itself.

TVM 0.27's own `dot_16x4_vnni` fails LLVM verification against LLVM 22, whose
`llvm.x86.avx512.vpdpbusd.512` takes <64 x i8> operands where TVM passes <16 x i32>. This is
the same 16x4 uint8 x int8 -> int32 dot product with the current signature. The accumulator is
a local (register) tile, which is how edgekit's int8 convolution schedule uses it; the packed
layouts the integer rewrite hands it (vnni_packing.py) take their shape from LANES and DEPTH.
Importing `tvm.s_tir.tensor_intrin` would cost ~18 s (it builds every GPU intrinsic), so
nothing here imports it.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

VNNI_16x4 = "edgekit_vnni_u8i8i32_16x4"
LANES, DEPTH = 16, 4  # 16 int32 outputs, each a 4-deep dot product of uint8 x int8


@T.prim_func(s_tir=True)
def _dot_16x4_desc(
    A: T.Buffer((4,), "uint8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1, scope="local"),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def _dot_16x4_vnni(
    A: T.Buffer((4,), "uint8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1, scope="local"),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        # The 4 activation bytes, broadcast to all 16 lanes, as the <64 x i8> LLVM 22 expects.
        a_word = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
        a_bytes = T.reinterpret(T.broadcast(a_word, 16), dtype="int8x64")
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
            C.vload([0], dtype="int32x16"),
            a_bytes,
            B.vload([0, 0], dtype="int8x64"),
            dtype="int32x16",
        )


_registered = False


def register() -> None:
    """Register the intrinsics once per process."""
    global _registered
    if not _registered:
        TensorIntrin.register(VNNI_16x4, _dot_16x4_desc, _dot_16x4_vnni, override=True)
        _registered = True
