"""Native non-GEMM kernels (native/kernels/ref/{elementwise,normalization,pooling,movement}.cpp) against
the numpy reference, op by op, over shapes, attributes and dtypes; plus artifacts whose attributes or
shapes are wrong, which must be rejected at load with an error naming the op and the problem."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

import edgepack
from edgepack.ir import DType
from op_harness import op_graph, run_op, write_graph

RNG = np.random.default_rng(1234)
TRANSCENDENTAL = {"Sigmoid", "Tanh", "Erf", "Exp", "Log", "Gelu", "Softmax", "LogSoftmax", "LRN", "Pow"}


def randn(*shape, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def randint(lo: int, hi: int, shape, dtype) -> np.ndarray:
    return RNG.integers(lo, hi, size=shape).astype(dtype)


def check(op: str, attrs: dict, inputs: list, consts=frozenset(), out_shapes=None, num_threads: int = 2) -> None:
    """Run `op` natively and in the reference: floats within the documented tolerance, others exactly."""
    native, reference = run_op(op, attrs, inputs, consts=set(consts), out_shapes=out_shapes, num_threads=num_threads)
    assert len(native) == len(reference)
    for got, want in zip(native, reference):
        assert got.dtype == want.dtype, (got.dtype, want.dtype)
        assert got.shape == want.shape, (got.shape, want.shape)
        if want.dtype == np.float32:
            rtol, atol = (1e-4, 1e-5) if op in TRANSCENDENTAL else (1e-5, 1e-6)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=op)
        else:
            np.testing.assert_array_equal(got, want, err_msg=op)


def load_error(graph) -> str:
    """The message of the error that loading `graph` raises."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_graph(graph, Path(tmp) / "bad.epk")
        with pytest.raises((edgepack.ArtifactError, edgepack.UnsupportedError)) as err:
            edgepack.load(path)
    return str(err.value)


def rejected(op: str, attrs: dict, inputs: list, *needles: str, consts=frozenset(), out_shapes=None,
             edit=None) -> None:
    """A graph built with valid attributes, then broken by `edit(graph)`, fails to load naming the op."""
    graph, _ = op_graph(op, attrs, inputs, set(consts), out_shapes)
    if edit:
        edit(graph)
    message = load_error(graph)
    for needle in (graph.nodes[0].name,) + needles:
        assert needle in message, f"'{needle}' not in: {message}"


# ---- elementwise unary ------------------------------------------------------------------------------
SHAPES = [(), (1,), (7,), (2, 3, 4), (1, 17, 33), (3, 40000)]

