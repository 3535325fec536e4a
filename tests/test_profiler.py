"""The profiler (edgepack.profiler, `edgepack profile`): runners, statistics, energy sources, budget checks,
reports, and the SSH runner against a real OpenSSH server started here on 127.0.0.1.

Needs the Debian packages openssh-server and openssh-client (the SSH runner), cmake and g++ (edgepack-bench),
g++-aarch64-linux-gnu and qemu-user-static (the qemu-aarch64 runner). Without one the tests fail with a
message naming the package, never skip."""
from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.cli import main
from edgepack.planner.cost import estimate
from edgepack.profiler import (LocalRunner, SshError, SshRunner, SshTarget, discover_sensors, make_runner, parse_cpus,
                               percentile, predict, profile_artifact, random_inputs, summarize)
from edgepack.profiler.energy import (ESTIMATED_LABEL, HWMON_ENERGY, HWMON_POWER, RAPL, EnergyMeter, Sensor,
                                      SensorSet, energy_per_inference, integrate, parse_remote_sensors, parse_samples,
                                      remote_discovery_script, remote_sampler_script)
from edgepack.profiles import load_profile

THREADS = 1   # one thread: a loaded CI machine disturbs a thread pool far more than a single thread


# ---- models ----------------------------------------------------------------------------------------------------
def _weights(rng: np.random.Generator, name: str, *shape: int, scale: float = 0.2) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def small_cnn() -> onnx.ModelProto:
    """Conv stack on a 128x128 image (about 1 ms on one core): conv, strided conv, depthwise, pointwise,
    pooling, classifier."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], group=32),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("Conv", ["r3", "w4", "b4"], ["c4"]),
        helper.make_node("Relu", ["c4"], ["r4"]),
        helper.make_node("MaxPool", ["r4"], ["p4"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p4"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w5", "b5"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    initializers = [_weights(rng, "w1", 24, 3, 3, 3), _weights(rng, "b1", 24), _weights(rng, "w2", 32, 24, 3, 3),
                    _weights(rng, "b2", 32), _weights(rng, "w3", 32, 1, 3, 3), _weights(rng, "b3", 32),
                    _weights(rng, "w4", 64, 32, 1, 1), _weights(rng, "b4", 64), _weights(rng, "w5", 10, 64),
                    _weights(rng, "b5", 10)]
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 128, 128])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def small_transformer(tokens: int = 128, width: int = 128, vocab: int = 500, blocks: int = 2) -> onnx.ModelProto:
    """Token embedding and `blocks` pre-norm blocks of single-head attention and a ReLU MLP (about 0.6 ms)."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Gather", ["embedding", "ids"], ["h0"])]
    initializers = [_weights(rng, "embedding", vocab, width, scale=1.0),
                    numpy_helper.from_array(np.array(width ** -0.5, np.float32), "scale")]
    h = "h0"
    for b in range(blocks):
        p = f"b{b}_"
        nodes += [
            helper.make_node("LayerNormalization", [h, p + "ln1_s", p + "ln1_b"], [p + "n1"], axis=-1),
            helper.make_node("MatMul", [p + "n1", p + "wq"], [p + "q"]),
            helper.make_node("MatMul", [p + "n1", p + "wk"], [p + "k"]),
            helper.make_node("MatMul", [p + "n1", p + "wv"], [p + "v"]),
            helper.make_node("Transpose", [p + "k"], [p + "kt"], perm=[0, 2, 1]),
            helper.make_node("MatMul", [p + "q", p + "kt"], [p + "s"]),
            helper.make_node("Mul", [p + "s", "scale"], [p + "ss"]),
            helper.make_node("Softmax", [p + "ss"], [p + "a"], axis=-1),
            helper.make_node("MatMul", [p + "a", p + "v"], [p + "m"]),
            helper.make_node("Add", [p + "m", h], [p + "r1"]),
            helper.make_node("LayerNormalization", [p + "r1", p + "ln2_s", p + "ln2_b"], [p + "n2"], axis=-1),
            helper.make_node("MatMul", [p + "n2", p + "w1"], [p + "u"]),
            helper.make_node("Add", [p + "u", p + "bu"], [p + "ub"]),
            helper.make_node("Relu", [p + "ub"], [p + "ur"]),
            helper.make_node("MatMul", [p + "ur", p + "w2"], [p + "d"]),
            helper.make_node("Add", [p + "d", p + "r1"], [p + "out"]),
        ]
        initializers += [
            numpy_helper.from_array(np.ones(width, np.float32), p + "ln1_s"), _weights(rng, p + "ln1_b", width),
            _weights(rng, p + "wq", width, width), _weights(rng, p + "wk", width, width),
            _weights(rng, p + "wv", width, width),
            numpy_helper.from_array(np.ones(width, np.float32), p + "ln2_s"), _weights(rng, p + "ln2_b", width),
            _weights(rng, p + "w1", width, 4 * width), _weights(rng, p + "bu", 4 * width),
            _weights(rng, p + "w2", 4 * width, width)]
        h = p + "out"
    graph = helper.make_graph(nodes, "small_transformer",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, tokens])],
                              [helper.make_tensor_value_info(h, TensorProto.FLOAT, [1, tokens, width])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


MODELS = {"cnn": small_cnn, "transformer": small_transformer}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (onnx path, fp32 artifact compiled for the host profile)."""
    folder = tmp_path_factory.mktemp("profiler_models")
    found = {}
    for name, build in MODELS.items():
        source = folder / f"{name}.onnx"
        onnx.save(build(), source)
        compiled = edgepack.compile(source, output=folder / f"{name}.epk", precision="fp32", progress=False)
        found[name] = (source, compiled.path)
    return found


def profile_cli(*args: str) -> int:
    return main(["profile", *map(str, args)])


# ---- `edgepack profile` on the host -------------------------------------------------------------------------------
REQUIRED_KEYS = {"schema", "edgepack_version", "created", "verdict", "artifact", "device", "profile", "settings",
                 "latency", "memory", "energy", "predicted", "per_op", "per_op_sum_s", "per_op_coverage", "checks",
                 "output_check", "comparisons", "warnings", "notes"}


@pytest.mark.parametrize("name", list(MODELS))
def test_profile_writes_json_and_html(models, tmp_path, capsys, name):
    source, artifact = models[name]
    json_path, html_path = tmp_path / "report.json", tmp_path / "report.html"
    assert profile_cli(artifact, "--device", "local", "--runs", 40, "--warmup", 3, "--threads", THREADS, "--per-op",
                       "--json", json_path, "--html", html_path, "--compare-onnx", source) == 0
    out = capsys.readouterr().out
    assert "latency p50" in out and "verdict: PASS" in out and "onnxruntime" in out

    report = json.loads(json_path.read_text())
    assert REQUIRED_KEYS <= set(report)
    assert report["schema"] == "edgepack.profile/1" and report["verdict"] == "PASS"
    assert report["device"] == {**report["device"], "spec": "local", "runner": "local", "emulated": False,
                                "threads": THREADS}
    latency = report["latency"]
    assert latency["runs"] == len(latency["samples_s"]) == 40
    assert latency["min_s"] <= latency["p50_s"] <= latency["p90_s"] <= latency["p95_s"] <= latency["p99_s"] \
        <= latency["max_s"]
    assert latency["load_s"] > 0 and latency["first_run_s"] > 0
    assert {c["key"] for c in report["checks"]} == {"latency_p50", "latency_p95", "peak_memory", "arena", "energy"}
    assert all(c["status"] in ("PASS", "INFO") for c in report["checks"])
    session = edgepack.load(artifact)
    assert [(op["name"], op["op"]) for op in report["per_op"]] == session.ops
    assert all(op["predicted_s"] > 0 for op in report["per_op"])
    assert report["memory"]["arena_bytes"] == session.arena_bytes and report["memory"]["peak_bytes"] > 0
    assert report["predicted"]["source"].startswith("artifact manifest")
    assert report["energy"]["source"] in (ESTIMATED_LABEL, "measured: RAPL", "measured: hwmon energy counter",
                                          "measured: hwmon power sensor")
    assert report["energy"]["per_inference_j"] > 0
    assert report["comparisons"][0]["runtime"].startswith("onnxruntime")
    assert report["comparisons"][0]["latency"]["runs"] == 40

    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    labels = [ElementTree.fromstring(svg).get("aria-label") for svg in svgs]   # each one is well-formed XML
    assert {"latency histogram", "latency CDF", "measured vs predicted (cost model)"} <= set(labels)
    assert "PASS" in page and "onnxruntime" in page


def _independent_loop(session, feeds, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(feeds)
        times.append(time.perf_counter() - started)
    return times


@pytest.mark.parametrize("name", list(MODELS))
def test_p50_agrees_with_an_independent_loop(models, tmp_path, capsys, name):
    """Short rounds of `edgepack profile` alternate with a plain perf_counter loop around Session.run in
    this process, so a load change on the machine hits both; the pooled medians agree within 10%."""
    _, artifact = models[name]
    session = edgepack.load(artifact, num_threads=THREADS)
    feeds = random_inputs(session.inputs)
    _independent_loop(session, feeds, 10)
    profiled, independent = [], []
    for round_ in range(6):
        json_path = tmp_path / f"round{round_}.json"
        assert profile_cli(artifact, "--runs", 40, "--warmup", 3, "--threads", THREADS, "--json", json_path) == 0
        profiled += json.loads(json_path.read_text())["latency"]["samples_s"]
        independent += _independent_loop(session, feeds, 40)
    capsys.readouterr()
    ratio = statistics.median(profiled) / statistics.median(independent)
    assert abs(ratio - 1) < 0.10, (statistics.median(profiled), statistics.median(independent))


@pytest.mark.parametrize("device", ["local", "bench"])
@pytest.mark.parametrize("name", list(MODELS))
def test_per_op_times_add_up_to_the_run(models, tmp_path, capsys, name, device):
    """Per-op times come from the same runs as the latencies: their sum is the run less dispatch and the call.
    Half a second of runs, so that one long preemption between two ops moves the means by a few percent."""
    _, artifact = models[name]
    json_path = tmp_path / "report.json"
    assert profile_cli(artifact, "--device", device, "--runs", 60, "--min-seconds", 0.5, "--threads", THREADS,
                       "--per-op", "--json", json_path) == 0
    capsys.readouterr()
    report = json.loads(json_path.read_text())
    op_sum = sum(op["mean_s"] for op in report["per_op"])
    assert op_sum == pytest.approx(report["per_op_sum_s"])
    assert 0.90 <= op_sum / report["latency"]["mean_s"] <= 1.0 + 1e-9, (op_sum, report["latency"]["mean_s"])
    assert sum(op["share"] for op in report["per_op"]) == pytest.approx(1.0)


def test_bench_device_reports_the_bench_process(models, tmp_path, capsys):
    _, artifact = models["cnn"]
    json_path = tmp_path / "report.json"
    assert profile_cli(artifact, "--device", "bench", "--runs", 5, "--threads", THREADS, "--pin", "0",
                       "--json", json_path) == 0
    capsys.readouterr()
    report = json.loads(json_path.read_text())
    assert report["device"]["runner"] == "bench" and report["device"]["pinned_cpus"] == [0]
    assert report["device"]["cpu"]["gemm_ukernel"]
    assert report["memory"]["peak_bytes"] > 1 << 20 and "edgepack-bench" in report["memory"]["how"]
    assert report["per_op"] is None and report["per_op_coverage"] is None


def test_local_runner_pins_and_restores_affinity(models):
    _, artifact = models["transformer"]
    before = os.sched_getaffinity(0)
    cpu = min(before)
    measurement = LocalRunner(cpus=[cpu], cooldown_s=0.001).run(artifact, runs=3, warmup=1, threads=THREADS)
    assert measurement.pinned_cpus == [cpu] and measurement.cooldown_s == 0.001
    assert len(measurement.latencies_s) == 3 and os.sched_getaffinity(0) == before
    with pytest.raises(ValueError, match="cannot pin"):
        LocalRunner(cpus=[4096]).run(artifact, runs=1)
    assert os.sched_getaffinity(0) == before


def test_min_seconds_extends_the_runs(models):
    _, artifact = models["transformer"]
    measurement = LocalRunner().run(artifact, runs=1, warmup=0, threads=THREADS, min_seconds=0.05)
    assert sum(measurement.latencies_s) >= 0.05 and measurement.first_run_s == measurement.latencies_s[0]


# ---- budgets ----------------------------------------------------------------------------------------------------
def test_a_missed_budget_fails_with_exit_code_1(models, tmp_path, capsys):
    _, artifact = models["cnn"]
    json_path = tmp_path / "report.json"
    code = profile_cli(artifact, "--runs", 5, "--threads", THREADS, "--budget", "latency=1 us", "--budget",
                       "p95=2 us", "--budget", "energy=1 nJ", "--json", json_path)
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"latency p50 .* FAIL", out) and "verdict: FAIL" in out
    report = json.loads(json_path.read_text())
    statuses = {c["key"]: c["status"] for c in report["checks"]}
    assert statuses == {"latency_p50": "FAIL", "latency_p95": "FAIL", "peak_memory": "PASS", "arena": "PASS",
                        "energy": "FAIL"}
    assert report["verdict"] == "FAIL" and report["profile"]["budgets"]["latency_p50_s"] == 1e-6
    assert "overridden: energy, latency, p95" in report["profile"]["budgets_source"]


def test_a_device_profile_sets_the_budgets(models, tmp_path, capsys):
    """An artifact compiled for the host, profiled against the ESP32-S3's 8 MiB-class RAM budget: the
    predictions are recomputed for that profile and the budgets are the profile's."""
    _, artifact = models["transformer"]
    json_path = tmp_path / "report.json"
    profile_cli(artifact, "--runs", 5, "--threads", THREADS, "--profile", "esp32-s3", "--json", json_path)
    capsys.readouterr()
    report = json.loads(json_path.read_text())
    esp32 = load_profile("esp32-s3")
    assert report["profile"]["budgets"]["ram_bytes"] == esp32.memory.ram_bytes
    assert report["profile"]["budgets_source"] == "profile esp32-s3"
    assert report["predicted"]["source"] == "cost model (recomputed)"
    assert any("recomputed for 'esp32-s3'" in w for w in report["warnings"])


def test_recomputed_predictions_match_the_compiled_graph(tmp_path):
    """The graph read back from an artifact (quantized weights included) prices like the compiled one."""
    compiled = edgepack.compile(small_transformer(), output=tmp_path / "dynamic.epk", precision="int8-dynamic",
                                progress=False)
    pi = load_profile("raspberry-pi-5")
    expected = estimate(compiled.graph, pi)
    prediction = predict(compiled.path, pi)
    assert prediction.latency_s == pytest.approx(expected.latency_s)
    assert prediction.ram_bytes == expected.ram_bytes and prediction.arena_bytes == expected.arena_bytes
    assert prediction.per_op_s == pytest.approx({n.name: n.latency_s for n in expected.nodes})


def test_errors_exit_2_with_a_clear_message(models, capsys, monkeypatch):
    _, artifact = models["cnn"]
    assert profile_cli(artifact, "--device", "bench", "--cooldown", "0.1") == 2
    assert "cool-down between runs needs --device local" in capsys.readouterr().err
    assert profile_cli(artifact, "--device", "android://phone") == 2
    assert "unknown device 'android://phone'" in capsys.readouterr().err
    assert profile_cli(artifact, "--runs", 0) == 2
    assert "runs must be at least 1" in capsys.readouterr().err
    assert profile_cli(artifact.with_name("missing.epk")) == 2
    assert "does not exist" in capsys.readouterr().err

    # LiteRT is not part of the main environment: whether or not it is installed here, hide it.
    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)
    model = artifact.with_suffix(".tflite")
    model.write_bytes(b"TFL3")
    assert profile_cli(artifact, "--runs", 2, "--compare-tflite", model) == 2
    assert "pip install ai-edge-litert" in capsys.readouterr().err


