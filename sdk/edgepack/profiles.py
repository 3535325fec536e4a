"""Device profiles: what a device offers (target, memory, compute, energy) and what a model must meet on it
(latency, accuracy). One YAML file per device in profiles/, one target.yaml per toolchain target in
targets/<name>/; both are validated on load. docs/profiles.md is the schema.

Units: every physical figure is a string "<number> <unit>" (e.g. "512 MiB", "13.5 GOPS", "4.6 pJ"),
parsed strictly against the units its field accepts, and stored here in SI base units (bytes, ops/s,
bytes/s, joules, watts, seconds). Dimensionless figures (core counts, efficiencies, cosines) are
plain numbers.

Where the files are: in a source checkout (or an editable install) the repository's profiles/ and
targets/ folders; in an installed wheel the copy the build puts under edgepack/data/ (see docs/profiles.md).
"""
from __future__ import annotations

import fnmatch
import os
import platform
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import EdgepackError


class ProfileError(EdgepackError, ValueError):
    """A profile or target file is missing, malformed or inconsistent; the message names file and key."""


# ---- vocabularies ------------------------------------------------------------------------------------

RUNTIMES = ("native", "tflite", "onnx", "coreml")
# Arithmetic precisions a device figure may be given for. int4 is weight-only in edgepack (its weights are
# unpacked before the multiply), so no layer computes in 4 bits and profiles carry no int4 peak.
ARITHMETIC = ("fp32", "fp16", "int8")
REQUIRED_ARITHMETIC = ("fp32", "int8")
ISA_FEATURES = {
    "sse2": "x86-64 baseline SIMD",
    "sse4.2": "SSE4.2",
    "avx": "AVX (256-bit float)",
    "avx2": "AVX2 (256-bit integer)",
    "fma": "FMA3 fused multiply-add",
    "f16c": "float16 <-> float32 conversion",
    "avx512f": "AVX-512 foundation",
    "avx512bw": "AVX-512 byte/word",
    "avx512-vnni": "AVX-512 VNNI int8 dot products",
    "avx512-bf16": "AVX-512 BF16 bfloat16 dot products",
    "avx-vnni": "AVX-VNNI (256-bit) int8 dot products",
    "neon": "Arm Advanced SIMD (AArch64 baseline)",
    "fp16": "Armv8.2 half-precision arithmetic (FEAT_FP16)",
    "dotprod": "Armv8.2 int8 dot product (SDOT/UDOT)",
    "i8mm": "Armv8.6 int8 matrix multiply (SMMLA)",
    "bf16": "bfloat16 arithmetic",
    "sve": "Scalable Vector Extension",
    "sve2": "Scalable Vector Extension 2",
    "dsp": "Arm M-profile DSP extension (SMLAD dual 16-bit MAC)",
    "fpu-sp": "M-profile single-precision FPU",
    "fpu-dp": "M-profile double-precision FPU",
    "helium": "Arm M-profile Vector Extension (MVE, Helium)",
    "xtensa-pie": "ESP32-S3 Xtensa 128-bit SIMD (Processor Instruction Extensions)",
}


# ---- quantities ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dimension:
    """A physical dimension: the unit spellings accepted for it, each as (base, exponent) to the SI unit."""
    name: str
    units: dict[str, tuple[int, int]]
    example: str
    integer: bool = False   # bytes are whole

    def factor(self, unit: str) -> float:
        base, exponent = self.units[unit]
        return float(base) ** exponent

    def to_si(self, number: float, unit: str) -> float:
        base, exponent = self.units[unit]
        # dividing by an exact power keeps "10 us" at exactly 1e-05 (multiplying by 1e-6 would not)
        return number * base ** exponent if exponent >= 0 else number / base ** -exponent


def _decimal(*prefixed: tuple[str, int]) -> dict[str, tuple[int, int]]:
    return {unit: (10, exponent) for unit, exponent in prefixed}


BYTES = Dimension("bytes", {**_decimal(("B", 0), ("kB", 3), ("MB", 6), ("GB", 9), ("TB", 12)),
                            "KiB": (2, 10), "MiB": (2, 20), "GiB": (2, 30), "TiB": (2, 40)}, "512 MiB", True)
OPS_RATE = Dimension("operations per second", _decimal(("OPS", 0), ("MOPS", 6), ("GOPS", 9), ("TOPS", 12)),
                     "13.5 GOPS")
BYTE_RATE = Dimension("bytes per second", {**_decimal(("B/s", 0), ("kB/s", 3), ("MB/s", 6), ("GB/s", 9)),
                                           "KiB/s": (2, 10), "MiB/s": (2, 20), "GiB/s": (2, 30)}, "12.8 GB/s")
