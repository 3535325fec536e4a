"""passes/fuse_attention.py: MatMul(Q, K) -> Softmax (with its fused mask) -> MatMul(P, V) becomes one
Attention node. The native kernel computes it a block of query rows at a time with the float MatMul's
GEMM and the Softmax's row kernel, so it gives what the separate ops give (to a few ulp: it divides P V's
rows by the softmax sums instead of P's); the reference runs the three
ops in order and agrees with ONNX Runtime on the original model; `unfuse` writes the ops back, and the
ONNX emitter does so."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.frontends import import_onnx
from edgepack.passes import PIPELINE, fold_transposes, fuse_attention, run_passes
from edgepack.reference import run_graph
from models_util import run_ort
from op_harness import run_graph_native, write_graph

RNG = np.random.default_rng(5)
H, D = 3, 16


def attention_model(t: int, extra_output: str | None = None, scale: float | None = None) -> onnx.ModelProto:
    """q, k, v [1, t, H*D] and an additive mask [1, 1, t, t] -> softmax(q k^T (x scale) + mask) v, heads merged."""
    inits = [numpy_helper.from_array(np.array([1, t, H, D], np.int64), "heads"),
             numpy_helper.from_array(np.array([1, t, H * D], np.int64), "merged")]
    nodes = []
    for name in "qkv":
        nodes += [helper.make_node("Reshape", [name, "heads"], [f"{name}4"]),
                  helper.make_node("Transpose", [f"{name}4"], [f"{name}h"],
                                   perm=[0, 2, 3, 1] if name == "k" else [0, 2, 1, 3])]
    nodes.append(helper.make_node("MatMul", ["qh", "kh"], ["product" if scale else "scores"]))
    if scale:
        inits.append(numpy_helper.from_array(np.array(scale, np.float32), "scale"))
        nodes.append(helper.make_node("Mul", ["product", "scale"], ["scores"]))
    nodes += [helper.make_node("Add", ["scores", "mask"], ["masked"]),
              helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "merged"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, t, H * D])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, t, H * D]) for n in "qkv"]
    inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, t, t]))
    graph = helper.make_graph(nodes, "attention", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds(t: int) -> dict[str, np.ndarray]:
    f = {n: RNG.standard_normal((1, t, H * D)).astype(np.float32) for n in "qkv"}
    mask = np.where(RNG.random((1, 1, t, t)) < 0.2, -1e4, 0.0).astype(np.float32)
    mask[..., 0] = 0.0   # every row keeps a key
    f["mask"] = mask
    return f


native = run_graph_native


def fold(model):
    graph = run_passes(import_onnx(model), PIPELINE)
    fold_transposes.run(graph)
    return graph


# 24 keys: one block; 200: several blocks of query rows, a tail block and keys off the vector width
@pytest.mark.parametrize("t", [24, 200])
@pytest.mark.parametrize("threads", [1, 3])
def test_attention_fuses_and_computes_the_same(t, threads):
    model = attention_model(t)
    graph = fold(model)
    f = feeds(t)
    before = native(graph, f, threads)["y"]
    assert fuse_attention.run(graph).modified
    ops = [n.op for n in graph.nodes]
    assert ops.count("Attention") == 1 and "Softmax" not in ops and "MatMul" not in ops
    node = next(n for n in graph.nodes if n.op == "Attention")
    assert len(node.inputs) == 4 and sorted(k for k in node.attrs if k.endswith("_perm")) == ["q_perm", "v_perm", "y_perm"]
    # the same GEMM and softmax kernels as the separate ops; P V's rows divided by the sums, not P's
    np.testing.assert_allclose(native(graph, f, threads)["y"], before, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(native(graph, f, threads)["y"], run_graph(graph, f)["y"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_graph(graph, f)["y"], run_ort(model, f)[0], rtol=1e-5, atol=1e-5)
    # unfuse: the three ops again, computing the same
    separate = fuse_attention.unfuse(graph)
    assert [n.op for n in separate.nodes].count("MatMul") == 2 and "Attention" not in [n.op for n in separate.nodes]
    separate.verify()
    np.testing.assert_array_equal(run_graph(separate, f)["y"], run_graph(graph, f)["y"])


def test_a_scalar_scale_of_the_scores_fuses():
    model = attention_model(40, scale=0.25)
    graph = fold(model)
    f = feeds(40)
    before = native(graph, f)["y"]
    assert fuse_attention.run(graph).modified
    node = next(n for n in graph.nodes if n.op == "Attention")
    assert node.attrs["scale"] == 0.25 and "Mul" not in [n.op for n in graph.nodes]
    np.testing.assert_allclose(native(graph, f)["y"], before, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(run_graph(graph, f)["y"], run_ort(model, f)[0], rtol=1e-5, atol=1e-5)
    separate = fuse_attention.unfuse(graph)
    separate.verify()
    assert [n.op for n in separate.nodes].count("Mul") == 1
    np.testing.assert_array_equal(run_graph(separate, f)["y"], run_graph(graph, f)["y"])


@pytest.mark.parametrize("reader", ["scores", "p"])
def test_scores_read_elsewhere_are_not_fused(reader):
    graph = fold(attention_model(24, extra_output=reader))
    assert not fuse_attention.run(graph).modified
    assert "Attention" not in [n.op for n in graph.nodes]


def test_onnx_emitter_writes_the_separate_ops():
    model = attention_model(24)
    f = feeds(24)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "a.onnx"
        onnx.save(model, src)
        native_path = edgepack.compile(src, output=Path(tmp) / "a.epk", precision="fp32", progress=False).path
        onnx_path = edgepack.compile(src, output=Path(tmp) / "b.onnx", precision="fp32", progress=False).path
        emitted = onnx.load(onnx_path)
        assert "Attention" not in {n.op_type for n in emitted.graph.node}
        y_ort = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, f)[0]
        y_native = edgepack.load(native_path).run(f)["y"]
    np.testing.assert_allclose(y_native, y_ort, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nan_to_zero", [0, 1])
def test_fully_masked_rows_match_the_separate_ops(nan_to_zero):
    # rows whose keys are all -inf: NaN probabilities, zeroed by the NaN guard (or NaN through P V)
    graph = fold(attention_model(40))
    f = feeds(40)
    f["mask"][..., 3, :] = -np.inf
    f["mask"][..., 17, :] = -np.inf
    softmax = next(n for n in graph.nodes if n.op == "Softmax")
    softmax.attrs["nan_to_zero"] = nan_to_zero
    before = native(graph, f)["y"]
    assert fuse_attention.run(graph).modified
    after = native(graph, f)["y"]
    assert np.isnan(before).sum() == np.isnan(after).sum() == (0 if nan_to_zero else 2 * H * D)
    np.testing.assert_allclose(after, before, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(after, run_graph(graph, f)["y"], rtol=1e-5, atol=1e-5)


def test_native_rejects_a_mask_that_does_not_broadcast():
    graph = fold(attention_model(24))
    fuse_attention.run(graph)
    node = next(n for n in graph.nodes if n.op == "Attention")
    graph.values[node.inputs[3]].shape = (1, 1, 24, 12)
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(edgepack.ArtifactError, match="does not broadcast") as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    assert node.name in str(err.value)


def test_native_rejects_operands_that_do_not_multiply():
    graph = fold(attention_model(24))
    fuse_attention.run(graph)
    node = next(n for n in graph.nodes if n.op == "Attention")
    node.attrs["v_perm"] = [0, 1, 2, 3]   # V as [1, T, H, D]: its batch is not Q's
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(edgepack.ArtifactError, match="do not give the output") as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    assert node.name in str(err.value)
