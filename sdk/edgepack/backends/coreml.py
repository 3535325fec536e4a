"""Emit the IR as a Core ML ML Program (.mlpackage) with coremltools' MIL builder.

Core ML is NCHW like the IR, so ops map one to one. Precisions:
  * fp32 nodes compute in float32 (Core ML places them on the GPU / CPU);
  * fp16 nodes: float16 weights, float16 compute (the Neural Engine's precision);
  * int8 weights (static int8 and int8-dynamic): int8 per output channel behind
    `constexpr_affine_dequantize` (iOS 17 / macOS 14) or `constexpr_blockwise_shift_scale` (iOS 18 /
    macOS 15), dequantized at load, so the package stores int8;
  * static int8 activations: int8 tensors made by `quantize` and read through `dequantize` (iOS 17's
    W8A8 form, which Core ML runs as int8 compute on the A17 Pro / M4 Neural Engine). Core ML has
    no run-time (dynamic) activation quantization: int8-dynamic nodes keep float activations;
  * a Lut (int8 activation table) is exact: `gather` on the int8 table at cast(x) + 128;
  * int4 block-wise weights: `constexpr_blockwise_shift_scale` on int4 data, which needs iOS 18 /
    macOS 15: the deployment target rises to it when the graph has int4 weights.
Every quantized or float16 node computes in float16 (`FP16ComputePrecision` on its ops only).

The minimum deployment target comes from the profile's target OS (iOS 17 / macOS 14 unless int4
needs 18 / 15). Core ML has no int64: int64 inputs and values become int32.

Core ML predicts only on macOS; on Linux the package is built and checked structurally
(`describe_package`).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..errors import UnsupportedError
from ..ir import DType, Graph, Node, QuantParams, Value
from ..passes import standard_ops

with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    # coremltools reports at import time which native parts are missing (all of them on Linux)
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        import coremltools as ct
        from coremltools.converters.mil.mil import Builder as mb
        from coremltools.converters.mil.mil import types
        from coremltools.converters.mil.mil import Function, Program
        from coremltools.converters.mil.mil.block import curr_block
    except ImportError as err:  # pragma: no cover - exercised only without the optional dependency
        raise ImportError("writing .mlpackage needs the 'coremltools' package (pip install coremltools)") from err

# (target os, needs int4) -> deployment target
_TARGETS = {("ios", False): ct.target.iOS17, ("ios", True): ct.target.iOS18,
            ("macos", False): ct.target.macOS14, ("macos", True): ct.target.macOS15}
_MIL_DTYPE = {DType.FLOAT32: types.fp32, DType.FLOAT16: types.fp16, DType.INT32: types.int32,
              DType.INT64: types.int32, DType.BOOL: types.bool, DType.INT8: types.int8, DType.UINT8: types.uint8}
_CAST_NAME = {DType.FLOAT32: "fp32", DType.FLOAT16: "fp16", DType.INT32: "int32", DType.INT64: "int32",
              DType.BOOL: "bool", DType.INT8: "int8", DType.UINT8: "uint8"}
_UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Erf": "erf", "Exp": "exp", "Log": "log",
          "Sqrt": "sqrt", "Abs": "abs", "Not": "logical_not", "Floor": "floor", "Ceil": "ceil"}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "real_div", "Pow": "pow", "Max": "maximum",
           "Min": "minimum", "Equal": "equal", "Less": "less", "Greater": "greater", "And": "logical_and",
           "Or": "logical_or"}
_REDUCE = {"ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max",
           "ReduceMin": "reduce_min"}
# ops that move int8 codes unchanged: Core ML takes them on int8 tensors directly
_MOVES_CODES = {"Reshape", "Transpose", "Concat", "Split", "Slice", "Gather", "Tile"}
# (coordinate_transformation_mode) -> resize_bilinear sampling_mode
_BILINEAR = {"half_pixel": "UNALIGN_CORNERS", "pytorch_half_pixel": "UNALIGN_CORNERS",
             "align_corners": "STRICT_ALIGN_CORNERS", "asymmetric": "DEFAULT"}

_HANDLERS: dict[str, Callable[["_Emitter", Node, list], Any]] = {}


def _handles(*ops: str):
    def register(fn):
        for op in ops:
            _HANDLERS[op] = fn
        return fn
    return register


def deployment_target(graph: Graph, profile) -> Any:
    """The lowest Core ML target of the profile's OS that runs every weight format in the graph."""
    os_name = profile.target.os
    if "coreml" not in profile.target.runtimes or os_name not in ("ios", "macos"):
        raise UnsupportedError(f"profile '{profile.name}' (target {profile.target.name}) does not run Core ML; "
                               "choose an iOS or macOS profile, e.g. iphone-15-pro")
    needs_int4 = any(v.dtype is DType.INT4 for v in graph.values.values())
    return _TARGETS[(os_name, needs_int4)]


