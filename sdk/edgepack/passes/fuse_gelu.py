"""The Gelu after a dynamic int8 MatMul becomes the MatMul's fused activation "gelu" (a transformer's
feed-forward up-projection: all-MiniLM-L6-v2's [128, 1536] per layer). The native kernel applies Gelu
to each output tile right after storing it, while the tile is in L1, which saves the Gelu's own pass
over the tensor and a wake of the thread pool. The fused node computes the same floats: the MatMul's
float32 output, then Gelu (erf form) on it.

Only the erf form (approximate "none") and only dynamic int8 MatMuls without another activation, split
or perms: the other MatMul kernels have no such epilogue. This runs on the final graph; `unfuse` writes
the Gelu back for the formats whose MatMul has no such activation (backends/onnx.py, tflite.py,
coreml.py)."""
from __future__ import annotations

from ..ir import Graph, Node
from ..quant.smooth import is_dynamic_matmul
from .base import PassResult, single_consumer


def run(graph: Graph) -> PassResult:
    producers, consumers = graph.producers(), graph.consumers()
    fused = False
    for gelu in [n for n in graph.nodes if n.op == "Gelu" and n.attrs.get("approximate", "none") == "none"]:
        matmul = producers.get(gelu.inputs[0])
        if (matmul is None or not is_dynamic_matmul(graph, matmul) or len(matmul.outputs) != 1
                or matmul.attrs.get("activation", "none") != "none" or "split" in matmul.attrs
                or not single_consumer(graph, gelu.inputs[0], consumers)):
            continue
        matmul.attrs["activation"] = "gelu"
        matmul.outputs = list(gelu.outputs)
        graph.nodes.remove(gelu)
        fused = True
    if fused:
        graph.prune_values()
    return PassResult(graph, fused)


def unfuse(graph: Graph) -> Graph:
    """`graph` with each fused Gelu written as a Gelu node after its MatMul again; `graph` itself when
    there is none. The input graph is not changed (the copy shares its values)."""
    if not any(n.attrs.get("activation") == "gelu" for n in graph.nodes):
        return graph
    separate = graph.without_nodes()
    for node in graph.nodes:
        if node.attrs.get("activation") != "gelu":
            separate.nodes.append(node)
            continue
        y = separate.values[node.outputs[0]]
        linear = separate.unique_name(f"{node.name}/linear")
        separate.add_value(linear, y.dtype, y.shape)
        separate.nodes.append(Node(node.op, node.name, list(node.inputs), [linear], {**node.attrs, "activation": "none"}))
        separate.nodes.append(Node("Gelu", f"{node.name}/gelu", [linear], list(node.outputs), {"approximate": "none"}))
    return separate
