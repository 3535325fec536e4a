"""The QDQ ONNX backend in ONNX Runtime at its default options (ORT_ENABLE_ALL).

ORT 1.32 refuses to load an int8 QDQ graph where an int8 DequantizeLinear feeds data movement
(Reshape, Transpose, ...), and it creates that shape itself from a MatMul of a rank-3 input with a bias
(MatMulAddFusion): backends/onnx.py keeps both shapes out of the emitted graph. The dynamic int8 MatMul
is emitted as the native kernel computes it, so ORT reproduces the native result."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import edgepack
from edgepack.backends.onnx import _sink_dequantize
from edgepack.reference import run_graph
from edgepack.verify import epk_graph


class TinyEncoderBlock(nn.Module):
    """One transformer-style block on [1, 16, 32]: attention (Q/K/V, softmax), output projection,
    residual + LayerNorm, and a GELU feed-forward layer."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, 2 * dim)
        self.ff2 = nn.Linear(2 * dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        attention = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        x = self.norm1(x + self.proj(attention @ v))
        return self.norm2(x + self.ff2(nn.functional.gelu(self.ff1(x))))


def _ort(model, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL) -> ort.InferenceSession:
    """A session on `model` (a path or serialized bytes); ORT's default level unless told."""
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def block():
    torch.manual_seed(0)
    model = TinyEncoderBlock().eval()
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal((1, 16, 32)).astype(np.float32) for _ in range(40)]
    return model, samples[:24], samples[24:]


def test_static_int8_transformer_block_loads_and_matches_native(block, tmp_path):
    model, calibration, test = block
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(calibration[0]), precision="int8",
                                calibration_data=[{"x": x} for x in calibration], output=tmp_path / "block",
                                format=["epk", "onnx"], progress=False)
    graph = epk_graph(compiled.artifacts["epk"])
    static = [n for n in graph.nodes if n.op == "MatMul" and graph.values[n.outputs[0]].dtype.name == "INT8"
              and len(graph.values[n.inputs[0]].shape) == 3 and len(n.inputs) > 2 and n.inputs[2]]
    assert static, "the block must keep a static int8 MatMul of a rank-3 input with a bias (the failing shape)"

    session = _ort(compiled.artifacts["onnx"])          # default options: this raised before the fix
    native = edgepack.load(compiled.artifacts["epk"], num_threads=1)
    output = compiled.graph.outputs[0]
    for x in test:
        got, want = session.run(None, {"x": x})[0], native.run({"x": x})[output]
        cosine = float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
        assert cosine > 0.9999, cosine

    # the int8 tensors (every value made an output, as `edgepack verify --per-op` does)
    probe = onnx.load(str(compiled.artifacts["onnx"]))
    int8 = [n for n, v in graph.values.items() if v.dtype.name == "INT8" and not v.is_const]
    for name in int8:
        probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    within = total = 0
    for x in test:
        expected = run_graph(graph, {"x": x}, keep=True)
        actual = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
        for name in int8:
            diff = np.abs(actual[name].astype(np.int32) - expected[name].astype(np.int32))
            within, total = within + int((diff <= 1).sum()), total + diff.size
    assert within / total >= 0.999, within / total


def test_dynamic_int8_matmul_reproduces_native(block, tmp_path):
    """int8-dynamic: rows quantized at run time in ONNX ops, so ORT matches the native kernel's
    integer result, not a weight-only approximation of it."""
    model, calibration, test = block
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(calibration[0]), precision="int8-dynamic",
                                calibration_data=[{"x": x} for x in calibration], output=tmp_path / "block",
                                format=["epk", "onnx"], progress=False)
    graph = epk_graph(compiled.artifacts["epk"])
    assert sum(n.op == "MatMul" and graph.values[n.inputs[1]].dtype.name == "INT8" for n in graph.nodes) >= 4
    session = _ort(compiled.artifacts["onnx"])
    output = compiled.graph.outputs[0]
    for x in test:
        want = run_graph(graph, {"x": x})[output]
        np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=0, atol=1e-4)


def test_dequantize_before_data_movement_is_sunk_onto_the_codes():
    """DQ(int8) -> Reshape -> Transpose -> Relu, the shape ORT cannot load at default options, becomes
    Reshape -> Transpose on the codes, then DQ; the values are unchanged."""
    initializers = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
                    numpy_helper.from_array(np.array(3, np.int8), "z"),
                    numpy_helper.from_array(np.array([4, 16], np.int64), "shape")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("Reshape", ["xd", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
             helper.make_node("Relu", ["t"], ["y"])]

    def model(node_list):
        graph = helper.make_graph(node_list, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 4])], initializers)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
        proto.ir_version = 10
        onnx.checker.check_model(proto)
        return proto.SerializeToString()

    with pytest.raises(Exception, match="output_dtype INT8 does not match y_zero_point type UINT8"):
        _ort(model(nodes))                     # ORT's own failure, documented in backends/onnx.py
    names = iter(range(100))
    sunk = _sink_dequantize([helper.make_node(n.op_type, n.input, n.output, **{a.name: helper.get_attribute_value(a)
                                                                               for a in n.attribute}) for n in nodes],
                            {t.name: t for t in initializers}, {"y"}, lambda hint: f"{hint}_{next(names)}")
    assert [n.op_type for n in sunk] == ["QuantizeLinear", "Reshape", "Transpose", "DequantizeLinear", "Relu"]
    x = np.random.default_rng(1).standard_normal((1, 4, 16)).astype(np.float32)
    expected = _ort(model(nodes), ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, {"x": x})[0]
    np.testing.assert_array_equal(_ort(model(sunk)).run(None, {"x": x})[0], expected)