def _is_low_precision(graph: Graph, node: Node) -> bool:
    """Nodes the plan quantized or gave float16 weights: they compute in float16 on Core ML."""
    return any(name and (graph.values[name].quant is not None or graph.values[name].dtype is DType.FLOAT16)
               for name in list(node.inputs) + list(node.outputs))


class _Emitter:
    def __init__(self, graph: Graph, target) -> None:
        self.graph = graph
        self.iOS18 = target >= ct.target.iOS18
        self.vars: dict[str, Any] = {}            # IR value -> MIL var (int8 values hold int8 codes)
        self.floats: dict[str, Any] = {}          # int8 IR value -> its dequantized var
        self.low_precision: set[str] = set()      # MIL op names computing in float16
        self.codes = False                        # the node being emitted moves int8 codes

    # ---- values ----------------------------------------------------------------------------------
    def value(self, name: str) -> Value:
        return self.graph.values[name]

    def const(self, name: str) -> np.ndarray:
        value = self.value(name)
        array = value.const
        if value.dtype is DType.INT64:
            array = array.astype(np.int32)
        return array

    def raw(self, name: str):
        """The var of an IR value as it is stored (int8 codes for quantized values)."""
        value = self.value(name)
        if name not in self.vars and value.is_const:
            self.vars[name] = self.weight(value) if value.quant is not None or value.dtype is DType.FLOAT16 \
                else mb.const(val=self.const(name), name=name)
        return self.vars[name]

    def x(self, name: str):
        """A float (or integer / bool) view of an IR value: int8 values are dequantized, once."""
        value = self.value(name)
        if value.dtype not in (DType.INT8, DType.UINT8) or value.is_const:
            return self.raw(name)
        if name not in self.floats:
            scale, zero = self.params(value.quant, value.dtype)
            self.floats[name] = mb.dequantize(input=self.raw(name), scale=scale, zero_point=zero,
                                              name=f"{name}/dequantized")
        return self.floats[name]

    @staticmethod
    def params(quant: QuantParams, dtype: DType) -> tuple[np.ndarray, np.ndarray]:
        return (np.float32(np.asarray(quant.scale).reshape(-1)[0]),
                np.asarray(quant.zero_point).reshape(-1)[0].astype(dtype.numpy))

    def weight(self, value: Value):
        """A constant weight: int8 per channel or int4 block-wise behind a constexpr dequantization,
        float16 as is (the float16 ops read it directly), an int32 bias as float."""
        name, quant = value.name, value.quant
        if value.dtype is DType.FLOAT16:
            return mb.const(val=value.const.astype(np.float32), name=name)
        if value.dtype is DType.INT32:
            # int32 biases (scale s_in * s_w per channel) enter float compute as their real values
            return mb.const(val=(value.const.astype(np.float64) * np.asarray(quant.scale, np.float64))
                            .astype(np.float32), name=name)
        scale = np.asarray(quant.scale, np.float32)
        if value.dtype is DType.INT4:
            blocks = list(value.shape)
            blocks[quant.axis] //= quant.block_size
            return mb.constexpr_blockwise_shift_scale(data=value.const.astype(types.np_int4_dtype),
                                                      scale=scale.reshape(blocks), name=name)
        if value.dtype is not DType.INT8:
            raise UnsupportedError(f"weight '{name}': no Core ML form for {value.dtype.name.lower()} weights")
        axis = quant.axis if quant.axis is not None else 0
        if self.iOS18:
            shape = [1] * len(value.shape)
            shape[axis] = -1 if scale.size > 1 else 1
            return mb.constexpr_blockwise_shift_scale(data=value.const, scale=scale.reshape(shape), name=name)
        zero = np.asarray(quant.zero_point).astype(np.int8)
        return mb.constexpr_affine_dequantize(quantized_data=value.const, zero_point=zero if zero.size > 1 else zero[0],
                                              scale=scale if scale.size > 1 else scale[0], axis=axis, name=name)

    def store(self, name: str, var) -> None:
        """Bind IR value `name` to a float result: int8 values are quantized with their parameters."""
        value = self.value(name)
        if value.dtype in (DType.INT8, DType.UINT8):
            scale, zero = self.params(value.quant, value.dtype)
            var = mb.quantize(input=var, scale=scale, zero_point=zero, output_dtype=_CAST_NAME[value.dtype],
                              name=name)
        self.vars[name] = var

    # ---- nodes -----------------------------------------------------------------------------------
    def emit(self, node: Node) -> None:
        handler = _HANDLERS.get(node.op)
        if handler is None:
            raise UnsupportedError(f"node '{node.name}': no Core ML form for IR op '{node.op}'")
        block = curr_block()
        before = len(block.operations)
        # int8 in, same parameters out (the quantizer guarantees it for these ops): move the codes,
        # with no dequantize / quantize round trip
        self.codes = node.op in _MOVES_CODES and self.value(node.outputs[0]).dtype is DType.INT8
        inputs = [None if not n else self.raw(n) if self.codes and self.value(n).dtype is DType.INT8 else self.x(n)
                  for n in node.inputs]
        results = handler(self, node, inputs)
        if results is not None:
            results = results if isinstance(results, (list, tuple)) else [results]
            for name, var in zip(node.outputs, results):
                if self.codes:
                    self.vars[name] = var
                else:
                    self.store(name, var)
        if _is_low_precision(self.graph, node):
            self.low_precision.update(op.name for op in list(block.operations)[before:])

    def output_name(self, node: Node) -> str:
        """MIL name of a node's result: the IR name, unless a quantize will take it for the int8 codes."""
        name = node.outputs[0]
        quantized = self.value(name).dtype in (DType.INT8, DType.UINT8) and not self.codes
        return f"{name}/float" if quantized else name


