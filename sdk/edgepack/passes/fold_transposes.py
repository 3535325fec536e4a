"""Fold Transposes into the float MatMuls of two run-time operands that read or write them: attention's
Q and V head split ([1, T, H, D] -> [1, H, T, D]) and the merge of the heads back. The MatMul gets
a_perm / b_perm (its operand is the input transposed) or y_perm (its output is the product transposed);
the native kernel reads and writes those layouts in place with row and batch strides, so the copy is
gone (3 of the 4 Transposes of each all-MiniLM-L6-v2 layer). Only perms that keep the last axis fold:
rows stay contiguous.

This runs on the final graph (after quantization: a MatMul it changes must stay float); `unfold` writes
the Transposes back for targets whose MatMul has no such attributes."""
from __future__ import annotations

from ..ir import DType, Graph, Node
from .base import PassResult, single_consumer

PERMS = ("a_perm", "b_perm", "y_perm")


def _keeps_last_axis(perm) -> bool:
    return len(perm) >= 2 and perm[-1] == len(perm) - 1


def _foldable(graph: Graph, node: Node) -> bool:
    """A float MatMul of two run-time operands of one rank, with no bias, input scale or perms yet."""
    if node.op != "MatMul" or len(node.inputs) != 2 or any(k in node.attrs for k in PERMS):
        return False
    a, b, y = (graph.values[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return (not a.is_const and not b.is_const and a.dtype is b.dtype is y.dtype is DType.FLOAT32
            and len(a.shape) == len(b.shape) == len(y.shape) >= 3)


def _batch(shape) -> tuple[int, ...]:
    return tuple(shape[:-2])


def run(graph: Graph) -> PassResult:
    producers, consumers = graph.producers(), graph.consumers()
    removed: set[int] = set()
    modified = False
    for node in list(graph.nodes):
        if not _foldable(graph, node):
            continue
        operands = [graph.values[n].shape for n in node.inputs]
        attrs = {}
        for index, key in ((0, "a_perm"), (1, "b_perm")):
            t = producers.get(node.inputs[index])
            if t is None or t.op != "Transpose" or not _keeps_last_axis(t.attrs["perm"]) \
                    or not single_consumer(graph, node.inputs[index], consumers) or node.inputs[0] == node.inputs[1]:
                continue
            attrs[key] = (t, list(t.attrs["perm"]))
        readers = consumers.get(node.outputs[0], [])
        if len(readers) == 1 and readers[0].op == "Transpose" and node.outputs[0] not in graph.outputs \
                and _keeps_last_axis(readers[0].attrs["perm"]):
            attrs["y_perm"] = (readers[0], list(readers[0].attrs["perm"]))
        # The native kernel multiplies equal batches only: a fold must not turn them into a broadcast.
        if any(_batch(s) != _batch(operands[0]) for s in operands) or not attrs:
            continue
        for key, (t, perm) in attrs.items():
            node.attrs[key] = perm
            if key == "y_perm":
                graph.values.pop(node.outputs[0])
                node.outputs = [t.outputs[0]]
            else:
                node.inputs[0 if key == "a_perm" else 1] = t.inputs[0]
            removed.add(id(t))
        modified = True
    if modified:
        graph.nodes = [n for n in graph.nodes if id(n) not in removed]
        graph.prune_values()
    return PassResult(graph, modified)


def unfold(graph: Graph) -> Graph:
    """`graph` with the folded Transposes written as Transpose nodes again; `graph` itself when there
    is none. The input graph is not changed (the copy shares its values)."""
    if not any(n.op == "MatMul" and any(k in n.attrs for k in PERMS) for n in graph.nodes):
        return graph
    separate = graph.without_nodes()
    for node in graph.nodes:
        if node.op != "MatMul" or not any(k in node.attrs for k in PERMS):
            separate.nodes.append(node)
            continue
        inputs, outputs = list(node.inputs), list(node.outputs)
        attrs = {k: v for k, v in node.attrs.items() if k not in PERMS}
        for index, key in ((0, "a_perm"), (1, "b_perm")):
            if key in node.attrs:
                x = separate.values[inputs[index]]
                perm = node.attrs[key]
                moved = separate.unique_name(f"{node.name}/{key[0]}_transposed")
                separate.add_value(moved, x.dtype, tuple(x.shape[p] for p in perm))
                separate.nodes.append(Node("Transpose", f"{node.name}/{key}", [inputs[index]], [moved], {"perm": perm}))
                inputs[index] = moved
        final = None
        if "y_perm" in node.attrs:
            perm = node.attrs["y_perm"]
            y = separate.values[outputs[0]]
            product_shape = [0] * len(perm)
            for d, p in enumerate(perm):
                product_shape[p] = y.shape[d]
            product = separate.unique_name(f"{node.name}/product")
            separate.add_value(product, y.dtype, tuple(product_shape))
            final = Node("Transpose", f"{node.name}/y_perm", [product], [outputs[0]], {"perm": perm})
            outputs = [product]
        separate.nodes.append(Node(node.op, node.name, inputs, outputs, attrs))
        if final is not None:
            separate.nodes.append(final)
    return separate
