"""The profile report: a measurement checked against the profile's budgets, beside the cost model's
predictions and other runtimes; as data (JSON, docs/profiler.md), a terminal table, and HTML (html.py).

    report = profile_artifact("model.epk", make_runner("bench"), load_profile("raspberry-pi-5"), runs=100)
    print(report.table()); report.write_json("profile.json"); report.verdict  # "PASS" | "FAIL"
"""
from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from .. import __version__
from ..backends.epk import read_epk
from ..planner.search import Budgets
from ..profiles import Profile
from .compare import Comparison, litert_interpreter, require_onnxruntime, time_onnx, time_tflite
from .energy import EnergyEstimate, energy_per_inference
from .predict import Prediction, predict
from .runners import Measurement, Runner
from .stats import LatencyStats, summarize

SCHEMA = "edgepack.profile/1"
PASS, FAIL, INFO, EMULATED = "PASS", "FAIL", "INFO", "EMULATED"
# How many ops the terminal table lists (the JSON and HTML have all of them).
TABLE_OPS = 10


@dataclass(frozen=True)
class Check:
    """One figure: measured, predicted and budget, and the verdict. INFO: no budget to check against;
    EMULATED: measured under an emulator, so not held against a device budget."""
    key: str                 # latency_p50 | latency_p95 | peak_memory | arena | energy | outputs
    name: str
    unit: str                # s | B | J | abs (absolute output difference)
    measured: float | None
    predicted: float | None
    budget: float | None
    status: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "unit": self.unit, "measured": self.measured,
                "predicted": self.predicted, "budget": self.budget, "status": self.status, "note": self.note}


