"""Dead code elimination: drop nodes whose outputs nobody reads."""
from __future__ import annotations

from ..ir import Graph
from .base import PassResult


def run(graph: Graph) -> PassResult:
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(out in live for out in node.outputs):
            kept.append(node)
            live.update(n for n in node.inputs if n)
    modified = len(kept) != len(graph.nodes)
    graph.nodes = kept[::-1]
    graph.prune_values()
    return PassResult(graph, modified)