ENERGY = Dimension("energy", _decimal(("fJ", -15), ("pJ", -12), ("nJ", -9), ("uJ", -6)), "4.6 pJ")
POWER = Dimension("power", _decimal(("uW", -6), ("mW", -3), ("W", 0)), "2.5 W")
TIME = Dimension("time", _decimal(("ns", -9), ("us", -6), ("ms", -3), ("s", 0)), "20 ms")
DECIBELS = Dimension("decibels", _decimal(("dB", 0)), "3 dB")
DIMENSIONS = {d.name: d for d in (BYTES, OPS_RATE, BYTE_RATE, ENERGY, POWER, TIME, DECIBELS)}

_QUANTITY = re.compile(r"(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?) +(\S+)")


def parse_quantity(text: Any, dimension: Dimension) -> float:
    """'512 MiB' -> 536870912 (SI base units). Raises ValueError saying what is wrong and what is accepted."""
    accepted = ", ".join(dimension.units)
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"expected a quantity of {dimension.name} like '{dimension.example}', got {text!r}")
    if isinstance(text, (int, float)) or re.fullmatch(r"\s*[\d.eE+-]+\s*", text):
        raise ValueError(f"missing unit: write '{str(text).strip()} <unit>' with a unit of {dimension.name} "
                         f"({accepted}), e.g. '{dimension.example}'")
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not '<number> <unit>' (a non-negative number, a space, a unit of "
                         f"{dimension.name}: {accepted}), e.g. '{dimension.example}'")
    number, unit = match.groups()
    if unit not in dimension.units:
        other = next((d.name for d in DIMENSIONS.values() if unit in d.units), None)
        why = f"'{unit}' is a unit of {other}" if other else f"unknown unit '{unit}'"
        raise ValueError(f"'{text}': {why}; this field is {dimension.name} ({accepted})")
    value = dimension.to_si(float(number), unit)
    if dimension.integer:
        if abs(value - round(value)) > 1e-9 * max(1.0, value):   # tolerate float rounding only
            raise ValueError(f"'{text}' is not a whole number of {dimension.name}")
        return int(round(value))
    return value


def format_quantity(value: float, dimension: Dimension) -> str:
    """The inverse of parse_quantity for display: the largest unit that keeps the number >= 1."""
    # sizes read best in binary units (what RAM is sold in), rates in decimal (what datasheets quote)
    base = 2 if dimension is BYTES else 10
    units = [(u, dimension.factor(u)) for u, (b, power) in dimension.units.items() if b == base or power == 0]
    unit, factor = units[0]
    for u, f in sorted(units, key=lambda uf: uf[1]):
        if value >= f:
            unit, factor = u, f
    number = value / factor
    return f"{number:.3g} {unit}" if number < 1000 else f"{number:.0f} {unit}"


# ---- records ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """targets/<name>/target.yaml: what a toolchain target is and what can run on it."""
    name: str
    description: str
    arch: str
    os: str
    isa_baseline: tuple[str, ...]    # features every device of this target has
    isa_optional: tuple[str, ...]    # features some devices have; kernels select them at run time
    runtimes: tuple[str, ...]
    path: Path


@dataclass(frozen=True)
class Memory:
    ram_bytes: int                 # RAM the model may use: weights (when in RAM) + arena + runtime overhead
    storage_bytes: int             # room for the artifact
    runtime_overhead_bytes: int    # the runtime's own code and data
    weights_in: str                # "ram" (loaded / mmapped) or "storage" (executed in place from flash)


@dataclass(frozen=True)
class Compute:
    unit: str                      # what runs the model, e.g. "4x Cortex-A72 @ 1.5 GHz, NEON"
    cores: int                     # CPU cores the runtime's threads may use
    peak_ops: dict[str, float]     # arithmetic precision -> peak ops/s (one multiply-accumulate = 2 ops)
    ops_efficiency: float          # fraction of peak the runtime's kernels sustain
    bandwidth_bytes_per_s: float   # peak main-memory bandwidth
    bandwidth_efficiency: float    # fraction of it sustained (STREAM-like)
    op_overhead_s: float           # fixed cost per executed op (dispatch, thread-pool wake-up)
    run_overhead_s: float = 0.0                         # fixed cost per inference (the call, input checks)
    cache_bytes: int | None = None                      # last-level cache the model's tensors may stay in
    cache_bandwidth_bytes_per_s: float | None = None    # sustained bandwidth from that cache (all cores)

    def sustained_ops(self, arithmetic: str) -> float:
        return self.peak_ops[arithmetic] * self.ops_efficiency

    @property
    def sustained_bandwidth(self) -> float:
        return self.bandwidth_bytes_per_s * self.bandwidth_efficiency


@dataclass(frozen=True)
class Energy:
    mac_j: dict[str, float]        # arithmetic precision -> joules per multiply-accumulate
    memory_byte_j: float           # joules per byte moved to or from main memory
    active_power_w: float          # whole device, compute units busy
    idle_power_w: float            # whole device, awake and idle


