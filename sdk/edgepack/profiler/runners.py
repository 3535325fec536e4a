"""Runners: where and how an artifact is timed. Every runner answers the same call,

    runner.run(artifact, runs, warmup, threads, per_op, seed, min_seconds) -> Measurement

  local          in this process, through the bindings (edgepack.load, Session.run / run_profiled)
  bench          the host build of edgepack-bench in a subprocess
  ssh://u@h[:p]  edgepack-bench copied to a remote machine (edgepack.profiler.ssh)
  qemu-aarch64   the aarch64 cross build under qemu-aarch64-static -cpu max: checks that the ARM build runs
                 and computes what the host does; its timings are the emulator's and are flagged as such
"""
from __future__ import annotations

import gc
import os
import platform
import tempfile
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..runtime import Session, TensorSpec, load
from .energy import SYSFS, EnergyMeter, EnergyReading, SensorSet, discover_sensors
from .native_build import build_bench, read_outputs, run_bench

QEMU_AARCH64 = ["qemu-aarch64-static", "-cpu", "max"]
# Random integer inputs are drawn from [0, INT_HIGH), as edgepack-bench draws them by default.
INT_HIGH = 100
# Outputs of the emulated aarch64 build against the host runtime: the fp32 kernels differ in
# summation order and FMA use between ISAs; integer kernels are exact.
OUTPUT_RTOL, OUTPUT_ATOL = 1e-4, 1e-5


@dataclass(frozen=True)
class OpTime:
    name: str
    op: str
    mean_s: float           # mean over the measured runs


@dataclass(frozen=True)
class OutputCheck:
    """The runner's outputs against the host's native runtime on the same inputs."""
    reference: str
    max_abs_diff: float | None     # None when the outputs cannot be compared (other names)
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "max_abs_diff": self.max_abs_diff, "passed": self.passed,
                "detail": self.detail}


@dataclass
class Measurement:
    """What one runner measured for one artifact."""
    device: str                        # as given: local | bench | ssh://user@host:port | qemu-aarch64
    runner: str                        # local | bench | ssh | qemu-aarch64
    arch: str                          # of the machine (or emulated CPU) that ran the model
    threads: int
    warmup: int
    latencies_s: list[float]
    load_s: float
    first_run_s: float                 # the first run after load (cold caches, weights paged in)
    arena_bytes: int
    weights_bytes: int
    peak_memory_bytes: int | None
    memory_how: str                    # what peak_memory_bytes counts
    emulated: bool = False
    per_op: list[OpTime] = field(default_factory=list)
    energy: EnergyReading | None = None
    energy_notes: list[str] = field(default_factory=list)
    cpu: dict[str, Any] = field(default_factory=dict)   # features, kernel variant, as the runner reports them
    pinned_cpus: list[int] | None = None
    cooldown_s: float = 0.0
    output_check: OutputCheck | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def per_op_sum_s(self) -> float:
        return sum(op.mean_s for op in self.per_op)


class Runner(ABC):
    """Times an artifact somewhere. Subclasses set `device` (the spec the user gave) and `kind`."""
    device: str
    kind: str

    @abstractmethod
    def run(self, artifact: str | Path, runs: int = 50, warmup: int = 5, threads: int | None = None,
            per_op: bool = False, seed: int = 0, min_seconds: float = 0.0) -> Measurement:
        """Load `artifact`, run it `warmup` times unmeasured, then at least `runs` measured times and until
        the measured runs add up to `min_seconds`. threads None: the runtime's default (one per core).
        per_op: also time every op (adds a clock read per op). seed: the random inputs'."""


def check_run_arguments(artifact: str | Path, runs: int, warmup: int, threads: int | None,
                        min_seconds: float) -> Path:
    path = Path(artifact)
    if not path.is_file():
        raise FileNotFoundError(f"artifact '{path}' does not exist")
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more, got {warmup}")
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be 0 (one per core) or more, got {threads}")
    if min_seconds < 0:
        raise ValueError(f"min_seconds must be 0 or more, got {min_seconds}")
    return path


def parse_cpus(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] (the taskset -c list syntax)."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last) if sep else int(first)
        except ValueError:
            raise ValueError(f"CPU list '{text}' must look like 0-3 or 0,2 (got '{part}')") from None
        if low < 0 or high < low:
            raise ValueError(f"CPU list '{text}': bad range '{part}'")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def random_inputs(specs: Sequence[TensorSpec], seed: int = 0, int_high: int = INT_HIGH) -> dict[str, np.ndarray]:
    """Inputs drawn like edgepack-bench draws them: floats uniform in [0, 1), integers in [0, int_high),
    booleans fair. (Same distributions, not the same values: the bench uses mt19937_64.)"""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        if spec.dtype.kind == "f":
            feeds[spec.name] = rng.random(spec.shape, dtype=np.float32).astype(spec.dtype)
        elif spec.dtype == np.bool_:
            feeds[spec.name] = rng.integers(0, 2, spec.shape).astype(np.bool_)
        else:
            high = min(int_high, int(np.iinfo(spec.dtype).max) + 1)
            feeds[spec.name] = rng.integers(0, high, spec.shape).astype(spec.dtype)
    return feeds