# ---- statistics ---------------------------------------------------------------------------------------------------
def test_statistics_on_known_data():
    stats = summarize([float(x) for x in range(1, 11)])   # 1..10
    assert stats.runs == 10 and stats.mean_s == 5.5 and stats.min_s == 1 and stats.max_s == 10
    assert stats.p50_s == pytest.approx(5.5)     # linear interpolation: position 0.5 x 9 = 4.5
    assert stats.p90_s == pytest.approx(9.1) and stats.p95_s == pytest.approx(9.55)
    assert stats.p99_s == pytest.approx(9.91)
    assert stats.std_s == pytest.approx((55 / 6) ** 0.5)   # sample variance of 1..10 is 55/6
    assert stats.cv == pytest.approx((55 / 6) ** 0.5 / 5.5)
    assert any("too noisy" in w for w in stats.warnings)

    steady = summarize([0.010] * 20 + [0.0105] * 20)
    assert steady.cv < 0.1 and steady.warnings == ()
    assert steady.p50_s == pytest.approx(0.01025)

    few = summarize([0.01, 0.01, 0.01])
    assert any("only 3 measured runs" in w for w in few.warnings)
    single = summarize([0.02])
    assert single.std_s == 0 and single.cv == 0 and single.p99_s == 0.02
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0 and percentile([3.0, 1.0, 2.0], 100) == 3.0
    with pytest.raises(ValueError, match="no latencies"):
        summarize([])
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_cpu_lists_parse_like_taskset():
    assert parse_cpus("0") == [0] and parse_cpus("0-2,5") == [0, 1, 2, 5] and parse_cpus("3,1") == [1, 3]
    with pytest.raises(ValueError, match="bad range"):
        parse_cpus("3-1")
    with pytest.raises(ValueError, match="must look like"):
        parse_cpus("a")


