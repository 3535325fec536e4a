"""The quantization pass: a float graph + a precision per node (+ calibration statistics) -> a
graph whose tensors carry int8 / int4 / float16 data and quantization parameters.

Precisions (docs/quantization.md):
  fp32          unchanged;
  fp16          Conv / MatMul weights stored as float16, compute in float32;
  int8-dynamic  MatMul weights int8 per output channel, activations quantized per row at run time;
                embedding Gather tables int8 per row;
  int8          static: Conv, MatMul, Add/Sub/Mul, pooling, ReduceMean, Concat, the data-movement
                ops and elementwise activations (as 256-entry tables) run on int8 with calibrated
                activation ranges; Quantize / Dequantize are inserted where int8 meets float;
  int4          MatMul weights and Gather tables block-wise int4 (weight-only).
A node that cannot take the precision asked for falls back (int8 -> int8-dynamic -> fp32, int4 ->
int8-dynamic) and the fallback is reported, never silent.

Int8 tensors get new names (`<name>::q`); a Dequantize writes the original float name wherever a
float consumer or a graph output needs it, so graph input/output names never change.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir import DType, Graph, Node, QuantParams, Value
from ..reference.ops import run_node
from ..reference.quantized import dequantize, quantize
from .observers import TensorStats, asymmetric_params, observed_range
from . import smooth
from .smooth import smooth_matmul_inputs

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic", "int4")
# Kept in float by default in static int8: their inputs or outputs have ranges that int8 cannot hold
# without large error (attention scores, normalisation statistics, GELU's input tail).
FRAGILE = frozenset({"Softmax", "LogSoftmax", "LayerNormalization", "Gelu", "Erf", "Div", "Pow", "Sqrt",
                     "Reciprocal", "Exp", "Log"})
SAME_PARAMS = frozenset({"MaxPool", "AveragePool", "Reshape", "Transpose", "Slice", "Split", "Pad", "Resize",
                         "DepthToSpace", "Expand", "Tile", "Gather"})
LUT_OPS = frozenset({"Relu", "Clip", "Sigmoid", "HardSwish", "HardSigmoid", "Tanh", "LeakyRelu"})
ARITHMETIC = frozenset({"Add", "Sub", "Mul"})
FOLLOWERS = SAME_PARAMS | LUT_OPS | ARITHMETIC | {"ReduceMean", "Concat"}
BLOCK_SIZES = (128, 64, 32)


@dataclass
class Decision:
    """What the pass did with one node, for the compile report."""
    node: str
    op: str
    asked: str
    used: str
    note: str = ""


@dataclass
class QuantizeResult:
    graph: Graph
    decisions: list[Decision] = field(default_factory=list)

    @property
    def fallbacks(self) -> list[Decision]:
        return [d for d in self.decisions if d.note.startswith("fallback")]


def _const_weight(graph: Graph, node: Node, index: int = 1) -> Value | None:
    if len(node.inputs) <= index or not node.inputs[index]:
        return None
    value = graph.values[node.inputs[index]]
    return value if value.is_const and value.dtype is DType.FLOAT32 else None


def _static_support(graph: Graph, node: Node) -> str:
    """'' when the node can run in static int8, else the reason it cannot."""
    op = node.op
    if op == "Conv":
        return "" if _const_weight(graph, node) is not None else "weights are not constant"
    if op == "MatMul":
        w = _const_weight(graph, node)
        return "" if w is not None and len(w.shape) == 2 else "second operand is not a constant 2-D weight"
    if op == "AveragePool" and node.attrs["count_include_pad"] and any(node.attrs["pads"]):
        return "count_include_pad with padding"
    if op == "Resize" and node.attrs["mode"] != "nearest":
        return "bilinear resize runs in float"
    if op == "Gather" and graph.values[node.inputs[0]].is_const:
        return "constant table: handled as a quantized embedding"
    if op in FOLLOWERS or op in ("Conv", "MatMul"):
        return ""
    return f"no int8 kernel for {op}"


def _symmetric_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=reduce_axes).astype(np.float64)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def _int4_blocks(w: np.ndarray, axis: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Block-wise symmetric int4 with each block's scale chosen to minimise its squared error.

    With 16 levels the max-abs scale wastes range on one outlier; searching the scale over
    0.5..1.2 x max|w|/7 (clipping the rare largest values) lowers the error markedly: on
    all-MiniLM-L6-v2's embedding table it lifts the output cosine from 0.9955 to 0.9971."""
    moved = np.moveaxis(w, axis, -1)
    blocks = moved.reshape(moved.shape[:-1] + (moved.shape[-1] // block, block)).astype(np.float64)
    amax = np.abs(blocks).max(axis=-1)
    best_scale = np.where(amax > 0, amax / 7.0, 1.0)
    best_error = np.full(amax.shape, np.inf)
    for alpha in np.linspace(0.5, 1.2, 36):
        scale = np.where(amax > 0, alpha * amax / 7.0, 1.0)
        q = np.clip(np.rint(blocks / scale[..., None]), -8, 7)
        error = ((q * scale[..., None] - blocks) ** 2).sum(axis=-1)
        better = error < best_error
        best_error = np.where(better, error, best_error)
        best_scale = np.where(better, scale, best_scale)
    scale = best_scale.astype(np.float32)
    q = np.clip(np.rint(blocks / scale[..., None]), -8, 7).astype(np.int8)
    q = np.moveaxis(q.reshape(moved.shape), -1, axis)
    return np.ascontiguousarray(q), np.ascontiguousarray(np.moveaxis(scale, -1, axis))


class _Quantizer:
    def __init__(self, graph: Graph, stats: dict[str, TensorStats] | None, observer: str) -> None:
        self.src = graph
        self.graph = copy.deepcopy(graph)
        self.stats = stats or {}
        self.observer = observer
        self.int8_name: dict[str, str] = {}          # float value -> its int8 twin
        self.quantized_input: dict[str, str] = {}    # float value -> Quantize output
        self.requantized: dict[tuple[str, float, int], str] = {}
        self.nodes: list[Node] = []
        self.needs_float: set[str] = set()           # int8-produced values a float consumer reads

    # ---- parameters ------------------------------------------------------------------------------
    def params_for(self, name: str) -> QuantParams:
        if name not in self.stats:
            raise ValueError(f"no calibration statistics for '{name}' (was the graph calibrated?)")
        lo, hi = observed_range(self.stats[name], self.observer)
        scale, zero = asymmetric_params(lo, hi)
        return QuantParams(np.array([scale], np.float32), np.array([zero], np.int32))

    def add_int8_value(self, float_name: str, quant: QuantParams, shape=None) -> str:
        name = self.graph.unique_name(f"{float_name}::q")
        value = self.graph.add_value(name, DType.INT8, shape or self.graph.values[float_name].shape)
        value.quant = quant
        return name

    # ---- domain crossings ------------------------------------------------------------------------
    def as_int8(self, name: str) -> str:
        if name in self.int8_name:
            return self.int8_name[name]
        if name not in self.quantized_input:
            q_name = self.add_int8_value(name, self.params_for(name))
            self.nodes.append(Node("Quantize", f"quantize/{name}", [name], [q_name], {}))
            self.quantized_input[name] = q_name
        return self.quantized_input[name]

    def as_float(self, name: str) -> str:
        if name in self.int8_name:
            self.needs_float.add(name)
        return name

    def requantize_to(self, name: str, quant: QuantParams) -> str:
        source = self.graph.values[name].quant
        if np.array_equal(source.scale, quant.scale) and np.array_equal(source.zero_point, quant.zero_point):
            return name
        key = (name, float(quant.scale[0]), int(quant.zero_point[0]))
        if key not in self.requantized:
            out = self.add_int8_value(name.split("::")[0], quant, self.graph.values[name].shape)
            self.nodes.append(Node("Requantize", f"requantize/{out}", [name], [out], {}))
            self.requantized[key] = out
        return self.requantized[key]

    # ---- weights ---------------------------------------------------------------------------------
    def const(self, array: np.ndarray, dtype: DType, hint: str, quant: QuantParams | None = None) -> str:
        name = self.graph.unique_name(hint)
        value = self.graph.add_value(name, dtype, array.shape, np.ascontiguousarray(array))
        value.quant = quant
        return name

    def int8_weight(self, node: Node, axis: int) -> tuple[str, np.ndarray]:
        w = self.graph.values[node.inputs[1]].const
        q, scale = _symmetric_per_channel(w, axis)
        quant = QuantParams(scale, np.zeros(scale.size, np.int32), axis)
        return self.const(q, DType.INT8, f"{node.name}/w_int8", quant), scale

    def int4_weight(self, array: np.ndarray, axis: int, hint: str) -> str | None:
        block = next((b for b in BLOCK_SIZES if array.shape[axis] % b == 0), None)
        if block is None:
            return None
        q, scale = _int4_blocks(array, axis, block)
        quant = QuantParams(scale.reshape(-1), np.zeros(scale.size, np.int32), axis, block)
        return self.const(q, DType.INT4, hint, quant)

    # ---- nodes -----------------------------------------------------------------------------------
    def emit_float(self, node: Node) -> None:
        node.inputs = [self.as_float(n) if n else n for n in node.inputs]
        self.nodes.append(node)

    def emit_fp16(self, node: Node) -> str:
        if node.op not in ("Conv", "MatMul") or _const_weight(self.graph, node) is None:
            self.emit_float(node)
            return "fp32", f"fallback: no float16 weights for {node.op}"
        w = self.graph.values[node.inputs[1]].const
        node.inputs[1] = self.const(w.astype(np.float16), DType.FLOAT16, f"{node.name}/w_fp16")
        self.emit_float(node)
        return "fp16", ""

    def emit_dynamic(self, node: Node) -> tuple[str, str]:
        if node.op == "Gather" and self.graph.values[node.inputs[0]].is_const \
                and self.graph.values[node.inputs[0]].dtype is DType.FLOAT32:
            table = self.graph.values[node.inputs[0]].const
            q, scale = _symmetric_per_channel(table, 0)
            node.inputs[0] = self.const(q, DType.INT8, f"{node.name}/table_int8",
                                        QuantParams(scale, np.zeros(scale.size, np.int32), 0))
            self.emit_float(node)
            return "int8-dynamic", ""
        w = _const_weight(self.graph, node)
        if node.op != "MatMul" or w is None or len(w.shape) != 2:
            self.emit_float(node)
            return "fp32", f"fallback: {node.op} has no dynamic int8 kernel"
        node.inputs[1], _ = self.int8_weight(node, axis=1)
        self.emit_float(node)
        return "int8-dynamic", ""

    def emit_int4(self, node: Node) -> tuple[str, str]:
        if node.op == "Gather" and self.graph.values[node.inputs[0]].is_const:
            table = self.graph.values[node.inputs[0]].const
            name = self.int4_weight(table, table.ndim - 1, f"{node.name}/table_int4")
            if name is not None:
                node.inputs[0] = name
                self.emit_float(node)
                return "int4", ""
        w = _const_weight(self.graph, node)
        if node.op == "MatMul" and w is not None and len(w.shape) == 2:
            name = self.int4_weight(w.const, 0, f"{node.name}/w_int4")
            if name is not None:
                node.inputs[1] = name
                self.emit_float(node)
                return "int4", ""
        used, note = self.emit_dynamic(node)
        return used, f"fallback to {used}: no int4 form for this {node.op}" + (f"; {note}" if note else "")

    def emit_int8(self, node: Node) -> tuple[str, str]:
        op = node.op
        out = node.outputs[0]
        if op in ("Conv", "MatMul"):
            x = self.as_int8(node.inputs[0])
            x_scale = float(self.graph.values[x].quant.scale[0])
            w_name, w_scale = self.int8_weight(node, 0 if op == "Conv" else 1)
            inputs = [x, w_name]
            if len(node.inputs) > 2 and node.inputs[2]:
                bias = self.graph.values[node.inputs[2]].const.astype(np.float64)
                bias_scale = (np.float64(x_scale) * w_scale.astype(np.float64))
                q = np.clip(np.rint(bias / bias_scale), -2**31, 2**31 - 1).astype(np.int32)
                quant = QuantParams(bias_scale.astype(np.float32), np.zeros(q.size, np.int32), 0)
                inputs.append(self.const(q, DType.INT32, f"{node.name}/bias_int32", quant))
            y = self.add_int8_value(out, self.params_for(out))
            self.nodes.append(Node(op, node.name, inputs, [y], node.attrs))
            self.int8_name[out] = y
            return "int8", ""
        if op in LUT_OPS:
            x = self.as_int8(node.inputs[0])
            in_q, out_q = self.graph.values[x].quant, self.params_for(out)
            codes = np.arange(-128, 128, dtype=np.int8)
            real = dequantize(codes, in_q)
            mapped = run_node(op, node.attrs, [real], [real.shape])[0]
            table = quantize(mapped, out_q, np.int8)
            y = self.add_int8_value(out, out_q)
            self.nodes.append(Node("Lut", node.name, [x, self.const(table, DType.INT8, f"{node.name}/table")], [y], {}))
            self.int8_name[out] = y
            return "int8", "as a 256-entry table"
        if op in ARITHMETIC:
            inputs = []
            for name in node.inputs:
                value = self.graph.values[name]
                if value.is_const:
                    lo, hi = float(min(value.const.min(), 0)), float(max(value.const.max(), 0))
                    scale, zero = asymmetric_params(lo, hi)
                    quant = QuantParams(np.array([scale], np.float32), np.array([zero], np.int32))
                    inputs.append(self.const(quantize(value.const, quant, np.int8), DType.INT8,
                                             f"{node.name}/const_int8", quant))
                else:
                    inputs.append(self.as_int8(name))
            y = self.add_int8_value(out, self.params_for(out))
            self.nodes.append(Node(op, node.name, inputs, [y], node.attrs))
            self.int8_name[out] = y
            return "int8", ""
        if op == "Concat":
            out_q = self.params_for(out)
            inputs = [self.requantize_to(self.as_int8(n), out_q) for n in node.inputs]
            y = self.add_int8_value(out, out_q)
            self.nodes.append(Node(op, node.name, inputs, [y], node.attrs))
            self.int8_name[out] = y
            return "int8", ""
        if op == "ReduceMean":
            x = self.as_int8(node.inputs[0])
            y = self.add_int8_value(out, self.params_for(out))
            self.nodes.append(Node(op, node.name, [x], [y], node.attrs))
            self.int8_name[out] = y
            return "int8", ""
        # same parameters in and out: pooling and data movement
        x = self.as_int8(node.inputs[0])
        quant = self.graph.values[x].quant
        outs = []
        for name in node.outputs:
            outs.append(self.add_int8_value(name, quant))
            self.int8_name[name] = outs[-1]
        self.nodes.append(Node(op, node.name, [x] + node.inputs[1:], outs, node.attrs))
        return "int8", ""

    def fragile_neighbour(self, node: Node) -> str:
        """The fragile op this node reads from or writes to directly, or ''.

        Next to LayerNorm, Softmax or GELU a per-tensor int8 range is the problem itself (the
        residual stream and GELU's input have a few huge values and many small ones): MatMuls there
        quantize their activations per row at run time instead, and cheap ops stay float."""
        for name in node.inputs:
            producer = self.producers.get(name)
            if producer is not None and producer.op in FRAGILE:
                return f"reads {producer.op} output"
        for consumer in self.consumers.get(node.outputs[0], []):
            if consumer.op in FRAGILE:
                return f"feeds {consumer.op}"
        return ""

    def wants_int8(self, node: Node, asked: str) -> tuple[bool, str]:
        reason = _static_support(self.graph, node)
        if reason:
            return False, reason
        fragile = self.fragile_neighbour(node)
        if fragile:
            return False, f"fragile neighbour: {fragile}"
        if node.op in FOLLOWERS:
            # cheap ops follow their inputs' domain: quantizing just for them only adds conversions
            data_inputs = node.inputs if node.op in ARITHMETIC | {"Concat"} else node.inputs[:1]
            if not any(n in self.int8_name for n in data_inputs if n):
                return False, "input is float"
        return True, ""

    def dynamic_matmuls(self, precisions: dict[str, str]) -> dict[str, str]:
        """The MatMuls that will run as dynamic int8 -> why: asked for it (''), or asked for int8 next to
        a fragile op."""
        names = {}
        for node in self.graph.nodes:
            asked = precisions.get(node.name, "fp32")
            if node.op != "MatMul" or _static_support(self.graph, node):
                continue
            fragile = self.fragile_neighbour(node) if asked == "int8" else ""
            if asked == "int8-dynamic" or fragile:
                names[node.name] = f"int8 with per-row activations: {fragile} (fragile)" if fragile else ""
        return names

    def run(self, precisions: dict[str, str]) -> QuantizeResult:
        self.producers, self.consumers = self.graph.producers(), self.graph.consumers()
        dynamic = self.dynamic_matmuls(precisions)
        smoothed, inserted = smooth_matmul_inputs(self.graph, self.stats, set(dynamic)) if self.stats else (set(), set())
        self.producers, self.consumers = self.graph.producers(), self.graph.consumers()
        decisions = []
        for node in self.graph.nodes:
            asked = precisions.get(node.name, "fp32")
            if asked not in PRECISIONS:
                raise ValueError(f"node '{node.name}': unknown precision '{asked}' (choose from {', '.join(PRECISIONS)})")
            if node.name in inserted:
                self.emit_float(node)
                continue
            if node.name in dynamic:
                used, note = self.emit_dynamic(node)
                note = note or dynamic[node.name]
                if node.name in smoothed:
                    note = (note + "; " if note else "") + "input smoothed (SmoothQuant)"
                decisions.append(Decision(node.name, node.op, asked, used, note))
                continue
            if asked == "int8":
                ok, reason = self.wants_int8(node, asked)
                if ok:
                    used, note = self.emit_int8(node)
                elif reason.startswith("constant table"):
                    used, note = self.emit_dynamic(node)
                    note = note or "embedding table int8 per row"
                else:
                    self.emit_float(node)
                    used = "fp32"
                    note = ("" if reason == "input is float" else f"kept in fp32: {reason}"
                            if reason.startswith("fragile") else f"fallback to fp32: {reason}")
            elif asked == "int8-dynamic":
                used, note = self.emit_dynamic(node)
            elif asked == "int4":
                used, note = self.emit_int4(node)
            elif asked == "fp16":
                used, note = self.emit_fp16(node)
            else:
                self.emit_float(node)
                used, note = "fp32", ""
            decisions.append(Decision(node.name, node.op, asked, used, note))
        self.finish()
        smooth.fold(self.graph, inserted)
        return QuantizeResult(self.graph, decisions)

    def finish(self) -> None:
        """Dequantize int8 values where float consumers or graph outputs read them."""
        self.needs_float.update(n for n in self.graph.outputs if n in self.int8_name)
        final = []
        position = {}
        for node in self.nodes:
            final.append(node)
            for out in node.outputs:
                position[out] = len(final)
        inserts = []
        for name in self.needs_float:
            q_name = self.int8_name[name]
            inserts.append((position[q_name], Node("Dequantize", f"dequantize/{name}", [q_name], [name], {})))
        for index, node in sorted(inserts, key=lambda item: -item[0]):
            final.insert(index, node)
        self.graph.nodes = final
        self.graph.prune_values()
        self.graph.verify()


def quantize_graph(graph: Graph, precisions: dict[str, str], stats: dict[str, TensorStats] | None = None,
                   observer: str = "minmax") -> QuantizeResult:
    """Rewrite `graph` with one precision per node name (missing names stay fp32)."""
    return _Quantizer(graph, stats, observer).run(precisions)
