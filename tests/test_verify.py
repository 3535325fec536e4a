"""Format selection in compile, and `edgepack verify`: every artifact of a compile in every runtime
here, against the fp32 reference and the native result; corrupt artifacts fail with an error line."""
from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import edgepack
from edgepack.cli import main
from edgepack.models import minilm
from edgepack.models.digits import train_digits_cnn
from edgepack.models.mobilenet import train_mobilenet
from edgepack.verify import verify

EXAMPLES = Path(edgepack.__file__).parent / "examples"


@pytest.fixture(scope="module")
def cache_dir(request, tmp_path_factory):
    """Trained weights and the exported MiniLM, kept in pytest's cache across runs when the cache is on."""
    if request.config.pluginmanager.hasplugin("cacheprovider"):
        return request.config.cache.mkdir("edgepack-models")
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def digits_example(tmp_path_factory):
    """The bundled digits ONNX model, calibration and evaluation inputs (stacked samples)."""
    directory = tmp_path_factory.mktemp("example")
    source = directory / "digits_cnn.onnx"
    shutil.copy(EXAMPLES / "digits_cnn.onnx", source)
    with np.load(EXAMPLES / "digits_samples.npz") as data:
        images = data["images"][:, None]            # the model takes [1, 1, 8, 8]: samples on a new axis
    np.savez(directory / "calibration.npz", image=images[:50])
    np.savez(directory / "inputs.npz", image=images[50:])
    return directory, source


