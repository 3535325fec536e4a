"""numpy reference for quantized execution: the integer oracle the int8 kernels are bit-exact to.

The scheme is specified in docs/quantization.md. A node runs here instead of in ops.py when any of
its tensors is quantized (int8/uint8 data, int8/int4/float16 weights). Quantization parameters come
from the tensors (`QuantParams`), never from attributes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.graph import QuantParams
from ..quant.fixed_point import ADD_LEFT_SHIFT, apply_multiplier, quantize_multiplier, quantize_multipliers
from . import ops as float_ops

QRANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


def _zp(q: QuantParams) -> int:
    return int(np.asarray(q.zero_point).reshape(-1)[0])


def _scale(q: QuantParams) -> float:
    return float(np.asarray(q.scale, np.float32).reshape(-1)[0])


def activation_bounds(attrs: dict[str, Any], out_q: QuantParams, dtype: np.dtype) -> tuple[int, int]:
    """The fused activation as a clamp in the quantized domain."""
    lo, hi = QRANGE[np.dtype(dtype)]
    act = attrs.get("activation", "none")
    zp, scale = _zp(out_q), _scale(out_q)
    if act == "relu":
        lo = max(lo, zp)
    elif act == "clip":
        lo = max(lo, zp + int(np.rint(np.float32(attrs["act_min"]) / np.float32(scale))))
        hi = min(hi, zp + int(np.rint(np.float32(attrs["act_max"]) / np.float32(scale))))
    return lo, hi


def quantize(x: np.ndarray, q: QuantParams, dtype) -> np.ndarray:
    """q = clamp(round_half_even(x / scale) + zero_point), in float32 like the kernels."""
    lo, hi = QRANGE[np.dtype(dtype)]
    scaled = np.rint(x.astype(np.float32) / np.float32(_scale(q)))
    return np.clip(scaled + _zp(q), lo, hi).astype(dtype)


def dequantize(x: np.ndarray, q: QuantParams) -> np.ndarray:
    """Per tensor, per channel (q.axis), or block-wise: blocks of q.block_size along q.axis, one
    scale per block (scales shaped like x with that axis divided by the block size), zero point 0."""
    values = x.astype(np.int32)
    scale = np.asarray(q.scale, np.float32)
    zero = np.asarray(q.zero_point, np.int32)
    if q.block_size:
        blocks = list(x.shape)
        blocks[q.axis] //= q.block_size
        full = np.repeat(scale.reshape(blocks), q.block_size, axis=q.axis)
        return (values.astype(np.float32) * full).astype(np.float32)
    if q.axis is not None and scale.size > 1:
        shape = [1] * x.ndim
        shape[q.axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    else:
        scale, zero = scale.reshape(-1)[0], zero.reshape(-1)[0]
    return ((values - zero).astype(np.float32) * scale).astype(np.float32)


def _requantize_acc(acc: np.ndarray, real: np.ndarray, axis: int, out_q: QuantParams, bounds) -> np.ndarray:
    multipliers, shifts = quantize_multipliers(real)
    shape = [1] * acc.ndim
    shape[axis] = -1
    if multipliers.size == 1:
        shape = [1] * acc.ndim
    y = apply_multiplier(acc, multipliers.reshape(shape), shifts.reshape(shape)) + _zp(out_q)
    return np.clip(y, *bounds)


def conv_int8(attrs, x, w, b, in_q, out_q):
    xq, wq = in_q[0], in_q[1]
    centered = x.astype(np.int64) - _zp(xq)
    acc = float_ops.conv({**attrs, "activation": "none"}, centered.astype(np.float64), w.astype(np.float64))[0]
    acc = np.rint(acc).astype(np.int64)   # float64 holds these integer sums exactly (< 2^53)
    if b is not None:
        acc = acc + b.astype(np.int64).reshape(1, -1, 1, 1)
    real = (np.float64(_scale(xq)) * np.asarray(wq.scale, np.float64)) / np.float64(_scale(out_q[0]))
    out = _requantize_acc(acc, np.broadcast_to(real, (w.shape[0],)), 1, out_q[0],
                          activation_bounds(attrs, out_q[0], x.dtype))
    return [out.astype(x.dtype)]


def matmul_int8(attrs, a, b, bias, in_q, out_q):
    aq, bq = in_q[0], in_q[1]
    acc = np.rint(np.matmul((a.astype(np.int64) - _zp(aq)).astype(np.float64),
                            (b.astype(np.int64) - _zp(bq)).astype(np.float64))).astype(np.int64)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    n = b.shape[-1]
    real = (np.float64(_scale(aq)) * np.asarray(bq.scale, np.float64)) / np.float64(_scale(out_q[0]))
    out = _requantize_acc(acc, np.broadcast_to(real, (n,)) if np.size(real) > 1 else real, acc.ndim - 1,
                          out_q[0], activation_bounds(attrs, out_q[0], a.dtype))
    return [out.astype(a.dtype)]


def quantize_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dynamic int8: each row (last axis) asymmetric uint8 over [min(row, 0), max(row, 0)]:
    scale = (hi - lo) / 255 (1 for an all-zero row), zero_point = round(-lo / scale), both per row;
    q = round(a * (1 / scale)) + zero_point: times the reciprocal, not divided by the scale, as
    TFLite's hybrid kernels do: a division per element is several times the cost of the rest of the
    quantization in the native kernel. Asymmetric because activations such as GELU or ReLU outputs
    are lopsided: a symmetric grid would spend half its codes on values that never occur."""
    a = a.astype(np.float32)
    lo = np.minimum(a.min(axis=-1, keepdims=True), np.float32(0))
    hi = np.maximum(a.max(axis=-1, keepdims=True), np.float32(0))
    scale = np.where(hi > lo, (hi - lo) / np.float32(255.0), np.float32(1.0)).astype(np.float32)
    zero_point = np.clip(np.rint(-lo / scale), 0, 255).astype(np.int32)
    inverse = (np.float32(1.0) / scale).astype(np.float32)
    q = np.clip(np.rint(a * inverse) + zero_point, 0, 255).astype(np.uint8)
    return q, scale, zero_point


