"""Frontends end to end: models through import -> passes -> numpy reference, checked against
onnxruntime (ONNX models) or torch itself (nn.Modules) at rtol 1e-4 / atol 1e-5."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from threadpoolctl import threadpool_limits
from torch import nn

from edgepack.frontends import UnsupportedModelError, import_onnx
from edgepack.frontends.torch import import_torch
from edgepack.models import digits, light, minilm, mobilenet
from edgepack.passes import PIPELINE, run_passes
from edgepack.reference import run_graph
from models_util import assert_close, check_against_ort, compile_graph, model_of, one_node_model, run_ort

RNG = np.random.default_rng(0)


def randn(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def single_threaded_blas():
    """The reference's float64 matmuls are small; threaded OpenBLAS is many times slower on them
    when the two cores are shared."""
    with threadpool_limits(1, user_api="blas"):
        yield


# ---- whole models --------------------------------------------------------------------------------
# vgg19 is left out: its 143M random weights alone take longer than this whole file should.
@pytest.mark.parametrize("name", [n for n in light.LIGHT_MODELS if n != "vgg19"])
def test_light_model_matches_ort(name):
    model = light.randomized_light_model(name, seed=0)
    original = Counter(n.op_type for n in onnx.load(light.light_model_path(name)).graph.node)
    del original["ConstantOfShape"]
    assert Counter(n.op_type for n in model.graph.node) == original
    graph = compile_graph(model)
    feeds = {n: randn(*graph.values[n].shape) for n in graph.inputs}
    expected = run_ort(model, feeds)[0]
    assert np.ptp(expected) > 0.01, "randomized weights should make the output vary"
    assert_close(run_graph(graph, feeds)[graph.outputs[0]], expected, name)


@pytest.fixture(scope="module")
def minilm_path(tmp_path_factory):
    return minilm.export_minilm_onnx(tmp_path_factory.mktemp("minilm") / "minilm.onnx")


def test_minilm_matches_ort(minilm_path):
    graph = compile_graph(str(minilm_path))
    assert graph.inputs == ["input_ids", "attention_mask"] and graph.outputs == ["embedding"]
    assert graph.values["input_ids"].shape == (1, minilm.SEQ_LEN)
    # passes/fuse_softmax.py: each attention's mask Add and NaN guard are part of its Softmax
    softmaxes = [n for n in graph.nodes if n.op == "Softmax"]
    assert len(softmaxes) == 6 and all(len(n.inputs) == 2 and n.attrs["nan_to_zero"] == 1 for n in softmaxes)
    assert not {"Equal", "Not"} & set(graph.op_counts())
    model = onnx.load(minilm_path)
    texts = minilm.sentences(500)
    for feeds in minilm.tokenize([texts[0], texts[250], max(texts, key=len)]):
        expected = run_ort(model, feeds)[0]
        actual = run_graph(graph, feeds)["embedding"]
        cosine = float(np.dot(actual[0], expected[0]) / np.linalg.norm(actual) / np.linalg.norm(expected))
        assert cosine >= 0.99999
        assert_close(actual, expected, "MiniLM embedding")


def test_sentences_are_many_distinct_and_deterministic():
    texts = minilm.sentences(500)
    assert len(texts) == len(set(texts)) == 500
    assert texts == minilm.sentences(500)
    assert all(t[0].isupper() and t.endswith(".") and len(t.split()) >= 6 for t in texts)


@pytest.mark.parametrize("train", [digits.train_digits_cnn, mobilenet.train_mobilenet])
def test_trained_digits_model_keeps_its_accuracy(train, tmp_path):
    model, data = train(cache_dir=tmp_path)
    expected = digits.torch_predict(model)(data.x_test)
    graph = run_passes(import_torch(model, data.x_test), PIPELINE)
    actual = run_graph(graph, {"x": data.x_test})[graph.outputs[0]]
    assert_close(actual, expected, type(model).__name__)
    accuracy = digits.accuracy(lambda _: actual, data)
    assert accuracy == digits.accuracy(lambda _: expected, data) and accuracy > 0.9
    reloaded, _ = train(cache_dir=tmp_path)  # from the cache: the same weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()))


class MobileBlocks(nn.Module):
    """Every mobile-vision block the importer must cover, in one forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.se_reduce, self.se_expand = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.grouped = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2)
        self.prelu = nn.PReLU(8)
        self.deconv = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.prelu.weight.uniform_(0.1, 0.4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.hardswish(self.bn(self.stem(x)))
        y = F.relu6(self.depthwise(y))
        gate = F.hardsigmoid(self.se_expand(F.relu(self.se_reduce(y.mean((2, 3), keepdim=True)))))
        y = y * gate + torch.sigmoid(y)
        z = self.prelu(self.grouped(y))                                                  # [N, 8, 8, 8]
        up = F.interpolate(z, scale_factor=2.0, mode="bilinear", align_corners=False)
        corners = F.interpolate(z, size=(16, 16), mode="bilinear", align_corners=True)
        near = F.interpolate(self.deconv(z), size=(16, 16), mode="nearest")             # from 15x15
        y = torch.cat([up[:, :4], near, corners[:, 4:]], dim=1)                         # [N, 12, 16, 16]
        overhang = F.avg_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)               # [N, 12, 9, 9]
        y = F.pad(y, (1, 2, 0, 1), mode="reflect")                                      # [N, 12, 17, 19]
        y = F.max_pool2d(y, 3, stride=2, padding=1) - F.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=False)
        y = torch.flip(y[:, :, :, :9] * overhang, dims=[2])[:, :, :, 1::2]
        t = y.permute(0, 2, 3, 1).reshape(y.shape[0], -1, 12).unsqueeze(1).squeeze(1)
        mean = t.mean(-1, keepdim=True)
        return torch.flatten(torch.sqrt((t - mean).pow(2) + 1.0) / (mean.abs() + 2.0), 1)


