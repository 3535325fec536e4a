"""The .tflite emitter, run in LiteRT: int8 CNNs against the native int8 artifact, MiniLM in
dynamic-range int8 against fp32, fp16 weights, and one-op models for the ops the models lack."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.backends.tflite import read_metadata, to_tflite, write_tflite
from edgepack.errors import UnsupportedError
from edgepack.ir import DType, Graph, Node, QuantParams
from edgepack.models import minilm
from edgepack.models.digits import train_digits_cnn
from edgepack.models.mobilenet import train_mobilenet
from edgepack.reference import run_graph
from models_util import compile_graph, model_of

BUILDERS = {"digits_cnn": train_digits_cnn, "mobilenet": train_mobilenet}
MINILM_SENTENCES = 60


class LiteRT:
    """A .tflite in LiteRT's default configuration (XNNPACK where it applies), two threads."""

    def __init__(self, data: bytes) -> None:
        self.interpreter = Interpreter(model_content=data, num_threads=2)
        self.interpreter.allocate_tensors()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for detail in self.interpreter.get_input_details():
            self.interpreter.set_tensor(detail["index"], feeds[detail["name"]])
        self.interpreter.invoke()
        return {d["name"]: self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()}


def ops_of(data: bytes) -> list[str]:
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    return [names[model.operatorCodes[op.opcodeIndex].builtinCode] for op in model.subgraphs[0].operators]


@pytest.fixture(scope="module")
def cache_dir(request, tmp_path_factory):
    """Trained weights and the exported MiniLM, kept in pytest's cache across runs when the cache is on."""
    if request.config.pluginmanager.hasplugin("cacheprovider"):
        return request.config.cache.mkdir("edgepack-models")
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module", params=list(BUILDERS))
def int8_cnn(request, cache_dir, tmp_path_factory):
    model, data = BUILDERS[request.param](cache_dir)
    directory = tmp_path_factory.mktemp(request.param)
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(data.x_test[:1]),
                                output=directory / "model.epk", precision="int8",
                                calibration_data=[{"x": x[None]} for x in data.x_train[:64]], progress=False)
    return request.param, compiled, data


def test_int8_cnn_agrees_with_native_int8(int8_cnn, tmp_path):
    """Every test sample: within 1 LSB of the native int8 artifact on >= 99.9 % of elements, same top-1."""
    name, compiled, data = int8_cnn
    path = tmp_path / f"{name}.tflite"
    write_tflite(compiled.graph, path)
    litert, native = LiteRT(path.read_bytes()), edgepack.load(compiled.path, num_threads=2)
    output = compiled.graph.outputs[0]
    dequantize = next(n for n in compiled.graph.nodes if n.outputs == [output])
    assert dequantize.op == "Dequantize"
    lsb = float(compiled.graph.values[dequantize.inputs[0]].quant.scale[0])
    got = np.concatenate([litert.run({"x": x[None]})[output] for x in data.x_test])
    want = np.concatenate([native.run({"x": x[None]})[output] for x in data.x_test])
    within = float(np.mean(np.abs(got - want) <= lsb * (1 + 1e-4)))
    assert within >= 0.999, f"{name}: {within:.5f} of elements within 1 LSB"
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    assert (got.argmax(1) == data.y_test).mean() > 0.9


def test_int8_cnn_structure(int8_cnn):
    """Per-channel int8 weights, int32 biases, activations as exact GATHER tables, NHWC inside with
    the only data transposes at the graph boundary."""
    name, compiled, _ = int8_cnn
    data = to_tflite(compiled.graph)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    tensors = model.subgraphs[0].tensors
    types = {t.name.decode(): t.type for t in tensors}
    conv_weights = [t for t in tensors if t.type == schema.TensorType.INT8 and t.buffer and len(t.shape) == 4]
    assert conv_weights and all(len(t.quantization.scale) == (t.shape[3] if t.shape[0] == 1 else t.shape[0])
                                for t in conv_weights)
    assert any(t.type == schema.TensorType.INT32 and t.buffer and t.quantization is not None for t in tensors)
    ops = ops_of(data)
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    assert ops.count("TRANSPOSE") <= 1, ops    # the input's NCHW -> NHWC; the flatten is absorbed by the FC weights
    assert types["x"] == schema.TensorType.FLOAT32
    luts = sum(n.op == "Lut" for n in compiled.graph.nodes)
    assert ops.count("GATHER") == luts
    metadata = read_metadata(data)
    assert metadata["layouts"] and metadata["producer"].startswith("edgepack")