UNARY_FLOAT = {
    "Relu": {}, "Sigmoid": {}, "Tanh": {}, "Erf": {}, "Exp": {}, "Neg": {}, "Abs": {}, "HardSwish": {},
    "Floor": {}, "Ceil": {}, "HardSigmoid": {"alpha": 0.2, "beta": 0.5}, "LeakyRelu": {"alpha": 0.1},
    "Clip": {"min": -0.5, "max": 0.7}, "Gelu": {"approximate": "none"},
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", sorted(UNARY_FLOAT))
def test_unary_float(op, shape):
    check(op, UNARY_FLOAT[op], [randn(*shape) * 3])


@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("op", ["Log", "Sqrt", "Reciprocal"])
def test_unary_positive_domain(op, shape):
    check(op, {}, [np.abs(randn(*shape)) + 0.05])


@pytest.mark.parametrize("attrs", [{"approximate": "tanh"}, {"approximate": "none"}])
def test_gelu_tails(attrs):
    check("Gelu", attrs, [np.linspace(-12, 12, 999, dtype=np.float32)])


EXTREMES = np.array([-np.inf, -1000, -100, -88, -87, -50, -20, -3, -0.625, -1e-3, -0.0, 0, 1e-6, 1e-3, 0.6249, 0.625,
                     3, 20, 50, 88, 88.7, 89, 100, 1000, np.inf, np.nan], np.float32)


@pytest.mark.parametrize("op,attrs", [("Exp", {}), ("Sigmoid", {}), ("Tanh", {}), ("Erf", {}), ("HardSwish", {}),
                                      ("Gelu", {"approximate": "none"}), ("Gelu", {"approximate": "tanh"}),
                                      ("Relu", {}), ("LeakyRelu", {"alpha": 0.01})], ids=str)
def test_unary_extremes(op, attrs):
    """Overflow, underflow, infinities and NaN behave like the reference (the fast exp / tanh / erfc)."""
    with np.errstate(all="ignore"):
        check(op, attrs, [EXTREMES])


@pytest.mark.parametrize("op", ["Exp", "Sigmoid", "Tanh", "Erf"])
def test_transcendental_dense_range(op):
    check(op, {}, [np.linspace(-30, 30, 200001, dtype=np.float32)])


def test_gelu_dense_range():
    check("Gelu", {"approximate": "none"}, [np.linspace(-30, 30, 200001, dtype=np.float32)])


def test_clip_min_above_max_and_nan():
    x = np.array([-2, -0.5, 0, 0.5, 2, np.nan], np.float32)
    check("Clip", {"min": 1.0, "max": -1.0}, [x])
    check("Clip", {"min": -1.0, "max": 1.0}, [x])


def test_floor_ceil_halves():
    x = np.array([-2.5, -1.5, -0.5, -0.0, 0.5, 1.5, 2.49, 1e8], np.float32)
    check("Floor", {}, [x])
    check("Ceil", {}, [x])


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", ["Relu", "Neg", "Abs"])
def test_unary_integer(op, dtype):
    info = np.iinfo(dtype)
    x = np.concatenate([randint(-1000, 1000, (50,), dtype), np.array([info.min, info.max, 0, -1], dtype)])
    check(op, {}, [x])


def test_not():
    check("Not", {}, [RNG.random((3, 5)) > 0.5])


# ---- Cast -------------------------------------------------------------------------------------------
CAST_DTYPES = [np.float32, np.float16, np.int8, np.uint8, np.int32, np.int64, np.bool_]


def _dtype_code(dtype) -> int:
    return int(DType.from_numpy(dtype))


def _cast_source(src, dst) -> np.ndarray:
    """Values representable in both dtypes (casts outside the target's range are not specified)."""
    lo = 0 if dst in (np.uint8, np.bool_) or src in (np.uint8, np.bool_) else -100
    if src == np.bool_:
        return RNG.random((4, 9)) > 0.5
    if np.issubdtype(src, np.floating):
        x = RNG.uniform(lo, 100, (4, 9)).astype(src)
        x.flat[:4] = [0, 1, 2.5, 99.9]
        return x
    return randint(lo, 100, (4, 9), src)


@pytest.mark.parametrize("dst", CAST_DTYPES)
@pytest.mark.parametrize("src", CAST_DTYPES)
def test_cast(src, dst):
    check("Cast", {"to": _dtype_code(dst)}, [_cast_source(src, dst)])


def test_cast_float_to_int_truncates_toward_zero():
    x = np.array([-2.7, -2.5, -0.9, -0.0, 0.9, 2.5, 2.7], np.float32)
    check("Cast", {"to": _dtype_code(np.int32)}, [x])
    check("Cast", {"to": _dtype_code(np.int64)}, [x])


def test_cast_integer_narrowing_wraps():
    check("Cast", {"to": _dtype_code(np.int8)}, [np.array([300, -300, 127, 128, -129], np.int64)])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference overflows on purpose
def test_cast_float16_rounding():
    """Round to nearest even, subnormals, overflow to inf, nan — bit for bit what numpy does."""
    special = np.array([65504, 65519, 65520, 1e6, -1e6, 6e-8, 3e-8, 2.9e-8, 1e-10, 6.1e-5, 1.0009765625,
                        1.00048828125, 1.00146484375, np.inf, -np.inf, np.nan, -0.0], np.float32)
    x = np.concatenate([special, randn(2000) * 100, randn(2000) * 1e-5])
    native, reference = run_op("Cast", {"to": _dtype_code(np.float16)}, [x])
    np.testing.assert_array_equal(native[0].view(np.uint16), reference[0].view(np.uint16))
    every_half = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    native, reference = run_op("Cast", {"to": _dtype_code(np.float32)}, [every_half])
    np.testing.assert_array_equal(native[0].view(np.uint32), reference[0].view(np.uint32))


# ---- elementwise binary -----------------------------------------------------------------------------
BROADCASTS = [
    ((2, 3, 4, 5), (2, 3, 4, 5)),
    ((2, 3, 4, 5), ()),
    ((), (2, 3, 4, 5)),
    ((2, 3, 4, 5), (5,)),
    ((2, 3, 4, 5), (3, 1, 1)),
    ((1, 3, 1, 1), (2, 3, 4, 5)),
    ((4, 1, 5), (1, 3, 1)),
    ((1,), (3, 1)),
    ((2, 1, 4, 1), (1, 3, 1, 5)),
    ((1, 1), (1,)),
    ((0, 3), (1, 3)),
    ((8, 64, 32, 32), (64, 1, 1)),
    ((4, 300, 64), (4, 1, 64)),
]
ARITHMETIC = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"]


def _operands(op: str, shapes, dtype):
    a_shape, b_shape = shapes
    if np.issubdtype(dtype, np.integer):
        if op == "Pow":
            return [randint(-5, 6, a_shape, dtype), randint(0, 5, b_shape, dtype)]
        b = randint(-20, 21, b_shape, dtype)
        if op == "Div":
            b[b == 0] = 7
        return [randint(-100, 101, a_shape, dtype), b]
    if op == "Pow":
        return [np.abs(randn(*a_shape)) + 0.1, randn(*b_shape)]
    b = randn(*b_shape)
    if op == "Div":
        b = np.where(np.abs(b) < 0.1, np.float32(0.5), b).astype(np.float32)
    return [randn(*a_shape), b]


@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", ARITHMETIC)
def test_binary(op, dtype, shapes):
    check(op, {}, _operands(op, shapes, dtype))


@pytest.mark.parametrize("consts", [{0}, {1}])
def test_binary_constant_operand(consts):
    check("Mul", {}, [randn(2, 8, 6), randn(8, 1)], consts=consts)


def test_pow_square_and_special_exponents():
    x = randn(5, 7) * 3
    check("Pow", {}, [x, np.array(2.0, np.float32)], consts={1})
    check("Pow", {}, [np.abs(x), np.array([0.5, -1.0, 3.0, 0.0, 1.0, 2.0, -2.5], np.float32)])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference overflows on purpose
def test_integer_division_truncates_and_wraps():
    info = np.iinfo(np.int32)
    a = np.array([7, -7, 7, -7, info.min, info.min, 0, 1], np.int32)
    b = np.array([2, 2, -2, -2, -1, 1, 3, -1], np.int32)
    native, _ = run_op("Div", {}, [a, b])
    np.testing.assert_array_equal(native[0], [3, -3, -3, 3, info.min, info.min, 0, -1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference overflows on purpose
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_division_by_zero_is_a_run_error(dtype):
    with pytest.raises(edgepack.RunError, match="division by zero"):
        run_op("Div", {}, [np.arange(6, dtype=dtype).reshape(2, 3), np.array([1, 0, 2], dtype)])


def test_integer_overflow_wraps():
    info = np.iinfo(np.int64)
    a = np.array([info.max, info.min, info.max], np.int64)
    b = np.array([1, -1, 2], np.int64)
    for op in ("Add", "Sub", "Mul"):
        check(op, {}, [a, b])


def test_max_min_propagate_nan():
    a = np.array([1, np.nan, 3, np.nan], np.float32)
    b = np.array([np.nan, 2, 1, np.nan], np.float32)
    check("Max", {}, [a, b])
    check("Min", {}, [a, b])


@pytest.mark.parametrize("shapes", BROADCASTS[:-2], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", ["Equal", "Less", "Greater"])
def test_comparison(op, dtype, shapes):
    a_shape, b_shape = shapes
    check(op, {}, [randint(-2, 3, a_shape, dtype), randint(-2, 3, b_shape, dtype)])


@pytest.mark.parametrize("shapes", BROADCASTS[:-2], ids=str)
@pytest.mark.parametrize("op", ["And", "Or"])
def test_logical(op, shapes):
    a_shape, b_shape = shapes
    check(op, {}, [RNG.random(a_shape) > 0.5, RNG.random(b_shape) > 0.5])


WHERE_SHAPES = [
    ((2, 3, 4), (2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (), ()),
    ((4,), (2, 3, 4), (1,)),
    ((2, 1, 4), (1, 3, 1), (3, 4)),
    ((1, 5, 1), (1,), (2, 1, 3)),
    ((64, 1, 1), (8, 64, 16, 16), ()),
    # every pattern of advancing / broadcast operands along a row longer than a vector, with a tail
    ((3, 67), (3, 67), ()),
    ((3, 67), (), (3, 67)),           # attention's NaN guard: Where(isnan(p), 0, p)
    ((3, 67), (), ()),
    ((), (3, 67), (3, 67)),
    ((3, 1), (3, 67), (1,)),
    ((1,), (), (3, 67)),
    ((), (), ()),
]


@pytest.mark.parametrize("shapes", WHERE_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.int8, np.float16, np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_where(dtype, shapes):
    cond_shape, a_shape, b_shape = shapes
    a = (randn(*a_shape) * 10).astype(dtype)
    b = (randn(*b_shape) * 10).astype(dtype)
    check("Where", {}, [RNG.random(cond_shape) > 0.5, a, b])


# ---- normalisation ----------------------------------------------------------------------------------
SOFTMAX_CASES = [((5,), 0), ((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 100, 3), 1),
                 ((3, 70), 0), ((1, 1, 1000), 2), ((4, 130, 2), 2), ((6, 1), 1), ((2, 5, 200), 1),
                 # around the AVX-512 kernel's short-row limit (256) and its groups of four rows
                 ((5, 256), 1), ((3, 257), 1), ((7, 48), 1), ((1, 12, 128, 128), 3)]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=str)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax(op, shape, axis):
    check(op, {"axis": axis}, [randn(*shape) * 5])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_large_logits(op):
    check(op, {"axis": 1}, [randn(3, 50) * 200 + 1000])


@pytest.mark.parametrize("axis", [1, 2])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_masked(op, axis):
    """Attention masks: -1e9 or -inf entries get probability 0 (log-probability -inf)."""
    x = randn(2, 70, 70)
    x[:, 5:9, :] = -1e9
    x[:, :, 3:5] = -np.inf
    with np.errstate(all="ignore"):
        check(op, {"axis": axis}, [x])


# A fused attention mask (passes/fuse_softmax.py): bias broadcast along the last axis, NaN written as 0.
FUSED_SOFTMAX_CASES = [((1, 12, 128, 128), (1, 1, 128, 128)), ((1, 12, 128, 128), (1, 1, 1, 128)),
                       ((2, 3, 5, 7), (3, 1, 7)), ((7, 48), (48,)), ((2, 9, 48), (2, 1, 48)), ((3, 257), (3, 257)),
                       ((2, 5, 300), (5, 300)), ((5, 256), (1, 256)), ((6, 1), (6, 1)), ((4, 17), (4, 17))]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("nan_to_zero", [0, 1])
@pytest.mark.parametrize("shape,bias_shape", FUSED_SOFTMAX_CASES, ids=str)
def test_softmax_fused_mask(shape, bias_shape, nan_to_zero, threads):
    """Rows masked to -inf throughout are NaN, or 0 with nan_to_zero; a NaN score makes its row NaN / 0."""
    x = randn(*shape) * 5
    bias = np.where(RNG.random(bias_shape) < 0.3, -np.inf, 0.0).astype(np.float32) + randn(*bias_shape)
    if shape[-2:] != (6, 1):
        x[..., 1, :] = -np.inf
        x.reshape(-1, shape[-1])[-1, 0] = np.nan
    with np.errstate(all="ignore"):
        check("Softmax", {"axis": len(shape) - 1, "nan_to_zero": nan_to_zero}, [x, bias], num_threads=threads)


@pytest.mark.parametrize("shape,axis", [((2, 3, 4), 1), ((4, 130, 2), 2), ((2, 100, 3), 1)], ids=str)
def test_softmax_nan_to_zero_without_mask(shape, axis):
    x = randn(*shape) * 5
    x[0, 1] = -np.inf
    with np.errstate(all="ignore"):
        check("Softmax", {"axis": axis, "nan_to_zero": 1}, [x])


LAYER_NORM_CASES = [((2, 5, 16), 2), ((2, 5, 16), 1), ((4, 7), 0), ((3, 1, 768), 2), ((2, 3, 4, 5), 2)]


@pytest.mark.parametrize("shape,axis", LAYER_NORM_CASES, ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm(shape, axis, with_bias):
    normalized = shape[axis:]
    inputs = [randn(*shape) * 3 + 100, randn(*normalized), randn(*normalized) if with_bias else None]
    check("LayerNormalization", {"axis": axis, "epsilon": 1e-5}, inputs, consts={1, 2})


@pytest.mark.parametrize("offset,spread", [(1e4, 0.1), (-3e3, 1e-2), (0.0, 1e-3)])
def test_layer_norm_offset_rows(offset, spread):
    """Rows far from zero with a small spread: the kernel sums deviations from each row's first value
    in float, which must lose no more than the reference's float64 sums (13 rows: groups of 4 and one)."""
    x = (offset + spread * randn(1, 13, 384)).astype(np.float32)
    check("LayerNormalization", {"axis": 2, "epsilon": 1e-12}, [x, randn(384), randn(384)], consts={1, 2})


def test_layer_norm_scale_with_leading_ones():
    check("LayerNormalization", {"axis": 2, "epsilon": 1e-6}, [randn(2, 3, 8), randn(1, 8), randn(8)], consts={1, 2})


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("shape", [(2, 7, 5, 5), (1, 3, 4), (1, 16, 9, 9)], ids=str)
def test_lrn(size, shape):
    check("LRN", {"size": size, "alpha": 0.5, "beta": 0.75, "bias": 1.0}, [randn(*shape)])
    check("LRN", {"size": size, "alpha": 1e-4, "beta": 0.75, "bias": 2.0}, [randn(*shape)])


# ---- pooling and reductions -------------------------------------------------------------------------
POOL_CASES = [
    ((1, 3, 9, 9), [3, 3], [1, 1], [0, 0, 0, 0], [1, 1]),
    ((2, 4, 9, 9), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 8, 8), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 2, 7, 8), [3, 2], [2, 1], [0, 1, 1, 0], [1, 1]),
    ((1, 3, 11, 10), [3, 3], [1, 2], [2, 2, 2, 2], [2, 2]),
    ((2, 3, 7, 7), [7, 7], [1, 1], [0, 0, 0, 0], [1, 1]),
    ((1, 1, 5, 5), [3, 3], [3, 3], [2, 2, 2, 2], [1, 1]),
    ((1, 64, 56, 56), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    # the separable path: several chunks of output columns, stride 2 over odd and even spans, and
    # windows wider than the merged line (pooled row by row)
    ((1, 2, 5, 1203), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 4, 1200), [2, 3], [1, 2], [0, 0, 1, 1], [1, 1]),
    ((1, 3, 6, 17), [3, 2], [2, 2], [1, 0, 1, 1], [2, 1]),
    ((1, 2, 3, 1040), [2, 1030], [1, 3], [1, 4, 0, 3], [1, 1]),
    # outputs up to 16 wide pool a plane at a time (MaxPool 2x2 / 2 on its own path): odd sizes drop
    # the last row and column; 17 columns go back to the row path
    ((2, 3, 7, 9), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 5, 5, 33), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 2, 4, 34), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 4, 6, 6), [2, 2], [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 3, 9, 8), [3, 2], [2, 3], [1, 0, 1, 2], [2, 1]),
]


@pytest.mark.parametrize("shape,kernel,strides,pads,dilations", POOL_CASES, ids=str)
def test_max_pool(shape, kernel, strides, pads, dilations):
    attrs = {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations}
    check("MaxPool", attrs, [randn(*shape)])



@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_max_pool_rows_pooled_one_behind(num_threads):
    # The AVX-512 path merges output row i while pooling row i - 1 of its chunk (the last row after the
    # loop): chunks that start and end inside a plane, and a plane of one output row.
    for shape in [(2, 3, 9, 20), (1, 5, 3, 40)]:
        check("MaxPool", {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1]},
              [randn(*shape)], num_threads=num_threads)


