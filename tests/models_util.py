"""Helpers for the frontend tests: build one-op ONNX models, run them in onnxruntime and through
edgepack (import -> passes -> numpy reference), and compare with the suite's tolerances."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from edgepack.frontends import import_onnx
from edgepack.ir import Graph
from edgepack.passes import PIPELINE, run_passes
from edgepack.reference import run_graph

RTOL, ATOL = 1e-4, 1e-5

_ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
               np.dtype(np.int32): TensorProto.INT32, np.dtype(np.bool_): TensorProto.BOOL}


def one_node_model(op: str, inputs: Mapping[str, np.ndarray], consts: Mapping[str, np.ndarray | None],
                   opset: int, n_outputs: int = 1, order: Sequence[str] | None = None, **attrs: Any
                   ) -> onnx.ModelProto:
    """A model with one `op` node. `inputs` become graph inputs, `consts` initializers (None: an
    omitted optional input); node inputs follow `order` (default: inputs, then consts)."""
    order = list(order) if order is not None else [*inputs, *consts]
    node = helper.make_node(op, [n if consts.get(n, 0) is not None else "" for n in order],
                            [f"y{i}" for i in range(n_outputs)], name=f"{op.lower()}_node", **attrs)
    graph = helper.make_graph(
        [node], f"{op}_opset{opset}",
        [helper.make_tensor_value_info(n, _ONNX_TYPES[a.dtype], a.shape) for n, a in inputs.items()],
        [helper.make_empty_tensor_value_info(f"y{i}") for i in range(n_outputs)],
        [numpy_helper.from_array(a, n) for n, a in consts.items() if a is not None])
    return model_of(graph, opset)


def model_of(graph: onnx.GraphProto, opset: int) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", opset)]
    # the oldest IR version that carries the opset: onnxruntime may not know the newest
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def run_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))


def compile_graph(model: onnx.ModelProto | str, input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Graph:
    return run_passes(import_onnx(model, input_shapes), PIPELINE)


def run_edgepack(model: onnx.ModelProto | str, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    graph = compile_graph(model)
    outputs = run_graph(graph, feeds)
    return [outputs[name] for name in graph.outputs]


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str = "") -> float:
    """assert_allclose at the suite's tolerances; returns the max abs error for reports."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if actual.dtype == np.bool_ or np.issubdtype(actual.dtype, np.integer):
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return 0.0
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)
    return float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0


def check_against_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], what: str = "") -> float:
    """edgepack's reference and onnxruntime agree on every output; returns the max abs error."""
    expected = run_ort(model, feeds)
    actual = run_edgepack(model, feeds)
    assert len(actual) == len(expected), what
    return max(assert_close(a, e, f"{what} output {i}") for i, (a, e) in enumerate(zip(actual, expected)))
