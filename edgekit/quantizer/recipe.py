"""Quantization recipes: one TOML file says how a model is quantized; this module reads and checks it.

Presets live in `quant/*.toml` and are named without their path (`int8-entropy`); any other file
of the same schema (quant/README.md) is named by its path. Every error names the file and the full
TOML key. An activation tensor's settings resolve in one order, later winning field by field:

    [activations]  <-  [graph_inputs] (model inputs only)  <-  [op_types.<producer op>]  <-  [nodes."<producer node>"]  <-  [tensors."<tensor>"]

Whether a node is quantized at all: `[nodes."x"].exclude` if set, else `[op_types.X].exclude`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.quantizer.histogram import DEFAULT_BINS
from edgekit.resources import data_dir, preset_names, resolve_preset
from edgekit.toml_file import TomlReader, parse_toml, toml_key

METHODS = ("minmax", "percentile", "entropy", "mse")
ACTIVATION_DTYPES = ("int8", "uint8")
WEIGHT_GRANULARITIES = ("per_channel", "per_tensor")
DEFAULT_RECIPE = "int8-default"
# The op types edgekit has an int8 rule for (plan.QUANTIZERS; a test keeps the two equal).
SUPPORTED_OPS = (
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Concat", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Relu", "Clip", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Split", "Resize", "ReduceMean",
    "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Elu", "Erf", "Div", "Sub",
    "Max", "Min",
)
DEFAULT_OPS = SUPPORTED_OPS
# Masks and sentinels (-1e9, float min) are far above any real activation: such tensors stay float.
DEFAULT_EXTREME_ABS = 1e4
BINS_RANGE = (128, 65536)
README_HINT = "see quant/README.md for the recipe schema"


@dataclass(frozen=True)
class _Setting:
    """One recipe value: its TOML type, the values allowed, and how to say them to the user."""

    kind: str  # str | bool | float | int | range | list
    ok: Callable[[Any], bool]
    allowed: str


def _range_ok(value: tuple[float, float]) -> bool:
    lo, hi = value
    return math.isfinite(lo) and math.isfinite(hi) and lo < hi and lo <= 0 <= hi


def _anything(value: Any) -> bool:
    return True


# The settings an activation rule (and an override of one) is made of, in ActivationRule's field order.
SETTINGS: dict[str, _Setting] = {
    "dtype": _Setting("str", lambda v: v in ACTIVATION_DTYPES, " | ".join(ACTIVATION_DTYPES)),
    "symmetric": _Setting("bool", _anything, "true | false"),
    "method": _Setting("str", lambda v: v in METHODS, " | ".join(METHODS)),
    "percentile": _Setting("float", lambda v: 50 < v <= 100, "a number p with 50 < p <= 100, e.g. 99.99"),
    "bins": _Setting("int", lambda v: BINS_RANGE[0] <= v <= BINS_RANGE[1], f"an integer from {BINS_RANGE[0]} to {BINS_RANGE[1]}"),
    "range": _Setting("range", _range_ok, "[lo, hi]: two numbers with lo < hi and lo <= 0 <= hi, e.g. [0.0, 6.0]"),
}
OTHER_SETTINGS: dict[str, _Setting] = {
    "name": _Setting("str", lambda v: bool(v.strip()), 'a non-empty string, e.g. name = "my-recipe"'),
    "description": _Setting("str", _anything, "a string"),
    "extreme_abs": _Setting("float", lambda v: math.isfinite(v) and v > 0, "a finite number > 0, e.g. 1e4"),
    "granularity": _Setting("str", lambda v: v in WEIGHT_GRANULARITIES, " | ".join(WEIGHT_GRANULARITIES)),
    "quantize": _Setting("list", _anything, "a list of op type strings, e.g. [\"Conv\", \"Relu\"]"),
    "exclude": _Setting("bool", _anything, "true | false"),
    "enabled": _Setting("bool", _anything, "true | false"),
    "alpha": _Setting("float", lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1, e.g. 0.5"),
}
KIND_WORDS = {"str": "a string", "bool": "true or false", "float": "a number", "int": "an integer", "range": "a list of two numbers", "list": "a list of strings"}

# The keys each table may hold.
TOP_KEYS = ("name", "description", "activations", "weights", "equalize", "ops", "graph_inputs", "op_types", "nodes", "tensors")
EQUALIZE_KEYS = ("enabled", "alpha")
ACTIVATION_KEYS = ("dtype", "symmetric", "method", "percentile", "bins", "extreme_abs")
WEIGHT_KEYS = ("granularity",)
OPS_KEYS = ("quantize",)
NODE_KEYS = ("exclude", *SETTINGS)
TENSOR_KEYS = tuple(SETTINGS)  # no exclude: exclusion is per node


def _check_settings(owner: object, names) -> None:
    for name in names:
        value = getattr(owner, name)
        if value is not None and not SETTINGS[name].ok(value):
            raise ValueError(f"{type(owner).__name__}.{name} = {value!r}: must be {SETTINGS[name].allowed}")


@dataclass(frozen=True)
class ActivationRule:
    """How one activation tensor is calibrated and stored."""

    dtype: str = "int8"
    symmetric: bool = False
    method: str = "minmax"
    percentile: float = 99.99
    bins: int = DEFAULT_BINS
    range: tuple[float, float] | None = None  # fixed clipping range: calibration is skipped for this tensor

    def __post_init__(self):
        _check_settings(self, SETTINGS)

    def method_params(self) -> dict:
        """The calibrator's keyword arguments beyond the histogram (what the record shows)."""
        return {"percentile": self.percentile} if self.method == "percentile" else {}

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["range"] = list(self.range) if self.range is not None else None
        return data


