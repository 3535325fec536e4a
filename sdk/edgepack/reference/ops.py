"""numpy reference for every IR op: slow on purpose, written to be read. The oracle for the kernels.

Each function takes the node's attributes and input arrays (None for a missing optional input) and
returns a list of output arrays. Float math is done in float64 where accumulation order would
otherwise matter and cast back, so the reference is the more accurate side of every comparison.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..ir.dtypes import DType

Attrs = dict[str, Any]
REFERENCE: dict[str, Callable[..., list[np.ndarray]]] = {}


def ref(name: str):
    def register(fn):
        REFERENCE[name] = fn
        return fn
    return register


def _activation(y: np.ndarray, attrs: Attrs) -> np.ndarray:
    act = attrs.get("activation", "none")
    if act == "relu":
        return np.maximum(y, 0)
    if act == "clip":
        return np.clip(y, attrs["act_min"], attrs["act_max"])
    if act == "gelu":   # on the float32 output, as the separate Gelu would see it (passes/fuse_gelu.py)
        return gelu({"approximate": "none"}, np.asarray(y, np.float32))[0]
    if act != "none":
        raise ValueError(f"unknown fused activation '{act}'")
    return y


def _windows(x: np.ndarray, kernel, strides, pads, dilations, pad_value: float) -> np.ndarray:
    """[N, C, OH, OW, kh, kw] view of the padded input under each output position."""
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=pad_value)
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    n, c = x.shape[:2]
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, c, oh, ow, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2] * dh, s[3] * dw), writeable=False)


def _channels_last(fn):
    """An NCHW reference also for channels_last = 1 (NHWC in and out) and 2 (Conv: NCHW in, NHWC out):
    transposed around it."""
    def wrapped(attrs: Attrs, x, *rest):
        last = attrs.get("channels_last", 0)
        if not last:
            return fn(attrs, x, *rest)
        # Conv's residual (rest[2]) has the output's layout
        rest = [r.transpose(0, 3, 1, 2) if i == 2 and r is not None else r for i, r in enumerate(rest)]
        x = x.transpose(0, 3, 1, 2) if last == 1 else x
        return [y.transpose(0, 2, 3, 1) for y in fn(attrs, x, *rest)]
    return wrapped


# --- compute ---------------------------------------------------------------------------------------
@ref("Conv")
@_channels_last
def conv(attrs: Attrs, x, w, b=None, residual=None):
    group = attrs["group"]
    n, c, _, _ = x.shape
    m, cg, kh, kw = w.shape
    win = _windows(x.astype(np.float64), (kh, kw), attrs["strides"], attrs["pads"], attrs["dilations"], 0.0)
    oh, ow = win.shape[2:4]
    win = win.reshape(n, group, cg, oh, ow, kh, kw)
    wg = w.astype(np.float64).reshape(group, m // group, cg, kh, kw)
    y = np.einsum("ngchwij,gmcij->ngmhw", win, wg, optimize=True).reshape(n, m, oh, ow)
    if b is not None:
        y = y + b.reshape(1, m, 1, 1)
    if residual is not None:   # the fused Add (passes/fuse_residual.py): the float32 sum, then the activation
        y = (y.astype(x.dtype) + residual).astype(np.float64)
    return [_activation(y, attrs).astype(x.dtype)]


@ref("ConvTranspose")
def conv_transpose(attrs: Attrs, x, w, b=None):
    group = attrs["group"]
    n, c, h, wd = x.shape
    _, mg, kh, kw = w.shape
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilations"]
    pt, pl, pb, pr = attrs["pads"]
    oph, opw = attrs["output_padding"]
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + oph
    full_w = (wd - 1) * sw + dw * (kw - 1) + 1 + opw
    y = np.zeros((n, group * mg, full_h, full_w), np.float64)
    xg = x.astype(np.float64).reshape(n, group, c // group, h, wd)
    wg = w.astype(np.float64).reshape(group, c // group, mg, kh, kw)
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("ngchw,gcm->ngmhw", xg, wg[:, :, :, i, j]).reshape(n, group * mg, h, wd)
            y[:, :, i * dh: i * dh + (h - 1) * sh + 1: sh, j * dw: j * dw + (wd - 1) * sw + 1: sw] += contrib
    y = y[:, :, pt: full_h - pb, pl: full_w - pr]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return [y.astype(x.dtype)]


@ref("MatMul")
def matmul(attrs: Attrs, a, b, bias=None, input_scale=None):
    if input_scale is not None:
        a = (a * input_scale).astype(a.dtype)
    if "a_perm" in attrs:
        a = np.transpose(a, attrs["a_perm"])
    if "b_perm" in attrs:
        b = np.transpose(b, attrs["b_perm"])
    y = np.matmul(a.astype(np.float64), b.astype(np.float64))
    if bias is not None:
        y = y + bias
    y = _activation(y, attrs).astype(a.dtype)
    if "split" in attrs:
        return [np.ascontiguousarray(part) for part in np.split(y, np.cumsum(attrs["split"])[:-1], axis=-1)]
    return [np.ascontiguousarray(np.transpose(y, attrs["y_perm"])) if "y_perm" in attrs else y]


def bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), kept as float32; NaN stays NaN."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(np.isnan(x), x, rounded)


@ref("Attention")
def attention(attrs: Attrs, q, k, v, mask=None):
    """The fused form is the three ops in order (passes/fuse_attention.py). With bf16 (passes/attention_bf16.py)
    both products take bfloat16 operands: Q, K and V rounded to bfloat16, the scores scaled and masked in
    float32, E = exp(scores - row max), and Y = (bfloat16(E) V) / (the row's sum of E), all sums in float."""
    perms = lambda **keys: {op_key: attrs[key] for op_key, key in keys.items() if key in attrs}
    if attrs.get("bf16", 0):
        q, k, v = bfloat16(q), bfloat16(k), bfloat16(v)
        (scores,) = matmul(perms(a_perm="q_perm", b_perm="k_perm"), q, k)
        if "scale" in attrs:
            scores = (scores * np.float32(attrs["scale"])).astype(scores.dtype)
        if mask is not None:
            scores = (scores + mask).astype(scores.dtype)
        s64 = scores.astype(np.float64)
        with np.errstate(invalid="ignore"):    # a fully masked row is NaN, as unfused
            e = np.exp(s64 - s64.max(axis=-1, keepdims=True)).astype(np.float32)
            (y,) = matmul(perms(b_perm="v_perm"), bfloat16(e), v)
            y = (y / e.astype(np.float64).sum(axis=-1, keepdims=True)).astype(np.float32)
        if attrs.get("nan_to_zero", 0):
            y = np.where(np.isnan(y), np.zeros((), y.dtype), y)
        return [np.ascontiguousarray(np.transpose(y, attrs["y_perm"])) if "y_perm" in attrs else y]
    (scores,) = matmul(perms(a_perm="q_perm", b_perm="k_perm"), q, k)
    if "scale" in attrs:   # the Mul's float32 product
        scores = (scores * np.float32(attrs["scale"])).astype(scores.dtype)
    (p,) = softmax({"axis": scores.ndim - 1, "nan_to_zero": attrs.get("nan_to_zero", 0)}, scores, mask)
    return matmul(perms(b_perm="v_perm", y_perm="y_perm"), p, v)


# --- elementwise unary -----------------------------------------------------------------------------
def _unary(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    REFERENCE[name] = lambda attrs, x: [fn(x).astype(x.dtype)]


from scipy.special import erf as _erf  # noqa: E402  (vectorised; math.erf per element is 100x slower)
_unary("Relu", lambda x: np.maximum(x, 0))
_unary("Sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64))))
_unary("Tanh", lambda x: np.tanh(x.astype(np.float64)))
_unary("Erf", lambda x: _erf(x.astype(np.float64)))
_unary("Exp", lambda x: np.exp(x.astype(np.float64)))
_unary("Log", lambda x: np.log(x.astype(np.float64)))
_unary("Sqrt", lambda x: np.sqrt(x.astype(np.float64)))
_unary("Neg", lambda x: -x)
_unary("Abs", np.abs)
_unary("Reciprocal", lambda x: 1.0 / x.astype(np.float64))
_unary("HardSwish", lambda x: x * np.clip(x.astype(np.float64) / 6.0 + 0.5, 0.0, 1.0))
_unary("Not", np.logical_not)
_unary("Floor", np.floor)
_unary("Ceil", np.ceil)


@ref("HardSigmoid")
def hard_sigmoid(attrs: Attrs, x):
    return [np.clip(attrs["alpha"] * x.astype(np.float64) + attrs["beta"], 0.0, 1.0).astype(x.dtype)]


@ref("LeakyRelu")
def leaky_relu(attrs: Attrs, x):
    return [np.where(x >= 0, x, x * np.float32(attrs["alpha"])).astype(x.dtype)]


@ref("Clip")
def clip(attrs: Attrs, x):
    return [np.clip(x, attrs["min"], attrs["max"]).astype(x.dtype)]


@ref("Gelu")
def gelu(attrs: Attrs, x):
    x64 = x.astype(np.float64)
    if attrs["approximate"] == "tanh":
        y = 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        y = 0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)))
    return [y.astype(x.dtype)]