@pytest.mark.parametrize("dynamo,opset", [(True, 20), (False, 11), (False, 17)])
def test_torch_mobile_blocks_match_torch(dynamo, opset):
    torch.manual_seed(0)
    module = MobileBlocks().train()
    x = torch.randn(2, 3, 16, 16)
    graph = run_passes(import_torch(module, x, dynamo=dynamo, opset=opset), PIPELINE)
    assert module.training and module.bn.training, "the module's mode is restored after export"
    assert graph.inputs == ["x"], "input names default to forward()'s argument names"
    with torch.no_grad():
        expected = module.eval()(x).numpy()
    assert_close(run_graph(graph, {"x": x.numpy()})[graph.outputs[0]], expected, f"dynamo={dynamo} opset {opset}")


def test_torch_dict_inputs_and_output_names():
    class Affine(nn.Module):
        def forward(self, x, scale):
            return x * scale + 1.0

    x, scale = torch.randn(2, 3), torch.randn(3)
    graph = import_torch(Affine(), {"x": x, "scale": scale}, output_names=["y"])
    assert graph.inputs == ["x", "scale"] and graph.outputs == ["y"]
    actual = run_graph(graph, {"x": x.numpy(), "scale": scale.numpy()})["y"]
    assert_close(actual, (x * scale + 1.0).numpy())


# ---- pooling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,opset,attrs", [
    ("AveragePool", 11, {"pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1}),
    ("AveragePool", 11, {"pads": [0, 1, 1, 0], "ceil_mode": 1}),
    ("AveragePool", 11, {"auto_pad": "SAME_UPPER", "count_include_pad": 1}),
    ("MaxPool", 12, {"pads": [1, 1, 1, 1], "ceil_mode": 1, "dilations": [2, 1]}),
    ("MaxPool", 9, {"auto_pad": "SAME_LOWER"}),
])
def test_pooling(op, opset, attrs):
    x = randn(1, 2, 8, 9)
    check_against_ort(one_node_model(op, {"x": x}, {}, opset, kernel_shape=[3, 3], strides=[2, 2], **attrs),
                      {"x": x}, f"{op} {attrs}")


def test_average_pool_over_the_whole_plane_is_a_reduce_mean():
    # ResNet's last pool: one 7x7 window over a 7x7 plane, imported as GlobalAveragePool would be
    x = randn(1, 3, 7, 5)
    model = one_node_model("AveragePool", {"x": x}, {}, 11, kernel_shape=[7, 5])
    assert [n.op for n in compile_graph(model).nodes] == ["ReduceMean"]
    check_against_ort(model, {"x": x}, "AveragePool 7x5 over 7x5")


# ---- Resize, Pad, Slice --------------------------------------------------------------------------
@pytest.mark.parametrize("mode,coordinates,nearest,scales", [
    ("nearest", "asymmetric", "floor", [1, 1, 2, 2]),
    ("nearest", "half_pixel", "round_prefer_floor", [1, 1, 1.5, 0.5]),
    ("nearest", "align_corners", "round_prefer_ceil", [1, 1, 2, 3]),
    ("nearest", "pytorch_half_pixel", "ceil", [1, 1, 0.5, 2]),
    ("linear", "half_pixel", "round_prefer_floor", [1, 1, 2, 2]),
    ("linear", "pytorch_half_pixel", "round_prefer_floor", [1, 1, 0.5, 1.5]),
    ("linear", "align_corners", "round_prefer_floor", [1, 1, 2, 3]),
    ("linear", "asymmetric", "round_prefer_floor", [1, 1, 1.5, 0.5]),
])
def test_resize_scales(mode, coordinates, nearest, scales):
    x = randn(1, 2, 6, 5)
    model = one_node_model("Resize", {"x": x}, {"roi": None, "scales": np.array(scales, np.float32)}, 13,
                           mode=mode, coordinate_transformation_mode=coordinates, nearest_mode=nearest)
    check_against_ort(model, {"x": x}, f"{mode}/{coordinates}")


