"""Emit the IR as ONNX: float graphs as plain ONNX, quantized graphs as QDQ (QuantizeLinear /
DequantizeLinear around float ops, which ONNX Runtime fuses into its integer kernels).

The same quantization parameters the native artifact uses are written here, so ONNX Runtime and the
native runtime can be checked against each other (`edgepack verify`).

Two shapes are kept out of the emitted graph because ONNX Runtime (1.32, default optimization level)
rewrites them into a model it then refuses to load:
  * an int8 DequantizeLinear whose output feeds Reshape / Transpose / Squeeze / Unsqueeze / Slice /
    MaxPool (ORT's QDQPropagationTransformer inserts a QuantizeLinear after the op carrying
    `output_dtype=INT8`; QDQS8ToU8Transformer then turns that Q/DQ pair's zero point into uint8 and
    leaves the attribute: "output_dtype INT8 does not match y_zero_point type UINT8"). Such data
    movement is emitted on the int8 codes, before the DequantizeLinear (`_sink_dequantize`);
  * a MatMul with a constant 2-D weight, an input of rank > 2 and a bias Add: ORT's MatMulAddFusion
    makes it a Gemm with a Reshape of its own in front, which the propagation above then breaks. The
    MatMul is emitted on the input flattened to 2-D (again on the codes when it is int8) and the
    result reshaped back, so the fusion needs no Reshape.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir import DType, Graph, Node, QuantParams, Value
from ..passes import standard_ops
from ..quant.smooth import is_dynamic_matmul

OPSET = 21
_ONNX_TYPE = {DType.FLOAT32: TensorProto.FLOAT, DType.FLOAT16: TensorProto.FLOAT16, DType.INT8: TensorProto.INT8,
              DType.UINT8: TensorProto.UINT8, DType.INT32: TensorProto.INT32, DType.INT64: TensorProto.INT64,
              DType.BOOL: TensorProto.BOOL, DType.INT4: TensorProto.INT4}
_SAME_NAME = {"Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "HardSwish",
              "Not", "Floor", "Ceil", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Less", "Greater",
              "And", "Or", "Where", "Transpose", "Concat", "DepthToSpace", "LRN", "HardSigmoid", "LeakyRelu"}
# ops ORT's QDQ propagation moves a DequantizeLinear through (see the module doc)
_PROPAGATING = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "MaxPool"}
# int8 ops ONNX defines on int8 data directly (no Q/DQ needed)
_INT8_NATIVE = {"Reshape", "Transpose", "Slice", "Split", "Concat", "MaxPool", "Gather", "Expand", "Tile",
                "DepthToSpace", "Pad", "Resize"}


class _Emitter:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: set[str] = set(graph.values)
        self.dequantized: dict[str, str] = {}

    def fresh(self, hint: str) -> str:
        name, i = hint, 0
        while name in self.names:
            i += 1
            name = f"{hint}_{i}"
        self.names.add(name)
        return name

    def const(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(f"{outputs[0]}/{op}"), **attrs))

    # ---- quantization helpers ----------------------------------------------------------------------
    def qparams(self, quant: QuantParams, hint: str, zero_dtype) -> tuple[str, str]:
        scale = np.asarray(quant.scale, np.float32)
        zero = np.asarray(quant.zero_point).astype(zero_dtype)
        if scale.size == 1 and quant.axis is None:
            scale, zero = scale.reshape(()), zero.reshape(())
        return self.const(scale, f"{hint}/scale"), self.const(zero, f"{hint}/zero_point")

    def float_of(self, name: str) -> str:
        """A float view of an IR value: DequantizeLinear for quantized ones (once per value)."""
        value = self.graph.values[name]
        if value.dtype is DType.FLOAT32 or value.dtype in (DType.INT64, DType.INT32, DType.BOOL) and value.quant is None:
            return name
        if name in self.dequantized:
            return self.dequantized[name]
        if value.dtype is DType.FLOAT16:
            out = self.fresh(f"{name}/float")
            self.add("Cast", [name], [out], to=TensorProto.FLOAT)
        elif value.dtype is DType.INT4:
            out = self.dequantize_blocked(value)
        else:
            out = self.dequantize(name, value, self.fresh(f"{name}/dq"))
        self.dequantized[name] = out
        return out

    def dequantize(self, codes: str, value: Value, out: str) -> str:
        """DequantizeLinear of `codes` (int8 / uint8 / int32 data with `value`'s parameters) into `out`."""
        zero_type = {DType.INT8: np.int8, DType.UINT8: np.uint8, DType.INT32: np.int32}[value.dtype]
        scale, zero = self.qparams(value.quant, value.name, zero_type)
        attrs = {"axis": value.quant.axis} if value.quant.axis is not None and np.size(value.quant.scale) > 1 else {}
        self.add("DequantizeLinear", [codes, scale, zero], [out], **attrs)
        return out

    def dequantize_blocked(self, value: Value) -> str:
        quant = value.quant
        blocks = list(value.shape)
        blocks[quant.axis] //= quant.block_size
        scale = self.const(np.asarray(quant.scale, np.float32).reshape(blocks), f"{value.name}/scale")
        out = self.fresh(f"{value.name}/dq")
        self.add("DequantizeLinear", [value.name, scale], [out], axis=quant.axis, block_size=quant.block_size)
        return out

    def quantize_to(self, float_name: str, target: Value) -> None:
        scale, zero = self.qparams(target.quant, target.name, target.dtype.numpy)
        self.add("QuantizeLinear", [float_name, scale, zero], [target.name])

    # ---- ops -------------------------------------------------------------------------------------
    def emit(self, node: Node) -> None:
        outs = [self.graph.values[n] for n in node.outputs]
        int8_out = outs[0].dtype in (DType.INT8, DType.UINT8)
        op = node.op
        if op == "Quantize":
            self.quantize_to(node.inputs[0], outs[0])
            return
        if op == "Dequantize":
            value = self.graph.values[node.inputs[0]]
            if value.dtype in (DType.INT8, DType.UINT8, DType.INT32):
                self.dequantize(value.name, value, node.outputs[0])
            else:
                self.add("Identity", [self.float_of(node.inputs[0])], [node.outputs[0]])
            return
        if op == "Requantize":
            self.quantize_to(self.float_of(node.inputs[0]), outs[0])
            return
        if op == "Lut":
            # y = table[x + 128] exactly: Gather on the int8 table with the code as index
            index = self.fresh(f"{node.outputs[0]}/index")
            wide = self.fresh(f"{node.outputs[0]}/wide")
            self.add("Cast", [node.inputs[0]], [wide], to=TensorProto.INT32)
            self.add("Add", [wide, self.const(np.array(128, np.int32), "lut_offset")], [index])
            self.add("Gather", [node.inputs[1], index], [node.outputs[0]], axis=0)
            return
        if op == "MatMul" and is_dynamic_matmul(self.graph, node):
            self.dynamic_matmul(node)
            return
        if op == "MatMul" and self.flattened_matmul(node):
            return
        if int8_out and op in _INT8_NATIVE and all(
                self.graph.values[n].quant is None or np.array_equal(self.graph.values[n].quant.scale, outs[0].quant.scale)
                for n in node.inputs[:1]):
            self.emit_float_op(node, list(node.inputs), list(node.outputs))
            return
        inputs = [self.float_of(n) if n else "" for n in node.inputs]
        if int8_out:
            float_outs = [self.fresh(f"{n}/float") for n in node.outputs]
            self.emit_float_op(node, inputs, float_outs)
            for float_name, value in zip(float_outs, outs):
                self.quantize_to(float_name, value)
        else:
            self.emit_float_op(node, inputs, list(node.outputs))

    def dynamic_matmul(self, node: Node) -> None:
        """The native dynamic int8 MatMul in standard ONNX ops, step for step as the reference
        (reference/quantized.py: quantize_rows, matmul_dynamic) computes it: each row of A quantized to
        asymmetric uint8 over [min(row, 0), max(row, 0)] (codes: round(a * (1 / scale)) + zero point),
        acc = sum (q - zero_point) * w, then
        y = acc * (row scale * weight scale) + bias. The integer sum runs as a float32 MatMul of integers
        (|q - zp| <= 255, |w| <= 127): exact while partial sums stay under 2^24, far above what
        real rows reach, and free of the int16 saturation of AVX2 u8 x s8 integer kernels."""
        a, w = node.inputs[0], self.graph.values[node.inputs[1]]
        out = node.outputs[0]

        def op(kind: str, inputs: list[str], hint: str, **attrs) -> str:
            name = self.fresh(f"{out}/{hint}")
            self.add(kind, inputs, [name], **attrs)
            return name

        def scalar(v: float, hint: str) -> str:
            return self.const(np.array(v, np.float32), hint)

        zero, top = scalar(0.0, "zero"), scalar(255.0, "qmax")
        axes = self.const(np.array([-1], np.int64), "axes")
        lo = op("Min", [op("ReduceMin", [a, axes], "row_min", keepdims=1), zero], "lo")
        hi = op("Max", [op("ReduceMax", [a, axes], "row_max", keepdims=1), zero], "hi")
        scale = op("Where", [op("Greater", [hi, lo], "nonzero"), op("Div", [op("Sub", [hi, lo], "range"), top], "step"),
                             scalar(1.0, "one")], "row_scale")
        zp = op("Clip", [op("Round", [op("Div", [op("Neg", [lo], "neg_lo"), scale], "zp_real")], "zp_round"), zero, top],
                "row_zero_point")
        inverse = op("Reciprocal", [scale], "row_inverse")
        q = op("Clip", [op("Add", [op("Round", [op("Mul", [a, inverse], "scaled")], "rounded"), zp], "shifted"), zero, top],
               "row_q")
        centered = op("Sub", [q, zp], "centered")
        weight = op("Cast", [w.name], "w_int", to=TensorProto.FLOAT)
        acc = op("MatMul", [centered, weight], "acc")
        w_scale = self.const(np.asarray(w.quant.scale, np.float32).reshape(-1), f"{w.name}/scale")
        y = op("Mul", [acc, op("Mul", [scale, w_scale], "out_scale")], "scaled_acc")
        if len(node.inputs) > 2 and node.inputs[2]:
            y = op("Add", [y, self.float_of(node.inputs[2])], "biased")
        activation = node.attrs.get("activation", "none")
        if activation == "relu":
            self.add("Relu", [y], [out])
        elif activation != "none":
            self.add("Clip", [y, scalar(node.attrs["act_min"], "min"), scalar(node.attrs["act_max"], "max")], [out])
        else:
            self.add("Identity", [y], [out])

    def flattened_matmul(self, node: Node) -> bool:
        """A MatMul of a rank > 2 input by a constant 2-D weight, with a bias, as a 2-D MatMul between
        Reshapes (module doc); False when the node is not of that kind."""
        a, b, out = (self.graph.values[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
        if len(a.shape) <= 2 or len(b.shape) != 2 or not b.is_const or len(node.inputs) < 3 or not node.inputs[2]:
            return False
        quantized = a.dtype in (DType.INT8, DType.UINT8)
        if not (a.dtype is DType.FLOAT32 or quantized and np.size(a.quant.scale) == 1):
            return False
        rows = int(np.prod(a.shape[:-1]))
        flat = self.fresh(f"{node.outputs[0]}/input_2d")
        self.add("Reshape", [a.name, self.const(np.array([rows, a.shape[-1]], np.int64), "shape")], [flat])
        if quantized:
            flat = self.dequantize(flat, a, self.fresh(f"{flat}/dq"))
        product = self.fresh(f"{node.outputs[0]}/2d")
        self.emit_float_op(node, [flat] + [self.float_of(n) for n in node.inputs[1:]], [product])
        shape = self.const(np.array(out.shape, np.int64), "shape")
        if out.dtype in (DType.INT8, DType.UINT8):
            codes = self.fresh(f"{node.outputs[0]}/2d_q")
            scale, zero = self.qparams(out.quant, out.name, out.dtype.numpy)
            self.add("QuantizeLinear", [product, scale, zero], [codes])
            self.add("Reshape", [codes, shape], [out.name])
        else:
            self.add("Reshape", [product, shape], [out.name])
        return True

    def emit_float_op(self, node: Node, inputs: list[str], outputs: list[str]) -> None:
        op, attrs = node.op, node.attrs
        out_shape = self.graph.values[node.outputs[0]].shape
        if op in ("Conv", "MatMul") and attrs.get("activation", "none") != "none":
            pre = self.fresh(f"{outputs[0]}/pre_activation")
            self.emit_float_op(Node(op, node.name, node.inputs, node.outputs, {**attrs, "activation": "none"}),
                               inputs, [pre])
            if attrs["activation"] == "relu":
                self.add("Relu", [pre], outputs)
            else:
                self.add("Clip", [pre, self.const(np.array(attrs["act_min"], np.float32), "min"),
                                  self.const(np.array(attrs["act_max"], np.float32), "max")], outputs)
            return
        if op == "Conv":
            self.add("Conv", [n for n in inputs if n], outputs, strides=attrs["strides"], pads=attrs["pads"],
                     dilations=attrs["dilations"], group=attrs["group"])
        elif op == "ConvTranspose":
            self.add("ConvTranspose", [n for n in inputs if n], outputs, strides=attrs["strides"], pads=attrs["pads"],
                     dilations=attrs["dilations"], group=attrs["group"], output_padding=attrs["output_padding"])
        elif op == "MatMul":
            if len(inputs) > 2 and inputs[2]:
                product = self.fresh(f"{outputs[0]}/matmul")
                self.add("MatMul", inputs[:2], [product])
                self.add("Add", [product, inputs[2]], outputs)
            else:
                self.add("MatMul", inputs[:2], outputs)
        elif op in _SAME_NAME:
            extra = {k: v for k, v in attrs.items()}
            self.add(op, inputs, outputs, **extra)
        elif op == "Clip":
            self.add("Clip", [inputs[0], self.const(np.array(attrs["min"], np.float32), "min"),
                              self.const(np.array(attrs["max"], np.float32), "max")], outputs)
        elif op == "Gelu":
            self.add("Gelu", inputs, outputs, approximate=attrs["approximate"])
        elif op == "Cast":
            self.add("Cast", inputs, outputs, to=_ONNX_TYPE[DType(attrs["to"])])
        elif op in ("Softmax", "LogSoftmax"):
            self.add(op, inputs, outputs, axis=attrs["axis"])
        elif op == "LayerNormalization":
            self.add(op, inputs, outputs, axis=attrs["axis"], epsilon=attrs["epsilon"])
        elif op in ("MaxPool", "AveragePool"):
            extra = {"count_include_pad": attrs["count_include_pad"]} if op == "AveragePool" else {}
            self.add(op, inputs, outputs, kernel_shape=attrs["kernel"], strides=attrs["strides"], pads=attrs["pads"],
                     dilations=attrs["dilations"], **extra)
        elif op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"):
            self.add(op, [inputs[0], self.const(np.array(attrs["axes"], np.int64), "axes")], outputs,
                     keepdims=attrs["keepdims"])
        elif op == "ArgMax":
            self.add(op, inputs, outputs, axis=attrs["axis"], keepdims=attrs["keepdims"])
        elif op in ("Reshape", "Expand"):
            self.add(op, [inputs[0], self.const(np.array(out_shape, np.int64), "shape")], outputs)
        elif op == "Split":
            self.add(op, [inputs[0], self.const(np.array(attrs["split"], np.int64), "split")], outputs, axis=attrs["axis"])
        elif op == "Slice":
            ends = [e if e >= 0 else -(2 ** 63) for e in attrs["ends"]]
            self.add(op, [inputs[0], self.const(np.array(attrs["starts"], np.int64), "starts"),
                          self.const(np.array(ends, np.int64), "ends"),
                          self.const(np.arange(len(ends), dtype=np.int64), "axes"),
                          self.const(np.array(attrs["steps"], np.int64), "steps")], outputs)
        elif op == "Gather":
            self.add(op, inputs, outputs, axis=attrs["axis"])
        elif op == "Pad":
            x = self.graph.values[node.inputs[0]]
            value = np.array(attrs["value"], x.dtype.numpy if x.dtype is not DType.FLOAT32 else np.float32)
            if x.dtype in (DType.INT8, DType.UINT8) and inputs[0] == node.inputs[0]:
                value = np.array(int(np.clip(np.rint(attrs["value"] / x.quant.scale[0]) + x.quant.zero_point[0],
                                             -128, 127)), x.dtype.numpy)
            self.add(op, [inputs[0], self.const(np.array(attrs["pads"], np.int64), "pads"), self.const(value, "value")],
                     outputs, mode=attrs["mode"])
        elif op == "Resize":
            self.add(op, [inputs[0], "", self.const(np.array(attrs["scales"], np.float32), "scales")], outputs,
                     mode=attrs["mode"], coordinate_transformation_mode=attrs["coordinate_transformation_mode"],
                     nearest_mode=attrs["nearest_mode"])
        elif op == "Tile":
            self.add(op, [inputs[0], self.const(np.array(attrs["repeats"], np.int64), "repeats")], outputs)
        else:
            raise ValueError(f"node '{node.name}': no ONNX form for IR op '{op}'")


def to_onnx(graph: Graph, opset: int = OPSET) -> onnx.ModelProto:
    """The graph as an ONNX model (QDQ where it is quantized)."""
    graph = standard_ops(graph)   # ONNX has none of the native runtime's fused forms
    emitter = _Emitter(graph)
    for value in graph.values.values():
        if value.is_const:
            array = value.const
            if value.dtype is DType.INT4:
                tensor = helper.make_tensor(value.name, TensorProto.INT4, value.shape, array.reshape(-1).tolist())
                emitter.initializers.append(tensor)
            else:
                emitter.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), value.name))
    for node in graph.nodes:
        emitter.emit(node)
    nodes = _sink_dequantize(emitter.nodes, {t.name: t for t in emitter.initializers}, set(graph.outputs),
                             emitter.fresh)

    def info(name: str) -> onnx.ValueInfoProto:
        value = graph.values[name]
        return helper.make_tensor_value_info(name, _ONNX_TYPE[value.dtype], list(value.shape))

    model = helper.make_model(
        helper.make_graph(nodes, graph.name, [info(n) for n in graph.inputs], [info(n) for n in graph.outputs],
                          emitter.initializers),
        opset_imports=[helper.make_opsetid("", opset)], producer_name="edgepack")
    model.ir_version = 10
    return model


