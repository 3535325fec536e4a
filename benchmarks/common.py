"""What the benchmark scripts share: the model cache, how each model is built, exported and fed, one
runner per runtime behind the same interface, and the small table / JSON / README helpers.

Importable in both environments (the main one and /opt/litert-venv): numpy is the only import at the top,
everything runtime-specific is imported where it is used.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
DEFAULT_CACHE = Path.home() / ".cache" / "edgepack" / "bench-models"
THREADS = 2  # every runtime gets the same two threads (the machine has two cores)

# Models with a PyTorch source: litert-torch converts PyTorch modules, so only these have .tflite files.
TORCH_MODELS = ("minilm", "digits_cnn", "mobilenet")
# onnx's backend-test CNNs with seeded random weights (edgepack.models.light): ONNX only.
LIGHT_MODELS = ("resnet50", "squeezenet")
ALL_MODELS = ("digits_cnn", "resnet50", "squeezenet", "mobilenet", "minilm")
DIGITS_MODELS = ("digits_cnn", "mobilenet")

# ORT's quantize_dynamic with its default settings, spelled out so the JSON records exactly what ran.
# No quant_pre_process (ORT suggests it; the brief asks for the defaults). QInt8 weights, one scale per
# tensor, full 8-bit range; op types: ORT's IntegerOpsRegistry (Conv, MatMul, Gather, Attention, ...;
# not Gemm, so a Gemm classifier head stays fp32).
ORT_DYNAMIC_OPTIONS = {"per_channel": False, "reduce_range": False, "weight_type": "QInt8",
                       "op_types_to_quantize": None, "extra_options": None}
LITERT_RECIPE = "ai_edge_quantizer.recipe.dynamic_wi8_afp32()"
LIGHT_INPUT_SEED = 1  # the light models' benchmark and calibration inputs: seeded standard normal


# ---- files in the cache ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFiles:
    """Where each format of one model lives in the cache directory."""
    cache: Path
    name: str

    @property
    def onnx(self) -> Path:
        return self.cache / f"{self.name}.onnx"

    @property
    def onnx_int8(self) -> Path:
        return self.cache / f"{self.name}.ort-dynamic-int8.onnx"

    @property
    def tflite(self) -> Path:
        return self.cache / f"{self.name}.tflite"

    @property
    def tflite_int8(self) -> Path:
        return self.cache / f"{self.name}.dynamic-int8.tflite"


def tmp_path(final: Path) -> Path:
    """Two scripts may build the same cached file at once: each writes its own temporary (renamed over
    `final` when complete), so neither ever reads a half-written model."""
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


# ---- PyTorch models (both environments) ------------------------------------------------------------------
def torch_model(name: str, cache: Path):
    """(module in eval mode, example inputs as a tuple of tensors) for a model with a PyTorch source.
    The digits models' trained weights are kept in the cache, so both environments convert the very same
    network whichever of them trained it first."""
    import torch
    if name == "minilm":
        from edgepack.models import minilm
        feeds = minilm_example()
        return minilm.load_minilm(), tuple(torch.from_numpy(feeds[k]) for k in minilm.INPUT_NAMES)
    if name == "digits_cnn":
        from edgepack.models.digits import train_digits_cnn
        model, data = train_digits_cnn(cache_dir=cache)
    elif name == "mobilenet":
        from edgepack.models.mobilenet import train_mobilenet
        model, data = train_mobilenet(cache_dir=cache)
    else:
        raise ValueError(f"'{name}' has no PyTorch source (PyTorch models: {', '.join(TORCH_MODELS)})")
    return model.eval(), (torch.from_numpy(data.x_test[:1]),)


def minilm_example() -> dict[str, np.ndarray]:
    """The sentence edgepack.models.minilm.export_minilm_onnx traces with (batch 1, seq 128)."""
    from edgepack.models import minilm
    return minilm.tokenize(["An example sentence fixes the input shapes."])[0]


# ---- ONNX and ORT quantize_dynamic (main environment) ---------------------------------------------------
def ensure_onnx(name: str, cache: Path) -> Path:
    """The fp32 ONNX model in the cache, exported on first use."""
    files = ModelFiles(cache, name)
    if files.onnx.exists():
        return files.onnx
    import onnx
    cache.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(files.onnx)
    if name == "minilm":
        from edgepack.models.minilm import export_minilm_onnx
        export_minilm_onnx(tmp)
    elif name in LIGHT_MODELS:
        from edgepack.models.light import randomized_light_model
        onnx.save(randomized_light_model(name), tmp)
    else:
        from edgepack.frontends.torch import to_onnx
        module, example = torch_model(name, cache)
        onnx.save(to_onnx(module, example), tmp)
    tmp.replace(files.onnx)
    return files.onnx


def ensure_ort_int8(name: str, cache: Path) -> Path:
    """ORT quantize_dynamic of the fp32 ONNX model with ORT_DYNAMIC_OPTIONS, made on first use."""
    files = ModelFiles(cache, name)
    if files.onnx_int8.exists():
        return files.onnx_int8
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    source = ensure_onnx(name, cache)
    tmp = tmp_path(files.onnx_int8)
    options = dict(ORT_DYNAMIC_OPTIONS, weight_type=QuantType[ORT_DYNAMIC_OPTIONS["weight_type"]])
    # ORT logs a pre-processing hint and, for the opset-9 light models, an automatic opset upgrade
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(source, tmp, **options)
    tmp.replace(files.onnx_int8)
    return files.onnx_int8


def onnx_inputs(path: Path) -> list[str]:
    """The real inputs of an ONNX model (the IR-3 light models also list every initializer as an input)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