# ---- energy ---------------------------------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _rapl_zone(sysfs: Path, zone: str, name: str, energy_uj: int = 1000, wrap: int | None = 2 ** 32) -> Path:
    _write(sysfs / "class" / "powercap" / zone / "name", name)
    _write(sysfs / "class" / "powercap" / zone / "energy_uj", str(energy_uj))
    if wrap is not None:
        _write(sysfs / "class" / "powercap" / zone / "max_energy_range_uj", str(wrap))
    return sysfs / "class" / "powercap" / zone / "energy_uj"


def test_energy_source_selection_on_a_fake_sysfs(tmp_path):
    sysfs = tmp_path / "sys"
    assert discover_sensors(sysfs) == (None, [])
    estimate_ = energy_per_inference(None, 0.011, 0.010, active_power_w=5.0, predicted_j=0.2, emulated=False)
    assert estimate_.source == ESTIMATED_LABEL == "estimated: profile energy model"
    assert estimate_.per_inference_j == pytest.approx(0.05) and not estimate_.measured

    # hwmon power sensors only
    _write(sysfs / "class" / "hwmon" / "hwmon0" / "name", "ina3221")
    _write(sysfs / "class" / "hwmon" / "hwmon0" / "power1_input", "1500000")
    _write(sysfs / "class" / "hwmon" / "hwmon0" / "power2_input", "500000")
    _write(sysfs / "class" / "hwmon" / "hwmon1" / "name", "coretemp")
    _write(sysfs / "class" / "hwmon" / "hwmon1" / "temp1_input", "45000")
    sensors, _ = discover_sensors(sysfs)
    assert sensors.kind == HWMON_POWER and sensors.label == "measured: hwmon power sensor"
    assert [s.name for s in sensors.sensors] == ["ina3221 power1_input", "ina3221 power2_input"]

    # an hwmon energy counter beats sampled power
    _write(sysfs / "class" / "hwmon" / "hwmon0" / "energy1_input", "123")
    assert discover_sensors(sysfs)[0].kind == HWMON_ENERGY

    # RAPL beats hwmon: each package once, not its core subzone, not the MMIO mirror
    _rapl_zone(sysfs, "intel-rapl:0", "package-0")
    _rapl_zone(sysfs, "intel-rapl:0:0", "core")
    _rapl_zone(sysfs, "intel-rapl:1", "package-1")
    _rapl_zone(sysfs, "intel-rapl-mmio:0", "package-0")
    sensors, _ = discover_sensors(sysfs)
    assert sensors.kind == RAPL and sensors.label == "measured: RAPL"
    assert [s.name for s in sensors.sensors] == ["package-0", "package-1"]
    assert sensors.sensors[0].wrap_uj == 2 ** 32

    # the platform zone covers the packages: it alone is read
    _rapl_zone(sysfs, "intel-rapl:2", "psys")
    assert [s.name for s in discover_sensors(sysfs)[0].sensors] == ["psys"]

    # the same choice from a remote machine's listing
    listing = ("powercap /sys/class/powercap/intel-rapl:0 262143328850 package-0\n"
               "powercap /sys/class/powercap/intel-rapl:0:0 - core\n"
               "hwmon /sys/class/hwmon/hwmon0/power1_input ina3221\n")
    remote = parse_remote_sensors(listing)
    assert remote.kind == RAPL and [s.path for s in remote.sensors] == ["/sys/class/powercap/intel-rapl:0/energy_uj"]
    assert parse_remote_sensors("hwmon /sys/class/hwmon/hwmon0/power1_input ina3221\n").kind == HWMON_POWER
    assert parse_remote_sensors("") is None