# ---- compute ------------------------------------------------------------------------------------
def _activation(e: _Emitter, node: Node, y, name: str):
    act = node.attrs.get("activation", "none")
    if act == "relu":
        return mb.relu(x=y, name=name)
    if act == "clip":
        return mb.clip(x=y, alpha=np.float32(node.attrs["act_min"]), beta=np.float32(node.attrs["act_max"]), name=name)
    return y


def _fused_name(e: _Emitter, node: Node) -> str:
    return e.output_name(node) if node.attrs.get("activation", "none") == "none" else f"{node.outputs[0]}/linear"


@_handles("Conv")
def _conv(e: _Emitter, node: Node, inputs: list):
    x, w = inputs[0], e.raw(node.inputs[1])
    a = node.attrs
    pt, pl, pb, pr = a["pads"]
    bias = inputs[2] if len(inputs) > 2 else None
    y = mb.conv(x=x, weight=w, bias=bias, strides=a["strides"], pad_type="custom", pad=[pt, pb, pl, pr],
                dilations=a["dilations"], groups=a["group"], name=_fused_name(e, node))
    return _activation(e, node, y, e.output_name(node))


@_handles("ConvTranspose")
def _conv_transpose(e: _Emitter, node: Node, inputs: list):
    a = node.attrs
    pt, pl, pb, pr = a["pads"]
    bias = inputs[2] if len(inputs) > 2 else None
    return mb.conv_transpose(x=inputs[0], weight=e.raw(node.inputs[1]), bias=bias, strides=a["strides"],
                             pad_type="custom", pad=[pt, pb, pl, pr], dilations=a["dilations"], groups=a["group"],
                             output_shape=list(e.value(node.outputs[0]).shape), name=e.output_name(node))


