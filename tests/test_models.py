"""Whole models through the native runtime, against ONNX Runtime (and torch) on the same inputs.

Every light CNN of the onnx wheel (weights re-drawn at random: the originals are constant 0.02 and
give a flat softmax), all-MiniLM-L6-v2 on real sentences, and torch modules compiled directly."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import edgepack
from edgepack.models import minilm
from edgepack.models.digits import train_digits_cnn
from edgepack.models.light import randomized_light_model
from edgepack.models.mobilenet import train_mobilenet

LIGHT = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
         "vgg19", "zfnet512"]


def _ort(path, feeds):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_matches_onnxruntime(name, tmp_path):
    source = tmp_path / f"{name}.onnx"
    onnx.save(randomized_light_model(name, seed=0), source)
    compiled = edgepack.compile(source, output=tmp_path / f"{name}.epk")
    session = edgepack.load(compiled.path, num_threads=2)
    assert session.arena_bytes == compiled.arena_bytes
    x = np.random.default_rng(1).random(session.inputs[0].shape, np.float32)
    feeds = {session.inputs[0].name: x}
    native = session.run(feeds)[session.outputs[0].name]
    expected = _ort(source, feeds)[0]
    np.testing.assert_allclose(native, expected, rtol=1e-4, atol=1e-5)
    # the softmax is not flat: the comparison means something
    assert expected.max() > 2.0 / expected.size


@pytest.fixture(scope="module")
def minilm_artifact(tmp_path_factory):
    directory = tmp_path_factory.mktemp("minilm")
    source = minilm.export_minilm_onnx(directory / "minilm.onnx")
    compiled = edgepack.compile(source, output=directory / "minilm.epk")
    return source, compiled


def test_minilm_matches_onnxruntime(minilm_artifact):
    source, compiled = minilm_artifact
    session = edgepack.load(compiled.path, num_threads=2)
    names = {spec.name for spec in session.inputs}
    for feeds in minilm.tokenize(minilm.sentences(12)):
        feeds = {k: v for k, v in feeds.items() if k in names}
        native = session.run(feeds)[session.outputs[0].name].reshape(-1)
        expected = _ort(source, feeds)[0].reshape(-1)
        cosine = float(native @ expected / np.linalg.norm(native) / np.linalg.norm(expected))
        assert cosine >= 0.99999
        np.testing.assert_allclose(native, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("build", [train_digits_cnn, train_mobilenet], ids=["digits_cnn", "mobilenet"])
def test_torch_module_compiled_directly_matches_torch(build, tmp_path):
    model, data = build(tmp_path)
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(data.x_test[:1]), output=tmp_path / "m.epk")
    session = edgepack.load(compiled.path)
    name = session.inputs[0].name
    native = np.concatenate([session.run({name: x[None]})[session.outputs[0].name] for x in data.x_test[:64]])
    with torch.no_grad():
        expected = model(torch.from_numpy(data.x_test[:64])).numpy()
    np.testing.assert_allclose(native, expected, rtol=1e-4, atol=1e-5)
    assert (native.argmax(1) == data.y_test[:64]).mean() > 0.9
