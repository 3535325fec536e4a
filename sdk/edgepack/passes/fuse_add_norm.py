"""The residual Add before a LayerNormalization becomes part of it: LayerNorm(x + r), as every post-LN
transformer block writes it (h = LayerNorm(x + sublayer(x))). The native kernel adds r to x as it
reads the row for the mean, stores the sum in the output and normalises it there, which saves the Add's
pass over both tensors (12 Adds in all-MiniLM-L6-v2). The fused node computes the same floats: the
float32 sum, then the normalisation.

This runs on the final graph (after quantization: both addends and the node must be float); `unfuse`
writes the Add back for the formats whose LayerNorm has no such input (backends/onnx.py, tflite.py,
coreml.py)."""
from __future__ import annotations

from ..ir import DType, Graph, Node
from .base import PassResult, single_consumer


def run(graph: Graph) -> PassResult:
    producers, consumers = graph.producers(), graph.consumers()
    modified = False
    for norm in [n for n in graph.nodes if n.op == "LayerNormalization" and len(n.inputs) <= 3]:
        add = producers.get(norm.inputs[0])
        if add is None or add.op != "Add" or not single_consumer(graph, norm.inputs[0], consumers):
            continue
        x, r, out = (graph.values[n] for n in (add.inputs[0], add.inputs[1], add.outputs[0]))
        if not (x.shape == r.shape == out.shape and x.dtype is r.dtype is out.dtype is DType.FLOAT32):
            continue   # a broadcast Add (a bias) stays: the kernel adds element for element
        norm.inputs = [add.inputs[0], norm.inputs[1], norm.inputs[2] if len(norm.inputs) > 2 else "", add.inputs[1]]
        graph.nodes.remove(add)
        modified = True
    if modified:
        graph.prune_values()
    return PassResult(graph, modified)


def unfuse(graph: Graph) -> Graph:
    """`graph` with each fused residual written as an Add before its LayerNormalization again; `graph`
    itself when there is none. The input graph is not changed (the copy shares its values)."""
    if not any(n.op == "LayerNormalization" and len(n.inputs) > 3 and n.inputs[3] for n in graph.nodes):
        return graph
    separate = graph.without_nodes()
    for node in graph.nodes:
        if node.op != "LayerNormalization" or len(node.inputs) <= 3 or not node.inputs[3]:
            separate.nodes.append(node)
            continue
        x = separate.values[node.inputs[0]]
        total = separate.unique_name(f"{node.name}/residual_sum")
        separate.add_value(total, x.dtype, x.shape)
        separate.nodes.append(Node("Add", f"{node.name}/residual", [node.inputs[0], node.inputs[3]], [total]))
        inputs = [total] + node.inputs[1:3]
        while len(inputs) > 2 and not inputs[-1]:
            inputs.pop()
        separate.nodes.append(Node(node.op, node.name, inputs, list(node.outputs), dict(node.attrs)))
    return separate
