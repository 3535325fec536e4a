"""`edgepack verify`: run every artifact of one compile on the same inputs, in every runtime this
machine has, and check them against the fp32 reference and against each other.

Runtimes: .epk in the native runtime, .onnx in ONNX Runtime, .tflite in LiteRT, .mlpackage in Core ML
(macOS only; elsewhere the package is read structurally and reported as not run, which is not a
failure). Per artifact and output it reports, over all samples:
  * against the fp32 reference (an ONNX model run in ONNX Runtime, or a float IR graph run in
    edgepack.reference): max abs error, SQNR and mean cosine;
  * against the native result (the .epk among the artifacts): for quantized outputs the share of
    elements within 1 LSB of the output's int8 grid, for float outputs the mean cosine.
An artifact fails when it cannot be read or run (a corrupt file), when its mean cosine to fp32 is
below the tolerance (the profile's accuracy.min_cosine unless given), or when it disagrees with the
native result (under `min_lsb_share` within 1 LSB, or a cosine under 0.999 for float outputs).

With `per_op`, runtimes that expose intermediates (ONNX Runtime: every value made a graph output;
LiteRT: experimental_preserve_all_tensors, on its builtin kernels) are compared value by value with
the .epk's graph run in edgepack.reference (the oracle the native kernels are bit-exact to), and the
first node whose output diverges is named: int8 codes more than 1 apart, float values more than 1 %
of the tensor's range apart.
"""
from __future__ import annotations

import abc

import json
import math
import platform
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import EdgepackError, UnsupportedError
from .ir import DType, Graph, Node, QuantParams

FORMATS = {".epk": "epk", ".onnx": "onnx", ".tflite": "tflite", ".mlpackage": "coreml"}
NATIVE_AGREEMENT_COSINE = 0.999     # float outputs of two runtimes of the same plan agree at least this well
DEFAULT_MIN_COSINE = 0.99


@dataclass
class OutputCheck:
    name: str
    max_abs_error: float | None = None     # against the fp32 reference
    sqnr_db: float | None = None
    cosine: float | None = None            # mean over samples
    lsb: float | None = None               # the output's int8 step, for quantized outputs
    within_lsb: float | None = None        # share of elements within 1 LSB of the native result
    native_cosine: float | None = None     # float outputs: mean cosine to the native result
    native_max_abs: float | None = None

    def describe(self) -> str:
        parts = []
        if self.cosine is not None:
            parts.append(f"vs fp32: max abs {self.max_abs_error:.4g}, SQNR {self.sqnr_db:.1f} dB, "
                         f"cosine {self.cosine:.6f}")
        if self.within_lsb is not None:
            parts.append(f"vs native: {100 * self.within_lsb:.2f}% within 1 LSB ({self.lsb:.4g}), "
                         f"max abs {self.native_max_abs:.4g}")
        elif self.native_cosine is not None:
            parts.append(f"vs native: cosine {self.native_cosine:.6f}, max abs {self.native_max_abs:.4g}")
        return "; ".join(parts) or "ran (no reference to compare with)"


@dataclass
class ArtifactCheck:
    path: Path
    format: str
    runtime: str = ""
    status: str = "ok"                     # ok | failed | error | not run
    note: str = ""
    outputs: list[OutputCheck] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    divergence: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "not run")


@dataclass
class VerifyReport:
    artifacts: list[ArtifactCheck]
    reference: str | None
    samples: int

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)

    def lines(self) -> list[str]:
        out = [f"verify: {self.samples} sample(s); fp32 reference: {self.reference or 'none (pass --reference)'}"]
        for check in self.artifacts:
            head = f"{check.path}  [{check.format}, {check.runtime or '-'}]  {check.status.upper()}"
            out.append(head + (f": {check.note}" if check.note else ""))
            for output in check.outputs:
                out.append(f"  {output.name}: {output.describe()}")
            for failure in check.failures:
                out.append(f"  FAIL {failure}")
            if check.divergence:
                out.append(f"  per-op: {check.divergence}")
        failed = sum(not a.passed for a in self.artifacts)
        out.append(f"verify: {len(self.artifacts)} artifact(s), {failed} failed")
        return out