@_handles("MatMul")
def _matmul(e: _Emitter, node: Node, inputs: list):
    w = e.value(node.inputs[1])
    bias = inputs[2] if len(inputs) > 2 else None
    if w.is_const and len(w.shape) == 2:
        # linear takes the weight [N, K]: the constant is transposed here, the constexpr stays compressed
        # in that layout
        weight = _transposed_weight(e, node.inputs[1])
        y = mb.linear(x=inputs[0], weight=weight, bias=bias, name=_fused_name(e, node))
    else:
        y = mb.matmul(x=inputs[0], y=inputs[1], name=f"{node.outputs[0]}/product" if bias is not None
                      else _fused_name(e, node))
        if bias is not None:
            y = mb.add(x=y, y=bias, name=_fused_name(e, node))
    return _activation(e, node, y, e.output_name(node))


def _transposed_weight(e: _Emitter, name: str):
    value = e.value(name)
    quant = value.quant
    if quant is not None and quant.axis is not None:
        quant = QuantParams(quant.scale, quant.zero_point, 1 - quant.axis, quant.block_size)
    transposed = Value(f"{name}/transposed", value.dtype, value.shape[::-1], np.ascontiguousarray(value.const.T), quant)
    if transposed.dtype in (DType.FLOAT32, DType.INT64, DType.INT32):
        return mb.const(val=transposed.const, name=transposed.name)
    return e.weight(transposed)


# ---- elementwise ----------------------------------------------------------------------------------
@_handles(*_UNARY)
def _unary(e: _Emitter, node: Node, inputs: list):
    return getattr(mb, _UNARY[node.op])(x=inputs[0], name=e.output_name(node))


@_handles("Neg")
def _neg(e: _Emitter, node: Node, inputs: list):
    return mb.mul(x=inputs[0], y=np.float32(-1.0), name=e.output_name(node))


@_handles("Reciprocal")
def _reciprocal(e: _Emitter, node: Node, inputs: list):
    return mb.inverse(x=inputs[0], epsilon=np.float32(0.0), name=e.output_name(node))


@_handles("HardSwish")
def _hard_swish(e: _Emitter, node: Node, inputs: list):
    gate = mb.sigmoid_hard(x=inputs[0], alpha=np.float32(1 / 6), beta=np.float32(0.5), name=f"{node.outputs[0]}/gate")
    return mb.mul(x=inputs[0], y=gate, name=e.output_name(node))


@_handles("HardSigmoid")
def _hard_sigmoid(e: _Emitter, node: Node, inputs: list):
    return mb.sigmoid_hard(x=inputs[0], alpha=np.float32(node.attrs["alpha"]), beta=np.float32(node.attrs["beta"]),
                           name=e.output_name(node))


@_handles("LeakyRelu")
def _leaky_relu(e: _Emitter, node: Node, inputs: list):
    return mb.leaky_relu(x=inputs[0], alpha=np.float32(node.attrs["alpha"]), name=e.output_name(node))