def test_max_pool_nan_wins():
    x = randn(1, 2, 7, 21)
    x[0, 0, 3, 4] = x[0, 1, 0, 0] = x[0, 1, 6, 20] = x[0, 1, 2, 9] = np.nan
    for strides in ([1, 1], [2, 2], [1, 3]):
        check("MaxPool", {"kernel": [3, 3], "strides": strides, "pads": [1, 1, 1, 1], "dilations": [1, 1]}, [x])
    small = randn(1, 2, 8, 8)  # the 2x2 / 2 plane path: a NaN at each position of a window
    small[0, 0, 0, 0] = small[0, 0, 2, 5] = small[0, 1, 5, 2] = small[0, 1, 7, 7] = np.nan
    small[0, 1, 0, 1] = np.inf
    small[0, 0, 4:6, 4:6] = -np.inf
    check("MaxPool", {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1]}, [small])


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("shape,kernel,strides,pads,dilations", POOL_CASES, ids=str)
def test_average_pool(shape, kernel, strides, pads, dilations, count_include_pad):
    attrs = {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations,
             "count_include_pad": count_include_pad}
    check("AveragePool", attrs, [randn(*shape)])


REDUCE_AXES = [[0], [1], [3], [1, 2], [0, 2], [2, 3], [1, 3], [0, 1, 2, 3], [0, 3], []]


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", REDUCE_AXES, ids=str)
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"])
def test_reduce_float(op, axes, keepdims):
    check(op, {"axes": axes, "keepdims": keepdims}, [randn(2, 3, 4, 5)])