def test_energy_integration():
    counter = SensorSet(RAPL, (Sensor(RAPL, "/x", "package-0", wrap_uj=1_000_000),))
    # 0.4 J, then a wrap from 0.9 J past 1 J to 0.1 J (0.2 J), then 0.3 J
    samples = [(0.0, [500_000.0]), (1.0, [900_000.0]), (2.0, [100_000.0]), (3.0, [400_000.0])]
    reading = integrate(counter, [samples])
    assert reading.joules == pytest.approx(0.9) and reading.seconds == 3.0 and reading.power_w == pytest.approx(0.3)

    power = SensorSet(HWMON_POWER, (Sensor(HWMON_POWER, "/a", "a"), Sensor(HWMON_POWER, "/b", "b")))
    # 1 W + 1 W constant for 2 s, then a segment ramping 0 -> 2 W on one sensor over 1 s
    reading = integrate(power, [[(0.0, [1e6, 1e6]), (2.0, [1e6, 1e6])], [(10.0, [0.0, 0.0]), (11.0, [2e6, 0.0])]])
    assert reading.joules == pytest.approx(4 + 1) and reading.seconds == pytest.approx(3)

    measured = energy_per_inference(reading, mean_latency_s=0.01, p50_latency_s=0.009, active_power_w=9,
                                    predicted_j=None, emulated=False)
    assert measured.source == "measured: hwmon power sensor" and measured.per_inference_j == pytest.approx(5 / 3 * 0.01)
    emulated = energy_per_inference(reading, 1.0, 1.0, 9, predicted_j=0.25, emulated=True)
    assert emulated.source == ESTIMATED_LABEL and emulated.per_inference_j == 0.25