@dataclass(frozen=True)
class Override:
    """One [op_types.X], [nodes."name"] or [tensors."name"] table; None means 'inherit'."""

    exclude: bool | None = None
    dtype: str | None = None
    symmetric: bool | None = None
    method: str | None = None
    percentile: float | None = None
    bins: int | None = None
    range: tuple[float, float] | None = None
    key: str = ""  # where it came from, e.g. 'nodes."conv1"': used in reasons and errors

    def __post_init__(self):
        _check_settings(self, SETTINGS)

    def settings(self) -> dict:
        """The activation settings this table sets (the ones it does not inherit)."""
        return {name: getattr(self, name) for name in SETTINGS if getattr(self, name) is not None}

    def to_dict(self) -> dict:
        data = {"exclude": self.exclude} if self.exclude is not None else {}
        data.update(self.settings())
        if self.range is not None:
            data["range"] = list(self.range)
        return data


@dataclass(frozen=True)
class Recipe:
    """A validated recipe file. Build one with `load_recipe`; `with_exclusions` derives copies."""

    name: str
    description: str
    source: str  # the file path it was read from
    sha256: str  # of the file bytes
    activations: ActivationRule
    weight_granularity: str  # per_channel | per_tensor (weights are always symmetric int8)
    quantize_ops: tuple[str, ...]  # op types the quantizer may quantize
    extreme_abs: float  # activation tensors holding any |x| >= this (or inf) stay float
    equalize: bool  # channel equalization before calibration (equalize.py)
    equalize_alpha: float  # its migration strength for non-depthwise readers
    op_types: dict[str, Override]
    nodes: dict[str, Override]
    tensors: dict[str, Override]
    # [graph_inputs]: settings for the model's own inputs (images often spike at a constant background).
    graph_inputs: Override | None = None
    # node -> why it was excluded after loading (with_exclusions), e.g. "budget"; not from the file.
    extra_exclusions: dict[str, str] = field(default_factory=dict)

    def activation_rule(self, tensor: str, producer_op: str | None, producer_node: str | None) -> ActivationRule:
        """The settings for `tensor`: defaults <- op type <- producer node <- tensor, field by field."""
        rule = self.activations
        for override in self._overrides_for(tensor, producer_op, producer_node):
            rule = dataclasses.replace(rule, **override.settings())
        return rule

    def rule_sources(self, tensor: str, producer_op: str | None, producer_node: str | None) -> list[str]:
        """Keys of the tables that changed `tensor`'s rule, in the order applied, e.g. ['op_types.Relu']."""
        return [override.key for override in self._overrides_for(tensor, producer_op, producer_node)]

    def _overrides_for(self, tensor: str, producer_op: str | None, producer_node: str | None) -> list[Override]:
        found = [
            self.graph_inputs if producer_op is None and producer_node is None else None,
            self.op_types.get(producer_op) if producer_op is not None else None,
            self.nodes.get(producer_node) if producer_node is not None else None,
            self.tensors.get(tensor),
        ]
        return [override for override in found if override is not None and override.settings()]

    def exclusion(self, node: str, op_type: str) -> str | None:
        """None if `node` may be quantized, else why not, naming the recipe key that says so.

        A node's own `exclude` (true or false) beats its op type's. Whether `op_type` is in
        `quantize_ops` is the planner's question, not answered here.
        """
        if node in self.extra_exclusions:
            return f"excluded by {self.extra_exclusions[node]}"
        own = self.nodes.get(node)
        if own is not None and own.exclude is not None:
            return f"excluded by recipe key {own.key}.exclude" if own.exclude else None
        by_type = self.op_types.get(op_type)
        if by_type is not None and by_type.exclude:
            return f"excluded by recipe key {by_type.key}.exclude"
        return None

    def check_against(self, node_names: set[str], tensor_names: set[str]) -> None:
        """Raise InputError if a [nodes."x"] or [tensors."x"] table names something the model lacks."""
        for table, names, what in ((self.nodes, node_names, "node"), (self.tensors, tensor_names, "tensor")):
            for name, override in table.items():
                if name in names:
                    continue
                known = sorted(names)
                close = difflib.get_close_matches(name, known, n=5)
                hint = f"did you mean: {', '.join(close)}" if close else f"the model's {what}s include: {', '.join(known[:5]) or 'none'}"
                raise InputError(f"{self.source}: key '{override.key}' names a {what} the model does not have", hint)

    def with_exclusions(self, nodes: list[str], reason_key: str = "budget") -> Recipe:
        """A copy in which `nodes` also stay float; `exclusion` gives 'excluded by <reason_key>' for them."""
        extra = dict(self.extra_exclusions)
        for node in nodes:
            extra.setdefault(node, reason_key)
        return dataclasses.replace(self, extra_exclusions=extra)

    def to_dict(self) -> dict:
        """The resolved settings as JSON-ready data, in a fixed order (for the quantization record)."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "sha256": self.sha256,
            "activations": {**self.activations.to_dict(), "extreme_abs": self.extreme_abs},
            "weights": {"dtype": "int8", "symmetric": True, "granularity": self.weight_granularity},
            "equalize": {"enabled": self.equalize, "alpha": self.equalize_alpha},
            "ops": {"quantize": list(self.quantize_ops)},
            "op_types": {name: self.op_types[name].to_dict() for name in sorted(self.op_types)},
            "nodes": {name: self.nodes[name].to_dict() for name in sorted(self.nodes)},
            "tensors": {name: self.tensors[name].to_dict() for name in sorted(self.tensors)},
            "graph_inputs": self.graph_inputs.to_dict() if self.graph_inputs else None,
            "extra_exclusions": dict(sorted(self.extra_exclusions.items())),
        }


def presets_dir() -> Path:
    return data_dir("quant")


def list_presets() -> list[str]:
    """Names of the bundled recipes, for `--recipe NAME`."""
    return preset_names("recipe")


def load_recipe(spec: str | Path | None) -> Recipe:
    """Load a recipe: None for DEFAULT_RECIPE, a preset name (`int8-entropy`), or a path to a .toml file.

    A string without '/' that does not end in '.toml' is a preset name. Raises InputError for an
    unknown preset, a missing file, or anything wrong inside the file (naming the key).
    """
    return parse_recipe(resolve_preset(DEFAULT_RECIPE if spec is None else spec, "recipe"))


def parse_recipe(path: Path) -> Recipe:
    """Read and validate one recipe file (see quant/README.md for the schema)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read recipe {path}: {exc.strerror}", "check the file's permissions") from None
    reader = _Reader(str(path), README_HINT)
    raw = parse_toml(path, data, README_HINT)
    reader.keys(raw, "", TOP_KEYS)
    if "name" not in raw:
        reader.fail("key 'name' is missing", 'add name = "..." at the top of the file')
    activations = reader.table(raw, "activations")
    reader.keys(activations, "activations", ACTIVATION_KEYS)
    weights = reader.table(raw, "weights")
    reader.keys(weights, "weights", WEIGHT_KEYS)
    equalization = reader.table(raw, "equalize")
    reader.keys(equalization, "equalize", EQUALIZE_KEYS)
    ops = reader.table(raw, "ops")
    reader.keys(ops, "ops", OPS_KEYS)
    rule = ActivationRule(**reader.values(activations, "activations", [k for k in SETTINGS if k in ACTIVATION_KEYS]))
    return Recipe(
        name=reader.value(raw, "name", ""),
        description=reader.value(raw, "description", "", default=""),
        source=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        activations=rule,
        weight_granularity=reader.value(weights, "granularity", "weights", default="per_channel"),
        quantize_ops=_quantize_ops(reader, ops),
        extreme_abs=reader.value(activations, "extreme_abs", "activations", default=DEFAULT_EXTREME_ABS),
        equalize=reader.value(equalization, "enabled", "equalize", default=False),
        equalize_alpha=reader.value(equalization, "alpha", "equalize", default=0.5),
        op_types=_overrides(reader, raw, "op_types", NODE_KEYS),
        nodes=_overrides(reader, raw, "nodes", NODE_KEYS),
        tensors=_overrides(reader, raw, "tensors", TENSOR_KEYS),
        graph_inputs=_graph_inputs(reader, raw),
    )


