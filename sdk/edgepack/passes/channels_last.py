"""Run a float CNN channels-last (NHWC): every one-group float Conv and every float MaxPool gets
`channels_last` = 1 and reads and writes NHWC, and the Transposes this puts around them cancel out
between neighbours, so only the network's entry and exit pay one.

Why: in NCHW a conv's GEMM has either the pixels or the channels on the vector axis, and over the small
planes of a CNN's late stages (14x14, 7x7) the pixels fill vectors badly while the channels-first
operand has to be packed or transposed per run (Conv's pointwise, pixel-rows and channels-last paths in
conv.cpp). In NHWC every such conv is one GEMM, Y[pixels, M] = im2col(X)[pixels, K] W^T, whose A is the
input read in place (a 1x1 conv) or copied once into padded planes without a transpose, and whose C is
the output as it lies.

How: each converted node is wrapped as Transpose(to NHWC) -> node -> Transpose(to NCHW); then every
Transpose is sunk past the ops that do not care about the layout (elementwise ops on equal shapes,
Concat and reductions with their axes renamed) until it meets its inverse, and the pair is dropped.
The pass only runs on a graph whose Convs are all float with one group: a depthwise conv (MobileNet) or
an int8 one keeps NCHW, and Transposes around each of them would cost more than the layout saves.

This runs on the final native graph; `unfold` turns it back into NCHW ops for the other formats."""
from __future__ import annotations

from ..ir import DType, Graph, Node
from .base import PassResult, single_consumer

TO_LAST = [0, 2, 3, 1]   # NCHW -> NHWC
TO_FIRST = [0, 3, 1, 2]  # NHWC -> NCHW
LAYOUT_OPS = ("Conv", "MaxPool")
MAX_POOL_WINDOW = 64     # cells of a channels-last MaxPool window (native/kernels/ref/pooling.cpp)

# Elementwise ops whose output element i depends only on input element i: any layout.
_UNARY = {"Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "HardSigmoid",
          "HardSwish", "LeakyRelu", "Clip", "Gelu", "Floor", "Ceil"}
_BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"}


def _float4(graph: Graph, name: str) -> bool:
    v = graph.values[name]
    return v.dtype is DType.FLOAT32 and v.quant is None and len(v.shape) == 4


def _convertible(graph: Graph, node: Node) -> bool:
    if node.op not in LAYOUT_OPS or node.attrs.get("channels_last", 0):
        return False
    if not (_float4(graph, node.inputs[0]) and _float4(graph, node.outputs[0])):
        return False
    if node.op == "MaxPool":   # the native NHWC pool holds a window of up to 64 cells
        return node.attrs["kernel"][0] * node.attrs["kernel"][1] <= MAX_POOL_WINDOW
    return node.attrs["group"] == 1 and graph.values[node.inputs[1]].dtype is DType.FLOAT32


def _permuted(shape, perm) -> tuple[int, ...]:
    return tuple(shape[p] for p in perm)


def _inverse(perm) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def _transpose(graph: Graph, source: str, perm, name: str, output: str | None = None) -> Node:
    """A Transpose of `source` by `perm` into `output` (a new value when None)."""
    v = graph.values[source]
    if output is None:
        output = graph.unique_name(f"{name}_out")
        graph.add_value(output, v.dtype, _permuted(v.shape, perm))
    return Node("Transpose", graph.unique_name(name), [source], [output], {"perm": list(perm)})


def _wrap(graph: Graph, node: Node, perm) -> list[Node]:
    """[Transpose(input, perm), node, Transpose(output, perm^-1)]: `node` itself now reads and writes
    its input and output transposed by `perm` (its attributes are the caller's to change)."""
    before = _transpose(graph, node.inputs[0], perm, f"{node.name}/layout_in")
    y = graph.values[node.outputs[0]]
    inner = graph.unique_name(f"{node.name}/layout")
    graph.add_value(inner, y.dtype, _permuted(y.shape, perm))
    after = _transpose(graph, inner, _inverse(perm), f"{node.name}/layout_out", output=node.outputs[0])
    node.inputs[0] = before.outputs[0]
    node.outputs[0] = inner
    return [before, node, after]


