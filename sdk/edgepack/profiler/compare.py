"""The same model timed in ONNX Runtime and LiteRT, in this process on the host, so a report shows the
runtimes side by side. Each call is timed the way the local runner times Session.run: inputs in, outputs
out, as a Python caller sees it."""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import EdgepackError
from ..runtime import TensorSpec
from .runners import random_inputs
from .stats import LatencyStats, summarize

LITERT_PACKAGES = "pip install ai-edge-litert (or the older tflite-runtime)"


class CompareError(EdgepackError):
    """A comparison runtime is missing or cannot run the model."""


@dataclass(frozen=True)
class Comparison:
    runtime: str                 # "onnxruntime 1.20.1", "LiteRT (ai_edge_litert 1.2.0)"
    model: str
    threads: int | None
    latencies_s: list[float]
    stats: LatencyStats

    def as_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "model": self.model, "threads": self.threads,
                "latency": self.stats.as_dict(), "samples_s": self.latencies_s}


def _time(call: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    latencies = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            started = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - started)
    finally:
        if gc_was_enabled:
            gc.enable()
    return latencies


def _resolve_shape(name: str, shape: Sequence[Any], known: Mapping[str, tuple[int, ...]],
                   runtime: str) -> tuple[int, ...]:
    """A static shape for an input that may have dynamic dimensions, from the artifact's input of the same name."""
    if all(isinstance(d, int) and d > 0 for d in shape):
        return tuple(int(d) for d in shape)
    fixed = known.get(name)
    if fixed is None or len(fixed) != len(shape):
        raise CompareError(f"{runtime}: input '{name}' has the dynamic shape {list(shape)} and the artifact has no "
                           f"input of that name and rank to fix it (artifact inputs: {dict(known)})")
    return fixed


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def time_onnx(model: str | Path, runs: int, warmup: int, threads: int | None, seed: int = 0,
              input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Comparison:
    """Time `model` in ONNX Runtime (CPU provider) with random inputs drawn as the runners draw them.
    threads: intra-op threads (None or 0: ONNX Runtime's default)."""
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model '{path}' does not exist")
    onnxruntime = require_onnxruntime()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:   # onnxruntime raises its own exception types for unloadable models
        raise CompareError(f"ONNX Runtime cannot load '{path}': {error}") from None
    specs = []
    for spec in session.get_inputs():
        if spec.type not in _ORT_TYPES:
            raise CompareError(f"ONNX Runtime: input '{spec.name}' has type {spec.type}, which the comparison "
                               f"cannot fill (supported: {', '.join(_ORT_TYPES)})")
        shape = _resolve_shape(spec.name, spec.shape, input_shapes or {}, "ONNX Runtime")
        specs.append(TensorSpec(spec.name, shape, np.dtype(_ORT_TYPES[spec.type])))
    feeds = random_inputs(specs, seed)
    latencies = _time(lambda: session.run(None, feeds), runs, warmup)
    return Comparison(f"onnxruntime {onnxruntime.__version__}", str(path), threads, latencies, summarize(latencies))


def require_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise CompareError("--compare-onnx needs ONNX Runtime, which is not installed: pip install onnxruntime") \
            from None
    return onnxruntime


def litert_interpreter() -> tuple[type, str]:
    """LiteRT's Interpreter class and a name for reports: ai_edge_litert, else tflite_runtime."""
    try:
        from ai_edge_litert import interpreter as litert
        import ai_edge_litert
        return litert.Interpreter, f"LiteRT (ai_edge_litert {getattr(ai_edge_litert, '__version__', '?')})"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as tflite
        import tflite_runtime
        return tflite.Interpreter, f"LiteRT (tflite_runtime {getattr(tflite_runtime, '__version__', '?')})"
    except ImportError:
        raise CompareError(f"--compare-tflite needs LiteRT, which is not installed: {LITERT_PACKAGES}") from None


def time_tflite(model: str | Path, runs: int, warmup: int, threads: int | None, seed: int = 0,
                input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Comparison:
    """Time a .tflite model in LiteRT: set the inputs, invoke, read the outputs."""
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"TFLite model '{path}' does not exist")
    interpreter_class, name = litert_interpreter()
    try:
        interpreter = interpreter_class(model_path=str(path), num_threads=threads or None)
    except (ValueError, RuntimeError) as error:
        raise CompareError(f"LiteRT cannot load '{path}': {error}") from None
    inputs = interpreter.get_input_details()
    known = input_shapes or {}
    for spec in inputs:
        shape = _resolve_shape(spec["name"], [int(d) for d in spec["shape_signature"]] if "shape_signature" in spec
                               else list(spec["shape"]), known, "LiteRT")
        if tuple(spec["shape"]) != shape:
            interpreter.resize_tensor_input(spec["index"], shape)
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    feeds = random_inputs([TensorSpec(s["name"], tuple(int(d) for d in s["shape"]), np.dtype(s["dtype"]))
                           for s in inputs], seed)
    outputs = interpreter.get_output_details()

    def call() -> list[np.ndarray]:
        for spec in inputs:
            interpreter.set_tensor(spec["index"], feeds[spec["name"]])
        interpreter.invoke()
        return [interpreter.get_tensor(spec["index"]) for spec in outputs]

    latencies = _time(call, runs, warmup)
    return Comparison(name, str(path), threads, latencies, summarize(latencies))
