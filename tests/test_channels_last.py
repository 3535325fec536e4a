"""Channels-last CNNs (passes/channels_last.py): the NHWC Conv and MaxPool kernels against the numpy
reference, the pass on CNN-shaped graphs (Transposes cancel, results unchanged, depthwise and int8
graphs left alone), `unfold` for the other formats, and errors on attributes the kernels refuse."""
from __future__ import annotations

import numpy as np
import pytest

import edgepack
from edgepack.ir import DType, Graph, Node
from edgepack.ir.shape_inference import infer
from edgepack.passes import channels_last, standard_ops
from edgepack.reference import run_graph
from op_harness import op_graph, run_graph_native, run_op, write_graph

RNG = np.random.default_rng(77)
RTOL, ATOL = 1e-4, 1e-5   # the float kernels' tolerance against the float64 reference
NO_ACT = {"activation": "none", "act_min": 0.0, "act_max": 0.0}
ACT = {"none": NO_ACT, "relu": {"activation": "relu", "act_min": 0.0, "act_max": 0.0},
       "clip": {"activation": "clip", "act_min": -0.5, "act_max": 0.75}}
POOL = {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1]}


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def nhwc_conv(n, c, h, w, m, k, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), act="none", bias=True,
              num_threads=2, nchw_input=False):
    x = randn(n, c, h, w) if nchw_input else randn(n, h, w, c)
    wt = randn(m, c, k, k, scale=1.0 / np.sqrt(c * k * k))
    attrs = {"strides": list(strides), "pads": list(pads), "dilations": list(dilations), "group": 1,
             **ACT[act], "channels_last": 2 if nchw_input else 1}
    native, reference = run_op("Conv", attrs, [x, wt] + ([randn(m)] if bias else []), consts={1, 2},
                               num_threads=num_threads)
    assert native[0].shape == reference[0].shape and native[0].shape[-1] == m
    np.testing.assert_allclose(native[0], reference[0], rtol=RTOL, atol=ATOL)


# ---- the NHWC Conv: its three forms (A in place, A gathered in place, padded planes) and Winograd ---
@pytest.mark.parametrize("c,m", [(1, 1), (3, 8), (17, 33), (64, 40), (300, 70)])
@pytest.mark.parametrize("hw", [(1, 1), (5, 7), (7, 7), (14, 14)])
def test_conv_1x1_in_place(c, m, hw):
    # stride 1, no padding: the input itself is the GEMM's A (rows of C floats)
    nhwc_conv(1, c, *hw, m, 1, act="relu")


@pytest.mark.parametrize("strides", [(2, 2), (2, 1), (3, 2)])
def test_conv_1x1_strided_gathers_pixels(strides):
    nhwc_conv(1, 24, 13, 11, 20, 1, strides=strides)
    nhwc_conv(2, 64, 14, 14, 72, 1, strides=strides, act="clip")


@pytest.mark.parametrize("k,strides,pads,dilations", [
    (3, (2, 2), (1, 1, 1, 1), (1, 1)),     # ResNet's strided 3x3
    (3, (1, 1), (0, 2, 1, 0), (1, 1)),     # asymmetric pads
    (3, (1, 1), (2, 2, 2, 2), (2, 2)),     # dilated
    (7, (2, 2), (3, 3, 3, 3), (1, 1)),     # the RGB stem
    (1, (1, 1), (1, 0, 1, 0), (1, 1)),     # a padded 1x1 takes the planes
    (2, (2, 3), (0, 1, 1, 0), (1, 2)),
], ids=str)
@pytest.mark.parametrize("c", [3, 16, 40])
def test_conv_padded_planes(k, strides, pads, dilations, c):
    nhwc_conv(1, c, 15, 12, 24, k, strides=strides, pads=pads, dilations=dilations, act="relu")


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("c,hw,m", [(16, (12, 12), 32), (24, (11, 17), 40), (64, (14, 14), 64), (32, (9, 9), 160)],
                         ids=str)
def test_conv_winograd_nhwc(c, hw, m, num_threads):
    # 3x3 stride 1 with at least 32 2x2 tiles: Winograd reads the NHWC rows and writes NHWC pixels
    nhwc_conv(1, c, *hw, m, 3, pads=(1, 1, 1, 1), act="relu", num_threads=num_threads)
    nhwc_conv(2, c, *hw, m, 3, pads=(0, 1, 2, 1), bias=False, num_threads=num_threads)


