"""Latency, cold start, peak memory and artifact size: edgepack's native runtime next to ONNX Runtime
(fp32 and quantize_dynamic int8) and LiteRT (fp32 and dynamic-range int8), two threads each.

Models: the digits CNN, the resnet50 and squeezenet light models (ONNX only: no LiteRT variant), the
MobileNet-style digits model, and all-MiniLM-L6-v2 at batch 1, seq 128.

Latency is measured in this one process, in one run: every iteration runs each runtime once, in an order
rotated per iteration, so all of them share the machine's noise. Cold start and peak RSS come from a fresh
Python subprocess per runtime (import, load, one run). See README.md for the details.

    python benchmarks/compare.py            # everything (~5 min; rewrites the README tables)
    python benchmarks/compare.py --quick    # digits CNN only, few iterations (a smoke test)
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from common import ALL_MODELS, BENCH_DIR, DEFAULT_CACHE, LIGHT_MODELS, LITERT_RECIPE, ORT_DYNAMIC_OPTIONS, README, \
    RESULTS_DIR, RUNNERS, THREADS, ModelFiles, bench_feeds, calibration_feeds, cosine, ensure_onnx, \
    ensure_ort_int8, litert_missing, log, machine, markdown_table, onnx_inputs, update_readme, versions, write_json

# Timed iterations per model in a full run: more where a call is cheap, fewer for resnet50, where ORT's
# ConvInteger path (its quantize_dynamic int8) takes over half a second per call.
ITERATIONS = {"digits_cnn": 1000, "mobilenet": 1000, "squeezenet": 150, "resnet50": 40, "minilm": 150}
WARMUP = 5
COLD_REPEATS = 3
# int8 calibration samples; MiniLM's int8-dynamic uses its sentences to smooth the MatMul inputs
CALIBRATION = {"digits_cnn": 64, "mobilenet": 64, "resnet50": 8, "squeezenet": 8, "minilm": 100}
# The figures for MiniLM seq 128, measured earlier on this machine: shown beside this run's.
ANCHORS_MS = {"litert int8": 5.9, "onnxruntime int8": 8.6, "litert fp32": 15.2, "onnxruntime fp32": 28.6}

# The standalone C++ runner's rows: edgepack-bench (native/tools/), what a board runs, no Python at all.
STANDALONE = "standalone (C++)"

# Run in a fresh interpreter per runtime: argv = t0 runtime path feeds.npz threads bench_dir. t0 is the
# parent's time.perf_counter() just before the spawn; perf_counter is CLOCK_MONOTONIC on Linux, one clock for
# every process, so the difference covers interpreter start-up, imports, load and the first run.
# Peak RSS is VmHWM, the high-water mark of the child's own address space. getrusage's ru_maxrss would be
# wrong here: Linux carries the forking process's high-water mark into the child's maxrss at exec, so every
# child would report at least this (large) benchmark process's peak.
COLD_START = """
import sys, time
t0 = float(sys.argv[1])
runtime, path, feeds_path, threads, bench_dir = sys.argv[2:7]
import json
import numpy as np
feeds = dict(np.load(feeds_path))
if runtime != "baseline":
    sys.path.insert(0, bench_dir)
    from common import RUNNERS
    RUNNERS[runtime](path, int(threads)).run(feeds)
seconds = time.perf_counter() - t0
with open("/proc/self/status") as status:
    hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_rss_kib": hwm_kib}))