def test_energy_meter_excludes_pauses(tmp_path):
    counter = _rapl_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1_000_000)
    sensors, _ = discover_sensors(tmp_path)
    meter = EnergyMeter(sensors, interval_s=0.01)
    meter.start()
    counter.write_text("3000000\n")       # +2 J measured
    meter.pause()
    counter.write_text("9000000\n")       # +6 J during a cool-down: not charged
    meter.resume()
    counter.write_text("10000000\n")      # +1 J measured
    reading = meter.stop()
    assert reading.joules == pytest.approx(3.0) and reading.source == "measured: RAPL"


def test_remote_sensor_scripts_run_in_sh(tmp_path):
    """The shell the SSH runner sends: sensor discovery, and the sampler around a command, run here by sh
    against a fake sysfs (a 2 W power sensor)."""
    sysfs = tmp_path / "sys"
    _write(sysfs / "class" / "hwmon" / "hwmon0" / "name", "ina219")
    _write(sysfs / "class" / "hwmon" / "hwmon0" / "power1_input", "2000000")
    listing = subprocess.run(["sh", "-c", remote_discovery_script(str(sysfs))], capture_output=True, text=True,
                             check=True).stdout
    sensors = parse_remote_sensors(listing)
    assert sensors.kind == HWMON_POWER and [s.name for s in sensors.sensors] == ["ina219 power1_input"]

    log = tmp_path / "energy.log"
    start, stop = remote_sampler_script(sensors, interval_s=0.05)
    subprocess.run(["sh", "-c", f"ENERGY_LOG={log}; {start}; sleep 0.3; {stop}"], check=True, timeout=10)
    samples = parse_samples(log.read_text(), 1)
    reading = integrate(sensors, [samples])
    assert len(samples) >= 3 and 0.2 <= reading.seconds <= 2
    assert reading.joules == pytest.approx(2 * reading.seconds) and reading.power_w == pytest.approx(2)


