"""ONNX importer: one function per op (and per opset where the op changed), into the canonical IR.

Shapes are fixed at import: graph inputs get static shapes (given by the caller, or read from the
model), every node whose inputs are all constant is evaluated right away with the numpy reference,
so shape arithmetic (Shape, Gather on shapes, Concat, Range, ConstantOfShape, Expand, Where on
constants, Cast of constants...) folds away and the IR only holds compute on run-time data. An op with
no handler is still accepted when all its inputs are constant: onnx's own reference evaluates it.
ONNX ops the IR lacks are decomposed here (IsNaN, GatherND, PRelu, ReduceL2, Pad "wrap"...).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import onnx
import onnx.inliner
from onnx import numpy_helper

from ..errors import UnsupportedError
from ..ir import DType, Graph, Node
from ..ir.shape_inference import broadcast, infer
from ..reference import run_node


class UnsupportedModelError(UnsupportedError):
    """The model uses something edgepack cannot import; the message names what and where."""


_ONNX_TO_DTYPE = {
    onnx.TensorProto.FLOAT: DType.FLOAT32,
    onnx.TensorProto.DOUBLE: DType.FLOAT32,   # run-time doubles are computed in float32
    onnx.TensorProto.FLOAT16: DType.FLOAT16,
    onnx.TensorProto.INT8: DType.INT8,
    onnx.TensorProto.UINT8: DType.UINT8,
    onnx.TensorProto.INT32: DType.INT32,
    onnx.TensorProto.INT64: DType.INT64,
    onnx.TensorProto.BOOL: DType.BOOL,
}

Handler = Callable[["OnnxImporter", onnx.NodeProto], None]
# op type -> list of (first opset, handler), newest last
_HANDLERS: dict[str, list[tuple[int, Handler]]] = {}


def handles(*op_types: str, since: int = 1):
    def register(fn: Handler) -> Handler:
        for op_type in op_types:
            _HANDLERS.setdefault(op_type, []).append((since, fn))
            _HANDLERS[op_type].sort(key=lambda entry: entry[0])
        return fn
    return register


def supported_ops() -> list[str]:
    return sorted(_HANDLERS)


def _select(op_type: str, opset: int) -> Handler | None:
    chosen = None
    for since, fn in _HANDLERS.get(op_type, []):
        if since <= opset:
            chosen = fn
    return chosen


def _dtype_of_onnx(elem_type: int, where: str) -> DType:
    if elem_type not in _ONNX_TO_DTYPE:
        raise UnsupportedModelError(f"{where}: ONNX element type "
                                    f"{onnx.TensorProto.DataType.Name(elem_type)} is not supported")
    return _ONNX_TO_DTYPE[elem_type]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _as_array(tensor: onnx.TensorProto, base_dir: str | None = None) -> np.ndarray:
    array = numpy_helper.to_array(tensor, base_dir or "")
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return np.asarray(array, order="C")  # not ascontiguousarray: it turns 0-d scalars into shape (1,)


class OnnxImporter:
    def __init__(self, model: onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]] | None = None,
                 base_dir: str | None = None) -> None:
        # exporters (torch dynamo, onnxscript) may leave model-local functions: inline them into plain nodes
        self.model = onnx.inliner.inline_local_functions(model) if model.functions else model
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        if not 7 <= self.opset <= 23:
            raise UnsupportedModelError(f"ONNX opset {self.opset} is not supported (7 to 23)")
        self.graph = Graph(model.graph.name or "model")
        self.input_shapes = dict(input_shapes or {})
        self.base_dir = base_dir
        self.alias: dict[str, str] = {}     # onnx name -> IR value name (for Identity, Dropout...)
        self.node: onnx.NodeProto | None = None

    # ---- helpers used by handlers ----------------------------------------------------------------
    def name(self, onnx_name: str) -> str:
        return self.alias.get(onnx_name, onnx_name)

    def has(self, index: int) -> bool:
        return index < len(self.node.input) and self.node.input[index] != ""

    def type_of(self, onnx_name: str) -> tuple[DType, tuple[int, ...]]:
        value = self.graph.values[self.name(onnx_name)]
        return value.dtype, value.shape

    def shape(self, index: int) -> tuple[int, ...]:
        return self.type_of(self.node.input[index])[1]

    def const(self, index: int, what: str = "input") -> np.ndarray:
        """The constant value of input `index`; an error if it is only known at run time."""
        value = self.graph.values[self.name(self.node.input[index])]
        if value.const is None:
            raise UnsupportedModelError(
                f"node '{self.node.name}' ({self.node.op_type}): {what} '{self.node.input[index]}' must be "
                "constant once input shapes are fixed (edgepack compiles static shapes)")
        return value.const

    def optional_const(self, index: int, default: Any) -> Any:
        return self.const(index) if self.has(index) else default

    def attrs(self) -> dict[str, Any]:
        out = {}
        for attr in self.node.attribute:
            out[attr.name] = onnx.helper.get_attribute_value(attr)
        return out

    def fail(self, message: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"node '{self.node.name}' ({self.node.op_type}): {message}")

    def set_const(self, onnx_name: str, array: np.ndarray) -> None:
        array = np.asarray(array, order="C")
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        self.graph.add_value(onnx_name, DType.from_numpy(array.dtype), array.shape, array)
        self.alias.pop(onnx_name, None)

    def emit(self, op: str, inputs: list[str], attrs: dict[str, Any] | None = None,
             outputs: list[str] | None = None, out_shapes: list[tuple[int, ...]] | None = None,
             name: str | None = None) -> list[str]:
        """Add an IR node; fold it right away when every input is constant. Inputs are IR names."""
        attrs = dict(attrs or {})
        if outputs is None:
            outputs = [self.graph.unique_name(f"{self.node.output[0]}__{op.lower()}")]
        values = [self.graph.values[n] if n else None for n in inputs]
        in_types = [(v.dtype, v.shape) if v is not None else None for v in values]
        try:
            out_types = infer(op, attrs, in_types, out_shapes)
        except (ValueError, IndexError, KeyError, TypeError) as err:
            raise self.fail(f"shape inference failed: {err}") from None
        if all(v is None or v.is_const for v in values):
            arrays = run_node(op, attrs, [v.const if v is not None else None for v in values],
                              [t[1] for t in out_types])
            for out, array in zip(outputs, arrays):
                self.set_const(out, array)
            return outputs
        for out, (dtype, shape) in zip(outputs, out_types):
            self.graph.add_value(out, dtype, shape)
            self.alias.pop(out, None)
        node_name = name or self.graph_node_name(op)
        self.graph.nodes.append(Node(op, node_name, list(inputs), list(outputs), attrs))
        return outputs

    def graph_node_name(self, op: str) -> str:
        base = self.node.name or f"{self.node.op_type}_{self.node.output[0]}"
        taken = self._node_names
        candidate = base if base not in taken else f"{base}/{op.lower()}"
        i = 1
        while candidate in taken:
            candidate = f"{base}/{op.lower()}_{i}"
            i += 1
        taken.add(candidate)
        return candidate

    def out(self, index: int = 0) -> list[str]:
        return [self.node.output[index]]

    def alias_output(self, source_ir_name: str, index: int = 0) -> None:
        self.alias[self.node.output[index]] = source_ir_name

    def reshape(self, ir_input: str, shape: tuple[int, ...], output: str | None = None) -> str:
        if tuple(self.graph.values[ir_input].shape) == tuple(shape) and output is None:
            return ir_input
        return self.emit("Reshape", [ir_input], {}, [output] if output else None, [tuple(shape)])[0]

    # ---- the import ------------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.model.graph
        self._node_names: set[str] = set()
        for tensor in g.initializer:
            self.set_const(tensor.name, _as_array(tensor, self.base_dir))
        initializer_names = {t.name for t in g.initializer}
        unknown = set(self.input_shapes) - {i.name for i in g.input if i.name not in initializer_names}
        if unknown:
            raise UnsupportedModelError(f"input_shapes names {sorted(unknown)}, which are not inputs of the model "
                                        f"(inputs: {[i.name for i in g.input if i.name not in initializer_names]})")
        for inp in g.input:
            if inp.name in initializer_names:
                continue
            self._add_input(inp)
        for node in g.node:
            self._import_node(node)
        for out in g.output:
            name = self.name(out.name)
            if name not in self.graph.values:
                raise UnsupportedModelError(f"graph output '{out.name}' is never produced")
            value = self.graph.values[name]
            if value.is_const:
                raise UnsupportedModelError(f"graph output '{out.name}' is a constant; nothing to compute")
            if name in self.graph.inputs or name in self.graph.outputs:
                # an output must be produced by its own node: copy it
                self.node = onnx.helper.make_node("Identity", [name], [out.name], name=f"output_{out.name}")
                target = out.name if out.name not in self.graph.values else self.graph.unique_name(out.name)
                self.emit("Reshape", [name], {}, [target], [value.shape])
                name = target
            elif name != out.name:
                self._rename(name, out.name)
                name = out.name
            self.graph.outputs.append(name)
        self.graph.prune_values()
        self.graph.metadata["opset"] = self.opset
        return self.graph

    def _import_node(self, node: onnx.NodeProto) -> None:
        self.node = node
        for name in node.input:
            if name and self.name(name) not in self.graph.values:
                raise self.fail(f"input '{name}' is not defined before use")
        default_domain = node.domain in ("", "ai.onnx")
        handler = _select(node.op_type, self.opset) if default_domain else None
        if handler is not None:
            handler(self, node)
        elif default_domain and self._foldable():
            self._fold_with_onnx_reference()
        else:
            raise UnsupportedModelError(
                f"unsupported op '{node.op_type}'{' (domain ' + node.domain + ')' if node.domain else ''} "
                f"at node '{node.name or node.output[0]}' (on run-time data). "
                f"Supported ONNX ops: {', '.join(supported_ops())}")

    def _foldable(self) -> bool:
        # random ops have only constant inputs too, but must not be frozen into one draw
        if self.node.op_type.startswith("Random") or self.node.op_type in ("Bernoulli", "Multinomial"):
            return False
        return all(self.graph.values[self.name(n)].is_const for n in self.node.input if n)

    def _fold_with_onnx_reference(self) -> None:
        """Evaluate an op that has no handler (Mod, NonZero, Trilu... on shapes) with onnx.reference."""
        from onnx.reference import ReferenceEvaluator
        feeds = {n: self.graph.values[self.name(n)].const for n in self.node.input if n}
        try:
            arrays = ReferenceEvaluator(self.node, opsets={"": self.opset}).run(None, feeds)
        except Exception as err:  # the reference raises whatever numpy raises
            raise self.fail(f"has no edgepack handler and evaluating it on its constant inputs failed: {err}") \
                from None
        for name, array in zip(self.node.output, arrays):
            if name:
                self.set_const(name, np.asarray(array))

    def _rename(self, old: str, new: str) -> None:
        value = self.graph.values.pop(old)
        value.name = new
        self.graph.values[new] = value
        for node in self.graph.nodes:
            node.inputs = [new if n == old else n for n in node.inputs]
            node.outputs = [new if n == old else n for n in node.outputs]
        self.graph.inputs = [new if n == old else n for n in self.graph.inputs]
        self.graph.outputs = [new if n == old else n for n in self.graph.outputs]
        for key, target in self.alias.items():
            if target == old:
                self.alias[key] = new

    def _add_input(self, inp: onnx.ValueInfoProto) -> None:
        tensor_type = inp.type.tensor_type
        dtype = _dtype_of_onnx(tensor_type.elem_type, f"input '{inp.name}'")
        model_dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                      for d in tensor_type.shape.dim]
        if inp.name in self.input_shapes:
            shape = tuple(int(d) for d in self.input_shapes[inp.name])
            if len(shape) != len(model_dims) or any(m is not None and m != s for m, s in zip(model_dims, shape)):
                raise UnsupportedModelError(f"input '{inp.name}': shape {shape} does not fit the model's "
                                            f"{tuple(d if d else '?' for d in model_dims)}")
            if any(d <= 0 for d in shape):
                raise UnsupportedModelError(f"input '{inp.name}': shape {shape} must be positive")
        elif all(d is not None for d in model_dims):
            shape = tuple(model_dims)
        else:
            raise UnsupportedModelError(
                f"input '{inp.name}' has a dynamic shape {tuple(d if d else '?' for d in model_dims)}: "
                f"give it a static one, e.g. input_shapes={{'{inp.name}': (1, ...)}} "
                f"or --input-shape {inp.name}=1x...")
        self.graph.add_value(inp.name, dtype, shape)
        self.graph.inputs.append(inp.name)


def import_onnx(model: onnx.ModelProto | str | Path,
                input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Graph:
    """Import an ONNX model (object or path) into the IR with static shapes."""
    base_dir = None
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            raise FileNotFoundError(f"ONNX model '{path}' does not exist")
        data = path.read_bytes()
        try:
            model = onnx.load_model_from_string(data)
        except Exception as err:  # protobuf raises its own DecodeError
            raise UnsupportedModelError(f"'{path}' is not a valid ONNX model: {err}") from None
        base_dir = str(path.parent)
        digest = hashlib.sha256(data).hexdigest()
    else:
        digest = hashlib.sha256(model.SerializeToString()).hexdigest()
    graph = OnnxImporter(model, input_shapes, base_dir).run()
    graph.metadata["source_sha256"] = digest
    return graph


# =================================================================================================
# Op handlers. `imp.node` is the ONNX node; inputs are mapped through imp.name().
# =================================================================================================
def _inputs(imp: OnnxImporter) -> list[str]:
    return [imp.name(n) if n else "" for n in imp.node.input]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


# ---- constants and shapes ------------------------------------------------------------------------
@handles("Constant")
def constant_v1(imp, node):
    attrs = imp.attrs()
    if "value" in attrs:
        array = _as_array(attrs["value"], imp.base_dir)
    elif "value_float" in attrs:
        array = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        array = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        array = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        array = np.array(attrs["value_ints"], np.int64)
    else:
        raise imp.fail(f"unsupported Constant attribute {list(attrs)}")
    imp.set_const(node.output[0], array)


@handles("Shape")
def shape_v1(imp, node):
    shape = np.array(imp.shape(0), np.int64)
    attrs = imp.attrs()
    start, end = attrs.get("start", 0), attrs.get("end", None)
    imp.set_const(node.output[0], shape[start:end])


@handles("Size")
def size_v1(imp, node):
    imp.set_const(node.output[0], np.array(int(np.prod(imp.shape(0))), np.int64))


@handles("ConstantOfShape")
def constant_of_shape_v9(imp, node):
    shape = imp.const(0, "shape").astype(np.int64)
    attrs = imp.attrs()
    fill = _as_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    imp.set_const(node.output[0], np.full(tuple(shape), fill.reshape(-1)[0], dtype=fill.dtype))


@handles("Range")
def range_v11(imp, node):
    start, limit, delta = (imp.const(i) for i in range(3))
    imp.set_const(node.output[0], np.arange(start, limit, delta).astype(start.dtype))


@handles("Identity", "Dropout")
def identity_v1(imp, node):
    imp.alias_output(imp.name(node.input[0]))
    if len(node.output) > 1 and node.output[1]:
        imp.set_const(node.output[1], np.ones(imp.shape(0), bool))


# ---- compute ------------------------------------------------------------------------------------
def _conv_geometry(imp: OnnxImporter, kernel: tuple[int, int], spatial: tuple[int, int], ceil_mode: int = 0):
    attrs = imp.attrs()
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    auto_pad = _text(attrs.get("auto_pad", "NOTSET"))
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i in range(2):
            out = -(-spatial[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - spatial[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    # ONNX pads are [x1_begin, x2_begin, x1_end, x2_end] = [top, left, bottom, right]: the IR's order.
    if ceil_mode:
        for i in range(2):
            eff = dilations[i] * (kernel[i] - 1) + 1
            span = spatial[i] + pads[i] + pads[i + 2] - eff
            out_ceil = -(-span // strides[i]) + 1
            # the last window must start inside the input or the begin padding (ONNX / PyTorch rule)
            if (out_ceil - 1) * strides[i] >= spatial[i] + pads[i]:
                out_ceil -= 1
            extra = (out_ceil - 1) * strides[i] + eff - (spatial[i] + pads[i] + pads[i + 2])
            pads[i + 2] += max(0, extra)
    return strides, pads, dilations


def _require_2d(imp: OnnxImporter, rank: int) -> None:
    if rank != 4:
        raise imp.fail(f"only 2-D spatial (NCHW) inputs are supported, got rank {rank}")


@handles("Conv")
def conv_v1(imp, node):
    x, w, *rest = _inputs(imp)
    xshape, wshape = imp.shape(0), imp.shape(1)
    _require_2d(imp, len(xshape))
    strides, pads, dilations = _conv_geometry(imp, wshape[2:], xshape[2:])
    group = imp.attrs().get("group", 1)
    inputs = [x, w] + ([rest[0]] if rest and rest[0] else [])
    imp.emit("Conv", inputs, {"strides": strides, "pads": pads, "dilations": dilations, "group": group,
                              "activation": "none", "act_min": 0.0, "act_max": 0.0}, imp.out())


def _conv_transpose_pads(imp: OnnxImporter, spatial, kernel, strides, dilations, output_padding) -> list[int]:
    """Explicit [top, left, bottom, right] pads; output_shape and SAME auto_pad fix the total padding
    per axis from the wanted output size (ONNX ConvTranspose spec)."""
    attrs = imp.attrs()
    auto_pad = _text(attrs.get("auto_pad", "NOTSET"))
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    if "output_shape" in attrs:
        target = list(attrs["output_shape"])[-2:]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = [size * stride for size, stride in zip(spatial, strides)]
    else:
        return list(attrs.get("pads", [0, 0, 0, 0]))
    pads = [0, 0, 0, 0]
    for i in range(2):
        full = strides[i] * (spatial[i] - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1
        total = full - target[i]
        if total < 0:
            raise imp.fail(f"output size {target[i]} is larger than the full transposed convolution ({full}); "
                           "use output_padding")
        small, big = total // 2, total - total // 2
        pads[i], pads[i + 2] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    return pads


@handles("ConvTranspose")
def conv_transpose_v1(imp, node):
    x, w, *rest = _inputs(imp)
    xshape, wshape = imp.shape(0), imp.shape(1)
    _require_2d(imp, len(xshape))
    attrs = imp.attrs()
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    output_padding = list(attrs.get("output_padding", [0, 0]))
    pads = _conv_transpose_pads(imp, xshape[2:], wshape[2:], strides, dilations, output_padding)
    inputs = [x, w] + ([rest[0]] if rest and rest[0] else [])
    imp.emit("ConvTranspose", inputs, {"strides": strides, "pads": pads, "dilations": dilations,
                                       "group": attrs.get("group", 1), "output_padding": output_padding},
             imp.out())


_NO_ACT = {"activation": "none", "act_min": 0.0, "act_max": 0.0}


@handles("MatMul")
def matmul_v1(imp, node):
    a, b = _inputs(imp)
    ashape, bshape = imp.shape(0), imp.shape(1)
    squeeze_a, squeeze_b = len(ashape) == 1, len(bshape) == 1
    if squeeze_a:
        a = imp.reshape(a, (1,) + ashape)
    if squeeze_b:
        b = imp.reshape(b, bshape + (1,))
    if not (squeeze_a or squeeze_b):
        imp.emit("MatMul", [a, b], dict(_NO_ACT), imp.out())
        return
    (y,) = imp.emit("MatMul", [a, b], dict(_NO_ACT))
    shape = imp.graph.values[y].shape
    final = shape[:-2] + (() if squeeze_a else shape[-2:-1]) + (() if squeeze_b else shape[-1:])
    imp.reshape(y, final, node.output[0])


@handles("Gemm")
def gemm_v1(imp, node):
    a, b, *rest = _inputs(imp)
    attrs = imp.attrs()
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transA", 0):
        (a,) = imp.emit("Transpose", [a], {"perm": [1, 0]})
    if attrs.get("transB", 0):
        (b,) = imp.emit("Transpose", [b], {"perm": [1, 0]})
    if alpha != 1.0:
        (b,) = imp.emit("Mul", [b, imp.graph.add_const(np.array(alpha, np.float32), "alpha")])
    n = imp.graph.values[b].shape[1]
    bias = rest[0] if rest and rest[0] else ""
    if bias and beta != 1.0:
        (bias,) = imp.emit("Mul", [bias, imp.graph.add_const(np.array(beta, np.float32), "beta")])
    if bias and imp.graph.values[bias].is_const and imp.graph.values[bias].numel == n:
        bias = imp.graph.add_const(imp.graph.values[bias].const.reshape(n), f"{node.output[0]}_bias")
        imp.emit("MatMul", [a, b, bias], dict(_NO_ACT), imp.out())
    elif bias:
        (y,) = imp.emit("MatMul", [a, b], dict(_NO_ACT))
        imp.emit("Add", [y, bias], {}, imp.out())
    else:
        imp.emit("MatMul", [a, b], dict(_NO_ACT), imp.out())


# ---- elementwise --------------------------------------------------------------------------------
_SIMPLE_UNARY = ["Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal",
                 "HardSwish", "Not", "Floor", "Ceil"]


@handles(*_SIMPLE_UNARY)
def unary_v1(imp, node):
    imp.emit(node.op_type, _inputs(imp), {}, imp.out())


@handles("HardSigmoid")
def hard_sigmoid_v6(imp, node):
    attrs = imp.attrs()
    imp.emit("HardSigmoid", _inputs(imp), {"alpha": attrs.get("alpha", 0.2), "beta": attrs.get("beta", 0.5)},
             imp.out())


@handles("LeakyRelu")
def leaky_relu_v6(imp, node):
    imp.emit("LeakyRelu", _inputs(imp), {"alpha": imp.attrs().get("alpha", 0.01)}, imp.out())


@handles("Gelu", since=20)
def gelu_v20(imp, node):
    approximate = _text(imp.attrs().get("approximate", "none"))
    imp.emit("Gelu", _inputs(imp)[:1], {"approximate": approximate}, imp.out())


@handles("PRelu")
def prelu_v7(imp, node):
    """y = x < 0 ? slope * x : x, with a broadcast slope."""
    x, slope = _binary_operands(imp)
    value = imp.graph.values[x]
    zero = imp.graph.add_const(np.zeros((1,) * len(value.shape), value.dtype.numpy), "zero")
    (negative,) = imp.emit("Less", [x, zero])
    (scaled,) = imp.emit("Mul", [x, slope])
    imp.emit("Where", [negative, scaled, x], {}, imp.out())


@handles("IsNaN", since=9)
def is_nan_v9(imp, node):
    """NaN is the only value unequal to itself."""
    x = imp.name(node.input[0])
    (same,) = imp.emit("Equal", [x, x])
    imp.emit("Not", [same], {}, imp.out())


@handles("Clip")
def clip_v6(imp, node):
    attrs = imp.attrs()
    imp.emit("Clip", _inputs(imp)[:1], {"min": attrs.get("min", -3.4028234663852886e38),
                                        "max": attrs.get("max", 3.4028234663852886e38)}, imp.out())


@handles("Clip", since=11)
def clip_v11(imp, node):
    # exporters write the bounds as scalars or as one-element tensors
    lo = float(imp.const(1, "min").reshape(-1)[0]) if imp.has(1) else -np.inf
    hi = float(imp.const(2, "max").reshape(-1)[0]) if imp.has(2) else np.inf
    lo, hi = max(lo, -3.4028234663852886e38), min(hi, 3.4028234663852886e38)
    imp.emit("Clip", _inputs(imp)[:1], {"min": lo, "max": hi}, imp.out())


def _cast(imp: OnnxImporter, to: DType) -> None:
    x = imp.name(imp.node.input[0])
    if imp.graph.values[x].dtype == to:
        imp.alias_output(x)
        return
    imp.emit("Cast", [x], {"to": int(to)}, imp.out())


@handles("Cast")
def cast_v6(imp, node):
    _cast(imp, _dtype_of_onnx(imp.attrs()["to"], f"node '{node.name}'"))


@handles("CastLike", since=15)
def cast_like_v15(imp, node):
    _cast(imp, imp.type_of(node.input[1])[0])


def _binary_operands(imp: OnnxImporter) -> list[str]:
    """Inputs of a binary op with a constant operand cast to the other operand's dtype, as
    ONNX exporters sometimes leave a double or int constant next to float data."""
    names = _inputs(imp)[:2]
    values = [imp.graph.values[n] for n in names]
    if values[0].dtype != values[1].dtype:
        for i in (0, 1):
            other = values[1 - i]
            if values[i].is_const and not other.is_const:
                names[i] = imp.graph.add_const(values[i].const.astype(other.dtype.numpy), names[i])
    return names


@handles("Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "And", "Or")
def binary_v7(imp, node):
    imp.emit(node.op_type, _binary_operands(imp), {}, imp.out())


@handles("GreaterOrEqual", "LessOrEqual", since=12)
def compare_or_equal_v12(imp, node):
    """a >= b as (a > b) or (a == b): exact for NaN too, unlike not(a < b)."""
    operands = _binary_operands(imp)
    (strict,) = imp.emit("Greater" if node.op_type == "GreaterOrEqual" else "Less", operands)
    (equal,) = imp.emit("Equal", operands)
    imp.emit("Or", [strict, equal], {}, imp.out())


@handles("Max", "Min", "Sum", "Mean")
def variadic_v8(imp, node):
    op = {"Max": "Max", "Min": "Min", "Sum": "Add", "Mean": "Add"}[node.op_type]
    inputs = _inputs(imp)
    if len(inputs) == 1:
        imp.alias_output(inputs[0])
        return
    acc = inputs[0]
    for i, other in enumerate(inputs[1:]):
        last = i == len(inputs) - 2 and node.op_type != "Mean"
        (acc,) = imp.emit(op, [acc, other], {}, imp.out() if last else None)
    if node.op_type == "Mean":
        scale = imp.graph.add_const(np.array(1.0 / len(inputs), np.float32), "mean_scale")
        imp.emit("Mul", [acc, scale], {}, imp.out())


@handles("Where", since=9)
def where_v9(imp, node):
    imp.emit("Where", _inputs(imp), {}, imp.out())


# ---- normalisation ------------------------------------------------------------------------------
@handles("Softmax", "LogSoftmax")
def softmax_v1(imp, node):
    """Before opset 13 Softmax flattens to 2-D at `axis` (default 1) and normalises the tail."""
    (x,) = _inputs(imp)
    shape = imp.shape(0)
    axis = _axis(imp.attrs().get("axis", 1), len(shape))
    if axis == len(shape) - 1:
        imp.emit(node.op_type, [x], {"axis": axis}, imp.out())
        return
    flat = imp.reshape(x, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))
    (y,) = imp.emit(node.op_type, [flat], {"axis": 1})
    imp.reshape(y, shape, node.output[0])


@handles("Softmax", "LogSoftmax", since=13)
def softmax_v13(imp, node):
    axis = _axis(imp.attrs().get("axis", -1), len(imp.shape(0)))
    imp.emit(node.op_type, _inputs(imp), {"axis": axis}, imp.out())


@handles("LayerNormalization", since=17)
def layer_norm_v17(imp, node):
    attrs = imp.attrs()
    if len(node.output) > 1 and any(node.output[1:]):
        raise imp.fail("the Mean / InvStdDev outputs are not supported")
    axis = _axis(attrs.get("axis", -1), len(imp.shape(0)))
    inputs = _inputs(imp)[:3] if imp.has(2) else _inputs(imp)[:2]
    imp.emit("LayerNormalization", inputs, {"axis": axis, "epsilon": attrs.get("epsilon", 1e-5)}, imp.out())


@handles("BatchNormalization")
def batch_norm_v7(imp, node):
    """Inference BatchNormalization becomes y = x * a + b with per-channel constants; the fold pass
    then merges it into a preceding Conv/MatMul where there is one."""
    if imp.attrs().get("training_mode", 0):
        raise imp.fail("training_mode=1 (batch statistics) is not supported; export the model in eval mode")
    x = imp.name(node.input[0])
    scale, bias, mean, var = (imp.const(i, name) for i, name in
                              zip(range(1, 5), ("scale", "bias", "mean", "var")))
    eps = imp.attrs().get("epsilon", 1e-5)
    a = (scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps))
    b = bias.astype(np.float64) - mean.astype(np.float64) * a
    rank = len(imp.shape(0))
    channel_shape = (-1,) + (1,) * (rank - 2)
    a_name = imp.graph.add_const(a.astype(np.float32).reshape(channel_shape), f"{node.output[0]}_bn_scale")
    b_name = imp.graph.add_const(b.astype(np.float32).reshape(channel_shape), f"{node.output[0]}_bn_shift")
    (scaled,) = imp.emit("Mul", [x, a_name])
    imp.emit("Add", [scaled, b_name], {}, imp.out())


@handles("LRN")
def lrn_v1(imp, node):
    attrs = imp.attrs()
    imp.emit("LRN", _inputs(imp), {"size": attrs["size"], "alpha": attrs.get("alpha", 1e-4),
                                   "beta": attrs.get("beta", 0.75), "bias": attrs.get("bias", 1.0)}, imp.out())


# ---- pooling and reductions ---------------------------------------------------------------------
@handles("MaxPool", "AveragePool")
def pool_v1(imp, node):
    shape = imp.shape(0)
    _require_2d(imp, len(shape))
    attrs = imp.attrs()
    if len(node.output) > 1 and node.output[1]:
        raise imp.fail("MaxPool indices output is not supported")
    kernel = list(attrs["kernel_shape"])
    ceil_mode = attrs.get("ceil_mode", 0)
    strides, pads, dilations = _conv_geometry(imp, kernel, shape[2:], ceil_mode)
    ir_attrs = {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations}
    x = imp.name(node.input[0])
    if node.op_type == "AveragePool" and kernel == list(shape[2:]) and not any(pads) and dilations == [1, 1]:
        # One window over the whole plane (ResNet's final 7x7 pool) is GlobalAveragePool: the
        # reduction kernel averages a contiguous plane, the pooling kernel walks one window tap by tap.
        imp.emit("ReduceMean", [x], {"axes": [2, 3], "keepdims": 1}, imp.out())
        return
    if node.op_type == "AveragePool":
        count_include_pad = attrs.get("count_include_pad", 0)
        if count_include_pad and ceil_mode:
            x, ir_attrs["pads"] = _pad_counted_cells(imp, x, kernel, shape[2:])
            count_include_pad = 0
        ir_attrs["count_include_pad"] = count_include_pad
    imp.emit(node.op_type, [x], ir_attrs, imp.out())


def _pad_counted_cells(imp: OnnxImporter, x: str, kernel: list[int], spatial) -> tuple[str, list[int]]:
    """AveragePool with count_include_pad and ceil_mode counts the padding cells but not the cells a
    window hangs past them (ONNX and PyTorch agree). So: zero-pad explicitly, then pool that without
    counting pads; the pool keeps only the ceil_mode overhang as pads. Returns (input, pool pads)."""
    _, explicit, _ = _conv_geometry(imp, kernel, spatial, 0)
    _, full, _ = _conv_geometry(imp, kernel, spatial, 1)
    if any(explicit):
        top, left, bottom, right = explicit
        (x,) = imp.emit("Pad", [x], {"pads": [0, 0, top, left, 0, 0, bottom, right], "mode": "constant",
                                     "value": 0.0})
    return x, [0, 0, full[2] - explicit[2], full[3] - explicit[3]]


@handles("GlobalAveragePool", "GlobalMaxPool")
def global_pool_v1(imp, node):
    rank = len(imp.shape(0))
    op = "ReduceMean" if node.op_type == "GlobalAveragePool" else "ReduceMax"
    imp.emit(op, _inputs(imp), {"axes": list(range(2, rank)), "keepdims": 1}, imp.out())


def _reduce_axes(imp: OnnxImporter, axes) -> list[int]:
    """Sorted non-negative axes; empty when noop_with_empty_axes asks for no reduction at all."""
    rank = len(imp.shape(0))
    if axes is None or len(axes) == 0:
        return [] if imp.attrs().get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(_axis(int(a), rank) for a in axes)


def _reduce_node(imp: OnnxImporter, axes) -> None:
    axes = _reduce_axes(imp, axes)
    x = imp.name(imp.node.input[0])
    if not axes:
        imp.alias_output(x)
        return
    imp.emit(imp.node.op_type, [x], {"axes": axes, "keepdims": imp.attrs().get("keepdims", 1)}, imp.out())


def _reduce_norm(imp: OnnxImporter, axes) -> None:
    """ReduceL1 = sum |x|, ReduceSumSquare = sum x*x, ReduceL2 = sqrt(sum x*x)."""
    op = imp.node.op_type
    axes = _reduce_axes(imp, axes)
    x = imp.name(imp.node.input[0])
    (y,) = imp.emit("Abs", [x]) if op == "ReduceL1" else imp.emit("Mul", [x, x])
    if axes:
        (y,) = imp.emit("ReduceSum", [y], {"axes": axes, "keepdims": imp.attrs().get("keepdims", 1)})
    if op == "ReduceL2":
        (y,) = imp.emit("Sqrt", [y])
    imp.alias_output(y)


@handles("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def reduce_v1(imp, node):
    _reduce_node(imp, imp.attrs().get("axes"))


@handles("ReduceSum", since=13)
def reduce_sum_v13(imp, node):
    _reduce_node(imp, imp.optional_const(1, None))


@handles("ReduceMean", "ReduceMax", "ReduceMin", since=18)
def reduce_v18(imp, node):
    _reduce_node(imp, imp.optional_const(1, None))


@handles("ReduceL1", "ReduceL2", "ReduceSumSquare")
def reduce_norm_v1(imp, node):
    _reduce_norm(imp, imp.attrs().get("axes"))


@handles("ReduceL1", "ReduceL2", "ReduceSumSquare", since=18)
def reduce_norm_v18(imp, node):
    _reduce_norm(imp, imp.optional_const(1, None))


@handles("ArgMax")
def arg_max_v1(imp, node):
    attrs = imp.attrs()
    if attrs.get("select_last_index", 0):
        raise imp.fail("select_last_index is not supported")
    imp.emit("ArgMax", _inputs(imp), {"axis": _axis(attrs.get("axis", 0), len(imp.shape(0))),
                                      "keepdims": attrs.get("keepdims", 1)}, imp.out())


# ---- data movement ------------------------------------------------------------------------------
def _reshape_target(imp: OnnxImporter, shape: np.ndarray, allow_zero: int = 0) -> tuple[int, ...]:
    current = imp.shape(0)
    target = [int(d) for d in shape]
    for i, d in enumerate(target):
        if d == 0 and not allow_zero:
            target[i] = current[i]
    if target.count(-1) > 1:
        raise imp.fail(f"reshape target {target} has more than one -1")
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(current)) // max(known, 1)
    if int(np.prod(target)) != int(np.prod(current)):
        raise imp.fail(f"cannot reshape {current} to {target}")
    return tuple(target)


@handles("Reshape")
def reshape_v1(imp, node):
    imp.emit("Reshape", _inputs(imp)[:1], {}, imp.out(), [_reshape_target(imp, np.array(imp.attrs()["shape"]))])


@handles("Reshape", since=5)
def reshape_v5(imp, node):
    target = _reshape_target(imp, imp.const(1, "shape"), imp.attrs().get("allowzero", 0))
    imp.emit("Reshape", _inputs(imp)[:1], {}, imp.out(), [target])


@handles("Flatten")
def flatten_v1(imp, node):
    shape = imp.shape(0)
    axis = _axis(imp.attrs().get("axis", 1), len(shape))
    target = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
    imp.emit("Reshape", _inputs(imp), {}, imp.out(), [target])


def _squeeze(imp: OnnxImporter, axes) -> None:
    shape = imp.shape(0)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = {_axis(int(a), len(shape)) for a in axes}
    for a in axes:
        if shape[a] != 1:
            raise imp.fail(f"cannot squeeze axis {a} of size {shape[a]}")
    imp.emit("Reshape", _inputs(imp)[:1], {}, imp.out(), [tuple(d for i, d in enumerate(shape) if i not in axes)])


def _unsqueeze(imp: OnnxImporter, axes) -> None:
    shape = list(imp.shape(0))
    rank = len(shape) + len(axes)
    for a in sorted(_axis(int(a), rank) for a in axes):
        shape.insert(a, 1)
    imp.emit("Reshape", _inputs(imp)[:1], {}, imp.out(), [tuple(shape)])


@handles("Squeeze")
def squeeze_v1(imp, node):
    _squeeze(imp, imp.attrs().get("axes"))


@handles("Squeeze", since=13)
def squeeze_v13(imp, node):
    _squeeze(imp, imp.optional_const(1, None))


@handles("Unsqueeze")
def unsqueeze_v1(imp, node):
    _unsqueeze(imp, imp.attrs()["axes"])


@handles("Unsqueeze", since=13)
def unsqueeze_v13(imp, node):
    _unsqueeze(imp, imp.const(1, "axes"))


@handles("Transpose")
def transpose_v1(imp, node):
    rank = len(imp.shape(0))
    perm = list(imp.attrs().get("perm", list(range(rank))[::-1]))
    if perm == list(range(rank)):
        imp.alias_output(imp.name(node.input[0]))
        return
    imp.emit("Transpose", _inputs(imp), {"perm": perm}, imp.out())


@handles("Concat")
def concat_v4(imp, node):
    axis = _axis(imp.attrs()["axis"], len(imp.shape(0)))
    inputs = [n for n in _inputs(imp) if n and imp.graph.values[n].numel > 0]
    if len(inputs) == 1:
        imp.alias_output(inputs[0])
        return
    imp.emit("Concat", inputs, {"axis": axis}, imp.out())


def _split(imp: OnnxImporter, split) -> None:
    shape = imp.shape(0)
    axis = _axis(imp.attrs().get("axis", 0), len(shape))
    outputs = list(imp.node.output)
    if split is None:
        count = imp.attrs().get("num_outputs", len(outputs))
        size = -(-shape[axis] // count)
        split = [min(size, shape[axis] - i * size) for i in range(count)]
    split = [int(s) for s in split]
    if sum(split) != shape[axis]:
        raise imp.fail(f"split sizes {split} do not add up to {shape[axis]}")
    imp.emit("Split", _inputs(imp)[:1], {"axis": axis, "split": split}, outputs)


@handles("Split")
def split_v2(imp, node):
    _split(imp, imp.attrs().get("split"))


@handles("Split", since=13)
def split_v13(imp, node):
    _split(imp, imp.optional_const(1, None))


def _slice(imp: OnnxImporter, starts, ends, axes, steps) -> None:
    shape = imp.shape(0)
    rank = len(shape)
    full_starts, full_ends, full_steps = [0] * rank, list(shape), [1] * rank
    axes = list(range(len(starts))) if axes is None else [_axis(int(a), rank) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    for axis, start, end, step in zip(axes, starts, ends, steps):
        start, end, step, dim = int(start), int(end), int(step), shape[axis]
        if step == 0:
            raise imp.fail("slice step 0")
        s, e, st = slice(start, end, step).indices(dim)
        if len(range(s, e, st)) == 0:
            s, e, st = 0, 0, 1   # one canonical empty slice (indices() may give start -1 here)
        # keep the python semantics, stored without None: an end of -1 means "through index 0"
        full_starts[axis], full_ends[axis], full_steps[axis] = s, e if e >= 0 else -1, st
    imp.emit("Slice", _inputs(imp)[:1], {"starts": full_starts, "ends": full_ends, "steps": full_steps},
             imp.out())


@handles("Slice")
def slice_v1(imp, node):
    attrs = imp.attrs()
    _slice(imp, attrs["starts"], attrs["ends"], attrs.get("axes"), None)


@handles("Slice", since=10)
def slice_v10(imp, node):
    _slice(imp, imp.const(1, "starts"), imp.const(2, "ends"), imp.optional_const(3, None),
           imp.optional_const(4, None))


@handles("Gather")
def gather_v1(imp, node):
    axis = _axis(imp.attrs().get("axis", 0), len(imp.shape(0)))
    data, indices = _inputs(imp)
    if imp.graph.values[indices].is_const:
        const = imp.graph.values[indices].const
        size = imp.shape(0)[axis]
        if np.any(const < -size) or np.any(const >= size):
            raise imp.fail(f"constant indices out of range for axis size {size}")
    imp.emit("Gather", [data, indices], {"axis": axis}, imp.out())


def _checked_indices(imp: OnnxImporter, indices: np.ndarray, size) -> np.ndarray:
    """Constant indices with negatives wrapped; out-of-range ones are an import error."""
    indices = indices.astype(np.int64)
    if np.any(indices < -np.asarray(size)) or np.any(indices >= np.asarray(size)):
        raise imp.fail(f"constant indices out of range for axis size {size}")
    return np.where(indices < 0, indices + size, indices)


def _gather_flat(imp: OnnxImporter, lead_dims: int, linear: np.ndarray) -> None:
    """Gather rows of the data, its first `lead_dims` axes flattened into one, at `linear` positions."""
    shape = imp.shape(0)
    flat = imp.reshape(imp.name(imp.node.input[0]), (int(np.prod(shape[:lead_dims])),) + shape[lead_dims:])
    index = imp.graph.add_const(linear.astype(np.int64), f"{imp.node.output[0]}_indices")
    imp.emit("Gather", [flat, index], {"axis": 0}, imp.out())


@handles("GatherElements", since=11)
def gather_elements_v11(imp, node):
    """With constant indices, GatherElements is a Gather from the flattened data at linear positions."""
    shape = imp.shape(0)
    axis = _axis(imp.attrs().get("axis", 0), len(shape))
    indices = _checked_indices(imp, imp.const(1, "indices"), shape[axis])
    coords = list(np.indices(indices.shape))
    coords[axis] = indices
    _gather_flat(imp, len(shape), np.ravel_multi_index(coords, shape))


@handles("GatherND", since=11)
def gather_nd_v11(imp, node):
    """With constant indices, GatherND is a Gather from the data with its first batch_dims + k axes
    flattened; each index tuple (with its batch position in front) becomes one linear index."""
    shape = imp.shape(0)
    batch_dims = imp.attrs().get("batch_dims", 0)
    indices = imp.const(1, "indices")
    k = indices.shape[-1]
    lead = indices.shape[:-1]
    indices = _checked_indices(imp, indices, np.array(shape[batch_dims:batch_dims + k]))
    batch = np.indices(lead[:batch_dims]).reshape((batch_dims,) + lead[:batch_dims] + (1,) * (len(lead) - batch_dims))
    coords = [np.broadcast_to(b, lead) for b in batch] + [indices[..., j] for j in range(k)]
    _gather_flat(imp, batch_dims + k, np.ravel_multi_index(coords, shape[:batch_dims + k]))


@handles("Expand", since=8)
def expand_v8(imp, node):
    target = tuple(int(d) for d in imp.const(1, "shape"))
    out_shape = broadcast(imp.shape(0), target)
    if out_shape == imp.shape(0):
        imp.alias_output(imp.name(node.input[0]))
        return
    imp.emit("Expand", _inputs(imp)[:1], {}, imp.out(), [out_shape])


@handles("Tile", since=6)
def tile_v6(imp, node):
    imp.emit("Tile", _inputs(imp)[:1], {"repeats": [int(r) for r in imp.const(1, "repeats")]}, imp.out())


def _slice_all(imp: OnnxImporter, x: str, starts: list[int], ends: list[int]) -> str:
    return imp.emit("Slice", [x], {"starts": starts, "ends": ends, "steps": [1] * len(starts)})[0]


def _pad_wrap(imp: OnnxImporter, x: str, pads: list[int]) -> str:
    """Wrap padding: per axis, concatenate the input's tail, the input and its head."""
    rank = len(pads) // 2
    for axis in range(rank):
        before, after = pads[axis], pads[axis + rank]
        shape = list(imp.graph.values[x].shape)
        if before > shape[axis] or after > shape[axis]:
            raise imp.fail(f"wrap padding ({before}, {after}) is larger than axis {axis} of size {shape[axis]}")
        parts = [x]
        if before:
            starts = [0] * rank
            starts[axis] = shape[axis] - before
            parts.insert(0, _slice_all(imp, x, starts, shape))
        if after:
            ends = list(shape)
            ends[axis] = after
            parts.append(_slice_all(imp, x, [0] * rank, ends))
        if len(parts) > 1:
            (x,) = imp.emit("Concat", parts, {"axis": axis})
    return x


