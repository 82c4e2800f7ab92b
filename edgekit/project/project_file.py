"""`edgekit.toml`: one file names a deployment's model, targets, recipe, data sets and gates.

`edgekit pipeline`, `edgekit check` (without ARTIFACT) and `edgekit baseline save` read it. Every
path in it is relative to the file's own folder. Schema (README "Projects and CI gates"):

    [project]
    name = "digits"                     # required; letters, digits, . _ -
    build_dir = "build/digits"          # default build/<name>: every stage's outputs + build.json
    baseline = "baselines/digits.json"  # default baselines/<name>.json (+ <name>.npz, the golden outputs)

    [model]
    source = "edgekit/demo/digits_cnn.py:factory"   # required: file.py:factory, model.pt2 or model.onnx
    input_names = ["image"]             # export only: names for the graph inputs, in order
    output_names = ["logits"]           # export only: names for the graph outputs, in order
    opset = 18                          # export only

    [quantize]                          # optional: without it the float model is compiled
    recipe = "int8-default"             # a quant/ preset name or a recipe .toml path

    [data]
    calib = "calibration_data/digits_calib.npz"    # required with [quantize]
    eval = "calibration_data/digits_eval.npz"      # required: the gates' data set (labels optional)

    [compile]
    targets = ["x86_64"]                # target names or target .toml paths (default ["x86_64"])
    device = "cpu"                      # cpu | gpu
    float_nodes = ["Sin_3"]             # nodes that may run in float inside a quantized region (default none)

    [gates.accuracy]                    # one table per gate; the table name is the gate's name
    metric = "accuracy"                 # default: the gate's name (see gates.METRICS), or file.py:function
    output = "logits"                   # default: the model's first output
    min = 0.98                          # higher-is-better metrics take min, lower-is-better take max
    tolerance = 0.005                   # allowed regression against the baseline, in the metric's units
    # k = 5                             # top-k metrics only
    # better = "higher"                 # user metrics only, when neither min nor max says it

    [gates.int8_macs]                   # the artifact's share of conv/matmul MACs in integers (no output)
    min = 0.8

A key the schema does not know, a value of the wrong type, a missing file or an unknown metric is
an InputError naming the file and the full key. Everything is checked here, before any stage runs:
every target is loaded, the recipe is loaded and validated, and every data set must be readable
.npz files (whether they fit the model is known only once it is exported).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.checker import METRICS, Gate
from edgekit.dataset import read_npz
from edgekit.errors import InputError
from edgekit.quantizer import DEFAULT_RECIPE, load_recipe
from edgekit.resources import is_preset_path
from edgekit.target_spec import DEFAULT_TARGET, load_target
from edgekit.toml_file import TomlReader, parse_toml, toml_key
from edgekit.user_code import UserCodeErrors, load_user_function, split_function_spec

PROJECT_FILE = "edgekit.toml"
SECTIONS: dict[str, tuple[str, ...]] = {
    "project": ("name", "build_dir", "baseline"),
    "model": ("source", "input_names", "output_names", "opset"),
    "quantize": ("recipe",),
    "data": ("calib", "eval"),
    "compile": ("targets", "device", "float_nodes"),
    "gates": (),  # one table per gate, any name
}
GATE_KEYS = ("metric", "output", "k", "min", "max", "tolerance", "better")
DEVICES = ("cpu", "gpu")
DEFAULT_K = 5
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HINT = "see README.md, section 'Projects and CI gates'"


@dataclass(frozen=True)
class ModelSpec:
    path: Path  # absolute: the factory's .py file, a model.pt2 or a model.onnx
    factory: str = ""  # the function in `path` that returns (model, example_inputs)
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    opset: int = 18

    @property
    def source(self) -> str:
        """The SOURCE argument of `edgekit export`."""
        return f"{self.path}:{self.factory}" if self.factory else str(self.path)

    @property
    def is_onnx(self) -> bool:
        return self.path.suffix == ".onnx"


@dataclass(frozen=True)
class Project:
    """A validated `edgekit.toml`; paths are absolute."""

    path: Path
    sha256: str
    name: str
    build_dir: Path
    baseline: Path
    model: ModelSpec
    recipe: str | None  # None: no quantization
    calib_data: Path | None
    eval_data: Path
    targets: tuple[str, ...]
    device: str
    gates: tuple[Gate, ...]
    float_nodes: tuple[str, ...] = ()  # compile --float-nodes: nodes that may run in float inside a quantized region

    @property
    def root(self) -> Path:
        return self.path.parent

    def relative(self, path: Path) -> str:
        """`path` as the user would write it in edgekit.toml (relative to its folder when inside it)."""
        path = Path(path)
        return os.path.relpath(path, self.root) if path.is_relative_to(self.root) else str(path)

    def build_config(self) -> dict[str, Any]:
        """What the build depends on (not the gates): a change here makes a build folder stale."""
        return {
            "model": {"source": self.relative(self.model.path) + (f":{self.model.factory}" if self.model.factory else ""),
                      "input_names": list(self.model.input_names), "output_names": list(self.model.output_names), "opset": self.model.opset},
            "quantize": {"recipe": self.recipe if self.recipe is None or not is_preset_path(self.recipe) else self.relative(Path(self.recipe))},
            "calib": self.relative(self.calib_data) if self.calib_data else None,
            "compile": {"targets": [t if not is_preset_path(t) else self.relative(Path(t)) for t in self.targets], "device": self.device}
                       | ({"float_nodes": list(self.float_nodes)} if self.float_nodes else {}),
        }

    def build_config_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.build_config(), sort_keys=True).encode()).hexdigest()


def find_project(path: Path | str | None) -> Path:
    """The project file: `path` if given, else ./edgekit.toml; InputError if it is not there."""
    candidate = Path(path) if path else Path.cwd() / PROJECT_FILE
    if candidate.is_dir():
        candidate = candidate / PROJECT_FILE
    if not candidate.is_file():
        problem = f"project file not found: {candidate}" if path else f"no {PROJECT_FILE} in {Path.cwd()}"
        raise InputError(problem, f"give --project PATH/{PROJECT_FILE}; {_HINT}")
    return candidate


def load_project(path: Path | str | None = None) -> Project:
    """Read and validate an `edgekit.toml` (default ./edgekit.toml). Raises InputError naming the key."""
    path = _join(Path.cwd(), str(find_project(path)))
    data = path.read_bytes()
    reader = _Reader(path)
    raw = parse_toml(path, data, _HINT)
    reader.keys(raw, "", tuple(SECTIONS))
    tables = {name: reader.table(raw, name) for name in SECTIONS}
    for name, allowed in SECTIONS.items():
        if name != "gates":
            reader.keys(tables[name], name, allowed)

    name = reader.text(tables["project"], "project.name", required=True)
    if not _NAME.fullmatch(name):
        reader.fail(f"key 'project.name' = {json.dumps(name)} is not a plain name", "use letters, digits, '.', '_' and '-': it names the build folder")
    root = path.parent
    quantized = "quantize" in raw
    data_table = tables["data"]
    return Project(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        name=name,
        build_dir=_join(root, reader.text(tables["project"], "project.build_dir", default=f"build/{name}")),
        baseline=_join(root, reader.text(tables["project"], "project.baseline", default=f"baselines/{name}.json")),
        model=_model(reader, tables["model"], root),
        recipe=_recipe(reader, tables["quantize"], root) if quantized else None,
        calib_data=reader.data_set(data_table, "data.calib", root, required=quantized, why="[quantize] calibrates on it") if quantized else None,
        eval_data=reader.data_set(data_table, "data.eval", root, required=True, why="the gates measure on it"),
        targets=_targets(reader, tables["compile"], root),
        device=_device(reader, tables["compile"]),
        gates=_gates(reader, tables["gates"], root),
        float_nodes=reader.names(tables["compile"], "compile.float_nodes"),
    )


def _model(reader: _Reader, table: dict, root: Path) -> ModelSpec:
    source = reader.text(table, "model.source", required=True)
    path_text, factory = split_function_spec(source) or (source, "")
    if not factory and not source.endswith((".pt2", ".onnx")):
        reader.fail(f"key 'model.source' = {json.dumps(source)} is not file.py:factory, model.pt2 or model.onnx", 'e.g. source = "model.py:factory"')
    path = _join(root, path_text)
    reader.require_file(path, "model.source")
    return ModelSpec(
        path=path,
        factory=factory,
        input_names=reader.names(table, "model.input_names"),
        output_names=reader.names(table, "model.output_names"),
        opset=reader.integer(table, "model.opset", default=18, low=11),
    )


def _recipe(reader: _Reader, table: dict, root: Path) -> str:
    """A preset name, or the recipe file's path; loaded here so that a bad recipe fails before export."""
    recipe = reader.text(table, "quantize.recipe", default=DEFAULT_RECIPE)
    if is_preset_path(recipe):
        recipe = str(_join(root, recipe))
        reader.require_file(Path(recipe), "quantize.recipe")
    reader.load(load_recipe, recipe, "quantize.recipe")
    return recipe