@dataclass(frozen=True)
class Latency:
    p50_s: float
    p95_s: float


@dataclass(frozen=True)
class Accuracy:
    min_cosine: float              # output cosine similarity to the fp32 model, at least
    max_sqnr_loss_db: float        # SQNR given up against the fp32 model, at most


@dataclass(frozen=True)
class Source:
    """Where figures come from: a document, an estimate (with how), a detection, or a chosen budget."""
    fields: tuple[str, ...]        # dotted figure paths; "section.*" covers a whole section
    kind: str                      # one of SOURCE_KINDS
    text: str


SOURCE_KINDS = ("source", "estimated", "detected", "chosen")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    path: Path
    target: Target
    runtime: str
    isa: tuple[str, ...]
    memory: Memory
    compute: Compute
    energy: Energy
    latency: Latency
    accuracy: Accuracy
    sources: tuple[Source, ...]

    def provenance(self, figure: str) -> list[Source]:
        """The sources entries covering a dotted figure path, e.g. 'compute.peak.int8'."""
        return [s for s in self.sources if any(_covers(p, figure) for p in s.fields)]


# ---- schema ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Field:
    kind: str                            # text | int | fraction | quantity | choice | features | per_arithmetic
    dimension: Dimension | None = None
    choices: tuple[str, ...] = ()
    required: bool = True

    @property
    def is_figure(self) -> bool:
        """Numbers that describe the device or the budget: each must carry a source."""
        return self.kind in ("int", "fraction", "quantity", "per_arithmetic")


_PROFILE_SCHEMA: dict[str, Any] = {
    "name": _Field("text"),
    "description": _Field("text"),
    "target": {
        "name": _Field("text"),
        "runtime": _Field("choice", choices=RUNTIMES),
        "isa": _Field("features"),
    },
    "memory": {
        "ram": _Field("quantity", BYTES),
        "storage": _Field("quantity", BYTES),
        "runtime_overhead": _Field("quantity", BYTES),
        "weights_in": _Field("choice", choices=("ram", "storage")),
    },
    "compute": {
        "unit": _Field("text"),
        "cores": _Field("int"),
        "peak": _Field("per_arithmetic", OPS_RATE),
        "ops_efficiency": _Field("fraction"),
        "bandwidth": _Field("quantity", BYTE_RATE),
        "bandwidth_efficiency": _Field("fraction"),
        "op_overhead": _Field("quantity", TIME),
        "run_overhead": _Field("quantity", TIME, required=False),
        "cache": _Field("quantity", BYTES, required=False),
        "cache_bandwidth": _Field("quantity", BYTE_RATE, required=False),
    },
    "energy": {
        "mac": _Field("per_arithmetic", ENERGY),
        "memory_byte": _Field("quantity", ENERGY),
        "active_power": _Field("quantity", POWER),
        "idle_power": _Field("quantity", POWER),
    },
    "latency": {
        "p50": _Field("quantity", TIME),
        "p95": _Field("quantity", TIME),
    },
    "accuracy": {
        "min_cosine": _Field("fraction"),
        "max_sqnr_loss": _Field("quantity", DECIBELS),
    },
}

_TARGET_SCHEMA: dict[str, Any] = {
    "name": _Field("text"),
    "description": _Field("text"),
    "arch": _Field("choice", choices=("x86_64", "aarch64", "armv7e-m", "armv8.1-m", "xtensa-lx7")),
    "os": _Field("choice", choices=("linux", "android", "ios", "macos", "none")),
    "isa": {"baseline": _Field("features"), "optional": _Field("features")},
    "runtimes": _Field("features", choices=RUNTIMES),
}


