"""Graph, Node, Value: the edgepack IR. This module knows no file format."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .dtypes import DType
from .ops import SCHEMAS


@dataclass
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point).

    Per tensor when `axis` is None (one scale); per channel along `axis`; block-wise when `block_size`
    is set (scales shaped [channels, blocks] along the last axis)."""
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    block_size: int = 0


@dataclass
class Value:
    name: str
    dtype: DType
    shape: tuple[int, ...]
    const: np.ndarray | None = None     # set for weights and folded constants
    quant: QuantParams | None = None

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.dtype.nbytes(self.numel)

    @property
    def is_const(self) -> bool:
        return self.const is not None


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"{self.name}: {self.op}({', '.join(self.inputs)}) -> {', '.join(self.outputs)}"


class Graph:
    """A static-shape dataflow graph. `nodes` is kept in topological order."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.metadata: dict[str, Any] = {}
        self._uid = itertools.count()

    # ---- construction --------------------------------------------------------------------------
    def add_value(self, name: str, dtype: DType, shape: Iterable[int], const: np.ndarray | None = None) -> Value:
        value = Value(name, DType(dtype), tuple(int(d) for d in shape), const)
        self.values[name] = value
        return value

    def add_const(self, array: np.ndarray, hint: str = "const") -> str:
        array = np.asarray(array, order="C")  # not ascontiguousarray: that turns 0-d into shape (1,)
        name = self.unique_name(hint)
        self.add_value(name, DType.from_numpy(array.dtype), array.shape, array)
        return name

    def unique_name(self, hint: str) -> str:
        name = hint
        while name in self.values:
            name = f"{hint}_{next(self._uid)}"
        return name

    def value(self, name: str) -> Value:
        return self.values[name]

    def without_nodes(self) -> "Graph":
        """A graph with this one's values (shared, as the dict is copied), inputs, outputs and metadata
        but no nodes: what a pass fills with a rewritten node list, leaving this graph unchanged."""
        copy = Graph(self.name)
        copy.values, copy.inputs, copy.outputs = dict(self.values), list(self.inputs), list(self.outputs)
        copy.metadata = dict(self.metadata)
        return copy

    # ---- queries -------------------------------------------------------------------------------
    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        result: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    result.setdefault(name, []).append(node)
        return result

    def constants(self) -> list[Value]:
        return [v for v in self.values.values() if v.is_const]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def replace_uses(self, old: str, new: str) -> None:
        for node in self.nodes:
            node.inputs = [new if name == old else name for name in node.inputs]
        self.outputs = [new if name == old else name for name in self.outputs]

    def prune_values(self) -> None:
        """Drop values no node, input or output refers to."""
        used = set(self.inputs) | set(self.outputs)
        for node in self.nodes:
            used.update(n for n in node.inputs if n)
            used.update(node.outputs)
        self.values = {k: v for k, v in self.values.items() if k in used}

    def verify(self) -> None:
        """Check structural invariants; raise ValueError naming the first broken one."""
        defined = set(self.inputs) | {v.name for v in self.values.values() if v.is_const}
        for name in self.inputs:
            if name not in self.values:
                raise ValueError(f"graph input '{name}' has no value")
        for node in self.nodes:
            schema = SCHEMAS.get(node.op)
            if schema is None:
                raise ValueError(f"node '{node.name}' has op '{node.op}' outside the IR op set")
            lo, hi = schema.inputs
            if not lo <= len(node.inputs) <= hi:
                raise ValueError(f"node '{node.name}' ({node.op}) has {len(node.inputs)} inputs, expected {lo}..{hi}")
            for name in node.inputs:
                if name and name not in defined:
                    raise ValueError(f"node '{node.name}' reads '{name}' before it is defined")
            for key in node.attrs:
                if key not in schema.attrs:
                    raise ValueError(f"node '{node.name}' ({node.op}) has unknown attribute '{key}'")
            for name in node.outputs:
                if name not in self.values:
                    raise ValueError(f"node '{node.name}' output '{name}' has no value")
                defined.add(name)
        for name in self.outputs:
            if name not in defined:
                raise ValueError(f"graph output '{name}' is never produced")

    def __repr__(self) -> str:
        lines = [f"Graph {self.name}: inputs {self.inputs} outputs {self.outputs}"]
        lines += [f"  {node!r}" for node in self.nodes]
        return "\n".join(lines)
