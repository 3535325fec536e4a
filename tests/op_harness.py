"""Run one IR op in the native runtime and in the numpy reference, for kernel tests.

    native, reference = run_op("Conv", attrs, [x, w, b], consts={1, 2})

Quantized ops take the tensors' parameters and dtypes by input index or value name ("out0"):

    run_op("Add", {}, [a, b], quant={0: qa, 1: qb, "out0": qy})
    run_op("Gather", {"axis": 0}, [table, idx], consts={0}, quant={0: qt},
           dtypes={0: DType.INT4, "out0": DType.FLOAT32})
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import edgepack
from edgepack.backends.epk import write_epk
from edgepack.ir import DType, Graph, Node, QuantParams
from edgepack.ir.ops import QUANTIZATION
from edgepack.ir.shape_inference import infer
from edgepack.planner.memory import plan_memory
from edgepack.reference import run_graph


def _value_name(key: int | str) -> str:
    return f"in{key}" if isinstance(key, int) else key


def op_graph(op: str, attrs: dict[str, Any], inputs: Sequence[np.ndarray | None], consts: set[int] = frozenset(),
             out_shapes: list[tuple[int, ...]] | None = None, quant: Mapping[int | str, QuantParams] | None = None,
             dtypes: Mapping[int | str, DType] | None = None) -> tuple[Graph, dict[str, np.ndarray]]:
    """A one-node graph; inputs whose index is in `consts` become constants, the others graph inputs.
    `quant` and `dtypes` set the quantization parameters and dtypes of values, keyed by input index or
    value name ("out0"); a dtype given for an output replaces the inferred one."""
    quant, dtypes = dict(quant or {}), dict(dtypes or {})
    graph = Graph(op)
    names, feeds = [], {}
    for i, array in enumerate(inputs):
        if array is None:
            names.append("")
            continue
        name = f"in{i}"
        dtype = dtypes.get(i, DType.from_numpy(array.dtype))
        if i in consts:
            graph.add_value(name, dtype, array.shape, np.asarray(array, order="C"))
        else:
            graph.add_value(name, dtype, array.shape)
            graph.inputs.append(name)
            feeds[name] = array
        names.append(name)
    in_types = [(graph.values[n].dtype, graph.values[n].shape) if n else None for n in names]
    # the quantization ops keep their input's shape; their output dtype comes from `dtypes`
    out_types = [in_types[0]] if op in QUANTIZATION else infer(op, attrs, in_types, out_shapes)
    outputs = [f"out{i}" for i in range(len(out_types))]
    for name, (dtype, shape) in zip(outputs, out_types):
        graph.add_value(name, dtypes.get(name, dtype), shape)
    for key, params in quant.items():
        graph.values[_value_name(key)].quant = params
    graph.nodes.append(Node(op, f"{op.lower()}_0", names, outputs, dict(attrs)))
    graph.outputs = outputs
    graph.verify()
    return graph, feeds


def write_graph(graph: Graph, path: Path) -> Path:
    write_epk(graph, plan_memory(graph), path, {"test": True})
    return path


def run_graph_native(graph: Graph, feeds: Mapping[str, np.ndarray], num_threads: int = 2) -> dict[str, np.ndarray]:
    """`graph` written as an artifact and run by the native runtime on `feeds`."""
    with tempfile.TemporaryDirectory() as tmp:
        return edgepack.load(write_graph(graph, Path(tmp) / "graph.epk"), num_threads=num_threads).run(feeds)


def run_op(op: str, attrs: dict[str, Any], inputs: Sequence[np.ndarray | None], consts: set[int] = frozenset(),
           out_shapes: list[tuple[int, ...]] | None = None, num_threads: int = 2,
           quant: Mapping[int | str, QuantParams] | None = None, dtypes: Mapping[int | str, DType] | None = None
           ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(native outputs, reference outputs) for one op (see op_graph for `quant` and `dtypes`)."""
    graph, feeds = op_graph(op, attrs, inputs, consts, out_shapes, quant, dtypes)
    reference = run_graph(graph, feeds)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_graph(graph, Path(tmp) / "op.epk")
        session = edgepack.load(path, num_threads=num_threads)
        native = session.run(feeds)
    return [native[n] for n in graph.outputs], [reference[n] for n in graph.outputs]
