"""The .mlpackage emitter. Core ML predicts only on macOS: everywhere the packages are checked
structurally (spec version, inputs / outputs, ops, weight storage); on macOS the same tests also
compare Core ML's predictions with the reference (docs/targets.md)."""
from __future__ import annotations

import platform

import numpy as np
import pytest
import torch

import edgepack
from edgepack.backends.coreml import deployment_target, describe_package, write_coreml
from edgepack.errors import UnsupportedError
from edgepack.ir import DType
from edgepack.models import minilm
from edgepack.models.digits import train_digits_cnn
from edgepack.models.mobilenet import train_mobilenet
from edgepack.profiles import load_profile
from edgepack.reference import run_graph

IPHONE = load_profile("iphone-15-pro")
SPEC_IOS17, SPEC_IOS18 = 8, 9


@pytest.fixture(scope="module")
def cache_dir(request, tmp_path_factory):
    """Trained weights and the exported MiniLM, kept in pytest's cache across runs when the cache is on."""
    if request.config.pluginmanager.hasplugin("cacheprovider"):
        return request.config.cache.mkdir("edgepack-models")
    return tmp_path_factory.mktemp("models")


def _weight_elements(graph, dtype: DType) -> int:
    return sum(v.numel for v in graph.values.values() if v.is_const and v.dtype is dtype)


def _predicts_like_reference(path, graph, samples, atol: float) -> None:
    """On macOS, Core ML's outputs against the reference of the same graph (float16 compute: loose)."""
    if platform.system() != "Darwin":
        return
    import coremltools as ct
    model = ct.models.MLModel(str(path))
    for feeds in samples:
        want = run_graph(graph, feeds)
        got = model.predict({k: v.astype(np.int32) if v.dtype == np.int64 else v for k, v in feeds.items()})
        for name in graph.outputs:
            np.testing.assert_allclose(np.asarray(got[name]).reshape(want[name].shape), want[name], atol=atol)


@pytest.mark.parametrize("build", [train_digits_cnn, train_mobilenet], ids=["digits_cnn", "mobilenet"])
def test_int8_cnn_package(build, cache_dir, tmp_path):
    model, data = build(cache_dir)
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(data.x_test[:1]), precision="int8",
                                calibration_data=[{"x": x[None]} for x in data.x_train[:64]],
                                output=tmp_path / "model.epk", progress=False)
    path = tmp_path / "model.mlpackage"
    size = write_coreml(compiled.graph, path, IPHONE, compiled.manifest)
    facts = describe_package(path)
    assert facts.spec_version == SPEC_IOS17                 # iPhone 15 Pro, no int4: iOS 17
    assert facts.inputs == {"x": ("fp32", (1, 1, 8, 8))}
    assert facts.outputs == {compiled.graph.outputs[0]: ("fp32", (1, 10))}
    convs = sum(n.op == "Conv" for n in compiled.graph.nodes)
    assert facts.ops["conv"] == convs
    # every int8 weight is stored as int8 behind a constexpr dequantization, nothing as float32
    assert facts.ops["constexpr_affine_dequantize"] == convs + sum(n.op == "MatMul" for n in compiled.graph.nodes)
    assert facts.weight_dtypes.get("int8") == _weight_elements(compiled.graph, DType.INT8)
    assert "float32" not in facts.weight_dtypes
    # W8A8: int8 activations through quantize / dequantize; activation tables as exact int8 gathers
    assert facts.ops["quantize"] >= convs and facts.ops["dequantize"] >= 1
    assert facts.ops.get("gather", 0) == sum(n.op == "Lut" for n in compiled.graph.nodes)
    assert facts.metadata["precision"] == "int8" and facts.metadata["producer"].startswith("edgepack")
    assert 0 < facts.weights_file_bytes < size
    _predicts_like_reference(path, compiled.graph, [{"x": x[None]} for x in data.x_test[:8]], atol=0.5)