# ---- runners --------------------------------------------------------------------------------------
class _Runner(abc.ABC):
    runtime = ""
    note = ""
    input_specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {}

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by IR name, in IR (NCHW) layout."""

    def intermediates(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """Every value the runtime exposes, by IR name and in IR layout; None when it exposes none."""
        return None


class _NativeRunner(_Runner):
    """The .epk in edgepack's native runtime; where the runtime lacks a kernel the artifact still
    runs, in edgepack.reference on the graph read back from the file (the native kernels' oracle)."""

    def __init__(self, path: Path, threads: int) -> None:
        from .runtime import Session
        self.graph = epk_graph(path)
        self.input_specs = {n: (self.graph.values[n].shape, self.graph.values[n].dtype.numpy) for n in self.graph.inputs}
        try:
            self.session = Session(path, num_threads=threads)
            self.runtime = "edgepack native"
        except UnsupportedError as err:
            self.session = None
            self.runtime = "edgepack.reference"
            self.note = f"native runtime: {err}; ran the artifact's graph in edgepack.reference"

    def run(self, feeds):
        if self.session is not None:
            return self.session.run(feeds)
        from .reference import run_graph
        return run_graph(self.graph, feeds)


class _OnnxRunner(_Runner):
    def __init__(self, path: Path, threads: int) -> None:
        import onnx
        import onnxruntime as ort
        self.runtime = f"ONNX Runtime {ort.__version__}"
        self.model = onnx.load(str(path))
        self.threads = threads
        self.session = self._session(self.model)
        self.input_specs = {i.name: (tuple(i.shape), _ORT_TYPES[i.type]) for i in self.session.get_inputs()}

    def _session(self, model):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = self.threads
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def run(self, feeds):
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(None, dict(feeds))))

    def intermediates(self, feeds):
        from onnx import helper
        model = type(self.model)()
        model.CopyFrom(self.model)
        known = {o.name for o in model.graph.output}
        for node in model.graph.node:
            for name in node.output:
                if name and name not in known:
                    model.graph.output.append(helper.make_empty_tensor_value_info(name))
                    known.add(name)
        session = self._session(model)
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, dict(feeds))))


_ORT_TYPES = {"tensor(float)": np.dtype(np.float32), "tensor(int64)": np.dtype(np.int64),
              "tensor(int32)": np.dtype(np.int32), "tensor(int8)": np.dtype(np.int8),
              "tensor(uint8)": np.dtype(np.uint8), "tensor(bool)": np.dtype(np.bool_),
              "tensor(float16)": np.dtype(np.float16)}


class _TFLiteRunner(_Runner):
    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert import interpreter as litert
        from .backends.tflite import read_metadata
        self.runtime = "LiteRT"
        self.data = path.read_bytes()
        self.threads = threads
        self.interpreter = litert.Interpreter(model_content=self.data, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.metadata = read_metadata(self.data)
        self.input_specs = {d["name"]: (tuple(d["shape"]), np.dtype(d["dtype"]))
                            for d in self.interpreter.get_input_details()}

    @staticmethod
    def _invoke(interpreter, feeds):
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(feeds[detail["name"]]))
        interpreter.invoke()

    def run(self, feeds):
        self._invoke(self.interpreter, feeds)
        return {d["name"]: self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()}

    def intermediates(self, feeds):
        from ai_edge_litert import interpreter as litert
        # the builtin kernels, where every tensor survives (a delegate would hide its partition's)
        interpreter = litert.Interpreter(model_content=self.data, num_threads=self.threads,
                                         experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                                         experimental_preserve_all_tensors=True)
        interpreter.allocate_tensors()
        self._invoke(interpreter, feeds)
        layouts = self.metadata.get("layouts", {})
        skipped = set(self.metadata.get("feature_orders", {}))
        values = {}
        for detail in interpreter.get_tensor_details():
            name = detail["name"]
            if name in skipped or detail["index"] < 0:
                continue
            try:
                array = interpreter.get_tensor(detail["index"])
            except ValueError:           # tensors without data (never written)
                continue
            if name in layouts:
                array = array.transpose(np.argsort(layouts[name]))
                name = name.removesuffix("/stored")
            values[name] = array
        return values