class _Errors:
    """Collects every problem in a file so one load reports them all."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}" if key else message)

    def raise_if_any(self) -> None:
        if self.items:
            raise ProfileError(f"{self.where}:\n  " + "\n  ".join(self.items))


def _check_value(spec: _Field, value: Any, key: str, errors: _Errors) -> Any:
    kind = spec.kind
    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            errors.add(key, f"expected a non-empty string, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.add(key, f"expected a positive integer, got {value!r}")
        return value
    if kind == "fraction":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            errors.add(key, f"expected a number in (0, 1], got {value!r}")
            return value
        return float(value)
    if kind == "quantity":
        try:
            return parse_quantity(value, spec.dimension)
        except ValueError as err:
            errors.add(key, str(err))
            return None
    if kind == "choice":
        if value not in spec.choices:
            errors.add(key, f"expected one of {', '.join(spec.choices)}, got {value!r}")
        return value
    if kind == "features":
        known = spec.choices or tuple(ISA_FEATURES)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.add(key, f"expected a list of names, got {value!r}")
            return ()
        for v in value:
            if v not in known:
                errors.add(key, f"unknown name '{v}' (known: {', '.join(known)})")
        if len(set(value)) != len(value):
            errors.add(key, "lists a name twice")
        return tuple(value)
    if kind == "per_arithmetic":
        if not isinstance(value, dict):
            errors.add(key, f"expected a mapping of precision -> {spec.dimension.name} "
                            f"({', '.join(ARITHMETIC)}), got {value!r}")
            return {}
        result = {}
        for name in value:
            if name not in ARITHMETIC:
                errors.add(f"{key}.{name}", f"unknown precision (known: {', '.join(ARITHMETIC)}; int4 is "
                                            "weight-only and computes in fp32)")
        for name in REQUIRED_ARITHMETIC:
            if name not in value:
                errors.add(f"{key}.{name}", "missing required field")
        for name in ARITHMETIC:
            if name in value:
                figure = _Field("quantity", spec.dimension)
                result[name] = _check_value(figure, value[name], f"{key}.{name}", errors)
        return result
    raise AssertionError(kind)


def _check_mapping(schema: dict[str, Any], data: Any, prefix: str, errors: _Errors) -> dict[str, Any]:
    if not isinstance(data, dict):
        errors.add(prefix, f"expected a mapping with keys {', '.join(schema)}, got {data!r}")
        return {}
    parsed: dict[str, Any] = {}
    for key in data:
        if key not in schema:
            errors.add(f"{prefix}.{key}" if prefix else str(key),
                       f"unknown key (known here: {', '.join(schema)})")
    for key, spec in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in data:
            if isinstance(spec, dict) or spec.required:
                errors.add(path, "missing required field")
            continue
        if isinstance(spec, dict):
            parsed[key] = _check_mapping(spec, data[key], path, errors)
        else:
            parsed[key] = _check_value(spec, data[key], path, errors)
    return parsed


def _figure_paths(schema: dict[str, Any], data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the figures present in `data` (per-arithmetic maps expand to one path per precision)."""
    paths = []
    for key, spec in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in data:
            continue
        if isinstance(spec, dict):
            if isinstance(data[key], dict):
                paths += _figure_paths(spec, data[key], path)
        elif spec.kind == "per_arithmetic" and isinstance(data[key], dict):
            paths += [f"{path}.{name}" for name in data[key] if name in ARITHMETIC]
        elif spec.is_figure:
            paths.append(path)
    return paths


def _every_figure(schema: dict[str, Any]) -> dict[str, Any]:
    """A stand-in document holding every field of `schema`, to list all the figures it can have."""
    return {key: _every_figure(spec) if isinstance(spec, dict)
            else dict.fromkeys(ARITHMETIC) if spec.kind == "per_arithmetic" else None
            for key, spec in schema.items()}


def _covers(pattern: str, figure: str) -> bool:
    return fnmatch.fnmatchcase(figure, pattern) or figure.startswith(pattern + ".")


def _check_sources(raw: Any, figures: list[str], errors: _Errors) -> tuple[Source, ...]:
    """Every figure present is covered by an entry; every entry names figures the schema knows (one naming
    a figure the file lacks is not reported again: the missing field already is)."""
    schema_figures = _figure_paths(_PROFILE_SCHEMA, _every_figure(_PROFILE_SCHEMA))
    if not isinstance(raw, list) or not raw:
        errors.add("sources", "expected a non-empty list of {fields: [...], source|estimated|chosen|detected: "
                              "text} entries")
        return ()
    sources = []
    covered: set[str] = set()
    for i, entry in enumerate(raw):
        key = f"sources[{i}]"
        if not isinstance(entry, dict):
            errors.add(key, f"expected a mapping, got {entry!r}")
            continue
        kinds = [k for k in SOURCE_KINDS if k in entry]
        for unknown in set(entry) - {"fields", *SOURCE_KINDS}:
            errors.add(f"{key}.{unknown}", f"unknown key (known here: fields, {', '.join(SOURCE_KINDS)})")
        if len(kinds) != 1:
            errors.add(key, f"needs exactly one of {', '.join(SOURCE_KINDS)}, has {kinds or 'none'}")
            continue
        text = entry[kinds[0]]
        if not isinstance(text, str) or not text.strip():
            errors.add(f"{key}.{kinds[0]}", "expected a non-empty description")
        fields = entry.get("fields")
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
            errors.add(f"{key}.fields", f"expected a non-empty list of figure paths, got {fields!r}")
            continue
        for pattern in fields:
            matched = [f for f in figures if _covers(pattern, f)]
            if not any(_covers(pattern, f) for f in schema_figures):
                errors.add(f"{key}.fields", f"'{pattern}' names no figure of the profile schema")
            covered.update(matched)
        sources.append(Source(tuple(fields), kinds[0], str(text)))
    for figure in figures:
        if figure not in covered:
            errors.add(figure, "has no entry in sources: cite a document, or mark it estimated and say how")
    return tuple(sources)


