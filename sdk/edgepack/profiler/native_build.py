"""Build edgepack-bench (native/tools/) with CMake for the host or a cross target, and run it.

    binary = build_bench("linux-aarch64")
    report = run_bench(binary, "model.epk", runs=20, emulator=["qemu-aarch64-static", "-cpu", "max"])
    report["latencies_seconds"], report["peak_rss_bytes"], ...

Builds are cached under ~/.cache/edgepack/bench (or `build_dir`), keyed by a hash of the native sources,
the target's toolchain file and the compiler, so a test session or the profiler rebuilds only after a
change; the four most recently used builds of each target are kept.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import EdgepackError

REPO_ROOT = Path(__file__).resolve().parents[3]
NATIVE_DIR = REPO_ROOT / "native"
TARGETS_DIR = REPO_ROOT / "targets"
BENCH_NAME = "edgepack-bench"
# Debian packages of the command prefixes run_bench accepts (qemu-* come from qemu-user-static).
_PREFIX_PACKAGES = {"taskset": "util-linux"}
# Sources that go into the bench; native/python/ is the extension's alone.
_SOURCE_SUFFIXES = {".cpp", ".h", ".txt", ".cmake"}


class NativeBuildError(EdgepackError):
    """edgepack-bench could not be configured or built (a missing tool, or a compile error)."""


class BenchError(EdgepackError):
    """edgepack-bench could not be run, or reported an error."""


def available_targets() -> list[str]:
    """"host" (tuned for this machine) and every targets/NAME with a toolchain.cmake."""
    return ["host"] + sorted(p.parent.name for p in TARGETS_DIR.glob("*/toolchain.cmake"))


def _require(tool: str, debian_package: str, purpose: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise NativeBuildError(f"'{tool}' not found on PATH, needed {purpose}: install the Debian package "
                               f"'{debian_package}' (apt-get install {debian_package})")
    return path


def _toolchain_compiler(toolchain: Path) -> str:
    match = re.search(r"set\(\s*CMAKE_CXX_COMPILER\s+(\S+?)\s*\)", toolchain.read_text())
    if match is None:
        raise NativeBuildError(f"{toolchain} does not set CMAKE_CXX_COMPILER")
    return match.group(1)


def _debian_package(compiler: str) -> str:
    """Debian names a cross g++ after its triplet: aarch64-linux-gnu-g++ is in g++-aarch64-linux-gnu."""
    if compiler.endswith("-g++"):
        return "g++-" + compiler[: -len("-g++")]
    return "g++"


def _source_files() -> list[Path]:
    if not (NATIVE_DIR / "CMakeLists.txt").exists():
        raise NativeBuildError(f"native sources not found at {NATIVE_DIR}: edgepack-bench is built from a source "
                               "checkout (pip install -e .)")
    return sorted(p for p in NATIVE_DIR.rglob("*")
                  if p.is_file() and p.suffix in _SOURCE_SUFFIXES and "python" not in p.relative_to(NATIVE_DIR).parts)


def _cache_key(target: str, toolchain: Path | None, compiler: str) -> str:
    digest = hashlib.sha256(target.encode())
    for path in _source_files():
        digest.update(str(path.relative_to(NATIVE_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    if toolchain is not None:
        digest.update(toolchain.read_bytes())
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    digest.update(version.encode())
    if target == "host":  # -march=native: a binary built on another CPU model may not run here
        digest.update(_cpu_flags().encode())
    return digest.hexdigest()[:16]


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


def _run_step(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        log = (result.stdout + result.stderr).strip().splitlines()
        raise NativeBuildError(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
                               + "\n".join(log[-60:]))


KEEP_BUILDS = 4   # builds kept per target in the cache (the most recently used)


def build_bench(target: str = "host", build_dir: str | Path | None = None, jobs: int | None = None) -> Path:
    """Configure and build edgepack-bench for `target` ("host" or a folder of targets/ with a
    toolchain.cmake, e.g. "linux-aarch64"); returns the binary. Reuses a cached build of the same sources."""
    targets = available_targets()
    if target not in targets:
        raise ValueError(f"unknown target '{target}'; available: {', '.join(targets)}")
    cmake = _require("cmake", "cmake", "to build edgepack-bench")
    if shutil.which("ninja"):
        generator = ["-G", "Ninja"]
    else:
        _require("make", "make", "to build edgepack-bench (or install ninja-build)")
        generator = ["-G", "Unix Makefiles"]
    toolchain = None if target == "host" else TARGETS_DIR / target / "toolchain.cmake"
    compiler = "g++" if toolchain is None else _toolchain_compiler(toolchain)
    _require(compiler, _debian_package(compiler), f"to build for {target}")

    cache = Path(build_dir) if build_dir is not None else _default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    entry = _cache_entry(cache, target, toolchain, compiler)
    binary = entry / "build" / BENCH_NAME
    # One build per target at a time: parallel test workers wait for the first one and reuse it.
    with open(cache / f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            os.utime(entry)   # recently used: kept by _prune
            return binary
        shutil.rmtree(entry, ignore_errors=True)
        configure = [cmake, "-S", str(NATIVE_DIR), "-B", str(entry / "build"), *generator, "-DCMAKE_BUILD_TYPE=Release",
                     f"-DCMAKE_CXX_COMPILER={compiler}" if toolchain is None else f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"]
        _run_step(configure, f"configuring edgepack-bench for {target}")
        _run_step([cmake, "--build", str(entry / "build"), "--target", BENCH_NAME,
                   "--parallel", str(jobs or os.cpu_count() or 2)], f"building edgepack-bench for {target}")
        _prune(cache, target)
    return binary


def _prune(cache: Path, target: str, keep: int = KEEP_BUILDS) -> None:
    """Keep the `keep` most recently used builds of `target` (two source trees used in turn, e.g. two
    checkouts testing side by side, must not delete each other's binary while one of them runs it)."""
    builds = sorted((d for d in cache.glob(f"{target}-*") if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    for stale in builds[keep:]:
        shutil.rmtree(stale, ignore_errors=True)


def cached_bench(target: str = "host", build_dir: str | Path | None = None) -> Path | None:
    """The edgepack-bench binary build_bench(target) would return if it is built already (for the current
    sources), else None; never builds."""
    if target not in available_targets():
        raise ValueError(f"unknown target '{target}'; available: {', '.join(available_targets())}")
    toolchain = None if target == "host" else TARGETS_DIR / target / "toolchain.cmake"
    compiler = "g++" if toolchain is None else _toolchain_compiler(toolchain)
    if shutil.which(compiler) is None:
        return None
    cache = Path(build_dir) if build_dir is not None else _default_cache_dir()
    binary = _cache_entry(cache, target, toolchain, compiler) / "build" / BENCH_NAME
    return binary if binary.exists() else None


def _cache_entry(cache: Path, target: str, toolchain: Path | None, compiler: str) -> Path:
    return cache / f"{target}-{_cache_key(target, toolchain, compiler)}"


def _default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "edgepack" / "bench"


def run_bench(binary: str | Path, artifact: str | Path, *, runs: int | None = None, warmup: int | None = None,
              min_seconds: float | None = None, threads: int | None = None, per_op: bool = False,
              seed: int | None = None, int_high: int | None = None,
              inputs: str | Path | Sequence[np.ndarray] | None = None, outputs: str | Path | None = None,
              emulator: Sequence[str] | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Run edgepack-bench on `artifact` and return its JSON report.

    inputs: a raw inputs file, or arrays in model input order (written to a temporary file); default
    random. outputs: where the bench writes the last run's raw outputs (decode with read_outputs).
    emulator: a command prefix, e.g. ["qemu-aarch64-static", "-cpu", "max"] for an aarch64 binary, or
    ["taskset", "-c", "0"] to pin it. Flags left at None take the bench's defaults.
    """
    if emulator:
        if shutil.which(emulator[0]) is None:
            package = "qemu-user-static" if emulator[0].startswith("qemu-") else _PREFIX_PACKAGES.get(emulator[0],
                                                                                                   emulator[0])
            raise BenchError(f"'{emulator[0]}' not found on PATH: install the Debian package '{package}' "
                             f"(apt-get install {package})")
    flags = {"--runs": runs, "--warmup": warmup, "--min-seconds": min_seconds, "--threads": threads,
             "--seed": seed, "--int-high": int_high, "--outputs": outputs}
    command = [*(emulator or []), str(binary), str(artifact)]
    command += [part for flag, value in flags.items() if value is not None for part in (flag, str(value))]
    if per_op:
        command.append("--per-op")
    with tempfile.TemporaryDirectory() as tmp:
        if inputs is not None:
            if not isinstance(inputs, (str, Path)):
                path = Path(tmp) / "inputs.bin"
                path.write_bytes(b"".join(np.ascontiguousarray(a).tobytes() for a in inputs))
                inputs = path
            command += ["--inputs", str(inputs)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise BenchError(f"edgepack-bench failed (exit {result.returncode}) on '{artifact}': {result.stderr.strip()}")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise BenchError(f"edgepack-bench printed invalid JSON ({error}): {result.stdout[:500]!r}") from None


def read_outputs(path: str | Path, report: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a bench --outputs file, split and shaped by the report's "outputs" list."""
    raw = Path(path).read_bytes()
    expected = sum(spec["bytes"] for spec in report["outputs"])
    if len(raw) != expected:
        raise BenchError(f"outputs file '{path}' has {len(raw)} bytes, the report lists {expected}")
    arrays, offset = {}, 0
    for spec in report["outputs"]:
        data = raw[offset:offset + spec["bytes"]]
        arrays[spec["name"]] = np.frombuffer(data, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"])
        offset += spec["bytes"]
    return arrays
