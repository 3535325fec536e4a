"""Static shape and dtype inference for IR ops (canonical attributes, see ops.py)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .dtypes import DType
from .ops import COMPARISONS, ELEMENTWISE_UNARY, REDUCTIONS

Shape = tuple[int, ...]


def broadcast(*shapes: Shape) -> Shape:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"shapes {' and '.join(map(str, shapes))} do not broadcast") from None


def _pool_out(size: int, k: int, s: int, p0: int, p1: int, d: int) -> int:
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def infer(op: str, attrs: dict[str, Any], in_types: list[tuple[DType, Shape] | None],
          out_shape_hint: list[Shape] | None = None) -> list[tuple[DType, Shape]]:
    """Output (dtype, shape) of one node. `out_shape_hint` carries the static target shape of
    Reshape / Expand / Resize, which the frontend computed from constant inputs."""
    dtype, shape = in_types[0]
    if op in ("Conv", "MaxPool", "AveragePool"):
        last = attrs.get("channels_last", 0)   # 1: NHWC in and out; 2 (Conv): NCHW in, NHWC out
        n, c, h, w = (shape[0], shape[3], shape[1], shape[2]) if last == 1 else shape
        if op == "Conv":
            kernel, out_c = in_types[1][1][2:], in_types[1][1][0]
        else:
            kernel, out_c = attrs["kernel"], c
        pads, strides, dil = attrs["pads"], attrs["strides"], attrs["dilations"]
        oh = _pool_out(h, kernel[0], strides[0], pads[0], pads[2], dil[0])
        ow = _pool_out(w, kernel[1], strides[1], pads[1], pads[3], dil[1])
        if oh <= 0 or ow <= 0:
            raise ValueError(f"{op} output would be empty for input {shape}")
        return [(dtype, (n, oh, ow, out_c) if last else (n, out_c, oh, ow))]
    if op == "ConvTranspose":
        n, c, h, w = shape
        wshape = in_types[1][1]
        out_c = wshape[1] * attrs["group"]
        (sh, sw), (dh, dw), (pt, pl, pb, pr), (oph, opw) = (attrs["strides"], attrs["dilations"],
                                                             attrs["pads"], attrs["output_padding"])
        oh = (h - 1) * sh + dh * (wshape[2] - 1) + 1 + oph - pt - pb
        ow = (w - 1) * sw + dw * (wshape[3] - 1) + 1 + opw - pl - pr
        return [(dtype, (n, out_c, oh, ow))]
    if op == "MatMul":
        a, b = shape, in_types[1][1]
        if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
            raise ValueError(f"MatMul shapes {a} and {b} do not multiply")
        y = broadcast(a[:-2], b[:-2]) + (a[-2],)
        if "split" in attrs:
            if sum(attrs["split"]) != b[-1]:
                raise ValueError(f"MatMul split {attrs['split']} does not add up to the {b[-1]} columns of B")
            return [(dtype, y + (w,)) for w in attrs["split"]]
        return [(dtype, y + (b[-1],))]
    if op == "Attention":
        def view(t, key):   # an operand as its MatMul sees it
            return tuple(t[p] for p in attrs[key]) if key in attrs else tuple(t)
        q, k, v = view(shape, "q_perm"), view(in_types[1][1], "k_perm"), view(in_types[2][1], "v_perm")
        if len(q) < 2 or not (len(q) == len(k) == len(v)) or q[-1] != k[-2] or k[-1] != v[-2] \
                or not (q[:-2] == k[:-2] == v[:-2]):
            raise ValueError(f"Attention operands {q}, {k}, {v} do not multiply")
        y = q[:-2] + (q[-2], v[-1])
        if "y_perm" in attrs:
            y = tuple(y[p] for p in attrs["y_perm"])
        return [(dtype, y)]
    if op == "Cast":
        return [(DType(attrs["to"]), shape)]
    if op == "Softmax" and len(in_types) > 1 and in_types[1] is not None:
        if broadcast(shape, in_types[1][1]) != tuple(shape):
            raise ValueError(f"Softmax bias {in_types[1][1]} does not broadcast to the input {shape}")
    if op in ELEMENTWISE_UNARY or op in ("Softmax", "LogSoftmax", "LayerNormalization", "LRN"):
        return [(dtype, shape)]
    if op in COMPARISONS or op in ("And", "Or"):
        return [(DType.BOOL, broadcast(shape, in_types[1][1]))]
    if op == "Where":
        return [(in_types[1][0], broadcast(shape, in_types[1][1], in_types[2][1]))]
    if op in ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"):
        return [(dtype, broadcast(shape, in_types[1][1]))]
    if op in REDUCTIONS:
        axes = set(attrs["axes"])
        if attrs["keepdims"]:
            return [(dtype, tuple(1 if i in axes else d for i, d in enumerate(shape)))]
        return [(dtype, tuple(d for i, d in enumerate(shape) if i not in axes))]
    if op == "ArgMax":
        axis = attrs["axis"]
        out = list(shape)
        if attrs["keepdims"]:
            out[axis] = 1
        else:
            del out[axis]
        return [(DType.INT64, tuple(out))]
    if op in ("Reshape", "Expand", "Resize"):
        return [(dtype, tuple(out_shape_hint[0]))]
    if op == "Transpose":
        return [(dtype, tuple(shape[p] for p in attrs["perm"]))]
    if op == "Concat":
        axis = attrs["axis"]
        total = sum(t[1][axis] for t in in_types)
        return [(dtype, shape[:axis] + (total,) + shape[axis + 1:])]
    if op == "Split":
        axis = attrs["axis"]
        return [(dtype, shape[:axis] + (s,) + shape[axis + 1:]) for s in attrs["split"]]
    if op == "Slice":
        out = []
        for start, end, step in zip(attrs["starts"], attrs["ends"], attrs["steps"]):
            out.append(len(range(start, end, step)) if end >= 0 else len(range(start, -1, step)))
        return [(dtype, tuple(out))]
    if op == "Gather":
        axis = attrs["axis"]
        return [(dtype, shape[:axis] + in_types[1][1] + shape[axis + 1:])]
    if op == "Pad":
        rank, pads = len(shape), attrs["pads"]
        return [(dtype, tuple(d + pads[i] + pads[i + rank] for i, d in enumerate(shape)))]
    if op == "Tile":
        return [(dtype, tuple(d * r for d, r in zip(shape, attrs["repeats"])))]
    if op == "DepthToSpace":
        n, c, h, w = shape
        b = attrs["blocksize"]
        return [(dtype, (n, c // (b * b), h * b, w * b))]
    raise ValueError(f"no shape inference for op '{op}'")