@pytest.mark.parametrize("opset,attrs,sizes", [
    (13, {"mode": "linear"}, [1, 2, 9, 4]),
    (18, {"mode": "linear", "axes": [2, 3], "keep_aspect_ratio_policy": "not_larger"}, [12, 7]),
    (18, {"mode": "nearest", "axes": [3, 2], "keep_aspect_ratio_policy": "not_smaller"}, [7, 12]),
])
def test_resize_sizes(opset, attrs, sizes):
    x = randn(1, 2, 6, 5)
    model = one_node_model("Resize", {"x": x}, {"roi": None, "scales": None, "sizes": np.array(sizes, np.int64)},
                           opset, **attrs)
    check_against_ort(model, {"x": x}, str(attrs))


def test_legacy_upsample_and_resize_are_asymmetric():
    x = randn(1, 2, 3, 4)
    scales = {"scales": np.array([1, 1, 2, 1.5], np.float32)}
    for op, opset in (("Upsample", 9), ("Resize", 10)):
        for mode in ("nearest", "linear"):
            check_against_ort(one_node_model(op, {"x": x}, scales, opset, mode=mode), {"x": x}, f"{op}-{opset} {mode}")


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_opset9_attributes(mode):
    x = randn(1, 2, 4, 5)
    model = one_node_model("Pad", {"x": x}, {}, 9, mode=mode, pads=[0, 0, 1, 2, 0, 1, 2, 1], value=1.5)
    check_against_ort(model, {"x": x}, mode)


@pytest.mark.parametrize("opset,mode,pads,axes", [
    (11, "constant", [0, 1, 2, 0, 0, 3], None),
    (13, "reflect", [1, 0, 2, 2, 0, 1], None),
    (13, "edge", [0, 2, 0, 1, 1, 2], None),
    (13, "constant", [1, -1, 2, -2, 0, 1], None),     # negative pads crop
    (18, "reflect", [2, 1, 1, 3], [2, -2]),
    (19, "wrap", [1, 2, 3, 2, 0, 1], None),
    (19, "wrap", [-1, 3, 0, 0], [1, 2]),
])
def test_pad_inputs(opset, mode, pads, axes):
    x = randn(3, 4, 5)
    consts = {"pads": np.array(pads, np.int64), "value": np.array(0.25, np.float32)}
    if axes is not None:
        consts["axes"] = np.array(axes, np.int64)
    check_against_ort(one_node_model("Pad", {"x": x}, consts, opset, mode=mode), {"x": x}, f"{mode} {pads}")


INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([-1], [INT64_MIN], [0], [-1]),                  # reverse a whole axis
    ([4, 10], [0, -100], [0, 2], [-2, -3]),
    ([-2, 5], [1, 0], [1, -1], [-1, -2]),
    ([0, 2], [5, INT64_MAX], [1, 2], [2, 1]),
    ([3], [-9], [-1], [-1]),
])
def test_slice_steps(starts, ends, axes, steps):
    x = randn(5, 6, 7)
    consts = {name: np.array(v, np.int64) for name, v in
              (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))}
    check_against_ort(one_node_model("Slice", {"x": x}, consts, 13), {"x": x}, f"{starts}:{ends}:{steps}")


def test_slice_opset9_attributes():
    x = randn(5, 6, 7)
    model = one_node_model("Slice", {"x": x}, {}, 9, starts=[1, -3], ends=[100, -1], axes=[0, 2])
    check_against_ort(model, {"x": x})


# ---- opset variants ------------------------------------------------------------------------------
def ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