def test_cli_emits_every_format_of_the_profile_and_verifies_them(digits_example, capsys):
    directory, source = digits_example
    assert main(["compile", str(source), "--profile", "pixel-8", "--precision", "int8",
                 "--calibration", str(directory / "calibration.npz")]) == 0
    manifest_path = directory / "digits_cnn.pixel-8.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert set(manifest["files"]) == {"epk", "tflite", "onnx"}          # android-arm64-v8a's runtimes
    assert manifest["profile"] == "pixel-8" and len(manifest["source_sha256"]) == 64
    assert set(manifest["precisions"].values()) == {"int8"}
    for entry in manifest["files"].values():
        assert (directory / entry["path"]).exists() and len(entry["sha256"]) == 64
    capsys.readouterr()

    code = main(["verify", str(manifest_path), "--inputs", str(directory / "inputs.npz"),
                 "--reference", str(source), "--per-op"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "50 sample(s)" in out and out.count("within 1 LSB") == 2 and "SQNR" in out
    assert "no divergence" in out                  # ONNX Runtime: every intermediate within 1 code
    assert "verify: 3 artifact(s), 0 failed" in out


@pytest.mark.parametrize("build", [train_digits_cnn, train_mobilenet], ids=["digits_cnn", "mobilenet"])
def test_int8_runtimes_agree_with_native(build, cache_dir, tmp_path):
    """ONNX Runtime and LiteRT, every test sample: within 1 LSB of the native int8 result on >= 99.9 %
    of elements, and the same top-1."""
    model, data = build(cache_dir)
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(data.x_test[:1]), precision="int8",
                                calibration_data=[{"x": x[None]} for x in data.x_train[:64]],
                                output=tmp_path / "model", format=["epk", "onnx", "tflite"], progress=False)
    np.savez(tmp_path / "inputs.npz", x=data.x_test[:, None])
    report = verify(list(compiled.artifacts.values()), tmp_path / "inputs.npz")
    assert report.passed, "\n".join(report.lines())
    for check in report.artifacts[1:]:
        assert check.outputs[0].within_lsb >= 0.999
    session = ort.InferenceSession(str(compiled.artifacts["onnx"]), providers=["CPUExecutionProvider"])
    native = edgepack.load(compiled.artifacts["epk"], num_threads=2)
    output = compiled.graph.outputs[0]
    for x in data.x_test:
        assert session.run(None, {"x": x[None]})[0].argmax() == native.run({"x": x[None]})[output].argmax()


def test_minilm_dynamic_int8_runtimes_against_fp32(cache_dir, tmp_path):
    source = cache_dir / "minilm.onnx"
    if not source.exists():
        minilm.export_minilm_onnx(source)
    compiled = edgepack.compile(source, precision="int8-dynamic", output=tmp_path / "minilm",
                                format=["epk", "onnx", "tflite"], progress=False)
    feeds = minilm.tokenize(minilm.sentences(20))
    np.savez(tmp_path / "inputs.npz", **{k: np.stack([f[k] for f in feeds]) for k in feeds[0]})
    report = verify(list(compiled.artifacts.values()), tmp_path / "inputs.npz", reference=source, min_cosine=0.998)
    assert report.passed, "\n".join(report.lines())
    for check in report.artifacts:
        assert check.outputs[0].cosine >= 0.998
        if check.format != "epk":
            assert check.outputs[0].native_cosine >= 0.999


def _corrupt(path: Path) -> None:
    if path.is_dir():
        spec = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
        spec.write_bytes(spec.read_bytes()[: len(spec.read_bytes()) // 3])
        return
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data[: len(data) * 3 // 4]))


def test_corrupt_artifacts_fail_with_an_error_line(digits_example, tmp_path, capsys):
    directory, source = digits_example
    compiled = edgepack.compile(source, precision="fp32", output=tmp_path / "digits",
                                format=["epk", "onnx", "tflite"], progress=False)
    coreml = edgepack.compile(source, precision="fp32", profile="iphone-15-pro", output=tmp_path / "digits.mlpackage",
                              progress=False)
    capsys.readouterr()
    assert main(["verify", *map(str, compiled.artifacts.values()), str(coreml.path),
                 "--inputs", str(directory / "inputs.npz"), "--reference", str(source)]) == 0
    out = capsys.readouterr().out
    if platform.system() != "Darwin":
        assert "NOT RUN: cannot run on Linux" in out         # not an error
    for path in [*compiled.artifacts.values(), coreml.path]:
        broken = tmp_path / "broken" / path.name
        broken.parent.mkdir(exist_ok=True)
        shutil.copytree(path, broken) if path.is_dir() else shutil.copy(path, broken)
        _corrupt(broken)
        code = main(["verify", str(broken), "--inputs", str(directory / "inputs.npz")])
        captured = capsys.readouterr()
        assert code == 1, captured.out
        assert "ERROR: cannot load" in captured.out and "Traceback" not in captured.out + captured.err


def test_output_suffix_picks_the_format(digits_example, tmp_path):
    _, source = digits_example
    for suffix, fmt in ((".tflite", "tflite"), (".onnx", "onnx"), (".epk", "epk")):
        compiled = edgepack.compile(source, precision="fp32", output=tmp_path / f"m{suffix}", progress=False)
        assert compiled.artifacts == {fmt: tmp_path / f"m{suffix}"} and compiled.file_bytes > 10_000
        # an artifact edgepack wrote may be replaced
        edgepack.compile(source, precision="fp32", output=tmp_path / f"m{suffix}", progress=False)
    assert edgepack.compile(source, precision="fp32", format="tflite", output=tmp_path / "named",
                            progress=False).artifacts == {"tflite": tmp_path / "named"}
    with pytest.raises(ValueError, match="suffix of format 'onnx'"):
        edgepack.compile(source, precision="fp32", format="tflite", output=tmp_path / "x.onnx", progress=False)
    foreign = tmp_path / "notes.tflite"
    foreign.write_text("not a model")
    with pytest.raises(FileExistsError, match="not an edgepack artifact"):
        edgepack.compile(source, precision="fp32", output=foreign, progress=False)
    everything = edgepack.compile(source, precision="fp32", profile="iphone-15-pro", format="all",
                                  output=tmp_path / "phone", progress=False)
    assert set(everything.artifacts) == {"epk", "coreml", "tflite", "onnx"}
    assert (tmp_path / "phone.manifest.json").exists()