# ---- local: in this process ---------------------------------------------------------------------------------

def _proc_status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (VmHWM) at the current RSS, so that a peak reached earlier in
    this process (say, while compiling the model) is not charged to the run. Linux 4.0+."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@contextmanager
def _pinned(cpus: Sequence[int] | None) -> Iterator[None]:
    """Pin this thread to `cpus` for the block. Set before the session is loaded, so that the runtime's
    worker threads, created at load, inherit the mask."""
    if not cpus:
        yield
        return
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("CPU pinning needs os.sched_setaffinity (Linux)")
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as error:
        raise ValueError(f"cannot pin to CPUs {list(cpus)} ({error.strerror}); this process may use "
                         f"{sorted(before)}") from None
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class LocalRunner(Runner):
    """In this process through the bindings. Latency is what a Python caller of Session.run sees
    (input checks and output allocation included); per-op times come from Session.run_profiled in the
    same runs. `cooldown_s` sleeps between measured runs (not timed, and not charged to energy)."""
    kind = "local"

    def __init__(self, cpus: Sequence[int] | None = None, cooldown_s: float = 0.0, sysfs: str | Path = SYSFS) -> None:
        if cooldown_s < 0:
            raise ValueError(f"cool-down must be 0 or more seconds, got {cooldown_s}")
        self.device = "local"
        self.cpus = list(cpus) if cpus else None
        self.cooldown_s = cooldown_s
        self.sysfs = Path(sysfs)

    def run(self, artifact: str | Path, runs: int = 50, warmup: int = 5, threads: int | None = None,
            per_op: bool = False, seed: int = 0, min_seconds: float = 0.0) -> Measurement:
        path = check_run_arguments(artifact, runs, warmup, threads, min_seconds)
        sensors, energy_notes = discover_sensors(self.sysfs)
        with _pinned(self.cpus):
            reset = _reset_peak_rss()
            rss_before = _proc_status_kib("VmRSS")
            started = time.perf_counter()
            session = load(path, num_threads=threads or None)
            load_s = time.perf_counter() - started
            feeds = random_inputs(session.inputs, seed)
            first_run_s, latencies, op_totals, energy = self._measure(session, feeds, runs, warmup, per_op,
                                                                      min_seconds, sensors)
            peak = _proc_status_kib("VmHWM" if reset else "VmRSS")
        notes = [] if reset else ["/proc/self/clear_refs is not writable: peak memory is the RSS growth at the end"]
        per_op_times = [OpTime(name, op, total / len(latencies))
                        for (name, op), total in zip(session.ops, op_totals)] if per_op else []
        return Measurement(
            device=self.device, runner=self.kind, arch=platform.machine(), threads=session.num_threads,
            warmup=warmup, latencies_s=latencies, load_s=load_s, first_run_s=first_run_s,
            arena_bytes=session.arena_bytes, weights_bytes=session.weights_bytes,
            peak_memory_bytes=(peak - rss_before) * 1024 if peak is not None and rss_before is not None else None,
            memory_how="peak RSS growth of this process from before load to the end of the runs (weights "
                       "paged in, arena, runtime threads; memory the allocator already held is not seen: "
                       "--device bench gives the whole process)",
            per_op=per_op_times, energy=energy, energy_notes=energy_notes, pinned_cpus=self.cpus,
            cooldown_s=self.cooldown_s, notes=notes)

    def _measure(self, session: Session, feeds: dict[str, np.ndarray], runs: int, warmup: int, per_op: bool,
                 min_seconds: float, sensors: SensorSet | None
                 ) -> tuple[float, list[float], list[float], EnergyReading | None]:
        """(first run, measured latencies, per-op totals, energy) of warm-up then measured runs."""
        run = session.run_profiled if per_op else session.run
        first_run_s = 0.0
        for i in range(warmup):
            started = time.perf_counter()
            session.run(feeds)
            if i == 0:
                first_run_s = time.perf_counter() - started
        latencies: list[float] = []
        measured_s = 0.0
        op_totals = [0.0] * len(session.ops)
        meter = EnergyMeter(sensors) if sensors is not None else None
        energy = None
        # The collector would stop the loop at random runs; timeit switches it off for the same reason.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        if meter is not None:
            meter.start()
        try:
            while len(latencies) < runs or measured_s < min_seconds:
                if self.cooldown_s and latencies:
                    if meter is not None:
                        meter.pause()
                    time.sleep(self.cooldown_s)
                    if meter is not None:
                        meter.resume()
                started = time.perf_counter()
                result = run(feeds)
                seconds = time.perf_counter() - started
                latencies.append(seconds)
                measured_s += seconds
                if per_op:
                    for i, op_seconds in enumerate(result[1]):
                        op_totals[i] += op_seconds
        finally:
            if meter is not None:
                energy = meter.stop()
            if gc_was_enabled:
                gc.enable()
        if warmup == 0:
            first_run_s = latencies[0]
        return first_run_s, latencies, op_totals, energy


