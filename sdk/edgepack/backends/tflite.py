"""Emit the IR as a TFLite flatbuffer (.tflite) for LiteRT, with the schema module that ships in
ai-edge-litert (object API): no TensorFlow, no converter.

Precisions map one-to-one (docs/quantization.md is the TFLite int8 specification):
  * fp32: float ops;
  * int8 (static): int8 tensors carry their scale / zero point, weights per output channel
    (`quantized_dimension`), int32 biases with scale s_in * s_w; Quantize / Requantize become QUANTIZE,
    Dequantize DEQUANTIZE; a Lut (activation table) becomes GATHER on the int8 table with index
    CAST(x) + 128, which is exact where TFLite's own int8 activation kernels would recompute the
    table with their own rounding;
  * int8-dynamic: FULLY_CONNECTED with int8 per-channel weights and a float input, which LiteRT runs
    with its hybrid kernel (`asymmetric_quantize_inputs`: per-row asymmetric input quantization, the
    edgepack scheme); int8 embedding tables through EMBEDDING_LOOKUP's hybrid kernel;
  * fp16 weights: float16 constants behind DEQUANTIZE (LiteRT converts them once at prepare).
int4 block-wise weights have no LiteRT kernel and are refused with the node named.

Layout: the IR is NCHW, TFLite is NHWC. Every IR value has a *stored layout* (a permutation P:
stored = transpose(ir_value, P)). Spatial ops produce NHWC; elementwise and axis ops follow their
input's layout (axes and constants are permuted instead of the data); layout-sensitive ops (Reshape,
MatMul, Gather...) get the IR order back, by a RESHAPE when the move is trivial in memory, else by a
TRANSPOSE. A flatten feeding fully connected layers is absorbed by permuting the weight rows. The model
keeps the IR's inputs and outputs (names, NCHW shapes), so the same feeds run every artifact; the
stored layouts are recorded in the model's "edgepack" metadata for `edgepack verify --per-op`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import flatbuffers
import numpy as np

from .. import __version__
from ..errors import UnsupportedError
from ..ir import DType, Graph, Node, QuantParams, Value
from ..passes import standard_ops
from ..reference.quantized import activation_bounds, quantize

try:
    from ai_edge_litert import schema_py_generated as schema
except ImportError as err:  # pragma: no cover - exercised only without the optional dependency
    raise ImportError("writing .tflite needs the 'ai-edge-litert' package (pip install ai-edge-litert)") from err

Op = schema.BuiltinOperator
Act = schema.ActivationFunctionType
Perm = tuple[int, ...]
NHWC: Perm = (0, 2, 3, 1)
METADATA_NAME = "edgepack"

_TENSOR_TYPE = {DType.FLOAT32: schema.TensorType.FLOAT32, DType.FLOAT16: schema.TensorType.FLOAT16,
                DType.INT8: schema.TensorType.INT8, DType.UINT8: schema.TensorType.UINT8,
                DType.INT32: schema.TensorType.INT32, DType.INT64: schema.TensorType.INT64,
                DType.BOOL: schema.TensorType.BOOL}
_UNARY = {"Relu": Op.RELU, "Sigmoid": Op.LOGISTIC, "Tanh": Op.TANH, "Exp": Op.EXP, "Log": Op.LOG, "Sqrt": Op.SQRT,
          "Neg": Op.NEG, "Abs": Op.ABS, "HardSwish": Op.HARD_SWISH, "Not": Op.LOGICAL_NOT, "Floor": Op.FLOOR,
          "Ceil": Op.CEIL}
_BINARY = {"Add": Op.ADD, "Sub": Op.SUB, "Mul": Op.MUL, "Div": Op.DIV, "Pow": Op.POW, "Max": Op.MAXIMUM,
           "Min": Op.MINIMUM, "Equal": Op.EQUAL, "Less": Op.LESS, "Greater": Op.GREATER, "And": Op.LOGICAL_AND,
           "Or": Op.LOGICAL_OR}
_BINARY_OPTIONS = {"Add": schema.AddOptionsT, "Sub": schema.SubOptionsT, "Mul": schema.MulOptionsT,
                   "Div": schema.DivOptionsT}
_REDUCE = {"ReduceMean": Op.MEAN, "ReduceSum": Op.SUM, "ReduceMax": Op.REDUCE_MAX, "ReduceMin": Op.REDUCE_MIN}
# Clip ranges TFLite has a fused activation (or a standalone op) for
_CLIP_ACT = {(0.0, 6.0): Act.RELU6, (-1.0, 1.0): Act.RELU_N1_TO_1}
_CLIP_OP = {(0.0, 6.0): Op.RELU6, (-1.0, 1.0): Op.RELU_N1_TO_1, (0.0, 1.0): Op.RELU_0_TO_1}

# ops whose version 1 was never a kernel (BROADCAST_TO's was a placeholder)
_FIRST_VERSION = {Op.BROADCAST_TO: 2}

_HANDLERS: dict[str, Callable[["_Emitter", Node], None]] = {}


def _handles(*ops: str):
    def register(fn):
        for op in ops:
            _HANDLERS[op] = fn
        return fn
    return register


def _identity(rank: int) -> Perm:
    return tuple(range(rank))


def _moves_data(shape: tuple[int, ...], perm: Perm) -> bool:
    """Whether transposing `shape` by `perm` moves bytes: not when the non-unit axes keep their order."""
    kept = [axis for axis in perm if shape[axis] != 1]
    return kept != sorted(kept)


class _FlatBuffer:
    """The object tree of one single-subgraph model: tensors, buffers, operator codes, operators."""

    def __init__(self, reserved: set[str]) -> None:
        self.tensors: list[schema.TensorT] = []
        self.buffers: list[schema.BufferT] = [schema.BufferT()]  # buffer 0: the empty one runtime tensors use
        self.opcodes: dict[int, int] = {}
        self.operator_codes: list[schema.OperatorCodeT] = []
        self.operators: list[schema.OperatorT] = []
        self.reserved = reserved            # IR value names: helpers never take them
        self.names: set[str] = set()

    def unique(self, hint: str, exact: bool = False) -> str:
        if exact:
            self.names.add(hint)
            return hint
        name, i = hint, 0
        while name in self.names or name in self.reserved:
            i += 1
            name = f"{hint}_{i}"
        self.names.add(name)
        return name

    def tensor(self, name: str, dtype: DType, shape: tuple[int, ...], quant: QuantParams | None = None,
               qdim: int = 0, data: np.ndarray | None = None, exact: bool = False) -> int:
        if dtype not in _TENSOR_TYPE:
            raise UnsupportedError(f"tensor '{name}': TFLite has no {dtype.name.lower()} tensors in edgepack's emitter")
        t = schema.TensorT()
        t.name = self.unique(name, exact)
        t.type = _TENSOR_TYPE[dtype]
        t.shape = np.array(shape, np.int32)
        t.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(buffer)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = schema.QuantizationParametersT()
            q.scale = np.asarray(quant.scale, np.float32).reshape(-1)
            q.zeroPoint = np.asarray(quant.zero_point, np.int64).reshape(-1)
            q.quantizedDimension = qdim
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def operator(self, code: int, inputs: list[int], outputs: list[int], options: Any = None) -> None:
        if code not in self.opcodes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, Op.PLACEHOLDER_FOR_GREATER_OP_CODES)
            # the lowest version LiteRT registers: its builtin resolver binds every version of an op to
            # the same kernel, which dispatches on the tensor types
            oc.version = _FIRST_VERSION.get(code, 1)
            self.opcodes[code] = len(self.operator_codes)
            self.operator_codes.append(oc)
        op = schema.OperatorT()
        op.opcodeIndex = self.opcodes[code]
        op.inputs = np.array(inputs, np.int32)
        op.outputs = np.array(outputs, np.int32)
        if options is not None:
            op.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        self.operators.append(op)

    def finish(self, name: str, inputs: list[int], outputs: list[int], metadata: dict[str, Any]) -> bytes:
        subgraph = schema.SubGraphT()
        subgraph.name = name
        subgraph.tensors = self.tensors
        subgraph.inputs = np.array(inputs, np.int32)
        subgraph.outputs = np.array(outputs, np.int32)
        subgraph.operators = self.operators

        signature = schema.SignatureDefT()
        signature.signatureKey = "serving_default"
        signature.subgraphIndex = 0
        signature.inputs = [self._tensor_map(i) for i in inputs]
        signature.outputs = [self._tensor_map(i) for i in outputs]

        buffer = schema.BufferT()
        buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), np.uint8)
        self.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(self.buffers) - 1

        model = schema.ModelT()
        model.version = 3
        model.description = f"edgepack {__version__}"
        model.operatorCodes = self.operator_codes
        model.subgraphs = [subgraph]
        model.buffers = self.buffers
        model.metadata = [entry]
        model.signatureDefs = [signature]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def _tensor_map(self, index: int) -> schema.TensorMapT:
        m = schema.TensorMapT()
        m.name = self.tensors[index].name
        m.tensorIndex = index
        return m


def _options(cls, **fields):
    options = cls()
    for key, value in fields.items():
        setattr(options, key, value)
    return options


def _padding(in_hw, out_hw, kernel, strides, dilations, pads) -> int | None:
    """TFLite's VALID or SAME when they give the IR's explicit pads [top, left, bottom, right], else None."""
    if not any(pads):
        return schema.Padding.VALID
    same = []
    for i in range(2):
        effective = (kernel[i] - 1) * dilations[i] + 1
        out = -(-in_hw[i] // strides[i])
        total = max((out - 1) * strides[i] + effective - in_hw[i], 0)
        same.append((total // 2, total - total // 2, out))
    if [pads[0], pads[2]] == list(same[0][:2]) and [pads[1], pads[3]] == list(same[1][:2]) \
            and tuple(out_hw) == (same[0][2], same[1][2]):
        return schema.Padding.SAME
    return None


class _Emitter:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.fb = _FlatBuffer(set(graph.values))
        self.stored: dict[str, tuple[int, Perm]] = {}        # IR value -> (tensor, stored layout)
        self.views: dict[tuple[str, Perm, int], int] = {}     # IR value in another layout / rank
        self.feature_order: dict[str, np.ndarray] = {}        # flattened NHWC values: IR feature of each column
        self.consumers = graph.consumers()

    # ---- tensors -------------------------------------------------------------------------------
    def value(self, name: str) -> Value:
        return self.graph.values[name]

    def layout(self, name: str) -> Perm:
        value = self.value(name)
        return _identity(len(value.shape)) if value.is_const else self.stored[name][1]

    def const(self, array: np.ndarray, hint: str, dtype: DType | None = None, quant: QuantParams | None = None,
              qdim: int = 0) -> int:
        array = np.asarray(array)
        dtype = dtype or DType.from_numpy(array.dtype)
        return self.fb.tensor(hint, dtype, array.shape, quant, qdim, array.astype(dtype.numpy, copy=False))

    def temp(self, hint: str, dtype: DType, shape, quant: QuantParams | None = None) -> int:
        return self.fb.tensor(hint, dtype, tuple(shape), quant)

    def int32(self, values, hint: str) -> int:
        return self.const(np.asarray(values, np.int32), hint)

    def define(self, name: str, perm: Perm | None = None) -> int:
        """The tensor that holds IR value `name` in layout `perm` (identity by default)."""
        value = self.value(name)
        perm = perm or _identity(len(value.shape))
        shape = tuple(value.shape[a] for a in perm)
        output = name in self.graph.outputs and perm != _identity(len(perm))
        index = self.fb.tensor(f"{name}/stored" if output else name, value.dtype, shape, value.quant, exact=not output)
        self.stored[name] = (index, perm)
        return index

    def read(self, name: str, perm: Perm | None = None, rank: int | None = None) -> int:
        """IR value `name` as a tensor in layout `perm`, with leading unit axes up to `rank`."""
        value = self.value(name)
        rank = rank or len(value.shape)
        perm = perm or _identity(rank)
        key = (name, perm, rank)
        if key in self.views:
            return self.views[key]
        shape = (1,) * (rank - len(value.shape)) + value.shape
        if value.is_const:
            array = value.const.reshape(shape).transpose(perm)
            quant, qdim = value.quant, 0
            if quant is not None and quant.axis is not None:
                qdim = perm.index(quant.axis + rank - len(value.shape))
            index = self.const(array, name, value.dtype, quant, qdim)
        else:
            if name in self.feature_order:
                raise UnsupportedError(f"value '{name}': a flattened NHWC tensor read by a non-FullyConnected op")
            index, stored = self.stored[name]
            if rank != len(value.shape):
                # a broadcast operand: the IR order first, then leading unit axes
                ir = _identity(len(value.shape))
                index = self.relayout(self.read(name), value.shape, ir, ir, value, new_shape=shape)
                stored = _identity(rank)
            if stored != perm:
                index = self.relayout(index, shape, stored, perm, value)
        self.views[key] = index
        return index

    def relayout(self, index: int, shape: tuple[int, ...], stored: Perm, perm: Perm, value: Value,
                 new_shape: tuple[int, ...] | None = None, out: int | None = None) -> int:
        """Tensor `index` (an IR value of `shape` in layout `stored`) in layout `perm`, or reshaped to
        `new_shape`: a RESHAPE when no byte moves, else a TRANSPOSE."""
        move = tuple(stored.index(axis) for axis in perm)
        stored_shape = tuple(shape[a] for a in stored)
        target = new_shape or tuple(shape[a] for a in perm)
        if out is None:
            out = self.temp(f"{value.name}/relaid", value.dtype, target, value.quant)
        if new_shape is None and _moves_data(stored_shape, move):
            self.fb.operator(Op.TRANSPOSE, [index, self.int32(move, "perm")], [out], schema.TransposeOptionsT())
        else:
            self.reshape(index, target, out)
        return out

    def reshape(self, index: int, shape: tuple[int, ...], out: int) -> int:
        self.fb.operator(Op.RESHAPE, [index, self.int32(shape, "shape")], [out],
                         _options(schema.ReshapeOptionsT, newShape=np.array(shape, np.int32)))
        return out

    def follow(self, node: Node, inputs: list[str] | None = None) -> Perm:
        """The layout an elementwise node computes in: that of its first permuted runtime input."""
        rank = len(self.value(node.outputs[0]).shape)
        for name in inputs if inputs is not None else node.inputs:
            if name and not self.value(name).is_const and len(self.value(name).shape) == rank:
                perm = self.layout(name)
                if perm != _identity(rank):
                    return perm
        return _identity(rank)

    def operands(self, names: list[str], perm: Perm) -> list[int]:
        """Elementwise operands in layout `perm`: lower-rank operands broadcast with leading unit axes,
        which only needs doing when the layout is permuted (TFLite broadcasts across ranks itself)."""
        rank = len(perm)
        if perm == _identity(rank):
            return [self.read(n) for n in names]
        return [self.read(n, perm, rank) for n in names]

    # ---- activations fused or appended ---------------------------------------------------------
    def fused(self, attrs: dict[str, Any]) -> tuple[int, tuple[float, float] | None]:
        """(fused activation, clip left to emit after the op) of a Conv / MatMul."""
        act = attrs.get("activation", "none")
        if act == "none":
            return Act.NONE, None
        if act == "relu":
            return Act.RELU, None
        bounds = (float(attrs["act_min"]), float(attrs["act_max"]))
        if bounds in _CLIP_ACT:
            return _CLIP_ACT[bounds], None
        return Act.NONE, bounds

    def clip_to(self, index: int, bounds: tuple[float, float], out: str, perm: Perm) -> None:
        """y = clamp(x, lo, hi) as MAXIMUM / MINIMUM; on int8 with the bounds' codes (the reference's clamp)."""
        value = self.value(out)
        shape = tuple(value.shape[a] for a in perm)
        if value.dtype is DType.INT8:
            lo, hi = activation_bounds({"activation": "clip", "act_min": bounds[0], "act_max": bounds[1]},
                                       value.quant, np.int8)
            lo_c = self.const(np.array(lo, np.int8), "clip_min", DType.INT8, value.quant)
            hi_c = self.const(np.array(hi, np.int8), "clip_max", DType.INT8, value.quant)
        else:
            lo_c = self.const(np.array(bounds[0], np.float32), "clip_min")
            hi_c = self.const(np.array(bounds[1], np.float32), "clip_max")
        low = self.temp(f"{out}/clip_low", value.dtype, shape, value.quant)
        self.fb.operator(Op.MAXIMUM, [index, lo_c], [low])
        self.fb.operator(Op.MINIMUM, [low, hi_c], [self.define(out, perm)])

    # ---- weights ---------------------------------------------------------------------------------
    def weight(self, node: Node, array: np.ndarray, value: Value, qdim: int) -> int:
        """A constant weight already in TFLite's layout: float32, int8 per channel (`qdim`), or float16
        behind a DEQUANTIZE."""
        if value.dtype is DType.INT4:
            raise UnsupportedError(f"node '{node.name}' ({node.op}): LiteRT has no block-wise int4 weights; "
                                   "compile it with precision int8-dynamic or fp16 for TFLite")
        if value.dtype is DType.FLOAT16:
            half = self.const(array.astype(np.float16), f"{value.name}/tflite", DType.FLOAT16)
            full = self.temp(f"{value.name}/dequantized", DType.FLOAT32, array.shape)
            self.fb.operator(Op.DEQUANTIZE, [half], [full])
            return full
        return self.const(array, f"{value.name}/tflite", value.dtype, value.quant, qdim)

    def bias(self, node: Node, channels: int, rows: slice = slice(None)) -> int:
        """The node's bias (its output channels `rows`), or zeros: some LiteRT kernels (dilated
        CONV_2D) require the operand."""
        if len(node.inputs) > 2 and node.inputs[2]:
            value = self.value(node.inputs[2])
            quant = value.quant and QuantParams(np.asarray(value.quant.scale)[rows],
                                                np.asarray(value.quant.zero_point)[rows], 0)
            return self.const(value.const[rows], value.name, value.dtype, quant, 0)
        x, w = self.value(node.inputs[0]), self.value(node.inputs[1])
        if x.dtype is DType.INT8:
            # int32 zeros on the scale s_x * s_w the kernels check
            scale = np.float64(x.quant.scale[0]) * np.asarray(w.quant.scale, np.float64)
            scale = np.broadcast_to(scale, (w.shape[0],))[rows].astype(np.float32)
            quant = QuantParams(scale, np.zeros(channels, np.int32), 0)
            return self.const(np.zeros(channels, np.int32), f"{node.name}/bias", DType.INT32, quant, 0)
        return self.const(np.zeros(channels, np.float32), f"{node.name}/bias")

    # ---- nodes -----------------------------------------------------------------------------------
    def emit(self, node: Node) -> None:
        handler = _HANDLERS.get(node.op)
        if handler is None:
            raise UnsupportedError(f"node '{node.name}': no TFLite form for IR op '{node.op}'")
        handler(self, node)

    def finish(self, manifest: dict[str, Any]) -> bytes:
        inputs = []
        for name in self.graph.inputs:
            index = self.fb.tensor(name, self.value(name).dtype, self.value(name).shape, exact=True)
            self.stored[name] = (index, _identity(len(self.value(name).shape)))
            inputs.append(index)
        for node in self.graph.nodes:
            self.emit(node)
        outputs = [self.output(name) for name in self.graph.outputs]
        layouts = {self.fb.tensors[i].name: list(p) for name, (i, p) in self.stored.items()
                   if p != _identity(len(p))}
        orders = {self.fb.tensors[self.stored[name][0]].name: order.tolist()
                  for name, order in self.feature_order.items()}
        metadata = {"producer": f"edgepack {__version__}", "layouts": layouts, "feature_orders": orders,
                    "manifest": manifest}
        return self.fb.finish(self.graph.name, inputs, outputs, metadata)

    def output(self, name: str) -> int:
        """Graph outputs keep their IR name and NCHW layout."""
        value = self.value(name)
        if value.is_const:
            return self.fb.tensor(name, value.dtype, value.shape, value.quant, data=value.const, exact=True)
        index, perm = self.stored[name]
        if self.fb.tensors[index].name == name and perm == _identity(len(perm)):
            return index
        out = self.fb.tensor(name, value.dtype, value.shape, value.quant, exact=True)
        return self.relayout(index, value.shape, perm, _identity(len(perm)), value, out=out)


# ---- compute ------------------------------------------------------------------------------------
def _explicit_pad(e: _Emitter, node: Node, index: int, x: Value, pads, fill: float | None) -> int:
    """PAD (or PADV2 with `fill`, a code for int8) in NHWC before a VALID spatial op."""
    n, c, h, w = x.shape
    shape = (n, h + pads[0] + pads[2], w + pads[1] + pads[3], c)
    out = e.temp(f"{node.name}/padded", x.dtype, shape, x.quant)
    paddings = e.int32([[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]], "paddings")
    if fill is None:
        # int8 PAD fills with the zero point: the code of real 0, as the reference's padding
        e.fb.operator(Op.PAD, [index, paddings], [out], schema.PadOptionsT())
    else:
        value = e.const(np.array(fill, x.dtype.numpy), "pad_value", x.dtype, x.quant)
        e.fb.operator(Op.PADV2, [index, paddings, value], [out], schema.PadV2OptionsT())
    return out


def _spatial_input(e: _Emitter, node: Node, kernel, out_shape) -> tuple[int, int]:
    """The NHWC input of a conv and its padding mode: SAME / VALID, or an explicit PAD then VALID."""
    x = e.value(node.inputs[0])
    index = e.read(node.inputs[0], NHWC)
    pads, strides, dilations = node.attrs["pads"], node.attrs["strides"], node.attrs["dilations"]
    padding = _padding(x.shape[2:], out_shape[2:], kernel, strides, dilations, pads)
    if padding is None:
        index, padding = _explicit_pad(e, node, index, x, pads, None), schema.Padding.VALID
    return index, padding


@_handles("Conv")
def _conv(e: _Emitter, node: Node) -> None:
    x, w, y = e.value(node.inputs[0]), e.value(node.inputs[1]), e.value(node.outputs[0])
    if not w.is_const:
        raise UnsupportedError(f"node '{node.name}' (Conv): TFLite convolutions need constant weights")
    group, (m, cg, kh, kw) = node.attrs["group"], w.shape
    channels = x.shape[1]
    index, padding = _spatial_input(e, node, (kh, kw), y.shape)
    act, clip = e.fused(node.attrs)
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs["dilations"]
    out = e.temp(f"{node.outputs[0]}/pre_clip", y.dtype, (y.shape[0], *y.shape[2:], m), y.quant) if clip \
        else e.define(node.outputs[0], NHWC)
    if group == 1:
        # OHWI, per output channel along dimension 0
        weight = e.weight(node, w.const.transpose(0, 2, 3, 1), w, 0)
        options = _options(schema.Conv2DOptionsT, padding=padding, strideH=sh, strideW=sw, dilationHFactor=dh,
                           dilationWFactor=dw, fusedActivationFunction=act)
        e.fb.operator(Op.CONV_2D, [index, weight, e.bias(node, m)], [out], options)
    elif cg == 1 and group == channels:
        # depthwise: 1 x kh x kw x (C * multiplier); IR output channel o reads input channel o // multiplier,
        # which is TFLite's channel order too
        weight = e.weight(node, w.const.transpose(1, 2, 3, 0), w, 3)
        options = _options(schema.DepthwiseConv2DOptionsT, padding=padding, strideH=sh, strideW=sw,
                           depthMultiplier=m // channels, dilationHFactor=dh, dilationWFactor=dw,
                           fusedActivationFunction=act)
        e.fb.operator(Op.DEPTHWISE_CONV_2D, [index, weight, e.bias(node, m)], [out], options)
    else:
        _grouped_conv(e, node, index, padding, act, out)
    if clip:
        e.clip_to(out, clip, node.outputs[0], NHWC)


def _grouped_conv(e: _Emitter, node: Node, index: int, padding: int, act: int, out: int) -> None:
    """Grouped convolution as SPLIT + one CONV_2D per group + CONCATENATION: LiteRT's optimized
    CONV_2D kernels take one group only."""
    x, w, y = e.value(node.inputs[0]), e.value(node.inputs[1]), e.value(node.outputs[0])
    group, m = node.attrs["group"], w.shape[0]
    n, c, h, wd = x.shape
    padded = e.fb.tensors[index].shape
    parts = [e.temp(f"{node.name}/group{g}_in", x.dtype, (n, padded[1], padded[2], c // group), x.quant)
             for g in range(group)]
    e.fb.operator(Op.SPLIT, [e.int32(3, "axis"), index], parts, _options(schema.SplitOptionsT, numSplits=group))
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs["dilations"]
    results = []
    for g in range(group):
        rows = slice(g * (m // group), (g + 1) * (m // group))
        quant = w.quant and QuantParams(np.asarray(w.quant.scale)[rows], np.asarray(w.quant.zero_point)[rows], 0)
        part_w = Value(w.name, w.dtype, w.shape, w.const[rows], quant)
        weight = e.weight(node, w.const[rows].transpose(0, 2, 3, 1), part_w, 0)
        result = e.temp(f"{node.name}/group{g}", y.dtype, (n, y.shape[2], y.shape[3], m // group), y.quant)
        e.fb.operator(Op.CONV_2D, [parts[g], weight, e.bias(node, m // group, rows)], [result],
                      _options(schema.Conv2DOptionsT, padding=padding, strideH=sh, strideW=sw,
                               dilationHFactor=dh, dilationWFactor=dw, fusedActivationFunction=act))
        results.append(result)
    e.fb.operator(Op.CONCATENATION, results, [out], _options(schema.ConcatenationOptionsT, axis=3))


@_handles("ConvTranspose")
def _conv_transpose(e: _Emitter, node: Node) -> None:
    """TRANSPOSE_CONV over the full (VALID) output, then a STRIDED_SLICE for the IR's pads."""
    x, w, y = e.value(node.inputs[0]), e.value(node.inputs[1]), e.value(node.outputs[0])
    attrs = node.attrs
    if attrs["group"] != 1 or any(d != 1 for d in attrs["dilations"]) or not w.is_const:
        raise UnsupportedError(f"node '{node.name}' (ConvTranspose): TFLite's TRANSPOSE_CONV takes constant "
                               "weights, one group and no dilation")
    if x.dtype is not DType.FLOAT32:
        raise UnsupportedError(f"node '{node.name}' (ConvTranspose): only float ConvTranspose is emitted")
    _, m, kh, kw = w.shape
    n, _, h, wd = x.shape
    sh, sw = attrs["strides"]
    full = (n, (h - 1) * sh + kh + attrs["output_padding"][0], (wd - 1) * sw + kw + attrs["output_padding"][1], m)
    pt, pl, pb, pr = attrs["pads"]
    cropped = any(attrs["pads"])
    out = e.temp(f"{node.outputs[0]}/full", y.dtype, full) if cropped else e.define(node.outputs[0], NHWC)
    weight = e.weight(node, w.const.transpose(1, 2, 3, 0), w, 0)
    e.fb.operator(Op.TRANSPOSE_CONV, [e.int32(full, "output_shape"), weight, e.read(node.inputs[0], NHWC), e.bias(node, m)],
                  [out], _options(schema.TransposeConvOptionsT, padding=schema.Padding.VALID, strideH=sh, strideW=sw,
                                  fusedActivationFunction=Act.NONE))
    if cropped:
        begin = [0, pt, pl, 0]
        end = [n, full[1] - pb, full[2] - pr, m]
        e.fb.operator(Op.STRIDED_SLICE, [out, e.int32(begin, "begin"), e.int32(end, "end"), e.int32([1] * 4, "strides")],
                      [e.define(node.outputs[0], NHWC)], schema.StridedSliceOptionsT())