# ---- files ---------------------------------------------------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (plain YAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ProfileError(f"{path}: cannot read: {err.strerror}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ProfileError(f"{path}: not valid YAML: {err}") from None


def data_root() -> Path:
    """The folder holding profiles/ and targets/: the source checkout when edgepack runs from one (the
    repository root is two levels above this file), else the copy an installed wheel carries in
    edgepack/data/."""
    here = Path(__file__).resolve().parent
    checkout = here.parents[1]
    candidates = [checkout] if (checkout / "sdk" / "edgepack").is_dir() else []
    candidates.append(here / "data")
    for root in candidates:
        if (root / "profiles").is_dir() and (root / "targets").is_dir():
            return root
    raise ProfileError("device profile data not found: looked for profiles/ and targets/ in "
                       + " and ".join(str(c) for c in candidates)
                       + " (an installed edgepack must be built with them copied into edgepack/data/)")


def available_targets() -> list[str]:
    return sorted(p.parent.name for p in (data_root() / "targets").glob("*/target.yaml"))


@lru_cache(maxsize=None)
def load_target(name: str) -> Target:
    path = data_root() / "targets" / name / "target.yaml"
    if not path.is_file():
        raise ProfileError(f"unknown target '{name}': no {path} (available: {', '.join(available_targets())})")
    errors = _Errors(str(path))
    data = _check_mapping(_TARGET_SCHEMA, _read_yaml(path), "", errors)
    errors.raise_if_any()
    if data["name"] != name:
        errors.add("name", f"'{data['name']}' does not match its folder '{name}'")
    overlap = set(data["isa"]["baseline"]) & set(data["isa"]["optional"])
    if overlap:
        errors.add("isa", f"{', '.join(sorted(overlap))} listed as both baseline and optional")
    errors.raise_if_any()
    return Target(name, data["description"], data["arch"], data["os"], data["isa"]["baseline"],
                  data["isa"]["optional"], data["runtimes"], path)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in (data_root() / "profiles").glob("*.yaml"))