@ref("Cast")
def cast(attrs: Attrs, x):
    to = DType(attrs["to"]).numpy
    if np.issubdtype(x.dtype, np.floating) and np.issubdtype(to, np.integer):
        x = np.trunc(x)
    return [x.astype(to)]


# --- elementwise binary ----------------------------------------------------------------------------
def _binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], keep_dtype: bool = True) -> None:
    def run(attrs: Attrs, a, b):
        y = fn(a, b)
        return [y.astype(a.dtype) if keep_dtype else y]
    REFERENCE[name] = run


def _int_div(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)  # ONNX integer Div truncates toward zero
    return a / b


_binary("Add", np.add)
_binary("Sub", np.subtract)
_binary("Mul", np.multiply)
_binary("Div", _int_div)
_binary("Pow", lambda a, b: np.power(a.astype(np.float64), b.astype(np.float64)))
_binary("Max", np.maximum)
_binary("Min", np.minimum)
_binary("Equal", np.equal, keep_dtype=False)
_binary("Less", np.less, keep_dtype=False)
_binary("Greater", np.greater, keep_dtype=False)
_binary("And", np.logical_and, keep_dtype=False)
_binary("Or", np.logical_or, keep_dtype=False)


@ref("Where")
def where(attrs: Attrs, cond, a, b):
    return [np.where(cond, a, b).astype(a.dtype)]