@pytest.mark.parametrize("shape,axes", [((4, 200, 300), [1]), ((4, 200, 300), [2]), ((3, 1, 5, 1, 70), [0, 3]),
                                        ((1, 512, 14, 14), [2, 3]), ((20000,), [0])], ids=str)
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"])
def test_reduce_shapes(op, shape, axes):
    check(op, {"axes": axes, "keepdims": 1}, [randn(*shape) + 1])


def test_reduce_sum_over_nothing():
    """Only a sum over an empty axis is defined (zero); mean/max/min of nothing are not."""
    check("ReduceSum", {"axes": [1], "keepdims": 1}, [randn(2, 0, 3) + 1])


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("axes", [[1], [0, 2], [2]], ids=str)
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"])
def test_reduce_integer(op, axes, dtype):
    check(op, {"axes": axes, "keepdims": 0}, [randint(-50, 50, (3, 4, 5), dtype)])


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64], ids=lambda d: np.dtype(d).name)
def test_arg_max(dtype, axis, keepdims):
    # few distinct values, so ties are frequent: the first index must win
    check("ArgMax", {"axis": axis, "keepdims": keepdims}, [randint(0, 3, (3, 4, 70, 5), dtype)])


def test_arg_max_nan_wins():
    check("ArgMax", {"axis": 1, "keepdims": 0}, [np.array([[1, np.nan, 5, np.nan], [3, 2, 1, 0]], np.float32)])