def _sink_dequantize(nodes: list[onnx.NodeProto], initializers: dict[str, onnx.TensorProto], outputs: set[str],
                     fresh) -> list[onnx.NodeProto]:
    """Move data movement read from a per-tensor DequantizeLinear (of a run-time tensor) onto the int8
    codes: DQ(x) -> Reshape -> y becomes Reshape(x) -> DQ -> y (module doc). Exact: these ops move or
    select codes, and a per-tensor dequantization commutes with them (MaxPool: it is monotonic)."""
    nodes = list(nodes)
    changed = True
    while changed:
        changed = False
        consumers: dict[str, list[int]] = {}
        for i, node in enumerate(nodes):
            for name in node.input:
                consumers.setdefault(name, []).append(i)
        for i, dq in enumerate(nodes):
            if dq.op_type != "DequantizeLinear" or dq.input[0] in initializers or len(dq.input) < 2:
                continue
            if any(name in initializers and len(initializers[name].dims) > 0 for name in dq.input[1:]):
                continue                       # per-axis parameters do not commute with a reshape
            users = consumers.get(dq.output[0], [])
            if len(users) != 1 or dq.output[0] in outputs:
                continue
            mover = nodes[users[0]]
            if mover.op_type not in _PROPAGATING or mover.input[0] != dq.output[0] or len(mover.output) != 1 \
                    or any(name and name not in initializers for name in mover.input[1:]):
                continue
            codes = fresh(f"{mover.output[0]}/codes")
            mover.input[0] = dq.input[0]
            dq.input[0] = codes
            dq.output[0], mover.output[0] = mover.output[0], codes
            # the mover now runs right where the DQ ran (its other inputs are initializers)
            j = users[0]
            nodes.insert(i, nodes.pop(j))
            changed = True
            break
    return nodes


def write_onnx(graph: Graph, path: str | Path) -> int:
    model = to_onnx(graph)
    onnx.checker.check_model(model)
    path = Path(path)
    data = model.SerializeToString()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)
