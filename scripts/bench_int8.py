"""int8 against fp32: edgekit's integer artifact, its fp32 artifact, and ONNX Runtime on the QDQ model.

    python scripts/bench_int8.py [--models demo,concat,resnet18,...] [--targets x86_64-avx512,x86_64] [--repeat 50]

Per model: export, quantize with edgekit's default recipe (the demos on their calibration digits,
the speed models on 32 random inputs: calibration quality does not change speed), compile the
float and the QDQ model, then time the three side by side in one process, same input, same
threads, alternating blocks. Writes a Markdown table (--markdown) and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from benchmark import MODELS as FP32_MODELS  # scripts/ is on the path when a script runs
from benchmark import MORE_MODELS
from rich.table import Table

import edgekit
from edgekit import console
from edgekit.measure.bench import interleave, machine_description
from edgekit.onnx_model import load_onnx, model_inputs, resolve_static_shapes
from edgekit.reference import Reference, random_inputs

REPO = Path(__file__).resolve().parent.parent
# The fp32 suite's models, plus the concat demo (residual adds and a concat in integers).
MODELS = {"demo": FP32_MODELS["demo"], "concat": f"{REPO / 'edgekit' / 'demo' / 'digits_concat.py'}:digits_concat"} | FP32_MODELS | MORE_MODELS
DIGITS_CALIB = REPO / "calibration_data" / "digits_calib.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,concat,resnet18,mobilenet_v2,transformer")
    parser.add_argument("--targets", default="x86_64-avx512,x86_64")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_int8")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    rows = []
    for name in args.models.split(","):
        fp32, int8, feeds = prepare(name, args.out)
        for target in args.targets.split(","):
            with console.step(f"{name}: compiling fp32 and int8 for {target}"):
                fp32_art = edgekit.compile(fp32, args.out / f"{name}_fp32_{target}", target=target)
                int8_art = edgekit.compile(int8, args.out / f"{name}_int8_{target}", target=target)
            ours_fp32 = edgekit.load(fp32_art, threads=args.threads)
            ours_int8 = edgekit.load(int8_art, threads=args.threads)
            session = Reference(int8, threads=args.threads, spinning=True)
            bound = {key: model.to_device(model.bind((), feeds)) for key, model in (("fp32", ours_fp32), ("int8", ours_int8))}
            stats = interleave(
                {
                    "edgekit fp32": lambda: ours_fp32.run_bound(bound["fp32"]),
                    "edgekit int8": lambda: ours_int8.run_bound(bound["int8"]),
                    "ORT QDQ": lambda: session(feeds),
                },
                threads=args.threads, repeat=args.repeat,
            )
            integer = json.loads((int8_art / "manifest.json").read_text())["build"]["integer"] or {}
            rows.append({"model": name, "target": target, "stats": stats, "float_ops": integer.get("float_ops", {})})
    show(rows, args)


def prepare(name: str, out: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Float ONNX, its edgekit int8 QDQ model, and one input."""
    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out / f"{name}.onnx", out / f"{name}.int8.onnx"
    if not fp32.exists():
        names = {"input_names": ["image"], "output_names": ["logits"]} if name in ("demo", "concat") else {}
        edgekit.export(MODELS[name], fp32, **names)
    specs = resolve_static_shapes(model_inputs(load_onnx(fp32)), {})
    if name in ("demo", "concat"):
        calib = DIGITS_CALIB
        with np.load(calib) as data:
            feeds = {specs[0].name: data["image"][0]}
    else:
        calib = out / f"{name}_calib.npz"
        samples = [random_inputs(specs, seed=i) for i in range(32)]
        np.savez(calib, **{s.name: np.stack([x[s.name] for x in samples]) for s in specs})
        feeds = random_inputs(specs, seed=1000)
    if not int8.exists():
        edgekit.quantize(fp32, calib, int8)
    return fp32, int8, feeds


def show(rows: list[dict], args) -> None:
    table = Table(title=f"int8 vs fp32, p50 ms ({args.threads} threads, {args.repeat} runs each, alternating)")
    columns = ("model", "target", "edgekit fp32", "edgekit int8", "ORT QDQ", "int8 / fp32", "int8 / ORT QDQ", "float ops left in int8 build")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "target", columns[-1]) else "right")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        s = row["stats"]
        fp32, int8, ort = (s[k].p50_ms for k in ("edgekit fp32", "edgekit int8", "ORT QDQ"))
        spread = {k: f"{v.p50_ms:.3f} (p99 {v.p99_ms:.3f})" for k, v in s.items()}
        floats = ", ".join(f"{op} {n}" for op, n in row["float_ops"].items()) or "-"
        cells = (row["model"], row["target"], spread["edgekit fp32"], spread["edgekit int8"], spread["ORT QDQ"], f"{int8 / fp32:.2f}x", f"{int8 / ort:.2f}x", floats)
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.out.print(table)
    console.out.print(f"machine: {machine_description()}")
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + f"\n\nMachine: {machine_description()}\n")


if __name__ == "__main__":
    main()
