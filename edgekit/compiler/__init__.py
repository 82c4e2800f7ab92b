"""The compile stage: fold shapes, import to TVM Relax, rewrite int8 regions, schedule, build an artifact.

    build_artifact.py  compile_onnx: ONNX in, artifact folder (library + manifest) out
    frontend.py        lower: the front half (fold, import, integer rewrite) compile and tune share
    kernel_costs.py    each fused kernel's FLOPs, MACs and bytes, into the manifest
    fold.py            constant and shape subgraphs folded, checked in ONNX Runtime
    relax_import.py    ONNX to Relax with failures named by node
    integer.py         QDQ regions to integer kernels (integer_*.py: its rules, values, tables and the float nodes it leaves)
    mac_share.py       the model's conv/matmul MACs and the share that runs in integers
    relax_pipeline.py  legalize, fuse, schedule, lower
    widening_multiply.py  requantizing multiplies as 32x32->64 (offsets out, multipliers int32)
    schedules/         edgekit's default CPU schedules
    tuning/            MetaSchedule records (`edgekit tune`), which compile looks up
    gpu.py             CUDA (Orin) and OpenCL (Mali) builds

Names load on first use: MetaSchedule's workers import compiler.tuning.candidates and must not
pay for TVM's ONNX importer.
"""

import importlib

_PUBLIC = {
    "CompileOptions": "edgekit.compiler.build_artifact",
    "compile_onnx": "edgekit.compiler.build_artifact",
    "lower": "edgekit.compiler.frontend",
    "Lowered": "edgekit.compiler.frontend",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'edgekit.compiler' has no attribute '{name}'")