class _CoreMLRunner(_Runner):
    def __init__(self, path: Path, threads: int) -> None:
        from .backends.coreml import describe_package
        self.facts = describe_package(path)     # a corrupt package fails here, on every platform
        self.runtime = "Core ML"
        self.input_specs = {n: (shape, np.dtype(np.int32 if t == "int32" else np.float32))
                            for n, (t, shape) in self.facts.inputs.items()}
        if platform.system() != "Darwin":
            self.model = None
            ops = sum(self.facts.ops.values())
            self.note = (f"cannot run on {platform.system()} (Core ML predicts on macOS only); package read: "
                         f"spec {self.facts.spec_version}, {ops} ops, weights {self.facts.weights_file_bytes} B")
            return
        import coremltools as ct
        self.model = ct.models.MLModel(str(path))

    def run(self, feeds):
        return {k: np.asarray(v) for k, v in self.model.predict(dict(feeds)).items()}


_RUNNERS = {"epk": _NativeRunner, "onnx": _OnnxRunner, "tflite": _TFLiteRunner, "coreml": _CoreMLRunner}


def epk_graph(path: str | Path) -> Graph:
    """The IR graph stored in an .epk (weights included), e.g. to run it in edgepack.reference."""
    from .backends.epk import HEADER_BYTES, SECTION_ENTRY_BYTES, Section, read_epk, unpack_int4
    artifact = read_epk(path)
    data = Path(path).read_bytes()
    count = struct.unpack_from("<I", data, 12)[0]
    weights = next(struct.unpack_from("<IIQQQ", data, HEADER_BYTES + i * SECTION_ENTRY_BYTES)[2]
                   for i in range(count)
                   if struct.unpack_from("<IIQQQ", data, HEADER_BYTES + i * SECTION_ENTRY_BYTES)[0] == Section.WEIGHTS)
    graph = Graph(Path(path).stem)
    names = [t.name for t in artifact.tensors]
    for t in artifact.tensors:
        const = None
        if t.storage:
            raw = data[weights + t.offset: weights + t.offset + t.nbytes]
            elements = int(np.prod(t.shape))
            const = (unpack_int4(raw, elements) if t.dtype is DType.INT4 else np.frombuffer(raw, t.dtype.numpy)
                     ).reshape(t.shape)
        value = graph.add_value(t.name, t.dtype, t.shape, const)
        if t.scales.size:
            value.quant = QuantParams(t.scales, t.zero_points, None if t.quant_axis < 0 else t.quant_axis, t.block_size)
    for op in artifact.ops:
        graph.nodes.append(Node(op.op, op.name, [names[i] if i >= 0 else "" for i in op.inputs],
                                [names[i] for i in op.outputs], dict(op.attrs)))
    graph.inputs = [names[i] for i in artifact.inputs]
    graph.outputs = [names[i] for i in artifact.outputs]
    graph.metadata["manifest"] = artifact.manifest
    return graph


def _expand_manifests(artifacts: Sequence[str | Path]) -> list[Path]:
    """A compile's MODEL.manifest.json stands for the artifacts it lists (each named once)."""
    paths: list[Path] = []
    for artifact in artifacts:
        path = Path(artifact)
        if path.name.endswith(".manifest.json") and path.is_file():
            files = json.loads(path.read_text()).get("files", {})
            paths += [path.parent / entry["path"] for entry in files.values()]
        else:
            paths.append(path)
    return list(dict.fromkeys(paths))


def _format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"'{path}': unknown artifact type (expected {', '.join(FORMATS)})")
    return fmt


# ---- inputs and metrics ---------------------------------------------------------------------------
def load_inputs(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"inputs file '{path}' does not exist")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _samples(arrays: Mapping[str, np.ndarray], specs: Mapping[str, tuple[tuple[int, ...], np.dtype]]
             ) -> list[dict[str, np.ndarray]]:
    """One feed dict per sample: arrays are one sample each, or samples stacked on a leading axis."""
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise ValueError(f"inputs lack {missing} (they have {sorted(arrays)})")
    counts = set()
    for name, (shape, _) in specs.items():
        array = arrays[name]
        if array.shape == tuple(shape):
            counts.add(0)
        elif array.shape[1:] == tuple(shape):
            counts.add(array.shape[0])
        else:
            raise ValueError(f"input '{name}' has shape {array.shape}; the model takes {tuple(shape)} "
                             "(or a stack of those on a leading axis)")
    if len(counts) != 1:
        raise ValueError("inputs mix single samples and stacks of different sizes")
    n = counts.pop()
    if n == 0:
        return [{name: np.asarray(arrays[name]) for name in specs}]
    return [{name: np.asarray(arrays[name][i]) for name in specs} for i in range(n)]


