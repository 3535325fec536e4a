"""Targets beyond the native runtime (issue 6): every model emitted to .epk, .onnx, .tflite and
.mlpackage from one compile, each artifact run in its own runtime and checked against the native result.

Models and figures (docs/targets.md):
  * digits CNN and MobileNet-style (static int8, calibrated on 64 training digits, all test digits):
    LiteRT (ai_edge_litert.interpreter, default delegates, 2 threads) and ONNX Runtime (default options)
    against the native int8 output: share of output elements within 1 LSB of the output's int8 grid
    (needs >= 99.9 %), max difference in LSB, top-1 agreement (needs every sample);
  * all-MiniLM-L6-v2, int8-dynamic (MatMul inputs smoothed from --calibration sentences, disjoint from
    the --eval ones): mean / min cosine of each runtime's embedding to fp32 (ONNX Runtime on the fp32
    ONNX model; the .tflite needs mean >= 0.999) and to the native embedding;
  * all-MiniLM-L6-v2, static int8 as ONNX QDQ: loads in ONNX Runtime at its default optimization level;
    embedding cosine to the native .epk; share of the int8 intermediate tensors within 1 LSB of the
    .epk's graph in edgepack.reference (every value made an ONNX output, as `edgepack verify --per-op`);
  * Core ML: each .mlpackage read structurally (spec version, inputs / outputs, op and weight counts
    against the compiled graph; Core ML predicts on macOS only);
  * `edgepack verify` (a subprocess) on a deliberately corrupted copy of every artifact: exit code 1.

    python benchmarks/targets.py                 # everything, ~10 min on 2 cores
    python benchmarks/targets.py --quick         # digits CNN only
    python benchmarks/targets.py --models minilm --eval 200 --calibration 100

Writes benchmarks/results/targets.json (or --out).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from common import DEFAULT_CACHE, RESULTS_DIR, THREADS, cosine, ensure_onnx, log, machine, versions, write_json

PROFILE = "iphone-15-pro"          # its target (ios-arm64) runs native, Core ML, LiteRT and ONNX Runtime
FORMATS = ("epk", "onnx", "tflite", "coreml")
CNN_CALIBRATION = 64
MIN_LSB_SHARE = 0.999
MIN_TFLITE_COSINE = 0.999
Feeds = Mapping[str, np.ndarray]


# ---- runtimes --------------------------------------------------------------------------------------
def native_runner(path: Path) -> Callable[[Feeds], dict[str, np.ndarray]]:
    import edgepack
    session = edgepack.load(path, num_threads=THREADS)
    return session.run


def ort_runner(path: Path) -> Callable[[Feeds], dict[str, np.ndarray]]:
    """ONNX Runtime with its default options (ORT_ENABLE_ALL), as a user opening the file would."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(None, dict(feeds))))


def litert_runner(path: Path) -> Callable[[Feeds], dict[str, np.ndarray]]:
    """LiteRT's interpreter with its default delegates (XNNPACK)."""
    from ai_edge_litert import interpreter as litert
    interpreter = litert.Interpreter(model_path=str(path), num_threads=THREADS)
    interpreter.allocate_tensors()
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()

    def run(feeds: Feeds) -> dict[str, np.ndarray]:
        for detail in inputs:
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(feeds[detail["name"]]))
        interpreter.invoke()
        return {d["name"]: interpreter.get_tensor(d["index"]).copy() for d in outputs}
    return run


RUNNERS = {"onnx": ("ONNX Runtime", ort_runner), "tflite": ("LiteRT", litert_runner)}


