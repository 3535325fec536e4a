"""Calibration: run the float graph on representative inputs and record what each tensor does."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..ir import DType, Graph
from ..reference import run_graph
from .observers import TensorStats, needs_histogram


class CalibrationError(ValueError):
    """The calibration data does not fit the model; the message says how."""


def _check_sample(graph: Graph, sample: Mapping[str, Any], index: int) -> dict[str, np.ndarray]:
    if not isinstance(sample, Mapping):
        raise CalibrationError(f"calibration sample {index} is a {type(sample).__name__}, expected a dict "
                               "of input name -> array")
    expected = set(graph.inputs)
    if set(sample) != expected:
        raise CalibrationError(f"calibration sample {index} has inputs {sorted(sample)}, the model takes "
                               f"{sorted(expected)}")
    out = {}
    for name in graph.inputs:
        value = graph.values[name]
        array = np.asarray(sample[name])
        if array.shape != value.shape:
            raise CalibrationError(f"calibration sample {index}, input '{name}': shape {array.shape}, "
                                   f"the model takes {value.shape}")
        want = value.dtype.numpy
        same_kind = np.issubdtype(array.dtype, np.floating) == np.issubdtype(want, np.floating)
        if not same_kind or array.dtype == np.bool_ and want != np.bool_:
            raise CalibrationError(f"calibration sample {index}, input '{name}': dtype {array.dtype}, "
                                   f"the model takes {want}")
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise CalibrationError(f"calibration sample {index}, input '{name}' contains NaN or Inf")
        out[name] = array.astype(want, copy=False)
    return out


def load_calibration_data(data: Any, graph: Graph) -> list[dict[str, np.ndarray]]:
    """Samples from an iterable of input dicts, or an .npz whose arrays are the inputs stacked on a
    leading sample axis (N, *input shape). Each sample is validated against the graph's inputs."""
    if data is None:
        raise CalibrationError("static int8 needs calibration data: pass calibration_data= (an iterable of "
                               "input dicts, or an .npz path) or --calibration data.npz")
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.exists():
            raise CalibrationError(f"calibration file '{path}' does not exist")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        missing = sorted(set(graph.inputs) - set(arrays))
        if missing:
            raise CalibrationError(f"calibration file '{path}' has arrays {sorted(arrays)}, missing inputs {missing}")
        counts = {name: arrays[name].shape[0] if arrays[name].ndim == len(graph.values[name].shape) + 1 else None
                  for name in graph.inputs}
        if any(c is None for c in counts.values()) or len(set(counts.values())) != 1:
            shapes = {name: arrays[name].shape for name in graph.inputs}
            raise CalibrationError(f"calibration file '{path}': each input must be stacked as (N, *shape) with "
                                   f"the same N; got {shapes}")
        data = [{name: arrays[name][i] for name in graph.inputs} for i in range(next(iter(counts.values())))]
    samples = [_check_sample(graph, sample, i) for i, sample in enumerate(data)]
    if not samples:
        raise CalibrationError("the calibration set is empty")
    return samples


def data_hash(samples: list[dict[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for sample in samples:
        for name in sorted(sample):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(sample[name]).tobytes())
    return digest.hexdigest()


def _progress(total: int, description: str, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=True)


def calibrate(graph: Graph, samples: list[dict[str, np.ndarray]], observer: str = "minmax",
              progress: bool = True) -> dict[str, TensorStats]:
    """Statistics of every float run-time tensor over `samples`."""
    tracked = [name for name, v in graph.values.items() if not v.is_const and v.dtype is DType.FLOAT32]
    stats = {name: TensorStats() for name in tracked}
    passes = 2 if needs_histogram(observer) else 1
    with _progress(len(samples) * passes, "calibrating", progress) as bar:
        task = bar.add_task("calibrating", total=len(samples) * passes)
        for sample in samples:
            env = run_graph(graph, sample, keep=True)
            for name in tracked:
                stats[name].update_range(env[name])
            bar.advance(task)
        if passes == 2:
            for s in stats.values():
                s.start_histogram()
            for sample in samples:
                env = run_graph(graph, sample, keep=True)
                for name in tracked:
                    stats[name].update_histogram(env[name])
                bar.advance(task)
    bad = [name for name, s in stats.items() if s.has_nonfinite]
    if bad:
        raise CalibrationError(f"the model produced NaN/Inf on the calibration data in {bad[:5]}"
                               f"{' ...' if len(bad) > 5 else ''}")
    return stats