# ---- data movement ----------------------------------------------------------------------------------
MOVE_DTYPES = [np.float32, np.int8, np.int64, np.float16, np.bool_, np.int32]


def _data(shape, dtype) -> np.ndarray:
    if dtype == np.bool_:
        return RNG.random(shape) > 0.5
    return (randn(*shape) * 50).astype(dtype)


@pytest.mark.parametrize("dtype", MOVE_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,out", [((2, 3, 4), (6, 4)), ((24,), (2, 2, 6)), ((1, 5), (5,))], ids=str)
def test_reshape(shape, out, dtype):
    check("Reshape", {}, [_data(shape, dtype)], out_shapes=[out])


TRANSPOSES = [((3, 4), (1, 0)), ((2, 3, 4), (0, 2, 1)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4, 5), (0, 1, 2, 3)),
              ((2, 3, 4, 5), (0, 2, 3, 1)), ((2, 3, 4, 5), (3, 2, 1, 0)), ((2, 3, 4, 5), (0, 2, 1, 3)),
              ((2, 1, 3, 1, 4), (4, 3, 2, 1, 0)), ((5,), (0,)), ((1, 64, 56, 56), (0, 2, 3, 1)),
              # 2-D transposes in 16 x 16 tiles (transpose.h): attention's K^T and heads, sizes around the tile
              ((12, 128, 32), (0, 2, 1)), ((1, 128, 12, 32), (0, 2, 3, 1)), ((16, 16), (1, 0)), ((15, 17), (1, 0)),
              ((17, 15), (1, 0)), ((3, 33, 31), (0, 2, 1)), ((2, 32, 48), (0, 2, 1)), ((1, 16, 1, 7), (0, 3, 2, 1)),
              ((2, 3, 20, 18), (1, 0, 3, 2)), ((4, 1, 50), (2, 1, 0))]


@pytest.mark.parametrize("dtype", MOVE_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,perm", TRANSPOSES, ids=str)
def test_transpose(shape, perm, dtype):
    check("Transpose", {"perm": list(perm)}, [_data(shape, dtype)])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_transpose_tiles_split_over_threads(threads):
    """A single matrix still splits into blocks of 16 output rows, one thread's share ending mid-matrix."""
    check("Transpose", {"perm": [1, 0]}, [_data((100, 75), np.float32)], num_threads=threads)
    check("Transpose", {"perm": [0, 2, 1]}, [_data((3, 40, 50), np.int8)], num_threads=threads)


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shapes,axis", [([(2, 3), (4, 3)], 0), ([(2, 3, 4), (2, 1, 4), (2, 5, 4)], 1),
                                         ([(2, 3, 4), (2, 3, 2)], 2), ([(3,)], 0), ([(2, 0, 3), (2, 2, 3)], 1),
                                         ([(64, 100, 3), (64, 100, 5)], 2)], ids=str)
def test_concat(shapes, axis, dtype):
    check("Concat", {"axis": axis}, [_data(s, dtype) for s in shapes])


def test_concat_constant_part():
    check("Concat", {"axis": 1}, [randn(2, 3), randn(2, 4)], consts={1})


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,axis,split", [((6, 3), 0, [1, 2, 3]), ((2, 6, 4), 1, [3, 3]), ((2, 3, 7), 2, [2, 0, 5]),
                                              ((5,), 0, [5]), ((64, 10, 8), 1, [4, 6])], ids=str)
def test_split(shape, axis, split, dtype):
    check("Split", {"axis": axis, "split": split}, [_data(shape, dtype)])


def canonical_slice(shape, slices) -> dict:
    """Slice attributes as the ONNX frontend writes them (clamped; an end of -1 means through 0)."""
    starts, ends, steps = [], [], []
    for dim, s in zip(shape, slices):
        start, end, step = s.indices(dim)
        starts.append(start)
        ends.append(end if end >= 0 else -1)
        steps.append(step)
    return {"starts": starts, "ends": ends, "steps": steps}


SLICES = [
    ((5, 6, 7), (slice(1, 4), slice(None), slice(None))),
    ((5, 6, 7), (slice(None), slice(None, None, 2), slice(None, None, -1))),
    ((5, 6, 7), (slice(4, 0, -2), slice(1, 2), slice(-3, None))),
    ((5, 6, 7), (slice(10, 20), slice(None), slice(None))),
    ((5, 6, 7), (slice(None, None, -1), slice(None, None, -3), slice(2, 3))),
    ((8,), (slice(-100, 100, 3),)),
    ((8,), (slice(100, -100, -3),)),
    ((4, 1), (slice(None, None, -1), slice(None))),
    ((1, 64, 56, 56), (slice(None), slice(None, 32), slice(1, None), slice(None, None, 2))),
]


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int64, np.float16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,slices", SLICES, ids=str)
def test_slice(shape, slices, dtype):
    check("Slice", canonical_slice(shape, slices), [_data(shape, dtype)])