def test_fp32_and_fp16_cnn_match_the_reference(cache_dir, tmp_path):
    model, data = train_mobilenet(cache_dir)
    for precision, tolerance in (("fp32", 1e-4), ("fp16", 1e-4)):
        compiled = edgepack.compile(model, example_inputs=torch.from_numpy(data.x_test[:1]), precision=precision,
                                    output=tmp_path / f"{precision}.tflite", progress=False)
        tflite = compiled.path.read_bytes()
        if precision == "fp16":
            assert "DEQUANTIZE" in ops_of(tflite)
            model_t = schema.ModelT.InitFromPackedBuf(tflite, 0)
            assert sum(t.type == schema.TensorType.FLOAT16 for t in model_t.subgraphs[0].tensors) >= 20
        litert = LiteRT(tflite)
        for x in data.x_test[:32]:
            want = run_graph(compiled.graph, {"x": x[None]})
            got = litert.run({"x": x[None]})
            for name in want:
                np.testing.assert_allclose(got[name], want[name], rtol=tolerance, atol=tolerance)


@pytest.fixture(scope="module")
def minilm_source(cache_dir):
    path = cache_dir / "minilm.onnx"
    if not path.exists():
        minilm.export_minilm_onnx(path)
    return path


def _embeddings(runner, feeds_list) -> np.ndarray:
    return np.stack([runner.run(feeds)["embedding"].reshape(-1) for feeds in feeds_list]).astype(np.float64)


class _OnnxRuntime:
    def __init__(self, path) -> None:
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(self, feeds):
        return {"embedding": self.session.run(None, feeds)[0]}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _second_ffn_matmuls(graph: Graph) -> list[str]:
    producers = {out: node for node in graph.nodes for out in node.outputs}
    return [n.name for n in graph.nodes if n.op == "MatMul" and n.inputs[0] in producers
            and producers[n.inputs[0]].op == "Gelu"]


def test_minilm_dynamic_range(minilm_source, tmp_path):
    """FULLY_CONNECTED with int8 weights and float inputs (LiteRT's hybrid kernel, asymmetric rows) and
    the int8 embedding table through EMBEDDING_LOOKUP: edgepack's dynamic int8 scheme, so the .tflite
    tracks the native artifact; with the six GELU-fed matmuls kept fp32 it holds mean cosine 0.999."""
    sentences = minilm.tokenize(minilm.sentences(MINILM_SENTENCES))
    fp32 = _embeddings(_OnnxRuntime(minilm_source), sentences)
    dynamic = edgepack.compile(minilm_source, precision="int8-dynamic", output=tmp_path / "dynamic",
                               format=["epk", "tflite"], progress=False)
    data = dynamic.artifacts["tflite"].read_bytes()
    ops = ops_of(data)
    assert ops.count("FULLY_CONNECTED") == 36 and "EMBEDDING_LOOKUP" in ops and "BATCH_MATMUL" in ops
    assert len(data) < 26e6                     # int8 weights: about a quarter of the fp32 model's 90 MB
    tflite = _embeddings(LiteRT(data), sentences)
    native = _embeddings(edgepack.load(dynamic.artifacts["epk"], num_threads=2), sentences)
    # the same scheme: as close to fp32 as the native artifact, and close to it (row quantization
    # rounds the same values, LiteRT nudges zero points its own way)
    assert abs(_cosines(tflite, fp32).mean() - _cosines(native, fp32).mean()) < 5e-4
    assert _cosines(tflite, fp32).mean() >= 0.998
    assert _cosines(tflite, native).mean() >= 0.999

    fp32_graph = compile_graph(str(minilm_source))
    recipe = {"overrides": [{"match": name, "precision": "fp32"} for name in _second_ffn_matmuls(fp32_graph)]}
    assert len(recipe["overrides"]) == 6
    mixed = edgepack.compile(minilm_source, precision="int8-dynamic", recipe=recipe,
                             output=tmp_path / "mixed.tflite", progress=False)
    cosines = _cosines(_embeddings(LiteRT(mixed.path.read_bytes()), sentences), fp32)
    assert len(cosines) >= 50 and cosines.mean() >= 0.999, cosines.mean()


def test_minilm_fp32_matches_onnxruntime(minilm_source, tmp_path):
    compiled = edgepack.compile(minilm_source, precision="fp32", output=tmp_path / "fp32.tflite", progress=False)
    sentences = minilm.tokenize(minilm.sentences(5))
    cosines = _cosines(_embeddings(LiteRT(compiled.path.read_bytes()), sentences),
                       _embeddings(_OnnxRuntime(minilm_source), sentences))
    assert cosines.min() >= 0.99999