def test_local_profile_measures_energy_from_a_fake_rapl_counter(models, tmp_path):
    """The whole path with a sensor: a thread plays the CPU package, adding 100 uJ per millisecond (0.1 W)."""
    counter = _rapl_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=0)
    stop = threading.Event()

    def package() -> None:
        started = time.perf_counter()
        while not stop.wait(0.001):
            # replaced whole, as sysfs reads are atomic: a reader never sees a half-written value
            staged = counter.with_name("energy_uj.new")
            staged.write_text(f"{int((time.perf_counter() - started) * 1e5)}\n")
            staged.replace(counter)

    player = threading.Thread(target=package)
    player.start()
    try:
        _, artifact = models["transformer"]
        report = profile_artifact(artifact, LocalRunner(sysfs=tmp_path), load_profile("host"), runs=30,
                                  threads=THREADS, min_seconds=0.2)
    finally:
        stop.set()
        player.join()
    energy = report.as_dict()["energy"]
    assert energy["source"] == "measured: RAPL" and energy["kind"] == "measured"
    assert energy["average_power_w"] == pytest.approx(0.1, rel=0.3)
    assert energy["per_inference_j"] == pytest.approx(energy["average_power_w"] * report.stats.mean_s)
    assert "RAPL counts the whole CPU package, other processes included" in report.warnings


