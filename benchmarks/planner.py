"""The budget planner on all-MiniLM-L6-v2 (seq 128): compile under a RAM budget with precision="auto",
then measure the artifact in the native runtime on held-out sentences.

For each profile (default: tests/profiles/edge-linux-20mb.yaml, 20 MB of RAM; raspberry-pi-5, roomy RAM
with a 50 ms p50 target; and `host`):
the plan (precision counts), predicted RAM against the budget, the arena the runtime allocates against
the planned one, and mean / min cosine of the embeddings to fp32 (ONNX Runtime) on --eval held-out
sentences. Calibration (--calibration sentences) feeds static int8 and smoothing; the planner measures
its metric on --plan-eval further sentences. All three sets are disjoint.

    python benchmarks/planner.py                     # ~12 min on 2 cores (the 20 MB plan takes most)
    python benchmarks/planner.py --profiles raspberry-pi-5 --eval 100
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DEFAULT_CACHE, RESULTS_DIR, THREADS, EdgepackRunner, OrtRunner, ensure_onnx, log, machine, \
    markdown_table, versions, write_json

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILES = (str(ROOT / "tests" / "profiles" / "edge-linux-20mb.yaml"), "raspberry-pi-5", "host")


def cosines(reference: np.ndarray, got: np.ndarray) -> np.ndarray:
    r, g = reference.astype(np.float64), got.astype(np.float64)
    return (r * g).sum(1) / np.linalg.norm(r, axis=1) / np.linalg.norm(g, axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=list(DEFAULT_PROFILES), help="profile names or YAML paths")
    parser.add_argument("--eval", type=int, default=300, help="held-out sentences measured (default: %(default)s)")
    parser.add_argument("--calibration", type=int, default=32, help="calibration sentences (default: %(default)s)")
    parser.add_argument("--plan-eval", type=int, default=16,
                        help="sentences the planner measures its metric on (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="default: %(default)s")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "planner.json", help="default: %(default)s")
    args = parser.parse_args(argv)

    import edgepack
    from edgepack.models import minilm
    source = ensure_onnx("minilm", args.cache_dir)
    texts = minilm.sentences(args.eval + args.calibration + args.plan_eval)
    held_out = minilm.tokenize(texts[:args.eval])
    calibration = minilm.tokenize(texts[args.eval:args.eval + args.calibration])
    plan_eval = minilm.tokenize(texts[args.eval + args.calibration:])
    ort = OrtRunner(source)
    reference = np.concatenate([ort.run(f)[0] for f in held_out])

    results = {"machine": machine(), "versions": versions(), "threads": THREADS,
               "sentences": {"held_out": args.eval, "calibration": args.calibration, "planner": args.plan_eval},
               "profiles": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgepack-planner-") as workdir:
        for profile in args.profiles:
            started = time.perf_counter()
            compiled = edgepack.compile(source, profile=profile, output=Path(workdir) / "minilm.epk",
                                        calibration_data=calibration, evaluation_data=plan_eval, progress=False)
            seconds = time.perf_counter() - started
            runner = EdgepackRunner(compiled.path)
            got = np.concatenate([runner.run(f)[0] for f in held_out])
            cos = cosines(reference, got)
            counts: dict[str, int] = {}
            for decision in compiled.decisions:
                if decision.op in ("MatMul", "Gather"):
                    counts[f"{decision.op} {decision.used}"] = counts.get(f"{decision.op} {decision.used}", 0) + 1
            plan = compiled.plan
            entry = {"profile": compiled.manifest["profile"], "compile_seconds": round(seconds, 1),
                     "ram_budget_bytes": compiled.manifest["budgets"].get("ram_bytes"),
                     "predicted_ram_bytes": compiled.manifest["predicted"]["ram_bytes"],
                     "planned_arena_bytes": compiled.arena_bytes, "runtime_arena_bytes": runner.session.arena_bytes, "artifact_bytes": compiled.file_bytes,
                     "precisions": counts, "planner_metric": plan.metric,
                     "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}
            results["profiles"][profile] = entry
            log(f"{entry['profile']}: {entry}")
            rows.append([entry["profile"], f"{entry['ram_budget_bytes'] / 1e6:.2f} MB" if entry["ram_budget_bytes"] else "—",
                         f"{entry['predicted_ram_bytes'] / 1e6:.2f} MB", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
                         f"{entry['mean_cosine']:.5f}", f"{entry['min_cosine']:.5f}"])
    write_json(args.output, results)
    print(markdown_table(["profile", "RAM budget", "predicted RAM", "precisions", "mean cosine", "min cosine"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
