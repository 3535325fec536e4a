"""MatMul followed by Add of a constant vector over the last axis becomes MatMul with a bias input."""
from __future__ import annotations

from ..ir import Graph
from .base import PassResult, single_consumer


def run(graph: Graph) -> PassResult:
    modified = False
    producers, consumers = graph.producers(), graph.consumers()
    for node in list(graph.nodes):
        if node.op != "Add":
            continue
        for i, name in enumerate(node.inputs):
            producer = producers.get(name)
            other = graph.values[node.inputs[1 - i]]
            if (producer is None or producer.op != "MatMul" or len(producer.inputs) > 2
                    or producer.attrs.get("activation", "none") != "none"
                    or not single_consumer(graph, name, consumers) or not other.is_const):
                continue
            n = graph.values[name].shape[-1]
            if other.const.size != n or other.const.shape[-1:] != (n,) or other.dtype != graph.values[name].dtype:
                continue
            if graph.values[node.outputs[0]].shape != graph.values[name].shape:
                continue
            producer.inputs.append(graph.add_const(other.const.reshape(n), f"{producer.name}_bias"))
            graph.values.pop(producer.outputs[0])
            producer.outputs = [node.outputs[0]]
            graph.nodes.remove(node)
            producers, consumers = graph.producers(), graph.consumers()
            modified = True
            break
    graph.prune_values()
    return PassResult(graph, modified)