def test_fp16_package_stores_float16(cache_dir, tmp_path):
    model, data = train_mobilenet(cache_dir)
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(data.x_test[:1]), precision="fp16",
                                output=tmp_path / "model.epk", progress=False)
    path = tmp_path / "model.mlpackage"
    write_coreml(compiled.graph, path, IPHONE)
    facts = describe_package(path)
    assert facts.weight_dtypes.get("float16", 0) >= _weight_elements(compiled.graph, DType.FLOAT16)
    assert facts.weight_dtypes.get("float32", 0) == 0
    assert facts.ops["conv"] == sum(n.op == "Conv" for n in compiled.graph.nodes)
    _predicts_like_reference(path, compiled.graph, [{"x": x[None]} for x in data.x_test[:8]], atol=0.05)


@pytest.fixture(scope="module")
def minilm_source(cache_dir):
    path = cache_dir / "minilm.onnx"
    if not path.exists():
        minilm.export_minilm_onnx(path)
    return path


@pytest.mark.parametrize("precision, spec, compressed", [("int8-dynamic", SPEC_IOS17, "int8"),
                                                          ("int4", SPEC_IOS18, "int4")])
def test_minilm_package(minilm_source, tmp_path, precision, spec, compressed):
    compiled = edgepack.compile(minilm_source, precision=precision, output=tmp_path / "model.epk", progress=False)
    path = tmp_path / "minilm.mlpackage"
    write_coreml(compiled.graph, path, IPHONE)
    facts = describe_package(path)
    assert facts.spec_version == spec                   # block-wise int4 needs iOS 18
    assert facts.inputs == {"input_ids": ("int32", (1, 128)), "attention_mask": ("int32", (1, 128))}
    assert facts.outputs == {"embedding": ("fp32", (1, 384))}
    matmuls = [n for n in compiled.graph.nodes if n.op == "MatMul"]
    # merged MatMuls (Q, K, V) are one per output again, fused Attention two run-time MatMuls
    constant = sum(len(n.outputs) for n in matmuls if compiled.graph.values[n.inputs[1]].is_const)
    run_time = sum(not compiled.graph.values[n.inputs[1]].is_const for n in matmuls)
    attention = sum(n.op == "Attention" for n in compiled.graph.nodes)
    assert facts.ops["linear"] == constant == 36 and facts.ops["matmul"] == run_time + 2 * attention == 12
    assert facts.ops["layer_norm"] == 13 and facts.ops["gelu"] == 6 and facts.ops["softmax"] == 6
    constexpr = "constexpr_blockwise_shift_scale" if spec == SPEC_IOS18 else "constexpr_affine_dequantize"
    assert facts.ops[constexpr] == 37                   # 36 matmul weights and the word-embedding table
    stored = _weight_elements(compiled.graph, DType.INT8 if compressed == "int8" else DType.INT4)
    assert facts.weight_dtypes[compressed] == stored > 22e6
    bytes_per_weight = facts.weights_file_bytes / stored
    assert bytes_per_weight < (1.1 if compressed == "int8" else 0.6)
    feeds = minilm.tokenize(minilm.sentences(2))
    _predicts_like_reference(path, compiled.graph, feeds, atol=0.02)


def test_deployment_target_follows_the_profile(cache_dir, tmp_path):
    model, data = train_digits_cnn(cache_dir)
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(data.x_test[:1]), profile="iphone-15-pro",
                                precision="fp32", output=tmp_path / "digits.mlpackage", progress=False)
    assert compiled.artifacts == {"coreml": tmp_path / "digits.mlpackage"}
    assert describe_package(compiled.path).spec_version == SPEC_IOS17
    assert deployment_target(compiled.graph, IPHONE).name == "iOS17"
    with pytest.raises(UnsupportedError, match="does not run Core ML"):
        deployment_target(compiled.graph, load_profile("pixel-8"))
