"""passes/fold_affine.py: a Mul by a constant scalar folds into the Conv / MatMul before it through the
Reshapes and Transposes in between (attention's Q / K scaling after the head split), only when nothing
else reads the chain, and the folded graph computes what the model did (ONNX Runtime on the original)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.frontends import import_onnx
from edgepack.passes import PIPELINE, run_passes
from edgepack.reference import run_graph
from models_util import run_ort

RNG = np.random.default_rng(11)


def head_split_model(extra_output: str | None = None, scale_shape=()) -> onnx.ModelProto:
    """x [1, 8, 16] @ W + b -> Reshape [1, 8, 2, 8] -> Transpose (0, 2, 1, 3) -> * scale."""
    inits = [numpy_helper.from_array(RNG.standard_normal((16, 16)).astype(np.float32), "w"),
             numpy_helper.from_array(RNG.standard_normal(16).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([1, 8, 2, 8], np.int64), "shape"),
             numpy_helper.from_array(np.full(scale_shape, 0.42, np.float32), "scale")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["q"]),
             helper.make_node("Reshape", ["q", "shape"], ["heads"]),
             helper.make_node("Transpose", ["heads"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Mul", ["t", "scale"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "heads", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("scale_shape", [(), (1,), (1, 1, 1, 1)])
def test_scalar_mul_folds_through_reshape_and_transpose(scale_shape):
    model = head_split_model(scale_shape=scale_shape)
    graph = run_passes(import_onnx(model), PIPELINE)
    assert [n.op for n in graph.nodes] == ["MatMul", "Reshape", "Transpose"]
    x = RNG.standard_normal((1, 8, 16)).astype(np.float32)
    expected = run_ort(model, {"x": x})[0]
    np.testing.assert_allclose(run_graph(graph, {"x": x})["y"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reader", ["heads", "t"])
def test_scalar_mul_stays_when_the_chain_is_read_elsewhere(reader):
    graph = run_passes(import_onnx(head_split_model(extra_output=reader)), PIPELINE)
    assert "Mul" in [n.op for n in graph.nodes]


def test_per_channel_mul_after_movement_stays():
    """Only a scalar commutes with the movement: a per-element constant is left alone."""
    graph = run_passes(import_onnx(head_split_model(scale_shape=(1, 1, 1, 8))), PIPELINE)
    assert "Mul" in [n.op for n in graph.nodes]
