"""Constant folding: evaluate nodes whose inputs are all constant with the numpy reference."""
from __future__ import annotations

from ..ir import Graph
from ..reference import run_node
from .base import PassResult


def run(graph: Graph) -> PassResult:
    kept, modified = [], False
    for node in graph.nodes:
        inputs = [graph.values[n] if n else None for n in node.inputs]
        if node.outputs[0] in graph.outputs or not all(v is None or v.is_const for v in inputs):
            kept.append(node)
            continue
        shapes = [graph.values[n].shape for n in node.outputs]
        arrays = run_node(node.op, node.attrs, [v.const if v is not None else None for v in inputs], shapes)
        for name, array in zip(node.outputs, arrays):
            graph.values[name].const = array
        modified = True
    graph.nodes = kept
    return PassResult(graph, modified)
