"""The `edgepack` command line: compile | run | inspect | profile | verify | devices | demo."""
from __future__ import annotations

import argparse
import os
import json
import sys
import time
from pathlib import Path

import numpy as np

from .errors import EdgepackError


def _parse_shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise ValueError(f"--input-shape '{item}' must look like NAME=1x3x224x224")
        try:
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise ValueError(f"--input-shape '{item}': dimensions must be integers separated by 'x'") from None
    return shapes


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _parse_budgets(items: list[str] | None) -> dict[str, str | float]:
    budgets: dict[str, str | float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"--budget '{item}' must look like KEY=VALUE, e.g. ram='20 MB' or accuracy=0.995")
        budgets[key.strip()] = float(value) if key.strip() == "accuracy" else value.strip()
    return budgets


def _compile_outputs(args: argparse.Namespace, profile: str) -> tuple[Path, str | None]:
    """(output, format) for compile: --format or -o's suffix pick one format; an explicit --profile
    without either emits every format the profile's target runs, as MODEL.PROFILE.* beside the model."""
    from .api import FORMATS
    model = Path(args.model)
    if args.output:
        return Path(args.output), args.format
    tag = Path(profile).stem if profile.endswith((".yaml", ".yml")) or "/" in profile else profile
    if args.format is None and args.profile is not None:
        return model.with_name(f"{model.stem}.{tag}"), "all"
    fmt = args.format or "epk"
    output = model.with_suffix(FORMATS[fmt])
    if output == model:         # never the input model itself
        output = model.with_name(f"{model.stem}.{tag}{FORMATS[fmt]}")
    return output, fmt


def cmd_compile(args: argparse.Namespace) -> int:
    from .api import compile as compile_model
    from .planner.report import format_table, write_html, write_json
    profile = args.profile or "host"
    output, fmt = _compile_outputs(args, profile)
    compiled = compile_model(args.model, profile=profile, input_shapes=_parse_shapes(args.input_shape),
                             output=output, precision=args.precision, recipe=args.recipe,
                             calibration_data=args.calibration, evaluation_data=args.evaluation,
                             budgets=_parse_budgets(args.budget), allow_over_budget=args.allow_over_budget,
                             format=fmt)
    written = ", ".join(str(p) for p in compiled.artifacts.values())
    print(f"compiled {args.model} -> {written} ({args.precision if not args.recipe else args.recipe})")
    if len(compiled.artifacts) > 1:
        print(f"  manifest: {compiled.path.with_suffix('.manifest.json')}")
    used: dict[str, int] = {}
    for decision in compiled.decisions:
        used[decision.used] = used.get(decision.used, 0) + 1
    print("  precisions: " + ", ".join(f"{k} x{v}" for k, v in sorted(used.items())))
    for decision in compiled.decisions:
        if decision.note.startswith(("fallback", "kept")):
            print(f"  note: {decision.node} ({decision.op}): {decision.note}")
    print(format_table(compiled.plan, model=Path(args.model).name))
    if args.json:
        write_json(compiled.plan, args.json, model=Path(args.model).name)
        print(f"  compile report: {args.json}")
    if args.html:
        write_html(compiled.plan, args.html, model=Path(args.model).name)
        print(f"  compile report: {args.html}")
    if args.report:
        from .quant.sensitivity import analyze_graph
        from .quant.calibrate import load_calibration_data
        from .api import _as_recipe
        recipe = _as_recipe("int8" if args.precision == "auto" else args.precision, args.recipe)
        samples = load_calibration_data(args.calibration, compiled.float_graph)
        report = analyze_graph(compiled.float_graph, recipe, samples, samples[:8])
        print(report.table())
        report.write_html(Path(args.report))
        Path(args.report).with_suffix(".json").write_text(report.to_json())
        print(f"  sensitivity report: {args.report} and {Path(args.report).with_suffix('.json')}")
    print(f"  ops {len(compiled.graph.nodes)}  weights {_human(compiled.manifest['weights_bytes'])}  "
          f"arena {_human(compiled.arena_bytes)} (unplanned {_human(compiled.memory.naive_bytes)})  "
          f"file {_human(compiled.file_bytes)}")
    return 0


