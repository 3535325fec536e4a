"""A residual Add after a channels-last 1x1 Conv (and the Relu or Clip after the Add) becomes part of
the Conv: Conv(x; residual r, activation a) = a(conv(x) + bias + r), as ResNet's bottleneck blocks end
(y = relu(conv3(h) + shortcut)). The native GEMM adds r to each output tile in its epilogue, before the
clamp, so the Add's pass over three tensors and the Relu's pass over one are gone (16 of each in
ResNet-50). The fused node computes the same floats: the float32 sum of the conv and the residual,
then the activation.

Runs after channels_last (the NHWC conv's GEMM stores its C as the output lies, so the residual tile sits
at the same offsets); 1x1 convs only, whose NHWC path is that GEMM (a 3x3 stride-1 one may run as
Winograd, whose output transform has no residual). `unfuse` writes the Add and the activation back
for the other formats."""
from __future__ import annotations

from ..ir import DType, Graph, Node
from .base import PassResult, single_consumer

_ACTIVATIONS = {"Relu": "relu", "Clip": "clip"}


def _fusable_conv(graph: Graph, node: Node | None, name: str, consumers) -> bool:
    return (node is not None and node.op == "Conv" and node.attrs.get("channels_last", 0) == 1
            and len(node.inputs) <= 3 and node.attrs.get("activation", "none") == "none"
            and tuple(graph.values[node.inputs[1]].shape[2:]) == (1, 1) and single_consumer(graph, name, consumers))


def run(graph: Graph) -> PassResult:
    producers, consumers = graph.producers(), graph.consumers()
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    removed: set[int] = set()
    for add in [n for n in graph.nodes if n.op == "Add"]:
        a, b, out = (graph.values[n] for n in (add.inputs[0], add.inputs[1], add.outputs[0]))
        if not (a.shape == b.shape == out.shape and a.dtype is b.dtype is out.dtype is DType.FLOAT32):
            continue   # a broadcast Add (a bias) stays: the epilogue adds element for element
        # the conv that runs last of the two addends' producers, so the residual exists when it runs
        choices = []
        for conv_in, other in ((add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])):
            conv = producers.get(conv_in)
            if not _fusable_conv(graph, conv, conv_in, consumers) or id(conv) in removed:
                continue
            source = producers.get(other)
            if other == conv_in or (source is not None and position[id(source)] > position[id(conv)]):
                continue
            choices.append((position[id(conv)], conv, other))
        if not choices:
            continue
        _, conv, residual = max(choices, key=lambda c: c[0])
        final = add
        readers = consumers.get(add.outputs[0], [])
        if len(readers) == 1 and readers[0].op in _ACTIVATIONS and add.outputs[0] not in graph.outputs:
            final = readers[0]
            conv.attrs["activation"] = _ACTIVATIONS[final.op]
            if final.op == "Clip":
                conv.attrs["act_min"], conv.attrs["act_max"] = final.attrs["min"], final.attrs["max"]
            removed.add(id(final))
        inputs = list(conv.inputs) + [""] * (3 - len(conv.inputs))
        conv.inputs = inputs + [residual]
        conv.outputs = [final.outputs[0]]
        removed.add(id(add))
    if not removed:
        return PassResult(graph, False)
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]
    graph.prune_values()
    return PassResult(graph, True)


def unfuse(graph: Graph) -> Graph:
    """`graph` with each fused residual written as an Add (and the activation as its op) after its
    Conv again; `graph` itself when there is none. The input graph is not changed."""
    if not any(n.op == "Conv" and len(n.inputs) > 3 and n.inputs[3] for n in graph.nodes):
        return graph
    separate = graph.without_nodes()
    for node in graph.nodes:
        if node.op != "Conv" or len(node.inputs) <= 3 or not node.inputs[3]:
            separate.nodes.append(node)
            continue
        y = separate.values[node.outputs[0]]
        conv_out = separate.unique_name(f"{node.name}/conv")
        separate.add_value(conv_out, y.dtype, y.shape)
        act = node.attrs.get("activation", "none")
        attrs = {**node.attrs, "activation": "none", "act_min": 0.0, "act_max": 0.0}
        inputs = node.inputs[:3]
        while len(inputs) > 2 and not inputs[-1]:
            inputs.pop()
        separate.nodes.append(Node("Conv", node.name, inputs, [conv_out], attrs))
        if act == "none":
            separate.nodes.append(Node("Add", f"{node.name}/residual", [conv_out, node.inputs[3]], list(node.outputs)))
            continue
        total = separate.unique_name(f"{node.name}/residual_sum")
        separate.add_value(total, y.dtype, y.shape)
        separate.nodes.append(Node("Add", f"{node.name}/residual", [conv_out, node.inputs[3]], [total]))
        act_attrs = {"min": node.attrs["act_min"], "max": node.attrs["act_max"]} if act == "clip" else {}
        separate.nodes.append(Node("Relu" if act == "relu" else "Clip", f"{node.name}/activation", [total],
                                   list(node.outputs), act_attrs))
    return separate