@_handles("MatMul")
def _matmul(e: _Emitter, node: Node) -> None:
    w = e.value(node.inputs[1])
    if w.is_const and len(w.shape) == 2:
        _fully_connected(e, node)
    else:
        _batch_matmul(e, node)


def _fully_connected(e: _Emitter, node: Node) -> None:
    """x @ W[K, N] as FULLY_CONNECTED (weights [N, K]); int8 weights with a float input run LiteRT's
    hybrid kernel, which quantizes each input row asymmetrically like edgepack's dynamic int8."""
    a, w = node.inputs[0], e.value(node.inputs[1])
    x = e.value(a)
    weight = w.const
    if a in e.feature_order:
        weight = weight[e.feature_order[a]]       # the flatten kept NHWC order: follow it in the rows
        index = e.stored[a][0]
    else:
        index = e.read(a)
    act, clip = e.fused(node.attrs)
    hybrid = w.dtype is DType.INT8 and x.dtype is DType.FLOAT32
    y = e.value(node.outputs[0])
    out = e.temp(f"{node.outputs[0]}/pre_clip", y.dtype, y.shape, y.quant) if clip else e.define(node.outputs[0])
    options = _options(schema.FullyConnectedOptionsT, fusedActivationFunction=act, keepNumDims=True,
                       asymmetricQuantizeInputs=hybrid)
    e.fb.operator(Op.FULLY_CONNECTED, [index, e.weight(node, weight.T, w, 0), e.bias(node, w.shape[1])], [out],
                  options)
    if clip:
        e.clip_to(out, clip, node.outputs[0], _identity(len(y.shape)))