# ---- edgepack-bench: host subprocess, and aarch64 under qemu-user ---------------------------------------------

def measurement_from_bench(report: dict[str, Any], device: str, kind: str, emulated: bool, memory_how: str,
                           energy: EnergyReading | None = None, energy_notes: Sequence[str] = (),
                           pinned_cpus: Sequence[int] | None = None) -> Measurement:
    """A Measurement from edgepack-bench's JSON report."""
    per_op = [OpTime(op["name"], op["op"], op["mean_seconds"]) for op in report.get("per_op", [])]
    return Measurement(
        device=device, runner=kind, arch=report["arch"], threads=report["threads"], warmup=report["warmup_runs"],
        latencies_s=list(report["latencies_seconds"]), load_s=report["load_seconds"],
        first_run_s=report["first_run_seconds"], arena_bytes=report["arena_bytes"],
        weights_bytes=report["weights_bytes"], peak_memory_bytes=report["peak_rss_bytes"], memory_how=memory_how,
        emulated=emulated, per_op=per_op, energy=energy, energy_notes=list(energy_notes),
        cpu={"cpu_features": report["cpu_features"], "build_features": report["build_features"],
             "gemm_ukernel": report["gemm_ukernel"]},
        pinned_cpus=list(pinned_cpus) if pinned_cpus else None)