@_handles("Clip")
def _clip(e: _Emitter, node: Node, inputs: list):
    lo, hi = np.float32(node.attrs["min"]), np.float32(node.attrs["max"])
    if np.isinf(hi) or np.isinf(lo):
        # clip needs finite bounds; a one-sided clamp is a maximum / minimum
        return mb.maximum(x=inputs[0], y=lo, name=e.output_name(node)) if np.isinf(hi) \
            else mb.minimum(x=inputs[0], y=hi, name=e.output_name(node))
    return mb.clip(x=inputs[0], alpha=lo, beta=hi, name=e.output_name(node))


@_handles("Gelu")
def _gelu(e: _Emitter, node: Node, inputs: list):
    mode = "TANH_APPROXIMATION" if node.attrs["approximate"] == "tanh" else "EXACT"
    return mb.gelu(x=inputs[0], mode=mode, name=e.output_name(node))


@_handles("Cast")
def _cast(e: _Emitter, node: Node, inputs: list):
    return mb.cast(x=inputs[0], dtype=_CAST_NAME[DType(node.attrs["to"])], name=e.output_name(node))


@_handles(*_BINARY)
def _binary(e: _Emitter, node: Node, inputs: list):
    return getattr(mb, _BINARY[node.op])(x=inputs[0], y=inputs[1], name=e.output_name(node))


@_handles("Where")
def _where(e: _Emitter, node: Node, inputs: list):
    return mb.select(cond=inputs[0], a=inputs[1], b=inputs[2], name=e.output_name(node))


# ---- normalisation --------------------------------------------------------------------------------
@_handles("Softmax")
def _softmax(e: _Emitter, node: Node, inputs: list):
    return mb.softmax(x=inputs[0], axis=node.attrs["axis"], name=e.output_name(node))


@_handles("LogSoftmax")
def _log_softmax(e: _Emitter, node: Node, inputs: list):
    total = mb.reduce_log_sum_exp(x=inputs[0], axes=[node.attrs["axis"]], keep_dims=True,
                                  name=f"{node.outputs[0]}/log_sum_exp")
    return mb.sub(x=inputs[0], y=total, name=e.output_name(node))


@_handles("LayerNormalization")
def _layer_norm(e: _Emitter, node: Node, inputs: list):
    rank = len(e.value(node.inputs[0]).shape)
    beta = inputs[2] if len(inputs) > 2 else None
    return mb.layer_norm(x=inputs[0], axes=list(range(node.attrs["axis"], rank)), gamma=inputs[1], beta=beta,
                         epsilon=np.float32(node.attrs["epsilon"]), name=e.output_name(node))


@_handles("LRN")
def _lrn(e: _Emitter, node: Node, inputs: list):
    a = node.attrs
    return mb.local_response_norm(x=inputs[0], size=a["size"], alpha=np.float32(a["alpha"]),
                                  beta=np.float32(a["beta"]), k=np.float32(a["bias"]), name=e.output_name(node))


# ---- pooling and reductions ------------------------------------------------------------------------
def _pool_args(node: Node) -> dict[str, Any]:
    a = node.attrs
    if any(d != 1 for d in a["dilations"]):
        raise UnsupportedError(f"node '{node.name}' ({node.op}): Core ML pools have no dilation")
    pt, pl, pb, pr = a["pads"]
    return {"kernel_sizes": a["kernel"], "strides": a["strides"], "pad_type": "custom", "pad": [pt, pb, pl, pr]}


@_handles("MaxPool")
def _max_pool(e: _Emitter, node: Node, inputs: list):
    return mb.max_pool(x=inputs[0], **_pool_args(node), name=e.output_name(node))


@_handles("AveragePool")
def _average_pool(e: _Emitter, node: Node, inputs: list):
    return mb.avg_pool(x=inputs[0], **_pool_args(node), exclude_padding_from_average=not node.attrs["count_include_pad"],
                       name=e.output_name(node))


@_handles(*_REDUCE)
def _reduce(e: _Emitter, node: Node, inputs: list):
    return getattr(mb, _REDUCE[node.op])(x=inputs[0], axes=node.attrs["axes"], keep_dims=bool(node.attrs["keepdims"]),
                                         name=e.output_name(node))