def _batch_matmul(e: _Emitter, node: Node) -> None:
    a, b, y = e.value(node.inputs[0]), e.value(node.inputs[1]), e.value(node.outputs[0])
    if a.dtype is not DType.FLOAT32 or b.dtype is not DType.FLOAT32:
        raise UnsupportedError(f"node '{node.name}' (MatMul): a non-constant or non-2-D weight is emitted in float "
                               f"only (got {a.dtype.name.lower()} x {b.dtype.name.lower()})")
    act, clip = e.fused(node.attrs)
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    post = has_bias or act != Act.NONE or clip
    out = e.temp(f"{node.outputs[0]}/product", y.dtype, y.shape) if post else e.define(node.outputs[0])
    e.fb.operator(Op.BATCH_MATMUL, [e.read(node.inputs[0]), e.read(node.inputs[1])], [out],
                  _options(schema.BatchMatMulOptionsT, adjX=False, adjY=False))
    if not post:
        return
    if clip:
        biased = e.temp(f"{node.outputs[0]}/biased", y.dtype, y.shape)
    else:
        biased = e.define(node.outputs[0])
    bias = e.read(node.inputs[2]) if has_bias else e.const(np.zeros((), np.float32), "zero")
    e.fb.operator(Op.ADD, [out, bias], [biased], _options(schema.AddOptionsT, fusedActivationFunction=act))
    if clip:
        e.clip_to(biased, clip, node.outputs[0], _identity(len(y.shape)))


