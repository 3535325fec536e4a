"""The public compile API: model + device profile -> .epk artifact."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import __version__
from .backends.epk import MAGIC, assemble, encode_sections
from .frontends import import_onnx
from .ir import Graph
from .passes import FINAL, PIPELINE, attention_bf16, channels_last, fuse_residual, run_passes
from .planner.memory import MemoryPlan, plan_memory
from .planner.search import BudgetCheck, BudgetError, Budgets, Plan, assess, plan_precisions
from .profiles import load_profile
from .quant.calibrate import calibrate, data_hash, load_calibration_data
from .quant.quantize import Decision, quantize_graph
from .quant.recipe import Recipe, assign_precisions


@dataclass
class CompiledModel:
    """What compile() produced: the artifact on disk and the facts about it."""
    path: Path
    graph: Graph
    memory: MemoryPlan
    file_bytes: int
    manifest: dict[str, Any] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    float_graph: Graph | None = None
    plan: Plan | None = None      # precisions, predicted cost and budget checks (edgepack.planner.report)
    artifacts: dict[str, Path] = field(default_factory=dict)   # format -> file written ("epk", "tflite", ...)

    @property
    def arena_bytes(self) -> int:
        return self.memory.arena_bytes

    def __repr__(self) -> str:
        return (f"CompiledModel('{self.path}', {len(self.graph.nodes)} ops, arena {self.arena_bytes} B, "
                f"file {self.file_bytes} B)")


# output formats: name -> file suffix; and the format of each runtime a target lists
FORMATS = {"epk": ".epk", "onnx": ".onnx", "tflite": ".tflite", "coreml": ".mlpackage"}
RUNTIME_FORMATS = {"native": "epk", "onnx": "onnx", "tflite": "tflite", "coreml": "coreml"}


def _is_own_artifact(path: Path, fmt: str) -> bool:
    """Whether an existing output is something edgepack wrote in that format (so it may be replaced)."""
    if fmt == "coreml":
        model = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
        return path.is_dir() and model.is_file() and b"edgepack" in model.read_bytes()
    if path.is_dir():
        return False
    with open(path, "rb") as f:
        head = f.read(8)
    if fmt == "epk":
        return head == MAGIC
    if fmt == "tflite":
        return head[4:8] == b"TFL3"
    import onnx
    try:
        return onnx.load_model(str(path), load_external_data=False).producer_name == "edgepack"
    except Exception:  # noqa: BLE001 - any unreadable file is not ours
        return False


def _check_output_path(output: Path, sources: list[Path], fmt: str = "epk") -> None:
    """Never destroy something the user gave: the model itself, or a file that is not an artifact."""
    for source in sources:
        if source.exists() and output.exists() and output.resolve() == source.resolve():
            raise ValueError(f"output '{output}' is the input model; choose another path")
    if output.exists():
        if output.is_dir() and fmt != "coreml":
            raise ValueError(f"output '{output}' is a directory")
        if not _is_own_artifact(output, fmt):
            raise FileExistsError(f"output '{output}' exists and is not an edgepack artifact; "
                                  "refusing to overwrite it (remove it or choose another path)")
    if not output.parent.exists():
        raise FileNotFoundError(f"output directory '{output.parent}' does not exist")


def _output_paths(output: str | Path | None, format: str | Sequence[str] | None, device) -> list[tuple[str, Path]]:
    """(format, path) of every artifact to write. One format: named, or picked by the output's suffix
    (.tflite, .onnx, .mlpackage; anything else is .epk). Several formats (a list, or "all": each
    runtime of the profile's target): `output` is the common stem."""
    by_suffix = {suffix: fmt for fmt, suffix in FORMATS.items()}
    if format == "all":
        format = [RUNTIME_FORMATS[r] for r in device.target.runtimes]
    if isinstance(format, (list, tuple)):
        unknown = [f for f in format if f not in FORMATS]
        if unknown or not format:
            raise ValueError(f"unknown format(s) {unknown}: choose from {', '.join(FORMATS)}")
        stem = Path(output) if output is not None else Path("model")
        if stem.suffix in by_suffix:
            stem = stem.with_suffix("")
        return [(f, stem.with_name(stem.name + FORMATS[f])) for f in dict.fromkeys(format)]
    if format is None:
        path = Path(output) if output is not None else Path("model.epk")
        return [(by_suffix.get(path.suffix, "epk"), path)]
    if format not in FORMATS:
        raise ValueError(f"unknown format '{format}': choose from {', '.join(FORMATS)}")
    path = Path(output) if output is not None else Path("model" + FORMATS[format])
    if path.suffix in by_suffix and by_suffix[path.suffix] != format:
        raise ValueError(f"output '{path}' has the suffix of format '{by_suffix[path.suffix]}', "
                         f"but format '{format}' was asked for")
    return [(format, path)]


def to_graph(model: Any, input_shapes: Mapping[str, tuple[int, ...]] | None = None,
             example_inputs: Any = None) -> Graph:
    """Import an ONNX path / ModelProto or a torch nn.Module into the IR (before passes)."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix.lower() != ".onnx" and path.exists():
            with open(path, "rb") as f:
                if f.read(8) == MAGIC:
                    raise ValueError(f"'{path}' is already an edgepack artifact; compile takes an ONNX model")
        return import_onnx(path, input_shapes)
    try:
        import onnx
        if isinstance(model, onnx.ModelProto):
            return import_onnx(model, input_shapes)
    except ImportError:  # pragma: no cover - onnx is a hard dependency
        pass
    if type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        from .frontends.torch import import_torch
        if example_inputs is None:
            raise ValueError("compiling an nn.Module needs example_inputs (a tensor, a tuple of tensors, "
                             "or a dict of name -> tensor) to fix the input shapes")
        return import_torch(model, example_inputs)
    raise TypeError(f"cannot compile a {type(model).__name__}: pass an ONNX file path, an onnx.ModelProto "
                    "or a torch.nn.Module")


def _as_recipe(precision: str, recipe: Recipe | dict | str | Path | None) -> Recipe:
    if recipe is None:
        return Recipe(precision)
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict({"precision": precision, **recipe})
    return Recipe.load(recipe)


def quantize_model(graph: Graph, recipe: Recipe, calibration_data: Any = None, progress: bool = True
                   ) -> tuple[Graph, list[Decision], dict[str, Any]]:
    """Apply `recipe` to a float graph, then quantize. Calibration runs when a node asks for static int8
    (it needs it) or, given calibration data, for dynamic int8 (its inputs are smoothed: quant/smooth.py)."""
    precisions, reasons = assign_precisions(graph, recipe)
    facts: dict[str, Any] = {"recipe": recipe.to_dict()}
    if all(p == "fp32" for p in precisions.values()):
        return graph, [Decision(n.name, n.op, "fp32", "fp32", reasons[n.name]) for n in graph.nodes], facts
    stats = None
    static = "int8" in precisions.values()
    if static or "int8-dynamic" in precisions.values() and calibration_data is not None:
        samples = load_calibration_data(calibration_data, graph)
        stats = calibrate(graph, samples, recipe.observer if static else "minmax", progress)
        facts["calibration_sha256"] = data_hash(samples)
        facts["calibration_samples"] = len(samples)
    result = quantize_graph(graph, precisions, stats, recipe.observer)
    for decision in result.decisions:
        if not decision.note:
            decision.note = reasons.get(decision.node, "")
    return result.graph, result.decisions, facts


def _pinned(graph: Graph, recipe: Recipe) -> dict[str, tuple[str, str]]:
    """Nodes a recipe's overrides fix under precision="auto": node -> (precision, why)."""
    precisions, reasons = assign_precisions(graph, recipe)
    return {name: (precisions[name], reason) for name, reason in reasons.items()
            if reason.startswith("recipe override")}


def compile(model: Any, profile: str = "host", input_shapes: Mapping[str, tuple[int, ...]] | None = None,
            example_inputs: Any = None, output: str | Path | None = None, precision: str = "auto",
            recipe: Recipe | dict | str | Path | None = None, calibration_data: Any = None,
            evaluation_data: Any = None, metric: Callable[[list, list], float] | None = None,
            budgets: Mapping[str, Any] | None = None, allow_over_budget: bool = False,
            progress: bool = True, format: str | Sequence[str] | None = None) -> CompiledModel:
    """Compile `model` for the device `profile` into an artifact at `output` (default model.epk).

    model: an ONNX file path, an onnx.ModelProto, or a torch.nn.Module (with example_inputs).
    input_shapes: static shapes for inputs whose shape the model leaves dynamic, e.g. {"x": (1, 3, 224, 224)}.
    precision: "auto" (default): the budget planner picks each node's precision to meet the profile's
        budgets with the least accuracy loss (docs/planner.md); or "fp32" | "fp16" | "int8" |
        "int8-dynamic" | "int4", the default for every node.
    recipe: per-node overrides (a Recipe, a dict, or a YAML path; see edgepack.quant.recipe). Under "auto"
        its overrides pin those nodes and its observer is used.
    calibration_data: an iterable of input dicts or an .npz of stacked inputs; needed for static int8,
        used by int8-dynamic to smooth the MatMuls' inputs (docs/quantization.md).
    evaluation_data: inputs (same forms) to measure sensitivity and the end-to-end metric on; defaults
        to the calibration data.
    metric: metric(outputs, fp32_outputs) -> float, higher is better (lists of output dicts, one per
        sample); its tolerance is budgets["accuracy"]. Default: mean cosine to fp32, tolerance the
        profile's accuracy.min_cosine.
    budgets: overrides of the profile's budgets, e.g. {"ram": "20 MB", "latency": "50 ms",
        "energy": "30 mJ", "accuracy": 0.995}.
    allow_over_budget: write the artifact even when a budget is missed (flagged in the manifest)
        instead of raising BudgetError.
    format: "epk" (the native runtime) | "onnx" | "tflite" | "coreml" (.mlpackage); by default the
        output's suffix picks it. A list of formats, or "all" (every runtime of the profile's target),
        writes one artifact per format beside `output` (a stem) and `<stem>.manifest.json` tying them
        together; `CompiledModel.artifacts` lists them (docs/targets.md).
    """
    started = time.perf_counter()
    device = load_profile(profile)
    limits = Budgets.from_profile(device, budgets)
    if metric is not None and "accuracy" not in (budgets or {}):
        raise ValueError("a custom metric needs its tolerance: pass budgets={'accuracy': LEAST_ACCEPTABLE_VALUE}")
    targets = _output_paths(output, format, device)
    for fmt, path in targets:
        _check_output_path(path, [Path(model)] if isinstance(model, (str, Path)) else [], fmt)
    float_graph = run_passes(to_graph(model, input_shapes, example_inputs), PIPELINE)
    if precision == "auto":
        chosen = _as_recipe("fp32", recipe)
        calibration = load_calibration_data(calibration_data, float_graph) if calibration_data is not None else None
        evaluation = load_calibration_data(evaluation_data, float_graph) if evaluation_data is not None else None
        plan = plan_precisions(float_graph, device, limits, calibration=calibration, evaluation=evaluation,
                               metric=metric, observer=chosen.observer, pinned=_pinned(float_graph, chosen),
                               allow_over_budget=allow_over_budget, progress=progress)
        facts: dict[str, Any] = {"recipe": chosen.to_dict()} if recipe is not None else {}
        if calibration is not None and any(d.used == "int8" for d in plan.decisions):
            facts["calibration_sha256"] = data_hash(calibration)
            facts["calibration_samples"] = len(calibration)
    else:
        chosen = _as_recipe(precision, recipe)
        graph, decisions, facts = quantize_model(float_graph, chosen, calibration_data, progress)
        evaluation = load_calibration_data(evaluation_data, float_graph) if evaluation_data is not None else None
        plan = assess(float_graph, graph, decisions, device, limits, f"explicit precision '{chosen.precision}'"
                      + (" with a recipe" if recipe is not None else ""), evaluation=evaluation, metric=metric,
                      allow_over_budget=allow_over_budget)
    graph = plan.graph = run_passes(plan.graph, FINAL)   # on the quantized graph: what they fuse stays float
    graph = plan.graph = attention_bf16.run(graph, device.isa).graph
    graph = plan.graph = fuse_residual.run(channels_last.run(graph).graph).graph
    memory = plan_memory(graph)
    manifest = {
        "edgepack_version": __version__,
        "source_sha256": graph.metadata.get("source_sha256", ""),
        "profile": device.name,
        "precision": precision if precision == "auto" else chosen.precision,
        **facts,
        "fallbacks": [f"{d.node} ({d.op}): {d.note}" for d in plan.decisions if d.note.startswith("fallback")],
        "inputs": {name: list(graph.values[name].shape) for name in graph.inputs},
        "arena_bytes": memory.arena_bytes,
        "weights_bytes": int(sum(v.nbytes for v in graph.constants())),
        "op_counts": graph.op_counts(),
        **plan.manifest(),
    }
    manifest["compile_seconds"] = round(time.perf_counter() - started, 3)
    sizes: dict[str, int] = {}
    for fmt, path in targets:
        if fmt == "epk":
            data = assemble(encode_sections(graph, memory, manifest))
            storage = BudgetCheck("storage", limits.storage_bytes, len(data))
            if not storage.passed:
                # the plan counted the weights; the headers, op list and manifest tipped the artifact over
                if not allow_over_budget:
                    raise BudgetError(device.name, [storage], "the whole artifact, headers and manifest included",
                                      chosen=True)
                manifest["over_budget"] = manifest["over_budget"] + [storage.describe()]
                data = assemble(encode_sections(graph, memory, manifest))
            _write_atomically(path, data)
            sizes[fmt] = len(data)
        else:
            sizes[fmt] = _write_format(fmt, graph, path, device, manifest)
    plan.artifact_bytes = sizes[targets[0][0]]
    artifacts = {fmt: path for fmt, path in targets}
    if len(targets) > 1:
        _write_set_manifest(targets[0][1].with_suffix(".manifest.json"), manifest, plan.decisions, artifacts)
    return CompiledModel(targets[0][1], graph, memory, sizes[targets[0][0]], manifest, plan.decisions, float_graph,
                         plan, artifacts)


def _write_format(fmt: str, graph: Graph, path: Path, device, manifest: dict[str, Any]) -> int:
    """Write one non-.epk artifact (the backends import their runtimes' packages only when used)."""
    if fmt == "onnx":
        from .backends.onnx import write_onnx
        return write_onnx(graph, path)
    if fmt == "tflite":
        from .backends.tflite import write_tflite
        return write_tflite(graph, path, manifest)
    from .backends.coreml import write_coreml
    return write_coreml(graph, path, device, manifest)


def _artifact_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _write_set_manifest(path: Path, manifest: dict[str, Any], decisions: list[Decision],
                        artifacts: dict[str, Path]) -> None:
    """The JSON that ties the artifacts of one compile together: same source, profile and precisions."""
    record = {
        "edgepack_version": __version__,
        "source_sha256": manifest["source_sha256"],
        "profile": manifest["profile"],
        "precision": manifest["precision"],
        "precisions": {d.node: d.used for d in decisions},
        "files": {fmt: {"path": p.name, "sha256": _artifact_sha256(p)} for fmt, p in artifacts.items()},
    }
    _write_atomically(path, json.dumps(record, indent=1).encode())


def _write_atomically(path: Path, data: bytes) -> None:
    """A failed write never leaves a half artifact at `path`."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def reference_run(compiled: CompiledModel, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the compiled graph in the numpy reference executor (the oracle)."""
    from .reference import run_graph
    return run_graph(compiled.graph, feeds)


def analyze(model: Any, calibration_data: Any = None, evaluation_data: Any = None, precision: str = "int8",
            recipe: Recipe | dict | str | Path | None = None, input_shapes: Mapping[str, tuple[int, ...]] | None = None,
            example_inputs: Any = None, max_evaluation_samples: int = 8, progress: bool = True):
    """Per-node quantization sensitivity (see edgepack.quant.sensitivity): for each node the recipe
    quantizes, the output SQNR with only that node quantized, and the SQNR of its output along the
    fully quantized network. Returns a SensitivityReport (.table(), .to_json(), .write_html())."""
    from .quant.sensitivity import analyze_graph
    chosen = _as_recipe(precision, recipe)
    graph = run_passes(to_graph(model, input_shapes, example_inputs), PIPELINE)
    calibration = load_calibration_data(calibration_data, graph)
    evaluation = (load_calibration_data(evaluation_data, graph) if evaluation_data is not None
                  else calibration)[:max_evaluation_samples]
    return analyze_graph(graph, chosen, calibration, evaluation, progress)
