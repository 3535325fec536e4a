"""The pass contract: a pass takes a Graph and returns it with whether it changed anything."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..ir import Graph


@dataclass
class PassResult:
    graph: Graph
    modified: bool


Pass = Callable[[Graph], PassResult]


def run_passes(graph: Graph, passes: Iterable[Pass], verify: bool = True, max_rounds: int = 4) -> Graph:
    """Run `passes` in order, repeating the list until none changes the graph."""
    passes = list(passes)
    for _ in range(max_rounds):
        changed = False
        for p in passes:
            result = p(graph)
            graph, changed = result.graph, changed or result.modified
            if verify:
                graph.verify()
        if not changed:
            break
    return graph


def single_consumer(graph: Graph, name: str, consumers: dict) -> bool:
    """True when `name` feeds exactly one node and is not a graph output."""
    return len(consumers.get(name, [])) == 1 and name not in graph.outputs