# ---- elementwise ----------------------------------------------------------------------------------
@_handles(*_UNARY)
def _unary(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    e.fb.operator(_UNARY[node.op], e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)])


@_handles(*_BINARY)
def _binary(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    options = _options(_BINARY_OPTIONS[node.op], fusedActivationFunction=Act.NONE) \
        if node.op in _BINARY_OPTIONS else None
    e.fb.operator(_BINARY[node.op], e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)], options)


@_handles("Where")
def _where(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    e.fb.operator(Op.SELECT_V2, e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)],
                  schema.SelectV2OptionsT())


@_handles("Clip")
def _clip(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    bounds = (float(node.attrs["min"]), float(node.attrs["max"]))
    (x,) = e.operands(node.inputs, perm)
    if bounds in _CLIP_OP:
        e.fb.operator(_CLIP_OP[bounds], [x], [e.define(node.outputs[0], perm)])
    elif bounds[1] == math.inf:      # a floor only, e.g. clamp(min=eps) before a division
        e.fb.operator(Op.MAXIMUM, [x, e.const(np.array(bounds[0], np.float32), "clip_min")],
                      [e.define(node.outputs[0], perm)])
    elif bounds[0] == -math.inf:
        e.fb.operator(Op.MINIMUM, [x, e.const(np.array(bounds[1], np.float32), "clip_max")],
                      [e.define(node.outputs[0], perm)])
    else:
        e.clip_to(x, bounds, node.outputs[0], perm)


@_handles("HardSigmoid")
def _hard_sigmoid(e: _Emitter, node: Node) -> None:
    """clamp(alpha * x + beta, 0, 1) as MUL, ADD, RELU_0_TO_1."""
    perm = e.follow(node)
    y = e.value(node.outputs[0])
    shape = tuple(y.shape[a] for a in perm)
    (x,) = e.operands(node.inputs, perm)
    scaled = e.temp(f"{node.outputs[0]}/scaled", y.dtype, shape)
    shifted = e.temp(f"{node.outputs[0]}/shifted", y.dtype, shape)
    e.fb.operator(Op.MUL, [x, e.const(np.array(node.attrs["alpha"], np.float32), "alpha")], [scaled],
                  schema.MulOptionsT())
    e.fb.operator(Op.ADD, [scaled, e.const(np.array(node.attrs["beta"], np.float32), "beta")], [shifted],
                  schema.AddOptionsT())
    e.fb.operator(Op.RELU_0_TO_1, [shifted], [e.define(node.outputs[0], perm)])


@_handles("LeakyRelu")
def _leaky_relu(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    e.fb.operator(Op.LEAKY_RELU, e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)],
                  _options(schema.LeakyReluOptionsT, alpha=float(node.attrs["alpha"])))