# ---- checks ----------------------------------------------------------------------------------------
def coreml_structure(path: Path, graph, precision: str) -> dict[str, Any]:
    """The package read without Core ML, checked against the graph it was written from."""
    from edgepack.backends.coreml import describe_package
    from edgepack.ir import DType
    from edgepack.passes import standard_ops
    facts = describe_package(path)
    failures = []
    inputs = {n: tuple(graph.values[n].shape) for n in graph.inputs}
    outputs = {n: tuple(graph.values[n].shape) for n in graph.outputs}
    if {n: s for n, (_, s) in facts.inputs.items()} != inputs:
        failures.append(f"inputs {facts.inputs} != graph {inputs}")
    if {n: s for n, (_, s) in facts.outputs.items()} != outputs:
        failures.append(f"outputs {facts.outputs} != graph {outputs}")
    int8_weights = sum(v.numel for v in graph.values.values() if v.is_const and v.dtype is DType.INT8)
    if facts.weight_dtypes.get("int8", 0) != int8_weights:
        failures.append(f"int8 weight elements {facts.weight_dtypes.get('int8', 0)} != graph {int8_weights}")
    convs = sum(n.op == "Conv" for n in graph.nodes)
    if facts.ops.get("conv", 0) != convs:
        failures.append(f"conv ops {facts.ops.get('conv', 0)} != graph {convs}")
    # as the emitter writes them: merged MatMuls one per output, a fused Attention two MatMuls
    matmuls = sum(n.op == "MatMul" for n in standard_ops(graph).nodes)
    if facts.ops.get("linear", 0) + facts.ops.get("matmul", 0) != matmuls:
        failures.append(f"linear + matmul ops != graph MatMuls {matmuls}")
    if facts.metadata.get("precision") != precision:
        failures.append(f"metadata precision {facts.metadata.get('precision')} != {precision}")
    if precision == "int8" and facts.weight_dtypes.get("float32", 0):
        failures.append("float32 weights in an int8 package")
    return {"passed": not failures, "failures": failures, "spec_version": facts.spec_version,
            "ops": sum(facts.ops.values()), "int8_weight_elements": facts.weight_dtypes.get("int8", 0),
            "weights_file_bytes": facts.weights_file_bytes}


