"""Activation smoothing for dynamic int8 MatMuls (SmoothQuant, Xiao et al., ICML 2023).

A dynamic int8 MatMul quantizes each row of its input with one scale. Transformer activations (the
LayerNorm outputs feeding attention's Q/K/V and the FFN's first MatMul) have a few channels tens of
times larger than the rest: they set the row's scale and the other channels keep only a few levels.
Smoothing divides input channel c by s_c and multiplies row c of the weight by s_c, which leaves the
float product unchanged and moves part of the outliers' range into the weights, which are quantized
per output channel and have range to spare:

    s_c = max|x_c|^alpha / max|W_c,:|^(1 - alpha)       (alpha = 0.5; max|x_c| from calibration)

The division is a Mul by a constant vector inserted before the MatMuls that share the input (a LayerNorm
output also feeds the residual stream, so it cannot be folded into the LayerNorm's scale). On
all-MiniLM-L6-v2 (500 sentences) the int8-dynamic mean cosine to fp32 goes from 0.9990 to 0.9995.

Once the MatMuls are dynamic int8, `fold` moves each such Mul into them as their `input_scale` (MatMul
input 3): the native kernel multiplies as it quantizes the row, which it reads anyway, instead of
writing and reading the smoothed tensor (24 Muls, 3% of all-MiniLM-L6-v2 int8's time). Targets whose
MatMul has no such input get the Mul back from `unfold`.
"""
from __future__ import annotations

import numpy as np

from ..ir import DType, Graph, Node
from .observers import TensorStats

ALPHA = 0.5
# channels whose calibrated range is below this share of the largest are left alone (s = 1): dividing by
# a tiny s would turn an unseen value at run time into an outlier
DEAD_CHANNEL = 1e-4


def smoothing_scales(x_absmax: np.ndarray, w_absmax: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """s per input channel, normalised to a geometric mean of 1 (a common factor changes nothing)."""
    x = x_absmax.astype(np.float64)
    w = w_absmax.astype(np.float64)
    live = (x > DEAD_CHANNEL * max(float(x.max()), 1e-30)) & (w > 0)
    if not live.any():
        return np.ones(x.shape, np.float32)
    s = np.ones(x.shape)
    s[live] = x[live] ** alpha / w[live] ** (1 - alpha)
    s[live] /= np.exp(np.mean(np.log(s[live])))
    return s.astype(np.float32)


def smooth_matmul_inputs(graph: Graph, stats: dict[str, TensorStats], targets: set[str],
                         alpha: float = ALPHA) -> tuple[set[str], set[str]]:
    """Smooth, in place, the inputs of the MatMul nodes named in `targets` (constant 2-D weights, run as
    dynamic int8). Returns (the MatMuls smoothed, the Mul nodes inserted)."""
    groups: dict[str, list[Node]] = {}   # input -> its target MatMuls, in graph order (a reproducible build)
    for node in graph.nodes:
        if node.name in targets:
            groups.setdefault(node.inputs[0], []).append(node)
    smoothed: set[str] = set()
    muls: set[str] = set()
    inserts: list[tuple[Node, Node]] = []   # (first consumer, Mul to put before it)
    for x, members in groups.items():
        channel_max = stats[x].channel_absmax if x in stats else None
        weights = [graph.values[node.inputs[1]].const for node in members]
        if channel_max is None or any(w.shape[0] != channel_max.shape[0] for w in weights):
            continue
        s = smoothing_scales(channel_max, np.max([np.abs(w).max(axis=1) for w in weights], axis=0), alpha)
        inverse = graph.add_const((1.0 / s).astype(np.float32), f"{x}/smooth_inverse")
        y = graph.unique_name(f"{x}::smoothed")
        graph.add_value(y, DType.FLOAT32, graph.values[x].shape)
        mul = Node("Mul", f"smooth/{x}", [x, inverse], [y], {})
        inserts.append((members[0], mul))
        muls.add(mul.name)
        for node, w in zip(members, weights):
            node.inputs[0] = y
            node.inputs[1] = graph.add_const((w * s[:, None]).astype(np.float32), f"{node.name}/w_smoothed")
            smoothed.add(node.name)
    for first, mul in inserts:
        graph.nodes.insert(next(i for i, node in enumerate(graph.nodes) if node is first), mul)
    return smoothed, muls


def is_dynamic_matmul(graph: Graph, node: Node) -> bool:
    """float A x int8 B per channel -> float: the dynamic int8 MatMul (docs/quantization.md)."""
    if node.op != "MatMul":
        return False
    a, b, y = (graph.values[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return (a.dtype is DType.FLOAT32 and b.dtype is DType.INT8 and b.quant is not None and not b.quant.block_size
            and y.dtype is DType.FLOAT32)


def fold(graph: Graph, muls: set[str]) -> set[str]:
    """Fold, in place, the smoothing Muls named in `muls` into the MatMuls that read them, where all of
    those are dynamic int8 and the Mul's output is not a graph output. Returns the Muls folded."""
    consumers = graph.consumers()
    folded = set()
    for mul in [n for n in graph.nodes if n.name in muls]:
        x, inverse = mul.inputs
        readers = consumers.get(mul.outputs[0], [])
        if (mul.outputs[0] in graph.outputs or not readers
                or not all(is_dynamic_matmul(graph, n) and len(n.inputs) <= 3 and n.inputs[0] == mul.outputs[0]
                           and mul.outputs[0] not in n.inputs[1:] for n in readers)):
            continue
        for node in readers:
            node.inputs = [x, node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else "", inverse]
        graph.nodes.remove(mul)
        folded.add(mul.name)
    if folded:
        graph.prune_values()
    return folded


def unfold(graph: Graph) -> Graph:
    """`graph` with each MatMul's input_scale written as a Mul before it again (one Mul per input and
    scale, shared by the MatMuls that had both); `graph` itself when there is none. The input graph is
    not changed (the copy shares its values)."""
    if not any(n.op == "MatMul" and len(n.inputs) > 3 and n.inputs[3] for n in graph.nodes):
        return graph
    separate = graph.without_nodes()
    smoothed: dict[tuple[str, str], str] = {}
    names = {n.name for n in graph.nodes}
    for node in graph.nodes:
        if node.op != "MatMul" or len(node.inputs) <= 3 or not node.inputs[3]:
            separate.nodes.append(node)
            continue
        x, inverse = node.inputs[0], node.inputs[3]
        if (x, inverse) not in smoothed:
            y = separate.unique_name(f"{x}::smoothed")
            separate.add_value(y, DType.FLOAT32, separate.values[x].shape)
            name, i = f"smooth/{x}", 0
            while name in names:
                i += 1
                name = f"smooth/{x}_{i}"
            names.add(name)
            separate.nodes.append(Node("Mul", name, [x, inverse], [y], {}))
            smoothed[(x, inverse)] = y
        inputs = [smoothed[(x, inverse)]] + node.inputs[1:3]
        while len(inputs) > 2 and not inputs[-1]:
            inputs.pop()
        separate.nodes.append(Node(node.op, node.name, inputs, list(node.outputs), dict(node.attrs)))
    return separate
