"""Attention's ops become one: MatMul(Q, K) -> [Mul by a scalar] -> Softmax(+ mask) -> MatMul(P, V) is an
`Attention` node (the scalar, e.g. an export's 1 / sqrt(D), its `scale`). Unfused, the scores of every
head go out to memory three times (the product, the softmax, the second product reads them), e.g.
12 x 128 x 128 floats per all-MiniLM-L6-v2 layer, each op a pass over them with its own thread split.
The native kernel takes a block of query rows of one head at a time and keeps its scores in L1 from the
first product to the second. The reference runs the ops in order; the native kernel matches them to a
few ulp (it divides P V's rows by the softmax sums instead of P's).

This runs on the final graph after fold_transposes (the MatMuls carry their perms by then) and before
nothing that looks for the MatMuls. Both MatMuls must be float, of run-time operands, with no bias,
activation or input scale; the scores and probabilities must have no other reader. `unfuse` writes the
three ops back for the formats that have no such op (backends/onnx.py, tflite.py, coreml.py)."""
from __future__ import annotations

import numpy as np

from ..ir import DType, Graph, Node
from .base import PassResult, single_consumer

_QK = {"a_perm": "q_perm", "b_perm": "k_perm"}   # MatMul attr -> Attention attr
_PV = {"b_perm": "v_perm", "y_perm": "y_perm"}
_NO_ACT = {"activation": "none", "act_min": 0.0, "act_max": 0.0}


def _plain_matmul(graph: Graph, node: Node | None, allowed: dict) -> bool:
    """A float MatMul of two run-time operands, with no bias, input scale, activation or other perms."""
    if node is None or node.op != "MatMul" or len(node.inputs) != 2:
        return False
    if any(k not in allowed for k in node.attrs if k not in ("activation", "act_min", "act_max")) \
            or node.attrs.get("activation", "none") != "none":
        return False
    values = [graph.values[n] for n in node.inputs + node.outputs]
    return all(not v.is_const and v.dtype is DType.FLOAT32 for v in values)


def _scale(graph: Graph, node: Node | None, consumers: dict) -> tuple[Node, float] | None:
    """(the Mul, its factor) when `node` multiplies a single-reader tensor by a float32 scalar constant
    (the 1 / sqrt(D) of exports that do not fold it into Q's weights)."""
    if node is None or node.op != "Mul":
        return None
    for i in (0, 1):
        c, x = graph.values[node.inputs[i]], graph.values[node.inputs[1 - i]]
        if (c.is_const and c.dtype is DType.FLOAT32 and c.const.size == 1 and not x.is_const
                and x.shape == graph.values[node.outputs[0]].shape and single_consumer(graph, x.name, consumers)):
            return node, float(c.const.reshape(()))
    return None


def run(graph: Graph) -> PassResult:
    producers, consumers = graph.producers(), graph.consumers()
    fused = False
    for softmax in [n for n in graph.nodes if n.op == "Softmax"]:
        scores = softmax.inputs[0]
        rank = len(graph.values[scores].shape)
        qk = producers.get(scores)
        scaled = _scale(graph, qk, consumers)
        if scaled is not None and single_consumer(graph, scores, consumers):
            mul = scaled[0]
            scores = next(n for n in mul.inputs if not graph.values[n].is_const)
            qk = producers.get(scores)
        readers = consumers.get(softmax.outputs[0], [])
        pv = readers[0] if len(readers) == 1 else None
        if softmax.attrs["axis"] != rank - 1 or not _plain_matmul(graph, qk, _QK) \
                or not _plain_matmul(graph, pv, _PV) or pv.inputs[0] != softmax.outputs[0] \
                or not single_consumer(graph, scores, consumers) \
                or not single_consumer(graph, softmax.outputs[0], consumers):
            continue
        attrs = {name: list(qk.attrs[key]) for key, name in _QK.items() if key in qk.attrs}
        attrs.update({name: list(pv.attrs[key]) for key, name in _PV.items() if key in pv.attrs})
        if softmax.attrs.get("nan_to_zero", 0):
            attrs["nan_to_zero"] = 1
        if scaled is not None:
            attrs["scale"] = scaled[1]
            graph.nodes.remove(scaled[0])
        mask = softmax.inputs[1:2] if len(softmax.inputs) > 1 and softmax.inputs[1] else []
        node = Node("Attention", pv.name, [qk.inputs[0], qk.inputs[1], pv.inputs[1], *mask], list(pv.outputs), attrs)
        at = graph.nodes.index(pv)
        graph.nodes[at] = node
        graph.nodes.remove(qk)
        graph.nodes.remove(softmax)
        fused = True
    if fused:
        graph.prune_values()
    return PassResult(graph, fused)


def unfuse(graph: Graph) -> Graph:
    """`graph` with each Attention written as its MatMul, Softmax and MatMul again (float32, also for a
    bf16 Attention: passes/attention_bf16.py); `graph` itself when there is none. The input graph is not
    changed (the copy shares its values)."""
    if not any(n.op == "Attention" for n in graph.nodes):
        return graph
    separate = graph.without_nodes()
    for node in graph.nodes:
        if node.op != "Attention":
            separate.nodes.append(node)
            continue
        q, k = (separate.values[n] for n in node.inputs[:2])
        view = lambda value, key: tuple(value.shape[p] for p in node.attrs[key]) if key in node.attrs else value.shape
        shape = view(q, "q_perm")[:-1] + view(k, "k_perm")[-1:]
        scores = separate.unique_name(f"{node.name}/scores")
        probs = separate.unique_name(f"{node.name}/probs")
        for name in (scores, probs):
            separate.add_value(name, q.dtype, shape)
        qk_attrs = {**_NO_ACT, **{key: list(node.attrs[name]) for key, name in _QK.items() if name in node.attrs}}
        pv_attrs = {**_NO_ACT, **{key: list(node.attrs[name]) for key, name in _PV.items() if name in node.attrs}}
        softmax_attrs = {"axis": len(shape) - 1}
        if node.attrs.get("nan_to_zero", 0):
            softmax_attrs["nan_to_zero"] = 1
        mask = node.inputs[3:4] if len(node.inputs) > 3 and node.inputs[3] else []
        separate.nodes.append(Node("MatMul", f"{node.name}/scores", node.inputs[:2], [scores], qk_attrs))
        if "scale" in node.attrs:
            product = scores
            scores = separate.unique_name(f"{node.name}/scaled")
            separate.add_value(scores, q.dtype, shape)
            factor = separate.add_const(np.array(node.attrs["scale"], np.float32), f"{node.name}/scale")
            separate.nodes.append(Node("Mul", f"{node.name}/scale", [product, factor], [scores]))
        separate.nodes.append(Node("Softmax", f"{node.name}/softmax", [scores, *mask], [probs], softmax_attrs))
        separate.nodes.append(Node("MatMul", node.name, [probs, node.inputs[2]], list(node.outputs), pv_attrs))
    return separate
