"""Native int8 kernels for the non-GEMM ops against the numpy integer oracle
(sdk/edgepack/reference/quantized.py), bit for bit: Quantize, Dequantize, Requantize, Lut, Add / Sub /
Mul, MaxPool, AveragePool, ReduceMean, the data-movement ops on codes and Gather from int8 / int4
tables. Shapes cover broadcasting, odd and size-1 dims and multi-threaded sizes; parameters cover
extreme scale ratios, zero points at the ends of the range and saturation. Artifacts with bad
quantization parameters must fail to load with an error naming the op and the problem."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

import edgepack
from edgepack.ir import DType, QuantParams
from edgepack.reference.quantized import average_pool_int8, dequantize, quantize
from op_harness import op_graph, run_op, write_graph

RNG = np.random.default_rng(8)
RANGES = {np.int8: (-128, 127), np.uint8: (0, 255)}
CODE_DTYPES = [np.int8, np.uint8]


def qp(scale: float, zero: int = 0) -> QuantParams:
    return QuantParams(np.array([scale], np.float32), np.array([zero], np.int32))


def per_channel(scales, zeros=None, axis: int = 0, block_size: int = 0) -> QuantParams:
    scales = np.asarray(scales, np.float32).reshape(-1)
    zeros = np.zeros(scales.size, np.int32) if zeros is None else np.asarray(zeros, np.int32).reshape(-1)
    return QuantParams(scales, zeros, axis, block_size)


def shifted(zero: int, dtype) -> int:
    """An int8 zero point moved to the same place in `dtype`'s range."""
    return zero + 128 if dtype == np.uint8 else zero


def codes(shape, dtype) -> np.ndarray:
    lo, hi = RANGES[dtype]
    return RNG.integers(lo, hi + 1, size=shape).astype(dtype)


def all_codes(dtype) -> np.ndarray:
    lo, hi = RANGES[dtype]
    return np.arange(lo, hi + 1).astype(dtype)


def check(op: str, attrs: dict, inputs: list, quant=None, dtypes=None, consts=frozenset(), out_shapes=None,
          num_threads: int = 2) -> list[np.ndarray]:
    """Native and reference outputs are identical, dtype and shape included; returns the native ones."""
    native, reference = run_op(op, attrs, inputs, consts=set(consts), out_shapes=out_shapes, num_threads=num_threads,
                               quant=quant, dtypes=dtypes)
    assert len(native) == len(reference)
    for got, want in zip(native, reference):
        assert got.dtype == want.dtype, (got.dtype, want.dtype)
        assert got.shape == want.shape, (got.shape, want.shape)
        np.testing.assert_array_equal(got, want, err_msg=op)
    return native


def run_native(op: str, attrs: dict, inputs: list, quant=None, dtypes=None, consts=frozenset(), out_shapes=None,
               num_threads: int = 2) -> list[np.ndarray]:
    """Native outputs only, for cases the reference does not take."""
    graph, feeds = op_graph(op, attrs, inputs, set(consts), out_shapes, quant, dtypes)
    with tempfile.TemporaryDirectory() as tmp:
        session = edgepack.load(write_graph(graph, Path(tmp) / "op.epk"), num_threads=num_threads)
        outputs = session.run(feeds)
    return [outputs[name] for name in graph.outputs]


def rejected(op: str, attrs: dict, inputs: list, *needles: str, quant=None, dtypes=None, consts=frozenset(),
             out_shapes=None) -> str:
    """Loading the one-node graph fails with an error naming the op and every needle."""
    graph, _ = op_graph(op, attrs, inputs, set(consts), out_shapes, quant, dtypes)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_graph(graph, Path(tmp) / "bad.epk")
        with pytest.raises((edgepack.ArtifactError, edgepack.UnsupportedError)) as err:
            edgepack.load(path)
    message = str(err.value)
    for needle in (graph.nodes[0].name,) + needles:
        assert needle in message, f"'{needle}' not in: {message}"
    return message


# Per-tensor (scale, zero point) pairs for int8; uint8 uses the zero point shifted by 128.
PARAMS = [(0.02, 0), (1e-4, -128), (1e3, 127), (0.37, -5), (3.0517578125e-05, 100)]
SHAPES = [(), (1,), (7,), (2, 3, 5), (1, 17, 33), (3, 40000)]