def test_conv_nhwc_batch_threads_and_no_bias():
    for num_threads in (1, 3):
        nhwc_conv(3, 8, 9, 10, 12, 3, strides=(2, 2), pads=(1, 1, 1, 1), bias=False, num_threads=num_threads)
        nhwc_conv(2, 20, 6, 6, 9, 1, num_threads=num_threads)


@pytest.mark.parametrize("k,strides,pads", [
    (7, (2, 2), (3, 3, 3, 3)),   # ResNet's stem
    (3, (2, 2), (0, 0, 0, 0)),   # SqueezeNet's
    (3, (1, 1), (1, 1, 1, 1)),   # Winograd, transposing its input rows
    (1, (1, 1), (0, 0, 0, 0)),   # a 1x1 reads NCHW through the planes
    (1, (2, 2), (0, 0, 0, 0)),
], ids=str)
@pytest.mark.parametrize("num_threads", [1, 2])
def test_conv_nchw_input_nhwc_output(k, strides, pads, num_threads):
    # channels_last 2: the entry Transpose folded into the first conv
    nhwc_conv(1, 3, 19, 17, 24, k, strides=strides, pads=pads, act="relu", num_threads=num_threads, nchw_input=True)
    nhwc_conv(2, 16, 12, 12, 40, k, strides=strides, pads=pads, num_threads=num_threads, nchw_input=True)


# ---- the NHWC MaxPool ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,kernel,strides,pads,dilations", [
    ((1, 56, 56, 64), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    ((2, 9, 11, 3), [3, 2], [1, 2], [0, 1, 1, 0], [1, 1]),
    ((1, 7, 8, 17), [3, 3], [2, 2], [2, 2, 2, 2], [2, 2]),
    ((1, 13, 13, 40), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 5, 5, 1), [5, 5], [1, 1], [0, 0, 0, 0], [1, 1]),
    # inside the image the window is fixed offsets, 64 channels at a time, then the rest
    ((1, 9, 10, 80), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
    ((2, 12, 12, 130), [2, 3], [2, 1], [0, 1, 1, 0], [2, 1]),
    ((1, 10, 11, 128), [3, 3], [2, 2], [0, 0, 0, 0], [1, 1]),
], ids=str)
@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_max_pool_nhwc(shape, kernel, strides, pads, dilations, num_threads):
    attrs = {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations, "channels_last": 1}
    native, reference = run_op("MaxPool", attrs, [randn(*shape)], num_threads=num_threads)
    np.testing.assert_array_equal(native[0], reference[0])


@pytest.mark.parametrize("channels", [21, 64, 70])
def test_max_pool_nhwc_nan_and_infinities(channels):
    x = randn(1, 7, 9, channels)
    x[0, 3, 4, 0] = x[0, 0, 0, 20] = x[0, 6, 8, 5] = x[0, 4, 4, channels - 1] = np.nan
    x[0, 2, 2, :] = np.inf
    x[0, 4:6, 4:6, 3] = -np.inf
    native, reference = run_op("MaxPool", {**POOL, "channels_last": 1}, [x])
    np.testing.assert_array_equal(native[0], reference[0])   # NaN where the reference has NaN
    assert np.isnan(native[0]).sum() == np.isnan(reference[0]).sum() > 0


# ---- what the kernels refuse -----------------------------------------------------------------------
def _load_error(graph) -> str:
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises((edgepack.ArtifactError, edgepack.UnsupportedError)) as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    return str(err.value)