def _load_npz(path: str) -> dict[str, np.ndarray]:
    if not Path(path).exists():
        raise FileNotFoundError(f"inputs file '{path}' does not exist")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def cmd_run(args: argparse.Namespace) -> int:
    from .runtime import load
    session = load(args.artifact, num_threads=args.threads)
    feeds = _load_npz(args.inputs)
    started = time.perf_counter()
    outputs = session.run(feeds)
    elapsed = time.perf_counter() - started
    for name, array in outputs.items():
        flat = array.reshape(-1)
        preview = np.array2string(flat[:8], precision=5, separator=", ")
        print(f"{name}: shape {array.shape} {array.dtype} {preview}{' ...' if flat.size > 8 else ''}")
    print(f"ran in {elapsed * 1e3:.3f} ms")
    if args.output:
        out = Path(args.output)
        if out.exists() and not args.force:
            raise FileExistsError(f"'{out}' exists; pass --force to overwrite it")
        np.savez(out, **outputs)
        print(f"wrote {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .backends.epk import read_epk
    artifact = read_epk(args.artifact)
    if args.json:
        print(json.dumps({"manifest": artifact.manifest, "arena_bytes": artifact.arena_bytes,
                          "weights_bytes": artifact.weights_bytes, "file_bytes": artifact.file_bytes,
                          "ops": [{"name": o.name, "op": o.op, "attrs": o.attrs} for o in artifact.ops],
                          "tensors": [{"name": t.name, "dtype": t.dtype.name.lower(), "shape": list(t.shape),
                                       "storage": "weight" if t.storage else "arena", "offset": t.offset,
                                       "nbytes": t.nbytes} for t in artifact.tensors]}, indent=1, default=str))
        return 0
    t = artifact.tensors
    print(f"{artifact.path}: edgepack format v{artifact.version}, {_human(artifact.file_bytes)}")
    print(f"  inputs:  " + ", ".join(f"{t[i].name} {list(t[i].shape)} {t[i].dtype.name.lower()}" for i in artifact.inputs))
    print(f"  outputs: " + ", ".join(f"{t[i].name} {list(t[i].shape)} {t[i].dtype.name.lower()}" for i in artifact.outputs))
    print(f"  arena {_human(artifact.arena_bytes)}  weights {_human(artifact.weights_bytes)}  "
          f"{len(artifact.ops)} ops  {len(artifact.tensors)} tensors")
    print("  manifest:")
    for key, value in artifact.manifest.items():
        print(f"    {key}: {value}")
    print("  ops:")
    for i, op in enumerate(artifact.ops):
        ins = ", ".join(t[x].name if x >= 0 else "-" for x in op.inputs)
        outs = ", ".join(t[x].name for x in op.outputs)
        shape = list(t[op.outputs[0]].shape)
        print(f"    {i:4d} {op.op:<18} {op.name}  ({ins}) -> {outs} {shape}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify
    report = verify(args.artifacts, args.inputs, reference=args.reference, per_op=args.per_op,
                    min_cosine=args.min_cosine, threads=args.threads)
    for line in report.lines():
        print(line)
    return 0 if report.passed else 1


def cmd_devices(args: argparse.Namespace) -> int:
    from .profiles import devices_table
    print(devices_table())
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    """Measure an artifact on a device and check it against a profile: exit 1 when a budget fails."""
    from .profiler import make_runner, parse_cpus, profile_artifact
    from .profiles import load_profile
    profile = load_profile(args.profile)
    runner = make_runner(args.device, cpus=parse_cpus(args.pin) if args.pin else None, cooldown_s=args.cooldown,
                         identity_file=args.ssh_identity, known_hosts=args.ssh_known_hosts,
                         bench_target=args.bench_target)
    report = profile_artifact(args.artifact, runner, profile, runs=args.runs, warmup=args.warmup,
                              threads=args.threads, per_op=args.per_op, seed=args.seed, min_seconds=args.min_seconds,
                              budgets=_parse_budgets(args.budget), compare_onnx=args.compare_onnx,
                              compare_tflite=args.compare_tflite)
    print(report.table())
    if args.json:
        print(f"  profile report: {report.write_json(args.json)}")
    if args.html:
        print(f"  profile report: {report.write_html(args.html)}")
    return 0 if report.verdict == "PASS" else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(Path(args.workdir) if args.workdir else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgepack", description="Compile, run and inspect models for edge devices.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="compile an ONNX model into an .epk, .tflite, .onnx or .mlpackage artifact")
    p.add_argument("model", help="path of an .onnx model")
    p.add_argument("-o", "--output", help="artifact path (default: MODEL with the format's suffix; with several "
                                           "formats, the common stem)")
    p.add_argument("--profile", help="device profile (default: host); given without --format and -o, every "
                                     "format its target runs is written (MODEL.PROFILE.epk/.tflite/.onnx/"
                                     ".mlpackage and MODEL.PROFILE.manifest.json)")
    p.add_argument("--format", choices=["epk", "onnx", "tflite", "coreml"],
                   help="artifact format: epk (native runtime), onnx, tflite (LiteRT), coreml (.mlpackage); "
                        "default: from -o's suffix, else epk")
    p.add_argument("--input-shape", action="append", metavar="NAME=DIMS",
                   help="static shape of a dynamic input, e.g. input_ids=1x128 (repeatable)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8", "int8-dynamic", "int4"],
                   help="auto (default): per-node precisions that meet the profile's budgets with the least "
                        "accuracy loss (docs/planner.md); otherwise the precision of every node")
    p.add_argument("--recipe", help="YAML recipe with per-node overrides (see docs/quantization.md)")
    p.add_argument("--calibration", metavar="DATA.npz",
                   help="calibration inputs (one array per input, stacked on a first axis): needed for static "
                        "int8; int8-dynamic uses them to smooth its MatMul inputs")
    p.add_argument("--evaluation", metavar="DATA.npz",
                   help="inputs to measure sensitivity and accuracy on (default: the calibration inputs)")
    p.add_argument("--budget", action="append", metavar="KEY=VALUE",
                   help="override a budget of the profile: ram, storage, latency, p95, energy (with units, "
                        "e.g. ram='20 MB', energy='30 mJ') or accuracy (least mean cosine); repeatable")
    p.add_argument("--allow-over-budget", action="store_true",
                   help="write the artifact even when it misses a budget (flagged in its manifest)")
    p.add_argument("--json", metavar="REPORT.json", help="write the compile report as JSON")
    p.add_argument("--html", metavar="REPORT.html", help="write the compile report as a self-contained HTML page")
    p.add_argument("--report", metavar="REPORT.html",
                   help="also write a per-node sensitivity report (HTML, plus JSON beside it)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="run an artifact on inputs from an .npz file")
    p.add_argument("artifact")
    p.add_argument("--inputs", required=True, help=".npz with one array per model input")
    p.add_argument("-o", "--output", help="write the outputs to this .npz")
    p.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    p.add_argument("--threads", type=int, default=None, help="threads (default: one per core)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("inspect", help="show an artifact's inputs, ops, tensors, arena and manifest")
    p.add_argument("artifact")
    p.add_argument("--json", action="store_true", help="print JSON instead of a listing")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("profile", help="measure an artifact on a device and check it against a profile's budgets",
                       description="Measure latency, memory and energy of an artifact on a device, beside the cost "
                                   "model's predictions, and check them against the profile's budgets (exit 1 on a "
                                   "FAIL). See docs/profiler.md.")
    p.add_argument("artifact", help="the .epk artifact")
    p.add_argument("--device", default="local",
                   help="local (in this process, default) | bench (edgepack-bench subprocess) | ssh://user@host[:port] "
                        "| qemu-aarch64 (the ARM build emulated: correctness, emulated timings)")
    p.add_argument("--profile", default="host", help="device profile whose budgets to check (default: host)")
    p.add_argument("--runs", type=int, default=50, help="measured runs (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured runs first (default 5)")
    p.add_argument("--min-seconds", type=float, default=0.0,
                   help="keep measuring until the measured runs add up to this many seconds")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: one per core)")
    p.add_argument("--per-op", action="store_true", help="also time every op")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--pin", metavar="CPUS", help="pin to these CPUs, e.g. 0 or 0-3 (local and bench devices)")
    p.add_argument("--cooldown", type=float, default=0.0, metavar="SECONDS",
                   help="pause between measured runs (local device)")
    p.add_argument("--budget", action="append", metavar="KEY=VALUE",
                   help="override a budget: ram, latency, p95, energy (with units, e.g. latency='5 ms', "
                        "energy='30 mJ'); repeatable")
    p.add_argument("--ssh-identity", metavar="KEY", help="private key for ssh:// devices (ssh -i)")
    p.add_argument("--ssh-known-hosts", metavar="FILE", help="known-hosts file to check an ssh:// device's host key")
    p.add_argument("--bench-target", metavar="TARGET",
                   help="edgepack-bench build to copy to an ssh:// device (default: by its uname -m; x86_64: host, "
                        "aarch64: linux-aarch64)")
    p.add_argument("--json", metavar="REPORT.json", help="write the report as JSON")
    p.add_argument("--html", metavar="REPORT.html", help="write the report as a self-contained HTML page")
    p.add_argument("--compare-onnx", metavar="MODEL.onnx", help="also time this model in ONNX Runtime on this host")
    p.add_argument("--compare-tflite", metavar="MODEL.tflite", help="also time this model in LiteRT on this host")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("verify", help="run artifacts in every runtime available here and compare them "
                                      "with the fp32 reference and the native result")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help=".epk, .onnx, .tflite or .mlpackage files, or a compile's "
                                                                     "MODEL.manifest.json for all of its files")
    p.add_argument("--inputs", required=True, metavar="DATA.npz",
                   help="one array per model input, or samples stacked on a leading axis")
    p.add_argument("--reference", metavar="MODEL.onnx", help="the fp32 model to measure errors against")
    p.add_argument("--per-op", action="store_true",
                   help="also name the first node where each runtime's intermediate values diverge from the "
                        ".epk's graph in the reference executor")
    p.add_argument("--min-cosine", type=float, default=None,
                   help="least mean cosine to the fp32 reference (default: the profile's accuracy.min_cosine)")
    p.add_argument("--threads", type=int, default=2, help="threads per runtime (default: 2)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("devices", help="list the device profiles")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("demo", help="compile the bundled example, run it, check it against the reference")
    p.add_argument("--workdir", help="where to write the artifact (default: a temporary directory)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (EdgepackError, ValueError, FileNotFoundError, FileExistsError, TypeError) as err:
        print(f"edgepack {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (e.g. `edgepack inspect m.epk | head`): not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