def _targets(reader: _Reader, table: dict, root: Path) -> tuple[str, ...]:
    """Target names and target file paths, each loaded here so that a typo fails before export."""
    targets = reader.names(table, "compile.targets") or (DEFAULT_TARGET,)
    resolved = []
    for target in targets:
        if is_preset_path(target):
            target = str(_join(root, target))
            reader.require_file(Path(target), "compile.targets")
        reader.load(load_target, target, "compile.targets")
        resolved.append(target)
    if len({Path(t).stem for t in resolved}) != len(resolved):
        reader.fail("key 'compile.targets' names one target twice", "list each target once")
    return tuple(resolved)


def _device(reader: _Reader, table: dict) -> str:
    device = reader.text(table, "compile.device", default="cpu")
    if device not in DEVICES:
        reader.fail(f"key 'compile.device' = {json.dumps(device)} is not allowed", f"allowed: {', '.join(DEVICES)}")
    return device


def _gates(reader: _Reader, table: dict, root: Path) -> tuple[Gate, ...]:
    if not table:
        reader.fail("no gates: the project has no [gates.NAME] table", f"add one, e.g. [gates.accuracy] with min = 0.98; {_HINT}")
    return tuple(_gate(reader, name, body, root) for name, body in table.items())


def _gate(reader: _Reader, name: str, body: Any, root: Path) -> Gate:
    key = f"gates.{toml_key(name)}"
    if not isinstance(body, dict):
        reader.fail(f"key '{key}' must be a table", f"write it as [{key}] with keys from: {', '.join(GATE_KEYS)}")
    reader.keys(body, key, GATE_KEYS)
    metric = reader.text(body, f"{key}.metric", default=name)
    bound_min, bound_max = reader.number(body, f"{key}.min"), reader.number(body, f"{key}.max")
    better = reader.text(body, f"{key}.better")
    function = None
    if metric in METRICS:
        spec = METRICS[metric]
        higher = spec.higher_is_better
        if better is not None:
            reader.fail(f"key '{key}.better' is only for user metrics", f"{metric} is {'higher' if higher else 'lower'}-is-better already")
        if "k" in body and not spec.uses_k:
            reader.fail(f"key '{key}.k' does not apply to metric {metric}", "k is for topk_accuracy and topk_agreement")
        if "output" in body and spec.of_artifact:
            reader.fail(f"key '{key}.output' does not apply to metric {metric}", f"{metric} measures the whole artifact: drop output")
    elif split_function_spec(metric) is not None:
        function = _user_function(reader, metric, f"{key}.metric", root)
        if better not in (None, "higher", "lower"):
            reader.fail(f"key '{key}.better' = {json.dumps(better)} is not allowed", "allowed: higher, lower")
        if better is None and bound_min is None and bound_max is None:
            reader.fail(f"gate '{name}': user metric {metric} needs a direction", 'add min, max, or better = "higher" | "lower"')
        higher = better == "higher" if better else bound_max is None
        if "k" in body:
            reader.fail(f"key '{key}.k' does not apply to a user metric", "read k in your own function")
    else:
        reader.fail(f"key '{key}.metric' = {json.dumps(metric)} is not a metric", f"known: {', '.join(METRICS)}; or file.py:function")
    word = "higher" if higher else "lower"
    if bound_min is not None and bound_max is not None:
        reader.fail(f"gate '{name}' has both min and max", f"{metric} is {word}-is-better: give {'min' if higher else 'max'}")
    if (bound_max is not None and higher) or (bound_min is not None and not higher):
        reader.fail(f"key '{key}.{'max' if higher else 'min'}' does not fit {metric}, which is {word}-is-better", f"give {'min' if higher else 'max'} instead")
    tolerance = reader.number(body, f"{key}.tolerance", default=0.0)
    if tolerance < 0:
        reader.fail(f"key '{key}.tolerance' = {tolerance:g} is negative", "the allowed regression is a size: give 0 or more")
    uses_k = metric in METRICS and METRICS[metric].uses_k
    return Gate(
        name=name,
        metric=metric,
        output=reader.text(body, f"{key}.output"),
        k=reader.integer(body, f"{key}.k", default=DEFAULT_K, low=1) if uses_k else None,
        min=bound_min,
        max=bound_max,
        tolerance=tolerance,
        higher_is_better=higher,
        function=function,
    )