def _profile_path(name_or_path: str | os.PathLike) -> Path:
    text = os.fspath(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise ProfileError(f"profile file '{path}' does not exist")
        return path
    path = data_root() / "profiles" / f"{text}.yaml"
    if not path.is_file():
        raise ProfileError(f"unknown profile '{text}' (available: {', '.join(available_profiles())}; "
                           "or pass the path of a profile .yaml)")
    return path


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """A profile by name (profiles/<name>.yaml) or by the path of a .yaml file, validated."""
    path = _profile_path(name_or_path)
    raw = _read_yaml(path)
    errors = _Errors(f"profile {path}")
    if not isinstance(raw, dict):
        errors.add("", f"expected a mapping of sections ({', '.join(_PROFILE_SCHEMA)}, sources), got {raw!r}")
        errors.raise_if_any()
    raw = dict(raw)
    detected = _fill_detected(raw, errors)
    raw_sources = raw.pop("sources", None)
    data = _check_mapping(_PROFILE_SCHEMA, raw, "", errors)
    sources: tuple[Source, ...] = ()
    if raw_sources is None:
        errors.add("sources", "missing required field")
    else:
        if isinstance(raw_sources, list):
            raw_sources = raw_sources + detected
        sources = _check_sources(raw_sources, _figure_paths(_PROFILE_SCHEMA, data), errors)
    errors.raise_if_any()

    if data["name"] != path.stem:
        errors.add("name", f"'{data['name']}' does not match the file name '{path.stem}'")
    try:
        target = load_target(data["target"]["name"])
    except ProfileError as err:
        errors.add("target.name", str(err))
        errors.raise_if_any()
    _check_consistency(data, target, errors)
    errors.raise_if_any()

    t, m, c, e, lat, acc = (data[k] for k in ("target", "memory", "compute", "energy", "latency", "accuracy"))
    return Profile(
        name=data["name"], description=data["description"], path=path, target=target,
        runtime=t["runtime"], isa=t["isa"],
        memory=Memory(m["ram"], m["storage"], m["runtime_overhead"], m["weights_in"]),
        compute=Compute(c["unit"], c["cores"], c["peak"], c["ops_efficiency"], c["bandwidth"],
                        c["bandwidth_efficiency"], c["op_overhead"], c.get("run_overhead", 0.0),
                        c.get("cache"), c.get("cache_bandwidth")),
        energy=Energy(e["mac"], e["memory_byte"], e["active_power"], e["idle_power"]),
        latency=Latency(lat["p50"], lat["p95"]),
        accuracy=Accuracy(acc["min_cosine"], acc["max_sqnr_loss"]),
        sources=sources,
    )


def _check_consistency(data: dict[str, Any], target: Target, errors: _Errors) -> None:
    """Checks across fields, once every field parsed."""
    t = data["target"]
    if t["runtime"] not in target.runtimes:
        errors.add("target.runtime", f"'{t['runtime']}' does not run on target {target.name} "
                                     f"(its runtimes: {', '.join(target.runtimes)})")
    missing = [f for f in target.isa_baseline if f not in t["isa"]]
    if missing:
        errors.add("target.isa", f"lacks {', '.join(missing)}, which every {target.name} device has")
    foreign = [f for f in t["isa"] if f not in target.isa_baseline + target.isa_optional]
    if foreign:
        errors.add("target.isa", f"{', '.join(foreign)} not available on target {target.name} "
                                 f"(known there: {', '.join(target.isa_baseline + target.isa_optional)})")
    peak, mac = data["compute"]["peak"], data["energy"]["mac"]
    if set(peak) != set(mac):
        errors.add("energy.mac", f"gives precisions {', '.join(sorted(mac))} but compute.peak gives "
                                 f"{', '.join(sorted(peak))}; each arithmetic needs both")
    if ("cache" in data["compute"]) != ("cache_bandwidth" in data["compute"]):
        errors.add("compute.cache", "compute.cache and compute.cache_bandwidth go together: give both or neither")
    m, e, lat = data["memory"], data["energy"], data["latency"]
    if m["runtime_overhead"] >= m["ram"]:
        errors.add("memory.runtime_overhead", "is not below memory.ram: nothing left for the model")
    if e["idle_power"] > e["active_power"]:
        errors.add("energy.idle_power", "exceeds energy.active_power")
    if lat["p95"] < lat["p50"]:
        errors.add("latency.p95", "is below latency.p50")


# ---- the host: figures detected from this machine ---------------------------------------------------------

@dataclass(frozen=True)
class HostFacts:
    """What can be read about the machine edgepack runs on."""
    target: str
    cpu: str
    isa: tuple[str, ...]
    cores: int
    clock_hz: float | None          # None when the OS does not say
    cache_bytes: int | None         # the last-level cache (None when the OS does not say)
    ram_bytes: int
    ram_how: str
    storage_free_bytes: int


_CPUINFO_FEATURES = {  # /proc/cpuinfo flag -> ISA_FEATURES name
    "sse2": "sse2", "sse4_2": "sse4.2", "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c",
    "avx512f": "avx512f", "avx512bw": "avx512bw", "avx512_vnni": "avx512-vnni", "avx512_bf16": "avx512-bf16",
    "avx_vnni": "avx-vnni",
    "asimd": "neon", "asimdhp": "fp16", "asimddp": "dotprod", "i8mm": "i8mm", "bf16": "bf16",
    "sve": "sve", "sve2": "sve2",
}
_HOST_TARGETS = {("Linux", "x86_64"): "linux-x86_64", ("Linux", "aarch64"): "linux-aarch64",
                 ("Darwin", "arm64"): "macos-arm64"}
# Every Apple-silicon Mac (M1 and later) is Armv8.5+ with these; macOS has no /proc/cpuinfo to ask.
_APPLE_SILICON_ISA = ("neon", "fp16", "dotprod")


def isa_from_cpuinfo(text: str) -> tuple[str, ...]:
    """ISA feature names from the first 'flags' (x86) or 'Features' (Arm) line of /proc/cpuinfo."""
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.split(":", 1)[1].split())
            return tuple(sorted({name for flag, name in _CPUINFO_FEATURES.items() if flag in flags}))
    return ()


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def _host_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = (_read_text("/sys/fs/cgroup/cpu.max") or "").split()
    if len(quota) == 2 and quota[0] != "max":   # a container limited to quota/period CPUs
        cores = min(cores, max(1, int(int(quota[0]) / int(quota[1]))))
    return cores


def _host_ram() -> tuple[int, str]:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        raise ProfileError("host profile: cannot read the physical RAM size (sysconf SC_PHYS_PAGES)") from None
    how = "sysconf(SC_PAGE_SIZE * SC_PHYS_PAGES)"
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = (_read_text(path) or "").strip()
        if limit.isdigit() and int(limit) < physical:
            physical, how = int(limit), f"the container's memory limit ({path})"
    return physical, how


def _host_clock() -> float | None:
    max_khz = (_read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") or "").strip()
    if max_khz.isdigit():
        return int(max_khz) * 1e3
    mhz = re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _read_text("/proc/cpuinfo") or "", re.M)
    return max(float(m) for m in mhz) * 1e6 if mhz else None


