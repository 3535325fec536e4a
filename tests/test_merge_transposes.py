"""passes/merge_transposes.py: Transpose, unit-axis Reshapes, Transpose -> one Transpose (+ a free
Reshape), only when nothing else reads the chain; the result is the same tensor (ONNX Runtime on the
original model, the native runtime on the merged graph)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.frontends import import_onnx
from edgepack.passes import PIPELINE, run_passes
from models_util import run_ort
from op_harness import write_graph

RNG = np.random.default_rng(5)


def k_transpose_model(middle_shape=(2, 8, 8), extra_output: str | None = None) -> onnx.ModelProto:
    """K as torch's SDPA export writes it: [1, 8, 16] -> heads [1, 8, 2, 8] -> (0, 2, 1, 3) ->
    Reshape middle_shape -> Transpose (0, 2, 1) (or its rank's last-two swap) -> Reshape [1, 2, 8, 8]."""
    rank = len(middle_shape)
    inits = [numpy_helper.from_array(np.array([1, 8, 2, 8], np.int64), "heads_shape"),
             numpy_helper.from_array(np.array(middle_shape, np.int64), "middle_shape"),
             numpy_helper.from_array(np.array([1, 2, 8, 8], np.int64), "out_shape")]
    nodes = [helper.make_node("Reshape", ["x", "heads_shape"], ["heads"]),
             helper.make_node("Transpose", ["heads"], ["t1"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["t1", "middle_shape"], ["m"]),
             helper.make_node("Transpose", ["m"], ["t2"], perm=list(range(rank - 2)) + [rank - 1, rank - 2]),
             helper.make_node("Reshape", ["t2", "out_shape"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "k", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_two_transposes_become_one_and_compute_the_same():
    model = k_transpose_model()
    graph = run_passes(import_onnx(model), PIPELINE)
    assert [n.op for n in graph.nodes].count("Transpose") == 1
    x = RNG.standard_normal((1, 8, 16)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        native = edgepack.load(write_graph(graph, Path(tmp) / "k.epk")).run({"x": x})["y"]
    np.testing.assert_array_equal(native, run_ort(model, {"x": x})[0])


@pytest.mark.parametrize("reader", ["t1", "m"])
def test_chain_read_elsewhere_is_kept(reader):
    graph = run_passes(import_onnx(k_transpose_model(extra_output=reader)), PIPELINE)
    assert [n.op for n in graph.nodes].count("Transpose") == 2


def test_reshape_that_merges_axes_stops_the_merge():
    """[1, 2, 8, 8] -> [2, 64]: not a unit-axis Reshape, the axes do not survive it."""
    model = k_transpose_model(middle_shape=(2, 64))
    graph = run_passes(import_onnx(model), PIPELINE)
    assert [n.op for n in graph.nodes].count("Transpose") == 2