def _taskset(cpus: Sequence[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(str(c) for c in cpus)] if cpus else []


class BenchRunner(Runner):
    """The host build of edgepack-bench in a subprocess: no Python in the timed loop, and its peak RSS is
    the model's whole process. `binary` defaults to build_bench("host") (cached)."""
    kind = "bench"

    def __init__(self, cpus: Sequence[int] | None = None, sysfs: str | Path = SYSFS,
                 binary: str | Path | None = None) -> None:
        self.device = "bench"
        self.cpus = list(cpus) if cpus else None
        self.sysfs = Path(sysfs)
        self.binary = Path(binary) if binary is not None else None

    def run(self, artifact: str | Path, runs: int = 50, warmup: int = 5, threads: int | None = None,
            per_op: bool = False, seed: int = 0, min_seconds: float = 0.0) -> Measurement:
        path = check_run_arguments(artifact, runs, warmup, threads, min_seconds)
        binary = self.binary or build_bench("host")
        sensors, energy_notes = discover_sensors(self.sysfs)
        meter = EnergyMeter(sensors) if sensors is not None else None
        if meter is not None:
            meter.start()
        try:
            report = run_bench(binary, path, runs=runs, warmup=warmup, min_seconds=min_seconds or None,
                               threads=threads, per_op=per_op, seed=seed, emulator=_taskset(self.cpus) or None)
        finally:
            # The window is the whole process (load and warm-up too); energy per inference is its average
            # power times the mean latency.
            energy = meter.stop() if meter is not None else None
        return measurement_from_bench(report, self.device, self.kind, emulated=False,
                                      memory_how="peak RSS of the edgepack-bench process (runtime, weights paged "
                                                 "in, arena, thread stacks)",
                                      energy=energy, energy_notes=energy_notes, pinned_cpus=self.cpus)


class QemuAarch64Runner(Runner):
    """The linux-aarch64 cross build of edgepack-bench under qemu-aarch64-static -cpu max. For correctness:
    it feeds the same inputs to the host's native runtime and compares the outputs. Its timings are the
    emulator's (flagged emulated) and its peak RSS includes qemu itself."""
    kind = "qemu-aarch64"

    def __init__(self, cpus: Sequence[int] | None = None, binary: str | Path | None = None,
                 timeout_s: float = 600.0) -> None:
        self.device = "qemu-aarch64"
        self.cpus = list(cpus) if cpus else None
        self.binary = Path(binary) if binary is not None else None
        self.timeout_s = timeout_s

    def run(self, artifact: str | Path, runs: int = 50, warmup: int = 5, threads: int | None = None,
            per_op: bool = False, seed: int = 0, min_seconds: float = 0.0) -> Measurement:
        path = check_run_arguments(artifact, runs, warmup, threads, min_seconds)
        binary = self.binary or build_bench("linux-aarch64")
        session = load(path, num_threads=threads or None)
        feeds = random_inputs(session.inputs, seed)
        with tempfile.TemporaryDirectory(prefix="edgepack-qemu-") as tmp:
            outputs_path = Path(tmp) / "outputs.bin"
            report = run_bench(binary, path, runs=runs, warmup=warmup, min_seconds=min_seconds or None,
                               threads=threads, per_op=per_op, inputs=[feeds[s.name] for s in session.inputs],
                               outputs=outputs_path, emulator=_taskset(self.cpus) + QEMU_AARCH64,
                               timeout=self.timeout_s)
            emulated_outputs = read_outputs(outputs_path, report)
        measurement = measurement_from_bench(
            report, self.device, self.kind, emulated=True,
            memory_how="peak RSS of qemu-user running edgepack-bench (the emulator included)",
            pinned_cpus=self.cpus)
        measurement.output_check = compare_outputs(emulated_outputs, session.run(feeds))
        measurement.notes.append("timings are emulated (qemu-user): they check that the aarch64 build runs, "
                                 "not how fast a device is")
        return measurement


def compare_outputs(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> OutputCheck:
    """Outputs of another build against the host runtime's: same names, shapes and dtypes, non-finite
    values in the same places, the rest within OUTPUT_RTOL / OUTPUT_ATOL (exact for integers)."""
    reference = "the host's native runtime on the same inputs"
    if list(got) != list(expected):
        return OutputCheck(reference, None, False, f"output names differ: {list(got)} vs {list(expected)}")
    worst, failures = 0.0, []
    for name, want in expected.items():
        have = got[name]
        if have.shape != want.shape or have.dtype != want.dtype:
            failures.append(f"'{name}' is {have.dtype}{list(have.shape)}, expected {want.dtype}{list(want.shape)}")
            continue
        have64, want64 = have.astype(np.float64), want.astype(np.float64)
        finite = np.isfinite(want64)
        same_specials = np.array_equal(have64[~finite], want64[~finite], equal_nan=True)
        if not np.array_equal(np.isfinite(have64), finite) or not same_specials:
            failures.append(f"'{name}' has NaN or infinity where the host has not (or the reverse)")
            continue
        diff = np.abs(have64[finite] - want64[finite])
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
        tolerance = OUTPUT_ATOL + OUTPUT_RTOL * np.abs(want64[finite]) if want.dtype.kind == "f" else 0.0
        if np.any(diff > tolerance):
            failures.append(f"'{name}' differs by up to {float(diff.max()):.3g}")
    detail = "; ".join(failures) if failures else (f"all {len(expected)} outputs within rtol {OUTPUT_RTOL} / "
                                                  f"atol {OUTPUT_ATOL}")
    return OutputCheck(reference, worst, not failures, detail)


# ---- choosing a runner ------------------------------------------------------------------------------------------

DEVICES = ("local", "bench", "qemu-aarch64", "ssh://user@host[:port]")


def make_runner(device: str, cpus: Sequence[int] | None = None, cooldown_s: float = 0.0,
                identity_file: str | Path | None = None, known_hosts: str | Path | None = None,
                bench_target: str | None = None, sysfs: str | Path = SYSFS) -> Runner:
    """The runner for a --device spec. Only the local runner can cool down between runs: edgepack-bench
    runs its measured runs back to back."""
    if cooldown_s and device != "local":
        raise ValueError(f"a cool-down between runs needs --device local (edgepack-bench, which '{device}' runs, "
                         "times its runs back to back)")
    if (identity_file or known_hosts or bench_target) and not device.startswith("ssh://"):
        raise ValueError("SSH options (identity file, known-hosts file, bench target) apply to --device ssh://... only")
    if device == "local":
        return LocalRunner(cpus, cooldown_s, sysfs)
    if device == "bench":
        return BenchRunner(cpus, sysfs)
    if device == "qemu-aarch64":
        return QemuAarch64Runner(cpus)
    if device.startswith("ssh://"):
        from .ssh import SshRunner
        if cpus:
            raise ValueError("--pin applies to local devices; pin on the remote machine with its own tools")
        return SshRunner(device, identity_file=identity_file, known_hosts=known_hosts, bench_target=bench_target)
    raise ValueError(f"unknown device '{device}' (choose from {', '.join(DEVICES)})")