def test_channels_last_errors_name_the_op():
    conv = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], **NO_ACT}
    graph, _ = op_graph("Conv", {**conv, "group": 2, "channels_last": 1}, [randn(1, 5, 5, 4), randn(6, 2, 1, 1)],
                        consts={1})
    message = _load_error(graph)
    assert "conv_0" in message and "channels_last needs one group" in message
    graph, _ = op_graph("Conv", {**conv, "group": 1, "channels_last": 1}, [randn(1, 5, 5, 4), randn(6, 4, 1, 1)],
                        consts={1})
    graph.nodes[0].attrs["channels_last"] = 3
    assert "channels_last must be 0, 1 or 2" in _load_error(graph)
    graph, _ = op_graph("Conv", {**conv, "group": 1, "channels_last": 1}, [randn(1, 5, 5, 4), randn(6, 4, 1, 1)],
                        consts={1})
    graph.values["out0"].shape = (1, 6, 5, 5)   # an NCHW output for an NHWC conv
    assert "output" in _load_error(graph)
    graph, _ = op_graph("MaxPool", {**POOL, "channels_last": 1}, [randn(1, 6, 6, 3)])
    graph.nodes[0].attrs["channels_last"] = 3
    assert "maxpool_0" in _load_error(graph)


# ---- the pass ----------------------------------------------------------------------------------------
def _add(graph: Graph, op: str, inputs: list[str], attrs: dict | None = None, name: str | None = None) -> str:
    attrs = dict(attrs or {})
    types = [(graph.values[n].dtype, graph.values[n].shape) for n in inputs]
    dtype, shape = infer(op, attrs, types)[0]
    out = graph.unique_name(name or f"{op.lower()}{len(graph.nodes)}")
    graph.add_value(out, dtype, shape)
    graph.nodes.append(Node(op, f"n{len(graph.nodes)}", list(inputs), [out], attrs))
    return out