# --- normalisation ---------------------------------------------------------------------------------
@ref("Softmax")
def softmax(attrs: Attrs, x, bias=None):
    """The fused form is the unfused ops in order: Add(x, bias) in float32, Softmax, then
    Where(IsNaN(y), 0, y) with nan_to_zero."""
    if bias is not None:
        x = (x + bias).astype(x.dtype)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):    # -inf - -inf: a fully masked row is NaN, as unfused
        e = np.exp(x64 - x64.max(axis=attrs["axis"], keepdims=True))
        y = (e / e.sum(axis=attrs["axis"], keepdims=True)).astype(x.dtype)
    if attrs.get("nan_to_zero", 0):
        y = np.where(np.isnan(y), np.zeros((), y.dtype), y)
    return [y]


@ref("LogSoftmax")
def log_softmax(attrs: Attrs, x):
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=attrs["axis"], keepdims=True)
    return [(shifted - np.log(np.exp(shifted).sum(axis=attrs["axis"], keepdims=True))).astype(x.dtype)]


@ref("LayerNormalization")
def layer_norm(attrs: Attrs, x, scale, bias=None, residual=None):
    if residual is not None:
        x = (x + residual).astype(x.dtype)
    axes = tuple(range(attrs["axis"], x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + attrs["epsilon"]) * scale
    if bias is not None:
        y = y + bias
    return [y.astype(x.dtype)]


@ref("LRN")
def lrn(attrs: Attrs, x):
    size, c = attrs["size"], x.shape[1]
    sq = x.astype(np.float64) ** 2
    total = np.zeros_like(sq)
    lo_off, hi_off = (size - 1) // 2, size // 2  # ONNX: floor((size-1)/2) before, ceil((size-1)/2) after
    for ch in range(c):
        total[:, ch] = sq[:, max(0, ch - lo_off): min(c, ch + hi_off + 1)].sum(axis=1)
    y = x / (attrs["bias"] + attrs["alpha"] / size * total) ** attrs["beta"]
    return [y.astype(x.dtype)]


# --- pooling and reductions ------------------------------------------------------------------------
@ref("MaxPool")
@_channels_last
def max_pool(attrs: Attrs, x):
    win = _windows(x, attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"], -np.inf)
    return [win.max(axis=(4, 5)).astype(x.dtype)]


@ref("AveragePool")
def average_pool(attrs: Attrs, x):
    win = _windows(x.astype(np.float64), attrs["kernel"], attrs["strides"], attrs["pads"],
                   attrs["dilations"], 0.0)
    total = win.sum(axis=(4, 5))
    # the divisor counts padded cells when count_include_pad, else only real ones
    ones = np.ones((1, 1) + x.shape[2:])
    pad_value = 1.0 if attrs["count_include_pad"] else 0.0
    counts = _windows(ones, attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"], pad_value)
    counts = counts.sum(axis=(4, 5))
    return [(total / counts).astype(x.dtype)]


def _reduce(name: str, fn) -> None:
    def run(attrs: Attrs, x):
        y = fn(x.astype(np.float64) if name != "ReduceMax" and name != "ReduceMin" else x,
               axis=tuple(attrs["axes"]), keepdims=bool(attrs["keepdims"]))
        return [np.asarray(y).astype(x.dtype)]
    REFERENCE[name] = run


_reduce("ReduceMean", np.mean)
_reduce("ReduceSum", np.sum)
_reduce("ReduceMax", np.max)
_reduce("ReduceMin", np.min)


@ref("ArgMax")
def arg_max(attrs: Attrs, x):
    y = np.argmax(x, axis=attrs["axis"])
    if attrs["keepdims"]:
        y = np.expand_dims(y, attrs["axis"])
    return [y.astype(np.int64)]


# --- data movement ---------------------------------------------------------------------------------
@ref("Reshape")
def reshape(attrs: Attrs, x, *, out_shapes):
    return [x.reshape(out_shapes[0])]


@ref("Expand")
def expand(attrs: Attrs, x, *, out_shapes):
    return [np.broadcast_to(x, out_shapes[0]).copy()]


@ref("Transpose")
def transpose(attrs: Attrs, x):
    return [np.ascontiguousarray(np.transpose(x, attrs["perm"]))]


@ref("Concat")
def concat(attrs: Attrs, *xs):
    return [np.concatenate(xs, axis=attrs["axis"])]


@ref("Split")
def split(attrs: Attrs, x):
    bounds = np.cumsum(attrs["split"])[:-1]
    return [np.ascontiguousarray(p) for p in np.split(x, bounds, axis=attrs["axis"])]


@ref("Slice")
def slice_(attrs: Attrs, x):
    index = []
    for start, end, step in zip(attrs["starts"], attrs["ends"], attrs["steps"]):
        index.append(slice(start, end if end >= 0 else None, step))
    return [np.ascontiguousarray(x[tuple(index)])]


@ref("Gather")
def gather(attrs: Attrs, x, indices):
    axis = attrs["axis"]
    size = x.shape[axis]
    if np.any(indices < -size) or np.any(indices >= size):
        raise IndexError(f"Gather index out of range [-{size}, {size})")
    return [np.take(x, np.where(indices < 0, indices + size, indices), axis=axis)]


@ref("Pad")
def pad(attrs: Attrs, x):
    rank = x.ndim
    pads = attrs["pads"]
    width = [(pads[i], pads[i + rank]) for i in range(rank)]
    mode = attrs["mode"]
    if mode == "constant":
        return [np.pad(x, width, constant_values=attrs["value"]).astype(x.dtype)]
    return [np.pad(x, width, mode={"reflect": "reflect", "edge": "edge"}[mode])]


def _source_coordinate(out_index: np.ndarray, scale: float, in_size: int, out_size: int, mode: str) -> np.ndarray:
    if mode == "half_pixel":
        return (out_index + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (out_index + 0.5) / scale - 0.5 if out_size > 1 else np.zeros_like(out_index, dtype=np.float64)
    if mode == "align_corners":
        return out_index * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(out_index, dtype=np.float64)
    if mode == "asymmetric":
        return out_index / scale
    raise ValueError(f"unsupported coordinate_transformation_mode '{mode}'")


def _nearest(coord: np.ndarray, mode: str) -> np.ndarray:
    if mode == "round_prefer_floor":
        return np.ceil(coord - 0.5)
    if mode == "round_prefer_ceil":
        return np.floor(coord + 0.5)
    if mode == "floor":
        return np.floor(coord)
    if mode == "ceil":
        return np.ceil(coord)
    raise ValueError(f"unsupported nearest_mode '{mode}'")


@ref("Resize")
def resize(attrs: Attrs, x, *, out_shapes):
    out_shape = out_shapes[0]
    y = x.astype(np.float64)
    for axis in (2, 3):
        in_size, out_size = x.shape[axis], out_shape[axis]
        scale = attrs["scales"][axis]
        coord = _source_coordinate(np.arange(out_size, dtype=np.float64), scale, in_size, out_size,
                                   attrs["coordinate_transformation_mode"])
        if attrs["mode"] == "nearest":
            index = np.clip(_nearest(coord, attrs["nearest_mode"]), 0, in_size - 1).astype(np.int64)
            y = np.take(y, index, axis=axis)
        else:
            coord = np.clip(coord, 0, in_size - 1)
            lo = np.floor(coord).astype(np.int64)
            hi = np.minimum(lo + 1, in_size - 1)
            frac = coord - lo
            shape = [1] * y.ndim
            shape[axis] = out_size
            frac = frac.reshape(shape)
            y = np.take(y, lo, axis=axis) * (1 - frac) + np.take(y, hi, axis=axis) * frac
    return [y.astype(x.dtype)]


@ref("Tile")
def tile(attrs: Attrs, x):
    return [np.tile(x, attrs["repeats"])]


@ref("DepthToSpace")
def depth_to_space(attrs: Attrs, x):
    b = attrs["blocksize"]
    n, c, h, w = x.shape
    if attrs["mode"] == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [np.ascontiguousarray(y.reshape(n, c // (b * b), h * b, w * b))]


NEEDS_OUTPUT_SHAPE = frozenset({"Reshape", "Expand", "Resize"})


def run_node(op: str, attrs: Attrs, inputs: list[np.ndarray | None], out_shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    fn = REFERENCE[op]
    if op in NEEDS_OUTPUT_SHAPE:
        return fn(attrs, *inputs, out_shapes=out_shapes)
    # trailing missing optional inputs are dropped; the functions default them to None
    while inputs and inputs[-1] is None:
        inputs = inputs[:-1]
    return fn(attrs, *inputs)
