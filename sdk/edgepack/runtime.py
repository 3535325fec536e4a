"""Run .epk artifacts in the native runtime (edgepack._native)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from . import _native


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def __repr__(self) -> str:
        return f"TensorSpec({self.name!r}, shape={self.shape}, dtype={self.dtype})"


class Session:
    """An artifact loaded in the native runtime. `run` may be called from several threads at once;
    the GIL is released while the graph runs."""

    def __init__(self, path: str | Path, num_threads: int | None = None) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"artifact '{path}' does not exist")
        self.path = path
        self._native = _native.Session(str(path), 0 if num_threads is None else int(num_threads))
        self.inputs = [TensorSpec(i["name"], tuple(i["shape"]), np.dtype(i["dtype"])) for i in self._native.inputs]
        self.outputs = [TensorSpec(o["name"], tuple(o["shape"]), np.dtype(o["dtype"])) for o in self._native.outputs]
        self._run_feeds = self._native.run_feeds

    @property
    def arena_bytes(self) -> int:
        return self._native.arena_bytes

    @property
    def weights_bytes(self) -> int:
        """Bytes of the artifact's weights section (mmap'd, used in place)."""
        return self._native.weights_bytes

    @property
    def num_threads(self) -> int:
        return self._native.num_threads

    @property
    def manifest(self) -> dict:
        return dict(self._native.manifest)

    @property
    def ops(self) -> list[tuple[str, str]]:
        """(node name, op type) in execution order."""
        return list(self._native.ops)

    def _arrays(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if not isinstance(feeds, Mapping):
            raise TypeError(f"run() takes a dict of input name -> array, got {type(feeds).__name__}")
        expected = {spec.name for spec in self.inputs}
        unknown = sorted(set(feeds) - expected)
        missing = sorted(expected - set(feeds))
        if unknown or missing:
            raise ValueError(f"wrong input names: expected {sorted(expected)}, got {sorted(feeds)}"
                             + (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else ""))
        arrays = []
        for spec in self.inputs:
            array = np.asarray(feeds[spec.name])
            if array.shape != spec.shape:
                raise ValueError(f"input '{spec.name}': expected shape {spec.shape}, got {array.shape}")
            if array.dtype != spec.dtype:
                raise ValueError(f"input '{spec.name}': expected dtype {spec.dtype}, got {array.dtype}")
            arrays.append(np.ascontiguousarray(array))
        return arrays

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The native fast path takes a dict of exactly the inputs as C-contiguous arrays of the right
        # shapes and dtypes, checks that in C++ and runs; anything else (other mappings, lists, wrong
        # names or shapes...) returns None and goes through _arrays(), which converts or explains.
        outputs = self._run_feeds(feeds)
        if outputs is None:
            outputs, _ = self._native.run(self._arrays(feeds), False)
            outputs = {spec.name: out for spec, out in zip(self.outputs, outputs)}
        return outputs

    def run_profiled(self, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[float]]:
        """Like run(), plus the seconds each op took (in execution order, see `ops`)."""
        outputs, op_seconds = self._native.run(self._arrays(feeds), True)
        return {spec.name: out for spec, out in zip(self.outputs, outputs)}, list(op_seconds)

    def __repr__(self) -> str:
        if not hasattr(self, "outputs"):   # __init__ raised (a traceback may still show the object)
            return f"Session('{getattr(self, 'path', '?')}', not loaded)"
        return f"Session('{self.path}', inputs={self.inputs}, outputs={self.outputs})"


def load(path: str | Path, num_threads: int | None = None) -> Session:
    """Load an .epk artifact. `num_threads` defaults to one per core."""
    return Session(path, num_threads)