def _graph_inputs(reader: _Reader, raw: dict) -> Override | None:
    if "graph_inputs" not in raw:
        return None
    body = reader.table(raw, "graph_inputs")
    reader.keys(body, "graph_inputs", TENSOR_KEYS)
    return Override(**reader.values(body, "graph_inputs", [k for k in TENSOR_KEYS if k in body]), key="graph_inputs")


def _quantize_ops(reader: _Reader, ops: dict) -> tuple[str, ...]:
    listed = reader.value(ops, "quantize", "ops", default=DEFAULT_OPS)
    unsupported = [op for op in listed if op not in SUPPORTED_OPS]
    if unsupported:
        reader.fail(
            f"key 'ops.quantize' lists op types edgekit cannot quantize: {', '.join(unsupported)}",
            f"supported: {', '.join(SUPPORTED_OPS)}",
        )
    return tuple(dict.fromkeys(listed))  # duplicates are harmless: keep the first


def _overrides(reader: _Reader, raw: dict, table_name: str, allowed: tuple[str, ...]) -> dict[str, Override]:
    overrides = {}
    for name, body in reader.table(raw, table_name).items():
        key = f"{table_name}.{_toml_key(name, quote=table_name != 'op_types')}"
        if not isinstance(body, dict):
            reader.fail(f"key '{key}' must be a table", f"write it as [{key}] with keys from: {', '.join(allowed)}")
        # [nodes.a.b] (unquoted) is the table b inside nodes."a": say how to write a name with dots.
        reader.keys(body, key, allowed, note=f'; quote {table_name[:-1]} names holding dots: [{table_name}."a.b"]' if table_name != "op_types" else "")
        overrides[name] = Override(**reader.values(body, key, [k for k in allowed if k in body]), key=key)
    return overrides


