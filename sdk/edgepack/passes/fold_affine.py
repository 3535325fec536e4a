"""Fold a per-output-channel affine (Mul by a constant, then/or Add of a constant) into the
preceding Conv or MatMul: this is how inference BatchNormalization disappears (the importer turns it
into Mul + Add), and it also takes the `x * scale + shift` that some exporters write by hand.

A Mul by a constant scalar also folds through the Reshapes and Transposes between it and the Conv or
MatMul, which it commutes with: attention's 1 / sqrt(sqrt(d)) on Q and K, which torch's SDPA export
applies after the head split (12 Muls in all-MiniLM-L6-v2)."""
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


def _fold_scalar_through_movement(graph: Graph, node, producers, consumers) -> bool:
    """node = Mul(x, c) with c a constant scalar and x = Reshape / Transpose chain (each output read
    only by the next) of a Conv / MatMul output: c goes into the producer's weight and bias, and the
    chain's last op writes the Mul's output."""
    scalar = [n for n in node.inputs if graph.values[n].is_const and graph.values[n].const.size == 1]
    if node.op != "Mul" or len(scalar) != 1 or len(node.inputs) != 2 or node.inputs[0] == node.inputs[1]:
        return False
    x = next(n for n in node.inputs if n != scalar[0])
    out = graph.values[node.outputs[0]]
    if graph.values[x].shape != out.shape or out.dtype.name != "FLOAT32":
        return False
    chain, current = [], x
    while current in producers and producers[current].op in ("Reshape", "Transpose") \
            and single_consumer(graph, current, consumers):
        chain.append(producers[current])
        current = producers[current].inputs[0]
    producer = producers.get(current)
    if not chain or producer is None or producer.op not in ("Conv", "MatMul") \
            or not single_consumer(graph, current, consumers) or producer.attrs.get("activation", "none") != "none":
        return False
    weight = graph.values[producer.inputs[1]]
    if not weight.is_const or graph.values[current].dtype.name != "FLOAT32" \
            or producer.op == "MatMul" and weight.const.ndim != 2:
        return False
    c = float(graph.values[scalar[0]].const.reshape(-1)[0])
    w = weight.const.astype(np.float64) * c
    producer.inputs[1] = graph.add_const(w.astype(np.float32), f"{producer.name}_w")
    if len(producer.inputs) > 2 and producer.inputs[2]:
        bias = graph.values[producer.inputs[2]].const.astype(np.float64) * c
        producer.inputs[2] = graph.add_const(bias.astype(np.float32), f"{producer.name}_b")
    # the chain's last op now writes what the Mul wrote
    graph.values.pop(x)
    chain[0].outputs = [node.outputs[0]]
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
            if not changed and node.op == "Mul" and _fold_scalar_through_movement(graph, node, producers, consumers):
                graph.nodes.remove(node)
                changed = modified = True
            if changed:
                break
    graph.prune_values()
    return PassResult(graph, modified)
