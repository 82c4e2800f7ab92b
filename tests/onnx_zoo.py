"""Small ONNX models written the way third-party exporters write them.

`edgekit compile` has to accept ONNX from any exporter, not only ours. We cannot
download real models in tests, so each builder below rebuilds, node by node, the
idioms one exporter is known for: runtime shape subgraphs, explicit Pad nodes,
NHWC transposes, decomposed LayerNorm, opset-13/18 signature changes, and the
way each one names tensors and stores constants. All weights come from a fixed
seed, so every call returns the same model.

    ZOO name                  imitates                           opset  inputs
    dynamic_reshape_cnn       torch.onnx.export, dynamic batch   11     input f32[N,3,16,16]
    tf2onnx_nhwc              tf2onnx, Keras NHWC model          13     input_1 f32[1,24,24,3]
    paddle_det_head           paddle2onnx, detection head        11     x f32[1,8,20,20]
    legacy_torch_transformer  TorchScript exporter, BERT layer   14     input_ids i64[batch_size,16]
    opset18_misc              torch dynamo exporter, opset 18    18     x f32[2,12],
                                                                        scale f32[1,12], ids i64[2]

Builders take the opset as an argument (default above) and emit the right signature for it.
`ZOO` maps the names to the builders; `sample_inputs` makes matching inputs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT32_MIN = float(np.finfo(np.float32).min)  # torch.finfo(torch.float32).min, -3.4028235e38
INT64_MIN = int(np.iinfo(np.int64).min)  # what torch writes for an open-ended reversed slice

# Opset from which these ops take `axes` as an input instead of an attribute.
_AXES_INPUT_SINCE = {"Squeeze": 13, "Unsqueeze": 13, "ReduceSum": 13, "ReduceMean": 18}


def _const(name: str, array) -> TensorProto:
    """A TensorProto (initializer or Constant value) holding `array` as given."""
    return numpy_helper.from_array(np.asarray(array), name)


def _i64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


@dataclass(frozen=True)
class _Exporter:
    """How one exporter names things and stores constants."""

    producer_name: str
    producer_version: str
    node_name: Callable[[str, int], str]  # (op_type, node index) -> node name
    output_name: Callable[[str, int, int], str]  # (node name, value serial, output index) -> tensor
    param_name: Callable[[str, str], str]  # (layer, "weight" | "bias" | ...) -> initializer name
    const_name: Callable[[int], str]  # serial -> name of an anonymous constant initializer
    constants_as_nodes: bool = False  # the TorchScript exporter emits Constant nodes instead


_TORCH = _Exporter(
    producer_name="pytorch",
    producer_version="1.12.1",
    node_name=lambda op, i: f"{op}_{i}",
    output_name=lambda node, serial, k: str(serial),  # TorchScript value numbers: "17", "18", ...
    param_name=lambda layer, kind: f"{layer}.{kind}",
    const_name=lambda serial: f"onnx::MatMul_{serial}",  # pre-transposed Linear weights
    constants_as_nodes=True,
)
_TF2ONNX = _Exporter(
    producer_name="tf2onnx",
    producer_version="1.16.1 15c810",
    node_name=lambda op, i: f"StatefulPartitionedCall/model/{op}__{i}",
    output_name=lambda node, serial, k: f"{node}:{k}",
    param_name=lambda layer, kind: f"StatefulPartitionedCall/model/{layer}/{kind}:0",
    const_name=lambda serial: f"const_fold_opt__{serial}",
)
_TORCH_DYNAMO = _Exporter(
    producer_name="pytorch",
    producer_version="2.5.1",
    node_name=lambda op, i: f"node_{op}_{i}",
    output_name=lambda node, serial, k: f"val_{serial}",
    param_name=lambda layer, kind: f"{layer}.{kind}",
    const_name=lambda serial: f"val_{serial}",
)
_PADDLE = _Exporter(
    producer_name="PaddlePaddle",
    producer_version="1.0.6",  # paddle2onnx version, as it writes it
    node_name=lambda op, i: f"p2o.{op}.{i}",
    output_name=lambda node, serial, k: f"{node.split('.')[1].lower()}_{serial}.tmp_{k}",
    param_name=lambda layer, kind: f"{layer}.{ {'weight': 'w_0', 'bias': 'b_0'}.get(kind, kind)}",
    const_name=lambda serial: f"p2o.helper.constant.{serial}",
)


class _Graph:
    """Collects nodes and initializers for one model, in one exporter's style."""

    def __init__(self, exporter: _Exporter, opset: int, seed: int) -> None:
        self.exporter = exporter
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._serial = itertools.count(10)

    # -- values -------------------------------------------------------------------------------

    def op(self, op_type: str, *inputs: str, n_out: int = 1, out: str | None = None, **attrs):
        """Append a node; return its output name (or list of names when n_out > 1)."""
        name = self.exporter.node_name(op_type, len(self.nodes))
        outs = [self.exporter.output_name(name, next(self._serial), k) for k in range(n_out)]
        if out is not None:
            outs[0] = out
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, array, name: str | None = None) -> str:
        """A constant, as a Constant node (TorchScript style) or an initializer."""
        if name is None and self.exporter.constants_as_nodes:
            return self.op("Constant", value=_const("", array))
        name = name or self.fresh_name()
        self.initializers.append(_const(name, array))
        return name

    def fresh_name(self) -> str:
        """A new name for an anonymous initializer, in the exporter's style."""
        return self.exporter.const_name(next(self._serial))

    def param(self, name: str, shape: Sequence[int], std: float) -> str:
        """A float32 weight initializer drawn from N(0, std^2)."""
        return self.const((self.rng.standard_normal(shape) * std).astype(np.float32), name)

    # -- ops whose signature moved between opsets ------------------------------------------------

    def axes_op(self, op_type: str, x: str, axes: Sequence[int], **attrs) -> str:
        """Squeeze/Unsqueeze/Reduce*: `axes` as an attribute or, in newer opsets, an input."""
        if self.opset >= _AXES_INPUT_SINCE[op_type]:
            return self.op(op_type, x, self.const(_i64(axes)), **attrs)
        return self.op(op_type, x, axes=list(axes), **attrs)

    def split(self, x: str, sizes: Sequence[int], axis: int) -> list[str]:
        """Split with explicit sizes: attribute before opset 13, `split` input since."""
        if self.opset >= 13:
            return self.op("Split", x, self.const(_i64(sizes)), n_out=len(sizes), axis=axis)
        return self.op("Split", x, n_out=len(sizes), axis=axis, split=list(sizes))

    def pad(self, x: str, pads: Sequence[int], axes: Sequence[int] | None = None) -> str:
        """Constant zero Pad with `pads` as an input (opset 11+); `axes` input needs 18+."""
        inputs = [x, self.const(_i64(pads)), self.const(np.float32(0.0))]
        if axes is not None:
            if self.opset < 18:
                raise ValueError("Pad with an axes input needs opset 18 or later")
            inputs.append(self.const(_i64(axes)))
        return self.op("Pad", *inputs, mode="constant")

    # -- exporter idioms --------------------------------------------------------------------------

    def dynamic_shape(self, x: str, keep: Sequence[int], tail: Sequence[int]) -> str:
        """Target shape `[x.size(i) for i in keep] + tail`, computed at run time.

        This is what tracing `x.view(x.size(0), ...)` exports:
        Shape -> Gather(i) -> Unsqueeze -> Concat(..., constant tail).
        """
        shape = self.op("Shape", x)
        dims = [self.op("Gather", shape, self.const(np.int64(i)), axis=0) for i in keep]
        dims = [self.axes_op("Unsqueeze", dim, [0]) for dim in dims]
        return self.op("Concat", *dims, self.const(_i64(tail)), axis=0)

    def sliced_shape(self, x: str, start: int, end: int, tail: Sequence[int]) -> str:
        """paddle2onnx's reshape target: Shape -> Slice(start:end) -> Concat(..., constant tail)."""
        shape = self.op("Shape", x)
        starts, ends, axes = (self.const(_i64([v])) for v in (start, end, 0))
        head = self.op("Slice", shape, starts, ends, axes)
        return self.op("Concat", head, self.const(_i64(tail)), axis=0)

    def conv(self, x: str, layer: str, c_in: int, c_out: int, k: int, std: float | None = None,
             **attrs) -> str:
        """Conv with He-initialised (or N(0, std^2)) weights and a small bias."""
        std = math.sqrt(2.0 / (c_in * k * k)) if std is None else std
        w = self.param(self.exporter.param_name(layer, "weight"), [c_out, c_in, k, k], std)
        b = self.param(self.exporter.param_name(layer, "bias"), [c_out], 0.05)
        return self.op("Conv", x, w, b, kernel_shape=[k, k], **attrs)

    # -- assembly ---------------------------------------------------------------------------------

    def model(self, name: str, inputs: list[onnx.ValueInfoProto],
              outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(
            graph,
            opset_imports=opsets,
            ir_version=helper.find_min_ir_version_for(opsets),  # old exporters wrote old IRs
            producer_name=self.exporter.producer_name,
            producer_version=self.exporter.producer_version,
        )
        onnx.checker.check_model(model, full_check=True)
        return model


def _tensor(name: str, elem_type: int, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def _require_opset(opset: int, minimum: int, builder: str) -> None:
    if opset < minimum:
        raise ValueError(f"{builder} needs opset {minimum} or later, got {opset}")


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def dynamic_reshape_cnn(opset: int = 11) -> onnx.ModelProto:
    """torch.onnx.export of a small CNN with `dynamic_axes={"input": {0: "N"}}`.

    The classifier's `x.view(x.size(0), -1)` is exported as a runtime shape subgraph,
    Shape -> Gather(0) -> Unsqueeze -> Concat([-1]) -> Reshape, which an importer that needs
    static shapes has to fold or evaluate first. Gemm carries the Linear (transB=1).
    """
    _require_opset(opset, 11, "dynamic_reshape_cnn")
    g = _Graph(_TORCH, opset, seed=11)
    x = g.conv("input", "features.0", 3, 8, 3, pads=[1, 1, 1, 1])
    x = g.op("Relu", x)
    x = g.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])  # [N, 8, 8, 8]
    x = g.op("Reshape", x, g.dynamic_shape(x, keep=[0], tail=[-1]))
    w = g.param("classifier.weight", [10, 8 * 8 * 8], math.sqrt(1.0 / 512))
    b = g.param("classifier.bias", [10], 0.05)
    g.op("Gemm", x, w, b, alpha=1.0, beta=1.0, transB=1, out="output")
    return g.model(
        "torch_jit",
        [_tensor("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [_tensor("output", TensorProto.FLOAT, ["N", 10])],
    )


def tf2onnx_style_nhwc(opset: int = 13) -> onnx.ModelProto:
    """tf2onnx conversion of a Keras NHWC model (MobileNet-like stem and classifier).

    Keras is channels-last, so tf2onnx wraps the conv in Transpose nodes; 'SAME' padding
    with stride 2 becomes an explicit asymmetric Pad node; ReLU6 becomes Clip with min/max
    inputs; GlobalAveragePooling2D is ReduceMean over H, W then Squeeze; Dense is MatMul + Add.
    """
    _require_opset(opset, 13, "tf2onnx_style_nhwc")
    g = _Graph(_TF2ONNX, opset, seed=13)
    x = g.op("Transpose", "input_1", perm=[0, 3, 1, 2])  # NHWC -> NCHW
    x = g.pad(x, [0, 0, 0, 0, 0, 0, 1, 1])  # TF 'SAME', stride 2: pad only bottom/right
    x = g.conv(x, "conv1", 3, 16, 3, strides=[2, 2])  # [1, 16, 12, 12]
    bn = [g.param(g.exporter.param_name("conv1_bn", "gamma"), [16], 0.1),
          g.param(g.exporter.param_name("conv1_bn", "beta"), [16], 0.1),
          g.param(g.exporter.param_name("conv1_bn", "moving_mean"), [16], 0.1),
          g.const(g.rng.uniform(0.5, 1.5, 16).astype(np.float32),
                  g.exporter.param_name("conv1_bn", "moving_variance"))]
    x = g.op("BatchNormalization", x, *bn, epsilon=1e-3)
    x = g.op("Clip", x, g.const(np.float32(0.0)), g.const(np.float32(6.0)))  # ReLU6
    x = g.op("Transpose", x, perm=[0, 2, 3, 1])  # back to NHWC
    x = g.axes_op("ReduceMean", x, [1, 2], keepdims=1)  # [1, 1, 1, 16]
    x = g.axes_op("Squeeze", x, [1, 2])
    w = g.param(g.exporter.param_name("predictions", "kernel"), [16, 10], 0.25)
    b = g.param(g.exporter.param_name("predictions", "bias"), [10], 0.05)
    x = g.op("Add", g.op("MatMul", x, w), b)
    g.op("Softmax", x, axis=-1, out="predictions")
    return g.model(
        "tf2onnx",
        [_tensor("input_1", TensorProto.FLOAT, [1, 24, 24, 3])],
        [_tensor("predictions", TensorProto.FLOAT, [1, 10])],
    )


def paddle_style_det_head(opset: int = 11) -> onnx.ModelProto:
    """paddle2onnx export of a PicoDet/PP-YOLOE-like detection neck and head.

    The neck upsamples with Resize (nearest, 'scales' input, empty roi) and Concats with the
    skip connection. Each head branch reshapes its map to [N, C, H*W] through a reshape2 target
    computed at run time (Shape -> Slice(starts/ends as inputs) -> Concat(constants)), then
    Transposes to [N, H*W, C]. Two outputs: "scores" (Sigmoid) and "boxes" (Exp).
    """
    _require_opset(opset, 11, "paddle_style_det_head")
    g = _Graph(_PADDLE, opset, seed=7)
    down = g.op("Relu", g.conv("x", "conv2d_0", 8, 8, 3, strides=[2, 2], pads=[1, 1, 1, 1]))
    up = g.op(
        "Resize", down, g.const(_f32([])), g.const(_f32([1, 1, 2, 2])),
        mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor",
    )  # [1, 8, 20, 20]
    neck = g.op("Concat", "x", up, axis=1)  # [1, 16, 20, 20]

    def head(layer: str, channels: int, activation: str, out: str) -> None:
        y = g.op(activation, g.conv(neck, layer, 16, channels, 3, std=0.05, pads=[1, 1, 1, 1]))
        y = g.op("Reshape", y, g.sliced_shape(y, 0, 1, tail=[channels, -1]))
        g.op("Transpose", y, perm=[0, 2, 1], out=out)

    head("conv2d_1", 4, "Sigmoid", "scores")
    head("conv2d_2", 4, "Exp", "boxes")
    return g.model(
        "paddle_det_head",
        [_tensor("x", TensorProto.FLOAT, [1, 8, 20, 20])],
        [_tensor("scores", TensorProto.FLOAT, [1, 400, 4]),
         _tensor("boxes", TensorProto.FLOAT, [1, 400, 4])],
    )


def legacy_torch_transformer(opset: int = 14) -> onnx.ModelProto:
    """TorchScript-based torch.onnx.export (torch 1.x) of a one-layer BERT-style encoder.

    Everything is spelled the old way: constants are Constant nodes, Linear is
    MatMul(x, onnx::MatMul_*) + Add(bias, .), LayerNorm is decomposed
    (ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div, Mul, Add), head reshapes use
    Shape -> Gather -> Unsqueeze -> Concat, the default attention mask is
    ConstantOfShape(ones) -> Where(mask, 0, finfo.min) added to the scores, and GELU is
    the Erf form. Vocabulary 100, hidden 32, 4 heads, FFN 64, sequence 16.
    """
    _require_opset(opset, 11, "legacy_torch_transformer")
    vocab, seq, hidden, heads, ffn = 100, 16, 32, 4, 64
    head_dim = hidden // heads
    g = _Graph(_TORCH, opset, seed=14)

    def linear(x: str, layer: str, d_in: int, d_out: int) -> str:
        weight_t = g.param(g.fresh_name(), [d_in, d_out], math.sqrt(1.0 / d_in))
        bias = g.param(f"{layer}.bias", [d_out], 0.02)
        return g.op("Add", bias, g.op("MatMul", x, weight_t))

    def layer_norm(x: str, layer: str, out: str | None = None) -> str:
        mean = g.axes_op("ReduceMean", x, [-1], keepdims=1)
        centred = g.op("Sub", x, mean)
        var = g.axes_op("ReduceMean", g.op("Pow", centred, g.const(np.float32(2.0))), [-1],
                        keepdims=1)
        std = g.op("Sqrt", g.op("Add", var, g.const(np.float32(1e-12))))
        gamma = g.const((1.0 + 0.1 * g.rng.standard_normal(hidden)).astype(np.float32),
                        f"{layer}.weight")
        beta = g.param(f"{layer}.bias", [hidden], 0.1)
        return g.op("Add", g.op("Mul", g.op("Div", centred, std), gamma), beta, out=out)

    def to_heads(x: str, perm: list[int]) -> str:
        x = g.op("Reshape", x, g.dynamic_shape(x, keep=[0, 1], tail=[heads, head_dim]))
        return g.op("Transpose", x, perm=perm)

    # Embeddings: word + position (position_ids is a registered buffer, exported as a constant).
    words = g.op("Gather", g.param("embeddings.word_embeddings.weight", [vocab, hidden], 1.0),
                 "input_ids", axis=0)
    positions = g.op("Gather", g.param("embeddings.position_embeddings.weight", [seq, hidden], 1.0),
                     g.const(_i64([list(range(seq))])), axis=0)
    h = layer_norm(g.op("Add", words, positions), "embeddings.LayerNorm")

    # Self-attention.
    prefix = "encoder.layer.0.attention"
    q = to_heads(linear(h, f"{prefix}.self.query", hidden, hidden), [0, 2, 1, 3])
    k_t = to_heads(linear(h, f"{prefix}.self.key", hidden, hidden), [0, 2, 3, 1])
    v = to_heads(linear(h, f"{prefix}.self.value", hidden, hidden), [0, 2, 1, 3])
    scores = g.op("Div", g.op("MatMul", q, k_t), g.const(np.float32(math.sqrt(head_dim))))
    ones = g.op("ConstantOfShape", g.op("Shape", "input_ids"), value=_const("", _i64([1])))
    keep = g.op("Cast", g.axes_op("Unsqueeze", ones, [1, 2]), to=TensorProto.BOOL)
    mask = g.op("Where", keep, g.const(np.float32(0.0)), g.const(np.float32(FLOAT32_MIN)))
    probs = g.op("Softmax", g.op("Add", scores, mask), axis=-1)
    context = g.op("Transpose", g.op("MatMul", probs, v), perm=[0, 2, 1, 3])
    context = g.op("Reshape", context, g.dynamic_shape(context, keep=[0, 1], tail=[hidden]))
    attn = linear(context, f"{prefix}.output.dense", hidden, hidden)
    h = layer_norm(g.op("Add", attn, h), f"{prefix}.output.LayerNorm")

    # Feed-forward with exact (Erf) GELU.
    prefix = "encoder.layer.0"
    inner = linear(h, f"{prefix}.intermediate.dense", hidden, ffn)
    erf = g.op("Erf", g.op("Div", inner, g.const(np.float32(math.sqrt(2.0)))))
    gelu = g.op("Mul", g.op("Mul", inner, g.op("Add", erf, g.const(np.float32(1.0)))),
                g.const(np.float32(0.5)))
    ffn_out = linear(gelu, f"{prefix}.output.dense", ffn, hidden)
    layer_norm(g.op("Add", ffn_out, h), f"{prefix}.output.LayerNorm", out="last_hidden_state")
    return g.model(
        "torch_jit",
        [_tensor("input_ids", TensorProto.INT64, ["batch_size", seq])],
        [_tensor("last_hidden_state", TensorProto.FLOAT, ["batch_size", seq, hidden])],
    )


def opset18_misc(opset: int = 18) -> onnx.ModelProto:
    """Ops whose signatures changed at opset 13 or 18, as torch's dynamo exporter writes them.

    ReduceSum/ReduceMean with `axes` as an input, Split both by `num_outputs` (18) and by a
    `split` input, Pad with an `axes` input, a reversing Slice with steps and an INT64_MIN end
    (torch.flip style), Unsqueeze with an axes input, a float16 round trip (mixed precision),
    and Where. Three inputs of different names and dtypes.
    """
    _require_opset(opset, 18, "opset18_misc")
    g = _Graph(_TORCH_DYNAMO, opset, seed=18)
    table = g.param("bias_table", [100, 12], 0.1)

    scaled = g.op("Mul", "x", "scale")  # [2, 12] * [1, 12]
    leaky = g.op("Where", g.op("Greater", scaled, g.const(np.float32(0.0))), scaled,
                 g.op("Mul", scaled, g.const(np.float32(0.1))))
    a = g.op("Add", leaky, g.op("Gather", table, "ids", axis=0))  # [2, 12]

    a0, a1, a2 = g.op("Split", a, n_out=3, axis=1, num_outputs=3)  # 3 x [2, 4]
    b0, b1 = g.split(a, [4, 8], axis=1)  # [2, 4], [2, 8]
    reversed_odd = g.op("Slice", b1, g.const(_i64([-1])), g.const(_i64([INT64_MIN])),
                        g.const(_i64([1])), g.const(_i64([-2])))  # b1[:, ::-2] -> [2, 4]
    c = g.op("Add", g.op("Add", g.op("Mul", a0, a1), b0), reversed_odd)
    c = g.pad(c, [1, 1], axes=[1])  # [2, 6]
    half = g.op("Cast", c, to=TensorProto.FLOAT16)
    g.op("Cast", half, to=TensorProto.FLOAT, out="features")

    summed = g.axes_op("ReduceSum", g.axes_op("Unsqueeze", "features", [1]), [2], keepdims=0)
    mean = g.axes_op("ReduceMean", a2, [1], keepdims=1)
    g.op("Concat", summed, mean, axis=1, out="stats")  # [2, 2]
    return g.model(
        "main_graph",
        [_tensor("x", TensorProto.FLOAT, [2, 12]),
         _tensor("scale", TensorProto.FLOAT, [1, 12]),
         _tensor("ids", TensorProto.INT64, [2])],
        [_tensor("features", TensorProto.FLOAT, [2, 6]),
         _tensor("stats", TensorProto.FLOAT, [2, 2])],
    )


def tf2onnx_flatten_reduceprod(opset: int = 13) -> onnx.ModelProto:
    """tf2onnx conversion of Keras `Flatten()` on a dynamic batch: the flattened size is
    Shape -> Slice(1:) -> ReduceProd, concatenated after -1 into the Reshape target.

    TVM 0.27's importer cannot reduce over a shape value and rejects the Reshape
    ("Reshape requires the input new shape to be Shape"): only folding makes it importable.
    """
    _require_opset(opset, 13, "tf2onnx_flatten_reduceprod")
    g = _Graph(_TF2ONNX, opset, seed=17)
    x = g.op("Relu", g.op("Transpose", "input", perm=[0, 3, 1, 2]))
    x = g.conv(x, "conv2d", 2, 4, 3, pads=[1, 1, 1, 1])  # [N, 4, 6, 6]
    starts, ends, axes = (g.const(_i64([v])) for v in (1, 4, 0))
    flat = g.op("ReduceProd", g.op("Slice", g.op("Shape", x), starts, ends, axes), keepdims=1)
    x = g.op("Reshape", x, g.op("Concat", g.const(_i64([-1])), flat, axis=0))
    w = g.param("StatefulPartitionedCall/model/dense/MatMul/ReadVariableOp:0", [4 * 6 * 6, 5], 0.1)
    g.op("MatMul", x, w, out="dense")
    return g.model(
        "tf2onnx",
        [_tensor("input", TensorProto.FLOAT, ["unk__5", 6, 6, 2])],
        [_tensor("dense", TensorProto.FLOAT, ["unk__6", 5])],
    )


ZOO: dict[str, Callable[[], onnx.ModelProto]] = {
    "dynamic_reshape_cnn": dynamic_reshape_cnn,
    "tf2onnx_nhwc": tf2onnx_style_nhwc,
    "paddle_det_head": paddle_style_det_head,
    "legacy_torch_transformer": legacy_torch_transformer,
    "opset18_misc": opset18_misc,
    "tf2onnx_flatten_reduceprod": tf2onnx_flatten_reduceprod,
}


def sample_inputs(model: onnx.ModelProto, seed: int = 0, batch: int = 1) -> dict[str, np.ndarray]:
    """Deterministic inputs for every graph input of `model`.

    Floats are standard normal, integers uniform in [0, 100) (valid token ids for the zoo's
    vocabularies), booleans fair coin flips. Symbolic or unknown dims become `batch`.
    """
    rng = np.random.default_rng(seed)
    initializers = {init.name for init in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:  # IR < 4 models list weights as inputs too
            continue
        tensor_type = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            feeds[value.name] = rng.integers(0, 100, size=shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = rng.random(shape) < 0.5
        else:
            raise ValueError(f"no sample data for input {value.name!r} of type {dtype}")
    return feeds
