"""Fuse Relu / Clip into the Conv or MatMul that feeds them (the kernel applies it in its epilogue)."""
from __future__ import annotations

from ..ir import Graph
from .base import PassResult, single_consumer


def run(graph: Graph) -> PassResult:
    modified = False
    producers, consumers = graph.producers(), graph.consumers()
    for node in list(graph.nodes):
        if node.op not in ("Relu", "Clip"):
            continue
        producer = producers.get(node.inputs[0])
        if (producer is None or producer.op not in ("Conv", "MatMul")
                or producer.attrs.get("activation", "none") != "none"
                or not single_consumer(graph, node.inputs[0], consumers)
                or graph.values[node.inputs[0]].dtype.name != "FLOAT32"):
            continue
        if node.op == "Relu":
            producer.attrs.update(activation="relu", act_min=0.0, act_max=0.0)
        else:
            producer.attrs.update(activation="clip", act_min=float(node.attrs["min"]), act_max=float(node.attrs["max"]))
        graph.values.pop(producer.outputs[0])
        producer.outputs = [node.outputs[0]]
        graph.nodes.remove(node)
        producers, consumers = graph.producers(), graph.consumers()
        modified = True
    graph.prune_values()
    return PassResult(graph, modified)