_SIZE_SUFFIX = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def _host_cache() -> int | None:
    """The size of the last-level cache (the highest `level` in sysfs), e.g. '32768K'."""
    best: tuple[int, int] | None = None
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind = _read_text(str(index / "level")), _read_text(str(index / "type"))
        size = re.fullmatch(r"(\d+)([KMG]?)", (_read_text(str(index / "size")) or "").strip())
        if level is None or size is None or (kind or "").strip() == "Instruction":
            continue
        entry = (int(level), int(size.group(1)) * _SIZE_SUFFIX[size.group(2)])
        best = entry if best is None or entry > best else best
    return best[1] if best else None


@lru_cache(maxsize=1)
def host_facts() -> HostFacts:
    key = (platform.system(), platform.machine())
    target = _HOST_TARGETS.get(key)
    if target is None:
        raise ProfileError(f"host profile: no target for {key[0]} {key[1]} "
                           f"(supported hosts: {', '.join(f'{s} {m}' for s, m in _HOST_TARGETS)})")
    cpuinfo = _read_text("/proc/cpuinfo") or ""
    isa = isa_from_cpuinfo(cpuinfo) if cpuinfo else _APPLE_SILICON_ISA if target == "macos-arm64" else ()
    names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    cpu = names[0].strip() if names else platform.processor() or key[1]
    ram, ram_how = _host_ram()
    try:
        free = shutil.disk_usage(os.getcwd()).free
    except OSError:
        free = shutil.disk_usage(Path.home()).free
    return HostFacts(target, cpu, isa, _host_cores(), _host_clock(), _host_cache(), ram, ram_how, free)


# Rough per-core figures for the host's estimates, from the shape of current desktop and server parts.
_ASSUMED_CLOCK_HZ = 2.5e9
_BANDWIDTH_PER_CORE = 6e9        # STREAM triad gives 5-10 GB/s per core until the channels saturate
_BANDWIDTH_CAP = 60e9            # two to four DDR4/DDR5 channels
_ACTIVE_W_PER_CORE = 4.0         # package TDP / cores is 3-6 W on desktop and server CPUs
_IDLE_W_PER_CORE = 1.0
_CACHE_BYTES_PER_CYCLE = 32      # per core from the last-level cache (32 B/cycle: Zen, Intel L3, Neoverse L2/L3)


def _fp32_flops_per_cycle(isa: tuple[str, ...]) -> tuple[int, str]:
    if "avx512f" in isa:
        return 64, "32 fp32 FMA lanes per cycle (two 512-bit FMA pipes; a part with one pipe, or 256-bit " \
                   "halves, reaches half of it)"
    if {"avx2", "fma"} <= set(isa):
        return 32, "16 fp32 FMA lanes per cycle (two 256-bit FMA pipes)"
    if "avx" in isa or "neon" in isa:
        return 16, "8 fp32 FMA lanes per cycle (two 128-bit FMA pipes, or one 256-bit)"
    return 8, "4 fp32 FMA lanes per cycle (one 128-bit pipe)"


def _host_peaks(facts: HostFacts) -> tuple[dict[str, float], str]:
    clock = facts.clock_hz or _ASSUMED_CLOCK_HZ
    flops, lanes = _fp32_flops_per_cycle(facts.isa)
    fp32 = facts.cores * clock * flops
    isa = set(facts.isa)
    # int8 dot-product instructions (VNNI, SDOT, SMMLA) do 4 int8 MACs where FMA does one fp32 MAC;
    # without them int8 goes through 16-bit widening multiplies at about twice the fp32 rate.
    int8_factor = 4 if isa & {"avx512-vnni", "avx-vnni", "dotprod", "i8mm"} else 2
    # No fp16 figure: the host runs the native runtime, which multiplies fp16 weights in fp32.
    peaks = {"fp32": fp32, "int8": fp32 * int8_factor}
    clock_how = "maximum from cpufreq or /proc/cpuinfo" if facts.clock_hz else "assumed: the OS does not report it"
    int8_how = "dot-product instructions" if int8_factor == 4 else "widening multiplies"
    how = (f"{facts.cores} cores x {clock / 1e9:.2f} GHz ({clock_how}) x {flops} ops/cycle ({lanes}); "
           f"int8 = {int8_factor}x fp32 ({int8_how})")
    return peaks, how