GATHERS = [((5, 4), 0, (3,)), ((5, 4), 1, (2, 2)), ((5, 4), 0, ()), ((2, 3, 4), 2, (5,)), ((2, 3, 4), 1, (1, 3)),
           ((1000, 64), 0, (2, 16)), ((3, 7, 5), 1, (0,))]


@pytest.mark.parametrize("const_indices", [False, True])
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,axis,index_shape", GATHERS, ids=str)
def test_gather(shape, axis, index_shape, index_dtype, const_indices):
    size = shape[axis]
    indices = randint(-size, size, index_shape, index_dtype)  # negative indices wrap
    check("Gather", {"axis": axis}, [_data(shape, np.float32), indices], consts={1} if const_indices else set())


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float16, np.bool_], ids=lambda d: np.dtype(d).name)
def test_gather_dtypes(dtype):
    check("Gather", {"axis": 1}, [_data((3, 6, 2), dtype), np.array([5, -6, 0, 2], np.int64)])


@pytest.mark.parametrize("bad_index", [4, -5, 1 << 40])
def test_gather_out_of_range_at_run_time(bad_index):
    graph, feeds = op_graph("Gather", {"axis": 0}, [randn(4, 3), np.array([0, 1, 2], np.int64)])
    feeds["in1"] = np.array([0, bad_index, 2], np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        session = edgepack.load(write_graph(graph, Path(tmp) / "g.epk"))
        with pytest.raises(edgepack.RunError) as err:
            session.run(feeds)
        message = str(err.value)
        assert "gather_0" in message and f"index {bad_index}" in message and "size 4" in message, message
        session.run({"in0": feeds["in0"], "in1": np.array([3, -4, 0], np.int64)})  # still usable


PADS = [((3, 4), [1, 2, 0, 3]), ((2, 3, 4), [0, 1, 2, 1, 0, 3]), ((1, 2, 5, 5), [0, 0, 2, 2, 0, 0, 2, 2]),
        ((5,), [0, 0]), ((3, 4), [0, 0, 0, 0]), ((2, 3), [5, 7, 6, 8]), ((1, 4), [0, 3, 0, 3])]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int8, np.float16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,pads", PADS, ids=str)
def test_pad(shape, pads, dtype, mode):
    value = 0.0 if dtype == np.float16 else 2.0
    check("Pad", {"pads": pads, "mode": mode, "value": value}, [_data(shape, dtype)])


def test_pad_constant_value_float():
    check("Pad", {"pads": [1, 1, 2, 0], "mode": "constant", "value": -1.5}, [randn(3, 4)])


COORDINATE_MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
RESIZE_SCALES = [(2.0, 2.0), (0.5, 0.5), (1.5, 3.0), (1.0, 0.25), (3.0, 1.0)]


def _resize_case(shape, scales, attrs):
    out = tuple(shape[:2]) + tuple(int(math.floor(d * s)) for d, s in zip(shape[2:], scales))
    return {**attrs, "scales": [1.0, 1.0, *scales]}, [out]


@pytest.mark.parametrize("scales", RESIZE_SCALES, ids=str)
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
def test_resize_nearest(coordinate_mode, nearest_mode, scales):
    attrs, out_shapes = _resize_case((2, 3, 8, 8), scales, {
        "mode": "nearest", "coordinate_transformation_mode": coordinate_mode, "nearest_mode": nearest_mode})
    check("Resize", attrs, [randn(2, 3, 8, 8)], out_shapes=out_shapes)


@pytest.mark.parametrize("scales", RESIZE_SCALES + [(2.0, 2.0)], ids=str)
@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
def test_resize_linear(coordinate_mode, scales):
    attrs, out_shapes = _resize_case((1, 4, 6, 8), scales, {
        "mode": "linear", "coordinate_transformation_mode": coordinate_mode, "nearest_mode": "floor"})
    check("Resize", attrs, [randn(1, 4, 6, 8)], out_shapes=out_shapes)


def test_resize_from_sizes_and_other_dtypes():
    # scales computed from explicit sizes (output / input), as the frontend does for `sizes`
    attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "floor",
             "scales": [1.0, 1.0, 7 / 3, 5 / 4]}
    check("Resize", attrs, [randn(1, 2, 3, 4)], out_shapes=[(1, 2, 7, 5)])
    nearest = {**attrs, "mode": "nearest", "nearest_mode": "round_prefer_ceil", "scales": [1.0, 1.0, 2.0, 2.0]}
    check("Resize", nearest, [randint(-100, 100, (1, 2, 3, 4), np.int8)], out_shapes=[(1, 2, 6, 8)])


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int8], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,out", [((3, 1), (2, 3, 4)), ((1,), (5,)), ((4,), (2, 3, 4)), ((2, 1, 3), (2, 5, 3)),
                                       ((), (3, 2)), ((64, 1, 1), (1, 64, 28, 28))], ids=str)
def test_expand(shape, out, dtype):
    check("Expand", {}, [_data(shape, dtype)], out_shapes=[out])


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,repeats", [((2, 3), [2, 1]), ((2, 3), [1, 3]), ((2, 3), [2, 2]),
                                           ((2, 1, 3), [1, 4, 1]), ((3,), [0]), ((2, 3), [1, 1])], ids=str)
def test_tile(shape, repeats, dtype):
    check("Tile", {"repeats": repeats}, [_data(shape, dtype)])


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape,blocksize", [((1, 8, 2, 3), 2), ((2, 18, 3, 2), 3), ((1, 4, 1, 1), 1),
                                             ((1, 64, 16, 16), 4)], ids=str)
def test_depth_to_space(shape, blocksize, mode):
    check("DepthToSpace", {"blocksize": blocksize, "mode": mode}, [randn(*shape)])


