"""benchmarks/accuracy.py and benchmarks/compare.py in --quick mode (digits CNN only): they run with the main
environment's packages alone and write JSON with every field the README tables are made from. LiteRT is
used when ai-edge-litert and the converted models are there, and otherwise reported absent with a reason,
never skipped: here the cache is a fresh directory, so it is reported absent."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(script: str, cache: Path, output: Path) -> dict:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", "--no-readme",
                           "--cache-dir", str(cache), "--output", str(output)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "digits_cnn" in done.stdout  # the table
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


def check_header(result: dict) -> None:
    assert result["machine"]["cpu"] and result["machine"]["date"]
    assert result["versions"]["onnxruntime"] != "not installed"
    assert result["settings"]["threads"] == 2 and result["settings"]["quick"] is True
    assert result["settings"]["ort_quantize_dynamic"]["weight_type"] == "QInt8"
    assert list(result["models"]) == ["digits_cnn"]


def test_compare_quick(cache, tmp_path):
    result = run_script("compare.py", cache, tmp_path / "compare.json")
    check_header(result)
    model = result["models"]["digits_cnn"]
    labels = [r["label"] for r in model["rows"]]
    assert labels == ["edgepack fp32", "edgepack int8", "onnxruntime fp32", "onnxruntime int8", "litert fp32",
                      "litert int8"]
    for row in model["rows"]:
        if not row["available"]:
            assert row["reason"], row
            continue
        assert 0 < row["p50_ms"] <= row["p95_ms"]
        assert row["iterations"] == 20
        assert row["cold_start_ms"] > 0 and row["peak_rss_mb"] > 0 and row["size_bytes"] > 0
        assert row["output_cosine_to_ort_fp32"] > 0.99, row
    available = {r["label"] for r in model["rows"] if r["available"]}
    assert {"edgepack fp32", "onnxruntime fp32", "onnxruntime int8"} <= available
    assert model["ratios"]["fp32"]["ratio"] > 0
    assert model["baseline"]["cold_start_ms"] > 0
    # edgepack-bench's cold start, when a build is cached (--quick builds nothing), else a reason
    standalone = model["standalone"]
    assert standalone.get("reason") or set(standalone) == {"edgepack fp32 standalone (C++)",
                                                           "edgepack int8 standalone (C++)"}, standalone
    for label, entry in standalone.items():
        if label != "reason":
            assert entry["cold_start_ms"] > 0 and entry["peak_rss_mb"] > 0 and entry["size_bytes"] > 0
    for row in model["rows"]:
        if row["available"]:  # VmHWM of the child itself, not the benchmark process's peak it would inherit
            assert row["peak_rss_mb"] > model["baseline"]["peak_rss_mb"]


def test_accuracy_quick(cache, tmp_path):
    result = run_script("accuracy.py", cache, tmp_path / "accuracy.json")
    check_header(result)
    model = result["models"]["digits_cnn"]
    assert model["test_images"] == 450
    rows = {r["variant"]: r for r in model["rows"]}
    assert rows["onnxruntime fp32 (the reference)"]["agreement_with_fp32"] == 1.0
    for name in ("ORT quantize_dynamic int8", "edgepack fp32", "edgepack int8 (calibrated)"):
        row = rows[name]
        assert row["accuracy"] > 0.9 and row["agreement_with_fp32"] > 0.95, row
        assert 0 < row["size_ratio_to_fp32"] <= 1 and row["executor"]
    assert rows["edgepack int8 (calibrated)"]["size_ratio_to_fp32"] < 0.6
    for row in model["rows"]:
        assert row.get("available", True) or row["reason"]


def test_embedding_metrics():
    """The MiniLM metrics (not run by --quick): identical embeddings agree fully, noise lowers each."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from accuracy import embedding_metrics
    finally:
        sys.path.remove(str(BENCHMARKS))
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((60, 16))
    same = embedding_metrics(reference, reference * 3.0)  # cosine ignores scale
    assert same == {"mean_cosine": 1.0, "min_cosine": 1.0, "top10_agreement": 1.0}
    noisy = embedding_metrics(reference, reference + 0.5 * rng.standard_normal(reference.shape))
    assert 0.5 < noisy["min_cosine"] < noisy["mean_cosine"] < 1.0
    assert 0.0 < noisy["top10_agreement"] < 1.0


def test_targets_quick(cache, tmp_path):
    """benchmarks/targets.py --quick: the digits CNN in all four formats; LiteRT and ONNX Runtime agree
    with the native int8 output, the .mlpackage is structurally sound, corrupted artifacts fail verify."""
    output = tmp_path / "targets.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "targets.py"), "--quick", "--cache", str(cache),
                           "--out", str(output)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert list(result["models"]) == ["digits_cnn"]
    cnn = result["models"]["digits_cnn"]
    assert set(cnn["files"]) == {"epk", "onnx", "tflite", "coreml"}
    for check in cnn["against_native"].values():
        assert check["within_1_lsb"] >= 0.999 and check["top1_same"] == check["samples"] == 450
    assert cnn["coreml"]["passed"], cnn["coreml"]["failures"]
    assert cnn["verify"]["intact_exit"] == 0
    assert {fmt: c["exit"] for fmt, c in cnn["verify"]["corrupted"].items()} == {f: 1 for f in cnn["files"]}
