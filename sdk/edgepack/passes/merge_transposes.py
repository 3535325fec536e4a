"""Merge two Transposes with only unit-axis Reshapes between them into one Transpose (and a Reshape,
which is free: it aliases its input). torch's SDPA export writes K's head split and K^T as
Transpose (0, 2, 1, 3), Reshape [h, t, d], Transpose (0, 2, 1), Reshape [1, h, d, t]: one copy of K
per layer instead of two."""
from __future__ import annotations

from ..ir import Graph, Node
from .base import PassResult, single_consumer


def _non_unit(shape) -> list[int]:
    return [d for d in shape if d != 1]


def _merge(graph: Graph, last: Node, producers, consumers) -> tuple[list[Node], list[Node]] | None:
    """(the nodes that replace the chain, the chain) for the chain ending at Transpose `last` (Transpose,
    Reshapes that only add or drop unit axes, Transpose; each output read only by the next), or None
    when there is no such chain."""
    chain = [last]
    current = last.inputs[0]
    while True:
        node = producers.get(current)
        if node is None or not single_consumer(graph, current, consumers):
            return None
        if node.op == "Transpose":
            first = node
            break
        if node.op != "Reshape" or _non_unit(graph.values[node.inputs[0]].shape) != _non_unit(graph.values[current].shape):
            return None
        chain.append(node)
        current = node.inputs[0]
    chain.append(first)
    x = first.inputs[0]
    x_shape = graph.values[x].shape
    # Follow each axis of x (labelled by its index) through the chain; unit axes may appear or vanish.
    labels = [first.attrs["perm"][i] for i in range(len(x_shape))]
    shape = [x_shape[a] for a in labels]
    for node in reversed(chain[1:-1]):       # the Reshapes, in graph order
        out_shape = graph.values[node.outputs[0]].shape
        kept = iter(label for label, d in zip(labels, shape) if d != 1)
        labels = [next(kept) if d != 1 else None for d in out_shape]
        shape = list(out_shape)
    labels = [labels[p] for p in last.attrs["perm"]]
    out_shape = graph.values[last.outputs[0]].shape
    order = [label for label, d in zip(labels, out_shape) if d != 1]
    perm = [a for a, d in enumerate(x_shape) if d == 1] + order    # unit axes first, as batch axes
    merged_shape = tuple(x_shape[a] for a in perm)
    out = last.outputs[0]
    if perm == list(range(len(x_shape))):
        return [Node("Reshape", last.name, [x], [out])], chain
    if merged_shape == tuple(out_shape):
        return [Node("Transpose", last.name, [x], [out], {"perm": perm})], chain
    moved = graph.unique_name(f"{out}/transposed")
    graph.add_value(moved, graph.values[x].dtype, merged_shape)
    return [Node("Transpose", last.name, [x], [moved], {"perm": perm}),
            Node("Reshape", f"{last.name}/reshape", [moved], [out])], chain


def run(graph: Graph) -> PassResult:
    modified = False
    changed = True
    while changed:
        changed = False
        producers, consumers = graph.producers(), graph.consumers()
        for index, node in enumerate(graph.nodes):
            if node.op != "Transpose":
                continue
            merged = _merge(graph, node, producers, consumers)
            if merged is None:
                continue
            replacement, chain = merged
            removed = {id(n) for n in chain}
            graph.nodes[index:index + 1] = replacement   # `last` itself, at its place: its inputs exist there
            graph.nodes = [n for n in graph.nodes if id(n) not in removed]
            changed = modified = True
            break
    if modified:
        graph.prune_values()
    return PassResult(graph, modified)

