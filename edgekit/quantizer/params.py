"""Quantization parameters: the one immutable object per quantized tensor, and the arithmetic on it.

Rounding rule, used everywhere in edgekit: round half to even (`np.rint`), the rule of ONNX
QuantizeLinear, so a tensor quantized here equals what QuantizeLinear computes on the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QRANGES = {"int8": (-128, 127), "uint8": (0, 255), "int32": (-(2**31), 2**31 - 1)}
NUMPY = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32}
# Symmetric int8 leaves -128 unused so that -x is representable for every x (TensorRT's convention).
SYMMETRIC_QMAX = {"int8": 127, "uint8": 127}
# A tensor that is constant zero still needs a usable, positive scale.
TINY_SCALE = 1e-8


@dataclass(frozen=True)
class QuantParams:
    """Scale(s) and zero point(s) of one tensor; `axis` is None per tensor, else the channel axis."""

    dtype: str
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self):
        if self.dtype not in QRANGES:
            raise ValueError(f"unknown quantized dtype {self.dtype}")
        if len(self.scale) != len(self.zero_point) or not self.scale:
            raise ValueError("scale and zero_point need the same, non-zero length")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("per-tensor parameters have one scale")
        if any(not (s > 0 and np.isfinite(s)) for s in self.scale):
            raise ValueError(f"scales must be positive and finite, got {self.scale}")
        qmin, qmax = QRANGES[self.dtype]
        if any(not qmin <= z <= qmax for z in self.zero_point):
            raise ValueError(f"zero point outside {self.dtype}")

    @property
    def granularity(self) -> str:
        return "per_tensor" if self.axis is None else "per_channel"

    def representable_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Float values the quantized grid covers, per channel: [scale*(qmin-zp), scale*(qmax-zp)]."""
        qmin, qmax = QRANGES[self.dtype]
        scale, zp = np.asarray(self.scale, np.float64), np.asarray(self.zero_point, np.float64)
        return scale * (qmin - zp), scale * (qmax - zp)

    def scale_array(self) -> np.ndarray:
        return np.asarray(self.scale, np.float32)

    def zero_point_array(self) -> np.ndarray:
        return np.asarray(self.zero_point, NUMPY[self.dtype])

    def to_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "granularity": self.granularity,
            "axis": self.axis,
            "scale": [float(s) for s in self.scale],
            "zero_point": [int(z) for z in self.zero_point],
        }

    @classmethod
    def from_dict(cls, data: dict) -> QuantParams:
        return cls(data["dtype"], tuple(data["scale"]), tuple(data["zero_point"]), data["axis"])


def activation_params(lo: float, hi: float, dtype: str, symmetric: bool) -> QuantParams:
    """Per-tensor parameters covering the clipping range [lo, hi] (widened to include 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    qmin, qmax = QRANGES[dtype]
    if symmetric:
        bound = max(-lo, hi)
        scale = _float32(bound / SYMMETRIC_QMAX[dtype])
        zero_point = 0 if dtype == "int8" else 128
    else:
        scale = _float32((hi - lo) / (qmax - qmin))
        zero_point = int(np.clip(np.rint(qmin - lo / scale), qmin, qmax)) if scale > TINY_SCALE else qmin
    return QuantParams(dtype, (max(scale, TINY_SCALE),), (zero_point,))


def weight_params(weight: np.ndarray, axis: int | None, dtype: str = "int8") -> QuantParams:
    """Symmetric parameters for a constant: per channel along `axis`, or per tensor when axis is None."""
    w = np.asarray(weight, np.float64)
    if axis is None:
        absmax = np.array([np.abs(w).max(initial=0.0)])
    else:
        absmax = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1, initial=0.0)
    scales = tuple(max(_float32(a / SYMMETRIC_QMAX[dtype]), TINY_SCALE) for a in absmax)
    zero = 0 if dtype == "int8" else 128
    return QuantParams(dtype, scales, (zero,) * len(scales), axis)


def bias_params(input_scale: float, weight: QuantParams) -> QuantParams:
    """int32 bias parameters: scale = input scale x weight scale (per weight channel), zero point 0."""
    scales = tuple(max(_float32(float(np.float32(input_scale)) * float(np.float32(s))), TINY_SCALE) for s in weight.scale)
    return QuantParams("int32", scales, (0,) * len(scales), None if len(scales) == 1 and weight.axis is None else 0)


def quantize(values: np.ndarray, params: QuantParams) -> np.ndarray:
    """QuantizeLinear: saturate(rint(x / scale) + zero_point), in float32 like ONNX Runtime."""
    x = np.asarray(values, np.float32)
    scale, zp = params.scale_array(), params.zero_point_array().astype(np.float64)
    if params.axis is not None:
        shape = [1] * x.ndim
        shape[params.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    qmin, qmax = QRANGES[params.dtype]
    q = np.rint((x / scale).astype(np.float64)) + zp
    return np.clip(q, qmin, qmax).astype(NUMPY[params.dtype])


def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    """DequantizeLinear: (q - zero_point) * scale, in float32."""
    scale, zp = params.scale_array(), params.zero_point_array().astype(np.int64)
    if params.axis is not None:
        shape = [1] * q.ndim
        shape[params.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)


def _float32(value: float) -> float:
    # Scales are stored as float32 in the ONNX graph; keep the record's value equal to the graph's.
    return float(np.float32(value))