@_handles("Gelu")
def _gelu(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    e.fb.operator(Op.GELU, e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)],
                  _options(schema.GeluOptionsT, approximate=node.attrs["approximate"] == "tanh"))


# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32 resolution of erf's range
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@_handles("Erf")
def _erf(e: _Emitter, node: Node) -> None:
    """TFLite has no ERF: erf(x) = sign(x) (1 - t (a1 + t (a2 + ... )) exp(-x^2)), t = 1 / (1 + p |x|)."""
    perm = e.follow(node)
    y = e.value(node.outputs[0])
    shape = tuple(y.shape[a] for a in perm)
    (x,) = e.operands(node.inputs, perm)
    f32 = lambda v, hint: e.const(np.array(v, np.float32), hint)  # noqa: E731
    tmp = lambda hint: e.temp(f"{node.outputs[0]}/{hint}", DType.FLOAT32, shape)  # noqa: E731
    ax, px, den, t, sq, neg, ex = (tmp(h) for h in ("abs", "px", "den", "t", "square", "neg_square", "exp"))
    e.fb.operator(Op.ABS, [x], [ax])
    e.fb.operator(Op.MUL, [ax, f32(_ERF_P, "erf_p")], [px], schema.MulOptionsT())
    e.fb.operator(Op.ADD, [px, f32(1.0, "one")], [den], schema.AddOptionsT())
    e.fb.operator(Op.DIV, [f32(1.0, "one"), den], [t], schema.DivOptionsT())
    poly = f32(_ERF_A[-1], "erf_a5")
    for i, coefficient in enumerate(reversed(_ERF_A[:-1])):
        scaled, summed = tmp(f"poly{i}_mul"), tmp(f"poly{i}_add")
        e.fb.operator(Op.MUL, [poly, t], [scaled], schema.MulOptionsT())
        e.fb.operator(Op.ADD, [scaled, f32(coefficient, f"erf_a{4 - i}")], [summed], schema.AddOptionsT())
        poly = summed
    series = tmp("series")
    e.fb.operator(Op.MUL, [poly, t], [series], schema.MulOptionsT())
    e.fb.operator(Op.MUL, [x, x], [sq], schema.MulOptionsT())
    e.fb.operator(Op.NEG, [sq], [neg])
    e.fb.operator(Op.EXP, [neg], [ex])
    tail, magnitude, sign = tmp("tail"), tmp("magnitude"), tmp("sign")
    e.fb.operator(Op.MUL, [series, ex], [tail], schema.MulOptionsT())
    e.fb.operator(Op.SUB, [f32(1.0, "one"), tail], [magnitude], schema.SubOptionsT())
    e.fb.operator(Op.SIGN, [x], [sign])
    e.fb.operator(Op.MUL, [sign, magnitude], [e.define(node.outputs[0], perm)], schema.MulOptionsT())


@_handles("Reciprocal")
def _reciprocal(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    (x,) = e.operands(node.inputs, perm)
    e.fb.operator(Op.DIV, [e.const(np.array(1.0, np.float32), "one"), x], [e.define(node.outputs[0], perm)],
                  schema.DivOptionsT())


@_handles("Cast")
def _cast(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    x, y = e.value(node.inputs[0]), e.value(node.outputs[0])
    e.fb.operator(Op.CAST, e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)],
                  _options(schema.CastOptionsT, inDataType=_TENSOR_TYPE[x.dtype], outDataType=_TENSOR_TYPE[y.dtype]))


