"""Channel equalization: move per-channel range differences of an activation into the weights around it.

A per-tensor int8 grid serves a tensor whose channels span orders of magnitude badly: a channel
that reaches 2 where another reaches 118 gets five levels. Where every reader of the tensor is a
weighted op (Conv, Gemm, MatMul with constant weights) and its producer can be scaled per channel
(a Conv or matmul's output channels, LayerNorm/BatchNorm's scale and bias, a Mul by a constant,
through Add-of-a-constant and Relu), dividing channel c by s_c on the producer side and multiplying
the readers' weights by s_c leaves the float model unchanged and equalizes the tensor:

    s_c = a_c ** alpha / w_c ** (1 - alpha)

a_c: the channel's calibrated absolute maximum, w_c: its readers' largest weight. alpha = 1 moves
everything into the weights, which is exact for depthwise readers (each weight channel has its own
int8 scale) and is what they get; other readers get the recipe's alpha (SmoothQuant's 0.5
balances activation and weight ranges; cross-layer equalization of MobileNet-style pairs is the
same formula). Every equalized tensor is recorded with its scales' spread and ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from edgekit.dataset import Dataset
from edgekit.quantizer.graph import GraphView, tensor_ranks

SAMPLES = 16
SCALE_BOUNDS = (1e-4, 1e4)  # beyond these a channel is dead or the data too thin to move it
FLOOR = 1e-3  # a channel's range counts as at least this share of the tensor's largest


@dataclass(frozen=True)
class Equalization:
    """One tensor equalized: which nodes were edited, and what it did to the tensor's channels."""

    tensor: str
    axis: int
    alpha: float
    producers: tuple[str, ...]  # nodes whose constants were divided by the scales
    consumers: tuple[str, ...]  # nodes whose weights were multiplied by them
    scale_min: float
    scale_max: float
    spread_before: float  # largest / smallest channel absolute maximum
    spread_after: float

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else (list(v) if isinstance(v, tuple) else v)) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class _Edit:
    """A constant input of a node scaled per channel: `tensor`'s values along `axis` (of its own rank)
    divided (producer side) or multiplied (reader side) by the scales."""

    node: str
    index: int
    axis: int | None  # None: a scalar or broadcast constant, expanded to the channel axis
    divide: bool


@dataclass(frozen=True)
class _Candidate:
    tensor: str
    axis: int  # the channel axis of the activation
    rank: int
    edits: tuple[_Edit, ...]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    depthwise_only: bool


def equalize(model: onnx.ModelProto, dataset: Dataset, alpha: float) -> tuple[onnx.ModelProto, list[Equalization]]:
    """`model` with every equalizable activation equalized (a copy; the input is left as it is)."""
    view = GraphView.of(model)
    ranks = tensor_ranks(model)
    candidates = [c for t in _activation_tensors(view) if (c := _candidate(view, t, ranks)) is not None]
    if not candidates:
        return model, []
    maxima = _channel_maxima(model, [c.tensor for c in candidates], {c.tensor: c.axis for c in candidates}, dataset)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    replaced: dict[tuple[str, int], np.ndarray] = {}
    done = []
    for cand in candidates:
        a = maxima.get(cand.tensor)
        if a is None or not np.all(np.isfinite(a)) or a.max() <= 0:
            continue
        a = np.maximum(a, FLOOR * a.max())
        w = np.maximum(_reader_maxima(view, cand, replaced), 1e-12)
        used_alpha = 1.0 if cand.depthwise_only else alpha
        s = a**used_alpha / w ** (1.0 - used_alpha)
        s = np.clip(s / np.exp(np.log(s).mean()), *SCALE_BOUNDS)
        for edit in cand.edits:
            value = replaced.get((edit.node, edit.index))
            if value is None:
                value = view.constants[view.node(edit.node).input[edit.index]].astype(np.float32)
            replaced[(edit.node, edit.index)] = _scaled(value, s, edit, cand)
        after = a / s
        done.append(Equalization(cand.tensor, cand.axis, used_alpha, cand.producers, cand.consumers,
                                 float(s.min()), float(s.max()), float(a.max() / a.min()), float(after.max() / after.min())))
    _write_constants(out, view, replaced)
    return out, done