# ---- threads ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_threads", [1, 3, 4])
def test_thread_counts_agree(num_threads):
    x = randn(4, 32, 33, 35)
    check("Add", {}, [x, randn(32, 1, 1)], num_threads=num_threads)
    check("Softmax", {"axis": 1}, [x], num_threads=num_threads)
    check("ReduceMean", {"axes": [2, 3], "keepdims": 1}, [x], num_threads=num_threads)
    check("Transpose", {"perm": [0, 2, 3, 1]}, [x], num_threads=num_threads)
    check("MaxPool", {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1]}, [x],
          num_threads=num_threads)
    resize = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor",
              "scales": [1.0, 1.0, 2.0, 2.0]}
    check("Resize", resize, [x], out_shapes=[(4, 32, 66, 70)], num_threads=num_threads)
    check("Pad", {"pads": [0, 1, 2, 3, 0, 1, 2, 3], "mode": "reflect", "value": 0.0}, [x], num_threads=num_threads)
    check("Gather", {"axis": 1}, [x, randint(-32, 32, (40,), np.int64)], num_threads=num_threads)
    check("Tile", {"repeats": [1, 2, 1, 2]}, [x], num_threads=num_threads)


# ---- hostile artifacts: rejected at load ------------------------------------------------------------
def _set_attr(key, value):
    def edit(graph):
        graph.nodes[0].attrs[key] = value
    return edit


def _drop_attr(key):
    def edit(graph):
        del graph.nodes[0].attrs[key]
    return edit


def _add_input(name):
    """A second graph input read by node 0 (a fused bias where the op takes none)."""
    def edit(graph):
        graph.add_value(name, DType.FLOAT32, (1,))
        graph.inputs.append(name)
        graph.nodes[0].inputs.append(name)
    return edit


def _edits(*edits):
    def edit(graph):
        for e in edits:
            e(graph)
    return edit


def _set_shape(name, shape):
    def edit(graph):
        graph.values[name].shape = tuple(shape)
    return edit


X4 = randn(2, 3, 4, 5)
POOL = {"kernel": [2, 2], "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1]}

BAD_ARTIFACTS = [
    ("Softmax", {"axis": 1}, [X4], _set_attr("axis", 4), ["axis 4"]),
    ("LogSoftmax", {"axis": 1}, [X4], _set_attr("axis", -1), ["axis -1"]),
    ("Softmax", {"axis": 1}, [X4], _drop_attr("axis"), ["missing attribute 'axis'"]),
    ("Softmax", {"axis": 3}, [X4, randn(4, 5)], _set_shape("in1", (4, 1)), ["bias", "last axis"]),
    ("Softmax", {"axis": 3}, [X4, randn(4, 5)], _set_shape("in1", (2, 4, 5)), ["bias", "broadcast"]),
    ("Softmax", {"axis": 2}, [X4, randn(4, 5)], None, ["bias", "axis 2"]),
    ("Softmax", {"axis": 3, "nan_to_zero": 1}, [X4], _set_attr("nan_to_zero", 2), ["nan_to_zero"]),
    ("LogSoftmax", {"axis": 3}, [X4], _edits(_add_input("in1"), _set_shape("in1", (5,))), ["inputs"]),
    ("Relu", {}, [X4], _set_shape("out0", (2, 3, 4, 6)), ["same shape"]),
    ("Gelu", {"approximate": "none"}, [X4], _set_attr("approximate", "fast"), ["approximate"]),
    ("Cast", {"to": 1}, [X4], _set_attr("to", 99), ["dtype code"]),
    ("Add", {}, [X4, randn(4, 1)], _set_shape("out0", (2, 3, 4, 4)), ["output"]),
    ("Add", {}, [X4, randn(4, 5)], _set_shape("in1", (3, 5)), ["broadcast"]),
    ("Where", {}, [X4 > 0, X4, X4], _set_shape("out0", (3, 4, 5)), ["output"]),
    ("LayerNormalization", {"axis": 2, "epsilon": 1e-5}, [X4, randn(4, 5)], _set_shape("in1", (5, 4)), ["scale"]),
    ("LayerNormalization", {"axis": 2, "epsilon": 1e-5}, [X4, randn(4, 5)], _set_attr("epsilon", -1.0), ["epsilon"]),
    ("LRN", {"size": 3, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}, [X4], _set_attr("size", 0), ["size"]),
    ("MaxPool", POOL, [X4], _set_attr("strides", [0, 1]), ["strides"]),
    ("MaxPool", POOL, [X4], _set_attr("kernel", [2]), ["kernel"]),
    ("AveragePool", {**POOL, "count_include_pad": 0}, [X4], _set_shape("out0", (2, 3, 4, 4)), ["output"]),
    ("MaxPool", POOL, [X4], _set_attr("kernel", [9, 2]), ["window"]),
    ("ReduceSum", {"axes": [1, 2], "keepdims": 0}, [X4], _set_attr("axes", [2, 1]), ["axes"]),
    ("ReduceMax", {"axes": [1], "keepdims": 0}, [X4], _set_attr("axes", [4]), ["axes"]),
    ("ReduceMean", {"axes": [1], "keepdims": 1}, [X4], _set_shape("out0", (2, 4, 5)), ["output"]),
    ("ArgMax", {"axis": 1, "keepdims": 0}, [X4], _set_attr("axis", 7), ["axis 7"]),
    ("Transpose", {"perm": [0, 1, 2, 3]}, [X4], _set_attr("perm", [0, 0, 1, 2]), ["perm"]),
    ("Transpose", {"perm": [0, 1, 2, 3]}, [X4], _set_attr("perm", [0, 1, 2]), ["perm"]),
    ("Concat", {"axis": 1}, [X4, X4], _set_shape("out0", (2, 7, 4, 5)), ["add up"]),
    ("Concat", {"axis": 1}, [X4, X4], _set_attr("axis", 4), ["axis 4"]),
    ("Split", {"axis": 1, "split": [1, 2]}, [X4], _set_attr("split", [2, 1]), ["split"]),
    ("Slice", canonical_slice((2, 3, 4, 5), [slice(None)] * 4), [X4], _set_attr("starts", [0, 0, 0, 6]),
     ["not canonical"]),
    ("Slice", canonical_slice((2, 3, 4, 5), [slice(None)] * 4), [X4],
     _edits(_set_attr("starts", [0, 0, 0, 5]), _set_attr("ends", [2, 3, 4, -1]), _set_attr("steps", [1, 1, 1, -1]),
            _set_shape("out0", (2, 3, 4, 6))), ["reads outside the input"]),
    ("Slice", canonical_slice((2, 3, 4, 5), [slice(None)] * 4), [X4], _set_attr("steps", [1, 0, 1, 1]), ["slice"]),
    ("Slice", canonical_slice((2, 3, 4, 5), [slice(None)] * 4), [X4], _set_attr("ends", [2, 3, 4, -1]), ["slice"]),
    ("Slice", canonical_slice((2, 3, 4, 5), [slice(None, None, -1)] * 4), [X4],
     _set_attr("ends", [-1, -1, -1, -2]), ["slice"]),
    ("Slice", canonical_slice((2, 3, 4, 5), [slice(1, None)] * 4), [X4], _set_shape("out0", (1, 2, 3, 5)),
     ["output"]),
    ("Gather", {"axis": 0}, [X4, np.array([0, 1])], _set_attr("axis", 4), ["axis 4"]),
    ("Pad", {"pads": [0] * 8, "mode": "constant", "value": 0.0}, [X4], _set_attr("pads", [-1] + [0] * 7), ["pads"]),
    ("Pad", {"pads": [0] * 8, "mode": "constant", "value": 0.0}, [X4], _set_attr("mode", "wrap"), ["mode"]),
    ("Resize", {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor",
                "scales": [1.0, 1.0, 2.0, 2.0]}, [X4], _set_attr("mode", "cubic"), ["mode"]),
    ("Resize", {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor",
                "scales": [1.0, 1.0, 2.0, 2.0]}, [X4], _set_attr("scales", [1.0, 1.0, 2.0, 9.0]), ["scaled"]),
    ("Expand", {}, [randn(3, 1)], _set_shape("out0", (2, 4, 4)), ["expand"]),
    ("Tile", {"repeats": [1, 2, 1, 1]}, [X4], _set_attr("repeats", [1, 3, 1, 1]), ["tiled"]),
    ("DepthToSpace", {"blocksize": 1, "mode": "DCR"}, [X4], _set_attr("blocksize", 2), ["blocksize"]),
    ("Reshape", {}, [X4], _set_shape("out0", (2, 3, 4, 4)), ["reshape"]),
]


@pytest.mark.parametrize("op,attrs,inputs,edit,needles", BAD_ARTIFACTS,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(BAD_ARTIFACTS)])
def test_bad_artifact_rejected_at_load(op, attrs, inputs, edit, needles):
    out_shapes = None
    if op == "Resize":
        out_shapes = [(2, 3, 8, 10)]
    elif op in ("Expand", "Reshape"):
        out_shapes = [(2, 3, 2)] if op == "Expand" else [(6, 20)]
    rejected(op, attrs, inputs, *needles, edit=edit, out_shapes=out_shapes)