# ---- normalisation --------------------------------------------------------------------------------
def _axis_last(e: _Emitter, node: Node) -> Perm:
    """A layout with the node's axis last (TFLite's softmaxes work on the last axis), preferring the
    input's own layout when it already has it."""
    axis, perm = node.attrs["axis"], e.layout(node.inputs[0])
    if perm[-1] == axis:
        return perm
    return tuple(a for a in range(len(perm)) if a != axis) + (axis,)


@_handles("Softmax")
def _softmax(e: _Emitter, node: Node) -> None:
    perm = _axis_last(e, node)
    e.fb.operator(Op.SOFTMAX, [e.read(node.inputs[0], perm)], [e.define(node.outputs[0], perm)],
                  _options(schema.SoftmaxOptionsT, beta=1.0))


@_handles("LogSoftmax")
def _log_softmax(e: _Emitter, node: Node) -> None:
    perm = _axis_last(e, node)
    e.fb.operator(Op.LOG_SOFTMAX, [e.read(node.inputs[0], perm)], [e.define(node.outputs[0], perm)],
                  schema.LogSoftmaxOptionsT())


@_handles("LayerNormalization")
def _layer_norm(e: _Emitter, node: Node) -> None:
    """(x - mean) * rsqrt(mean((x - mean)^2) + eps) * scale + bias over axes [axis, rank)."""
    y = e.value(node.outputs[0])
    rank = len(y.shape)
    axes = e.int32(list(range(node.attrs["axis"], rank)), "axes")
    stat_shape = tuple(d if i < node.attrs["axis"] else 1 for i, d in enumerate(y.shape))
    x = e.read(node.inputs[0])
    tmp = lambda hint, shape: e.temp(f"{node.outputs[0]}/{hint}", DType.FLOAT32, shape)  # noqa: E731
    mean, var, var_eps, inv = (tmp(h, stat_shape) for h in ("mean", "var", "var_eps", "rstd"))
    sq = tmp("squared_difference", y.shape)
    centered, normed = tmp("centered", y.shape), tmp("normalized", y.shape)
    keep = _options(schema.ReducerOptionsT, keepDims=True)
    e.fb.operator(Op.MEAN, [x, axes], [mean], keep)
    e.fb.operator(Op.SQUARED_DIFFERENCE, [x, mean], [sq])
    e.fb.operator(Op.MEAN, [sq, axes], [var], keep)
    e.fb.operator(Op.ADD, [var, e.const(np.array(node.attrs["epsilon"], np.float32), "epsilon")], [var_eps],
                  schema.AddOptionsT())
    e.fb.operator(Op.RSQRT, [var_eps], [inv])
    e.fb.operator(Op.SUB, [x, mean], [centered], schema.SubOptionsT())
    e.fb.operator(Op.MUL, [centered, inv], [normed], schema.MulOptionsT())
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    scaled = tmp("scaled", y.shape) if has_bias else e.define(node.outputs[0])
    e.fb.operator(Op.MUL, [normed, e.read(node.inputs[1])], [scaled], schema.MulOptionsT())
    if has_bias:
        e.fb.operator(Op.ADD, [scaled, e.read(node.inputs[2])], [e.define(node.outputs[0])], schema.AddOptionsT())


@_handles("LRN")
def _lrn(e: _Emitter, node: Node) -> None:
    """ONNX LRN over channels = TFLite's over the NHWC last axis, for odd sizes (a symmetric window)."""
    size = node.attrs["size"]
    if size % 2 == 0:
        raise UnsupportedError(f"node '{node.name}' (LRN): TFLite's window is symmetric; size {size} is not")
    options = _options(schema.LocalResponseNormalizationOptionsT, radius=(size - 1) // 2, bias=node.attrs["bias"],
                       alpha=node.attrs["alpha"] / size, beta=node.attrs["beta"])
    e.fb.operator(Op.LOCAL_RESPONSE_NORMALIZATION, [e.read(node.inputs[0], NHWC)],
                  [e.define(node.outputs[0], NHWC)], options)


# ---- pooling and reductions ------------------------------------------------------------------------
def _pool(e: _Emitter, node: Node, code: int) -> None:
    x, y = e.value(node.inputs[0]), e.value(node.outputs[0])
    attrs = node.attrs
    if any(d != 1 for d in attrs["dilations"]):
        raise UnsupportedError(f"node '{node.name}' ({node.op}): TFLite pools have no dilation")
    index = e.read(node.inputs[0], NHWC)
    padding = _padding(x.shape[2:], y.shape[2:], attrs["kernel"], attrs["strides"], attrs["dilations"],
                       attrs["pads"])
    include_pad = node.op == "AveragePool" and attrs["count_include_pad"] and any(attrs["pads"])
    if padding is None or include_pad:
        if node.op == "MaxPool":
            fill = -128 if x.dtype is DType.INT8 else float(np.finfo(np.float32).min)
            index = _explicit_pad(e, node, index, x, attrs["pads"], fill)
        elif attrs["count_include_pad"]:
            index = _explicit_pad(e, node, index, x, attrs["pads"], None)
        else:
            raise UnsupportedError(f"node '{node.name}' (AveragePool): pads {attrs['pads']} exclude padding from the "
                                   "average but are not TFLite's SAME padding")
        padding = schema.Padding.VALID
    options = _options(schema.Pool2DOptionsT, padding=padding, strideH=attrs["strides"][0],
                       strideW=attrs["strides"][1], filterHeight=attrs["kernel"][0], filterWidth=attrs["kernel"][1],
                       fusedActivationFunction=Act.NONE)
    e.fb.operator(code, [index], [e.define(node.outputs[0], NHWC)], options)


@_handles("MaxPool")
def _max_pool(e: _Emitter, node: Node) -> None:
    _pool(e, node, Op.MAX_POOL_2D)


@_handles("AveragePool")
def _average_pool(e: _Emitter, node: Node) -> None:
    _pool(e, node, Op.AVERAGE_POOL_2D)


def _reduced_layout(perm: Perm, axes: list[int], keepdims: bool) -> Perm:
    if keepdims:
        return perm
    return tuple(a - sum(r < a for r in axes) for a in perm if a not in axes)


@_handles(*_REDUCE)
def _reduce(e: _Emitter, node: Node) -> None:
    perm = e.layout(node.inputs[0])
    axes, keep = node.attrs["axes"], bool(node.attrs["keepdims"])
    stored_axes = sorted(perm.index(a) for a in axes)
    out_perm = _reduced_layout(perm, axes, keep)
    e.fb.operator(_REDUCE[node.op], [e.read(node.inputs[0], perm), e.int32(stored_axes, "axes")],
                  [e.define(node.outputs[0], out_perm or None)], _options(schema.ReducerOptionsT, keepDims=keep))


@_handles("ArgMax")
def _arg_max(e: _Emitter, node: Node) -> None:
    perm = e.layout(node.inputs[0])
    axis = node.attrs["axis"]
    options = _options(schema.ArgMaxOptionsT, outputType=schema.TensorType.INT64)
    if not node.attrs["keepdims"]:
        e.fb.operator(Op.ARG_MAX, [e.read(node.inputs[0], perm), e.int32([perm.index(axis)], "axis")],
                      [e.define(node.outputs[0], _reduced_layout(perm, [axis], False) or None)], options)
        return
    x = e.value(node.inputs[0])
    reduced = tuple(d for i, d in enumerate(x.shape) if i != axis)
    out = e.temp(f"{node.outputs[0]}/reduced", DType.INT64, reduced)
    e.fb.operator(Op.ARG_MAX, [e.read(node.inputs[0]), e.int32([axis], "axis")], [out], options)
    e.reshape(out, e.value(node.outputs[0]).shape, e.define(node.outputs[0]))