# ---- qemu-aarch64 ---------------------------------------------------------------------------------------------------
def test_qemu_aarch64_runner_checks_outputs_and_flags_timings(models, tmp_path, capsys):
    _, artifact = models["cnn"]
    json_path = tmp_path / "report.json"
    assert profile_cli(artifact, "--device", "qemu-aarch64", "--runs", 2, "--warmup", 1, "--threads", 2,
                       "--per-op", "--json", json_path) == 0
    out = capsys.readouterr().out
    assert "EMULATED" in out and "emulated" in out
    report = json.loads(json_path.read_text())
    assert report["device"]["arch"] == "aarch64" and report["device"]["emulated"] is True
    assert report["output_check"]["passed"] is True
    statuses = {c["key"]: c["status"] for c in report["checks"]}
    assert statuses == {"latency_p50": "EMULATED", "latency_p95": "EMULATED", "peak_memory": "EMULATED",
                        "arena": "PASS", "energy": "EMULATED", "outputs": "PASS"}
    assert report["energy"]["source"] == ESTIMATED_LABEL and "cost model" in report["energy"]["how"]
    assert len(report["per_op"]) == len(edgepack.load(artifact).ops)


# ---- SSH against a real OpenSSH server on loopback -----------------------------------------------------------------
def _require(tool: str, package: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        pytest.fail(f"'{tool}' not found: install the Debian package '{package}' (apt-get install {package})")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run([_require("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path.with_suffix(".pub").read_text().strip()


@dataclass(frozen=True)
class SshServer:
    port: int
    identity: Path       # the authorized client key
    known_hosts: Path    # holds the server's host key

    @property
    def device(self) -> str:
        return f"ssh://{getpass.getuser()}@127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """sshd -D on 127.0.0.1 at a free port: a generated host key, one authorized generated client key."""
    sshd_binary = _require("sshd", "openssh-server")
    _require("ssh", "openssh-client")
    _require("scp", "openssh-client")
    folder = tmp_path_factory.mktemp("sshd")
    host_public = _keygen(folder / "host_ed25519")
    (folder / "authorized_keys").write_text(_keygen(folder / "client_ed25519") + "\n")
    port = _free_port()
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public}\n")
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_ed25519'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "StrictModes no", "UsePAM no", f"PidFile {folder / 'sshd.pid'}", "LogLevel ERROR"]) + "\n")
    try:   # privilege separation: sshd refuses to start without its empty directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    except PermissionError:
        pytest.fail("sshd needs /run/sshd (privilege separation directory); create it as root")
    process = subprocess.Popen([sshd_binary, "-D", "-f", str(config), "-e"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}: {process.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within 15 s")
            time.sleep(0.1)
    yield SshServer(port, folder / "client_ed25519", known_hosts)
    process.terminate()
    process.wait(timeout=10)


def _remote_dirs() -> set[str]:
    """The runner's remote temporary directories: sshd gives the session no TMPDIR, so mktemp uses /tmp."""
    return {p.name for p in Path("/tmp").glob("edgepack-profile.*")}


def test_ssh_runner_profiles_over_real_ssh(models, sshd, tmp_path, capsys):
    _, artifact = models["cnn"]
    json_path = tmp_path / "report.json"
    before = _remote_dirs()
    assert profile_cli(artifact, "--device", sshd.device, "--ssh-identity", sshd.identity, "--ssh-known-hosts",
                       sshd.known_hosts, "--runs", 8, "--warmup", 2, "--threads", THREADS, "--per-op",
                       "--json", json_path) == 0
    out = capsys.readouterr().out
    assert f"on {sshd.device}" in out
    report = json.loads(json_path.read_text())
    assert report["device"]["runner"] == "ssh" and report["device"]["spec"] == sshd.device
    assert report["device"]["arch"] == os.uname().machine and report["device"]["emulated"] is False
    assert report["device"]["cpu"]["bench_target"] == "host"
    assert report["latency"]["runs"] == 8 and len(report["per_op"]) == len(edgepack.load(artifact).ops)
    assert report["memory"]["peak_bytes"] > 1 << 20
    assert _remote_dirs() == before   # the remote temporary directory is gone


def test_ssh_errors_say_what_is_wrong(models, sshd, tmp_path):
    _, artifact = models["cnn"]
    stranger = tmp_path / "stranger_ed25519"
    _keygen(stranger)
    with pytest.raises(SshError, match="authentication failed"):
        SshRunner(sshd.device, identity_file=stranger, known_hosts=sshd.known_hosts).run(artifact, runs=1)

    wrong_hosts = tmp_path / "known_hosts"
    wrong_hosts.write_text(f"[127.0.0.1]:{sshd.port} {_keygen(tmp_path / 'other_host')}\n")
    with pytest.raises(SshError, match="host key of 127.0.0.1 is unknown or changed"):
        SshRunner(sshd.device, identity_file=sshd.identity, known_hosts=wrong_hosts).run(artifact, runs=1)

    closed = f"ssh://{getpass.getuser()}@127.0.0.1:{_free_port()}"
    with pytest.raises(SshError, match="cannot reach 127.0.0.1 port"):
        SshRunner(closed, identity_file=sshd.identity, known_hosts=sshd.known_hosts).run(artifact, runs=1)

    runner = SshRunner(sshd.device, identity_file=sshd.identity, known_hosts=sshd.known_hosts)
    with pytest.raises(SshError, match="'riscv64' machine"):
        runner.bench_for("riscv64")
    assert runner.probe()[0] == os.uname().machine

    with pytest.raises(FileNotFoundError, match="identity file"):
        SshRunner(sshd.device, identity_file=tmp_path / "missing")
    with pytest.raises(ValueError, match="--pin applies to local devices"):
        make_runner(sshd.device, cpus=[0])


@pytest.mark.parametrize("spec, expected", [
    ("ssh://pi@board.local", SshTarget("pi", "board.local", None)),
    ("ssh://root@127.0.0.1:2222", SshTarget("root", "127.0.0.1", 2222)),
    ("ssh://board", SshTarget(None, "board", None)),
    ("ssh://me@[::1]:22", SshTarget("me", "::1", 22)),
])
def test_ssh_device_specs(spec, expected):
    target = SshTarget.parse(spec)
    assert target == expected
    assert SshTarget.parse(str(target)) == target


def test_bad_ssh_device_specs():
    for spec in ("ssh://", "ssh://a@b:0", "ssh://a@b:port", "ssh://a b"):
        with pytest.raises(ValueError):
            SshTarget.parse(spec)
    assert SshTarget.parse("ssh://me@[::1]:22").scp_path("/tmp/x") == "me@[::1]:/tmp/x"