# name: (op, opset, input shape, constant inputs, attributes)
OPSET_CASES = {
    "Softmax-9 flattens from axis": ("Softmax", 9, (2, 3, 4), {}, {"axis": 1}),
    "Softmax-13 one axis": ("Softmax", 13, (2, 3, 4), {}, {"axis": 1}),
    "LogSoftmax-11": ("LogSoftmax", 11, (2, 3, 4), {}, {"axis": 1}),
    "Squeeze-9": ("Squeeze", 9, (2, 1, 4, 1), {}, {"axes": [1]}),
    "Squeeze-13": ("Squeeze", 13, (2, 1, 4, 1), {"axes": ints(-1, 1)}, {}),
    "Squeeze-13 every 1": ("Squeeze", 13, (2, 1, 4, 1), {}, {}),
    "Unsqueeze-9": ("Unsqueeze", 9, (2, 3), {}, {"axes": [0, 3]}),
    "Unsqueeze-13": ("Unsqueeze", 13, (2, 3), {"axes": ints(0, -1)}, {}),
    "Split-9": ("Split", 9, (2, 6), {}, {"axis": 1, "split": [2, 4]}),
    "Split-13": ("Split", 13, (2, 6), {"split": ints(1, 5)}, {"axis": 1}),
    "Split-18 uneven": ("Split", 18, (2, 7), {}, {"axis": 1, "num_outputs": 3}),
    "Clip-9": ("Clip", 9, (2, 6), {}, {"min": -0.5, "max": 0.7}),
    "Clip-11": ("Clip", 11, (2, 6), {"min": np.array(-0.5, np.float32), "max": np.array(0.7, np.float32)}, {}),
    "Clip-13 max only": ("Clip", 13, (2, 6), {"min": None, "max": np.array(0.2, np.float32)}, {}),
    "ReduceMean-9": ("ReduceMean", 9, (2, 3, 4), {}, {"axes": [1], "keepdims": 0}),
    "ReduceMean-18": ("ReduceMean", 18, (2, 3, 4), {"axes": ints(0, -1)}, {}),
    "ReduceSum-13 every axis": ("ReduceSum", 13, (2, 3, 4), {}, {"keepdims": 0}),
    "ReduceL1-13": ("ReduceL1", 13, (2, 3, 4), {}, {"axes": [2]}),
    "ReduceL2-18": ("ReduceL2", 18, (2, 3, 4), {"axes": ints(1)}, {"keepdims": 0}),
    "ReduceSumSquare-18": ("ReduceSumSquare", 18, (2, 3, 4), {"axes": ints(0, 2)}, {}),
    "HardSigmoid-9": ("HardSigmoid", 9, (2, 6), {}, {"alpha": 0.3, "beta": 0.4}),
    "HardSwish-14": ("HardSwish", 14, (2, 6), {}, {}),
    "Gelu-20 tanh": ("Gelu", 20, (2, 6), {}, {"approximate": "tanh"}),
    "Gelu-20": ("Gelu", 20, (2, 6), {}, {}),
    "PRelu-9": ("PRelu", 9, (2, 3, 4), {"slope": np.array([[0.1], [0.3], [0.6]], np.float32)}, {}),
    "Reshape-21 copies 0 dims": ("Reshape", 21, (2, 3, 4), {"shape": ints(0, -1)}, {}),
    "Flatten-21": ("Flatten", 21, (2, 3, 4), {}, {"axis": 2}),
    "Transpose-21": ("Transpose", 21, (2, 3, 4), {}, {"perm": [2, 0, 1]}),
    "Squeeze-21": ("Squeeze", 21, (2, 1, 4, 1), {"axes": ints(3)}, {}),
    "LayerNormalization-17": ("LayerNormalization", 17, (2, 3, 4), {"scale": randn(4), "bias": randn(4)},
                              {"epsilon": 1e-3}),
}


@pytest.mark.parametrize("case", list(OPSET_CASES))
def test_opset_variants(case):
    op, opset, shape, consts, attrs = OPSET_CASES[case]
    n_outputs = attrs.get("num_outputs", len(attrs.get("split", consts.get("split", [0]))))
    x = randn(*shape) * 2
    check_against_ort(one_node_model(op, {"x": x}, consts, opset, n_outputs, **attrs), {"x": x}, case)


# ---- ops decomposed or folded by the importer ----------------------------------------------------
def test_is_nan_and_comparisons():
    x = randn(3, 4)
    x[0, 1] = x[2, 3] = np.nan
    check_against_ort(one_node_model("IsNaN", {"x": x}, {}, 13), {"x": x})
    b = x.copy()
    b[1] = randn(4)
    for op, opset in (("GreaterOrEqual", 12), ("LessOrEqual", 16)):
        check_against_ort(one_node_model(op, {"x": x, "b": b}, {}, opset), {"x": x, "b": b}, op)


def test_cast_like():
    x = (randn(2, 3) * 10).astype(np.int64)
    check_against_ort(one_node_model("CastLike", {"x": x}, {"like": np.zeros(1, np.float32)}, 15), {"x": x})