def _conv(graph: Graph, x: str, m: int, k: int, stride=1, act="relu", group=1) -> str:
    c = graph.values[x].shape[1]
    w = graph.add_const(randn(m, c // group, k, k, scale=1.0 / np.sqrt(c * k * k / group)), "w")
    b = graph.add_const(randn(m), "b")
    p = k // 2
    return _add(graph, "Conv", [x, w, b], {"strides": [stride] * 2, "pads": [p] * 4, "dilations": [1, 1],
                                           "group": group, **ACT[act]})


def cnn(depthwise: bool = False) -> Graph:
    """A stem, a max pool, a residual block with a projection, a fire module (Concat) and a global
    average pool with a classifier: the op mix of ResNet and SqueezeNet."""
    g = Graph("cnn")
    g.add_value("image", DType.FLOAT32, (1, 3, 32, 32))
    g.inputs = ["image"]
    x = _conv(g, "image", 16, 7, stride=2)
    x = _add(g, "MaxPool", [x], POOL)
    y = _conv(g, x, 16, 1)
    y = _conv(g, y, 16, 3, group=16 if depthwise else 1)
    y = _conv(g, y, 32, 1, act="none")
    shortcut = _conv(g, x, 32, 1, act="none")
    x = _add(g, "Relu", [_add(g, "Add", [y, shortcut])])
    squeeze = _conv(g, x, 8, 1)
    x = _add(g, "Concat", [_conv(g, squeeze, 16, 1), _conv(g, squeeze, 16, 3)], {"axis": 1})
    x = _add(g, "ReduceMean", [x], {"axes": [2, 3], "keepdims": 1})
    g.outputs = [x]
    g.verify()
    return g


def _copy(graph: Graph) -> Graph:
    copy = graph.without_nodes()
    copy.nodes = [Node(n.op, n.name, list(n.inputs), list(n.outputs), dict(n.attrs)) for n in graph.nodes]
    return copy


def test_pass_leaves_one_transpose_at_entry_and_exit():
    graph = cnn()
    feeds = {"image": randn(1, 3, 32, 32)}
    want = run_graph(graph, feeds)[graph.outputs[0]]
    result = channels_last.run(_copy(graph))
    assert result.modified
    converted = result.graph
    converted.verify()
    transposes = [n for n in converted.nodes if n.op == "Transpose"]
    assert [t.attrs["perm"] for t in transposes] == [channels_last.TO_LAST, channels_last.TO_FIRST]
    assert transposes[0].inputs == ["image"] and transposes[1].outputs == graph.outputs
    # the stride-2 stem keeps its Transpose (channels_last 1)
    assert all(n.attrs.get("channels_last") == 1 for n in converted.nodes if n.op in ("Conv", "MaxPool"))
    concat = next(n for n in converted.nodes if n.op == "Concat")
    reduce = next(n for n in converted.nodes if n.op == "ReduceMean")
    assert concat.attrs["axis"] == 3 and reduce.attrs["axes"] == [1, 2]
    np.testing.assert_allclose(run_graph(converted, feeds)[graph.outputs[0]], want, rtol=1e-6, atol=1e-7)
    native = run_graph_native(converted, feeds)[graph.outputs[0]]
    np.testing.assert_allclose(native, want, rtol=RTOL, atol=ATOL)


def test_unfold_restores_nchw_for_other_formats():
    graph = cnn()
    converted = channels_last.run(_copy(graph)).graph
    before = [(n.op, dict(n.attrs)) for n in converted.nodes]
    unfolded = standard_ops(converted)
    assert [(n.op, dict(n.attrs)) for n in converted.nodes] == before   # the native graph is unchanged
    assert "Transpose" not in unfolded.op_counts()
    assert not any("channels_last" in n.attrs for n in unfolded.nodes)
    assert unfolded.op_counts() == graph.op_counts()
    feeds = {"image": randn(1, 3, 32, 32)}
    np.testing.assert_allclose(run_graph(unfolded, feeds)[graph.outputs[0]],
                               run_graph(graph, feeds)[graph.outputs[0]], rtol=1e-6, atol=1e-7)


def test_pass_skips_graphs_with_depthwise_or_int8_convs():
    assert not channels_last.run(cnn(depthwise=True)).modified
    graph = cnn()
    graph.values[graph.nodes[0].outputs[0]].dtype = DType.INT8   # as quantization would leave a conv
    assert not channels_last.run(graph).modified


def test_pass_keeps_transposes_a_broadcast_needs():
    # Add of a [1, C, 1, 1] bias-like constant: the layout cannot move past it, so the Transposes stay
    # around it and the result is still right.
    g = Graph("bias")
    g.add_value("x", DType.FLOAT32, (1, 4, 9, 9))
    g.inputs = ["x"]
    y = _conv(g, "x", 8, 3)
    y = _add(g, "Add", [y, g.add_const(randn(1, 8, 1, 1), "shift")])
    y = _conv(g, y, 8, 3)
    g.outputs = [y]
    feeds = {"x": randn(1, 4, 9, 9)}
    want = run_graph(g, feeds)[y]
    converted = channels_last.run(_copy(g)).graph
    # the Transposes to NHWC went into the stride-1 convs (channels_last 2); those back to NCHW stay
    assert converted.op_counts()["Transpose"] == 2
    assert [n.attrs.get("channels_last") for n in converted.nodes if n.op == "Conv"] == [2, 2]
    unfolded = standard_ops(converted)
    assert "Transpose" not in unfolded.op_counts()
    np.testing.assert_allclose(run_graph(unfolded, feeds)[y], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run_graph_native(converted, feeds)[y], want, rtol=RTOL, atol=ATOL)


def test_compile_runs_light_cnn_channels_last(tmp_path):
    # end to end: edgepack.compile applies the pass; the artifact matches the fp32 reference
    graph = cnn()
    from edgepack.backends.onnx import write_onnx
    onnx_path = tmp_path / "cnn.onnx"
    write_onnx(graph, onnx_path)
    compiled = edgepack.compile(onnx_path, output=tmp_path / "cnn.epk", precision="fp32", progress=False)
    ops = compiled.graph.op_counts()
    assert ops["Transpose"] == 2 and all(n.attrs.get("channels_last") for n in compiled.graph.nodes if n.op == "Conv")
    feeds = {compiled.graph.inputs[0]: randn(1, 3, 32, 32)}
    want = run_graph(graph, {"image": feeds[compiled.graph.inputs[0]]})[graph.outputs[0]]
    got = edgepack.load(compiled.path).run(feeds)
    np.testing.assert_allclose(list(got.values())[0], want, rtol=RTOL, atol=ATOL)


# ---- the fused residual (passes/fuse_residual.py) ------------------------------------------------------
@pytest.mark.parametrize("act", ["none", "relu", "clip"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_conv_residual_added_before_the_activation(act, strides, num_threads):
    x = randn(2, 9, 11, 40)
    w = randn(70, 40, 1, 1, scale=0.2)
    oh, ow = (9 - 1) // strides[0] + 1, (11 - 1) // strides[1] + 1
    residual = randn(2, oh, ow, 70)
    attrs = {"strides": list(strides), "pads": [0] * 4, "dilations": [1, 1], "group": 1, **ACT[act],
             "channels_last": 1}
    native, reference = run_op("Conv", attrs, [x, w, randn(70), residual], consts={1, 2}, num_threads=num_threads)
    np.testing.assert_allclose(native[0], reference[0], rtol=RTOL, atol=ATOL)
    # the residual really is added: without it the result differs by about its size
    plain, _ = run_op("Conv", attrs, [x, w, randn(70)], consts={1, 2})
    assert np.abs(plain[0] - native[0]).max() > 0.5
    # no bias: input 2 is empty
    native, reference = run_op("Conv", attrs, [x, w, None, residual], consts={1})
    np.testing.assert_allclose(native[0], reference[0], rtol=RTOL, atol=ATOL)


def test_conv_residual_errors_name_the_op():
    conv = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1, **NO_ACT, "channels_last": 1}
    graph, _ = op_graph("Conv", conv, [randn(1, 5, 5, 4), randn(6, 4, 3, 3), randn(6), randn(1, 5, 5, 6)],
                        consts={1, 2})
    message = _load_error(graph)
    assert "conv_0" in message and "residual input needs a channels_last 1x1 conv" in message
    conv = {**conv, "pads": [0] * 4}
    graph, _ = op_graph("Conv", conv, [randn(1, 5, 5, 4), randn(6, 4, 1, 1), randn(6), randn(1, 5, 5, 6)],
                        consts={1, 2})
    graph.values["in3"].shape = (1, 5, 6, 5)
    message = _load_error(graph)
    assert "conv_0" in message and "residual" in message


def test_fuse_residual_takes_the_add_and_relu():
    from edgepack.passes import fuse_residual
    graph = cnn()
    feeds = {"image": randn(1, 3, 32, 32)}
    want = run_graph(graph, feeds)[graph.outputs[0]]
    fused = fuse_residual.run(channels_last.run(_copy(graph)).graph)
    assert fused.modified
    g = fused.graph
    g.verify()
    assert "Add" not in g.op_counts() and "Relu" not in g.op_counts()
    conv = next(n for n in g.nodes if n.op == "Conv" and len(n.inputs) == 4)
    assert conv.attrs["activation"] == "relu"
    # the conv that runs later of the two addends takes the other as its residual
    order = [n.outputs[0] for n in g.nodes]
    assert order.index(conv.inputs[3]) < order.index(conv.outputs[0])
    np.testing.assert_allclose(run_graph(g, feeds)[graph.outputs[0]], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run_graph_native(g, feeds)[graph.outputs[0]], want, rtol=RTOL, atol=ATOL)
    unfolded = standard_ops(g)
    assert unfolded.op_counts() == graph.op_counts()
    np.testing.assert_allclose(run_graph(unfolded, feeds)[graph.outputs[0]], want, rtol=1e-6, atol=1e-7)


def test_fuse_residual_leaves_nchw_and_3x3_convs():
    from edgepack.passes import fuse_residual
    graph = cnn()   # NCHW: nothing to fuse
    assert not fuse_residual.run(_copy(graph)).modified
    g = Graph("3x3")
    g.add_value("x", DType.FLOAT32, (1, 8, 9, 9))
    g.inputs = ["x"]
    y = _add(g, "Relu", [_add(g, "Add", [_conv(g, "x", 8, 3, act="none"), "x"])])
    g.outputs = [y]
    converted = channels_last.run(_copy(g)).graph
    assert not fuse_residual.run(converted).modified   # a 3x3 conv may run as Winograd


# ---- channel Concats written in place (y_stride) -------------------------------------------------------
def _fire(hw: int, squeeze: int, expand: int) -> Graph:
    """SqueezeNet's fire module: squeeze 1x1, then expand 1x1 and 3x3 concatenated on the channels."""
    g = Graph("fire")
    g.add_value("x", DType.FLOAT32, (1, 24, hw, hw))
    g.inputs = ["x"]
    s = _conv(g, "x", squeeze, 1)
    y = _add(g, "Concat", [_conv(g, s, expand, 1), _conv(g, s, expand, 3)], {"axis": 1})
    g.outputs = [_conv(g, y, 8, 1)]
    g.verify()
    return g


@pytest.mark.parametrize("hw,squeeze,expand", [(8, 8, 16), (13, 16, 48), (15, 16, 40)])  # direct; Winograd
@pytest.mark.parametrize("num_threads", [1, 2])
def test_concat_parts_written_in_place(hw, squeeze, expand, num_threads):
    from edgepack.planner.memory import plan_memory
    graph = _fire(hw, squeeze, expand)
    feeds = {"x": randn(1, 24, hw, hw)}
    want = run_graph(graph, feeds)[graph.outputs[0]]
    converted = channels_last.run(_copy(graph)).graph
    concat = next(n for n in converted.nodes if n.op == "Concat")
    producers = converted.producers()
    assert [producers[n].attrs.get("y_stride") for n in concat.inputs] == [2 * expand] * 2
    plan = plan_memory(converted)
    base = plan.offsets[concat.outputs[0]]
    assert [plan.offsets[n] - base for n in concat.inputs] == [0, 4 * expand]
    got = run_graph_native(converted, feeds, num_threads=num_threads)[graph.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    unfolded = standard_ops(converted)
    assert not any("y_stride" in n.attrs for n in unfolded.nodes)


def test_concat_in_place_needs_parts_read_only_by_it():
    from edgepack.planner.memory import plan_memory
    graph = _fire(8, 8, 16)
    converted = channels_last.run(_copy(graph)).graph
    concat = next(n for n in converted.nodes if n.op == "Concat")
    part = concat.inputs[0]
    # a part someone else reads too is not written in place (the pass leaves it; the planner refuses a
    # graph that claims it anyway)
    graph2 = _fire(8, 8, 16)
    extra = _add(graph2, "Relu", [graph2.nodes[1].outputs[0]])
    graph2.outputs.append(extra)
    converted2 = channels_last.run(_copy(graph2)).graph
    assert not any("y_stride" in n.attrs for n in converted2.nodes)
    bad = _copy(converted)
    bad.outputs.append(part)   # the part now lives past the Concat
    with pytest.raises(ValueError, match="cannot be placed there"):
        plan_memory(bad)


def test_y_stride_errors_name_the_op():
    conv = {"strides": [1, 1], "pads": [0] * 4, "dilations": [1, 1], "group": 1, **NO_ACT, "channels_last": 1}
    for stride, needle in ((5, "y_stride 5 needs channels_last and at least the 6"), (1 << 20, "runs past the arena")):
        graph, _ = op_graph("Conv", {**conv, "y_stride": stride}, [randn(1, 5, 5, 4), randn(6, 4, 1, 1)], consts={1})
        message = _load_error(graph)
        assert "conv_0" in message and needle in message
    nchw = {**conv, "y_stride": 12}
    del nchw["channels_last"]
    graph, _ = op_graph("Conv", nchw, [randn(1, 4, 5, 5), randn(6, 4, 1, 1)], consts={1})
    assert "needs channels_last" in _load_error(graph)


def test_max_pool_window_limit():
    # the NHWC pool holds up to 64 window cells: the pass leaves a larger window in NCHW (Transposes
    # around it), and the kernel refuses one
    g = Graph("wide")
    g.add_value("x", DType.FLOAT32, (1, 4, 20, 20))
    g.inputs = ["x"]
    y = _add(g, "MaxPool", [_conv(g, "x", 8, 3)], {"kernel": [9, 9], "strides": [1, 1], "pads": [0] * 4,
                                                    "dilations": [1, 1]})
    g.outputs = [_conv(g, y, 8, 1)]
    feeds = {"x": randn(1, 4, 20, 20)}
    want = run_graph(g, feeds)[g.outputs[0]]
    converted = channels_last.run(_copy(g)).graph
    pool = next(n for n in converted.nodes if n.op == "MaxPool")
    assert "channels_last" not in pool.attrs
    np.testing.assert_allclose(run_graph_native(converted, feeds)[g.outputs[0]], want, rtol=RTOL, atol=ATOL)
    graph, _ = op_graph("MaxPool", {"kernel": [9, 8], "strides": [1, 1], "pads": [0] * 4, "dilations": [1, 1],
                                    "channels_last": 1}, [randn(1, 12, 12, 3)])
    assert "limited to 64 cells" in _load_error(graph)