# ---- data movement --------------------------------------------------------------------------------
def _is_flatten_for_dense(e: _Emitter, node: Node) -> bool:
    """A [N, C, H, W] -> [N, C*H*W] flatten read only by fully connected layers (as their input):
    the flatten can keep NHWC order and the layers' weight rows follow it."""
    x, y = e.value(node.inputs[0]), e.value(node.outputs[0])
    users = e.consumers.get(node.outputs[0], [])
    return (len(x.shape) == 4 and len(y.shape) == 2 and y.shape[0] == x.shape[0]
            and node.outputs[0] not in e.graph.outputs and bool(users)
            and all(u.op == "MatMul" and u.inputs[0] == node.outputs[0] and u.inputs[1] != node.outputs[0]
                    and e.value(u.inputs[1]).is_const and len(e.value(u.inputs[1]).shape) == 2 for u in users))


@_handles("Reshape")
def _reshape(e: _Emitter, node: Node) -> None:
    x, y = e.value(node.inputs[0]), e.value(node.outputs[0])
    name = node.inputs[0]
    out = e.define(node.outputs[0])
    if x.is_const:
        e.reshape(e.read(name), y.shape, out)
        return
    index, perm = e.stored[name]
    in_order = not _moves_data(tuple(x.shape[a] for a in perm), tuple(perm.index(a) for a in range(len(perm))))
    if in_order:
        # the stored bytes are already in IR order: reshape straight from storage
        e.reshape(index, y.shape, out)
    elif perm == NHWC and _is_flatten_for_dense(e, node):
        n, c, h, w = x.shape
        e.reshape(index, y.shape, out)
        e.feature_order[node.outputs[0]] = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
    else:
        e.reshape(e.read(name), y.shape, out)


@_handles("Transpose")
def _transpose(e: _Emitter, node: Node) -> None:
    """A transpose composes with the stored layout: one TRANSPOSE (or a RESHAPE) from storage to the IR order
    of the output, which is the input in layout `perm`."""
    name, x = node.inputs[0], e.value(node.inputs[0])
    index, stored = (e.read(name), _identity(len(x.shape))) if x.is_const else e.stored[name]
    e.relayout(index, x.shape, stored, tuple(node.attrs["perm"]), x, out=e.define(node.outputs[0]))


@_handles("Concat")
def _concat(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    axis = perm.index(node.attrs["axis"])
    e.fb.operator(Op.CONCATENATION, e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)],
                  _options(schema.ConcatenationOptionsT, axis=axis, fusedActivationFunction=Act.NONE))


@_handles("Split")
def _split(e: _Emitter, node: Node) -> None:
    perm = e.layout(node.inputs[0])
    outs = [e.define(name, perm) for name in node.outputs]
    e.fb.operator(Op.SPLIT_V, [e.read(node.inputs[0], perm), e.int32(node.attrs["split"], "size_splits"),
                               e.int32(perm.index(node.attrs["axis"]), "axis")], outs,
                  _options(schema.SplitVOptionsT, numSplits=len(outs)))


@_handles("Slice")
def _slice(e: _Emitter, node: Node) -> None:
    perm = e.layout(node.inputs[0])
    starts, ends, steps = (node.attrs[k] for k in ("starts", "ends", "steps"))
    begin = [starts[a] for a in perm]
    end = [max(ends[a], 0) for a in perm]
    # a negative end is "past the beginning" of a negative-step slice: end_mask runs it to the edge
    end_mask = sum(1 << i for i, a in enumerate(perm) if ends[a] < 0)
    e.fb.operator(Op.STRIDED_SLICE, [e.read(node.inputs[0], perm), e.int32(begin, "begin"), e.int32(end, "end"),
                                     e.int32([steps[a] for a in perm], "strides")],
                  [e.define(node.outputs[0], perm)], _options(schema.StridedSliceOptionsT, endMask=end_mask))


@_handles("Gather")
def _gather(e: _Emitter, node: Node) -> None:
    table, indices = e.value(node.inputs[0]), e.value(node.inputs[1])
    if table.quant is not None and e.value(node.outputs[0]).dtype is DType.FLOAT32:
        _embedding_lookup(e, node)
        return
    axis = node.attrs["axis"]
    size = table.shape[axis]
    if indices.is_const:
        # IR indices may be negative (they wrap); TFLite's GATHER wants them in range
        index = e.const(np.where(indices.const < 0, indices.const + size, indices.const), indices.name)
    else:
        index = _wrapped_indices(e, node.inputs[1], size)
    e.fb.operator(Op.GATHER, [e.read(node.inputs[0]), index], [e.define(node.outputs[0])],
                  _options(schema.GatherOptionsT, axis=axis, batchDims=0))


def _wrapped_indices(e: _Emitter, name: str, size: int) -> int:
    """Run-time indices mod the axis size: negative ones wrap as in the IR."""
    value = e.value(name)
    out = e.temp(f"{name}/wrapped", value.dtype, value.shape)
    e.fb.operator(Op.FLOOR_MOD, [e.read(name), e.const(np.array(size, value.dtype.numpy), "axis_size")], [out])
    return out


def _embedding_lookup(e: _Emitter, node: Node) -> None:
    """An int8 table (scale per row) gathered into float: EMBEDDING_LOOKUP's hybrid kernel multiplies
    each gathered row by its scale, so the table stays int8 in the file and in memory."""
    table, indices, y = e.value(node.inputs[0]), e.value(node.inputs[1]), e.value(node.outputs[0])
    if table.dtype is not DType.INT8 or node.attrs["axis"] != 0:
        raise UnsupportedError(f"node '{node.name}' (Gather): TFLite takes int8 embedding tables along axis 0 only "
                               f"(got {table.dtype.name.lower()}, axis {node.attrs['axis']})")
    count = int(np.prod(indices.shape))
    flat = e.temp(f"{node.inputs[1]}/flat", DType.INT32, (count,))
    wrapped = e.const(np.where(indices.const < 0, indices.const + table.shape[0], indices.const), indices.name) \
        if indices.is_const else _wrapped_indices(e, node.inputs[1], table.shape[0])
    if indices.dtype is not DType.INT32:
        narrow = e.temp(f"{node.inputs[1]}/int32", DType.INT32, indices.shape)
        e.fb.operator(Op.CAST, [wrapped], [narrow], _options(schema.CastOptionsT, inDataType=_TENSOR_TYPE[indices.dtype],
                                                               outDataType=schema.TensorType.INT32))
        wrapped = narrow
    e.reshape(wrapped, (count,), flat)
    rows = e.temp(f"{node.outputs[0]}/rows", DType.FLOAT32, (count,) + table.shape[1:])
    e.fb.operator(Op.EMBEDDING_LOOKUP, [flat, e.read(node.inputs[0])], [rows])
    e.reshape(rows, y.shape, e.define(node.outputs[0]))