# ---- inputs ----------------------------------------------------------------------------------------------
def bench_feeds(name: str, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The one input each model is timed on: a test-split digit, a real sentence, or seeded noise."""
    if name in DIGITS_MODELS:
        from edgepack.models.digits import digits_data
        return {input_names[0]: digits_data().x_test[:1]}
    if name == "minilm":
        from edgepack.models import minilm
        return minilm.tokenize(minilm.sentences(1))[0]
    rng = np.random.default_rng(LIGHT_INPUT_SEED)
    return {input_names[0]: rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}


def calibration_feeds(name: str, input_names: Sequence[str], count: int) -> list[dict[str, np.ndarray]]:
    """Calibration samples, disjoint from what is evaluated: digits from the training split, seeded noise for
    the light models (their weights are random: there is no data distribution), real sentences for MiniLM."""
    if name in DIGITS_MODELS:
        from edgepack.models.digits import digits_data
        x = digits_data().x_train
        return [{input_names[0]: x[i:i + 1]} for i in range(count)]
    if name in LIGHT_MODELS:
        rng = np.random.default_rng(LIGHT_INPUT_SEED + 1)
        return [{input_names[0]: rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(count)]
    if name == "minilm":   # accuracy.py's calibration sentences: those after its 500 evaluated ones
        from edgepack.models import minilm
        return minilm.tokenize(minilm.sentences(500 + count)[500:])
    raise ValueError(f"no calibration set defined for '{name}'")


# ---- runners: run(feeds) -> list of output arrays ------------------------------------------------------
class EdgepackRunner:
    """An .epk artifact in the native runtime. Raises edgepack.UnsupportedError at load when a kernel the
    artifact needs does not exist yet."""
    runtime = "edgepack"

    def __init__(self, path: Path, threads: int = THREADS) -> None:
        import edgepack
        self.session = edgepack.load(path, num_threads=threads)

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(feeds).values())


class OrtRunner:
    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int = THREADS) -> None:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the IR-3 light models carry initializers ORT warns about
        # ORT's pool threads spin-wait after each run by default; in a loop that alternates runtimes that
        # spinning would steal the two cores from whichever runtime runs next, so it is switched off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, dict(feeds))


class LiteRTRunner:
    """A .tflite model in the LiteRT interpreter (XNNPACK delegate, its default). litert-torch names the
    inputs args_0, args_1, ... in the order of the module's forward arguments, which is the ONNX input
    order, and downcasts int64 inputs to int32: feeds are matched by position and cast."""
    runtime = "litert"

    def __init__(self, path: Path, threads: int = THREADS) -> None:
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        self.inputs = sorted(details, key=lambda n: int(n.rsplit("_", 1)[1]))
        self.dtypes = [details[n]["dtype"] for n in self.inputs]
        self.outputs = sorted(self.runner.get_output_details(), key=lambda n: int(n.rsplit("_", 1)[1]))

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        arrays = list(feeds.values())
        result = self.runner(**{n: a.astype(t, copy=False) for n, a, t in zip(self.inputs, arrays, self.dtypes)})
        return [result[n] for n in self.outputs]


RUNNERS = {cls.runtime: cls for cls in (EdgepackRunner, OrtRunner, LiteRTRunner)}


def litert_missing(name: str, cache: Path) -> str | None:
    """Why LiteRT cannot run `name` here, or None when it can."""
    if name not in TORCH_MODELS:
        return ("no LiteRT variant: litert-torch converts PyTorch modules and this model exists only as ONNX "
                "(onnx's backend-test data)")
    if importlib.util.find_spec("ai_edge_litert") is None:
        return "ai-edge-litert is not installed in this environment (pip install -r benchmarks/requirements-litert.txt)"
    files = ModelFiles(cache, name)
    if not (files.tflite.exists() and files.tflite_int8.exists()):
        return (f"no {files.tflite.name} / {files.tflite_int8.name} in {cache}: run "
                "PYTHONPATH=sdk /opt/litert-venv/bin/python benchmarks/convert_litert.py")
    return None


# ---- metrics, tables, results, progress ---------------------------------------------------------------------------
_STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, stamped with the seconds since the script started."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, object]:
    """What the figures were measured on; the load average says how busy the shared machine was."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": datetime.date.today().isoformat(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    found = {}
    for package in ("edgepack", "onnxruntime", "ai-edge-litert", "onnx", "torch", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def update_readme(section: str, text: str, readme: Path = README) -> None:
    """Replace what lies between <!-- section:begin --> and <!-- section:end --> in the README."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    content = readme.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        raise ValueError(f"{readme} has no '{begin}' ... '{end}' markers")
    readme.write_text(pattern.sub(lambda _: f"{begin}\n{text.strip()}\n{end}", content))