@_handles("ArgMax")
def _arg_max(e: _Emitter, node: Node, inputs: list):
    return mb.reduce_argmax(x=inputs[0], axis=node.attrs["axis"], keep_dims=bool(node.attrs["keepdims"]),
                            name=e.output_name(node))


# ---- data movement --------------------------------------------------------------------------------
@_handles("Reshape")
def _reshape(e: _Emitter, node: Node, inputs: list):
    return mb.reshape(x=inputs[0], shape=list(e.value(node.outputs[0]).shape), name=e.output_name(node))


@_handles("Expand")
def _expand(e: _Emitter, node: Node, inputs: list):
    """Broadcast as reshape to the output rank, then tile the unit axes."""
    x, y = e.value(node.inputs[0]), e.value(node.outputs[0])
    shape = (1,) * (len(y.shape) - len(x.shape)) + x.shape
    reshaped = mb.reshape(x=inputs[0], shape=list(shape), name=f"{node.outputs[0]}/ranked")
    reps = [o // i for o, i in zip(y.shape, shape)]
    return mb.tile(x=reshaped, reps=reps, name=e.output_name(node))


@_handles("Transpose")
def _transpose(e: _Emitter, node: Node, inputs: list):
    return mb.transpose(x=inputs[0], perm=node.attrs["perm"], name=e.output_name(node))


@_handles("Concat")
def _concat(e: _Emitter, node: Node, inputs: list):
    return mb.concat(values=inputs, axis=node.attrs["axis"], name=e.output_name(node))


@_handles("Split")
def _split(e: _Emitter, node: Node, inputs: list):
    return mb.split(x=inputs[0], split_sizes=node.attrs["split"], axis=node.attrs["axis"], name=e.output_name(node))


@_handles("Slice")
def _slice(e: _Emitter, node: Node, inputs: list):
    a = node.attrs
    return mb.slice_by_index(x=inputs[0], begin=a["starts"], end=[max(v, 0) for v in a["ends"]], stride=a["steps"],
                             end_mask=[v < 0 for v in a["ends"]], name=e.output_name(node))


@_handles("Gather")
def _gather(e: _Emitter, node: Node, inputs: list):
    table = e.value(node.inputs[0])
    indices = e.value(node.inputs[1])
    index = mb.const(val=np.where(indices.const < 0, indices.const + table.shape[node.attrs["axis"]],
                                  indices.const).astype(np.int32)) if indices.is_const else e.x(node.inputs[1])
    if table.dtype is DType.BOOL:
        # Core ML gathers numbers only: bool goes through int32
        wide = mb.cast(x=inputs[0], dtype="int32", name=f"{node.outputs[0]}/wide")
        picked = mb.gather(x=wide, indices=index, axis=node.attrs["axis"], name=f"{node.outputs[0]}/picked")
        return mb.cast(x=picked, dtype="bool", name=e.output_name(node))
    # an int8 (per row) or int4 embedding table arrives as its constexpr dequantization
    return mb.gather(x=inputs[0], indices=index, axis=node.attrs["axis"], name=e.output_name(node))


@_handles("Pad")
def _pad(e: _Emitter, node: Node, inputs: list):
    a = node.attrs
    rank = len(e.value(node.inputs[0]).shape)
    pads = [v for i in range(rank) for v in (a["pads"][i], a["pads"][i + rank])]
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[a["mode"]]
    return mb.pad(x=inputs[0], pad=pads, mode=mode, constant_val=np.float32(a["value"]), name=e.output_name(node))


@_handles("Resize")
def _resize(e: _Emitter, node: Node, inputs: list):
    a = node.attrs
    y = e.value(node.outputs[0])
    x = e.value(node.inputs[0])
    mode = a["coordinate_transformation_mode"]
    if a["mode"] == "nearest" and mode == "asymmetric" and a["nearest_mode"] == "floor" \
            and all(float(s).is_integer() for s in a["scales"][2:]):
        return mb.upsample_nearest_neighbor(x=inputs[0], scale_factor_height=int(a["scales"][2]),
                                            scale_factor_width=int(a["scales"][3]), name=e.output_name(node))
    if a["mode"] == "linear" and mode in _BILINEAR:
        return mb.resize_bilinear(x=inputs[0], target_size_height=y.shape[2], target_size_width=y.shape[3],
                                  sampling_mode=_BILINEAR[mode], name=e.output_name(node))
    raise UnsupportedError(f"node '{node.name}' (Resize): no Core ML resize for mode {a['mode']}, {mode}, "
                           f"nearest_mode {a['nearest_mode']}, scales {a['scales']} (input {x.shape})")


@_handles("Tile")
def _tile(e: _Emitter, node: Node, inputs: list):
    return mb.tile(x=inputs[0], reps=node.attrs["repeats"], name=e.output_name(node))


@_handles("DepthToSpace")
def _depth_to_space(e: _Emitter, node: Node, inputs: list):
    # Core ML's depth_to_space is ONNX's DCR; pixel_shuffle is CRD (PyTorch's order)
    if node.attrs["mode"] == "DCR":
        return mb.depth_to_space(x=inputs[0], block_size=node.attrs["blocksize"], name=e.output_name(node))
    return mb.pixel_shuffle(x=inputs[0], upscale_factor=node.attrs["blocksize"], name=e.output_name(node))


# ---- quantization ---------------------------------------------------------------------------------
@_handles("Quantize", "Requantize", "Dequantize")
def _domain_change(e: _Emitter, node: Node, inputs: list):
    """Inputs arrive dequantized and `store` quantizes int8 outputs: these ops are the crossing itself."""
    return inputs[0]


@_handles("Lut")
def _lut(e: _Emitter, node: Node, inputs: list):
    """y = table[x + 128] exactly: gather on the int8 table at cast(x) + 128; the codes are the output."""
    out = node.outputs[0]
    wide = mb.cast(x=e.raw(node.inputs[0]), dtype="int32", name=f"{out}/wide")
    index = mb.add(x=wide, y=np.int32(128), name=f"{out}/index")
    codes = mb.gather(x=e.const(node.inputs[1]), indices=index, axis=0, name=out)
    e.vars[out] = codes
    return None


# ---- entry points ---------------------------------------------------------------------------------
def build_program(graph: Graph, target) -> tuple[Any, set[str]]:
    """The MIL program of `graph` and the names of the ops that compute in float16."""
    graph = standard_ops(graph)   # MIL has none of the native runtime's fused forms
    placeholders = {n: mb.placeholder(shape=graph.values[n].shape, dtype=_MIL_DTYPE[graph.values[n].dtype])
                    for n in graph.inputs}
    emitter = _Emitter(graph, target)
    with Function(placeholders, opset_version=target) as function:
        for name in graph.inputs:
            emitter.vars[name] = function.inputs[name]
        for node in graph.nodes:
            emitter.emit(node)
        function.set_outputs([_output(emitter, name) for name in graph.outputs])
    program = Program()
    program.add_function("main", function)
    return program, emitter.low_precision


def _output(e: _Emitter, name: str):
    """Graph outputs are float (or the IR's integer types) under their IR name."""
    var = e.x(name)
    if var.name != name:
        var = mb.identity(x=var, name=name)
    return var


def to_mlmodel(graph: Graph, profile, metadata: dict[str, Any] | None = None):
    """The graph as a coremltools MLModel (not loaded: Core ML itself runs only on macOS)."""
    target = deployment_target(graph, profile)
    program, low_precision = build_program(graph, target)
    precision = ct.transform.FP16ComputePrecision(op_selector=lambda op: op.name in low_precision)
    with contextlib.redirect_stderr(io.StringIO()):     # the pass pipelines draw progress bars
        model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=target,
                           compute_precision=precision, skip_model_load=True)
    model.short_description = f"{graph.name}, compiled by edgepack {__version__}"
    model.user_defined_metadata["edgepack"] = json.dumps({"producer": f"edgepack {__version__}",
                                                          **(metadata or {})}, sort_keys=True, default=str)
    return model