def _fill_detected(raw: dict[str, Any], errors: _Errors) -> list[dict[str, Any]]:
    """Replace every `detect` value with a figure read from (or estimated for) this machine, and return
    the sources entries that say so. Raw YAML-style values come back, so the normal checks still apply."""
    wanted = [(section, key) for section, body in raw.items() if isinstance(body, dict)
              for key, value in body.items() if value == "detect"]
    if not wanted:
        return []
    facts = host_facts()
    peaks, peak_how = _host_peaks(facts)
    compute = raw.get("compute")
    efficiency = compute.get("ops_efficiency") if isinstance(compute, dict) else None
    if isinstance(efficiency, bool) or not isinstance(efficiency, (int, float)) or not 0 < efficiency <= 1:
        efficiency = 1.0   # the normal checks report the bad value; this only keeps detection going
    active, idle = facts.cores * _ACTIVE_W_PER_CORE, facts.cores * _IDLE_W_PER_CORE
    bandwidth = min(facts.cores * _BANDWIDTH_PER_CORE, _BANDWIDTH_CAP)
    clock = facts.clock_hz or _ASSUMED_CLOCK_HZ
    cache_bandwidth = facts.cores * _CACHE_BYTES_PER_CYCLE * clock
    detectors: dict[str, Callable[[], tuple[Any, str, str]]] = {
        "target.name": lambda: (facts.target, "detected", "platform.system() and platform.machine()"),
        "target.isa": lambda: (list(facts.isa), "detected", "CPU flags in /proc/cpuinfo"),
        "memory.ram": lambda: (f"{facts.ram_bytes // 2} B", "detected",
                               f"half of the RAM from {facts.ram_how}; the rest is left to the OS and other "
                               "processes"),
        "memory.storage": lambda: (f"{facts.storage_free_bytes} B", "detected",
                                   "free space on the current directory's filesystem"),
        "compute.unit": lambda: (f"{facts.cores}x {facts.cpu}", "detected", "/proc/cpuinfo model name"),
        "compute.cores": lambda: (facts.cores, "detected", "CPUs this process may use (affinity, cgroup quota)"),
        "compute.peak": lambda: ({k: f"{v / 1e9:.1f} GOPS" for k, v in peaks.items()}, "estimated", peak_how),
        "compute.bandwidth": lambda: (f"{bandwidth / 1e9:.1f} GB/s", "estimated",
                                      f"{_BANDWIDTH_PER_CORE / 1e9:.0f} GB/s per core (STREAM triad on current "
                                      f"desktop/server parts), capped at {_BANDWIDTH_CAP / 1e9:.0f} GB/s"),
        "compute.cache": lambda: (None if facts.cache_bytes is None else f"{facts.cache_bytes} B", "detected",
                                  "the last-level cache in /sys/devices/system/cpu/cpu0/cache"),
        "compute.cache_bandwidth": lambda: (None if facts.cache_bytes is None else
                                            f"{cache_bandwidth / 1e9:.1f} GB/s", "estimated",
                                            f"{facts.cores} cores x {_CACHE_BYTES_PER_CYCLE} B/cycle (the last-level "
                                            f"cache's fill rate per core) x {clock / 1e9:.2f} GHz"),
        "energy.active_power": lambda: (f"{active} W", "estimated",
                                        f"{_ACTIVE_W_PER_CORE} W per busy core (package TDP / cores)"),
        "energy.idle_power": lambda: (f"{idle} W", "estimated", f"{_IDLE_W_PER_CORE} W per core"),
        "energy.mac": lambda: ({k: f"{(active - idle) / (v / 2 * efficiency) * 1e12:.1f} pJ"
                                for k, v in peaks.items()}, "estimated",
                               "(active - idle power) / sustained MAC rate (peak / 2 x compute.ops_efficiency): "
                               "the energy a MAC adds over idle when the cores are busy"),
    }
    sources = []
    for section, key in wanted:
        path = f"{section}.{key}"
        if path not in detectors:
            errors.add(path, f"cannot be detected (detectable: {', '.join(detectors)})")
            continue
        value, kind, how = detectors[path]()
        if value is None:   # an optional figure this machine does not tell (no cache in sysfs): left out
            raw[section] = {k: v for k, v in raw[section].items() if k != key}
            continue
        raw[section] = {**raw[section], key: value}
        if path not in ("target.name", "target.isa", "compute.unit"):   # sources cover figures only
            sources.append({"fields": [path], kind: how})
    return sources


def host_profile() -> Profile:
    """The profile of the machine edgepack runs on (profiles/host.yaml with its `detect` fields filled)."""
    return load_profile("host")


# ---- the devices table ---------------------------------------------------------------------------------------

def devices_table() -> str:
    """Every profile as a plain-text table (what `edgepack devices` prints)."""
    header = ("profile", "target", "runtime", "RAM", "storage", "fp32", "int8", "bandwidth", "p50", "device")
    rows = [header]
    for name in available_profiles():
        p = load_profile(name)
        rows.append((p.name, p.target.name, p.runtime,
                     format_quantity(p.memory.ram_bytes, BYTES), format_quantity(p.memory.storage_bytes, BYTES),
                     format_quantity(p.compute.peak_ops["fp32"], OPS_RATE),
                     format_quantity(p.compute.peak_ops["int8"], OPS_RATE),
                     format_quantity(p.compute.bandwidth_bytes_per_s, BYTE_RATE),
                     format_quantity(p.latency.p50_s, TIME), p.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
