"""Run a whole IR graph with the numpy reference ops."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..ir import Graph
from .ops import run_node


def run_graph(graph: Graph, feeds: Mapping[str, np.ndarray], keep: bool = False) -> dict[str, np.ndarray]:
    """Execute `graph` on `feeds`. Returns the graph outputs (every value when `keep`)."""
    env: dict[str, np.ndarray] = {v.name: v.const for v in graph.values.values() if v.is_const}
    for name in graph.inputs:
        if name not in feeds:
            raise ValueError(f"missing input '{name}'")
        value = graph.values[name]
        env[name] = np.asarray(feeds[name]).astype(value.dtype.numpy, copy=False).reshape(value.shape)
    for node in graph.nodes:
        inputs = [env[name] if name else None for name in node.inputs]
        shapes = [graph.values[name].shape for name in node.outputs]
        for name, array in zip(node.outputs, run_node(node.op, node.attrs, inputs, shapes)):
            env[name] = array
    if keep:
        return env
    return {name: env[name] for name in graph.outputs}