def _toml_key(name: str, quote: bool) -> str:
    # Node and tensor names often hold dots ("conv1.weight"), so they are always shown quoted.
    return toml_key(name) if not quote else json.dumps(name, ensure_ascii=False)


def _show(value: Any) -> str:
    """A value the way the user wrote it in TOML (true, "abc", [0, inf]), not Python's repr."""
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(value, ensure_ascii=False, default=str)


def _coerce(kind: str, value: Any) -> Any:
    """`value` as `kind`, or None if it has the wrong type (bool is never a number; int is a float)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return value if isinstance(value, str) else None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind == "float":
        return float(value) if number else None
    if kind == "int":
        return value if number and isinstance(value, int) else None
    if kind == "range":
        if isinstance(value, list) and len(value) == 2 and all(_coerce("float", v) is not None for v in value):
            return (float(value[0]), float(value[1]))
        return None
    if kind == "list":
        return tuple(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else None
    raise AssertionError(kind)


class _Reader(TomlReader):
    """Typed access to a parsed recipe whose every error names the file and the full key."""

    def value(self, table: dict, name: str, prefix: str, default: Any = None) -> Any:
        if name not in table:
            return default
        setting = SETTINGS.get(name) or OTHER_SETTINGS[name]
        full = f"{prefix}.{name}" if prefix else name
        value = _coerce(setting.kind, table[name])
        if value is None:
            self.fail(f"key '{full}' must be {KIND_WORDS[setting.kind]}, got {_show(table[name])}", f"allowed: {setting.allowed}")
        if not setting.ok(value):
            self.fail(f"key '{full}' = {_show(table[name])} is not allowed", f"allowed: {setting.allowed}")
        return value

    def values(self, table: dict, prefix: str, names: list[str]) -> dict[str, Any]:
        return {name: self.value(table, name, prefix) for name in names if name in table}