def _pad(imp: OnnxImporter, pads, mode, value) -> None:
    """Positive pads become an IR Pad (or concatenations for "wrap"); negative pads crop with a Slice."""
    mode = _text(mode)
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise imp.fail(f"pad mode '{mode}' is not supported (constant, reflect, edge, wrap)")
    pads = [int(p) for p in pads]
    rank = len(pads) // 2
    x = imp.name(imp.node.input[0])
    grow = [max(p, 0) for p in pads]
    if mode == "wrap":
        x = _pad_wrap(imp, x, grow)
    elif any(grow):
        (x,) = imp.emit("Pad", [x], {"pads": grow, "mode": mode, "value": float(value)})
    crop = [max(-p, 0) for p in pads]
    if any(crop):
        shape = imp.graph.values[x].shape
        x = _slice_all(imp, x, crop[:rank], [d - c for d, c in zip(shape, crop[rank:])])
    imp.alias_output(x)


@handles("Pad", since=2)
def pad_v2(imp, node):
    attrs = imp.attrs()
    _pad(imp, attrs["pads"], attrs.get("mode", b"constant"), attrs.get("value", 0.0))


@handles("Pad", since=11)
def pad_v11(imp, node):
    pads = imp.const(1, "pads")
    value = imp.optional_const(2, np.zeros(1)).reshape(-1)
    if imp.has(3):
        rank = len(imp.shape(0))
        axes = [_axis(int(a), rank) for a in imp.const(3, "axes")]
        full = [0] * (2 * rank)
        for i, a in enumerate(axes):
            full[a], full[a + rank] = int(pads[i]), int(pads[i + len(axes)])
        pads = full
    _pad(imp, pads, imp.attrs().get("mode", b"constant"), value[0] if value.size else 0.0)


