"""`edgekit export`: PyTorch to ONNX with the dynamo exporter, checked against PyTorch itself."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgekit import console
from edgekit.errors import GateFailure, InputError, first_line
from edgekit.files import atomic_file
from edgekit.reference import Reference
from edgekit.user_code import UserCodeErrors, load_user_function, split_function_spec

MIN_OPSET = 18  # the dynamo exporter's floor; older opsets come from other exporters
FACTORY_ERRORS = UserCodeErrors(
    not_found=("model file not found: {path}", "check the path"),
    import_failed=("importing {path} failed: {error}", "fix the model file (run it with python to see the traceback)"),
    no_function=("{path} has no function '{name}'", "define it to return (model, example_inputs)"),
)


@dataclass(frozen=True)
class ExportOptions:
    opset: int = MIN_OPSET
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    # input name -> {axis: symbolic dimension name}, e.g. {"image": {0: "batch"}}
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    atol: float = 1e-4
    rtol: float = 1e-3


@dataclass(frozen=True)
class OutputParity:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    passed: bool


@dataclass
class ExportReport:
    output: str
    opset: int
    atol: float
    rtol: float
    outputs: list[OutputParity]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}


def export_model(source: str, output: Path, options: ExportOptions | None = None) -> ExportReport:
    """Export `source` (a `.pt2` program or `file.py:factory`) to the ONNX file `output`.

    The file is written only if ONNX Runtime reproduces PyTorch's outputs on the example inputs
    within `atol + rtol * |torch|`; otherwise GateFailure (exit 1) names the worst output.
    """
    options = options or ExportOptions()
    if options.opset < MIN_OPSET:
        raise InputError(f"--opset {options.opset} is below {MIN_OPSET}, the dynamo exporter's minimum", f"use --opset {MIN_OPSET} or higher")
    model, example_inputs = load_source(source)
    import torch

    with console.step("exporting with the torch dynamo ONNX exporter"):
        onnx_model = _export(model, example_inputs, options)
    input_names = [i.name for i in onnx_model.graph.input if i.name not in {t.name for t in onnx_model.graph.initializer}]
    with torch.no_grad():
        expected = _torch_outputs(model, example_inputs)
    feeds = {name: t.detach().cpu().numpy() for name, t in zip(input_names, _flat_tensors(example_inputs))}
    got = Reference(onnx_model)(feeds)
    output_names = [o.name for o in onnx_model.graph.output]
    if len(expected) != len(output_names):
        raise GateFailure(f"PyTorch returned {len(expected)} tensors but the ONNX graph has {len(output_names)} outputs", "check the model's return value")
    parities = [_parity(name, want, got[name], options) for name, want in zip(output_names, expected)]
    report = ExportReport(output=str(output), opset=options.opset, atol=options.atol, rtol=options.rtol, outputs=parities)
    if not report.passed:
        worst = next(p for p in parities if not p.passed)
        raise GateFailure(
            f"ONNX Runtime differs from PyTorch on output '{worst.name}': max abs {worst.max_abs:.3g}, max rel {worst.max_rel:.3g} "
            f"(tolerance atol {options.atol:g} + rtol {options.rtol:g})",
            "loosen --atol/--rtol if this is expected, or look for ops the exporter translates inexactly",
            report=report,
        )
    with atomic_file(Path(output)) as tmp:
        onnx.save(onnx_model, str(tmp))
    return report


def load_source(source: str):
    """Return (model, example_inputs tuple) from a `.pt2` file or a `file.py:factory` spec."""
    if source.endswith(".pt2"):
        return _load_program(Path(source))
    if split_function_spec(source) is None:
        raise InputError(f"export source '{source}' is neither a .pt2 file nor file.py:factory", "pass model.pt2 or path/to/model.py:make_model")
    return _load_factory(source)


def _load_program(path: Path):
    import torch

    if not path.is_file():
        raise InputError(f"exported program not found: {path}", "check the path")
    # torch.export.load logs the whole traceback of a failed deserialization as a warning before
    # it raises: the one-line error below says it, so that log is silenced while loading.
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.CRITICAL)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad archive
        raise InputError(f"{path} is not a torch.export program ({first_line(exc)})", "save it with torch.export.save") from None
    finally:
        export_log.setLevel(level)
    if program.example_inputs is None:
        raise InputError(f"{path} holds no example inputs", "export it with example inputs: torch.export.export(model, args)")
    args, kwargs = program.example_inputs
    if kwargs:
        raise InputError(f"{path} takes keyword inputs {sorted(kwargs)}", "export a program with positional inputs only")
    return program, tuple(args)


def _load_factory(source: str):
    import torch

    factory = load_user_function(source, None, "model", FACTORY_ERRORS)
    path_text, name = split_function_spec(source)
    path = Path(path_text)
    result = factory()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise InputError(f"{path}:{name}() must return (model, example_inputs)", "return the module and a tuple of example tensors")
    model, example_inputs = result
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if not isinstance(model, torch.nn.Module) or not all(isinstance(t, torch.Tensor) for t in example_inputs):
        raise InputError(f"{path}:{name}() must return an nn.Module and a tuple of tensors", "check the factory's return value")
    return model.eval(), tuple(example_inputs)


def _export(model, example_inputs, options: ExportOptions) -> onnx.ModelProto:
    import torch

    kwargs = dict(
        dynamo=True,
        opset_version=options.opset,
        external_data=False,
        verbose=False,
        input_names=options.input_names or None,
        dynamic_axes=options.dynamic_axes or None,
    )
    # The exporter logs a warning per missing torchvision op and prints progress to stdout.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model, example_inputs, **kwargs)
        except Exception as exc:  # noqa: BLE001 - exporter failures come in many types
            raise InputError(f"the ONNX exporter failed: {type(exc).__name__}: {first_line(exc)}", "see the exporter's message; --debug shows the full traceback") from exc
    model_proto = program.model_proto
    if options.output_names:
        # torch 2.13's exporter renames outputs without checking that the name is free (an output
        # called "embedding" clashed with nn.Embedding's tensor), so edgekit renames them itself.
        _rename_outputs(model_proto, options.output_names)
    try:
        onnx.checker.check_model(model_proto, full_check=True)
        model_proto = onnx.shape_inference.infer_shapes(model_proto, check_type=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"the exported model fails the ONNX checker: {first_line(exc)}", "report the model; try another --opset") from exc
    return model_proto


def _rename_outputs(model: onnx.ModelProto, names: list[str]) -> None:
    outputs = [o.name for o in model.graph.output]
    if len(names) != len(outputs):
        raise InputError(f"{len(names)} --output-name given but the model returns {len(outputs)} tensors", "give one name per output, in order")
    for old, new in zip(outputs, names):
        if old == new:
            continue
        taken = _tensor_names(model.graph)
        if new in taken:
            spare = next(f"{new}_{i}" for i in range(1, len(taken) + 2) if f"{new}_{i}" not in taken)
            _rename_tensor(model.graph, new, spare)
        _rename_tensor(model.graph, old, new)


def _tensor_names(graph: onnx.GraphProto) -> set[str]:
    names = {vi.name for vi in [*graph.input, *graph.output, *graph.value_info]} | {i.name for i in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                names |= _tensor_names(sub)
    return names


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename tensor `old` everywhere in `graph` and its subgraphs (which may read outer tensors)."""
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.name == old:
            vi.name = new
    for init in graph.initializer:
        if init.name == old:
            init.name = new
    for node in graph.node:
        for field_ in (node.input, node.output):
            for i, name in enumerate(field_):
                if name == old:
                    field_[i] = new
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                _rename_tensor(sub, old, new)


def _torch_outputs(model, example_inputs) -> list[np.ndarray]:
    import torch

    module = model.module() if hasattr(model, "module") and not isinstance(model, torch.nn.Module) else model
    result = module(*example_inputs)
    return [t.detach().cpu().numpy() for t in _flat_tensors(result)]


def _flat_tensors(value) -> list:
    import torch
    from torch.utils._pytree import tree_leaves

    return [leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor)]


def _parity(name: str, want: np.ndarray, have: np.ndarray, options: ExportOptions) -> OutputParity:
    if have.shape != want.shape:
        return OutputParity(name=name, shape=tuple(have.shape), max_abs=float("inf"), max_rel=float("inf"), passed=False)
    want64, have64 = want.astype(np.float64), have.astype(np.float64)
    diff = np.abs(have64 - want64)
    rel = diff / np.maximum(np.abs(want64), np.finfo(np.float32).tiny)
    passed = bool(np.all(diff <= options.atol + options.rtol * np.abs(want64)))
    return OutputParity(
        name=name,
        shape=tuple(have.shape),
        max_abs=float(diff.max()) if diff.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        passed=passed,
    )
