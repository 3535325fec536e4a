"""The CNNs of onnx's backend test data (onnx/backend/test/data/light), with meaningful weights.

Those files build every weight with ConstantOfShape(value=0.02), so each model's output is a uniform
softmax whatever the input: useless for numerical checks. `randomized_light_model` keeps the model
as it is but turns each such weight into a seeded random initializer scaled for its role, then
rescales the last layer so the softmax is neither flat nor one-hot.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

LIGHT_MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
                "squeezenet", "vgg19", "zfnet512")

# ops that pass a weight through unchanged on its way to the op that uses it
_PASS_THROUGH = ("Unsqueeze", "Reshape", "Squeeze", "Identity", "Flatten")
# ops with f(a * x) = a * f(x) for a > 0: scaling the last layer scales the logits by as much
_HOMOGENEOUS = _PASS_THROUGH + ("Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Dropout", "Transpose")
LOGIT_STD = 2.0
_BATCH_NORM_ROLES = {1: "scale", 2: "shift", 3: "mean", 4: "variance"}


def light_model_path(name: str) -> Path:
    """onnx/backend/test/data/light/light_<name>.onnx inside the installed onnx package."""
    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"
    if not path.exists():
        raise FileNotFoundError(f"no light model '{name}' at {path} (known: {', '.join(LIGHT_MODELS)})")
    return path


Consumers = dict[str, list[tuple[onnx.NodeProto, int]]]


def _consumers(graph: onnx.GraphProto) -> Consumers:
    result: Consumers = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            result.setdefault(name, []).append((node, index))
    return result


def _role(consumers: Consumers, name: str) -> tuple[str, onnx.NodeProto | None]:
    """What a weight is for, from the op that finally consumes it: weight, scale, shift, mean or
    variance. Follows pass-through ops (the Caffe2 exports Unsqueeze the scale of an affine layer)."""
    uses = consumers.get(name, [])
    if len(uses) != 1:
        return "weight", None
    node, index = uses[0]
    if node.op_type in _PASS_THROUGH and index == 0:
        return _role(consumers, node.output[0])
    if node.op_type == "BatchNormalization":
        return _BATCH_NORM_ROLES[index], node
    if node.op_type == "Mul":
        return "scale", node
    if node.op_type == "Add" or index == 2:
        return "shift", node
    return "weight", node


def _fan_in(shape: tuple[int, ...], consumer: onnx.NodeProto | None) -> int:
    """Inputs per output unit: Conv [M, C/g, kh, kw] and Gemm with transB read [out, in]; Gemm and
    MatMul otherwise read [in, out]."""
    transposed = consumer is not None and consumer.op_type in ("Gemm", "MatMul") and not any(
        a.name == "transB" and a.i for a in consumer.attribute)
    if transposed and len(shape) >= 2:
        return int(np.prod(shape[:-1]))
    return max(1, int(np.prod(shape[1:])))


def _random_weight(rng: np.random.Generator, role: str, shape: tuple[int, ...],
                   consumer: onnx.NodeProto | None) -> np.ndarray:
    if role == "weight":
        return rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(2.0 / _fan_in(shape, consumer)))  # He
    if role in ("scale", "variance"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)  # positive: a variance must be
    return rng.standard_normal(shape, np.float32) * np.float32(0.1)  # shift, mean: small


def randomized_light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """light_<name> with each ConstantOfShape weight replaced by a seeded random initializer of the
    same name and shape (weights He-scaled by fan-in, BatchNorm variances positive, means small)."""
    model = onnx.load(light_model_path(name))
    graph = model.graph
    rng = np.random.default_rng(seed)
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers = _consumers(graph)
    replaced: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in constants:
            continue
        shape = tuple(int(d) for d in constants[node.input[0]])
        role, consumer = _role(consumers, node.output[0])
        tensor = numpy_helper.from_array(_random_weight(rng, role, shape, consumer), node.output[0])
        graph.initializer.append(tensor)
        # these models are IR version 3, where every initializer must also be a graph input
        graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, shape))
        replaced.append(node)
    for node in replaced:
        graph.node.remove(node)
    _drop(graph, {node.input[0] for node in replaced} - {n for node in graph.node for n in node.input})
    _calibrate_logits(model, rng)
    return model


def _calibrate_logits(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    """Random deep nets make logits far too large (ResNet: a one-hot softmax) or too small (Inception:
    a flat one). Scale the weight and bias of the last Conv / Gemm before the output Softmax so the
    logits' standard deviation on a standard-normal input is LOGIT_STD."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    softmax = producers.get(graph.output[0].name)
    if softmax is None or softmax.op_type != "Softmax":
        return
    layer = producers.get(softmax.input[0])
    while layer is not None and layer.op_type in _HOMOGENEOUS:
        layer = producers.get(layer.input[0])
    if layer is None or layer.op_type not in ("Conv", "Gemm", "MatMul"):
        return
    logits = _run_to(model, softmax.input[0], rng)
    factor = np.float32(LOGIT_STD / max(float(logits.std()), 1e-12))
    initializers = {t.name: t for t in graph.initializer}
    for name in layer.input[1:]:
        while name in producers and producers[name].op_type in _PASS_THROUGH:
            name = producers[name].input[0]
        if name in initializers:
            tensor = initializers[name]
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * factor, tensor.name))


def _run_to(model: onnx.ModelProto, value: str, rng: np.random.Generator) -> np.ndarray:
    """`value` computed by onnxruntime on a standard-normal input."""
    import onnxruntime
    # expose `value` as an extra output just while serializing: a copy of the model would cost more
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(value))
    try:
        serialized = model.SerializeToString()
    finally:
        del model.graph.output[-1]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the Caffe2 exports carry unused initializers ORT warns about
    session = onnxruntime.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for inp in model.graph.input:
        if inp.name not in initializers:
            shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return session.run([value], feeds)[0]


def _drop(graph: onnx.GraphProto, names: set[str]) -> None:
    """Remove initializers (and their graph inputs) by name: the shapes of the replaced weights."""
    for container in (graph.initializer, graph.input):
        for i in reversed(range(len(container))):
            if container[i].name in names:
                del container[i]