def matmul_dynamic(attrs, a, b, bias, in_q, input_scale=None):
    """float A x int8 B (per output channel) -> float: A (times input_scale, a folded smoothing Mul, in
    float32) is quantized per row at run time.
    acc = sum_k (q_k - zero_point) * w_k in int32; y = float(acc) * (row scale * weight scale) + bias."""
    if input_scale is not None:
        a = (a.astype(np.float32) * input_scale.astype(np.float32)).astype(np.float32)
    q, row_scale, zero_point = quantize_rows(a)
    centered = q.astype(np.int32) - zero_point
    # float64 holds these integer sums exactly (|acc| < 2^53) and uses BLAS; int64 matmul does not
    acc = np.rint(np.matmul(centered.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    w_scale = np.asarray(in_q[1].scale, np.float32).reshape(-1)
    y = acc.astype(np.float32) * (row_scale * w_scale)
    if bias is not None:
        y = y + bias.astype(np.float32)
    y = float_ops._activation(y, attrs).astype(np.float32)
    if "split" in attrs:   # merged MatMuls (passes/merge_matmuls.py): each output its columns
        return [np.ascontiguousarray(part) for part in np.split(y, np.cumsum(attrs["split"])[:-1], axis=-1)]
    return [y]


def add_mul_int8(op, a, b, in_q, out_q):
    aq, bq, yq = in_q[0], in_q[1], out_q[0]
    lo, hi = QRANGE[a.dtype]
    a32, b32 = a.astype(np.int64) - _zp(aq), b.astype(np.int64) - _zp(bq)
    if op == "Mul":
        m, s = quantize_multiplier(_scale(aq) * _scale(bq) / _scale(yq))
        y = apply_multiplier(a32 * b32, m, s)
    else:
        twice_max = 2 * max(_scale(aq), _scale(bq))
        ma, sa = quantize_multiplier(_scale(aq) / twice_max)
        mb, sb = quantize_multiplier(_scale(bq) / twice_max)
        mo, so = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * _scale(yq)))
        sign = 1 if op == "Add" else -1
        total = (apply_multiplier(a32 << ADD_LEFT_SHIFT, ma, sa)
                 + sign * apply_multiplier(b32 << ADD_LEFT_SHIFT, mb, sb))
        y = apply_multiplier(total, mo, so)
    return [np.clip(y + _zp(yq), lo, hi).astype(a.dtype)]


