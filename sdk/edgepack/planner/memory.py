"""The memory planner: tensor lifetimes -> arena offsets, decided at compile time.

Every run-time tensor (graph inputs, intermediates, outputs) gets an offset in one arena. Two tensors
may share bytes when their lifetimes do not overlap. Reshape outputs alias their input (same bytes),
so an alias group is planned as one tensor whose lifetime is the union of its members'.

Concat writes nothing when its parts already lie in its output (see below: as blocks, or as channel
slices that channels-last Convs write row by row), and elementwise ops and
Softmax run in place: the output takes the bytes of an input of the same shape
and dtype that no later node reads (each output element is computed from the same index of that
input, so the kernels may overwrite it; native/kernels/ref/elementwise.cpp, normalization.cpp). On
all-MiniLM-L6-v2 the attention scores' Add, Softmax and Where then share one buffer. Graph inputs are
never overwritten.
Placement is greedy by size (largest first, lowest offset that fits), the strategy TFLite Micro and
XNNPACK use: simple, and close to optimal on inference graphs.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, Node
from ..ir.ops import ALIASING, ELEMENTWISE_BINARY, ELEMENTWISE_UNARY

# Ops whose output may overwrite an input (see the module docstring); Cast changes the element size.
# Softmax reads its input row once, before writing (LogSoftmax reads it again at the end: not in place);
# only its input 0 is overwritten, never a fused bias.
IN_PLACE = (ELEMENTWISE_UNARY | ELEMENTWISE_BINARY | {"Where", "Softmax"}) - {"Cast"}

ALIGNMENT = 64


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


@dataclass
class MemoryPlan:
    offsets: dict[str, int]       # value name -> arena offset
    arena_bytes: int
    naive_bytes: int              # sum of all run-time tensors: what no planning would need

    @property
    def savings(self) -> float:
        return 1.0 - self.arena_bytes / self.naive_bytes if self.naive_bytes else 0.0


def _strided_parts(graph: Graph, concat: Node, producers: dict[str, Node]) -> bool:
    """Whether every part of a channel Concat (the last axis) is written into its output rows by its
    Conv: a channels-last Conv with y_stride = the output's channels (passes/channels_last.py)."""
    out = graph.values[concat.outputs[0]]
    return (concat.attrs["axis"] == len(out.shape) - 1
            and all(n in producers and producers[n].op == "Conv"
                    and producers[n].attrs.get("y_stride") == out.shape[-1] for n in concat.inputs))


def plan_memory(graph: Graph) -> MemoryPlan:
    # alias groups: a Reshape output shares its input's root
    root: dict[str, str] = {}

    def find(name: str) -> str:
        while root.get(name, name) != name:
            name = root[name]
        return name

    for node in graph.nodes:
        if node.op in ALIASING and not graph.values[node.inputs[0]].is_const:
            root[node.outputs[0]] = find(node.inputs[0])

    end = len(graph.nodes)
    first: dict[str, int] = {}
    last: dict[str, int] = {}

    def touch(name: str, step: int) -> None:
        group = find(name)
        first[group] = min(first.get(group, step), step)
        last[group] = max(last.get(group, step), step)

    for name in graph.inputs:
        touch(name, -1)
    for step, node in enumerate(graph.nodes):
        for name in node.inputs:
            if name and not graph.values[name].is_const:
                touch(name, step)
        for name in node.outputs:
            touch(name, step)
    for name in graph.outputs:
        touch(name, end)

    # in place: the output joins the group of an input that dies at this node
    inputs = {find(name) for name in graph.inputs}
    for step, node in enumerate(graph.nodes):
        if node.op not in IN_PLACE:
            continue
        out = graph.values[node.outputs[0]]
        # Where's condition is bool; a fused Softmax bias is read again by the next rows it broadcasts to
        for name in node.inputs[1:] if node.op == "Where" else node.inputs[:1] if node.op == "Softmax" else node.inputs:
            value = graph.values[name] if name else None
            if value is None or value.is_const or (value.dtype, value.shape) != (out.dtype, out.shape):
                continue
            group, target = find(name), find(out.name)
            if group in inputs or group == target or last[group] != step or first[target] != step:
                continue
            root[target] = group
            last[group] = max(last[group], last.pop(target))
            first.pop(target)
            break

    group_bytes: dict[str, int] = {}   # the largest member of each group
    for name, value in graph.values.items():
        if not value.is_const:
            group = find(name)
            group_bytes[group] = max(group_bytes.get(group, 0), value.nbytes)

    # Concat in place: when every dim before the axis is 1, each part is one contiguous block of the
    # output. A part whose bytes die at the Concat is placed at its block inside the output's buffer,
    # and the kernel skips the parts already in place (native/kernels/ref/movement.cpp): the Concat
    # copies nothing (SqueezeNet's fire modules).
    # Channels-last Convs marked with y_stride (passes/channels_last.py) write their channels straight
    # into a channel Concat's output rows: their parts lie inside the output at their channel offsets,
    # and must (the Conv writes there whatever the plan).
    producers = graph.producers()
    inside: dict[str, tuple[str, int]] = {}   # group -> (the group it lies in, byte offset there)
    for step, node in enumerate(graph.nodes):
        if node.op != "Concat":
            continue
        out = graph.values[node.outputs[0]]
        axis = node.attrs["axis"]
        strided = _strided_parts(graph, node, producers)
        if any(d != 1 for d in out.shape[:axis]) and not strided:
            continue
        target = find(out.name)
        parts = [find(name) if name and not graph.values[name].is_const else None for name in node.inputs]
        if (target in inputs or target in inside or None in parts or len(set(parts)) != len(parts)
                or target in parts or any(g in inputs or g in inside or last[g] != step
                                          or group_bytes[g] != graph.values[name].nbytes
                                          for g, name in zip(parts, node.inputs))):
            if strided:
                raise ValueError(f"Concat '{node.name}': its parts' Convs write into its output (y_stride), "
                                 "but the parts cannot be placed there")
            continue
        offset = 0
        for g, name in zip(parts, node.inputs):
            inside[g] = (target, offset)
            part = graph.values[name]
            # a strided part starts at its channel offset in the first row; a block at its bytes
            offset += part.dtype.nbytes(part.shape[-1]) if strided else part.nbytes
            first[target] = min(first[target], first.pop(g))
            last.pop(g)

    sizes: dict[str, int] = {}
    members: dict[str, list[str]] = {}
    for name, value in graph.values.items():
        if value.is_const:
            continue
        group = find(name)
        sizes[group] = max(sizes.get(group, 0), _align(max(value.nbytes, 1)))
        members.setdefault(group, []).append(name)

    placed: list[tuple[int, int, int, int]] = []   # (offset, size, first, last)
    group_offset: dict[str, int] = {}
    for group in sorted((g for g in sizes if g not in inside), key=lambda g: (-sizes[g], first.get(g, -1), g)):
        lo, hi, size = first.get(group, -1), last.get(group, end), sizes[group]
        busy = sorted((o, s) for o, s, f, l in placed if not (l < lo or f > hi))
        offset = 0
        for o, s in busy:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, lo, hi))
        group_offset[group] = offset

    def placed_at(group: str) -> int:
        if group in inside:
            outer, offset = inside[group]
            return placed_at(outer) + offset
        return group_offset[group]

    offsets = {name: placed_at(group) for group, names in members.items() for name in names}
    arena = max((o + s for o, s, _, _ in placed), default=0)
    naive = sum(_align(max(v.nbytes, 1)) for v in graph.values.values() if not v.is_const)
    return MemoryPlan(offsets, arena, naive)