"""


@dataclass
class Variant:
    """One runtime x precision of one model."""
    runtime: str
    precision: str            # "fp32" or "int8": the class ratios compare within
    method: str               # how the file was made
    path: Path
    runner: object = None
    reason: str = ""          # why it is absent, when runner is None
    times: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"


# ---- building the variants ---------------------------------------------------------------------------------
def compile_edgepack(name: str, onnx_path: Path, inputs: list[str], workdir: Path) -> list[Variant]:
    import edgepack
    int8 = "int8-dynamic" if name == "minilm" else "int8"
    variants = []
    for precision, edgepack_precision in (("fp32", "fp32"), ("int8", int8)):
        calibration = calibration_feeds(name, inputs, CALIBRATION[name]) if precision == "int8" else None
        method = f"edgepack.compile(precision='{edgepack_precision}'" + (
            f", {len(calibration)} calibration samples)" if calibration else ")")
        compiled = edgepack.compile(onnx_path, output=workdir / f"{name}.{edgepack_precision}.epk",
                                    precision=edgepack_precision, calibration_data=calibration, progress=False)
        variants.append(Variant("edgepack", precision, method, compiled.path))
    return variants


def variants_of(name: str, cache: Path, workdir: Path) -> tuple[list[Variant], dict[str, np.ndarray]]:
    onnx_fp32, onnx_int8 = ensure_onnx(name, cache), ensure_ort_int8(name, cache)
    inputs = onnx_inputs(onnx_fp32)
    variants = compile_edgepack(name, onnx_fp32, inputs, workdir) + [
        Variant("onnxruntime", "fp32", "ONNX export", onnx_fp32),
        Variant("onnxruntime", "int8", "quantize_dynamic (ORT defaults)", onnx_int8)]
    files = ModelFiles(cache, name)
    missing = litert_missing(name, cache)
    variants += [Variant("litert", "fp32", "litert_torch.convert", files.tflite, reason=missing or ""),
                 Variant("litert", "int8", "ai-edge-quantizer dynamic_wi8_afp32", files.tflite_int8,
                         reason=missing or "")]
    for variant in variants:
        if variant.reason:
            continue
        try:
            variant.runner = RUNNERS[variant.runtime](variant.path, THREADS)
        except Exception as error:  # e.g. edgepack.UnsupportedError: a kernel not written yet
            variant.reason = f"{type(error).__name__}: {error}"
    return variants, bench_feeds(name, inputs)


# ---- measuring ----------------------------------------------------------------------------------------------
def time_alternating(variants: list[Variant], feeds: dict[str, np.ndarray], warmup: int, iterations: int) -> None:
    """Each iteration runs every variant once; the order rotates so none always follows the same one."""
    for iteration in range(warmup + iterations):
        shift = iteration % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            started = time.perf_counter()
            variant.runner.run(feeds)
            elapsed = time.perf_counter() - started
            if iteration >= warmup:
                variant.times.append(elapsed)


def cold_starts(variants: list[Variant], feeds_path: Path, repeats: int,
                standalone: Sequence[tuple[str, Path, Path]] = (), bench: Path | None = None
                ) -> dict[str, dict[str, float]]:
    """Median seconds to first result and median peak RSS over `repeats` fresh processes per runtime,
    interleaved; 'baseline' is python + numpy + loading the inputs, the floor of every runtime.
    standalone: (label, artifact, raw inputs file) run by the `bench` binary (edgepack-bench), timed from
    just before the spawn to the process's exit, its peak RSS from its own report."""
    jobs = [("baseline", "baseline", "", "")] + [(v.label, v.runtime, str(v.path), "") for v in variants]
    jobs += [(label, "standalone", str(artifact), str(inputs)) for label, artifact, inputs in standalone]
    samples: dict[str, list[dict]] = {label: [] for label, *_ in jobs}
    for _ in range(repeats):
        for label, runtime, path, inputs in jobs:
            started = time.perf_counter()
            if runtime == "standalone":
                done = subprocess.run([str(bench), path, "--runs", "1", "--warmup", "0", "--threads", str(THREADS),
                                       "--inputs", inputs], capture_output=True, text=True)
                seconds = time.perf_counter() - started
            else:
                done = subprocess.run([sys.executable, "-c", COLD_START, repr(started), runtime, path, str(feeds_path),
                                       str(THREADS), str(BENCH_DIR)], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"cold start of {label} failed:\n{done.stderr[-2000:]}")
            if runtime == "standalone":
                report = json.loads(done.stdout)
                samples[label].append({"seconds": seconds, "peak_rss_kib": report["peak_rss_bytes"] / 1024})
            else:
                samples[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {label: {"cold_start_ms": round(1e3 * statistics.median(s["seconds"] for s in runs), 1),
                    "peak_rss_mb": round(statistics.median(s["peak_rss_kib"] for s in runs) / 1024, 1)}
            for label, runs in samples.items()}


def percentile_ms(times: list[float], q: float) -> float:
    return round(1e3 * float(np.percentile(times, q)), 3)


def ratios(rows: list[dict]) -> dict[str, dict]:
    """edgepack's p50 over the fastest peer's, within fp32 and within int8."""
    result = {}
    for precision in ("fp32", "int8"):
        ours = [r for r in rows if r["runtime"] == "edgepack" and r["precision"] == precision and r["available"]]
        peers = [r for r in rows if r["runtime"] != "edgepack" and r["precision"] == precision and r["available"]]
        if not peers:
            continue
        best = min(peers, key=lambda r: r["p50_ms"])
        entry = {"best_peer": best["label"], "best_peer_p50_ms": best["p50_ms"]}
        if ours:
            entry.update(native_p50_ms=ours[0]["p50_ms"], ratio=round(ours[0]["p50_ms"] / best["p50_ms"], 3))
        else:
            entry.update(native_p50_ms=None, ratio=None, reason="edgepack variant not available")
        result[precision] = entry
    return result


RSS_ALLOWANCE_MB = 20.0  # the target: peak RSS <= artifact + planned arena + 20 MB


def start_and_memory(result: dict) -> dict[str, dict]:
    """Per precision: edgepack's cold start over the best peer's (in Python, and the standalone C++ runner),
    and its peak RSS against artifact + planned arena + 20 MB (the standalone runner's own, and the Python
    process's above the python + numpy floor)."""
    rows = [r for r in result["rows"] if r["available"]]
    standalone = result.get("standalone", {})
    out = {}
    for precision in ("fp32", "int8"):
        ours = next((r for r in rows if r["runtime"] == "edgepack" and r["precision"] == precision), None)
        peers = [r for r in rows if r["runtime"] != "edgepack" and r["precision"] == precision]
        if ours is None or not peers:
            continue
        best = min(peers, key=lambda r: r["cold_start_ms"])
        limit_mb = (ours["size_bytes"] + ours.get("arena_bytes", 0)) / 2**20 + RSS_ALLOWANCE_MB
        entry = {"best_peer": best["label"], "best_peer_cold_start_ms": best["cold_start_ms"],
                 "cold_start_ratio": round(ours["cold_start_ms"] / best["cold_start_ms"], 3),
                 "rss_limit_mb": round(limit_mb, 1),
                 "python_rss_above_floor_mb": round(ours["peak_rss_mb"] - result["baseline"]["peak_rss_mb"], 1)}
        alone = standalone.get(f"{ours['label']} {STANDALONE}")
        if alone:
            entry.update(standalone_cold_start_ratio=round(alone["cold_start_ms"] / best["cold_start_ms"], 3),
                         standalone_peak_rss_mb=alone["peak_rss_mb"])
        out[precision] = entry
    return out


def standalone_bench(build: bool) -> tuple[Path | None, str]:
    """(edgepack-bench for this host, "") or (None, why not). Built (a minute or two, then cached) when
    `build`; otherwise (--quick) used only when a build of the current sources is cached already."""
    from edgepack.profiler.native_build import build_bench, cached_bench
    try:
        binary = build_bench("host") if build else cached_bench("host")
    except Exception as error:  # NativeBuildError: no cmake or compiler here
        return None, f"{type(error).__name__}: {error}"
    return binary, "" if binary else "edgepack-bench is not built (--quick builds nothing; a full run builds it)"


def measure(name: str, cache: Path, workdir: Path, iterations: int, warmup: int, repeats: int,
            bench: tuple[Path | None, str] = (None, "not requested")) -> dict:
    log(f"{name}: building variants")
    variants, feeds = variants_of(name, cache, workdir)
    ready = [v for v in variants if v.runner is not None]
    # The standalone runner reads raw inputs in the artifact's input order.
    standalone = []
    for variant in ready:
        if variant.runtime == "edgepack" and bench[0] is not None:
            raw = workdir / f"{variant.path.stem}.inputs.bin"
            raw.write_bytes(b"".join(np.ascontiguousarray(feeds[spec.name], spec.dtype).tobytes()
                                     for spec in variant.runner.session.inputs))
            standalone.append((f"{variant.label} {STANDALONE}", variant.path, raw))
    for variant in variants:
        if variant.reason:
            log(f"  {variant.label}: absent: {variant.reason}")
    reference = next(v for v in ready if v.label == "onnxruntime fp32").runner.run(feeds)[0]
    agreement = {v.label: round(cosine(reference, v.runner.run(feeds)[0]), 6) for v in ready}
    log(f"  timing {len(ready)} runtimes x {iterations} iterations (+{warmup} warm-up), alternating")
    time_alternating(ready, feeds, warmup, iterations)
    arenas = {v.label: v.runner.session.arena_bytes for v in ready if v.runtime == "edgepack"}
    for variant in ready:
        variant.runner = None  # free the sessions before the subprocesses measure memory
    gc.collect()
    feeds_path = workdir / f"{name}.feeds.npz"
    np.savez(feeds_path, **feeds)
    log(f"  cold start: {repeats} fresh process(es) per runtime")
    cold = cold_starts(ready, feeds_path, repeats, standalone, bench[0])
    rows = []
    for variant in variants:
        entry = {"label": variant.label, "runtime": variant.runtime, "precision": variant.precision,
                 "method": variant.method, "available": not variant.reason}
        if variant.reason:
            entry["reason"] = variant.reason
        else:
            entry.update(p50_ms=percentile_ms(variant.times, 50), p95_ms=percentile_ms(variant.times, 95),
                         iterations=len(variant.times), **cold[variant.label],
                         size_bytes=variant.path.stat().st_size, file=variant.path.name,
                         output_cosine_to_ort_fp32=agreement[variant.label])
            if variant.label in arenas:
                entry["arena_bytes"] = arenas[variant.label]
        rows.append(entry)
    result = {"inputs": {k: list(v.shape) for k, v in feeds.items()}, "rows": rows, "ratios": ratios(rows),
              "baseline": cold["baseline"],
              "standalone": {label: {**cold[label], "size_bytes": path.stat().st_size} for label, path, _ in standalone}
              if standalone else {"reason": bench[1]}}
    result["start_and_memory"] = start_and_memory(result)
    if name == "minilm":
        result["anchors_ms"] = ANCHORS_MS
    return result


# ---- report ---------------------------------------------------------------------------------------------------
def tables(results: dict) -> str:
    headers = ["model", "runtime", "p50 ms", "p95 ms", "cold start ms", "peak RSS MB", "size MB"]
    cells, ratio_cells, notes = [], [], []
    for name, result in results["models"].items():
        for r in result["rows"]:
            if r["available"]:
                cells.append([name, r["label"], f"{r['p50_ms']:.3f}", f"{r['p95_ms']:.3f}", f"{r['cold_start_ms']:.0f}",
                              f"{r['peak_rss_mb']:.0f}", f"{r['size_bytes'] / 1e6:.3f}"])
            else:
                cells.append([name, r["label"], "—", "—", "—", "—", "—"])
                notes.append(f"- {name} {r['label']}: absent: {r['reason']}")
        for label, entry in result.get("standalone", {}).items():
            if label != "reason":
                cells.append([name, label, "", "", f"{entry['cold_start_ms']:.0f}", f"{entry['peak_rss_mb']:.0f}",
                              f"{entry['size_bytes'] / 1e6:.3f}"])
        base = result["baseline"]
        cells.append([name, "python + numpy (floor)", "", "", f"{base['cold_start_ms']:.0f}", f"{base['peak_rss_mb']:.0f}", ""])
        ratio_row = [name]
        for precision in ("fp32", "int8"):
            entry = result["ratios"].get(precision)
            if entry is None:
                ratio_row.append("—")
            elif entry["ratio"] is None:
                ratio_row.append(f"— (best peer: {entry['best_peer']} {entry['best_peer_p50_ms']:.3f} ms)")
            else:
                ratio_row.append(f"{entry['ratio']:.2f} ({entry['native_p50_ms']:.3f} / {entry['best_peer']} "
                                 f"{entry['best_peer_p50_ms']:.3f} ms)")
        ratio_cells.append(ratio_row)
    start_cells = []
    for name, result in results["models"].items():
        for precision, e in result.get("start_and_memory", {}).items():
            start_cells.append([name, precision, f"{e['cold_start_ratio']:.2f}",
                                f"{e['standalone_cold_start_ratio']:.2f}" if "standalone_cold_start_ratio" in e else "—",
                                f"{e['best_peer']} {e['best_peer_cold_start_ms']:.0f} ms", f"{e['rss_limit_mb']:.1f}",
                                f"{e['standalone_peak_rss_mb']:.1f}" if "standalone_peak_rss_mb" in e else "—",
                                f"{e['python_rss_above_floor_mb']:.1f}"])
    parts = [markdown_table(headers, cells),
             "**edgepack p50 / best peer p50** (same precision class)\n\n"
             + markdown_table(["model", "fp32", "int8"], ratio_cells),
             "**Start-up and memory**: cold start over the best peer's (same precision class; target <= 0.5), "
             "and peak RSS against artifact + planned arena + 20 MB (target: at most that limit)\n\n"
             + markdown_table(["model", "precision", "cold start / best peer (Python)",
                               "cold start / best peer (standalone C++)", "best peer cold start",
                               "RSS limit MB", "standalone peak RSS MB", "Python peak RSS above floor MB"],
                              start_cells)]
    minilm = results["models"].get("minilm")
    if minilm:
        p50 = {r["label"]: r.get("p50_ms") for r in minilm["rows"]}
        anchor_cells = [[label, f"{ms}", "—" if p50.get(label) is None else f"{p50[label]:.2f}"]
                        for label, ms in minilm["anchors_ms"].items()]
        parts.append("**MiniLM seq 128 anchors** (the issue's, measured earlier on this machine) vs this run, p50 ms\n\n"
                     + markdown_table(["runtime", "anchor", "this run"], anchor_cells))
    if notes:
        parts.append("\n".join(notes))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="model cache shared with convert_litert.py (default: %(default)s)")
    parser.add_argument("--models", nargs="+", choices=ALL_MODELS, default=list(ALL_MODELS))
    parser.add_argument("--quick", action="store_true",
                        help="digits CNN only, 20 iterations, one cold start each (a smoke test)")
    parser.add_argument("--iterations", type=int,
                        help=f"timed iterations for every model (default per model: {ITERATIONS})")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="untimed iterations first (default: %(default)s)")
    parser.add_argument("--cold-repeats", type=int, default=COLD_REPEATS,
                        help="fresh processes per runtime for cold start and RSS (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "compare.json", help="default: %(default)s")
    parser.add_argument("--no-readme", action="store_true", help=f"leave the tables in {README.name} as they are")
    args = parser.parse_args(argv)
    models = ["digits_cnn"] if args.quick else args.models
    iterations = {name: args.iterations or (20 if args.quick else ITERATIONS[name]) for name in models}
    repeats = 1 if args.quick else args.cold_repeats
    results = {"machine": machine(), "versions": versions(),
               "settings": {"threads": THREADS, "warmup": args.warmup, "iterations": iterations,
                            "cold_start_repeats": repeats, "ort_quantize_dynamic": ORT_DYNAMIC_OPTIONS,
                            "ort_session": {"intra_op_num_threads": THREADS, "inter_op_num_threads": 1,
                                            "session.intra_op.allow_spinning": "0"},
                            "litert_quantizer_recipe": LITERT_RECIPE, "litert_interpreter": f"num_threads={THREADS}",
                            "edgepack": f"edgepack.load(path, num_threads={THREADS})",
                            "edgepack_standalone": f"edgepack-bench ARTIFACT --runs 1 --warmup 0 --threads {THREADS} "
                                                   "--inputs RAW (cold start and peak RSS only)",
                            "light_models_without_litert": list(LIGHT_MODELS), "quick": args.quick},
               "models": {}}
    bench = standalone_bench(build=not args.quick)
    if bench[0] is None:
        log(f"edgepack standalone (C++) cold start: absent: {bench[1]}")
    with tempfile.TemporaryDirectory(prefix="edgepack-compare-") as workdir:
        for name in models:
            results["models"][name] = measure(name, args.cache_dir, Path(workdir), iterations[name], args.warmup,
                                              repeats, bench)
    results["machine"]["load_average_at_end"] = machine()["load_average_1_5_15"]
    write_json(args.output, results)
    text = tables(results)
    print(text)
    if not args.no_readme:
        m = results["machine"]
        update_readme("compare", f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores, {THREADS} threads per "
                                 f"runtime; load average at start / end: {m['load_average_1_5_15'][0]} / "
                                 f"{m['load_average_at_end'][0]}).\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