# ---- one-op models for the ops the three models lack ----------------------------------------------
def _one_op(op: str, x_shape, consts=None, out_count=1, **attrs) -> onnx.ModelProto:
    consts = consts or {}
    node = helper.make_node(op, ["x", *consts], [f"y{i}" for i in range(out_count)], **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_empty_tensor_value_info(f"y{i}") for i in range(out_count)],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    return model_of(graph, 17)


_RNG = np.random.default_rng(0)
_W = lambda *shape: _RNG.standard_normal(shape).astype(np.float32)  # noqa: E731
ONE_OP = {
    "conv_same_stride2": _one_op("Conv", (1, 4, 9, 9), {"w": _W(6, 4, 3, 3), "b": _W(6)}, strides=[2, 2],
                                 auto_pad="SAME_UPPER"),
    "conv_explicit_pads_dilated": _one_op("Conv", (1, 4, 9, 9), {"w": _W(6, 4, 3, 3)}, pads=[2, 1, 0, 1],
                                          dilations=[2, 1]),
    "conv_grouped": _one_op("Conv", (1, 4, 6, 6), {"w": _W(6, 2, 3, 3)}, group=2, pads=[1, 1, 1, 1]),
    "depthwise_multiplier2": _one_op("Conv", (1, 3, 6, 6), {"w": _W(6, 1, 3, 3)}, group=3, pads=[1, 1, 1, 1]),
    "conv_transpose": _one_op("ConvTranspose", (1, 3, 5, 5), {"w": _W(3, 4, 3, 3), "b": _W(4)}, strides=[2, 2],
                              pads=[1, 1, 1, 1], output_padding=[1, 1]),
    "average_pool_same": _one_op("AveragePool", (1, 3, 7, 7), kernel_shape=[3, 3], strides=[2, 2],
                                 auto_pad="SAME_UPPER"),
    "max_pool_pads": _one_op("MaxPool", (1, 3, 7, 7), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "softmax_channels": _one_op("Softmax", (1, 5, 3, 3), axis=1),
    "layer_norm": _one_op("LayerNormalization", (2, 7, 16), {"s": _W(16), "b": _W(16)}, axis=-1),
    "erf": _one_op("Erf", (3, 50)),
    "resize_bilinear": _one_op("Resize", (1, 2, 4, 4), {"roi": np.zeros(0, np.float32),
                                                        "scales": np.array([1, 1, 2, 2], np.float32)},
                               mode="linear", coordinate_transformation_mode="half_pixel"),
    "resize_nearest": _one_op("Resize", (1, 2, 4, 4), {"roi": np.zeros(0, np.float32),
                                                       "scales": np.array([1, 1, 2, 2], np.float32)},
                              mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    "pad_reflect": _one_op("Pad", (1, 2, 5, 5), {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)}, mode="reflect"),
    "depth_to_space_crd": _one_op("DepthToSpace", (1, 8, 3, 3), blocksize=2, mode="CRD"),
    "split": _one_op("Split", (2, 6, 4), {"s": np.array([2, 4], np.int64)}, out_count=2, axis=1),
    "hard_sigmoid": _one_op("HardSigmoid", (2, 30), alpha=0.2, beta=0.5),
    "reduce_max_keep": _one_op("ReduceMax", (2, 3, 4, 5), {"a": np.array([1, 3], np.int64)}, keepdims=1),
}


@pytest.mark.parametrize("name", list(ONE_OP))
def test_one_op_matches_the_reference(name):
    graph = compile_graph(ONE_OP[name])
    x = _RNG.standard_normal(graph.values["x"].shape).astype(np.float32)
    want = run_graph(graph, {"x": x})
    got = LiteRT(to_tflite(graph)).run({"x": x})
    for output in graph.outputs:
        np.testing.assert_allclose(got[output], want[output], rtol=1e-4, atol=1e-5, err_msg=f"{name}: {output}")


def test_unsupported_weights_name_the_node():
    graph = Graph("int4")
    graph.add_value("x", DType.FLOAT32, (1, 64))
    graph.add_value("w", DType.INT4, (64, 8), np.zeros((64, 8), np.int8)).quant = \
        QuantParams(np.ones(8, np.float32), np.zeros(8, np.int32), 0, 64)
    graph.add_value("y", DType.FLOAT32, (1, 8))
    graph.nodes.append(Node("MatMul", "the_matmul", ["x", "w"], ["y"], {"activation": "none"}))
    graph.inputs, graph.outputs = ["x"], ["y"]
    with pytest.raises(UnsupportedError, match="the_matmul"):
        to_tflite(graph)
