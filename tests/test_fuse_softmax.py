"""passes/fuse_softmax.py: the attention mask Add and the NaN guard fold into the Softmax only when
nothing else reads what they remove; the fused node computes what the separate ops did (reference and
native), and `unfuse` (used by the ONNX, TFLite and Core ML emitters) gives the separate ops back."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgepack
from edgepack.backends.onnx import to_onnx
from edgepack.frontends import import_onnx
from edgepack.passes import PIPELINE, fuse_softmax, run_passes
from edgepack.reference import run_graph
from models_util import run_ort
from op_harness import write_graph

RNG = np.random.default_rng(7)
SCORES, MASK = (1, 4, 16, 16), (1, 1, 16, 16)


def attention_model(extra_readers: tuple[str, ...] = (), mask_shape=MASK) -> onnx.ModelProto:
    """scores + mask -> Softmax -> Where(IsNaN(p), 0, p), as torch exports SDPA; `extra_readers`
    names intermediates ("sum", "p", "isnan") that also become graph outputs."""
    nodes = [helper.make_node("Add", ["scores", "mask"], ["sum"]),
             helper.make_node("Softmax", ["sum"], ["p"], axis=-1),
             helper.make_node("IsNaN", ["p"], ["isnan"]),
             helper.make_node("Where", ["isnan", "zero", "p"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, SCORES)]
    for name in extra_readers:
        kind = TensorProto.BOOL if name == "isnan" else TensorProto.FLOAT
        outputs.append(helper.make_tensor_value_info(name, kind, SCORES))
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, SCORES),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, mask_shape)],
        outputs, [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds(mask_shape=MASK) -> dict[str, np.ndarray]:
    """Random scores and a mask of 0 / -inf with a fully masked row, plus a NaN score in another row."""
    scores = (RNG.standard_normal(SCORES) * 4).astype(np.float32)
    scores[0, 2, 5, 3] = np.nan
    mask = np.where(RNG.random(mask_shape) < 0.3, -np.inf, 0.0).astype(np.float32)
    if len(mask_shape) >= 2 and mask_shape[-2] > 1:
        mask[..., 1, :] = -np.inf
    else:                                   # a mask without rows: the scores of row 1 are -inf
        scores[..., 1, :] = -np.inf
    return {"scores": scores, "mask": mask}


def unfused_graph(model: onnx.ModelProto):
    return import_onnx(model)


def fused_graph(model: onnx.ModelProto):
    return run_passes(import_onnx(model), PIPELINE)


def test_fires_on_the_attention_pattern():
    graph = fused_graph(attention_model())
    assert [n.op for n in graph.nodes] == ["Softmax"]
    (softmax,) = graph.nodes
    assert softmax.inputs == ["scores", "mask"] and softmax.outputs == ["y"]
    assert softmax.attrs == {"axis": 3, "nan_to_zero": 1}


@pytest.mark.parametrize("reader,left", [("sum", ["Add", "Softmax"]), ("p", ["Softmax", "Equal", "Not", "Where"]),
                                         ("isnan", ["Softmax", "Equal", "Not", "Where"])])
def test_does_not_fire_when_an_intermediate_has_another_reader(reader, left):
    graph = fused_graph(attention_model((reader,)))
    assert [n.op for n in graph.nodes] == left
    values = feeds()
    want = run_graph(unfused_graph(attention_model((reader,))), values)
    got = run_graph(graph, values)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_mask_that_does_not_run_along_the_row_stays_an_add():
    graph = fused_graph(attention_model(mask_shape=(1, 1, 16, 1)))
    assert [n.op for n in graph.nodes] == ["Add", "Softmax"]
    assert graph.nodes[1].attrs["nan_to_zero"] == 1


@pytest.mark.parametrize("mask_shape", [MASK, (1, 1, 1, 16), (4, 16, 16), (16,)], ids=str)
def test_fused_equals_unfused(mask_shape):
    model = attention_model(mask_shape=mask_shape)
    values = feeds(mask_shape)
    want = run_graph(unfused_graph(model), values)["y"]
    fused = fused_graph(model)
    assert len(fused.nodes) == 1
    np.testing.assert_array_equal(run_graph(fused, values)["y"], want)        # reference, bit for bit
    assert np.all(want[0, :, 1] == 0) and np.all(want[0, 2, 5] == 0) and np.isfinite(want).all()
    with tempfile.TemporaryDirectory() as tmp:
        native = edgepack.load(write_graph(fused, Path(tmp) / "f.epk"), num_threads=2).run(values)["y"]
        separate = edgepack.load(write_graph(unfused_graph(model), Path(tmp) / "u.epk"), num_threads=2).run(values)["y"]
    np.testing.assert_array_equal(native, separate)                           # native, bit for bit
    np.testing.assert_allclose(native, want, rtol=1e-4, atol=1e-5)


def test_unfuse_gives_the_separate_ops_back():
    model = attention_model()
    fused = fused_graph(model)
    separate = fuse_softmax.unfuse(fused)
    assert [n.op for n in separate.nodes] == ["Add", "Softmax", "Equal", "Not", "Where"]
    assert [n.op for n in fused.nodes] == ["Softmax"]                          # left as it was
    separate.verify()
    values = feeds()
    np.testing.assert_array_equal(run_graph(separate, values)["y"], run_graph(fused, values)["y"])
    exported = to_onnx(fused)
    assert [n.op_type for n in exported.graph.node] == ["Add", "Softmax", "Equal", "Not", "Where"]
    np.testing.assert_allclose(run_ort(exported, values)[0], run_graph(fused, values)["y"], rtol=1e-5, atol=1e-6)


def test_static_int8_keeps_the_fused_softmax_in_float(tmp_path):
    model = attention_model()
    samples = []
    for _ in range(4):
        values = feeds()
        values["scores"] = np.nan_to_num(values["scores"], nan=0.0, neginf=-1e4)
        values["mask"] = np.maximum(values["mask"], -1e4)
        samples.append(values)
    path = tmp_path / "attention.onnx"
    onnx.save(model, path)
    compiled = edgepack.compile(path, output=tmp_path / "a.epk", precision="int8", calibration_data=samples,
                                progress=False)
    (softmax,) = [n for n in compiled.graph.nodes if n.op == "Softmax"]
    assert len(softmax.inputs) == 2 and softmax.attrs["nan_to_zero"] == 1
    assert all(compiled.graph.values[n].dtype.name == "FLOAT32" for n in softmax.inputs + softmax.outputs)
    got = edgepack.load(compiled.path).run(samples[0])["y"]
    np.testing.assert_allclose(got, run_graph(fused_graph(model), samples[0])["y"], rtol=1e-4, atol=1e-5)