def corrupt_copy(path: Path, directory: Path) -> Path:
    """A copy of `path` with 64 bytes overwritten in the middle and the last quarter cut off (for an
    .mlpackage, its model spec)."""
    broken = directory / path.name
    if path.is_dir():
        shutil.copytree(path, broken)
        spec = broken / "Data" / "com.apple.CoreML" / "model.mlmodel"
        target = spec
    else:
        shutil.copy(path, broken)
        target = broken
    data = bytearray(target.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xa5" * 64
    target.write_bytes(bytes(data[: len(data) * 3 // 4]))
    return broken


def verify_exit_codes(artifacts: Mapping[str, Path], inputs: Path, workdir: Path) -> dict[str, Any]:
    """`edgepack verify` as a user runs it: intact artifacts exit 0, each corrupted one exits 1."""
    command = [sys.executable, "-m", "edgepack.cli", "verify"]
    intact = subprocess.run(command + [str(p) for p in artifacts.values()] + ["--inputs", str(inputs)],
                            capture_output=True, text=True)
    result: dict[str, Any] = {"intact_exit": intact.returncode, "corrupted": {}}
    for fmt, path in artifacts.items():
        directory = workdir / f"corrupt-{fmt}"
        directory.mkdir(exist_ok=True)
        broken = corrupt_copy(path, directory)
        run = subprocess.run(command + [str(broken), "--inputs", str(inputs)], capture_output=True, text=True)
        line = next((ln.strip() for ln in run.stdout.splitlines() if "ERROR" in ln or "FAIL" in ln), "")
        result["corrupted"][fmt] = {"exit": run.returncode, "line": line[:200],
                                    "traceback": "Traceback" in run.stdout + run.stderr}
    result["passed"] = intact.returncode == 0 and all(c["exit"] == 1 and not c["traceback"]
                                                      for c in result["corrupted"].values())
    return result


def compile_all(model, workdir: Path, name: str, **kwargs):
    import edgepack
    started = time.perf_counter()
    compiled = edgepack.compile(model, profile=PROFILE, format="all", output=workdir / name, progress=False, **kwargs)
    missing = set(FORMATS) - set(compiled.artifacts)
    if missing:
        raise RuntimeError(f"{name}: no {', '.join(sorted(missing))} artifact")
    return compiled, {fmt: {"file": path.name, "bytes": _size(path)} for fmt, path in compiled.artifacts.items()}, \
        time.perf_counter() - started


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


# ---- models ----------------------------------------------------------------------------------------
def measure_cnn(name: str, cache: Path, workdir: Path) -> dict[str, Any]:
    from common import torch_model
    from edgepack.models.digits import digits_data
    from edgepack.verify import output_lsb
    module, example = torch_model(name, cache)
    data = digits_data()
    calibration = [{"x": x[None]} for x in data.x_train[:CNN_CALIBRATION]]
    compiled, files, seconds = compile_all(module, workdir, name, example_inputs=example, precision="int8",
                                           calibration_data=calibration)
    log(f"{name}: compiled to {', '.join(files)} in {seconds:.1f} s")
    output = compiled.graph.outputs[0]
    lsb = output_lsb(compiled.graph, output)
    samples = [{"x": x[None]} for x in data.x_test]
    native = native_runner(compiled.artifacts["epk"])
    reference = [native(s)[output] for s in samples]
    runtimes = {}
    for fmt, (runtime, make) in RUNNERS.items():
        run = make(compiled.artifacts[fmt])
        got = [run(s)[output] for s in samples]
        diff = np.concatenate([np.abs(g.astype(np.float64) - r).ravel() for g, r in zip(got, reference)])
        within = float(np.mean(diff <= lsb * (1 + 1e-4)))
        top1 = int(sum(g.argmax() == r.argmax() for g, r in zip(got, reference)))
        runtimes[fmt] = {"runtime": runtime, "within_1_lsb": within, "max_lsb": float(diff.max() / lsb),
                         "bit_identical": bool(diff.max() == 0), "top1_same": top1, "samples": len(samples),
                         "passed": within >= MIN_LSB_SHARE and top1 == len(samples)}
        log(f"{name} {fmt}: {100 * within:.3f} % within 1 LSB (max {diff.max() / lsb:.2f} LSB), "
            f"top-1 {top1}/{len(samples)}")
    accuracy = float(np.mean([r.argmax() == y for r, y in zip(reference, data.y_test)]))
    np.savez(workdir / f"{name}.inputs.npz", x=data.x_test[:50, None])
    result = {"precision": "int8", "calibration_samples": CNN_CALIBRATION, "files": files,
              "compile_seconds": round(seconds, 1), "lsb": lsb, "native_test_accuracy": accuracy,
              "against_native": runtimes,
              "coreml": coreml_structure(compiled.artifacts["coreml"], compiled.graph, "int8"),
              "verify": verify_exit_codes(compiled.artifacts, workdir / f"{name}.inputs.npz", workdir)}
    log(f"{name}: Core ML structure {'ok' if result['coreml']['passed'] else result['coreml']['failures']}; "
        f"verify exit codes {result['verify']['intact_exit']} / "
        f"{[c['exit'] for c in result['verify']['corrupted'].values()]}")
    return result


def _cosines(got: list[np.ndarray], want: list[np.ndarray]) -> dict[str, float]:
    values = [cosine(g, w) for g, w in zip(got, want)]
    return {"mean": float(np.mean(values)), "min": float(np.min(values))}


def measure_minilm(cache: Path, workdir: Path, n_eval: int, n_calibration: int, n_intermediate: int) -> dict[str, Any]:
    from edgepack.models import minilm
    source = ensure_onnx("minilm", cache)
    sentences = minilm.sentences(n_eval + n_calibration)
    evaluation, calibration = minilm.tokenize(sentences[:n_eval]), minilm.tokenize(sentences[n_eval:])
    fp32 = ort_runner(source)
    reference = [fp32(f)["embedding"] for f in evaluation]
    log(f"minilm: fp32 reference on {n_eval} sentences")

    compiled, files, seconds = compile_all(source, workdir, "minilm", precision="int8-dynamic",
                                           calibration_data=calibration)
    # smoothing Muls are folded into the dynamic MatMuls as their input scale (input 3; quant/smooth.py)
    smoothed = sum(n.op == "MatMul" and len(n.inputs) > 3 and bool(n.inputs[3]) for n in compiled.graph.nodes)
    log(f"minilm int8-dynamic: compiled to {', '.join(files)} in {seconds:.1f} s ({smoothed} smoothed MatMul inputs)")
    native = native_runner(compiled.artifacts["epk"])
    native_out = [native(f)["embedding"] for f in evaluation]
    dynamic = {"files": files, "compile_seconds": round(seconds, 1), "smoothed_matmuls": smoothed,
               "native": {"vs_fp32": _cosines(native_out, reference)}}
    for fmt, (runtime, make) in RUNNERS.items():
        run = make(compiled.artifacts[fmt])
        got = [run(f)["embedding"] for f in evaluation]
        dynamic[fmt] = {"runtime": runtime, "vs_fp32": _cosines(got, reference), "vs_native": _cosines(got, native_out)}
        log(f"minilm int8-dynamic {fmt}: cosine to fp32 {dynamic[fmt]['vs_fp32']}, to native {dynamic[fmt]['vs_native']}")
    dynamic["tflite"]["passed"] = dynamic["tflite"]["vs_fp32"]["mean"] >= MIN_TFLITE_COSINE
    dynamic["coreml"] = coreml_structure(compiled.artifacts["coreml"], compiled.graph, "int8-dynamic")
    feeds = evaluation[:20]
    np.savez(workdir / "minilm.inputs.npz", **{k: np.stack([f[k] for f in feeds]) for k in feeds[0]})
    dynamic["verify"] = verify_exit_codes(compiled.artifacts, workdir / "minilm.inputs.npz", workdir)
    log(f"minilm: Core ML structure {'ok' if dynamic['coreml']['passed'] else dynamic['coreml']['failures']}; "
        f"verify exit codes {dynamic['verify']['intact_exit']} / "
        f"{[c['exit'] for c in dynamic['verify']['corrupted'].values()]}")
    return {"eval_sentences": n_eval, "calibration_sentences": n_calibration, "int8_dynamic": dynamic,
            "int8_static_onnx": measure_minilm_static(source, workdir, evaluation, calibration, reference,
                                                      n_intermediate)}


def measure_minilm_static(source: Path, workdir: Path, evaluation, calibration, reference,
                          n_intermediate: int) -> dict[str, Any]:
    """Static int8 as ONNX QDQ: the model that did not load at ORT's default level."""
    import edgepack
    import onnx
    import onnxruntime as ort
    from onnx import helper
    from edgepack.reference import run_graph
    from edgepack.verify import epk_graph
    compiled = edgepack.compile(source, precision="int8", calibration_data=calibration, format=["epk", "onnx"],
                                output=workdir / "minilm-int8", progress=False)
    native = native_runner(compiled.artifacts["epk"])
    started = time.perf_counter()
    run = ort_runner(compiled.artifacts["onnx"])            # default options
    load_seconds = time.perf_counter() - started
    native_out = [native(f)["embedding"] for f in evaluation]
    got = [run(f)["embedding"] for f in evaluation]
    result = {"loads_at_default_level": True, "load_seconds": round(load_seconds, 2),
              "vs_native": _cosines(got, native_out), "vs_fp32": _cosines(got, reference),
              "native_vs_fp32": _cosines(native_out, reference)}
    log(f"minilm int8 .onnx: loads at ORT's default level; cosine to native {result['vs_native']}")

    graph = epk_graph(compiled.artifacts["epk"])
    model = onnx.load(str(compiled.artifacts["onnx"]))
    int8 = [n for n, v in graph.values.items() if v.dtype.name == "INT8" and not v.is_const]
    for name in int8:
        model.graph.output.append(helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    probe = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in probe.get_outputs()]
    within = total = 0
    worst = 0
    native_vs_oracle = []
    for feeds in evaluation[:n_intermediate]:
        expected = run_graph(graph, feeds, keep=True)
        actual = dict(zip(names, probe.run(None, feeds)))
        for name in int8:
            diff = np.abs(actual[name].astype(np.int32) - expected[name].astype(np.int32))
            within, total, worst = within + int((diff <= 1).sum()), total + diff.size, max(worst, int(diff.max()))
        native_vs_oracle.append(cosine(native(feeds)["embedding"], expected["embedding"]))
    result["int8_intermediates"] = {"tensors": len(int8), "sentences": n_intermediate,
                                    "within_1_lsb": within / total, "max_lsb": worst}
    result["native_vs_its_oracle"] = {"mean": float(np.mean(native_vs_oracle)), "min": float(np.min(native_vs_oracle))}
    log(f"minilm int8 .onnx: int8 intermediates {100 * within / total:.2f} % within 1 LSB (max {worst}); "
        f"native vs edgepack.reference cosine {result['native_vs_its_oracle']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=("digits_cnn", "mobilenet", "minilm"),
                        default=["digits_cnn", "mobilenet", "minilm"])
    parser.add_argument("--quick", action="store_true", help="digits CNN only")
    parser.add_argument("--eval", type=int, default=200, help="MiniLM evaluation sentences (default 200)")
    parser.add_argument("--calibration", type=int, default=100,
                        help="MiniLM calibration sentences, disjoint from the evaluation ones (default 100)")
    parser.add_argument("--intermediate", type=int, default=5,
                        help="sentences for the static-int8 intermediate-tensor comparison (default 5)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="model cache (benchmarks/README.md)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "targets.json")
    args = parser.parse_args(argv)
    if args.eval < 1 or args.calibration < 1 or args.intermediate < 1:
        parser.error("--eval, --calibration and --intermediate take positive counts")
    models = ["digits_cnn"] if args.quick else args.models
    results: dict[str, Any] = {"machine": machine(), "versions": versions(), "profile": PROFILE,
                               "threads": THREADS, "models": {}}
    with tempfile.TemporaryDirectory(prefix="edgepack-targets-") as tmp:
        workdir = Path(tmp)
        for name in models:
            directory = workdir / name
            directory.mkdir()
            if name == "minilm":
                results["models"][name] = measure_minilm(args.cache, directory, args.eval, args.calibration,
                                                         args.intermediate)
            else:
                results["models"][name] = measure_cnn(name, args.cache, directory)
    write_json(args.out, results)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
