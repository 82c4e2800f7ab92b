"""Inference BatchNormalization as convolution weights, before anything is quantized.

Exporters usually fold BatchNormalization into the convolution before it; some do not
(paddle2onnx leaves it after a Conv whose output nothing else reads, and after an Add). Left
alone it sits between an integer convolution and its requantization as a float op, which no
integer rule takes: an error at compile. Here, in the float model the quantizer works on:

- Conv or ConvTranspose (group 1), constant weights, output read only by the BatchNormalization:
  the per-channel affine a * y + b goes into the weights and the bias (the weights are then
  quantized per output channel with the scale folded in, as an exporter that folds would have
  written them). The convolution takes the BatchNormalization's output name.
- anything else: a depthwise 1x1 Conv (group C) with weight a and bias b, under the
  BatchNormalization's own node name, which every conv rule quantizes and compiles.

    a = scale / sqrt(var + epsilon),   b = B - mean * a

Numerically both equal the original up to float32 rounding; `fold_batch_norms` returns what it
did, which the record lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.quantizer.graph import GraphView, tensor_ranks


@dataclass(frozen=True)
class FoldedBatchNorm:
    node: str
    into: str  # the Conv/ConvTranspose it was folded into, or "depthwise conv" (it became one)

    def to_dict(self) -> dict:
        return {"node": self.node, "into": self.into}


def fold_batch_norms(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[FoldedBatchNorm]]:
    """`model` with every inference BatchNormalization of constant parameters folded or made a conv."""
    view = GraphView.of(model)
    done: list[FoldedBatchNorm] = []
    graph = model.graph
    initializers: list[onnx.TensorProto] = []
    removed: set[str] = set()
    replaced: dict[str, onnx.NodeProto] = {}
    ranks: dict[str, int] | None = None
    for node in view.nodes:
        affine = _affine(view, node)
        if affine is None:
            continue
        a, b = affine
        producer = view.producer.get(node.input[0])
        weights = _foldable_weights(view, producer, node, a.size)
        if weights is not None:
            weight, bias, axis = weights
            shape = [1] * weight.ndim
            shape[axis] = -1
            new_w = (weight.astype(np.float64) * a.reshape(shape)).astype(np.float32)
            new_b = (bias.astype(np.float64) * a + b).astype(np.float32)
            w_name, b_name = f"{producer.name}.bn_weight", f"{producer.name}.bn_bias"
            initializers += [numpy_helper.from_array(new_w, w_name), numpy_helper.from_array(new_b, b_name)]
            conv = onnx.NodeProto()
            conv.CopyFrom(producer)
            del conv.input[:]
            conv.input.extend([producer.input[0], w_name, b_name])
            conv.output[0] = node.output[0]
            replaced[producer.name] = conv
            removed.add(node.name)
            done.append(FoldedBatchNorm(node.name, producer.name))
            continue
        ranks = tensor_ranks(model) if ranks is None else ranks
        rank = ranks.get(node.input[0])
        if rank is None or rank < 3:
            continue
        w_name, b_name = f"{node.name}.weight", f"{node.name}.bias"
        initializers += [
            numpy_helper.from_array(a.astype(np.float32).reshape([a.size, 1] + [1] * (rank - 2)), w_name),
            numpy_helper.from_array(b.astype(np.float32), b_name),
        ]
        replaced[node.name] = helper.make_node(
            "Conv", [node.input[0], w_name, b_name], [node.output[0]], name=node.name, group=int(a.size), kernel_shape=[1] * (rank - 2)
        )
        done.append(FoldedBatchNorm(node.name, "depthwise conv"))
    if not done:
        return model, done
    nodes = [replaced.get(n.name, n) for n in graph.node if n.name not in removed]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    return model, done


def _affine(view: GraphView, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, b) of an inference BatchNormalization whose parameters are constants, float64, or None."""
    if node.op_type != "BatchNormalization" or len(node.input) != 5 or len([o for o in node.output if o]) != 1:
        return None
    if any(a.name == "training_mode" and a.i for a in node.attribute):
        return None
    params = [view.constants.get(t) for t in node.input[1:]]
    if any(p is None for p in params):
        return None
    scale, bias, mean, var = (np.asarray(p, np.float64).reshape(-1) for p in params)
    epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    a = scale / np.sqrt(var + np.float64(np.float32(epsilon)))
    return a, bias - mean * a


def _foldable_weights(view: GraphView, producer: onnx.NodeProto | None, bn: onnx.NodeProto, channels: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(weight, bias, output-channel axis of the weight) of a conv the BatchNormalization can fold into, or None."""
    if producer is None or producer.op_type not in ("Conv", "ConvTranspose") or len(producer.output) != 1:
        return None
    output = producer.output[0]
    if len(view.consumers.get(output, [])) != 1 or output in view.graph_outputs:
        return None
    weight = view.constants.get(producer.input[1]) if len(producer.input) > 1 else None
    if weight is None:
        return None
    group = next((a.i for a in producer.attribute if a.name == "group"), 1)
    axis = 0 if producer.op_type == "Conv" else 1
    if producer.op_type == "ConvTranspose" and group != 1:
        return None  # its output channels are spread over groups along axis 1
    if weight.shape[axis] != channels:
        return None
    bias = view.constants.get(producer.input[2]) if len(producer.input) > 2 and producer.input[2] else np.zeros(channels, np.float32)
    if bias is None:
        return None
    return np.asarray(weight), np.asarray(bias).reshape(-1), axis
