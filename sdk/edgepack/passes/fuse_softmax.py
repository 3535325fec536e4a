"""The attention mask and NaN guard around a Softmax become part of it.

torch's scaled_dot_product_attention exports (all-MiniLM-L6-v2, BERT-style encoders) as

    p = Softmax(Add(scores, mask))            mask broadcasts to the scores (e.g. [1, 1, 128, 128])
    y = Where(IsNaN(p), 0, p)                 IsNaN is Not(Equal(p, p)) in the IR

three passes over the scores besides the Softmax. `run` folds them into one Softmax node: the mask
becomes its `bias` input (added while the kernel finds the row's max and exponentials) and the guard its
`nan_to_zero` attribute (a fully masked row is -inf - -inf = NaN, written as 0). Each half is folded
only when the tensors it removes have no other reader. `unfuse` turns the node back into the separate
ops, for the formats whose runtimes have no such op (backends/onnx.py, tflite.py, coreml.py).
"""
from __future__ import annotations

import numpy as np

from ..ir import DType, Graph, Node
from ..ir.shape_inference import broadcast
from .base import PassResult, single_consumer


def _fold_bias(graph: Graph, softmax: Node, producers: dict, consumers: dict) -> bool:
    add = producers.get(softmax.inputs[0])
    if add is None or add.op != "Add" or not single_consumer(graph, softmax.inputs[0], consumers):
        return False
    out = graph.values[add.outputs[0]]
    for i in (0, 1):
        scores, bias = (graph.values[add.inputs[k]] for k in (i, 1 - i))
        # the bias runs along the row (the last axis): a per-row constant would not change the softmax,
        # and the kernel reads one bias row per row
        if (scores.shape == out.shape and scores.dtype is bias.dtype is DType.FLOAT32
                and len(bias.shape) >= 1 and bias.shape[-1] == out.shape[-1]
                and broadcast(out.shape, bias.shape) == out.shape):
            softmax.inputs = [scores.name, bias.name]
            graph.nodes.remove(add)
            return True
    return False


def _fold_nan_guard(graph: Graph, softmax: Node, consumers: dict) -> bool:
    p = softmax.outputs[0]
    readers = consumers.get(p, [])
    if p in graph.outputs or len({id(n) for n in readers}) != 2:
        return False
    equal = next((n for n in readers if n.op == "Equal" and n.inputs == [p, p]), None)
    where = next((n for n in readers if n.op == "Where"), None)
    if equal is None or where is None or not single_consumer(graph, equal.outputs[0], consumers):
        return False
    (negate,) = consumers[equal.outputs[0]]
    if negate.op != "Not" or not single_consumer(graph, negate.outputs[0], consumers):
        return False
    zero = graph.values[where.inputs[1]]
    if (where.inputs[0] != negate.outputs[0] or where.inputs[2] != p or not zero.is_const
            or zero.dtype is not DType.FLOAT32 or zero.const.size != 1
            or zero.const.reshape(()) != 0 or np.signbit(zero.const.reshape(()))
            or graph.values[where.outputs[0]].shape != graph.values[p].shape):
        return False
    softmax.attrs["nan_to_zero"] = 1
    softmax.outputs = [where.outputs[0]]
    for node in (equal, negate, where):
        graph.nodes.remove(node)
    return True


def run(graph: Graph) -> PassResult:
    modified = False
    for softmax in [n for n in graph.nodes if n.op == "Softmax"]:
        x = graph.values[softmax.inputs[0]]
        if softmax.attrs["axis"] != len(x.shape) - 1 or x.dtype is not DType.FLOAT32:
            continue
        if len(softmax.inputs) == 1 and _fold_bias(graph, softmax, graph.producers(), graph.consumers()):
            modified = True
        if not softmax.attrs.get("nan_to_zero", 0) and _fold_nan_guard(graph, softmax, graph.consumers()):
            modified = True
    graph.prune_values()
    return PassResult(graph, modified)


def unfuse(graph: Graph) -> Graph:
    """`graph` with every fused Softmax written as Add, Softmax, Equal, Not and Where again; `graph`
    itself when it has none. The input graph is not changed (the copy shares its values)."""
    fused = [n for n in graph.nodes if n.op == "Softmax" and (len(n.inputs) > 1 or n.attrs.get("nan_to_zero", 0))]
    if not fused:
        return graph
    separate = graph.without_nodes()
    for node in graph.nodes:
        if node not in fused:
            separate.nodes.append(node)
            continue
        x, out = separate.values[node.inputs[0]], node.outputs[0]
        attrs = {"axis": node.attrs["axis"]}
        source = x.name
        if len(node.inputs) > 1 and node.inputs[1]:
            source = separate.unique_name(f"{out}/biased")
            separate.add_value(source, x.dtype, x.shape)
            separate.nodes.append(Node("Add", f"{node.name}/bias", [x.name, node.inputs[1]], [source]))
        if not node.attrs.get("nan_to_zero", 0):
            separate.nodes.append(Node("Softmax", node.name, [source], [out], attrs))
            continue
        p, same, isnan = (separate.unique_name(f"{out}/{hint}") for hint in ("softmax", "equal", "isnan"))
        separate.add_value(p, x.dtype, x.shape)
        separate.add_value(same, DType.BOOL, x.shape)
        separate.add_value(isnan, DType.BOOL, x.shape)
        zero = separate.add_const(np.zeros((), np.float32), f"{node.name}/zero")
        separate.nodes += [Node("Softmax", node.name, [source], [p], attrs),
                       Node("Equal", f"{node.name}/isnan", [p, p], [same]),
                       Node("Not", f"{node.name}/isnan/not", [same], [isnan]),
                       Node("Where", f"{node.name}/nan_to_zero", [isnan, zero, p], [out])]
    return separate