def _user_function(reader: _Reader, spec: str, key: str, root: Path) -> Callable:
    where = f"{reader.label}: key '{key}'"
    errors = UserCodeErrors(
        not_found=(f"{where}: file not found: {{path}}", f"paths are relative to {root}"),
        import_failed=(f"{where}: importing {{given}} failed: {{error}}", "fix the metric module (run it with python to see the traceback)"),
        no_function=(f"{where}: {{given}} has no function '{{name}}'", "define fn(outputs, reference, labels) -> float"),
    )
    return load_user_function(spec, root, "metric", errors)


def _join(root: Path, text: str) -> Path:
    # Normalised but not resolved: a symlinked data folder keeps the name the user gave it.
    return Path(os.path.normpath(root / text))


class _Reader(TomlReader):
    """Typed access to the parsed file; every error names the file and the full key."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.name, _HINT)
        self.path = path

    def _get(self, table: dict, key: str, required: bool) -> Any:
        leaf = key.rsplit(".", 1)[-1]
        if leaf not in table and required:
            section = key.rsplit(".", 1)[0]
            self.fail(f"key '{key}' is missing", f"add {leaf} = ... to [{section}]; {_HINT}")
        return table.get(leaf)

    def text(self, table: dict, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self._get(table, key, required)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            self.fail(f"key '{key}' must be a non-empty string, got {_show(value)}", _HINT)
        return value

    def names(self, table: dict, key: str) -> tuple[str, ...]:
        value = self._get(table, key, False)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"key '{key}' must be a list of strings, got {_show(value)}", 'e.g. ["image"]')
        return tuple(value)

    def number(self, table: dict, key: str, default: float | None = None) -> float | None:
        value = self._get(table, key, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(f"key '{key}' must be a finite number, got {_show(value)}", _HINT)
        return float(value)

    def integer(self, table: dict, key: str, default: int, low: int) -> int:
        value = self._get(table, key, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(f"key '{key}' must be an integer >= {low}, got {_show(value)}", _HINT)
        return value

    def require_file(self, path: Path, key: str) -> None:
        if not path.is_file():
            self.fail(f"key '{key}': file not found: {path}", f"paths are relative to {self.path.parent}")

    def load(self, load: Callable[[Any], Any], spec: str | Path, key: str) -> Any:
        """`load(spec)` (a target or recipe loader), its InputError restated as this file's `key`."""
        try:
            return load(spec)
        except InputError as exc:
            self.fail(f"key '{key}': {exc.message}", exc.hint)

    def data_set(self, table: dict, key: str, root: Path, required: bool, why: str) -> Path | None:
        """The data set's path: an .npz file or a folder of them, every file readable.

        Whether the arrays fit the model is checked when a stage loads them for the exported model.
        """
        leaf = key.rsplit(".", 1)[-1]
        if leaf not in table and required:
            self.fail(f"key '{key}' is missing ({why})", "give an .npz file or a folder of them (calibration_data/README.md)")
        text = self.text(table, key)
        if text is None:
            return None
        path = _join(root, text)
        if not path.exists():
            self.fail(f"key '{key}': data set not found: {path}", f"paths are relative to {self.path.parent}")
        files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
        if not files:
            self.fail(f"key '{key}': data folder {path} holds no .npz files", "see calibration_data/README.md for the format")
        for file in files:
            self.load(read_npz, file, key)
        return path


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