def _cast(feeds: Mapping[str, np.ndarray], specs) -> dict[str, np.ndarray]:
    """Feeds in the dtypes a runtime takes (Core ML has no int64: its integer inputs are int32)."""
    return {name: np.ascontiguousarray(np.asarray(feeds[name]).astype(dtype, copy=False))
            for name, (_, dtype) in specs.items()}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(a @ b / norms)


def _sqnr_db(signal: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((signal.astype(np.float64) - test) ** 2))
    power = float(np.sum(signal.astype(np.float64) ** 2))
    if noise == 0:
        return math.inf
    return 10 * math.log10(power / noise) if power > 0 else -math.inf


def output_lsb(graph: Graph, name: str) -> float | None:
    """The int8 step of a graph output that is the dequantization of an int8 value."""
    for node in graph.nodes:
        if name in node.outputs and node.op == "Dequantize":
            quant = graph.values[node.inputs[0]].quant
            if quant is not None and np.size(quant.scale) == 1:
                return float(np.asarray(quant.scale).reshape(-1)[0])
    return None


def _profile_cosine(manifests: list[dict[str, Any]]) -> float:
    from .profiles import load_profile
    for manifest in manifests:
        if manifest.get("profile"):
            try:
                return load_profile(manifest["profile"]).accuracy.min_cosine
            except (EdgepackError, ValueError, OSError):
                continue
    return DEFAULT_MIN_COSINE


def _reference_runner(reference: str | Path | Graph, threads: int):
    if isinstance(reference, Graph):
        from .reference import run_graph
        return lambda feeds: run_graph(reference, feeds), "the fp32 IR in edgepack.reference"
    path = Path(reference)
    if not path.exists():
        raise FileNotFoundError(f"reference model '{path}' does not exist")
    runner = _OnnxRunner(path, threads)
    return lambda feeds: runner.run(_cast(feeds, runner.input_specs)), f"{path} in {runner.runtime}"


# ---- per-op ---------------------------------------------------------------------------------------
def _first_divergence(graph: Graph, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]) -> str:
    compared = 0
    for node in graph.nodes:
        for name in node.outputs:
            if name not in actual or name not in expected:
                continue
            want, got = expected[name], np.asarray(actual[name])
            if got.shape != want.shape:
                continue
            compared += 1
            if want.dtype in (np.int8, np.uint8):
                diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
                if diff.max(initial=0) > 1:
                    return (f"first divergence at node '{node.name}' ({node.op}), output '{name}': int8 codes up to "
                            f"{int(diff.max())} apart, {int((diff > 1).sum())} of {diff.size} by more than 1")
            elif np.issubdtype(want.dtype, np.floating):
                diff = np.abs(got.astype(np.float64) - want)
                tolerance = 0.01 * float(np.max(np.abs(want), initial=0.0)) + 1e-5
                if diff.max(initial=0) > tolerance:
                    return (f"first divergence at node '{node.name}' ({node.op}), output '{name}': max abs "
                            f"{diff.max():.4g} > {tolerance:.4g} (1% of its range)")
            elif not np.array_equal(got, want):
                return f"first divergence at node '{node.name}' ({node.op}), output '{name}': values differ"
    return f"no divergence over {compared} intermediate values" if compared else "no intermediate values to compare"