@_handles("Pad")
def _pad(e: _Emitter, node: Node) -> None:
    x = e.value(node.inputs[0])
    perm = e.layout(node.inputs[0])
    rank, pads = len(x.shape), node.attrs["pads"]
    paddings = e.int32([[pads[a], pads[a + rank]] for a in perm], "paddings")
    index, out = e.read(node.inputs[0], perm), e.define(node.outputs[0], perm)
    mode = node.attrs["mode"]
    if mode == "reflect":
        e.fb.operator(Op.MIRROR_PAD, [index, paddings], [out],
                      _options(schema.MirrorPadOptionsT, mode=schema.MirrorPadMode.REFLECT))
    elif mode != "constant":
        raise UnsupportedError(f"node '{node.name}' (Pad): TFLite has no '{mode}' padding")
    elif node.attrs["value"] == 0.0:
        e.fb.operator(Op.PAD, [index, paddings], [out], schema.PadOptionsT())
    else:
        value = np.array(node.attrs["value"], np.float32)
        if x.dtype is DType.INT8:
            value = quantize(value.reshape(1), x.quant, np.int8).reshape(())
        fill = e.const(value.astype(x.dtype.numpy), "pad_value", x.dtype, x.quant)
        e.fb.operator(Op.PADV2, [index, paddings, fill], [out], schema.PadV2OptionsT())


# (coordinate_transformation_mode, nearest_mode) -> (align_corners, half_pixel_centers) of TFLite's nearest
_NEAREST = {("asymmetric", "floor"): (False, False), ("half_pixel", "round_prefer_ceil"): (False, True),
            ("pytorch_half_pixel", "round_prefer_ceil"): (False, True),
            ("align_corners", "round_prefer_ceil"): (True, False)}
_LINEAR = {"asymmetric": (False, False), "half_pixel": (False, True), "pytorch_half_pixel": (False, True),
           "align_corners": (True, False)}


@_handles("Resize")
def _resize(e: _Emitter, node: Node) -> None:
    attrs, y = node.attrs, e.value(node.outputs[0])
    mode = attrs["coordinate_transformation_mode"]
    if attrs["mode"] == "nearest":
        flags, code, cls = _NEAREST.get((mode, attrs["nearest_mode"])), Op.RESIZE_NEAREST_NEIGHBOR, \
            schema.ResizeNearestNeighborOptionsT
    else:
        flags, code, cls = _LINEAR.get(mode), Op.RESIZE_BILINEAR, schema.ResizeBilinearOptionsT
    if flags is None or any(s != 1.0 for s in attrs["scales"][:2]):
        raise UnsupportedError(f"node '{node.name}' (Resize): no TFLite resize for mode {attrs['mode']}, "
                               f"{mode}, nearest_mode {attrs['nearest_mode']}, scales {attrs['scales']}")
    e.fb.operator(code, [e.read(node.inputs[0], NHWC), e.int32(y.shape[2:], "size")], [e.define(node.outputs[0], NHWC)],
                  _options(cls, alignCorners=flags[0], halfPixelCenters=flags[1]))


@_handles("Expand")
def _expand(e: _Emitter, node: Node) -> None:
    y = e.value(node.outputs[0])
    e.fb.operator(Op.BROADCAST_TO, [e.read(node.inputs[0], rank=len(y.shape)), e.int32(y.shape, "shape")],
                  [e.define(node.outputs[0])])


@_handles("Tile")
def _tile(e: _Emitter, node: Node) -> None:
    perm = e.layout(node.inputs[0])
    e.fb.operator(Op.TILE, [e.read(node.inputs[0], perm), e.int32([node.attrs["repeats"][a] for a in perm], "repeats")],
                  [e.define(node.outputs[0], perm)], schema.TileOptionsT())


@_handles("DepthToSpace")
def _depth_to_space(e: _Emitter, node: Node) -> None:
    """DCR is TFLite's DEPTH_TO_SPACE on NHWC; CRD is a reshape-transpose-reshape in the IR order."""
    b = node.attrs["blocksize"]
    if node.attrs["mode"] == "DCR":
        e.fb.operator(Op.DEPTH_TO_SPACE, [e.read(node.inputs[0], NHWC)], [e.define(node.outputs[0], NHWC)],
                      _options(schema.DepthToSpaceOptionsT, blockSize=b))
        return
    x, y = e.value(node.inputs[0]), e.value(node.outputs[0])
    n, c, h, w = x.shape
    split = (n, c // (b * b), b, b, h, w)
    blocks = e.reshape(e.read(node.inputs[0]), split, e.temp(f"{node.outputs[0]}/blocks", x.dtype, split, x.quant))
    moved = e.temp(f"{node.outputs[0]}/moved", x.dtype, (n, c // (b * b), h, b, w, b), x.quant)
    e.fb.operator(Op.TRANSPOSE, [blocks, e.int32((0, 1, 4, 2, 5, 3), "perm")], [moved], schema.TransposeOptionsT())
    e.reshape(moved, y.shape, e.define(node.outputs[0]))


# ---- quantization ---------------------------------------------------------------------------------
@_handles("Quantize", "Requantize")
def _quantize(e: _Emitter, node: Node) -> None:
    """float -> int8, and int8 -> int8 between parameters (TFLite's QUANTIZE does both)."""
    perm = e.follow(node)
    e.fb.operator(Op.QUANTIZE, e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)],
                  schema.QuantizeOptionsT())


@_handles("Dequantize")
def _dequantize(e: _Emitter, node: Node) -> None:
    perm = e.follow(node)
    e.fb.operator(Op.DEQUANTIZE, e.operands(node.inputs, perm), [e.define(node.outputs[0], perm)],
                  schema.DequantizeOptionsT())


@_handles("Lut")
def _lut(e: _Emitter, node: Node) -> None:
    """y = table[x + 128] exactly, as GATHER(table, CAST(x) + 128)."""
    perm = e.follow(node, node.inputs[:1])
    x, y = e.value(node.inputs[0]), e.value(node.outputs[0])
    shape = tuple(x.shape[a] for a in perm)
    wide = e.temp(f"{node.outputs[0]}/wide", DType.INT32, shape)
    index = e.temp(f"{node.outputs[0]}/index", DType.INT32, shape)
    e.fb.operator(Op.CAST, [e.read(node.inputs[0], perm)], [wide],
                  _options(schema.CastOptionsT, inDataType=schema.TensorType.INT8, outDataType=schema.TensorType.INT32))
    e.fb.operator(Op.ADD, [wide, e.const(np.array(128, np.int32), "lut_offset")], [index], schema.AddOptionsT())
    # the table carries the output's parameters: GATHER moves codes
    table = e.const(e.value(node.inputs[1]).const, node.inputs[1], DType.INT8, y.quant)
    e.fb.operator(Op.GATHER, [table, index], [e.define(node.outputs[0], perm)],
                  _options(schema.GatherOptionsT, axis=0, batchDims=0))


# ---- entry points ---------------------------------------------------------------------------------
def to_tflite(graph: Graph, manifest: dict[str, Any] | None = None) -> bytes:
    """The graph as a .tflite flatbuffer (int8 where the graph is quantized); `manifest` (the compile
    facts: source hash, profile, precisions) goes into the "edgepack" metadata."""
    return _Emitter(standard_ops(graph)).finish(manifest or {})   # TFLite has none of the native fused forms


def write_tflite(graph: Graph, path: str | Path, manifest: dict[str, Any] | None = None) -> int:
    """Write `graph` to `path` atomically; returns the file size."""
    data = to_tflite(graph, manifest)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def read_metadata(data: bytes) -> dict[str, Any]:
    """The "edgepack" metadata of a .tflite written here ({} for other files)."""
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_NAME.encode():
            buffer = model.Buffers(entry.Buffer())
            return json.loads(buffer.DataAsNumpy().tobytes())
    return {}
