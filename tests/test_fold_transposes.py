"""passes/fold_transposes.py: the Transposes around a float MatMul of two run-time operands (attention's
head split and merge) fold into the MatMul as a_perm / b_perm / y_perm; the native kernel reads and
writes those layouts in place and gives what the separate ops give (bit for bit: the same GEMM), the
reference agrees with ONNX Runtime on the original model, and `unfold` writes the Transposes back."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.frontends import import_onnx
from edgepack.passes import PIPELINE, fold_transposes, run_passes
from edgepack.reference import run_graph
from models_util import run_ort
from op_harness import run_graph_native, write_graph

RNG = np.random.default_rng(3)
T, H, D = 24, 3, 16


def attention_model(extra_output: str | None = None) -> onnx.ModelProto:
    """q, k, v [1, T, H*D] -> heads; softmax(q k^T) v -> merged heads [1, T, H*D]."""
    inits = [numpy_helper.from_array(np.array([1, T, H, D], np.int64), "heads"),
             numpy_helper.from_array(np.array([1, T, H * D], np.int64), "merged")]
    nodes = []
    for name in "qkv":
        nodes += [helper.make_node("Reshape", [name, "heads"], [f"{name}4"]),
                  helper.make_node("Transpose", [f"{name}4"], [f"{name}h"],
                                   perm=[0, 2, 3, 1] if name == "k" else [0, 2, 1, 3])]
    nodes += [helper.make_node("MatMul", ["qh", "kh"], ["scores"]),
              helper.make_node("Softmax", ["scores"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "merged"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, T, H * D])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "attention",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, T, H * D]) for n in "qkv"],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds() -> dict[str, np.ndarray]:
    return {n: RNG.standard_normal((1, T, H * D)).astype(np.float32) for n in "qkv"}


native = run_graph_native


def test_head_split_and_merge_fold_into_the_matmuls():
    model = attention_model()
    graph = run_passes(import_onnx(model), PIPELINE)
    separate = [n.op for n in graph.nodes].count("Transpose")
    f = feeds()
    before = native(graph, f)["y"]
    assert fold_transposes.run(graph).modified
    ops = [n.op for n in graph.nodes]
    # Q (A of q k^T), V (B of p v) and the merge (output of p v) fold; K^T moves the last axis and stays
    assert ops.count("Transpose") == 1 and separate == 4
    perms = {n.name: sorted(k for k in n.attrs if k.endswith("_perm")) for n in graph.nodes if n.op == "MatMul"}
    assert sorted(perms.values()) == [["a_perm"], ["b_perm", "y_perm"]]
    np.testing.assert_array_equal(native(graph, f)["y"], before)
    np.testing.assert_allclose(run_graph(graph, f)["y"], run_ort(model, f)[0], rtol=1e-5, atol=1e-5)
    # unfold: the Transposes are back, computing the same
    separate_graph = fold_transposes.unfold(graph)
    assert [n.op for n in separate_graph.nodes].count("Transpose") == 4
    assert not any(k.endswith("_perm") for n in separate_graph.nodes for k in n.attrs)
    np.testing.assert_array_equal(run_graph(separate_graph, f)["y"], run_graph(graph, f)["y"])


@pytest.mark.parametrize("reader", ["qh", "o"])
def test_transpose_read_elsewhere_is_kept(reader):
    graph = run_passes(import_onnx(attention_model(extra_output=reader)), PIPELINE)
    fold_transposes.run(graph)
    assert [n.op for n in graph.nodes].count("Transpose") == 2


def test_native_rejects_a_perm_that_moves_the_last_axis():
    graph = run_passes(import_onnx(attention_model()), PIPELINE)
    fold_transposes.run(graph)
    node = next(n for n in graph.nodes if "a_perm" in n.attrs)
    node.attrs["a_perm"] = [0, 2, 3, 1]
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(edgepack.ArtifactError, match="a_perm must keep the last axis") as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    assert node.name in str(err.value)
