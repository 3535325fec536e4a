"""The cost model against the clock: predicted vs measured latency on profile `host` for the benchmark
models, each in fp32 and int8, per model and per op kind.

For each model x precision: compile for profile `host` (static int8 with calibration for the CNNs, as
compare.py does; int8-dynamic with its smoothing calibration for MiniLM), load with two threads, time `Session.run` (p50 of the runs)
and, in separate runs, every op (`Session.run_profiled`: the median of each op's time over the runs),
in several rounds; the machine is shared, so the least disturbed round's figures are kept (see measure()).
The prediction is the cost model (`edgepack.planner.cost.estimate`) on the graph read back from the
artifact, priced on the host profile as loaded now, so a changed cost model is seen without re-measuring
(`--reuse`). Ratios are predicted / measured: above 1 the model is conservative.

    python benchmarks/latency_model.py                    # everything (~5 min) -> results/latency_model.json
    python benchmarks/latency_model.py --models digits_cnn mobilenet --runs 50
    python benchmarks/latency_model.py --reuse            # re-predict the stored measurements, no timing

Artifacts are kept in --workdir (default ~/.cache/edgepack/latency-model) for --reuse.

On a shared machine other processes inflate two-thread wall times several-fold (the pool splits each op
statically, so a descheduled worker stalls it). The table therefore also shows the sum of the per-op
medians (each op's least disturbed round) and compare.py's p50 from results/compare.json (another
measurement, with its load average); `--merge` keeps the quieter of repeated runs, `--wait-quiet` waits
for idle CPUs before each round. The cost model predicts an unloaded machine.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from common import ALL_MODELS, DEFAULT_CACHE, RESULTS_DIR, THREADS, bench_feeds, calibration_feeds, ensure_onnx, \
    log, machine, markdown_table, onnx_inputs, versions, write_json

CALIBRATION = {"digits_cnn": 64, "mobilenet": 64, "resnet50": 8, "squeezenet": 8, "minilm": 100}
RUNS = {"digits_cnn": 300, "mobilenet": 300, "squeezenet": 30, "resnet50": 10, "minilm": 30}   # per round and pass
ROUNDS = 5
MIN_SECONDS = 2.0            # each pass (timing or per-op) lasts at least this long over all rounds
WARMUP = 5
FACTOR = 2.0                 # the target: predicted within a factor of 2 of measured
DEFAULT_WORKDIR = Path.home() / ".cache" / "edgepack" / "latency-model"


def precisions_of(name: str) -> list[str]:
    return ["fp32", "int8-dynamic" if name == "minilm" else "int8"]


def compile_variant(name: str, precision: str, cache: Path, workdir: Path) -> Path:
    import edgepack
    onnx_path = ensure_onnx(name, cache)
    inputs = onnx_inputs(onnx_path)
    calibration = calibration_feeds(name, inputs, CALIBRATION[name]) if precision != "fp32" else None
    output = workdir / f"{name}.{precision}.epk"
    if output.exists():
        output.unlink()
    edgepack.compile(onnx_path, profile="host", output=output, precision=precision,
                     calibration_data=calibration, progress=False)
    return output


def busy_fraction(seconds: float = 0.5) -> float:
    """The fraction of all CPUs busy over `seconds` (from /proc/stat), while this process sleeps."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_quiet(threshold: float, timeout: float) -> float:
    """Wait (up to `timeout` seconds) until other processes keep less than `threshold` of the CPUs busy;
    returns the busy fraction last seen."""
    deadline = time.perf_counter() + timeout
    busy = busy_fraction()
    while busy > threshold and time.perf_counter() < deadline:
        busy = busy_fraction()
    return busy