def _is_transpose(node: Node | None, perm) -> bool:
    return node is not None and node.op == "Transpose" and list(node.attrs["perm"]) == list(perm)


def _sink_once(graph: Graph, perm) -> bool:
    """One sweep: for each Transpose by `perm`, its readers that are its inverse are bypassed, and a
    layout-free reader whose layout inputs all come from such Transposes is moved before them (it then
    reads the untransposed tensors, and one Transpose by `perm` follows it). True when anything moved."""
    inverse = _inverse(perm)
    producers, consumers = graph.producers(), graph.consumers()
    changed = False
    for t in [n for n in graph.nodes if _is_transpose(n, perm)]:
        for reader in list(consumers.get(t.outputs[0], [])):
            if _is_transpose(reader, inverse):
                source, out = t.inputs[0], reader.outputs[0]
                if out not in graph.outputs:
                    graph.replace_uses(out, source)
                elif source in producers and source not in graph.outputs:
                    # a graph output keeps its name: the untransposed tensor's producer writes it
                    graph.replace_uses(source, out)
                    producer = producers[source]
                    producer.outputs[producer.outputs.index(source)] = out
                else:
                    continue   # a graph input straight to a graph output: the pair stays
                graph.nodes.remove(reader)
                changed = True
                break
            moved = _move_before(graph, reader, perm, producers)
            if moved is not None:
                graph.nodes.insert(graph.nodes.index(reader) + 1, moved)
                changed = True
        if changed:
            break   # the maps are stale: the caller sweeps again
    if changed:
        used = {name for n in graph.nodes for name in n.inputs} | set(graph.outputs)
        graph.nodes = [n for n in graph.nodes if n.op != "Transpose" or n.outputs[0] in used]
        graph.prune_values()
    return changed


def _move_before(graph: Graph, node: Node, perm, producers) -> Node | None:
    """Rewrites `node` to read its inputs untransposed (each from a Transpose by `perm`) and returns the
    Transpose by `perm` of its new output, which takes over the old output's name; None (and `node`
    unchanged) when the node's result depends on the layout or an input is not such a Transpose."""
    rank = len(perm)
    inputs = [n for n in node.inputs if n]
    if node.op in _UNARY or node.op in _BINARY:
        if node.op in _BINARY and len({graph.values[n].shape for n in inputs}) != 1:
            return None   # a broadcast: the other operand would need its own Transpose
    elif node.op == "Concat":
        pass
    elif node.op in _REDUCE:
        # keepdims = 0 would need the kept axes to stay in order under perm
        if len(graph.values[node.inputs[0]].shape) != rank or not node.attrs["keepdims"]:
            return None
    else:
        return None
    sources = []
    for name in inputs:
        t = producers.get(name)
        if not _is_transpose(t, perm) or name in graph.outputs:
            return None
        sources.append(t.inputs[0])
    y = graph.values[node.outputs[0]]
    # The node's axes, named in the untransposed input: transposed axis d is input axis perm[d].
    if node.op == "Concat":
        node.attrs["axis"] = perm[node.attrs["axis"]]
    if node.op in _REDUCE:
        node.attrs["axes"] = sorted(perm[a] for a in node.attrs["axes"])
    node.inputs = [sources.pop(0) if n else n for n in node.inputs]
    inner = graph.unique_name(f"{node.name}/layout")
    graph.add_value(inner, y.dtype, _permuted(y.shape, _inverse(perm)))
    old = node.outputs[0]
    node.outputs[0] = inner
    return _transpose(graph, inner, perm, f"{node.name}/layout_out", output=old)


def _sink(graph: Graph, perm) -> None:
    while _sink_once(graph, perm):
        pass


