"""Dynamic int8 MatMuls that read the same input become one MatMul with several outputs: attention's
Q, K and V projections of a transformer layer (all-MiniLM-L6-v2: 3 x [384, 384] -> one [384, 1152]).
The input is quantized once instead of three times, the pool is woken once, and one GEMM three times
as wide runs closer to the kernel's peak. The merged node concatenates the weights (and their
per-column scales and biases) and carries `split`, the width of each output; each output is the
columns of its own MatMul, computed as before.

Merged are MatMuls of one float input and the same input scale (the folded smoothing, quant/smooth.py),
each with a 2-D int8 weight quantized per column, no activation and no perms, whose widths are whole
multiples of 32 (a column panel of every native build: no tile straddles two outputs). Either all of
them have a bias or none. This runs on the final graph; `unmerge` writes the separate MatMuls back for
the other formats (backends/onnx.py, tflite.py, coreml.py)."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, QuantParams
from ..quant.smooth import is_dynamic_matmul
from .base import PassResult

WIDTH = 32
MAX_OUTPUTS = 8    # the native kernel's limit


def _mergeable(graph: Graph, node: Node) -> bool:
    if not is_dynamic_matmul(graph, node) or "split" in node.attrs or len(node.outputs) != 1 \
            or node.attrs.get("activation", "none") != "none" or any(k.endswith("_perm") for k in node.attrs):
        return False
    w = graph.values[node.inputs[1]]
    return (w.is_const and len(w.shape) == 2 and w.shape[1] % WIDTH == 0 and w.quant.axis in (1, -1)
            and w.quant.scale.size == w.shape[1] and not np.any(w.quant.zero_point))


def _key(node: Node) -> tuple:
    """What merged MatMuls share: the input, the input scale, whether there is a bias."""
    inputs = node.inputs + [""] * (4 - len(node.inputs))
    return inputs[0], inputs[3], bool(inputs[2])


def run(graph: Graph) -> PassResult:
    groups: dict[tuple, list[Node]] = {}
    for node in graph.nodes:
        if _mergeable(graph, node):
            groups.setdefault(_key(node), []).append(node)
    merged = False
    for (a, scale, has_bias), nodes in groups.items():
        for first in range(0, len(nodes), MAX_OUTPUTS):
            chunk = nodes[first:first + MAX_OUTPUTS]
            if len(chunk) > 1:
                _merge(graph, chunk, a, scale, has_bias)
                merged = True
    if merged:
        graph.prune_values()
    return PassResult(graph, merged)


def _merge(graph: Graph, nodes: list[Node], a: str, scale: str, has_bias: bool) -> None:
    head = nodes[0]
    weights = [graph.values[n.inputs[1]] for n in nodes]
    w = graph.add_const(np.concatenate([v.const for v in weights], axis=1), f"{head.name}/merged_w")
    graph.values[w].quant = QuantParams(np.concatenate([v.quant.scale.reshape(-1) for v in weights]),
                                        np.concatenate([v.quant.zero_point.reshape(-1) for v in weights]), axis=1)
    inputs = [a, w]
    if has_bias:
        inputs.append(graph.add_const(np.concatenate([graph.values[n.inputs[2]].const for n in nodes]),
                                      f"{head.name}/merged_b"))
    if scale:
        inputs += [""] * (3 - len(inputs)) + [scale]
    attrs = {k: v for k, v in head.attrs.items()}
    attrs["split"] = [v.shape[1] for v in weights]
    # In place of the first: every output's readers come after their own MatMul, hence after the first.
    graph.nodes[graph.nodes.index(head)] = Node("MatMul", head.name, inputs, [n.outputs[0] for n in nodes], attrs)
    for node in nodes[1:]:
        graph.nodes.remove(node)


def unmerge(graph: Graph) -> Graph:
    """`graph` with each split MatMul written as one MatMul per output again; `graph` itself when there
    is none. The input graph is not changed (the copy shares its values)."""
    if not any(n.op == "MatMul" and "split" in n.attrs for n in graph.nodes):
        return graph
    separate = graph.without_nodes()
    for node in graph.nodes:
        if node.op != "MatMul" or "split" not in node.attrs:
            separate.nodes.append(node)
            continue
        w = separate.values[node.inputs[1]]
        b = separate.values[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else None
        attrs = {k: v for k, v in node.attrs.items() if k != "split"}
        start = 0
        for j, (out, width) in enumerate(zip(node.outputs, node.attrs["split"])):
            cols = slice(start, start + width)
            start += width
            wj = separate.add_const(w.const[:, cols], f"{node.name}/w{j}")
            separate.values[wj].quant = QuantParams(w.quant.scale.reshape(-1)[cols], w.quant.zero_point.reshape(-1)[cols],
                                                    axis=1)
            inputs = [node.inputs[0], wj]
            if b is not None:
                inputs.append(separate.add_const(b.const[cols], f"{node.name}/b{j}"))
            if len(node.inputs) > 3 and node.inputs[3]:
                inputs += [""] * (3 - len(inputs)) + [node.inputs[3]]
            separate.nodes.append(Node("MatMul", node.name if j == 0 else f"{node.name}/{j}", inputs, [out], dict(attrs)))
    separate.prune_values()   # the merged weight and bias
    return separate