def measure(path: Path, feeds: dict[str, np.ndarray], runs: int, warmup: int, rounds: int,
            quiet: tuple[float, float] | None = None) -> dict:
    """`rounds` rounds, each: p50 of `runs` Session.run calls, then each op's median over `runs`
    Session.run_profiled calls. The machine is shared, and other processes' bursts only ever slow a
    round down, so the figures kept are those of the least disturbed round: the least round p50 and, per
    op, the least round median (the median over all runs is kept beside them)."""
    import edgepack
    session = edgepack.load(path, num_threads=THREADS)
    for _ in range(warmup):
        session.run(feeds)
    round_p50: list[float] = []
    round_busy: list[float] = []
    everything: list[float] = []
    op_rounds: list[list[float]] = [[] for _ in session.ops]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            if quiet is not None:
                round_busy.append(round(wait_quiet(*quiet), 3))
                for _ in range(2):
                    session.run(feeds)   # the pool's threads awake again after the wait
            latencies: list[float] = []
            started = time.perf_counter()
            while len(latencies) < runs or time.perf_counter() - started < MIN_SECONDS / rounds:
                t0 = time.perf_counter()
                session.run(feeds)
                latencies.append(time.perf_counter() - t0)
            round_p50.append(statistics.median(latencies))
            everything += latencies
            per_op: list[list[float]] = [[] for _ in session.ops]
            started = time.perf_counter()
            while len(per_op[0]) < runs or time.perf_counter() - started < MIN_SECONDS / rounds:
                _, seconds = session.run_profiled(feeds)
                for i, s in enumerate(seconds):
                    per_op[i].append(s)
            for i, samples in enumerate(per_op):
                op_rounds[i].append(statistics.median(samples))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"p50_s": min(round_p50), "round_p50_s": round_p50, "round_busy_before": round_busy, "p50_all_runs_s": statistics.median(everything),
            "p95_s": float(np.percentile(everything, 95)), "runs": len(everything), "threads": session.num_threads,
            "ops": [{"name": n, "op": op, "median_s": min(t), "rounds": len(t)}
                    for (n, op), t in zip(session.ops, op_rounds)]}


def merge(old: dict, new: dict) -> dict:
    """The less disturbed of two measurements of the same artifact: the lower p50, and per op the lower
    median (both measure the same ops in the same order when the artifact is unchanged)."""
    if [o["name"] for o in old["ops"]] != [o["name"] for o in new["ops"]]:
        return new
    best = dict(new if new["p50_s"] <= old["p50_s"] else old)
    best["round_p50_s"] = old["round_p50_s"] + new["round_p50_s"]
    best["ops"] = [{**n, "median_s": min(o["median_s"], n["median_s"]), "rounds": o["rounds"] + n["rounds"]}
                   for o, n in zip(old["ops"], new["ops"])]
    return best


def predict(path: Path) -> dict:
    """The cost model on the artifact's graph, host profile, per node (with its op kind)."""
    from edgepack.backends.epk import read_epk
    from edgepack.planner.cost import estimate, op_kind
    from edgepack.profiler.predict import graph_from_artifact
    from edgepack.profiles import host_profile
    graph = graph_from_artifact(read_epk(path))
    report = estimate(graph, host_profile())
    nodes = {n.name: n for n in graph.nodes}
    return {"latency_s": report.latency_s,
            "nodes": {row.name: {"kind": op_kind(graph, nodes[row.name]), "precision": row.precision,
                                 "latency_s": row.latency_s, "bound": row.bound}
                      for row in report.nodes}}