def average_pool_int8(attrs, x):
    """Same parameters in and out: the mean of the codes, rounded half away from zero."""
    lo, hi = QRANGE[x.dtype]
    pad_value = 0  # padded cells are excluded unless count_include_pad, where they hold the zero point
    win = float_ops._windows(x.astype(np.int64), attrs["kernel"], attrs["strides"], attrs["pads"],
                             attrs["dilations"], pad_value)
    total = win.sum(axis=(4, 5))
    ones = np.ones((1, 1) + x.shape[2:], np.int64)
    counts = float_ops._windows(ones, attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"],
                                1 if attrs["count_include_pad"] else 0).sum(axis=(4, 5))
    if attrs["count_include_pad"] and any(attrs["pads"]):
        raise ValueError("int8 AveragePool with count_include_pad and padding is not supported")
    mean = np.where(total >= 0, (total + counts // 2) // counts, -((-total + counts // 2) // counts))
    return [np.clip(mean, lo, hi).astype(x.dtype)]


def reduce_mean_int8(attrs, x, in_q, out_q):
    lo, hi = QRANGE[x.dtype]
    axes = tuple(attrs["axes"])
    count = int(np.prod([x.shape[a] for a in axes]))
    total = (x.astype(np.int64) - _zp(in_q[0])).sum(axis=axes, keepdims=bool(attrs["keepdims"]))
    m, s = quantize_multiplier(_scale(in_q[0]) / (_scale(out_q[0]) * count))
    return [np.clip(apply_multiplier(total, m, s) + _zp(out_q[0]), lo, hi).astype(x.dtype)]


def requantize(x, in_q, out_q):
    lo, hi = QRANGE[x.dtype]
    m, s = quantize_multiplier(_scale(in_q[0]) / _scale(out_q[0]))
    y = apply_multiplier(x.astype(np.int64) - _zp(in_q[0]), m, s) + _zp(out_q[0])
    return [np.clip(y, lo, hi).astype(x.dtype)]


def gather_dequant(attrs, table, indices, in_q):
    """An int8 (per row) or int4 (block-wise) embedding table: gather rows, then dequantize them."""
    size = table.shape[0]
    if np.any(indices < -size) or np.any(indices >= size):
        raise IndexError(f"Gather index out of range [-{size}, {size})")
    rows = np.where(indices < 0, indices + size, indices).reshape(-1)
    out = dequantize(table, in_q[0])[rows]   # dequantize-then-gather equals gather-then-dequantize
    return [out.reshape(indices.shape + table.shape[1:])]


def weight_only(op, attrs, inputs, in_q, out_shapes):
    """fp16 / int4 weights: dequantize the weight, then the float op."""
    inputs = list(inputs)
    w = inputs[1]
    inputs[1] = w.astype(np.float32) if w.dtype == np.float16 else dequantize(w, in_q[1])
    return float_ops.run_node(op, attrs, inputs, out_shapes)


_INT = (np.dtype(np.int8), np.dtype(np.uint8))


def run_quantized(op: str, attrs: dict[str, Any], inputs: list[np.ndarray | None],
                  in_q: list[QuantParams | None], out_q: list[QuantParams | None], out_dtypes: list[np.dtype],
                  out_shapes: list[tuple[int, ...]]) -> list[np.ndarray] | None:
    """The quantized semantics of a node, or None when the node is plain float (see ops.py)."""
    x = inputs[0]
    if op == "Quantize":
        return [quantize(x, out_q[0], out_dtypes[0])]
    if op == "Dequantize":
        return [dequantize(x, in_q[0])]
    if op == "Requantize":
        return requantize(x, in_q, out_q)
    if op == "Lut":
        offset = 128 if x.dtype == np.int8 else 0
        return [inputs[1][x.astype(np.int32) + offset]]
    if op == "Gather" and in_q[0] is not None and np.dtype(out_dtypes[0]) == np.float32:
        return gather_dequant(attrs, x, inputs[1], in_q)
    if op in ("MatMul", "Conv", "ConvTranspose") and inputs[1] is not None and in_q[1] is not None:
        if x.dtype in _INT:
            fn = conv_int8 if op == "Conv" else matmul_int8
            return fn(attrs, x, inputs[1], inputs[2] if len(inputs) > 2 else None, in_q, out_q)
        if inputs[1].dtype == np.int8 and in_q[1].block_size == 0 and op == "MatMul":
            return matmul_dynamic(attrs, x, inputs[1], inputs[2] if len(inputs) > 2 else None, in_q,
                                  inputs[3] if len(inputs) > 3 else None)
        return weight_only(op, attrs, inputs, in_q, out_shapes)
    if op in ("MatMul", "Conv") and inputs[1] is not None and inputs[1].dtype == np.float16:
        return weight_only(op, attrs, inputs, in_q, out_shapes)
    if x is None or x.dtype not in _INT:
        return None
    if op in ("Add", "Sub", "Mul"):
        return add_mul_int8(op, x, inputs[1], in_q, out_q)
    if op == "AveragePool":
        return average_pool_int8(attrs, x)
    if op == "ReduceMean":
        return reduce_mean_int8(attrs, x, in_q, out_q)
    if op == "MaxPool":
        lo, _ = QRANGE[x.dtype]
        win = float_ops._windows(x, attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"], lo)
        return [win.max(axis=(4, 5)).astype(x.dtype)]
    if op == "Pad" and attrs["mode"] == "constant":
        # the pad value is a real number: pad with its code
        code = quantize(np.array([attrs["value"]], np.float32), out_q[0], x.dtype)[0]
        return float_ops.run_node(op, {**attrs, "value": float(code)}, inputs, out_shapes)
    return None  # data movement: the float reference is dtype-agnostic