def _resize_geometry(imp: OnnxImporter, scales, sizes) -> tuple[list[float], tuple[int, ...]]:
    """Per-axis scales and the output shape. Since opset 18 `axes` names the axes that scales / sizes
    cover, and keep_aspect_ratio_policy turns sizes into one common scale."""
    shape = imp.shape(0)
    attrs = imp.attrs()
    axes = [_axis(int(a), len(shape)) for a in attrs.get("axes", range(len(shape)))]
    full_scales, out_shape = [1.0] * len(shape), list(shape)
    if sizes is not None and len(sizes):
        policy = _text(attrs.get("keep_aspect_ratio_policy", "stretch"))
        ratios = [int(s) / shape[a] for a, s in zip(axes, sizes)]
        if policy != "stretch":
            common = min(ratios) if policy == "not_larger" else max(ratios)
            ratios = [common] * len(axes)
            sizes = [int(np.round(shape[a] * common)) for a in axes]  # the spec rounds half to even
        for a, size, ratio in zip(axes, sizes, ratios):
            out_shape[a], full_scales[a] = int(size), ratio
    else:
        for a, scale in zip(axes, scales):
            out_shape[a], full_scales[a] = int(np.floor(shape[a] * float(scale))), float(scale)
    return full_scales, tuple(out_shape)