def combine(measured: dict, predicted: dict) -> dict:
    """Totals and per op kind: predicted, measured (sum of per-op medians), ratio."""
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: {"count": 0, "measured_s": 0.0, "predicted_s": 0.0})
    for op in measured["ops"]:
        node = predicted["nodes"].get(op["name"])
        kind = node["kind"] if node else op["op"]
        entry = kinds[kind]
        entry["count"] += 1
        entry["measured_s"] += op["median_s"]
        entry["predicted_s"] += node["latency_s"] if node else 0.0
    for entry in kinds.values():
        entry["ratio"] = entry["predicted_s"] / entry["measured_s"] if entry["measured_s"] else None
    ops_sum = sum(op["median_s"] for op in measured["ops"])
    return {"measured_p50_s": measured["p50_s"], "measured_p95_s": measured["p95_s"],
            "measured_ops_sum_s": ops_sum, "predicted_s": predicted["latency_s"],
            "ratio": predicted["latency_s"] / measured["p50_s"],
            "within_factor": 1 / FACTOR <= predicted["latency_s"] / measured["p50_s"] <= FACTOR,
            "by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1]["measured_s"]))}


def compare_reference(path: Path) -> dict:
    """edgepack's p50 per model x precision from compare.py's results, when there are any: a second
    measurement of the same runtime (taken at another time, under another load) to read beside this one."""
    import json
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    found = {}
    for name, model in data.get("models", {}).items():
        for row in model.get("rows", []):
            if row.get("runtime") == "edgepack" and row.get("available"):
                precision = "int8-dynamic" if name == "minilm" and row["precision"] == "int8" else row["precision"]
                found[f"{name} {precision}"] = row["p50_ms"] / 1e3
    load = data.get("machine", {}).get("load_average_1_5_15", [None])[0]
    return {"file": str(path), "date": data.get("machine", {}).get("date"), "load_average_1min": load,
            "p50_s": found}


def tables(results: dict) -> str:
    reference = results.get("compare_reference", {}).get("p50_s", {})
    rows = []
    for key, r in results["variants"].items():
        ref = reference.get(key)
        rows.append([key, f"{r['measured_p50_s'] * 1e3:.3f}", f"{r['measured_ops_sum_s'] * 1e3:.3f}",
                     f"{r['predicted_s'] * 1e3:.3f}", f"{r['ratio']:.2f}", "yes" if r["within_factor"] else "NO",
                     "-" if ref is None else f"{ref * 1e3:.3f}", "-" if ref is None else f"{r['predicted_s'] / ref:.2f}"])
    busy = [b for r in results["variants"].values() for b in r["measured"].get("round_busy_before", [])]
    ref_note = ""
    if reference:
        c = results["compare_reference"]
        ref_note = (f"; compare.py p50: edgepack's p50 in {Path(c['file']).name} ({c['date']}, load average "
                    f"{c['load_average_1min']} at its start)")
    parts = ["**Total latency** (ratio = predicted / measured p50; measured p50: the least disturbed round's"
             + (f", other processes kept {min(busy):.0%}-{max(busy):.0%} of the CPUs busy before the rounds"
                if busy else "") + ref_note + ")\n\n" + markdown_table(
        ["model x precision", "measured p50 ms", "sum of op medians ms", "predicted ms", "ratio",
         f"within {FACTOR:g}x", "compare.py p50 ms", "predicted / compare.py"], rows)]
    kind_rows = []
    for key, r in results["variants"].items():
        for kind, k in r["by_kind"].items():
            if k["measured_s"] < 0.02 * r["measured_ops_sum_s"] and k["predicted_s"] < 0.02 * r["predicted_s"]:
                continue   # under 2% of the model either way
            kind_rows.append([key, kind, k["count"], f"{k['measured_s'] * 1e3:.3f}", f"{k['predicted_s'] * 1e3:.3f}",
                              f"{k['ratio']:.2f}" if k["ratio"] else "-"])
    parts.append("**Per op kind** (kinds with at least 2% of the model's measured or predicted time)\n\n"
                 + markdown_table(["model x precision", "op kind", "ops", "measured ms", "predicted ms", "ratio"],
                                  kind_rows))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=ALL_MODELS, default=list(ALL_MODELS))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="model cache shared with compare.py (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="where the compiled artifacts are kept (default: %(default)s)")
    parser.add_argument("--runs", type=int, help=f"timed runs per pass (default per model: {RUNS}; each pass also "
                                                 f"lasts at least {MIN_SECONDS:g} s)")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help="rounds per variant; the least disturbed round is kept (default: %(default)s)")
    parser.add_argument("--wait-quiet", type=float, nargs=2, metavar=("BUSY", "SECONDS"),
                        help="before each round, wait up to SECONDS until the other processes keep less than BUSY "
                             "(a fraction) of the CPUs busy, e.g. 0.15 120")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="untimed runs first (default: %(default)s)")
    parser.add_argument("--keep-artifacts", action="store_true",
                        help="time the artifacts already in --workdir instead of compiling them again")
    parser.add_argument("--merge", action="store_true",
                        help="keep the stored measurement of a variant where it is less disturbed (lower p50; per "
                             "op, the lower median) than this run's: repeated runs converge on the quiet figures")
    parser.add_argument("--reuse", action="store_true",
                        help="do not compile or time: re-predict the measurements stored in --output with the "
                             "artifacts in --workdir (to try a changed cost model)")
    parser.add_argument("--compare", type=Path, default=RESULTS_DIR / "compare.json",
                        help="compare.py's results, whose edgepack p50s are shown beside this run's (default: "
                             "%(default)s)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latency_model.json",
                        help="default: %(default)s")
    args = parser.parse_args(argv)

    from edgepack.profiles import host_profile
    profile = host_profile()
    import json
    stored = json.loads(args.output.read_text()) if (args.reuse or args.merge) and args.output.exists() else None
    previous = stored if args.reuse else None
    from edgepack.planner.cost import KERNEL_EFFICIENCY
    results = previous or {"machine": machine(), "versions": versions(),
                           "settings": {"threads": THREADS, "warmup": args.warmup, "rounds": args.rounds,
                                        "min_seconds": MIN_SECONDS, "profile": "host", "factor": FACTOR},
                           "variants": dict(stored["variants"]) if args.merge and stored else {}}
    c = profile.compute
    results["profile"] = {"name": profile.name, "unit": c.unit, "cores": c.cores, "peak_ops": c.peak_ops,
                          "ops_efficiency": c.ops_efficiency, "bandwidth_bytes_per_s": c.sustained_bandwidth,
                          "cache_bytes": c.cache_bytes, "cache_bandwidth_bytes_per_s": c.cache_bandwidth_bytes_per_s,
                          "op_overhead_s": c.op_overhead_s, "run_overhead_s": c.run_overhead_s,
                          "kernel_efficiency": {f"{family} {arithmetic}": value
                                                for (family, arithmetic), value in KERNEL_EFFICIENCY.items()}}
    args.workdir.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        for precision in precisions_of(name):
            key = f"{name} {precision}"
            path = args.workdir / f"{name}.{precision}.epk"
            if args.reuse:
                if key not in results["variants"]:
                    continue
                measured = results["variants"][key]["measured"]
            else:
                if not (args.keep_artifacts and path.exists()):
                    log(f"{key}: compiling")
                    path = compile_variant(name, precision, args.cache_dir, args.workdir)
                feeds = bench_feeds(name, onnx_inputs(ensure_onnx(name, args.cache_dir)))
                log(f"{key}: timing")
                measured = measure(path, feeds, args.runs or RUNS[name], args.warmup, args.rounds,
                                   tuple(args.wait_quiet) if args.wait_quiet else None)
                if args.merge and stored and key in stored["variants"]:
                    measured = merge(stored["variants"][key]["measured"], measured)
            predicted = predict(path)
            results["variants"][key] = {**combine(measured, predicted), "measured": measured,
                                        "predicted": predicted}
            r = results["variants"][key]
            log(f"{key}: measured p50 {r['measured_p50_s'] * 1e3:.3f} ms, predicted {r['predicted_s'] * 1e3:.3f} ms "
                f"(ratio {r['ratio']:.2f})")
    if not args.reuse:
        results["machine"]["load_average_at_end"] = machine()["load_average_1_5_15"]
    results["compare_reference"] = compare_reference(args.compare)
    write_json(args.output, results)
    print(tables(results))
    return 0 if all(r["within_factor"] for r in results["variants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
