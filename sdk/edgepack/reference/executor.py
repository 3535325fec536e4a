"""Run a whole IR graph with the numpy reference ops (float in ops.py, quantized in quantized.py)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from ..ir import DType, Graph, Node
from .ops import run_node
from .quantized import run_quantized


def execute_node(graph: Graph, node: Node, inputs: list[np.ndarray | None]) -> list[np.ndarray]:
    """One node with the semantics its tensors ask for: quantized when any tensor is quantized."""
    shapes = [graph.values[name].shape for name in node.outputs]
    in_values = [graph.values[name] if name else None for name in node.inputs]
    out_values = [graph.values[name] for name in node.outputs]
    quantized = any(v is not None and (v.quant is not None or v.dtype is DType.FLOAT16)
                    for v in in_values + out_values) or node.op in ("Quantize", "Dequantize", "Requantize", "Lut")
    if quantized:
        result = run_quantized(node.op, node.attrs, inputs,
                               [v.quant if v is not None else None for v in in_values],
                               [v.quant for v in out_values], [v.dtype.numpy for v in out_values], shapes)
        if result is not None:
            return result
    return run_node(node.op, node.attrs, inputs, shapes)


def run_graph(graph: Graph, feeds: Mapping[str, np.ndarray], keep: bool = False) -> dict[str, np.ndarray]:
    """Execute `graph` on `feeds`. Returns the graph outputs (every value when `keep`).

    BLAS runs single-threaded here: the reference's small matrix products gain nothing from
    threads, and OpenBLAS's spinning threads slow it down badly on a busy machine."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_graph(graph, feeds, keep)


def _run_graph(graph: Graph, feeds: Mapping[str, np.ndarray], keep: bool) -> dict[str, np.ndarray]:
    env: dict[str, np.ndarray] = {v.name: v.const for v in graph.values.values() if v.is_const}
    for name in graph.inputs:
        if name not in feeds:
            raise ValueError(f"missing input '{name}'")
        value = graph.values[name]
        env[name] = np.asarray(feeds[name]).astype(value.dtype.numpy, copy=False).reshape(value.shape)
    for node in graph.nodes:
        inputs = [env[name] if name else None for name in node.inputs]
        for name, array in zip(node.outputs, execute_node(graph, node, inputs)):
            env[name] = array
    if keep:
        return env
    return {name: env[name] for name in graph.outputs}