def format_value(value: float | None, unit: str) -> str:
    """A figure for people: seconds in us / ms / s, bytes in binary units, joules in uJ / mJ / J."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if unit == "s":
        for scale, suffix in ((1e-6, "us"), (1e-3, "ms")):
            if value < scale * 1000:
                return f"{value / scale:.4g} {suffix}"
        return f"{value:.4g} s"
    if unit == "B":
        for power, suffix in ((0, "B"), (1, "KiB"), (2, "MiB"), (3, "GiB")):
            if value < 1024 ** (power + 1) or suffix == "GiB":
                return f"{value:.0f} B" if power == 0 else f"{value / 1024 ** power:.4g} {suffix}"
    if unit == "J":
        for scale, suffix in ((1e-6, "uJ"), (1e-3, "mJ")):
            if value < scale * 1000:
                return f"{value / scale:.4g} {suffix}"
        return f"{value:.4g} J"
    return f"{value:.3g}"


def _judge(measured: float | None, budget: float | None, emulated: bool) -> str:
    if emulated:
        return EMULATED
    if budget is None or measured is None:
        return INFO
    return PASS if measured <= budget else FAIL


_BUDGET_FIELDS = {"ram": "ram_bytes", "storage": "storage_bytes", "latency": "latency_s", "p95": "p95_s",
                  "energy": "energy_j", "accuracy": "accuracy"}


def resolve_budgets(profile: Profile, manifest: Mapping[str, Any],
                    overrides: Mapping[str, Any] | None = None) -> tuple[Budgets, str]:
    """The budgets to check: those the artifact was compiled to meet (its manifest) when it was compiled
    for this profile, else the profile's; then `overrides` (as compile's, e.g. {"latency": "5 ms"})."""
    recorded = manifest.get("budgets")
    if manifest.get("profile") == profile.name and isinstance(recorded, dict):
        budgets = Budgets(int(recorded["ram_bytes"]), int(recorded["storage_bytes"]), recorded["latency_p50_s"],
                          recorded["latency_p95_s"], recorded["energy_j"], recorded["accuracy"])
        source = f"profile {profile.name}, as compiled into the artifact"
    else:
        budgets = Budgets.from_profile(profile)
        source = f"profile {profile.name}"
    if overrides:
        overridden = Budgets.from_profile(profile, overrides)
        budgets = replace(budgets, **{_BUDGET_FIELDS[k]: getattr(overridden, _BUDGET_FIELDS[k]) for k in overrides})
        if budgets.p95_s < budgets.latency_s:
            raise ValueError(f"budgets: the p95 target ({budgets.p95_s} s) is below the p50 target "
                             f"({budgets.latency_s} s)")
        source += f", overridden: {', '.join(sorted(overrides))}"
    return budgets, source


@dataclass
class ProfileReport:
    artifact: Path
    file_bytes: int
    manifest_profile: str | None
    measurement: Measurement
    profile: Profile
    budgets: Budgets
    budgets_source: str
    stats: LatencyStats
    energy: EnergyEstimate
    prediction: Prediction | None
    checks: list[Check]
    settings: dict[str, Any]
    comparisons: list[Comparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: str = ""

    @property
    def verdict(self) -> str:
        return FAIL if any(check.status == FAIL for check in self.checks) else PASS

    @property
    def per_op_coverage(self) -> float | None:
        """Sum of the per-op means over the mean latency: how much of a run the ops account for."""
        m = self.measurement
        return m.per_op_sum_s / self.stats.mean_s if m.per_op and self.stats.mean_s > 0 else None

    def as_dict(self) -> dict[str, Any]:
        m = self.measurement
        per_op_predicted = self.prediction.per_op_s if self.prediction is not None else {}
        total = m.per_op_sum_s
        return {
            "schema": SCHEMA,
            "edgepack_version": __version__,
            "created": self.created,
            "verdict": self.verdict,
            "artifact": {"path": str(self.artifact.resolve()), "file_bytes": self.file_bytes,
                         "compiled_for": self.manifest_profile},
            "device": {"spec": m.device, "runner": m.runner, "arch": m.arch, "emulated": m.emulated,
                       "threads": m.threads, "pinned_cpus": m.pinned_cpus, "cooldown_s": m.cooldown_s, "cpu": m.cpu},
            "profile": {"name": self.profile.name, "description": self.profile.description,
                        "budgets_source": self.budgets_source, "budgets": self.budgets.as_dict()},
            "settings": self.settings,
            "latency": {**self.stats.as_dict(), "load_s": m.load_s, "first_run_s": m.first_run_s,
                        "warmup_runs": m.warmup, "samples_s": m.latencies_s},
            "memory": {"peak_bytes": m.peak_memory_bytes, "how": m.memory_how, "arena_bytes": m.arena_bytes,
                       "weights_bytes": m.weights_bytes},
            "energy": self.energy.as_dict(),
            "predicted": self.prediction.as_dict() if self.prediction is not None else None,
            "per_op": [{"name": op.name, "op": op.op, "mean_s": op.mean_s,
                        "share": op.mean_s / total if total > 0 else 0.0,
                        "predicted_s": per_op_predicted.get(op.name)} for op in m.per_op] if m.per_op else None,
            "per_op_sum_s": total if m.per_op else None,
            "per_op_coverage": self.per_op_coverage,
            "checks": [check.as_dict() for check in self.checks],
            "output_check": m.output_check.as_dict() if m.output_check is not None else None,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "warnings": list(self.warnings),
            "notes": list(m.notes),
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.as_dict(), indent=1, allow_nan=False) + "\n")
        return path

    def write_html(self, path: str | Path) -> Path:
        from .html import render_html
        path = Path(path)
        path.write_text(render_html(self))
        return path

    def table(self) -> str:
        """The terminal report: the checks as a PASS/FAIL table, then latency spread, energy source,
        slowest ops and other runtimes."""
        m, s = self.measurement, self.stats
        lines = [f"edgepack profile: {self.artifact.name} on {m.device} ({m.arch}, {m.threads} thread"
                 f"{'s' if m.threads != 1 else ''}{', emulated' if m.emulated else ''}), profile {self.profile.name}"]
        lines.append(f"  latency over {s.runs} runs: p50 {format_value(s.p50_s, 's')}  p90 {format_value(s.p90_s, 's')}"
                     f"  p95 {format_value(s.p95_s, 's')}  p99 {format_value(s.p99_s, 's')}  max "
                     f"{format_value(s.max_s, 's')}  mean {format_value(s.mean_s, 's')} +- "
                     f"{format_value(s.std_s, 's')} (cv {s.cv:.1%})")
        lines.append(f"  load {format_value(m.load_s, 's')}, first run {format_value(m.first_run_s, 's')}")
        lines.append("")
        rows = [("check", "measured", "predicted", "budget", "status")]
        for check in self.checks:
            measured = format_value(check.measured, check.unit)
            if check.key == "energy":
                measured += " (measured)" if self.energy.measured else " (estimated)"
            rows.append((check.name, measured, format_value(check.predicted, check.unit),
                         format_value(check.budget, check.unit), check.status))
        lines += _columns(rows)
        lines.append(f"verdict: {self.verdict}  (budgets: {self.budgets_source})")
        lines.append(f"energy: {self.energy.source} ({self.energy.how})")
        if self.prediction is not None:
            lines.append(f"predicted: {self.prediction.source}")
        if m.per_op:
            lines.append("")
            lines.append(f"slowest ops (of {len(m.per_op)}; sum {format_value(m.per_op_sum_s, 's')} = "
                         f"{self.per_op_coverage:.0%} of the mean run):")
            predicted = self.prediction.per_op_s if self.prediction is not None else {}
            op_rows = [("op", "type", "mean", "share", "predicted")]
            for op in sorted(m.per_op, key=lambda o: -o.mean_s)[:TABLE_OPS]:
                op_rows.append((op.name, op.op, format_value(op.mean_s, "s"),
                                f"{op.mean_s / m.per_op_sum_s:.1%}" if m.per_op_sum_s else "-",
                                format_value(predicted.get(op.name), "s")))
            lines += _columns(op_rows, indent=2)
        if self.comparisons:
            lines.append("")
            lines.append("runtimes on this host, same process:")
            runtime_rows = [("runtime", "p50", "p95", "cv")]
            if m.runner == "local":
                runtime_rows.append(("edgepack (native)", format_value(s.p50_s, "s"), format_value(s.p95_s, "s"),
                                     f"{s.cv:.1%}"))
            for c in self.comparisons:
                runtime_rows.append((c.runtime, format_value(c.stats.p50_s, "s"), format_value(c.stats.p95_s, "s"),
                                     f"{c.stats.cv:.1%}"))
            lines += _columns(runtime_rows, indent=2)
        if self.warnings:
            lines.append("")
            lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]], indent: int = 0) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = [" " * indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    out.insert(1, " " * indent + "  ".join("-" * w for w in widths))
    return out


def build_checks(m: Measurement, stats: LatencyStats, energy: EnergyEstimate, prediction: Prediction | None,
                 budgets: Budgets, profile: Profile) -> list[Check]:
    """The report's rows: latency p50 and p95, peak memory, arena, energy, and the outputs check (qemu)."""
    arena_room = budgets.ram_bytes - profile.memory.runtime_overhead_bytes - (
        m.weights_bytes if profile.memory.weights_in == "ram" else 0)
    checks = [
        Check("latency_p50", "latency p50", "s", stats.p50_s, prediction.latency_s if prediction else None,
              budgets.latency_s, _judge(stats.p50_s, budgets.latency_s, m.emulated)),
        Check("latency_p95", "latency p95", "s", stats.p95_s, None, budgets.p95_s,
              _judge(stats.p95_s, budgets.p95_s, m.emulated), "the cost model predicts a typical run, not a tail"),
        Check("peak_memory", "peak memory", "B", m.peak_memory_bytes, prediction.ram_bytes if prediction else None,
              budgets.ram_bytes, _judge(m.peak_memory_bytes, budgets.ram_bytes, m.emulated), m.memory_how),
        Check("arena", "arena", "B", m.arena_bytes, prediction.arena_bytes if prediction else None, arena_room,
              _judge(m.arena_bytes, arena_room, emulated=False),
              "planned activation memory; budget: the RAM budget less runtime overhead"
              + (" and weights" if profile.memory.weights_in == "ram" else "")),
        Check("energy", "energy / inference", "J", energy.per_inference_j, prediction.energy_j if prediction else None,
              budgets.energy_j, _judge(energy.per_inference_j, budgets.energy_j, m.emulated), energy.source),
    ]
    if m.output_check is not None:
        checks.append(Check("outputs", "outputs vs host", "abs", m.output_check.max_abs_diff, None, None,
                            PASS if m.output_check.passed else FAIL, m.output_check.detail))
    return checks