# ---- Quantize / Dequantize ----------------------------------------------------------------------------
def _floats_for(scale: float, shape) -> np.ndarray:
    """Values spanning a little more than the codes' range under `scale`, with saturating ones."""
    return (RNG.standard_normal(shape) * 150 * scale).astype(np.float32)


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, 1e30, -1e30, 3.4e38, -3.4e38, 1e-30], np.float32)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("scale,zero", PARAMS, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_quantize(dtype, scale, zero, shape):
    check("Quantize", {}, [_floats_for(scale, shape)], quant={"out0": qp(scale, shifted(zero, dtype))},
          dtypes={"out0": DType.from_numpy(dtype)})


@pytest.mark.parametrize("scale,zero", PARAMS, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_quantize_ties_and_specials(dtype, scale, zero):
    """Exact halves round to even; infinities and huge values saturate."""
    halves = ((np.arange(-300, 300) + 0.5) * np.float32(scale)).astype(np.float32)
    with np.errstate(over="ignore"):  # huge values overflow to inf on purpose
        x = np.concatenate([halves, SPECIAL, SPECIAL * np.float32(scale)])
        check("Quantize", {}, [x], quant={"out0": qp(scale, shifted(zero, dtype))},
              dtypes={"out0": DType.from_numpy(dtype)})


def test_quantize_nan_is_the_zero_point():
    # the reference's NaN cast is platform-defined; the kernels map NaN to the zero point
    (y,) = run_native("Quantize", {}, [np.array([np.nan, 1.0], np.float32)], quant={"out0": qp(0.5, -7)},
                      dtypes={"out0": DType.INT8})
    np.testing.assert_array_equal(y, np.array([-7, -5], np.int8))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("scale,zero", PARAMS, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_dequantize_per_tensor(dtype, scale, zero, shape):
    check("Dequantize", {}, [codes(shape, dtype)], quant={0: qp(scale, shifted(zero, dtype))},
          dtypes={"out0": DType.FLOAT32})


@pytest.mark.parametrize("scale", [1e-4, 0.3, 1e3])
def test_dequantize_int32(scale):
    # int32 values beyond 2^24 round when converted to float32: the same rounding on both sides
    x = RNG.integers(-2**31, 2**31, size=(5, 999)).astype(np.int32)
    x[0, :4] = [-2**31, 2**31 - 1, 0, 16777217]
    check("Dequantize", {}, [x], quant={0: qp(scale)}, dtypes={"out0": DType.FLOAT32})


PER_CHANNEL_CASES = [((6,), 0), ((4, 3, 5), 0), ((4, 3, 5), 1), ((4, 3, 5), 2), ((2, 1, 3), 1), ((1, 7), 1),
                     ((3, 30000), 0), ((30000, 3), 1), ((2, 64, 16, 16), 1)]


@pytest.mark.parametrize("shape,axis", PER_CHANNEL_CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32], ids=lambda d: d.__name__)
def test_dequantize_per_channel(dtype, shape, axis):
    n = shape[axis]
    scales = np.exp(RNG.uniform(np.log(1e-4), np.log(1e3), n))
    if dtype == np.int32:
        x, zeros = RNG.integers(-2**20, 2**20, size=shape).astype(np.int32), None
    else:
        x, zeros = codes(shape, dtype), codes((n,), dtype).astype(np.int32)
    check("Dequantize", {}, [x], quant={0: per_channel(scales, zeros, axis)}, dtypes={"out0": DType.FLOAT32})


def test_quantize_dequantize_round_trip_is_exact_on_the_grid():
    q = qp(0.125, -3)
    x = ((np.arange(-128, 128) + 3) * 0.125).astype(np.float32)
    (codes_,) = check("Quantize", {}, [x], quant={"out0": q}, dtypes={"out0": DType.INT8})
    np.testing.assert_array_equal(codes_, np.arange(-128, 128).astype(np.int8))
    (back,) = check("Dequantize", {}, [codes_], quant={0: q}, dtypes={"out0": DType.FLOAT32})
    np.testing.assert_array_equal(back, x)


# ---- Requantize / Lut ---------------------------------------------------------------------------------
REQUANT_CASES = [(0.1, 0, 0.1, 0), (0.1, 3, 0.1, -4), (1e-4, -128, 1e3, 127), (1e3, 127, 1e-4, -128),
                 (0.05, 20, 0.0137, -90), (0.02, -128, 0.3, 127), (1.0, 0, 1e-4 * 3, 0), (2.0, 5, 4.0, 5)]


@pytest.mark.parametrize("sx,zx,sy,zy", REQUANT_CASES, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_requantize(dtype, sx, zx, sy, zy):
    quant = {0: qp(sx, shifted(zx, dtype)), "out0": qp(sy, shifted(zy, dtype))}
    check("Requantize", {}, [all_codes(dtype)], quant=quant)
    check("Requantize", {}, [codes((3, 40000), dtype)], quant=quant)
    check("Requantize", {}, [codes((), dtype)], quant=quant)


@pytest.mark.parametrize("x_dtype,table_dtype", [(np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8),
                                                 (np.uint8, np.int8)], ids=str)
def test_lut(x_dtype, table_dtype):
    table = codes((256,), table_dtype)
    out = {"out0": DType.from_numpy(table_dtype)}
    check("Lut", {}, [all_codes(x_dtype), table], dtypes=out, consts={1})
    check("Lut", {}, [codes((2, 3, 40000), x_dtype), table], dtypes=out, consts={1})
    check("Lut", {}, [codes((1, 1, 5), x_dtype), table], dtypes=out, consts={1})
    for length in (63, 64, 65, 129, 255):  # around the 64-byte vectors of the AVX-512 VBMI lookup
        check("Lut", {}, [codes((length,), x_dtype), table], dtypes=out, consts={1})


def test_lut_as_the_quantizer_builds_it():
    """A sigmoid table: dequantize each code, apply, quantize with the output's parameters."""
    in_q, out_q = qp(0.05, -10), qp(1 / 256, -128)
    real = dequantize(np.arange(-128, 128).astype(np.int8), in_q)
    table = quantize(1 / (1 + np.exp(-real)), out_q, np.int8)
    check("Lut", {}, [codes((4, 33, 17), np.int8), table], quant={0: in_q, "out0": out_q}, consts={1})


# ---- Add / Sub / Mul -----------------------------------------------------------------------------------
BROADCAST_SHAPES = [((), ()), ((7,), (7,)), ((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 1)),
                    ((1,), (5, 7)), ((), (3,)), ((5, 1, 7), (1, 6, 1)), ((2, 1, 4, 1), (3, 1, 5)), ((17,), ()),
                    ((3, 1, 1), (2, 3, 4, 5)), ((300, 257), (257,))]
# (s_a, z_a, s_b, z_b, s_y, z_y) for int8: equal scales, zero points at the ends, ratios of 1e7 both
# ways (the small operand shows where the large one is at its zero point), a tiny output scale
# (everything saturates), a huge one (everything rounds to z_y) and multipliers below 2^-32 (zero).
ARITH_PARAMS = [(0.05, 0, 0.05, 0, 0.1, 0), (0.02, -128, 0.3, 127, 0.07, 5), (1e-4, 127, 1e3, -128, 1.0, -128),
                (1e3, 3, 1e-4, -5, 1e3, 127), (1e-4, 3, 1e3, -7, 2e-4, 1), (0.1, 10, 0.1, -10, 1e-4, 0),
                (0.1, 10, 0.2, -10, 1e3, 0), (1e-4, 0, 1e-4, 0, 1e3, 0), (0.0123, -77, 0.0456, 31, 0.0321, -1)]


def _arith_quant(params, dtype) -> dict:
    sa, za, sb, zb, sy, zy = params
    return {0: qp(sa, shifted(za, dtype)), 1: qp(sb, shifted(zb, dtype)), "out0": qp(sy, shifted(zy, dtype))}


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("params", ARITH_PARAMS, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_arithmetic(op, dtype, params, shapes):
    a_shape, b_shape = shapes
    check(op, {}, [codes(a_shape, dtype), codes(b_shape, dtype)], quant=_arith_quant(params, dtype))


@pytest.mark.parametrize("params", ARITH_PARAMS, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_arithmetic_every_code_pair(op, dtype, params):
    """[256, 1] against [1, 256]: every pair of codes, both operand orders."""
    x = all_codes(dtype)
    quant = _arith_quant(params, dtype)
    check(op, {}, [x.reshape(256, 1), x.reshape(1, 256)], quant=quant)
    check(op, {}, [x.reshape(1, 256), x.reshape(256, 1)], quant=quant)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_arithmetic_constant_operand(op):
    quant = _arith_quant(ARITH_PARAMS[1], np.int8)
    check(op, {}, [codes((2, 8, 5, 5), np.int8), codes((8, 1, 1), np.int8)], quant=quant, consts={1})
    check(op, {}, [codes((), np.int8), codes((4, 9), np.int8)], quant=quant, consts={0})


# ---- pooling and ReduceMean ----------------------------------------------------------------------------
POOL_CASES = [
    ((1, 3, 9, 9), [3, 3], [1, 1], [0, 0, 0, 0], [1, 1]),
    ((2, 4, 9, 9), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 8, 8), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 2, 7, 8), [3, 2], [2, 1], [0, 1, 1, 0], [1, 1]),
    ((1, 3, 11, 10), [3, 3], [1, 2], [2, 2, 2, 2], [2, 2]),
    ((2, 3, 7, 7), [7, 7], [1, 1], [0, 0, 0, 0], [1, 1]),
    ((1, 1, 5, 5), [3, 3], [3, 3], [2, 2, 2, 2], [1, 1]),
    ((1, 1, 1, 1), [1, 1], [1, 1], [0, 0, 0, 0], [1, 1]),
    ((1, 2, 1, 600), [1, 5], [1, 1], [0, 2, 0, 2], [1, 1]),   # more output columns than one block
    ((1, 64, 56, 56), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    # the separable path: several chunks of output columns, stride 2 over odd and even spans, and
    # windows wider than the merged line (pooled row by row)
    ((1, 2, 5, 1203), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 4, 1200), [2, 3], [1, 2], [0, 0, 1, 1], [1, 1]),
    ((1, 3, 6, 17), [3, 2], [2, 2], [1, 0, 1, 1], [2, 1]),
    ((1, 2, 3, 1040), [2, 1030], [1, 3], [1, 4, 0, 3], [1, 1]),
    ((2, 3, 7, 9), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),     # narrow outputs: a plane at a time
    ((1, 5, 5, 33), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 3, 9, 8), [3, 2], [2, 3], [1, 0, 1, 2], [2, 1]),
]
POOL_PARAMS = [(0.05, 0), (1e-4, -128), (1e3, 127)]


def _pool_attrs(kernel, strides, pads, dilations) -> dict:
    return {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations}


@pytest.mark.parametrize("scale,zero", POOL_PARAMS, ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_max_pool(dtype, case, scale, zero):
    shape, *window = case
    q = qp(scale, shifted(zero, dtype))
    check("MaxPool", _pool_attrs(*window), [codes(shape, dtype)], quant={0: q, "out0": q})


@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_max_pool_padding_never_wins(dtype):
    """All codes at the floor, windows overlapping or wholly inside the padding."""
    lo, _ = RANGES[dtype]
    q = qp(0.1, shifted(0, dtype))
    x = np.full((1, 2, 3, 4), lo, dtype)
    x[0, 1, 1, 2] = lo + 1
    check("MaxPool", _pool_attrs([2, 2], [1, 1], [3, 3, 3, 3], [1, 1]), [x], quant={0: q, "out0": q})


@pytest.mark.parametrize("scale,zero", POOL_PARAMS, ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_average_pool(dtype, case, scale, zero):
    shape, *window = case
    q = qp(scale, shifted(zero, dtype))
    check("AveragePool", {**_pool_attrs(*window), "count_include_pad": 0}, [codes(shape, dtype)],
          quant={0: q, "out0": q})


def test_average_pool_rounds_half_away_from_zero():
    # pairs whose sums are odd: means of x.5 both sides of zero
    x = np.array([[-2, -3, 2, 3, -1, 0, 1, 0, -128, -127, 127, 126]], np.int8).reshape(1, 1, 1, 12)
    q = qp(0.5, 0)
    (y,) = check("AveragePool", {**_pool_attrs([1, 2], [1, 2], [0, 0, 0, 0], [1, 1]), "count_include_pad": 0}, [x],
                 quant={0: q, "out0": q})
    np.testing.assert_array_equal(y.reshape(-1), [-3, 3, -1, 1, -128, 127])


def test_average_pool_window_wholly_in_padding():
    q = qp(0.5, 3)
    attrs = {**_pool_attrs([1, 1], [1, 1], [1, 1, 1, 1], [1, 1]), "count_include_pad": 0}
    with np.errstate(divide="ignore", invalid="ignore"):  # the reference's 0 // 0
        check("AveragePool", attrs, [codes((1, 2, 2, 3), np.int8)], quant={0: q, "out0": q})


@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_average_pool_count_include_pad_without_padding(dtype):
    """Without padding every cell is inside, so count_include_pad changes nothing (the reference refuses
    the attribute outright on int8: compared against it with count_include_pad 0)."""
    x = codes((2, 3, 9, 8), dtype)
    q = qp(0.05, shifted(4, dtype))
    window = _pool_attrs([3, 2], [2, 1], [0, 0, 0, 0], [1, 2])
    (got,) = run_native("AveragePool", {**window, "count_include_pad": 1}, [x], quant={0: q, "out0": q})
    (want,) = average_pool_int8({**window, "count_include_pad": 0}, x)
    np.testing.assert_array_equal(got, want)


REDUCE_CASES = [((2, 3, 4, 5), [0]), ((2, 3, 4, 5), [1]), ((2, 3, 4, 5), [3]), ((2, 3, 4, 5), [1, 2]),
                ((2, 3, 4, 5), [0, 2]), ((2, 3, 4, 5), [2, 3]), ((2, 3, 4, 5), [0, 1, 2, 3]), ((2, 3, 4, 5), []),
                ((4, 200, 300), [1]), ((4, 200, 300), [2]), ((3, 1, 5, 1, 70), [0, 3]), ((1, 512, 14, 14), [2, 3]),
                ((20000,), [0]), ((1, 1, 1), [1])]
REDUCE_PARAMS = [(0.05, 0, 0.05, 0), (0.05, -128, 0.01, 127), (1e-4, 127, 1e3, -128), (1e3, -128, 1e-4, 127),
                 (0.02, 17, 0.021, -30)]


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("params", REDUCE_PARAMS, ids=str)
@pytest.mark.parametrize("case", REDUCE_CASES, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_reduce_mean(dtype, case, params, keepdims):
    shape, axes = case
    sx, zx, sy, zy = params
    check("ReduceMean", {"axes": axes, "keepdims": keepdims}, [codes(shape, dtype)],
          quant={0: qp(sx, shifted(zx, dtype)), "out0": qp(sy, shifted(zy, dtype))})


# ---- data movement on codes --------------------------------------------------------------------------
def _same(q: QuantParams, n_in: int = 1, n_out: int = 1) -> dict:
    return {**{i: q for i in range(n_in)}, **{f"out{i}": q for i in range(n_out)}}


NEAREST = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
MOVEMENT_CASES = [
    ("Reshape", {}, [(2, 3, 4)], [(4, 6)]),
    ("Reshape", {}, [(5,)], [(1, 5, 1)]),
    ("Transpose", {"perm": [2, 0, 1]}, [(2, 3, 4)], None),
    ("Transpose", {"perm": [0, 2, 3, 1]}, [(2, 3, 5, 7)], None),
    ("Transpose", {"perm": [1, 0]}, [(300, 301)], None),
    ("Concat", {"axis": 1}, [(2, 3, 4), (2, 1, 4), (2, 5, 4)], None),
    ("Concat", {"axis": 0}, [(1,), (6,)], None),
    ("Split", {"axis": 1, "split": [1, 2, 4]}, [(3, 7, 2)], None),
    ("Split", {"axis": 0, "split": [3, 3]}, [(6, 5)], None),
    ("Slice", {"starts": [1, 0, 4], "ends": [3, 3, -1], "steps": [1, 2, -2]}, [(4, 3, 6)], None),
    ("Expand", {}, [(3, 1)], [(2, 3, 5)]),
    ("Tile", {"repeats": [2, 1, 3]}, [(2, 3, 4)], None),
    ("DepthToSpace", {"blocksize": 2, "mode": "DCR"}, [(1, 8, 3, 3)], None),
    ("DepthToSpace", {"blocksize": 2, "mode": "CRD"}, [(2, 4, 2, 5)], None),
    ("Resize", {**NEAREST, "scales": [1.0, 1.0, 2.0, 3.0]}, [(1, 2, 3, 4)], [(1, 2, 6, 12)]),
    ("Resize", {**NEAREST, "nearest_mode": "round_prefer_ceil", "coordinate_transformation_mode": "half_pixel",
                "scales": [1.0, 1.0, 0.5, 0.5]}, [(2, 3, 8, 8)], [(2, 3, 4, 4)]),
    ("Pad", {"pads": [1, 0, 2, 3], "mode": "reflect", "value": 0.0}, [(4, 5)], None),
    ("Pad", {"pads": [0, 2, 1, 1], "mode": "edge", "value": 0.0}, [(3, 4)], None),
    ("Pad", {"pads": [1, 1, 1, 1], "mode": "constant", "value": 0.0}, [(3, 4)], None),
    ("Pad", {"pads": [0, 1, 2, 0, 1, 0], "mode": "constant", "value": 0.37}, [(2, 3, 4)], None),
    ("Pad", {"pads": [2, 2], "mode": "constant", "value": -1e6}, [(5,)], None),  # the value saturates
    ("Pad", {"pads": [1, 0], "mode": "constant", "value": 1e6}, [(5,)], None),
]


@pytest.mark.parametrize("scale,zero", [(0.05, 0), (1e-4, -128), (1e3, 127)], ids=str)
@pytest.mark.parametrize("op,attrs,shapes,out_shapes", MOVEMENT_CASES, ids=str)
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_movement(dtype, op, attrs, shapes, out_shapes, scale, zero):
    q = qp(scale, shifted(zero, dtype))
    n_out = len(attrs["split"]) if op == "Split" else 1
    check(op, attrs, [codes(s, dtype) for s in shapes], quant=_same(q, len(shapes), n_out), out_shapes=out_shapes)


@pytest.mark.parametrize("indices", [np.array(2), np.array([0, -1, 3, 3]), np.array([[1, 0], [-4, 2]])], ids=str)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", CODE_DTYPES, ids=lambda d: d.__name__)
def test_gather_codes(dtype, axis, indices):
    # the reference dequantizes whenever Gather's data is quantized, so the expectation is np.take
    x = codes((4, 4, 3), dtype)
    q = qp(0.1, shifted(-9, dtype))
    (got,) = run_native("Gather", {"axis": axis}, [x, indices.astype(np.int64)], quant={0: q, "out0": q})
    np.testing.assert_array_equal(got, np.take(x, np.where(indices < 0, indices + 4, indices), axis=axis))


def test_movement_without_parameters():
    """Plain int8 tensors (no quantization record) still move."""
    check("Transpose", {"perm": [1, 0]}, [codes((3, 5), np.int8)])
    check("Concat", {"axis": 0}, [codes((2, 2), np.uint8), codes((1, 2), np.uint8)])


# ---- Gather from int8 / int4 tables --------------------------------------------------------------------
def _gather_table(table, indices, quant, dtype: DType, const: bool = True, num_threads: int = 2):
    return check("Gather", {"axis": 0}, [table, indices], quant={0: quant}, dtypes={0: dtype, "out0": DType.FLOAT32},
                 consts={0} if const else set(), num_threads=num_threads)


INDICES = [np.array(3), np.array([0]), np.array([5, -1, 0, 5, -6]), np.arange(6).reshape(2, 3)[:, ::-1].copy()]


@pytest.mark.parametrize("index_dtype", [np.int64, np.int32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("indices", INDICES, ids=str)
@pytest.mark.parametrize("shape", [(6, 16), (6, 3, 5), (6,), (6, 1)], ids=str)
def test_gather_int8_table_per_row(shape, indices, index_dtype):
    table = codes(shape, np.int8)
    scales = np.exp(RNG.uniform(np.log(1e-4), np.log(1e3), shape[0]))
    _gather_table(table, indices.astype(index_dtype), per_channel(scales, axis=0), DType.INT8)
    # with zero points and the table as a run-time input
    zeros = codes((shape[0],), np.int8)
    _gather_table(table, indices.astype(index_dtype), per_channel(scales, zeros, axis=0), DType.INT8, const=False)


def test_gather_int8_table_per_tensor():
    _gather_table(codes((6, 7), np.int8), np.array([1, 5, -2]), qp(0.013, -3), DType.INT8)


INT4_CASES = [((6, 128), 128), ((6, 128), 64), ((6, 256), 32), ((6, 2, 64), 32), ((6, 9), 3), ((6, 5), 1),
              ((6, 7), 7), ((6, 1), 1)]


@pytest.mark.parametrize("index_dtype", [np.int64, np.int32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("indices", INDICES, ids=str)
@pytest.mark.parametrize("shape,block", INT4_CASES, ids=str)
def test_gather_int4_table_blockwise(shape, block, indices, index_dtype):
    """Blocks along the last axis; odd row lengths start rows on a high nibble."""
    table = RNG.integers(-8, 8, size=shape).astype(np.int8)
    table.reshape(-1)[:2] = [-8, 7]
    n_blocks = int(np.prod(shape)) // block
    scales = np.exp(RNG.uniform(np.log(1e-4), np.log(1e3), n_blocks))
    _gather_table(table, indices.astype(index_dtype), per_channel(scales, axis=len(shape) - 1, block_size=block),
                  DType.INT4)


def test_gather_table_many_rows_threads():
    table = RNG.integers(-8, 8, size=(1000, 256)).astype(np.int8)
    scales = RNG.uniform(0.001, 0.1, 1000 * 2)
    indices = RNG.integers(-1000, 1000, size=(64, 50))
    _gather_table(table, indices, per_channel(scales, axis=1, block_size=128), DType.INT4, num_threads=4)
    _gather_table(codes((1000, 256), np.int8), indices, per_channel(RNG.uniform(0.001, 0.1, 1000), axis=0),
                  DType.INT8, num_threads=4)


@pytest.mark.parametrize("bad_index", [6, -7])
def test_gather_table_index_out_of_range_at_run_time(bad_index):
    graph, feeds = op_graph("Gather", {"axis": 0}, [codes((6, 4), np.int8), np.array([0, bad_index])], consts={0},
                            quant={0: per_channel(np.ones(6), axis=0)}, dtypes={"out0": DType.FLOAT32})
    with tempfile.TemporaryDirectory() as tmp:
        session = edgepack.load(write_graph(graph, Path(tmp) / "op.epk"))
        with pytest.raises(edgepack.RunError, match=f"index {bad_index} at position 1"):
            session.run(feeds)


# ---- artifacts with bad quantization parameters -------------------------------------------------------
X8 = np.zeros((2, 4), np.int8)
F32 = np.zeros((2, 4), np.float32)
Q = qp(0.1, 0)
TWO = QuantParams(np.array([0.1, 0.2], np.float32), np.zeros(2, np.int32))
INT8_OUT = {"out0": DType.INT8}
FLOAT_OUT = {"out0": DType.FLOAT32}
POOL = _pool_attrs([2, 2], [1, 1], [0, 0, 0, 0], [1, 1])
X4 = np.zeros((1, 2, 4, 4), np.int8)


@pytest.mark.parametrize("scale", [0.0, -0.5, np.nan, np.inf, -np.inf], ids=str)
@pytest.mark.parametrize("op", ["Add", "Quantize", "Dequantize", "Requantize", "MaxPool", "ReduceMean"])
def test_bad_scale_rejected(op, scale):
    bad = qp(scale)
    if op == "Add":
        case = dict(inputs=[X8, X8], quant={0: Q, 1: bad, "out0": Q})
    elif op == "Quantize":
        case = dict(inputs=[F32], quant={"out0": bad}, dtypes=INT8_OUT)
    elif op == "Dequantize":
        case = dict(inputs=[X8], quant={0: bad}, dtypes=FLOAT_OUT)
    elif op == "Requantize":
        case = dict(inputs=[X8], quant={0: Q, "out0": bad})
    elif op == "MaxPool":
        case = dict(inputs=[X4], quant={0: bad, "out0": bad})
    else:
        case = dict(inputs=[X8], quant={0: bad, "out0": Q})
    attrs = {"ReduceMean": {"axes": [1], "keepdims": 0}, "MaxPool": POOL}
    rejected(op, attrs.get(op, {}), case.pop("inputs"), "scales must be finite and > 0", **case)


BAD_CASES = [
    # scale counts
    ("Add", {}, [X8, X8], dict(quant={0: TWO, 1: Q, "out0": Q}), ["input 0", "2 scales, expected 1"]),
    ("Quantize", {}, [F32], dict(quant={"out0": TWO}, dtypes=INT8_OUT), ["output", "2 scales, expected 1"]),
    ("Dequantize", {}, [X8], dict(quant={0: per_channel([0.1, 0.2, 0.3], axis=1)}, dtypes=FLOAT_OUT),
     ["3 scales, expected 1 or 4", "axis 1"]),
    ("Dequantize", {}, [X8], dict(quant={0: per_channel([0.1] * 4, axis=None)}, dtypes=FLOAT_OUT),
     ["4 scales but no quantization axis"]),
    ("Dequantize", {}, [X8], dict(quant={0: per_channel([0.1] * 4, axis=2)}, dtypes=FLOAT_OUT),
     ["quantization axis 2", "rank 2"]),
    ("ReduceMean", {"axes": [1], "keepdims": 0}, [X8], dict(quant={0: Q, "out0": TWO}), ["2 scales"]),
    # zero points
    ("Requantize", {}, [X8], dict(quant={0: qp(0.1, 128), "out0": Q}), ["zero point 128", "[-128, 127]"]),
    ("Requantize", {}, [X8.astype(np.uint8)], dict(quant={0: Q, "out0": qp(0.1, -1)}), ["zero point -1", "[0, 255]"]),
    ("Dequantize", {}, [X8.astype(np.int32)], dict(quant={0: qp(0.1, 3)}, dtypes=FLOAT_OUT),
     ["zero point 3", "[0, 0]", "int32"]),
    # missing or inconsistent records and dtypes
    ("Quantize", {}, [F32], dict(dtypes=INT8_OUT), ["no quantization parameters"]),
    ("Quantize", {}, [F32], dict(quant={"out0": Q}, dtypes={"out0": DType.INT32}), ["expected int8 or uint8"]),
    ("Dequantize", {}, [X8], dict(quant={0: Q}, dtypes={"out0": DType.INT8}), ["expected float32"]),
    ("Requantize", {}, [X8], dict(quant={0: Q, "out0": Q}, dtypes={"out0": DType.UINT8}), ["expected int8"]),
    ("Add", {}, [X8, X8], dict(quant={0: Q, 1: Q}), ["output", "no quantization parameters"]),
    ("ReduceMean", {"axes": [1], "keepdims": 0}, [X8], {}, ["no quantization parameters"]),
    ("Dequantize", {}, [X8], dict(quant={0: per_channel([0.1, 0.2], axis=0, block_size=1)}, dtypes=FLOAT_OUT),
     ["block-wise"]),
    # multipliers out of range
    ("Requantize", {}, [X8], dict(quant={0: qp(1e5), "out0": qp(1e-5)}), ["multiplier", "s_x / s_y", "2^30"]),
    ("Mul", {}, [X8, X8], dict(quant={0: qp(1e3), 1: qp(1e3), "out0": qp(1e-4)}), ["s_a * s_b / s_y"]),
    # Lut tables
    ("Lut", {}, [X8, np.zeros(255, np.int8)], dict(consts={1}), ["[255]", "expected [256]"]),
    ("Lut", {}, [X8, np.zeros(256, np.int8)], {}, ["must be a constant"]),
    ("Lut", {}, [X8, np.zeros(256, np.uint8)], dict(consts={1}), ["table", "expected int8"]),
    # codes move unchanged: parameters must match
    ("Transpose", {"perm": [1, 0]}, [X8], dict(quant={0: Q, "out0": qp(0.2)}), ["must be equal"]),
    ("Reshape", {}, [X8], dict(quant={0: Q}, out_shapes=[(8,)]), ["both be quantized"]),
    ("Concat", {"axis": 0}, [X8, X8], dict(quant={0: Q, 1: qp(0.1, 1), "out0": Q}), ["in1", "must be equal"]),
    ("Split", {"axis": 1, "split": [1, 3]}, [X8], dict(quant={0: Q, "out0": Q, "out1": qp(0.3)}),
     ["out1", "must be equal"]),
    ("Pad", {"pads": [0, 1, 0, 1], "mode": "constant", "value": 1.0}, [X8], dict(quant={0: Q, "out0": qp(0.1, 2)}),
     ["must be equal"]),
    ("MaxPool", POOL, [X4], dict(quant={0: Q, "out0": qp(0.5)}), ["must be equal"]),
    ("AveragePool", {**POOL, "pads": [1, 1, 1, 1], "count_include_pad": 1}, [X4], dict(quant={0: Q, "out0": Q}),
     ["count_include_pad with padding"]),
    ("Add", {}, [X8, X8], dict(quant={0: Q, 1: per_channel([0.1, 0.2], axis=0), "out0": Q}), ["input 1", "expected 1"]),
    # Gather tables
    ("Gather", {"axis": 0}, [np.zeros((4, 64), np.int8), np.array([0])],
     dict(consts={0}, quant={0: per_channel(np.ones(3), axis=1, block_size=32)}, dtypes={0: DType.INT4, **FLOAT_OUT}),
     ["3 scales, expected 8", "block of 32"]),
    ("Gather", {"axis": 0}, [np.zeros((4, 64), np.int8), np.array([0])],
     dict(consts={0}, quant={0: per_channel(np.ones(4), axis=1, block_size=48)}, dtypes={0: DType.INT4, **FLOAT_OUT}),
     ["block size 48", "does not divide"]),
    ("Gather", {"axis": 0}, [np.zeros((4, 64), np.int8), np.array([0])],
     dict(consts={0}, quant={0: per_channel(np.full(8, 0.1), [0] * 7 + [1], axis=1, block_size=32)},
          dtypes={0: DType.INT4, **FLOAT_OUT}), ["zero point 1", "[0, 0] for int4"]),
    ("Gather", {"axis": 0}, [np.zeros((4, 64), np.int8), np.array([0])],
     dict(consts={0}, quant={0: per_channel(np.ones(128), axis=0, block_size=2)}, dtypes={0: DType.INT4, **FLOAT_OUT}),
     ["block-wise along its last axis"]),
    ("Gather", {"axis": 0}, [np.zeros((4, 64), np.int8), np.array([0])],
     dict(consts={0}, quant={0: per_channel(np.ones(64), axis=1)}, dtypes=FLOAT_OUT), ["per row (axis 0)"]),
    ("Gather", {"axis": 0}, [np.zeros((4, 6), np.int8), np.array([0])],
     dict(consts={0}, quant={0: per_channel(np.ones(5), axis=0)}, dtypes=FLOAT_OUT), ["5 scales, expected 1 or 4"]),
    ("Gather", {"axis": 1}, [np.zeros((4, 6), np.int8), np.array([0])],
     dict(consts={0}, quant={0: per_channel(np.ones(4), axis=0)}, dtypes=FLOAT_OUT), ["along axis 0, not 1"]),
    ("Gather", {"axis": 0}, [np.zeros((4, 6), np.int8), np.array([0])],
     dict(consts={0}, dtypes=FLOAT_OUT), ["no quantization parameters"]),
    ("Gather", {"axis": 0}, [np.zeros((4, 6), np.uint8), np.array([0])],
     dict(consts={0}, quant={0: Q}, dtypes=FLOAT_OUT), ["must be int8 or int4"]),
]


@pytest.mark.parametrize("op,attrs,inputs,kwargs,needles", BAD_CASES,
                         ids=[f"{c[0]}-{c[4][-1]}" for c in BAD_CASES])
def test_bad_quantization_rejected_at_load(op, attrs, inputs, kwargs, needles):
    rejected(op, attrs, inputs, *needles, **kwargs)