def _activation_tensors(view: GraphView) -> list[str]:
    outputs = set(view.graph_outputs)
    return [node.output[0] for node in view.nodes if node.output and node.output[0] not in outputs and view.is_float(node.output[0]) and not view.is_constant(node.output[0])]


def _candidate(view: GraphView, tensor: str, ranks: dict[str, int]) -> _Candidate | None:
    rank = ranks.get(tensor)
    readers = view.consumers.get(tensor, [])
    if rank is None or rank < 2 or not readers:
        return None
    axis = 1 if all(r.op_type == "Conv" for r, _ in readers) else rank - 1
    reader_edits, depthwise = [], True
    for reader, index in readers:
        edit = _reader_edit(view, reader, index, axis, rank)
        if edit is None:
            return None
        reader_edits.append(edit)
        depthwise &= reader.op_type == "Conv" and _attr(reader, "group", 1) > 1
    channels = _channels(view, reader_edits[0])
    path = _producer_path(view, tensor, axis, rank, channels)
    if path is None:
        return None
    producer_edits, producers = path
    return _Candidate(tensor, axis, rank, (*producer_edits, *reader_edits), producers, tuple(r.name for r, _ in readers), depthwise)


def _reader_edit(view: GraphView, reader: onnx.NodeProto, index: int, axis: int, rank: int) -> _Edit | None:
    """Multiply a reader's weights along the activation's channel (its input-channel axis)."""
    if index != 0 or len(reader.input) < 2 or not view.is_constant(reader.input[1]):
        return None
    weight = view.constants[reader.input[1]]
    if reader.op_type == "Conv" and axis == 1 and weight.ndim >= 3:
        group = _attr(reader, "group", 1)
        if group == 1:
            return _Edit(reader.name, 1, 1, divide=False)
        if weight.shape[1] == 1 and weight.shape[0] == group:  # depthwise: one input channel per group
            return _Edit(reader.name, 1, 0, divide=False)
        return None
    if reader.op_type == "MatMul" and axis == rank - 1 and weight.ndim == 2:
        return _Edit(reader.name, 1, 0, divide=False)
    if reader.op_type == "Gemm" and axis == rank - 1 and rank == 2 and weight.ndim == 2 and not _attr(reader, "transA", 0):
        return _Edit(reader.name, 1, 1 if _attr(reader, "transB", 0) else 0, divide=False)
    return None


def _channels(view: GraphView, edit: _Edit) -> int:
    return view.constants[view.node(edit.node).input[edit.index]].shape[edit.axis]


def _producer_path(view: GraphView, tensor: str, axis: int, rank: int, channels: int):
    """The constants to divide so that `tensor` comes out divided per channel, or None."""
    edits, producers = [], []
    while True:
        node = view.producer.get(tensor)
        if node is None or node.domain not in ("", "ai.onnx"):
            return None
        producers.append(node.name)
        op = node.op_type
        if op == "Conv" and axis == 1 and _const_input(view, node, 1) and _attr(node, "group", 1) in (1, channels):
            edits.append(_Edit(node.name, 1, 0, divide=True))
            if len(node.input) > 2 and node.input[2]:
                if not _const_input(view, node, 2):
                    return None
                edits.append(_Edit(node.name, 2, 0, divide=True))
            return edits, tuple(producers)
        if op == "MatMul" and axis == rank - 1 and _const_input(view, node, 1) and view.constants[node.input[1]].ndim == 2:
            edits.append(_Edit(node.name, 1, 1, divide=True))
            return edits, tuple(producers)
        if op in ("LayerNormalization", "BatchNormalization"):
            norm_axis = _attr(node, "axis", -1) % rank if op == "LayerNormalization" else 1
            if norm_axis != axis or norm_axis != rank - 1 and op == "LayerNormalization":
                return None
            if not all(_const_input(view, node, i) for i in (1, 2) if i < len(node.input) and node.input[i]):
                return None
            edits += [_Edit(node.name, i, 0, divide=True) for i in (1, 2) if i < len(node.input) and node.input[i]]
            return edits, tuple(producers)
        if op in ("Mul", "Add") and len(node.input) == 2:
            const = [i for i in (0, 1) if _const_input(view, node, i)]
            if len(const) != 1 or not _broadcasts_per_channel(view.constants[node.input[const[0]]], axis, rank, channels):
                return None
            edits.append(_Edit(node.name, const[0], None, divide=True))
            if op == "Mul":
                return edits, tuple(producers)
            tensor = node.input[1 - const[0]]
        elif op in ("Relu", "LeakyRelu"):
            tensor = node.input[0]
        else:
            return None
        if len(view.consumers.get(tensor, [])) != 1 or tensor in view.graph_outputs or tensor in view.graph_inputs:
            return None


