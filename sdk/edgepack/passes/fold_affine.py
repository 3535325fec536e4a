"""Fold a per-output-channel affine (Mul by a constant, then/or Add of a constant) into the
preceding Conv or MatMul: this is how inference BatchNormalization disappears (the importer turns it
into Mul + Add), and it also takes the `x * scale + shift` that some exporters write by hand."""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from .base import PassResult, single_consumer


def _per_channel(value, channels: int, rank: int, channel_axis: int) -> np.ndarray | None:
    """The constant as a [channels] vector if it broadcasts along `channel_axis` only, else None."""
    if value is None or not value.is_const or value.const.ndim > rank:
        return None
    shape = (1,) * (rank - value.const.ndim) + value.const.shape
    if any(d != 1 for i, d in enumerate(shape) if i != channel_axis):
        return None
    vec = value.const.reshape(-1).astype(np.float64)
    if vec.size == 1:
        return np.full(channels, vec[0])
    return vec if vec.size == channels else None


def _fold_one(graph: Graph, producer, node, consumers) -> bool:
    if producer.attrs.get("activation", "none") != "none":
        return False
    out = graph.values[producer.outputs[0]]
    if out.dtype.name != "FLOAT32":
        return False
    if producer.op == "Conv":
        channels, axis = graph.values[producer.inputs[1]].shape[0], 1
    else:
        weight = graph.values[producer.inputs[1]]
        if not weight.is_const or weight.const.ndim != 2:
            return False
        channels, axis = weight.shape[1], len(out.shape) - 1
    other = next(n for n in node.inputs if n != producer.outputs[0])
    vec = _per_channel(graph.values[other], channels, len(out.shape), axis)
    if vec is None or graph.values[node.outputs[0]].shape != out.shape:
        return False
    weight = graph.values[producer.inputs[1]]
    if not weight.is_const:
        return False
    bias = graph.values[producer.inputs[2]].const.astype(np.float64) if len(producer.inputs) > 2 and producer.inputs[2] \
        else np.zeros(channels)
    w = weight.const.astype(np.float64)
    if node.op == "Mul":
        if producer.op == "Conv":
            w = w * vec.reshape(-1, 1, 1, 1)
        else:
            w = w * vec.reshape(1, -1)
        bias = bias * vec
    else:
        bias = bias + vec
    producer.inputs[1] = graph.add_const(w.astype(np.float32), f"{producer.name}_w")
    bias_name = graph.add_const(bias.astype(np.float32), f"{producer.name}_b")
    producer.inputs = producer.inputs[:2] + [bias_name]
    # the producer now writes what the folded node wrote
    graph.values.pop(producer.outputs[0])
    producer.outputs = [node.outputs[0]]
    return True


def run(graph: Graph) -> PassResult:
    modified = False
    changed = True
    while changed:
        changed = False
        producers, consumers = graph.producers(), graph.consumers()
        for node in graph.nodes:
            if node.op not in ("Mul", "Add"):
                continue
            for name in node.inputs:
                producer = producers.get(name)
                if producer is None or producer.op not in ("Conv", "MatMul") or not single_consumer(graph, name, consumers):
                    continue
                if _fold_one(graph, producer, node, consumers):
                    graph.nodes.remove(node)
                    changed = modified = True
                    break
            if changed:
                break
    graph.prune_values()
    return PassResult(graph, modified)
