"""edgepack-bench (native/tools/edgepack_bench.cpp): the standalone CMake build, its JSON report, its raw
inputs and outputs against the Python runtime, its errors, and the aarch64 cross build run under qemu-user.

Needs the Debian packages cmake, g++-aarch64-linux-gnu and qemu-user-static. Without one the tests fail
with a message naming the package, never skip: a skipped cross test would hide a broken ARM build."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack import _native
from edgepack.backends.epk import FORMAT_VERSION
from edgepack.ir import DType
from edgepack.profiler.native_build import build_bench, read_outputs, run_bench
from edgepack.runtime import Session
from op_harness import op_graph, write_graph

QEMU = ["qemu-aarch64-static", "-cpu", "max"]
THREADS = 2


# ---- models ----------------------------------------------------------------------------------------------
def _weights(rng: np.random.Generator, name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def conv_net() -> onnx.ModelProto:
    """Conv + ReLU, max pool, depthwise conv, strided conv, global pool, Gemm, Softmax."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w4", "b4"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    initializers = [_weights(rng, "w1", 8, 3, 3, 3), _weights(rng, "b1", 8), _weights(rng, "w2", 8, 1, 3, 3),
                    _weights(rng, "b2", 8), _weights(rng, "w3", 16, 8, 3, 3), _weights(rng, "b3", 16),
                    _weights(rng, "w4", 10, 16), _weights(rng, "b4", 10)]
    graph = helper.make_graph(nodes, "conv_net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def attention_net() -> onnx.ModelProto:
    """Token ids -> embedding (Gather), LayerNorm, single-head attention (MatMul, Transpose, Softmax),
    residual Add, LayerNorm, output projection."""
    rng = np.random.default_rng(1)
    tokens, width, vocab = 8, 32, 100
    nodes = [
        helper.make_node("Gather", ["embedding", "ids"], ["e"]),
        helper.make_node("LayerNormalization", ["e", "ln1_scale", "ln1_bias"], ["h"], axis=-1),
        helper.make_node("MatMul", ["h", "wq"], ["q"]),
        helper.make_node("MatMul", ["h", "wk"], ["k"]),
        helper.make_node("MatMul", ["h", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Mul", ["scores", "inv_sqrt_width"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["attention"], axis=-1),
        helper.make_node("MatMul", ["attention", "v"], ["mixed"]),
        helper.make_node("Add", ["mixed", "e"], ["residual"]),
        helper.make_node("LayerNormalization", ["residual", "ln2_scale", "ln2_bias"], ["n"], axis=-1),
        helper.make_node("MatMul", ["n", "w_out"], ["projected"]),
        helper.make_node("Add", ["projected", "b_out"], ["out"]),
    ]
    initializers = [
        _weights(rng, "embedding", vocab, width, scale=1.0),
        numpy_helper.from_array(np.ones(width, np.float32), "ln1_scale"), _weights(rng, "ln1_bias", width),
        _weights(rng, "wq", width, width), _weights(rng, "wk", width, width), _weights(rng, "wv", width, width),
        numpy_helper.from_array(np.array(width ** -0.5, np.float32), "inv_sqrt_width"),
        _weights(rng, "ln2_scale", width), _weights(rng, "ln2_bias", width),
        _weights(rng, "w_out", width, 16), _weights(rng, "b_out", 16),
    ]
    graph = helper.make_graph(nodes, "attention_net",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, tokens])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, tokens, 16])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sample_inputs(session: Session, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {spec.name: (rng.random(spec.shape, np.float32) if spec.dtype == np.float32
                        else rng.integers(0, 100, spec.shape).astype(spec.dtype)) for spec in session.inputs}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bench_models")
    built = {name: edgepack.compile(build(), output=folder / f"{name}.epk").path
             for name, build in {"conv_net": conv_net, "attention_net": attention_net}.items()}
    # dynamic int8: Q, K and V merged into one MatMul with a split, beside the fused Attention
    built["attention_net_int8"] = edgepack.compile(attention_net(), output=folder / "attention_net_int8.epk",
                                                   precision="int8-dynamic").path
    return built


@pytest.fixture(scope="module")
def host_bench() -> Path:
    return build_bench("host")


@pytest.fixture(scope="module")
def aarch64_bench() -> Path:
    return build_bench("linux-aarch64")


def bench(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)


# ---- the report --------------------------------------------------------------------------------------------
def test_report_fields(host_bench, artifacts):
    path = artifacts["conv_net"]
    report = run_bench(host_bench, path, runs=3, warmup=1, threads=THREADS, per_op=True)
    session = edgepack.load(path, num_threads=THREADS)

    assert report["artifact"] == str(path)
    assert report["format_version"] == FORMAT_VERSION
    assert report["arch"] == platform.machine()
    assert report["threads"] == THREADS
    assert report["input_source"] == "random" and report["seed"] == 0
    if platform.machine() == "x86_64":
        assert set(report["cpu_features"]) == {"avx2", "fma", "avx512f", "avx512vnni"}
    assert all(isinstance(v, bool) for v in report["cpu_features"].values())
    # A -march=native build uses only what this CPU has.
    assert all(report["cpu_features"][name] for name, used in report["build_features"].items() if used)
    assert report["gemm_ukernel"].startswith("sgemm_")

    assert report["load_seconds"] > 0 and report["first_run_seconds"] > 0
    assert report["warmup_runs"] == 1
    assert len(report["latencies_seconds"]) == 3 and all(s > 0 for s in report["latencies_seconds"])
    assert [(op["name"], op["op"]) for op in report["per_op"]] == session.ops
    for op in report["per_op"]:
        assert op["total_seconds"] == pytest.approx(3 * op["mean_seconds"]) and op["mean_seconds"] >= 0
    assert sum(op["mean_seconds"] for op in report["per_op"]) <= max(report["latencies_seconds"])

    assert report["arena_bytes"] == session.arena_bytes
    assert report["weights_bytes"] == _native.Session(str(path), THREADS).weights_bytes > 0
    assert report["file_bytes"] == path.stat().st_size
    assert report["peak_rss_bytes"] > 1 << 20
    assert [(t["name"], tuple(t["shape"]), t["dtype"]) for t in report["inputs"]] == \
        [(s.name, s.shape, str(s.dtype)) for s in session.inputs]
    assert [t["bytes"] for t in report["outputs"]] == [4 * 10]
    assert report["manifest"] == session.manifest


def test_per_op_is_off_by_default_and_min_seconds_extends_runs(host_bench, artifacts):
    report = run_bench(host_bench, artifacts["conv_net"], warmup=0, min_seconds=0.05, threads=1)
    assert "per_op" not in report
    assert report["warmup_runs"] == 0 and report["first_run_seconds"] == report["latencies_seconds"][0]
    assert sum(report["latencies_seconds"]) >= 0.05


# ---- inputs and outputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["conv_net", "attention_net"])
def test_outputs_equal_the_python_runtime(host_bench, artifacts, tmp_path, model):
    """Same inputs, same thread count, same sources and flags: the bytes must be identical."""
    path = artifacts[model]
    session = edgepack.load(path, num_threads=THREADS)
    feeds = sample_inputs(session)
    expected = session.run(feeds)
    report = run_bench(host_bench, path, runs=2, threads=THREADS, inputs=[feeds[s.name] for s in session.inputs],
                       outputs=tmp_path / "out.bin")
    assert report["input_source"] == "file"
    got = read_outputs(tmp_path / "out.bin", report)
    assert list(got) == list(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype and got[name].shape == expected[name].shape
        assert got[name].tobytes() == expected[name].tobytes(), name


def _identity_artifact(tmp_path: Path, op: str, attrs: dict, example: np.ndarray) -> Path:
    """A one-op model whose output shows the bench's input (Relu of [0, 1) floats, Cast of ints)."""
    graph, _ = op_graph(op, attrs, [example])
    return write_graph(graph, tmp_path / f"{op}_{example.dtype}.epk")


def test_random_float_inputs_are_uniform_in_unit_interval(host_bench, tmp_path):
    path = _identity_artifact(tmp_path, "Relu", {}, np.zeros((64, 64), np.float32))
    values = {}
    for seed in (0, 0, 1):
        report = run_bench(host_bench, path, runs=1, seed=seed, outputs=tmp_path / "out.bin")
        values.setdefault(seed, []).append(read_outputs(tmp_path / "out.bin", report)["out0"])
    first = values[0][0]
    assert first.min() >= 0 and first.max() < 1
    assert abs(first.mean() - 0.5) < 0.02 and abs(first.std() - 12 ** -0.5) < 0.02
    assert np.array_equal(values[0][0], values[0][1])  # a seed gives the same inputs every time
    assert not np.array_equal(values[0][0], values[1][0])


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_random_int_inputs_are_below_int_high(host_bench, tmp_path, dtype):
    path = _identity_artifact(tmp_path, "Cast", {"to": int(DType.FLOAT32)}, np.zeros(4096, dtype))
    report = run_bench(host_bench, path, runs=1, int_high=7, outputs=tmp_path / "out.bin")
    assert set(read_outputs(tmp_path / "out.bin", report)["out0"].tolist()) == set(range(7))


# ---- errors --------------------------------------------------------------------------------------------------
def _assert_fails(result: subprocess.CompletedProcess, exit_code: int, *needles: str) -> None:
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert result.stdout == ""
    message = result.stderr.lower()
    assert message.startswith("edgepack-bench: error:"), message
    for needle in needles:
        assert needle.lower() in message, f"'{needle}' not in: {message}"


def test_missing_and_corrupt_artifacts_fail_clearly(host_bench, artifacts, tmp_path):
    _assert_fails(bench(host_bench, str(tmp_path / "nope.epk")), 1, "load failed", "nope.epk", "no such file")

    data = bytearray(artifacts["conv_net"].read_bytes())
    truncated = tmp_path / "truncated.epk"
    truncated.write_bytes(data[: len(data) // 2])
    _assert_fails(bench(host_bench, str(truncated)), 1, "load failed", "truncated.epk", "truncated")

    data[-100] ^= 0xFF  # inside the weights section: only its checksum can notice
    flipped = tmp_path / "flipped.epk"
    flipped.write_bytes(bytes(data))
    _assert_fails(bench(host_bench, str(flipped)), 1, "load failed", "flipped.epk", "checksum mismatch")

    not_an_artifact = tmp_path / "model.onnx"
    not_an_artifact.write_bytes(conv_net().SerializeToString())
    _assert_fails(bench(host_bench, str(not_an_artifact)), 1, "load failed", "model.onnx", "not an edgepack artifact")


@pytest.mark.parametrize("args, needles", [
    ([], ["no artifact"]),
    (["{model}", "--runs", "0"], ["--runs", "got '0'"]),
    (["{model}", "--runs", "ten"], ["--runs", "got 'ten'"]),
    (["{model}", "--min-seconds=-1"], ["--min-seconds", "got '-1'"]),
    (["{model}", "--threads", "100000"], ["--threads"]),
    (["{model}", "--int-high", "0"], ["--int-high"]),
    (["{model}", "--warmup"], ["--warmup needs a value"]),
    (["{model}", "--frobnicate", "1"], ["unknown option '--frobnicate'"]),
    (["{model}", "{model}"], ["more than one artifact"]),
    (["{model}", "--inputs", "/nonexistent/inputs.bin"], ["cannot read inputs file", "/nonexistent/inputs.bin"]),
    (["{model}", "--outputs", "/nonexistent/dir/out.bin"], ["cannot write outputs file"]),
])
def test_bad_command_lines_fail_with_usage_errors(host_bench, artifacts, args, needles):
    args = [arg.replace("{model}", str(artifacts["conv_net"])) for arg in args]
    _assert_fails(bench(host_bench, *args), 2, *needles)


def test_inputs_file_of_wrong_size_names_the_expected_bytes(host_bench, artifacts, tmp_path):
    raw = tmp_path / "inputs.bin"
    raw.write_bytes(b"\0" * 100)
    _assert_fails(bench(host_bench, str(artifacts["conv_net"]), "--inputs", str(raw)), 2,
                  "has 100 bytes, expected 3072", "'x' float32 3072 B")


def test_run_time_errors_fail_the_run(host_bench, artifacts):
    # Token ids up to 1000 index past the 100-row embedding table.
    _assert_fails(bench(host_bench, str(artifacts["attention_net"]), "--int-high", "1000"), 1, "run failed", "gather")


def test_help(host_bench):
    result = bench(host_bench, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: edgepack-bench MODEL.epk")
    for flag in ("--runs", "--min-seconds", "--warmup", "--threads", "--per-op", "--seed", "--int-high", "--inputs",
                 "--outputs"):
        assert flag in result.stdout


# ---- aarch64 under qemu-user --------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["conv_net", "attention_net", "attention_net_int8"])
def test_aarch64_outputs_match_host(host_bench, aarch64_bench, artifacts, tmp_path, model):
    """The cross-built bench (static, armv8.2-a+dotprod) on an emulated CPU computes what the host build
    does, from the same seeded inputs, within fp32 tolerance."""
    path = artifacts[model]
    host = run_bench(host_bench, path, runs=1, warmup=0, threads=THREADS, seed=3, outputs=tmp_path / "host.bin")
    arm = run_bench(aarch64_bench, path, runs=1, warmup=0, threads=THREADS, seed=3, outputs=tmp_path / "arm.bin",
                    emulator=QEMU, timeout=300)
    assert arm["arch"] == "aarch64"
    assert arm["build_features"]["asimd"] and arm["build_features"]["asimddp"]  # -march=armv8.2-a+dotprod
    assert arm["cpu_features"]["asimd"] and arm["cpu_features"]["asimddp"]  # "-cpu max" offers both
    assert arm["format_version"] == host["format_version"] and arm["arena_bytes"] == host["arena_bytes"]
    host_outputs = read_outputs(tmp_path / "host.bin", host)
    arm_outputs = read_outputs(tmp_path / "arm.bin", arm)
    for name, expected in host_outputs.items():
        assert np.isfinite(expected).all()
        np.testing.assert_allclose(arm_outputs[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_bench_cache_keeps_the_most_recently_used_builds(tmp_path):
    """Two source trees building in turn keep each other's binary: only builds beyond the KEEP_BUILDS most
    recently used of a target are removed, and other targets are left alone."""
    from edgepack.profiler.native_build import KEEP_BUILDS, _prune
    for i in range(KEEP_BUILDS + 2):
        (tmp_path / f"host-{i}").mkdir()
        os.utime(tmp_path / f"host-{i}", (1000 + i, 1000 + i))
    (tmp_path / "linux-aarch64-0").mkdir()
    os.utime(tmp_path / "host-0", (5000, 5000))   # the oldest build was used again most recently
    _prune(tmp_path, "host")
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted(["host-0"] + [f"host-{i}" for i in range(KEEP_BUILDS + 2)][-(KEEP_BUILDS - 1):]
                          + ["linux-aarch64-0"])