def _const_input(view: GraphView, node: onnx.NodeProto, index: int) -> bool:
    return index < len(node.input) and view.is_constant(node.input[index]) and len(view.consumers.get(node.input[index], [])) >= 1


def _broadcasts_per_channel(value: np.ndarray, axis: int, rank: int, channels: int) -> bool:
    """A constant that is one value, or one value per channel laid out along `axis` of a rank-`rank` tensor."""
    if value.size == 1:
        return value.ndim <= rank
    shape = (1,) * (rank - value.ndim) + tuple(value.shape)
    return len(shape) == rank and shape[axis] == channels and all(d == 1 for i, d in enumerate(shape) if i != axis)


def _scaled(value: np.ndarray, s: np.ndarray, edit: _Edit, cand: _Candidate) -> np.ndarray:
    if edit.axis is None:  # a broadcast constant becomes one value per channel along the activation's axis
        shape = [1] * cand.rank
        shape[cand.axis] = s.size
        value = np.broadcast_to(value.reshape((1,) * (cand.rank - value.ndim) + value.shape), shape).astype(np.float32)
        return (value / s.reshape(shape)).astype(np.float32)
    shape = [1] * value.ndim
    shape[edit.axis] = s.size
    factor = s.reshape(shape)
    return (value / factor if edit.divide else value * factor).astype(np.float32)


def _reader_maxima(view: GraphView, cand: _Candidate, replaced: dict) -> np.ndarray:
    """Per activation channel, the largest |weight| of any reader (as edited so far)."""
    maxima = None
    for edit in cand.edits:
        if edit.divide:
            continue
        value = replaced.get((edit.node, edit.index))
        if value is None:
            value = view.constants[view.node(edit.node).input[edit.index]]
        moved = np.moveaxis(np.abs(value.astype(np.float32)), edit.axis, 0)
        per = moved.reshape(moved.shape[0], -1).max(axis=1)
        maxima = per if maxima is None else np.maximum(maxima, per)
    return maxima


def _channel_maxima(model: onnx.ModelProto, tensors: list[str], axes: dict[str, int], dataset: Dataset) -> dict[str, np.ndarray]:
    from edgekit.quantizer.activation_stats import observed_tensors

    maxima: dict[str, np.ndarray] = {}
    count = min(SAMPLES, len(dataset))
    subset = dataset.head(count)
    for values in observed_tensors(model, tensors, subset, "equalization: channel ranges"):
        for name, value in values.items():
            moved = np.moveaxis(np.abs(np.asarray(value, np.float32)), axes[name], 0)
            per = moved.reshape(moved.shape[0], -1).max(axis=1)
            maxima[name] = per if name not in maxima else np.maximum(maxima[name], per)
    return maxima


def _write_constants(model: onnx.ModelProto, view: GraphView, replaced: dict[tuple[str, int], np.ndarray]) -> None:
    """Each edited constant input becomes a new initializer of its own: constants shared with other nodes stay as they were."""
    nodes = {node.name: node for node in model.graph.node}
    taken = {init.name for init in model.graph.initializer} | {o for n in model.graph.node for o in n.output}
    for (name, index), value in replaced.items():
        node = nodes[name]
        new = f"{node.input[index]}_equalized_{name}"
        while new in taken:
            new += "_"
        taken.add(new)
        model.graph.initializer.append(numpy_helper.from_array(value, new))
        node.input[index] = new


def _attr(node: onnx.NodeProto, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default
