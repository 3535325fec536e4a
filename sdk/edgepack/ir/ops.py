"""The closed op set of the edgepack IR.

Every op the compiler, the reference executor and the runtime know is listed here, in sections. The
opcode is what the .epk file stores; it mirrors `enum class OpCode` in native/include/edgepack/format.h
(a test checks they agree). Opcodes are never reused: a removed op stays as a comment.

IR ops are canonical, not ONNX: frontends normalise ONNX into these forms so that the passes, the
reference and the kernels see one shape per op.
  * every attribute is explicit (no defaults left to the kernel), axes are non-negative;
  * spatial ops are 2-D NCHW; `pads` is [top, left, bottom, right]. A float `Conv` or `MaxPool` may
    carry `channels_last` = 1: its input and output are NHWC instead (Conv's weights stay
    [M, C/group, kh, kw]); a Conv's 2 reads NCHW and writes NHWC; passes/channels_last.py sets them on
    the native graph;
  * `Conv` / `MatMul` may carry a fused activation: attrs `activation` in ACTIVATIONS and
    `act_min` / `act_max` for "clip";
  * `Softmax` may carry a fused attention mask: a `bias` input and `nan_to_zero` (see its doc);
  * shapes are static: Reshape, Expand, Resize carry their output shape in the value, not in inputs.

Attribute kinds: int, float, ints, floats, str.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OpSchema:
    name: str
    code: int
    inputs: tuple[int, int]          # (min, max) number of inputs; missing optional inputs are ""
    outputs: int
    attrs: dict[str, str] = field(default_factory=dict)  # name -> kind
    doc: str = ""


ACTIVATIONS = ("none", "relu", "clip", "gelu")   # gelu (erf form): dynamic int8 MatMul only (passes/fuse_gelu.py)

_FUSED_ACT = {"activation": "str", "act_min": "float", "act_max": "float"}
_POOL = {"kernel": "ints", "strides": "ints", "pads": "ints", "dilations": "ints"}
_REDUCE = {"axes": "ints", "keepdims": "int"}

SCHEMAS: dict[str, OpSchema] = {}


def _op(name: str, code: int, inputs: tuple[int, int], outputs: int = 1,
        attrs: dict[str, str] | None = None, doc: str = "") -> None:
    assert name not in SCHEMAS and all(s.code != code for s in SCHEMAS.values())
    SCHEMAS[name] = OpSchema(name, code, inputs, outputs, dict(attrs or {}), doc)


# --- compute -----------------------------------------------------------------------------------
_op("Conv", 1, (2, 4), attrs={"strides": "ints", "pads": "ints", "dilations": "ints", "group": "int",
                              **_FUSED_ACT, "channels_last": "int", "y_stride": "int"},
    doc="X[N,C,H,W], W[M,C/group,kh,kw], optional B[M]; channels_last = 1 (float, group 1 only): "
        "X[N,H,W,C] -> Y[N,OH,OW,M], 2: X[N,C,H,W] -> Y[N,OH,OW,M] (passes/channels_last.py); optional residual (input 3, Y's shape; "
        "a channels_last 1x1 float conv only) added before the activation: act(conv + B + residual) "
        "(passes/fuse_residual.py); optional y_stride (channels_last only; memory layout, not math): "
        "the output's pixels lie y_stride floats apart, its channels a slice of a Concat's output that "
        "the memory planner places around it")
_op("ConvTranspose", 2, (2, 3), attrs={"strides": "ints", "pads": "ints", "dilations": "ints",
                                       "group": "int", "output_padding": "ints"},
    doc="X[N,C,H,W], W[C,M/group,kh,kw], optional B[M]")
_op("MatMul", 3, (2, 4), outputs=8, attrs={**_FUSED_ACT, "a_perm": "ints", "b_perm": "ints", "y_perm": "ints",
                                          "split": "ints"},
    doc="numpy matmul with batch broadcasting; optional bias added along the last axis; optional "
        "input_scale (input 3, float32 over A's last axis) multiplies A first: a SmoothQuant Mul folded "
        "into a dynamic int8 MatMul (quant/smooth.py), the only kind that takes it. Optional a_perm / "
        "b_perm (the operand is the input transposed) and y_perm (the output is the product transposed), "
        "each keeping the last axis: Transposes folded into a float MatMul of two run-time operands "
        "(passes/fold_transposes.py). Optional split (dynamic int8 only): one output per entry, each that "
        "many of the product's last-axis columns in order: MatMuls of one input merged (passes/merge_matmuls.py)")
_op("Attention", 4, (3, 4), attrs={"q_perm": "ints", "k_perm": "ints", "v_perm": "ints", "y_perm": "ints",
                                   "nan_to_zero": "int", "scale": "float", "bf16": "int"},
    doc="softmax(Q K [x scale] [+ mask]) V over the last axis: MatMul(Q, K; a_perm q_perm, b_perm k_perm) -> "
        "[Mul(scale), float32] -> Softmax(axis -1, bias mask, nan_to_zero) -> MatMul(P, V; b_perm v_perm, y_perm), each as that op "
        "defines it (perms optional, keeping the last axis). K is the right operand of the scores (already "
        "transposed, [..., D, T]); mask is input 3. Optional bf16 = 1: both products take bfloat16 operands "
        "(Q, K, V and exp(scores - max) rounded to nearest even) with float sums, P V divided by the rows' sums "
        "after (passes/attention_bf16.py). Native only: the runtime keeps a block of score rows in "
        "L1 from the first product to the second (passes/fuse_attention.py)")

# --- elementwise unary -------------------------------------------------------------------------
_op("Relu", 10, (1, 1))
_op("Sigmoid", 11, (1, 1))
_op("Tanh", 12, (1, 1))
_op("Erf", 13, (1, 1))
_op("Exp", 14, (1, 1))
_op("Log", 15, (1, 1))
_op("Sqrt", 16, (1, 1))
_op("Neg", 17, (1, 1))
_op("Abs", 18, (1, 1))
_op("Reciprocal", 19, (1, 1))
_op("HardSigmoid", 20, (1, 1), attrs={"alpha": "float", "beta": "float"})
_op("HardSwish", 21, (1, 1))
_op("LeakyRelu", 22, (1, 1), attrs={"alpha": "float"})
_op("Clip", 23, (1, 1), attrs={"min": "float", "max": "float"})
_op("Gelu", 24, (1, 1), attrs={"approximate": "str"}, doc='approximate: "none" or "tanh"')
_op("Not", 25, (1, 1))
_op("Cast", 26, (1, 1), attrs={"to": "int"}, doc="to: a DType code")
_op("Floor", 27, (1, 1))
_op("Ceil", 28, (1, 1))

# --- elementwise binary / ternary (numpy broadcasting) -----------------------------------------
_op("Add", 40, (2, 2))
_op("Sub", 41, (2, 2))
_op("Mul", 42, (2, 2))
_op("Div", 43, (2, 2))
_op("Pow", 44, (2, 2))
_op("Max", 45, (2, 2))
_op("Min", 46, (2, 2))
_op("Equal", 47, (2, 2))
_op("Less", 48, (2, 2))
_op("Greater", 49, (2, 2))
_op("And", 50, (2, 2))
_op("Or", 51, (2, 2))
_op("Where", 52, (3, 3))

# --- normalisation -----------------------------------------------------------------------------
_op("Softmax", 60, (1, 2), attrs={"axis": "int", "nan_to_zero": "int"},
    doc="optional bias (input 1, broadcast to x; the native kernel takes it for the last axis, with "
        "that axis at full length) added before the softmax; nan_to_zero 1 (absent: 0) writes 0 where "
        "the result is NaN, e.g. a row masked to -inf (passes/fuse_softmax.py)")
_op("LayerNormalization", 61, (2, 4), attrs={"axis": "int", "epsilon": "float"},
    doc="normalises over axes [axis, rank); scale and optional bias over those axes; optional residual "
        "(input 3, x's shape) added to x first, in float32 (passes/fuse_add_norm.py)")
_op("LRN", 62, (1, 1), attrs={"size": "int", "alpha": "float", "beta": "float", "bias": "float"})
_op("LogSoftmax", 63, (1, 1), attrs={"axis": "int"})

# --- pooling and reductions --------------------------------------------------------------------
_op("MaxPool", 70, (1, 1), attrs={**_POOL, "channels_last": "int"},
    doc="channels_last = 1 (float only): X[N,H,W,C] -> Y[N,OH,OW,C] (passes/channels_last.py)")
_op("AveragePool", 71, (1, 1), attrs={**_POOL, "count_include_pad": "int"})
_op("ReduceMean", 72, (1, 1), attrs=dict(_REDUCE))
_op("ReduceSum", 73, (1, 1), attrs=dict(_REDUCE))
_op("ReduceMax", 74, (1, 1), attrs=dict(_REDUCE))
_op("ReduceMin", 75, (1, 1), attrs=dict(_REDUCE))
_op("ArgMax", 76, (1, 1), attrs={"axis": "int", "keepdims": "int"})

# --- data movement -----------------------------------------------------------------------------
_op("Reshape", 90, (1, 1), doc="output shape is the output value's shape; same bytes")
_op("Transpose", 91, (1, 1), attrs={"perm": "ints"})
_op("Concat", 92, (1, 64), attrs={"axis": "int"})
_op("Split", 93, (1, 1), outputs=64, attrs={"axis": "int", "split": "ints"})
_op("Slice", 94, (1, 1), attrs={"starts": "ints", "ends": "ints", "steps": "ints"},
    doc="one start/end/step per axis, already clamped: out[i] = in[starts + i*steps]")
_op("Gather", 95, (2, 2), attrs={"axis": "int"}, doc="negative indices wrap; out of range is an error")
_op("Pad", 96, (1, 1), attrs={"pads": "ints", "mode": "str", "value": "float"},
    doc="pads: [begin_0..begin_r-1, end_0..end_r-1]; mode constant | reflect | edge")
_op("Resize", 97, (1, 1), attrs={"mode": "str", "coordinate_transformation_mode": "str",
                                 "nearest_mode": "str", "scales": "floats"},
    doc="mode nearest | linear on the last two axes of NCHW; scales per axis (output/input)")
_op("Expand", 98, (1, 1), doc="broadcast to the output value's shape")
_op("Tile", 99, (1, 1), attrs={"repeats": "ints"})
_op("DepthToSpace", 100, (1, 1), attrs={"blocksize": "int", "mode": "str"})

# --- quantization (docs/quantization.md; parameters live on the tensors, not in attributes) ------
_op("Quantize", 110, (1, 1), doc="float -> int8/uint8 with the output's scale and zero point")
_op("Dequantize", 111, (1, 1), doc="int8/uint8/int32 -> float with the input's scale and zero point")
_op("Requantize", 112, (1, 1), doc="int8 -> int8 from the input's parameters to the output's")
_op("Lut", 113, (2, 2), doc="int8 -> int8 through a constant 256-entry table indexed by q + 128")


ELEMENTWISE_UNARY = frozenset(n for n, s in SCHEMAS.items() if 10 <= s.code < 40)
ELEMENTWISE_BINARY = frozenset(n for n, s in SCHEMAS.items() if 40 <= s.code < 52)
COMPARISONS = frozenset({"Equal", "Less", "Greater"})
REDUCTIONS = frozenset({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"})
MOVEMENT = frozenset(n for n, s in SCHEMAS.items() if 90 <= s.code < 110)
# Ops whose output is a byte-for-byte view of their input: the memory planner aliases them.
ALIASING = frozenset({"Reshape"})
FUSABLE_ACTIVATION = frozenset({"Relu", "Clip"})
QUANTIZATION = frozenset({"Quantize", "Dequantize", "Requantize", "Lut"})


def schema(op: str) -> OpSchema:
    try:
        return SCHEMAS[op]
    except KeyError:
        raise KeyError(f"'{op}' is not an edgepack IR op") from None
