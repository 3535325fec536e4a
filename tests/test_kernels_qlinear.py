"""Native MatMul and Conv on quantized and low-precision operands (native/kernels/ref/qlinear.cpp, qconv.cpp
and the integer GEMM core qgemm.h) against the numpy reference (sdk/edgepack/reference/quantized.py):

  static int8    int8 / uint8 codes x int8 weights per output channel + int32 bias -> codes: bit for bit;
  dynamic int8   float x int8 weights, rows quantized at run time -> float: bit for bit as well (the
                 kernel's float epilogue does the reference's float32 operations in the same order);
  weight-only    float16 weights (MatMul, Conv), block-wise int4 MatMul weights, int8 Conv weights under
                 a float input -> float, within float tolerance.

Shapes sweep around the register tiles of every build (4 to 8 rows, 8 to 32 columns, k-groups of 2 or 4):
1, tile - 1, tile, tile + 1 and odd sizes, with batch dimensions; convolutions cover groups, depthwise,
strides, dilations and asymmetric pads; parameters put zero points at the ends of the range and scale
ratios at the extremes. Artifacts with bad parameters must fail to load with an error naming the op and
the problem. End to end: the digits CNN compiled at each precision against reference.run_graph. The
Python extension runs this machine's kernels; the AVX2 build and the aarch64 build (sdot, under qemu)
run one op of every kernel path against the reference too."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import edgepack
from edgepack.ir import DType, QuantParams
from edgepack.models.digits import train_digits_cnn
from edgepack.profiler.native_build import build_bench, read_outputs, run_bench
from edgepack.reference import run_graph
from op_harness import op_graph, run_op, write_graph

RNG = np.random.default_rng(20)
RANGES = {np.int8: (-128, 127), np.uint8: (0, 255)}
NONE = {"activation": "none", "act_min": 0.0, "act_max": 0.0}
RELU = {**NONE, "activation": "relu"}


def clip(lo: float, hi: float) -> dict:
    return {"activation": "clip", "act_min": lo, "act_max": hi}


def qp(scale: float, zero: int = 0) -> QuantParams:
    return QuantParams(np.array([scale], np.float32), np.array([zero], np.int32))


def per_channel(scales, axis: int, zeros=None, block_size: int = 0) -> QuantParams:
    scales = np.asarray(scales, np.float32).reshape(-1)
    zeros = np.zeros(scales.size, np.int32) if zeros is None else np.asarray(zeros, np.int32).reshape(-1)
    return QuantParams(scales, zeros, axis, block_size)


def codes(shape, dtype) -> np.ndarray:
    lo, hi = RANGES[dtype]
    return RNG.integers(lo, hi + 1, size=shape).astype(dtype)


def weights(shape) -> np.ndarray:
    return RNG.integers(-128, 128, size=shape).astype(np.int8)


def exact(op: str, attrs: dict, inputs: list, *, num_threads: int = 2, **kwargs) -> np.ndarray:
    native, reference = run_op(op, attrs, inputs, num_threads=num_threads, **kwargs)
    assert native[0].dtype == reference[0].dtype and native[0].shape == reference[0].shape
    np.testing.assert_array_equal(native[0], reference[0])
    return native[0]


def close(op: str, attrs: dict, inputs: list, *, rtol: float = 1e-4, num_threads: int = 2, **kwargs) -> None:
    native, reference = run_op(op, attrs, inputs, num_threads=num_threads, **kwargs)
    assert native[0].dtype == reference[0].dtype == np.float32 and native[0].shape == reference[0].shape
    np.testing.assert_allclose(native[0], reference[0], rtol=rtol, atol=rtol * max(1.0, np.abs(reference[0]).max()))


def rejected(op: str, attrs: dict, inputs: list, *needles: str, consts=frozenset(), quant=None, dtypes=None) -> None:
    """Loading the one-node graph fails with an error naming the op and every needle."""
    graph, _ = op_graph(op, attrs, inputs, set(consts), None, quant, dtypes)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_graph(graph, Path(tmp) / "bad.epk")
        with pytest.raises((edgepack.ArtifactError, edgepack.UnsupportedError)) as err:
            edgepack.load(path)
    for needle in (graph.nodes[0].name,) + needles:
        assert needle in str(err.value), f"'{needle}' not in: {err.value}"


# ---- static int8 ---------------------------------------------------------------------------------------
# (zero point of x, zero point of y) as int8 codes: the ends of the range, both ways, and the middle.
ZERO_POINTS = [(-128, 127), (127, -128), (0, 0), (-5, 37), (100, -100)]


def static_quant(dtype, index: int, w_scales: np.ndarray, channel_axis: int, bias: bool = True) -> dict:
    zx, zy = ZERO_POINTS[index % len(ZERO_POINTS)]
    shift = 128 if dtype == np.uint8 else 0
    sx = np.float32(RNG.uniform(0.005, 0.1))
    quant = {0: qp(sx, zx + shift), 1: per_channel(w_scales, channel_axis),
             "out0": qp(RNG.uniform(0.05, 2.0), zy + shift)}
    if bias:
        quant[2] = per_channel((np.float64(sx) * w_scales.astype(np.float64)).astype(np.float32), 0)
    return quant


def static_matmul(a: np.ndarray, k: int, n: int, index: int = 0, attrs: dict = NONE, bias: bool = True,
                  num_threads: int = 2) -> np.ndarray:
    w_scales = RNG.uniform(1e-4, 0.03, n).astype(np.float32)
    inputs = [a, weights((k, n))] + ([RNG.integers(-30000, 30000, n).astype(np.int32)] if bias else [])
    quant = static_quant(a.dtype.type, index, w_scales, 1, bias)
    return exact("MatMul", attrs, inputs, consts={1, 2}, quant=quant, num_threads=num_threads)


# Rows around the row tiles (4, 6, 8), columns around the column tiles (8, 16, 32); K cycles through
# values around the k-groups (2, 4) and longer reductions.
ROWS = [1, 3, 4, 5, 6, 7, 8, 9, 13]
COLS = [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47]
DEPTHS = [1, 2, 3, 4, 5, 8, 17, 64, 131]
SHAPES = [(m, DEPTHS[(i + j) % len(DEPTHS)], n) for i, m in enumerate(ROWS) for j, n in enumerate(COLS)]


@pytest.mark.parametrize("m,k,n", SHAPES, ids=str)
def test_static_matmul_shapes(m, k, n):
    index = m + n
    dtype = np.int8 if index % 2 else np.uint8
    static_matmul(codes((m, k), dtype), k, n, index)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8], ids=lambda d: d.__name__)
@pytest.mark.parametrize("attrs", [RELU, clip(-0.5, 0.8), clip(-1e6, 1e6), clip(0.3, 0.1), clip(2.0, 3.0)], ids=str)
def test_static_matmul_fused_activation(attrs, dtype):
    """relu and clip are a clamp on the output codes (bounds beyond the range, inverted, all above)."""
    static_matmul(codes((2, 9, 40), dtype), 40, 19, 1, attrs)


@pytest.mark.parametrize("batch", [(2,), (2, 3), (1, 1, 2)], ids=str)
@pytest.mark.parametrize("num_threads", [1, 3])
def test_static_matmul_batch_and_threads(batch, num_threads):
    static_matmul(codes(batch + (21, 70), np.int8), 70, 45, 3, num_threads=num_threads)


def test_static_matmul_without_bias_and_per_tensor_weight():
    static_matmul(codes((6, 33), np.int8), 33, 20, 2, bias=False)
    a, w = codes((5, 16), np.int8), weights((16, 9))
    bias_scale = np.float32(np.float64(np.float32(0.02)) * np.float64(np.float32(0.01)))
    quant = {0: qp(0.02, 3), 1: qp(0.01), 2: per_channel(bias_scale, 0), "out0": qp(0.3, -2)}
    exact("MatMul", NONE, [a, w, RNG.integers(-999, 999, 9).astype(np.int32)], consts={1, 2}, quant=quant)


@pytest.mark.parametrize("sx,sw,sy", [(1e-4, 1e-4, 1e3), (0.1, 0.01, 1e-9), (2.0, 1.0, 3e-9), (0.05, 0.02, 0.0371)],
                         ids=str)
def test_static_matmul_extreme_scale_ratios(sx, sw, sy):
    """Multipliers below 2^-32 (every output is the zero point), just below 2^30, and in between."""
    a, w = codes((7, 24), np.int8), weights((24, 10))
    quant = {0: qp(sx, -7), 1: per_channel(np.full(10, sw), 1), "out0": qp(sy, 11)}
    exact("MatMul", NONE, [a, w], consts={1}, quant=quant)


def test_static_matmul_bias_at_the_int32_limits():
    """acc + bias leaves int32 for some channels: that bias is added in int64, as the reference does."""
    a, w = codes((9, 50), np.int8), weights((50, 12))
    bias = RNG.integers(-1000, 1000, 12).astype(np.int32)
    bias[:4] = [2**31 - 1, -2**31, 2**31 - 5000, -2**31 + 7]
    w_scales = np.full(12, 1e-3, np.float32)
    bias_scales = (np.float64(np.float32(0.05)) * w_scales.astype(np.float64)).astype(np.float32)
    quant = {0: qp(0.05, 3), 1: per_channel(w_scales, 1), 2: per_channel(bias_scales, 0), "out0": qp(1e-6, 0)}
    exact("MatMul", NONE, [a, w, bias], consts={1, 2}, quant=quant)


CONV_CASES = [
    # input, output channels, kernel, strides, pads (top, left, bottom, right), dilations, group
    ((1, 1, 8, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((1, 3, 9, 9), 8, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((2, 5, 11, 7), 9, (3, 2), (1, 1), (1, 0, 2, 1), (1, 1), 1),
    ((1, 4, 10, 12), 7, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((1, 9, 7, 33), 17, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1), 1),
    ((1, 8, 13, 11), 16, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    ((1, 8, 13, 11), 7, (3, 3), (2, 1), (0, 1, 1, 2), (2, 1), 1),
    ((1, 6, 15, 14), 5, (5, 3), (3, 2), (2, 0, 1, 3), (1, 2), 1),
    ((1, 12, 10, 10), 24, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),
    ((1, 16, 12, 12), 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),   # depthwise
    ((2, 16, 9, 9), 16, (5, 5), (2, 3), (2, 2, 2, 2), (1, 1), 16),     # depthwise, strided
    ((1, 10, 9, 8), 10, (3, 3), (1, 1), (0, 2, 1, 0), (2, 1), 10),     # depthwise, dilated, asymmetric
    ((1, 8, 7, 300), 8, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1), 8),      # depthwise, rows wider than a block
    # depthwise on stride-split planes: stride 2 with odd / even left pads, stride 3, stride 2 dilated,
    # and rows wider than the 4096-sum grid (chunked)
    ((1, 6, 11, 13), 6, (3, 3), (2, 2), (1, 1, 0, 2), (1, 1), 6),
    ((1, 5, 10, 16), 5, (3, 3), (2, 2), (0, 2, 1, 1), (1, 1), 5),
    ((1, 4, 14, 17), 4, (3, 4), (3, 3), (1, 2, 2, 1), (1, 1), 4),
    ((1, 3, 13, 15), 3, (3, 3), (2, 2), (2, 3, 2, 1), (2, 3), 3),
    ((1, 3, 3, 4200), 3, (2, 3), (1, 1), (1, 1, 0, 1), (1, 1), 3),
    ((1, 3, 3, 8500), 3, (1, 3), (1, 2), (0, 1, 0, 0), (1, 1), 3),
    # depthwise channels-last (output planes of <= 64 pixels): blocks of 16 channels and a tail
    ((2, 37, 4, 4), 37, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 37),
    ((1, 40, 8, 7), 40, (5, 5), (2, 2), (2, 1, 2, 3), (1, 1), 40),
    ((1, 33, 6, 6), 33, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 33),     # dilated, windows partly in the padding
    ((1, 18, 2, 2), 18, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 18),     # MobileNet's 2x2 stage
    ((1, 16, 12, 12), 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),   # channel multiplier 2
    ((1, 12, 10, 10), 6, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 3),     # grouped pointwise
    ((1, 12, 9, 9), 18, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),      # grouped, strided
    ((1, 20, 8, 9), 10, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 5),      # 4 channels per group
    ((1, 64, 20, 20), 33, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((1, 3, 2, 2), 5, (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), 1),        # a single output pixel
    ((1, 2, 3, 3), 3, (3, 3), (1, 1), (3, 3, 3, 3), (1, 1), 1),        # windows wholly in the padding
]


def static_conv(shape, m, kernel, strides, pads, dilations, group, dtype, index: int, attrs: dict = NONE,
                num_threads: int = 2) -> np.ndarray:
    w_scales = RNG.uniform(1e-4, 0.03, m).astype(np.float32)
    inputs = [codes(shape, dtype), weights((m, shape[1] // group) + kernel),
              RNG.integers(-30000, 30000, m).astype(np.int32)]
    attrs = {"strides": list(strides), "pads": list(pads), "dilations": list(dilations), "group": group, **attrs}
    return exact("Conv", attrs, inputs, consts={1, 2}, quant=static_quant(dtype, index, w_scales, 0),
                 num_threads=num_threads)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8], ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_static_conv(case, dtype):
    index = CONV_CASES.index(case)
    attrs = [NONE, RELU, clip(-0.4, 0.9)][index % 3]
    static_conv(*case, dtype, index, attrs)


@pytest.mark.parametrize("num_threads", [1, 3])
def test_static_conv_threads(num_threads):
    static_conv((2, 24, 17, 19), 40, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, np.int8, 1, num_threads=num_threads)
    static_conv((1, 24, 17, 19), 24, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 24, np.uint8, 2, num_threads=num_threads)


# ---- dynamic int8 ----------------------------------------------------------------------------------------
def dynamic_matmul(a: np.ndarray, n: int, attrs: dict = NONE, bias: bool = True, per_tensor: bool = False,
                   num_threads: int = 2) -> np.ndarray:
    k = a.shape[-1]
    scales = np.float32(0.004) if per_tensor else RNG.uniform(1e-3, 1e-2, n)
    inputs = [a, RNG.integers(-127, 128, (k, n)).astype(np.int8)]
    if bias:
        inputs.append(RNG.standard_normal(n).astype(np.float32))
    quant = {1: qp(scales) if per_tensor else per_channel(scales, 1)}
    return exact("MatMul", attrs, inputs, consts={1, 2}, quant=quant, num_threads=num_threads)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("m,k,n", [(1, 5, 7), (6, 37, 21), (19, 64, 33), (128, 384, 96)], ids=str)
def test_dynamic_matmul_input_scale(m, k, n, bias):
    """A folded smoothing Mul (MatMul input 3): A times the scale in float32, then quantized: bit for
    bit as the reference, and not what the MatMul gives without it."""
    a = (RNG.standard_normal((m, k)) * RNG.uniform(0.1, 10, k)).astype(np.float32)
    scale = RNG.uniform(0.05, 4, k).astype(np.float32)
    w = RNG.integers(-127, 128, (k, n)).astype(np.int8)
    quant = {1: per_channel(RNG.uniform(1e-3, 1e-2, n), 1)}
    b = RNG.standard_normal(n).astype(np.float32) if bias else None
    scaled = exact("MatMul", NONE, [a, w, b, scale], consts={1, 2, 3}, quant=quant)
    np.testing.assert_array_equal(scaled, exact("MatMul", NONE, [a * scale, w, b], consts={1, 2}, quant=quant))
    assert not np.array_equal(scaled, exact("MatMul", NONE, [a, w, b], consts={1, 2}, quant=quant))
    rejected("MatMul", NONE, [a, w, b, scale[:-1]], "input_scale", consts={1, 2, 3}, quant=quant)


@pytest.mark.parametrize("m,k,n", SHAPES, ids=str)
def test_dynamic_matmul_shapes(m, k, n):
    dynamic_matmul((RNG.standard_normal((m, k)) * RNG.uniform(0.01, 100)).astype(np.float32), n)


def _rows(kind: str, k: int) -> np.ndarray:
    x = RNG.standard_normal((6, k)).astype(np.float32)
    if kind == "zero":
        x[:] = 0.0
    elif kind == "positive":      # lo = 0: zero point 0
        x = np.abs(x)
    elif kind == "negative":      # hi = 0: zero point 255
        x = -np.abs(x)
    elif kind == "outlier":       # one value dominates the row's range
        x[:, 3 % k] = 1e4
    elif kind == "ties":          # a / s lands on exact halves of the row's grid
        grid = np.float32(2.0) / np.float32(255.0)
        x = ((RNG.integers(-200, 200, (6, k)) + 0.5) * grid).astype(np.float32)
        x[:, 0], x[:, -1] = -np.float32(1.0), np.float32(1.0)
    elif kind == "tiny":
        x *= np.float32(1e-30)
    elif kind == "lopsided":      # GELU-like: many small negatives, a long positive tail
        x = np.where(x < 0, x * 0.05, x * 4).astype(np.float32)
    return x


@pytest.mark.parametrize("kind", ["zero", "positive", "negative", "outlier", "ties", "tiny", "lopsided"])
def test_dynamic_matmul_row_quantization(kind):
    dynamic_matmul(_rows(kind, 37), 21)
    dynamic_matmul(_rows(kind, 64)[None], 33, RELU)


@pytest.mark.parametrize("attrs", [RELU, clip(-0.25, 0.5)], ids=str)
def test_dynamic_matmul_activation_bias_and_per_tensor(attrs):
    a = RNG.standard_normal((2, 11, 29)).astype(np.float32)
    dynamic_matmul(a, 17, attrs)
    dynamic_matmul(a, 17, attrs, bias=False)
    dynamic_matmul(a, 17, attrs, per_tensor=True)


@pytest.mark.parametrize("num_threads", [1, 3])
def test_dynamic_matmul_transformer_shape(num_threads):
    """The MiniLM feed-forward shapes (M=128, K=384 / 1536), cut in N to keep the test quick."""
    dynamic_matmul(RNG.standard_normal((1, 128, 384)).astype(np.float32), 96, num_threads=num_threads)
    gelu = RNG.standard_normal((1, 128, 1536)).astype(np.float32)
    dynamic_matmul(np.where(gelu < 0, gelu * 0.05, gelu).astype(np.float32), 40, num_threads=num_threads)


# ---- weight-only -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("a_shape,b_shape", [((1, 32), (32, 1)), ((5, 64), (64, 33)), ((2, 7, 48), (48, 17)),
                                             ((3, 5, 16), (3, 16, 7)), ((2, 1, 5, 16), (3, 16, 7)),
                                             ((128, 384), (384, 96))], ids=str)
def test_fp16_matmul(a_shape, b_shape):
    a = RNG.standard_normal(a_shape).astype(np.float32)
    b = RNG.standard_normal(b_shape).astype(np.float16)
    close("MatMul", RELU, [a, b, RNG.standard_normal(b_shape[-1]).astype(np.float32)], consts={1, 2})
    close("MatMul", NONE, [a, b], consts={1})


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_fp16_conv(case):
    shape, m, kernel, strides, pads, dilations, group = case
    attrs = {"strides": list(strides), "pads": list(pads), "dilations": list(dilations), "group": group, **RELU}
    x = RNG.standard_normal(shape).astype(np.float32)
    w = RNG.standard_normal((m, shape[1] // group) + kernel).astype(np.float16)
    close("Conv", attrs, [x, w, RNG.standard_normal(m).astype(np.float32)], consts={1, 2})


def test_int8_weight_conv_under_float_input_is_weight_only():
    """The reference dequantizes an int8 Conv weight when the input is float (there is no dynamic Conv)."""
    x = RNG.standard_normal((1, 6, 9, 9)).astype(np.float32)
    w = weights((8, 6, 3, 3))
    attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1, **NONE}
    close("Conv", attrs, [x, w], consts={1}, quant={1: per_channel(RNG.uniform(0.01, 0.1, 8), 0)})


INT4_CASES = [((1, 32), 1, 32), ((3, 64), 33, 32), ((2, 9, 128), 47, 64), ((13, 256), 40, 128), ((7, 96), 31, 32),
              ((128, 384), 96, 128)]


@pytest.mark.parametrize("a_shape,n,block", INT4_CASES, ids=str)
def test_int4_matmul(a_shape, n, block):
    """Blocks of `block` along K, packed two per byte: odd N starts rows on a high nibble."""
    k = a_shape[-1]
    a = RNG.standard_normal(a_shape).astype(np.float32)
    q = RNG.integers(-8, 8, (k, n)).astype(np.int8)
    q.reshape(-1)[:2] = [-8, 7]
    quant = {1: per_channel(RNG.uniform(0.01, 0.1, (k // block) * n), 0, block_size=block)}
    bias = RNG.standard_normal(n).astype(np.float32)
    for attrs, inputs, consts in [(NONE, [a, q], {1}), (RELU, [a, q, bias], {1, 2})]:
        for num_threads in (1, 3):
            close("MatMul", attrs, inputs, consts=consts, quant=quant, dtypes={1: DType.INT4}, num_threads=num_threads)


def test_int4_matmul_blocks_along_n_and_batched():
    """Layouts the compiler does not emit still run (dequantized at load), as the reference defines them."""
    a = RNG.standard_normal((4, 32)).astype(np.float32)
    q = RNG.integers(-8, 8, (32, 64)).astype(np.int8)
    close("MatMul", NONE, [a, q], consts={1}, quant={1: per_channel(RNG.uniform(0.01, 0.1, 64), 1, block_size=32)},
          dtypes={1: DType.INT4})
    q3 = RNG.integers(-8, 8, (2, 32, 8)).astype(np.int8)
    close("MatMul", NONE, [RNG.standard_normal((2, 3, 32)).astype(np.float32), q3], consts={1},
          quant={1: per_channel(RNG.uniform(0.01, 0.1, 2 * 8), 1, block_size=32)}, dtypes={1: DType.INT4})


# ---- artifacts with bad parameters -----------------------------------------------------------------------
A8 = np.zeros((3, 4), np.int8)
W8 = np.zeros((4, 4), np.int8)
B32 = np.zeros(4, np.int32)
BIAS_SCALE = np.float32(np.float64(np.float32(0.1)) * np.float64(np.float32(0.01)))  # s_x * s_w, as the compiler
GOOD = {0: qp(0.1), 1: per_channel(np.full(4, 0.01), 1), 2: per_channel(np.full(4, BIAS_SCALE), 0), "out0": qp(0.2)}
GOOD_CONV = {**GOOD, 1: per_channel(np.full(4, 0.01), 0)}
X4 = np.zeros((1, 4, 5, 5), np.int8)
W4 = np.zeros((4, 4, 3, 3), np.int8)
CONV_ATTRS = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1, **NONE}
F32 = np.zeros((3, 64), np.float32)
I4 = np.zeros((64, 8), np.int8)

BAD_CASES = [
    ("MatMul", [A8, W8, B32], dict(quant={**GOOD, 1: per_channel(np.full(3, 0.01), 1)}),
     ["weight", "3 scales, expected 1 or 4"]),
    ("MatMul", [A8, W8, B32], dict(quant={**GOOD, 1: per_channel(np.full(4, 0.01), 0)}),
     ["scales along axis 0, expected axis 1"]),
    ("MatMul", [A8, W8, B32], dict(quant={**GOOD, 1: per_channel(np.full(4, 0.01), 1, zeros=[0, 0, 3, 0])}),
     ["zero point 3", "symmetric"]),
    ("MatMul", [A8, W8, B32], dict(quant={**GOOD, 2: per_channel(np.full(4, 0.002), 0)}),
     ["bias", "expected s_x * s_w"]),
    ("MatMul", [A8, W8, B32], dict(quant={k: v for k, v in GOOD.items() if k != 2}),
     ["bias", "no quantization parameters"]),
    ("MatMul", [A8, W8, B32.astype(np.float32)], dict(quant=GOOD), ["bias", "expected int32"]),
    ("MatMul", [A8, W8, B32], dict(quant=GOOD, dtypes={"out0": DType.UINT8}), ["output", "expected int8"]),
    ("MatMul", [A8, W8, B32], dict(quant={**GOOD, 0: per_channel([0.1, 0.2], 0)}), ["input", "2 scales, expected 1"]),
    ("MatMul", [A8, W8], dict(quant={0: qp(1e4), 1: per_channel(np.full(4, 1e4), 1), "out0": qp(1e-4)}),
     ["multiplier", "s_x * s_w / s_y", "2^30"]),
    ("MatMul", [A8, W8], dict(consts=set(), quant={k: v for k, v in GOOD.items() if k != 2}), ["must be a constant"]),
    ("MatMul", [A8, W8.astype(np.float32)], dict(quant={0: qp(0.1), "out0": qp(0.2)}), ["weight", "expected int8"]),
    ("MatMul", [np.zeros((1, 70000), np.int8), np.full((70000, 1), 127, np.int8)],
     dict(quant={0: qp(0.1, 127), 1: qp(0.01), "out0": qp(0.2)}), ["overflow the int32 accumulator"]),
    ("Conv", [X4, W4, B32], dict(quant={**GOOD_CONV, 1: per_channel(np.full(3, 0.01), 0)}),
     ["3 scales, expected 1 or 4"]),
    ("Conv", [X4, W4, B32], dict(quant={**GOOD_CONV, 2: per_channel(np.full(4, 0.5), 0)}),
     ["bias", "expected s_x * s_w"]),
    ("Conv", [X4, W4, B32], dict(quant={**GOOD_CONV, 1: per_channel(np.full(4, 0.01), 1)}),
     ["scales along axis 1, expected axis 0"]),
    ("Conv", [X4, W4], dict(quant={0: qp(0.1), 1: per_channel(np.full(4, 0.01), 0)}), ["output", "no quantization"]),
    # dynamic int8
    ("MatMul", [F32, np.zeros((64, 8), np.int8)], dict(quant={1: per_channel(np.full(5, 0.01), 1)}),
     ["5 scales, expected 1 or 8"]),
    ("MatMul", [F32, np.zeros((64, 8), np.int8)],
     dict(quant={1: per_channel(np.full(8, 0.01), 1, zeros=[1] + [0] * 7)}),
     ["zero point 1"]),
    ("MatMul", [F32, np.zeros((64, 8), np.int8)], {}, ["no quantization parameters"]),
    # int4
    ("MatMul", [F32, I4], dict(quant={1: per_channel(np.full(8, 0.1), 0, block_size=48)}, dtypes={1: DType.INT4}),
     ["block size 48", "does not divide"]),
    ("MatMul", [F32, I4], dict(quant={1: per_channel(np.full(7, 0.1), 0, block_size=32)}, dtypes={1: DType.INT4}),
     ["7 scales, expected 16"]),
    # weight-only Conv
    ("Conv", [np.zeros((1, 4, 5, 5), np.float32), W4.astype(np.float16)], dict(consts=set()), ["must be a constant"]),
]


@pytest.mark.parametrize("op,inputs,kwargs,needles", BAD_CASES, ids=[f"{c[0]}-{c[3][-1]}" for c in BAD_CASES])
def test_bad_artifact_rejected_at_load(op, inputs, kwargs, needles):
    kwargs = dict(kwargs)
    consts = kwargs.pop("consts", set(range(1, len(inputs))))
    rejected(op, CONV_ATTRS if op == "Conv" else NONE, inputs, *needles, consts=consts, **kwargs)


# ---- end to end --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return train_digits_cnn(tmp_path_factory.mktemp("digits"))


@pytest.mark.parametrize("precision", ["int8", "int8-dynamic", "int4", "fp16"])
def test_digits_cnn_matches_the_reference(digits, precision, tmp_path):
    """The native runtime against reference.run_graph on the compiled graph: static int8 bit for bit
    (every op between the Quantize and the Dequantize is integer), the others within float tolerance
    (their float convolutions sum in another order than numpy)."""
    model, data = digits
    calibration = [{"x": data.x_train[i:i + 1]} for i in range(32)]
    compiled = edgepack.compile(model, example_inputs=torch.from_numpy(data.x_train[:1]), output=tmp_path / "d.epk",
                                precision=precision, calibration_data=calibration, progress=False)
    assert compiled.graph.inputs == ["x"]
    used = {d.used for d in compiled.decisions if d.op in ("Conv", "MatMul")}
    assert precision in used, compiled.decisions
    session = edgepack.load(compiled.path, num_threads=2)
    output = session.outputs[0].name
    for x in data.x_test[:16]:
        feeds = {"x": x[None]}
        native = session.run(feeds)[output]
        reference = run_graph(compiled.graph, feeds)[output]
        if precision == "int8":
            np.testing.assert_array_equal(native, reference)
        else:
            np.testing.assert_allclose(native, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


# ---- the other builds: AVX2 (x86-64-v3) natively, aarch64 (sdot) under qemu-user -----------------------------
QEMU = ["qemu-aarch64-static", "-cpu", "max"]


def _cross_build_cases():
    """(graph, feeds, exact) for one op of each kernel path."""
    conv = {"strides": [1, 1], "pads": [1, 0, 2, 1], "dilations": [1, 1], "group": 1, **RELU}
    strided = {**conv, "strides": [2, 2], "dilations": [1, 2]}
    depthwise = {**conv, "group": 12}
    for attrs, m, group in [(conv, 10, 1), (strided, 9, 1), (depthwise, 12, 12)]:
        for dtype in (np.int8, np.uint8):
            w_scales = RNG.uniform(1e-4, 0.03, m).astype(np.float32)
            inputs = [codes((2, 12, 11, 13), dtype), weights((m, 12 // group, 3, 3)),
                      RNG.integers(-9999, 9999, m).astype(np.int32)]
            yield op_graph("Conv", attrs, inputs, {1, 2}, None, static_quant(dtype, m, w_scales, 0), None), True
    for dtype in (np.int8, np.uint8):
        w_scales = RNG.uniform(1e-4, 0.03, 19).astype(np.float32)
        inputs = [codes((2, 13, 37), dtype), weights((37, 19)), RNG.integers(-9999, 9999, 19).astype(np.int32)]
        yield op_graph("MatMul", clip(-0.3, 0.6), inputs, {1, 2}, None, static_quant(dtype, 2, w_scales, 1), None), True
    for kind in ("lopsided", "ties", "negative"):
        inputs = [_rows(kind, 45), RNG.integers(-127, 128, (45, 23)).astype(np.int8),
                  RNG.standard_normal(23).astype(np.float32)]
        quant = {1: per_channel(RNG.uniform(1e-3, 1e-2, 23), 1)}
        yield op_graph("MatMul", RELU, inputs, {1, 2}, None, quant, None), True
    q = RNG.integers(-8, 8, (64, 21)).astype(np.int8)
    yield op_graph("MatMul", NONE, [RNG.standard_normal((5, 64)).astype(np.float32), q], {1}, None,
                   {1: per_channel(RNG.uniform(0.01, 0.1, 2 * 21), 0, block_size=32)}, {1: DType.INT4}), False
    yield op_graph("Conv", conv, [RNG.standard_normal((1, 12, 11, 13)).astype(np.float32),
                                  RNG.standard_normal((10, 12, 3, 3)).astype(np.float16)], {1}, None, None, None), False


@pytest.mark.parametrize("target,emulator,features", [("linux-x86_64", [], {"avx2": True, "avx512vnni": False}),
                                                      ("linux-aarch64", QEMU, {"asimddp": True})])
def test_cross_build_matches_the_reference(target, emulator, features, tmp_path):
    """The runtime built for another ISA: the host build has AVX-512 VNNI, linux-x86_64 (x86-64-v3)
    selects the AVX2 kernels, linux-aarch64 (armv8.2-a+dotprod) the sdot ones, run on an emulated CPU."""
    binary = build_bench(target)
    for index, ((graph, feeds), exact_match) in enumerate(_cross_build_cases()):
        path = write_graph(graph, tmp_path / f"case{index}.epk")
        report = run_bench(binary, path, runs=1, warmup=0, threads=2, inputs=[feeds[n] for n in graph.inputs],
                           outputs=tmp_path / f"case{index}.bin", emulator=emulator, timeout=300)
        assert {name: report["build_features"][name] for name in features} == features
        native = read_outputs(tmp_path / f"case{index}.bin", report)[graph.outputs[0]]
        reference = run_graph(graph, feeds)[graph.outputs[0]]
        if exact_match:
            np.testing.assert_array_equal(native, reference, err_msg=graph.nodes[0].op)
        else:
            np.testing.assert_allclose(native, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
