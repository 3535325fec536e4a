"""passes/fuse_add_norm.py: the residual Add before a LayerNormalization becomes its input 3 when the
sum has no other reader and is not a broadcast; the native kernel gives what Add then LayerNorm give,
the reference agrees with ONNX Runtime on the original model, and `unfuse` writes the Add back."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.frontends import import_onnx
from edgepack.passes import PIPELINE, fuse_add_norm, run_passes
from edgepack.reference import run_graph
from models_util import run_ort
from op_harness import run_graph_native, write_graph

RNG = np.random.default_rng(9)
SHAPE = (1, 13, 40)   # 40: two vectors and a tail; 13 rows: groups of four and a remainder


def block(extra_output: str | None = None, r_shape=SHAPE) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(RNG.uniform(0.5, 2, SHAPE[-1]).astype(np.float32), "gamma"),
             numpy_helper.from_array(RNG.standard_normal(SHAPE[-1]).astype(np.float32), "beta")]
    nodes = [helper.make_node("Add", ["x", "r"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE),
                                               helper.make_tensor_value_info("r", TensorProto.FLOAT, r_shape)],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds(r_shape=SHAPE) -> dict[str, np.ndarray]:
    return {"x": (RNG.standard_normal(SHAPE) * 3 + 1).astype(np.float32),
            "r": RNG.standard_normal(r_shape).astype(np.float32)}


def native(graph, f, threads=2):
    return run_graph_native(graph, f, threads)["y"]


@pytest.mark.parametrize("threads", [1, 2])
def test_residual_add_fuses_and_computes_the_same(threads):
    model = block()
    graph = run_passes(import_onnx(model), PIPELINE)
    f = feeds()
    before = native(graph, f, threads)
    assert fuse_add_norm.run(graph).modified
    assert [n.op for n in graph.nodes] == ["LayerNormalization"] and len(graph.nodes[0].inputs) == 4
    np.testing.assert_array_equal(native(graph, f, threads), before)
    np.testing.assert_allclose(run_graph(graph, f)["y"], run_ort(model, f)[0], rtol=1e-5, atol=1e-5)
    separate = fuse_add_norm.unfuse(graph)
    assert [n.op for n in separate.nodes] == ["Add", "LayerNormalization"]
    np.testing.assert_array_equal(run_graph(separate, f)["y"], run_graph(graph, f)["y"])


def test_sum_read_elsewhere_or_broadcast_is_kept():
    graph = run_passes(import_onnx(block(extra_output="s")), PIPELINE)
    assert not fuse_add_norm.run(graph).modified
    graph = run_passes(import_onnx(block(r_shape=(1, 1, SHAPE[-1]))), PIPELINE)
    assert not fuse_add_norm.run(graph).modified


def test_native_rejects_a_residual_of_another_shape():
    graph = run_passes(import_onnx(block()), PIPELINE)
    fuse_add_norm.run(graph)
    graph.values["r"].shape = (1, 13, 20)
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(edgepack.ArtifactError, match="residual") as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    assert graph.nodes[0].name in str(err.value)
