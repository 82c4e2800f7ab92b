"""The integer artifact against ONNX Runtime on the same QDQ model, tensor by tensor, in LSBs.

    python scripts/int8_agreement.py MODEL.int8.onnx DATA.npz [--target x86_64] [--samples 100] [--json PATH]

Every QuantizeLinear output becomes an extra model output, so both runtimes are compared in the
quantized domain: the fraction of equal int8 values and the largest difference in LSBs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from edgekit import console
from edgekit.checker.agreement import compare_with_onnxruntime, to_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--target", default="x86_64")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with console.step(f"compiling {args.model.name} for {args.target} with every int8 tensor exposed"):
        rows = compare_with_onnxruntime(args.model, args.data, target=args.target, samples=args.samples)
    table = Table(title=f"{args.model.name} on {args.target} vs ONNX Runtime, {args.samples} samples")
    for column in ("tensor", "kind", "elements", "equal", "max diff (LSB)", "max abs"):
        table.add_column(column, justify="left" if column in ("tensor", "kind") else "right")
    for row in rows:
        lsb = "-" if row.max_lsb != row.max_lsb else f"{row.max_lsb:g}"
        table.add_row(row.tensor, row.kind, f"{row.elements:,}", f"{row.equal_fraction:.5%}", lsb, f"{row.max_abs:.3g}")
    console.out.print(table)
    if args.json:
        args.json.write_text(json.dumps(to_rows(rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