def _resize(imp: OnnxImporter, scales, sizes) -> None:
    shape = imp.shape(0)
    _require_2d(imp, len(shape))
    attrs = imp.attrs()
    mode = _text(attrs.get("mode", "nearest"))
    if mode not in ("nearest", "linear", "bilinear"):
        raise imp.fail(f"resize mode '{mode}' is not supported (nearest, linear)")
    scales, out_shape = _resize_geometry(imp, scales, sizes)
    if out_shape[:2] != shape[:2]:
        raise imp.fail("resizing the batch or channel axis is not supported")
    # before opset 11 (Upsample, Resize-10) coordinates were asymmetric and nearest rounded down
    legacy = imp.opset < 11
    coordinate_mode = "asymmetric" if legacy else _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
    if coordinate_mode not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
        raise imp.fail(f"coordinate_transformation_mode '{coordinate_mode}' is not supported "
                       "(half_pixel, pytorch_half_pixel, align_corners, asymmetric)")
    nearest_mode = "floor" if legacy else _text(attrs.get("nearest_mode", "round_prefer_floor"))
    if attrs.get("antialias", 0) and mode != "nearest" and any(s < 1 for s in scales):
        raise imp.fail("antialiased downscaling is not supported")
    imp.emit("Resize", _inputs(imp)[:1], {"mode": "linear" if mode == "bilinear" else mode,
                                          "coordinate_transformation_mode": coordinate_mode,
                                          "nearest_mode": nearest_mode, "scales": scales},
             imp.out(), [out_shape])


@handles("Upsample", since=7)
def upsample_v7(imp, node):
    _resize(imp, imp.attrs()["scales"], None)


@handles("Upsample", since=9)
def upsample_v9(imp, node):
    _resize(imp, imp.const(1, "scales"), None)


@handles("Resize", since=10)
def resize_v10(imp, node):
    _resize(imp, imp.const(1, "scales"), None)


@handles("Resize", since=11)
def resize_v11(imp, node):
    scales = imp.const(2, "scales") if imp.has(2) else None
    sizes = imp.const(3, "sizes") if imp.has(3) else None
    if scales is not None and scales.size == 0:
        scales = None
    _resize(imp, scales, sizes)


@handles("DepthToSpace")
def depth_to_space_v1(imp, node):
    attrs = imp.attrs()
    imp.emit("DepthToSpace", _inputs(imp), {"blocksize": attrs["blocksize"], "mode": _text(attrs.get("mode", "DCR"))},
             imp.out())