# ---- entry point ----------------------------------------------------------------------------------
def verify(artifacts: Sequence[str | Path], inputs: str | Path | Mapping[str, np.ndarray],
           reference: str | Path | Graph | None = None, per_op: bool = False, min_cosine: float | None = None,
           min_lsb_share: float = 0.999, threads: int = 2) -> VerifyReport:
    """Run and compare `artifacts` (see the module doc). `inputs`: an .npz or a dict of arrays, one
    sample per input or samples stacked on a leading axis."""
    arrays = load_inputs(inputs) if isinstance(inputs, (str, Path)) else dict(inputs)
    artifacts = _expand_manifests(artifacts)
    checks: list[ArtifactCheck] = []
    runners: dict[int, _Runner] = {}
    for i, artifact in enumerate(artifacts):
        path = Path(artifact)
        check = ArtifactCheck(path, FORMATS.get(path.suffix.lower(), "?"))
        checks.append(check)
        try:
            check.format = _format_of(path)
            if not path.exists():
                raise FileNotFoundError(f"'{path}' does not exist")
            runner = _RUNNERS[check.format](path, threads)
        except Exception as err:  # noqa: BLE001 - any failure to open an artifact is reported, not raised
            check.status, check.note = "error", f"cannot load: {_message(err)}"
            continue
        runners[i] = runner
        check.runtime, check.note = runner.runtime, runner.note
        if isinstance(runner, _CoreMLRunner) and runner.model is None:
            check.status = "not run"

    native = next((r for r in runners.values() if isinstance(r, _NativeRunner)), None)
    manifests = [native.graph.metadata.get("manifest", {})] if native else []
    manifests += [r.metadata.get("manifest", {}) for r in runners.values() if isinstance(r, _TFLiteRunner)]
    min_cosine = min_cosine if min_cosine is not None else _profile_cosine(manifests)

    specs = next((r.input_specs for r in runners.values()), None)
    if specs is None:
        return VerifyReport(checks, None, 0)
    samples = _samples(arrays, specs)
    run_reference, reference_name = _reference_runner(reference, threads) if reference is not None else (None, None)
    expected = [run_reference(s) for s in samples] if run_reference else None
    baseline = [native.run(_cast(s, native.input_specs)) for s in samples] if native else None

    for i, runner in runners.items():
        check = checks[i]
        if check.status != "ok":
            continue
        try:
            results = [runner.run(_cast(s, runner.input_specs)) for s in samples]
        except Exception as err:  # noqa: BLE001 - a run failure is this artifact's failure
            check.status, check.note = "error", f"run failed: {_message(err)}"
            continue
        _compare(check, results, expected, baseline if runner is not native else None,
                 native.graph if native else None, min_cosine, min_lsb_share)
        if per_op:
            check.divergence = _per_op(runner, native, samples[0])
        if check.failures:
            check.status = "failed"
    return VerifyReport(checks, reference_name, len(samples))


def _compare(check: ArtifactCheck, results, expected, baseline, graph: Graph | None, min_cosine: float,
             min_lsb_share: float) -> None:
    for name in results[0]:
        got = [np.asarray(r[name], np.float64) for r in results]
        output = OutputCheck(name)
        check.outputs.append(output)
        if expected is not None and name in expected[0]:
            want = [np.asarray(e[name], np.float64) for e in expected]
            flat_want, flat_got = np.concatenate([w.ravel() for w in want]), np.concatenate([g.ravel() for g in got])
            output.max_abs_error = float(np.max(np.abs(flat_want - flat_got), initial=0.0))
            output.sqnr_db = _sqnr_db(flat_want, flat_got)
            output.cosine = float(np.mean([_cosine(w, g) for w, g in zip(want, got)]))
            if output.cosine < min_cosine:
                check.failures.append(f"{name}: mean cosine to fp32 {output.cosine:.6f} < {min_cosine}")
        if baseline is not None and name in baseline[0]:
            want = [np.asarray(b[name], np.float64) for b in baseline]
            diff = np.concatenate([np.abs(w - g).ravel() for w, g in zip(want, got)])
            output.native_max_abs = float(diff.max(initial=0.0))
            output.lsb = output_lsb(graph, name) if graph is not None else None
            if output.lsb is not None:
                # compared in the output's int8 grid: within one step (plus float rounding of the step)
                output.within_lsb = float(np.mean(diff <= output.lsb * (1 + 1e-4)))
                if output.within_lsb < min_lsb_share:
                    check.failures.append(f"{name}: {100 * output.within_lsb:.2f}% within 1 LSB of native "
                                          f"< {100 * min_lsb_share:.2f}%")
            else:
                output.native_cosine = float(np.mean([_cosine(w, g) for w, g in zip(want, got)]))
                if output.native_cosine < NATIVE_AGREEMENT_COSINE:
                    check.failures.append(f"{name}: cosine to native {output.native_cosine:.6f} "
                                          f"< {NATIVE_AGREEMENT_COSINE}")


def _per_op(runner: _Runner, native: _NativeRunner | None, sample: Mapping[str, np.ndarray]) -> str:
    if isinstance(runner, _NativeRunner):
        return "the native runtime exposes no intermediate values"
    if native is None:
        return "per-op needs the .epk among the artifacts (its graph is the baseline)"
    actual = runner.intermediates(_cast(sample, runner.input_specs))
    if actual is None:
        return f"{runner.runtime} exposes no intermediate values"
    from .reference import run_graph
    expected = run_graph(native.graph, _cast(sample, native.input_specs), keep=True)
    return _first_divergence(native.graph, expected, actual)


def _message(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