def run(graph: Graph) -> PassResult:
    targets = [n for n in graph.nodes if _convertible(graph, n)]
    convs = [n for n in graph.nodes if n.op in ("Conv", "ConvTranspose")]
    if not any(n.op == "Conv" for n in targets) or any(not _convertible(graph, n) for n in convs):
        return PassResult(graph, False)
    chosen = {id(n) for n in targets}
    nodes: list[Node] = []
    for node in graph.nodes:
        if id(node) in chosen:
            node.attrs["channels_last"] = 1
            nodes.extend(_wrap(graph, node, TO_LAST))
        else:
            nodes.append(node)
    graph.nodes = nodes
    _sink(graph, TO_FIRST)
    _fold_entry(graph)
    _concat_in_place(graph)
    return PassResult(graph, True)


def _concat_in_place(graph: Graph) -> None:
    """A Concat of the channels of channels-last Convs copies nothing: each Conv writes its channels
    straight into the Concat's output rows (y_stride = the output's channels; planner/memory.py puts
    the parts there). In NHWC a channel Concat interleaves its parts pixel by pixel, which no placement
    of contiguous parts can give (SqueezeNet's fire modules: 8 Concats, 75 us of 1.9 ms on two threads)."""
    producers, consumers = graph.producers(), graph.consumers()
    for concat in [n for n in graph.nodes if n.op == "Concat"]:
        out = graph.values[concat.outputs[0]]
        if len(out.shape) != 4 or concat.attrs["axis"] != 3 or len(set(concat.inputs)) != len(concat.inputs):
            continue
        convs = [producers.get(n) for n in concat.inputs]
        if any(c is None or c.op != "Conv" or not c.attrs.get("channels_last") or "y_stride" in c.attrs
               or not single_consumer(graph, n, consumers) for c, n in zip(convs, concat.inputs)):
            continue
        for c in convs:
            c.attrs["y_stride"] = out.shape[3]


def _fold_entry(graph: Graph) -> None:
    """A Transpose to NHWC read only by a channels-last stride-1 Conv goes into the Conv (channels_last
    2: NCHW in, NHWC out): its kernel copies the input into padded channels-last planes anyway, with a
    tiled transpose per row. A strided conv keeps the Transpose: its planes would be gathered element by
    element (ResNet-50's 7x7 stride-2 stem over the image: 593 us with the Transpose, 670-730 without)."""
    producers, consumers = graph.producers(), graph.consumers()
    for conv in graph.nodes:
        t = producers.get(conv.inputs[0]) if conv.op == "Conv" else None
        if (t is None or not _is_transpose(t, TO_LAST) or conv.attrs.get("channels_last") != 1
                or conv.attrs["strides"][1] != 1 or len(consumers[t.outputs[0]]) != 1
                or t.outputs[0] in graph.outputs):
            continue
        conv.inputs[0] = t.inputs[0]
        conv.attrs["channels_last"] = 2
        graph.nodes.remove(t)
    graph.prune_values()


def unfold(graph: Graph) -> Graph:
    """`graph` with every channels_last op back in NCHW (and the Transposes this leaves between them
    cancelled again); `graph` itself when there is none. The input graph is not changed."""
    if not any(n.op in LAYOUT_OPS and n.attrs.get("channels_last", 0) for n in graph.nodes):
        return graph
    nchw = graph.without_nodes()
    for node in graph.nodes:
        if node.op in LAYOUT_OPS and node.attrs.get("channels_last", 0):
            copy = Node(node.op, node.name, list(node.inputs), list(node.outputs),
                        {k: v for k, v in node.attrs.items() if k not in ("channels_last", "y_stride")})
            wrapped = _wrap(nchw, copy, TO_FIRST)
            if node.attrs["channels_last"] == 2:   # NCHW in already: only the output is transposed
                copy.inputs[0] = node.inputs[0]
                wrapped = wrapped[1:]
            nchw.nodes.extend(wrapped)
        else:
            nchw.nodes.append(Node(node.op, node.name, list(node.inputs), list(node.outputs), dict(node.attrs)))
    _sink(nchw, TO_LAST)
    return nchw
