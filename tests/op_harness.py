"""Run one IR op in the native runtime and in the numpy reference, for kernel tests.

    native, reference = run_op("Conv", attrs, [x, w, b], consts={1, 2})
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import edgepack
from edgepack.backends.epk import write_epk
from edgepack.ir import DType, Graph, Node
from edgepack.ir.shape_inference import infer
from edgepack.planner.memory import plan_memory
from edgepack.reference import run_graph


def op_graph(op: str, attrs: dict[str, Any], inputs: Sequence[np.ndarray | None], consts: set[int] = frozenset(),
             out_shapes: list[tuple[int, ...]] | None = None) -> tuple[Graph, dict[str, np.ndarray]]:
    """A one-node graph; inputs whose index is in `consts` become constants, the others graph inputs."""
    graph = Graph(op)
    names, feeds = [], {}
    for i, array in enumerate(inputs):
        if array is None:
            names.append("")
            continue
        name = f"in{i}"
        if i in consts:
            graph.add_value(name, DType.from_numpy(array.dtype), array.shape, np.asarray(array, order="C"))
        else:
            graph.add_value(name, DType.from_numpy(array.dtype), array.shape)
            graph.inputs.append(name)
            feeds[name] = array
        names.append(name)
    in_types = [(graph.values[n].dtype, graph.values[n].shape) if n else None for n in names]
    out_types = infer(op, attrs, in_types, out_shapes)
    outputs = [f"out{i}" for i in range(len(out_types))]
    for name, (dtype, shape) in zip(outputs, out_types):
        graph.add_value(name, dtype, shape)
    graph.nodes.append(Node(op, f"{op.lower()}_0", names, outputs, dict(attrs)))
    graph.outputs = outputs
    graph.verify()
    return graph, feeds


def write_graph(graph: Graph, path: Path) -> Path:
    write_epk(graph, plan_memory(graph), path, {"test": True})
    return path


def run_op(op: str, attrs: dict[str, Any], inputs: Sequence[np.ndarray | None], consts: set[int] = frozenset(),
           out_shapes: list[tuple[int, ...]] | None = None, num_threads: int = 2
           ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(native outputs, reference outputs) for one op."""
    graph, feeds = op_graph(op, attrs, inputs, consts, out_shapes)
    reference = run_graph(graph, feeds)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_graph(graph, Path(tmp) / "op.epk")
        session = edgepack.load(path, num_threads=num_threads)
        native = session.run(feeds)
    return [native[n] for n in graph.outputs], [reference[n] for n in graph.outputs]