HUGE = 1 << 40
EMPTY_WITH_HUGE_DIMS = [
    ("Softmax", {"axis": 1}, [(HUGE, 0)], None),
    ("LayerNormalization", {"axis": 1, "epsilon": 1e-5}, [(HUGE, 0), (0,)], None),
    ("LRN", {"size": 3, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}, [(HUGE, 2, 0)], None),
    ("Concat", {"axis": 1}, [(HUGE, 0), (HUGE, 0)], None),
    ("Gather", {"axis": 1}, [(HUGE, 3, 0), (2,)], None),
    ("MaxPool", {"kernel": [1, 1], "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1]},
     [(0, 1, HUGE, 4)], None),
    ("Pad", {"pads": [0, 1, 0, 1], "mode": "edge", "value": 0.0}, [(0, HUGE)], None),
    ("Resize", {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor",
                "scales": [1.0, 1.0, 1.0, 1.0]}, [(0, 1, HUGE, 4)], [(0, 1, HUGE, 4)]),
]


@pytest.mark.parametrize("op,attrs,shapes,out_shapes", EMPTY_WITH_HUGE_DIMS, ids=lambda c: str(c)[:20])
def test_empty_tensors_with_huge_dims_cost_nothing(op, attrs, shapes, out_shapes):
    """A tensor with a 0 dim holds no bytes, so its other dims are unchecked by the file's sizes: the
    kernels must neither allocate tables nor loop over them."""
    inputs = [np.zeros(shape, np.int64 if op == "Gather" and i == 1 else np.float32) for i, shape in enumerate(shapes)]
    graph, feeds = op_graph(op, attrs, inputs, out_shapes=out_shapes)
    with tempfile.TemporaryDirectory() as tmp:
        outputs = edgepack.load(write_graph(graph, Path(tmp) / "e.epk")).run(feeds)
    assert all(outputs[name].size == 0 for name in graph.outputs)


def test_constant_gather_index_out_of_range_rejected_at_load():
    rejected("Gather", {"axis": 1}, [X4, np.array([0, 1], np.int64)], "index 3", "size 3", consts={1},
             edit=lambda g: g.values["in1"].const.__setitem__(1, 3))


def test_unsupported_dtype_rejected_at_load():
    graph, _ = op_graph("Sigmoid", {}, [randint(0, 5, (3,), np.int32)])
    message = load_error(graph)
    assert "sigmoid_0" in message and "int32" in message, message