def profile_artifact(artifact: str | Path, runner: Runner, profile: Profile, runs: int = 50, warmup: int = 5,
                     threads: int | None = None, per_op: bool = False, seed: int = 0, min_seconds: float = 0.0,
                     budgets: Mapping[str, Any] | None = None, compare_onnx: str | Path | None = None,
                     compare_tflite: str | Path | None = None) -> ProfileReport:
    """Measure `artifact` with `runner` and check it against `profile` (budget overrides as compile's).
    compare_onnx / compare_tflite: the same model in ONNX Runtime / LiteRT, timed on this host."""
    path = Path(artifact)
    if not path.is_file():
        raise FileNotFoundError(f"artifact '{path}' does not exist")
    artifact_info = read_epk(path)
    limits, budgets_source = resolve_budgets(profile, artifact_info.manifest, budgets)
    # A missing comparison runtime or model fails before the measurement; the comparisons run after it,
    # so that their threads and freed memory do not disturb a measurement in this process.
    for model in (compare_onnx, compare_tflite):
        if model is not None and not Path(model).is_file():
            raise FileNotFoundError(f"comparison model '{model}' does not exist")
    if compare_onnx is not None:
        require_onnxruntime()
    if compare_tflite is not None:
        litert_interpreter()

    measurement = runner.run(path, runs=runs, warmup=warmup, threads=threads, per_op=per_op, seed=seed,
                             min_seconds=min_seconds)
    comparison_inputs = {artifact_info.tensors[i].name: artifact_info.tensors[i].shape for i in artifact_info.inputs}
    comparisons = []
    if compare_onnx is not None:
        comparisons.append(time_onnx(compare_onnx, runs, warmup, threads, seed, comparison_inputs))
    if compare_tflite is not None:
        comparisons.append(time_tflite(compare_tflite, runs, warmup, threads, seed, comparison_inputs))
    stats = summarize(measurement.latencies_s)
    warnings = list(stats.warnings)
    prediction: Prediction | None
    try:
        prediction = predict(artifact_info, profile)
        warnings += prediction.notes
    except ValueError as error:   # no manifest figures for this profile and an op the cost model cannot price
        prediction = None
        warnings.append(str(error))
    energy = energy_per_inference(measurement.energy, stats.mean_s, stats.p50_s, profile.energy.active_power_w,
                                  prediction.energy_j if prediction else None, measurement.emulated,
                                  measurement.energy_notes)
    warnings += energy.notes
    if measurement.emulated:
        warnings.append("timings are emulated: latency, memory and energy are not checked against the budgets")
    if comparisons and measurement.runner != "local":
        warnings.append(f"the comparison runtimes ran on this host, the artifact on {measurement.device}")
    settings = {"runs": runs, "warmup": warmup, "threads": threads, "per_op": per_op, "seed": seed,
                "min_seconds": min_seconds, "budget_overrides": dict(budgets or {})}
    return ProfileReport(
        artifact=path, file_bytes=artifact_info.file_bytes, manifest_profile=artifact_info.manifest.get("profile"),
        measurement=measurement, profile=profile, budgets=limits, budgets_source=budgets_source, stats=stats,
        energy=energy, prediction=prediction,
        checks=build_checks(measurement, stats, energy, prediction, limits, profile), settings=settings,
        comparisons=comparisons, warnings=warnings,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