def write_coreml(graph: Graph, path: str | Path, profile, metadata: dict[str, Any] | None = None) -> int:
    """Write `graph` as an .mlpackage directory at `path` (replaced whole); returns its size in bytes."""
    model = to_mlmodel(graph, profile, metadata)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial.mlpackage")     # coremltools insists on the suffix
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save(str(tmp))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@dataclass
class PackageFacts:
    """What an .mlpackage holds, read from its spec (no Core ML needed)."""
    spec_version: int
    inputs: dict[str, tuple[str, tuple[int, ...]]]
    outputs: dict[str, tuple[str, tuple[int, ...]]]
    ops: dict[str, int]
    weight_dtypes: dict[str, int]          # dtype of constexpr data / const weights -> element count
    weights_file_bytes: int
    metadata: dict[str, Any]


_ARRAY_TYPE = {65568: "fp32", 65552: "fp16", 131104: "int32"}


def describe_package(path: str | Path) -> PackageFacts:
    """Read an .mlpackage structurally: spec version, inputs / outputs, op counts, weight storage."""
    from coremltools.proto import MIL_pb2
    from coremltools.models.utils import load_spec
    path = Path(path)
    spec = load_spec(str(path))
    program = spec.mlProgram
    function = program.functions["main"]
    block = function.block_specializations[function.opset]
    ops: dict[str, int] = {}
    weights: dict[str, int] = {}
    dtype_name = {v: k.lower() for k, v in MIL_pb2.DataType.items()}
    consts = {op.outputs[0].name: op for op in block.operations if op.type == "const" and op.outputs}
    compressed: set[str] = set()

    def count(tensor_type) -> None:
        elements = int(np.prod([d.constant.size for d in tensor_type.dimensions])) if tensor_type.dimensions else 1
        key = dtype_name.get(tensor_type.dataType, str(tensor_type.dataType))
        weights[key] = weights.get(key, 0) + elements

    for op in block.operations:
        ops[op.type] = ops.get(op.type, 0) + 1
        if not op.type.startswith("constexpr_"):
            continue
        # the compressed data: an attribute (iOS 17 ops) or a const input (iOS 18 ops)
        for key in ("quantized_data", "data"):
            if key in op.attributes:
                count(op.attributes[key].type.tensorType)
            elif key in op.inputs:
                for argument in op.inputs[key].arguments:
                    if argument.name:
                        compressed.add(argument.name)
                        count(consts[argument.name].outputs[0].type.tensorType)
                    else:
                        count(argument.value.type.tensorType)
    for name, op in consts.items():
        tensor = op.outputs[0].type.tensorType
        elements = int(np.prod([d.constant.size for d in tensor.dimensions])) if tensor.dimensions else 1
        if name not in compressed and elements >= 64:   # smaller constants are parameters, not weights
            count(tensor)

    def features(items) -> dict[str, tuple[str, tuple[int, ...]]]:
        result = {}
        for feature in items:
            array = feature.type.multiArrayType
            result[feature.name] = (_ARRAY_TYPE.get(array.dataType, str(array.dataType)), tuple(array.shape))
        return result

    weight_file = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    meta = dict(spec.description.metadata.userDefined)
    return PackageFacts(spec.specificationVersion, features(spec.description.input), features(spec.description.output),
                        ops, weights, weight_file.stat().st_size if weight_file.exists() else 0,
                        json.loads(meta["edgepack"]) if "edgepack" in meta else {})