@pytest.mark.parametrize("batch_dims,indices", [
    (0, np.array([[[0, 1], [2, -1]], [[1, 3], [0, 0]]])),
    (0, np.array([[2], [-3]])),
    (1, np.array([[[1], [3]], [[0], [-2]], [[4], [2]]])),
])
def test_gather_nd_with_constant_indices(batch_dims, indices):
    x = randn(3, 5, 4)
    model = one_node_model("GatherND", {"x": x}, {"indices": indices.astype(np.int64)}, 13, batch_dims=batch_dims)
    check_against_ort(model, {"x": x}, f"batch_dims {batch_dims}")


def test_gather_elements_with_constant_indices():
    x = randn(3, 5, 4)
    indices = RNG.integers(-5, 5, size=(3, 2, 4)).astype(np.int64)
    check_against_ort(one_node_model("GatherElements", {"x": x}, {"indices": indices}, 13, axis=1), {"x": x})


@pytest.mark.parametrize("attrs", [
    {"output_shape": [9, 10]},
    {"auto_pad": "SAME_UPPER"},
    {"auto_pad": "SAME_LOWER", "output_padding": [1, 0]},
    {"pads": [1, 0, 0, 1], "dilations": [2, 1]},
])
def test_conv_transpose_padding(attrs):
    x = randn(1, 4, 4, 5)
    weights = {"w": randn(4, 3, 3, 2), "b": randn(3)}
    model = one_node_model("ConvTranspose", {"x": x}, weights, 11, strides=[2, 2], **attrs)
    check_against_ort(model, {"x": x}, str(attrs))


def test_ops_without_handler_fold_on_constants():
    """Trilu and Mod have no IR op; on constants the importer evaluates them with onnx's reference."""
    nodes = [helper.make_node("Trilu", ["matrix"], ["upper"], upper=1),
             helper.make_node("Cast", ["upper"], ["upper_int"], to=TensorProto.INT64),
             helper.make_node("Mod", ["upper_int", "three"], ["remainder"]),
             helper.make_node("Cast", ["remainder"], ["factor"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x", "factor"], ["y"])]
    consts = [numpy_helper.from_array(np.arange(1, 17, dtype=np.float32).reshape(4, 4), "matrix"),
              numpy_helper.from_array(np.array(3, np.int64), "three")]
    graph = helper.make_graph(nodes, "fold", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                              [helper.make_empty_tensor_value_info("y")], consts)
    model = model_of(graph, 14)
    assert compile_graph(model).op_counts() == {"Mul": 1}
    x = randn(4, 4)
    check_against_ort(model, {"x": x})


# ---- errors --------------------------------------------------------------------------------------
def test_unsupported_op_names_op_node_and_supported_ops():
    model = one_node_model("Det", {"x": randn(2, 3, 3)}, {}, 13)
    expected = r"unsupported op 'Det' at node 'det_node'.*Supported ONNX ops:.*Conv"
    with pytest.raises(UnsupportedModelError, match=expected):
        import_onnx(model)


def test_custom_domain_op_is_unsupported():
    node = helper.make_node("FancyAttention", ["x"], ["y"], name="fancy", domain="com.example")
    graph = helper.make_graph([node], "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(UnsupportedModelError, match=r"'FancyAttention' \(domain com.example\) at node 'fancy'"):
        import_onnx(model)


def test_run_time_indices_are_rejected():
    model = one_node_model("GatherND", {"x": randn(3, 4), "i": np.zeros((2, 1), np.int64)}, {}, 13)
    with pytest.raises(UnsupportedModelError, match=r"gathernd_node.*indices 'i' must be constant"):
        import_onnx(model)


def _dynamic_model() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dynamic",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_empty_tensor_value_info("y")])
    return model_of(graph, 13)


def test_dynamic_input_needs_input_shapes():
    with pytest.raises(UnsupportedModelError, match=r"input 'x' has a dynamic shape.*input_shapes"):
        import_onnx(_dynamic_model())
    assert import_onnx(_dynamic_model(), {"x": (4, 3)}).values["x"].shape == (4, 3)


def test_input_shapes_must_name_inputs():
    with pytest.raises(UnsupportedModelError, match=r"input_shapes names \['y'\], which are not inputs"):
        import_onnx(_dynamic_model(), {"x": (1, 3), "y": (1, 3)})


def test_torch_export_failure_names_the_module():
    class NeedsNumpy(nn.Module):
        def forward(self, x):
            return torch.from_numpy(np.sort(x.numpy()))

    with pytest.raises(UnsupportedModelError, match=r"torch.onnx.export failed for module NeedsNumpy"):
        import_torch(NeedsNumpy(), torch.randn(3))
