"""Native compute kernels (native/kernels/ref/{gemm,matmul,conv}.cpp) against the numpy reference.

Shapes sweep around the GEMM register tiles of every build (8x32 AVX-512, 6x16 AVX2, 4x16 portable):
below, equal to, above and not divisible by a tile, 1 in any dimension, K across the K-block size
(256), batch broadcasting, groups, strides, dilations, asymmetric pads and fused activations. Results
must match the float64 reference within rtol 1e-4, atol 1e-5. Then artifacts that get a compute op
wrong must be rejected at load with an error naming the op and the problem."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

import edgepack
from op_harness import op_graph, run_op, write_graph

RNG = np.random.default_rng(2024)
RTOL, ATOL = 1e-4, 1e-5
NO_ACT = {"activation": "none", "act_min": 0.0, "act_max": 0.0}
ACTIVATIONS = {
    "none": NO_ACT,
    "relu": {"activation": "relu", "act_min": 0.0, "act_max": 0.0},
    "clip": {"activation": "clip", "act_min": -0.5, "act_max": 0.75},
}


def randn(*shape, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def weights(*shape, fan_in: int) -> np.ndarray:
    """Scaled so sums stay O(1): the tolerance is then about the kernel, not float32 cancellation."""
    return randn(*shape, scale=1.0 / np.sqrt(max(fan_in, 1)))


def check(op: str, attrs: dict, inputs: list, consts=frozenset(), num_threads: int = 2) -> None:
    native, reference = run_op(op, attrs, inputs, consts=set(consts), num_threads=num_threads)
    for got, want in zip(native, reference):
        assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=op)


def conv_attrs(strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, act="none") -> dict:
    return {"strides": list(strides), "pads": list(pads), "dilations": list(dilations), "group": group,
            **ACTIVATIONS[act]}


def convt_attrs(strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, output_padding=(0, 0)) -> dict:
    return {"strides": list(strides), "pads": list(pads), "dilations": list(dilations), "group": group,
            "output_padding": list(output_padding)}


# ---- MatMul ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 4, 5, 6, 7, 8, 9, 13, 17])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 31, 32, 33, 70])
def test_matmul_tile_edges(m, n):
    k = 19
    check("MatMul", NO_ACT, [randn(m, k), weights(k, n, fan_in=k)], consts={1})


@pytest.mark.parametrize("k", [1, 2, 16, 255, 256, 257, 600, 1030])
def test_matmul_k_blocks(k):
    # K above 256 is split into blocks that accumulate in C before the epilogue runs.
    bias = randn(37)
    check("MatMul", ACTIVATIONS["relu"], [randn(11, k), weights(k, 37, fan_in=k), bias], consts={1, 2})


@pytest.mark.parametrize("act", ["none", "relu", "clip"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("b_const", [False, True])
def test_matmul_epilogue(act, with_bias, b_const):
    inputs = [randn(23, 45), weights(45, 50, fan_in=45)] + ([randn(50)] if with_bias else [])
    consts = ({1} if b_const else set()) | ({2} if with_bias else set())
    check("MatMul", ACTIVATIONS[act], inputs, consts=consts)


@pytest.mark.parametrize("a_shape,b_shape", [
    ((2, 3, 9, 20), (20, 33)),         # batch folded into the rows of one GEMM
    ((4, 9, 20), (1, 20, 33)),         # B's batch of 1 folds too
    ((9, 20), (3, 20, 33)),            # A broadcast over B's batch
    ((2, 1, 9, 20), (3, 20, 33)),      # both broadcast
    ((1, 3, 9, 20), (2, 1, 20, 33)),
    ((5, 16, 64), (5, 64, 16)),        # attention-style: one GEMM per batch item
    ((3, 1, 7), (3, 7, 1)),            # M = N = 1
    ((2, 2, 2, 6, 5), (2, 1, 2, 5, 4)),
])
@pytest.mark.parametrize("b_const", [False, True])
def test_matmul_batch_broadcasting(a_shape, b_shape, b_const):
    k = a_shape[-1]
    check("MatMul", NO_ACT, [randn(*a_shape), weights(*b_shape, fan_in=k)], consts={1} if b_const else set())


def test_matmul_constant_a():
    check("MatMul", NO_ACT, [weights(3, 12, 30, fan_in=30), randn(3, 30, 21)], consts={0})
    check("MatMul", ACTIVATIONS["clip"], [weights(12, 30, fan_in=30), randn(30, 21), randn(21)], consts={0, 2})


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("b_const", [False, True])
def test_matmul_large_threaded(num_threads, b_const):
    # Large enough to be split over threads, along M (tall) and along N (wide).
    for m, n in ((700, 40), (48, 900)):
        check("MatMul", ACTIVATIONS["relu"], [randn(m, 300), weights(300, n, fan_in=300), randn(n)],
              consts={2} | ({1} if b_const else set()), num_threads=num_threads)


def test_matmul_many_batch_items_threaded():
    check("MatMul", NO_ACT, [randn(12, 40, 64), weights(12, 64, 40, fan_in=64)], num_threads=2)
    check("MatMul", NO_ACT, [randn(3, 200, 64), weights(3, 64, 300, fan_in=64)], num_threads=2)


def test_matmul_fc_vector():
    # The classifier shape: one row against a large constant weight.
    check("MatMul", NO_ACT, [randn(1, 2048), weights(2048, 1000, fan_in=2048), randn(1000)], consts={1, 2})


def test_matmul_nan_propagates_through_relu():
    a = randn(3, 8)
    a[1, 2] = np.nan
    native, _ = run_op("MatMul", ACTIVATIONS["relu"], [a, weights(8, 5, fan_in=8)], consts={1})
    assert np.isnan(native[0][1]).all() and not np.isnan(native[0][[0, 2]]).any()


# ---- Conv -----------------------------------------------------------------------------------------
def conv_case(n, c, h, w, m, kh, kw, group=1, bias=True, num_threads=2, **attrs):
    x = randn(n, c, h, w)
    wt = weights(m, c // group, kh, kw, fan_in=c // group * kh * kw)
    inputs = [x, wt] + ([randn(m)] if bias else [])
    check("Conv", conv_attrs(group=group, **attrs), inputs, consts={1, 2}, num_threads=num_threads)


@pytest.mark.parametrize("c", [1, 3, 8, 17])
@pytest.mark.parametrize("m", [1, 6, 8, 9, 33])
def test_conv_pointwise(c, m):
    conv_case(1, c, 5, 7, m, 1, 1)


@pytest.mark.parametrize("hw", [(1, 1), (4, 4), (4, 8), (5, 7), (6, 11), (13, 13)])
def test_conv_pointwise_spatial_tile_edges(hw):
    # 16 / 32 / 35 / 66 / 169 output pixels: the GEMM's N dimension around its tile.
    conv_case(2, 12, *hw, 20, 1, 1, act="relu")


@pytest.mark.parametrize("kernel,strides,pads,dilations", [
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    ((3, 3), (1, 1), (0, 0, 0, 0), (1, 1)),
    ((3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
    ((3, 3), (1, 2), (0, 1, 2, 0), (1, 1)),     # asymmetric everything
    ((2, 4), (2, 1), (1, 0, 0, 3), (2, 1)),
    ((1, 1), (2, 2), (0, 0, 0, 0), (1, 1)),     # strided 1x1 (ResNet downsample)
    ((1, 1), (1, 1), (1, 0, 0, 1), (1, 1)),     # padded 1x1 goes through the shifted (phase plane) path
    ((7, 7), (2, 2), (3, 3, 3, 3), (1, 1)),     # ResNet stem
    ((5, 5), (3, 3), (4, 4, 4, 4), (1, 1)),     # padding wider than the input under some taps
    ((3, 1), (1, 1), (1, 0, 1, 0), (1, 1)),     # kw == 1: the stride-1 path writes Y directly
    ((2, 3), (1, 1), (0, 2, 1, 0), (1, 1)),     # stride 1, asymmetric pads
    ((3, 3), (1, 1), (1, 0, 2, 3), (2, 1)),
    ((4, 2), (1, 1), (0, 0, 0, 0), (1, 3)),     # stride 1, no padding, dilated
])
def test_conv_windows(kernel, strides, pads, dilations):
    conv_case(1, 5, 11, 13, 10, *kernel, strides=strides, pads=pads, dilations=dilations)


@pytest.mark.parametrize("act", ["none", "relu", "clip"])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_epilogue(act, bias):
    conv_case(2, 4, 9, 9, 7, 3, 3, bias=bias, pads=(1, 1, 1, 1), act=act)


@pytest.mark.parametrize("c,m,group", [(4, 4, 2), (8, 12, 4), (6, 9, 3), (12, 24, 3), (32, 64, 32)])
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3)])
def test_conv_grouped(c, m, group, kernel):
    pads = (1, 1, 1, 1) if kernel == (3, 3) else (0, 0, 0, 0)
    conv_case(1, c, 10, 9, m, *kernel, group=group, pads=pads, act="relu")


@pytest.mark.parametrize("strides,pads,dilations", [
    ((1, 1), (1, 1, 1, 1), (1, 1)),
    ((2, 2), (1, 1, 1, 1), (1, 1)),
    ((2, 1), (0, 2, 1, 0), (1, 1)),
    ((1, 1), (2, 2, 2, 2), (2, 2)),
    ((3, 3), (0, 0, 0, 0), (1, 2)),
])
@pytest.mark.parametrize("act", ["none", "clip"])
def test_conv_depthwise(strides, pads, dilations, act):
    conv_case(2, 7, 12, 15, 7, 3, 3, group=7, strides=strides, pads=pads, dilations=dilations, act=act)


@pytest.mark.parametrize("shape,kernel,strides,pads,dilations", [
    ((1, 6, 11, 13), (3, 3), (2, 2), (1, 1, 0, 2), (1, 1)),      # stride 2, odd left pad
    ((1, 5, 10, 16), (3, 3), (2, 2), (0, 2, 1, 1), (1, 1)),      # stride 2, even left pad
    ((1, 4, 14, 17), (3, 4), (3, 3), (1, 2, 2, 1), (1, 1)),      # stride 3
    ((1, 3, 13, 15), (3, 3), (2, 2), (2, 3, 2, 1), (2, 3)),      # stride 2, dilated
    ((1, 3, 3, 4200), (2, 3), (1, 1), (1, 1, 0, 1), (1, 1)),     # rows wider than the grid: chunked
    ((1, 3, 3, 8500), (1, 3), (1, 2), (0, 1, 0, 0), (1, 1)),
], ids=str)
def test_conv_depthwise_strides_and_wide_rows(shape, kernel, strides, pads, dilations):
    conv_case(*shape, shape[1], *kernel, group=shape[1], strides=strides, pads=pads, dilations=dilations, act="relu")


def test_conv_depthwise_5x5_and_no_bias():
    conv_case(1, 16, 20, 20, 16, 5, 5, group=16, bias=False, pads=(2, 2, 2, 2), strides=(2, 2))


@pytest.mark.parametrize("shape,kernel,strides,pads,dilations", [
    ((2, 37, 4, 4), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),       # blocks of 16 channels and a tail
    ((1, 40, 8, 7), (5, 5), (2, 2), (2, 1, 2, 3), (1, 1)),
    ((1, 33, 6, 6), (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),       # dilated
    ((1, 120, 2, 2), (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),      # MobileNet's 2x2 stage
    ((1, 16, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),       # 64 pixels: the largest channels-last plane
], ids=str)
@pytest.mark.parametrize("num_threads", [1, 2])
def test_conv_depthwise_small_planes_go_channels_last(shape, kernel, strides, pads, dilations, num_threads):
    conv_case(*shape, shape[1], *kernel, group=shape[1], strides=strides, pads=pads, dilations=dilations, act="clip",
              num_threads=num_threads)


@pytest.mark.parametrize("multiplier", [2, 3])
def test_conv_depthwise_channel_multiplier(multiplier):
    # group == C but M = multiplier * C: the generic grouped path.
    conv_case(1, 5, 9, 8, 5 * multiplier, 3, 3, group=5, pads=(1, 1, 1, 1), strides=(2, 1))


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_conv_large_threaded(num_threads):
    # Big enough that the GEMMs are split over threads (along pixels, and along channels at 7x7).
    x, w = randn(1, 64, 28, 28), weights(64, 64, 3, 3, fan_in=576)
    check("Conv", conv_attrs(pads=(1, 1, 1, 1), act="relu"), [x, w, randn(64)], consts={1, 2}, num_threads=num_threads)
    x, w = randn(1, 256, 7, 7), weights(512, 256, 3, 3, fan_in=2304)
    check("Conv", conv_attrs(pads=(1, 1, 1, 1)), [x, w, randn(512)], consts={1, 2}, num_threads=num_threads)
    x, w = randn(1, 64, 30, 30), weights(128, 64, 1, 1, fan_in=64)
    check("Conv", conv_attrs(), [x, w], consts={1}, num_threads=num_threads)


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("kernel,pads", [((1, 1), (0, 0, 0, 0)), ((3, 3), (1, 1, 1, 1)), ((1, 1), (1, 0, 0, 1))])
@pytest.mark.parametrize("group", [1, 2])
def test_conv_strided_many_channels(kernel, pads, group, num_threads):
    # Mg > 128: strided 1x1 convs pack B from the phase planes, 3x3 ones read them in place.
    c, m = 12 * group, 136 * group
    x, w = randn(1, c, 13, 11), weights(m, c // group, *kernel, fan_in=c // group * kernel[0] * kernel[1])
    check("Conv", conv_attrs(strides=(2, 2), pads=pads, group=group, act="relu"), [x, w, randn(m)], consts={1, 2},
          num_threads=num_threads)


# Small output planes with more channels than pixels take the pixel-rows path (conv.cpp): the output
# channels on the vector axis, im2col gathered into A, C stored transposed. Cases: 49 pixels (a last
# row panel of 1), channels 48 (a half vector) and 40, K over several K blocks (partial sums), strided
# 1x1 read in place, 3x3 read from the phase planes (K = 216; from K = 256 on, 3x3 convs go channels-last:
# the other 3x3 cases), a single pixel, batch 2, no bias, clip.
@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("n,c,hw,m,kernel,strides,pads,act,bias", [
    (2, 24, (7, 7), 48, (1, 1), (1, 1), (0, 0, 0, 0), "relu", True),
    (1, 16, (14, 13), 64, (1, 1), (2, 2), (0, 0, 0, 0), "none", True),
    (1, 72, (7, 7), 64, (3, 3), (1, 1), (1, 1, 1, 1), "clip", True),
    (1, 24, (7, 7), 64, (3, 3), (1, 1), (1, 1, 1, 1), "clip", True),
    (1, 40, (13, 13), 96, (3, 3), (2, 2), (1, 1, 1, 1), "relu", False),
    (1, 200, (5, 6), 40, (3, 3), (1, 1), (1, 1, 1, 1), "none", True),
    (1, 8, (1, 1), 64, (1, 1), (1, 1), (0, 0, 0, 0), "relu", True),
])
def test_conv_pixel_rows(n, c, hw, m, kernel, strides, pads, act, bias, num_threads):
    conv_case(n, c, *hw, m, *kernel, bias=bias, num_threads=num_threads, strides=strides, pads=pads, act=act)


# Convs with several taps over enough channels (K = C*kh*kw >= 256) take the channels-last path: the
# input copied into channels-last phase planes, im2col read in place from them as the GEMM's A, W^T in
# (i, j, c) order as B, C stored transposed. Cases: the window sweep above with K just over 256 (the
# transposed fill's 16-wide tiles and tails), K over several K blocks, 40 output channels (a half
# vector), batch 2, 1-3 threads.
@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("kernel,strides,pads,dilations", [
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    ((3, 3), (1, 2), (0, 1, 2, 0), (1, 1)),
    ((2, 4), (2, 1), (1, 0, 0, 3), (2, 1)),
    ((5, 5), (3, 3), (4, 4, 4, 4), (1, 1)),
    ((3, 3), (1, 1), (1, 0, 2, 3), (2, 1)),
    ((4, 2), (1, 1), (0, 0, 0, 0), (1, 3)),
], ids=str)
def test_conv_channels_last(kernel, strides, pads, dilations, num_threads):
    c = -(-256 // (kernel[0] * kernel[1]))
    conv_case(2, c, 11, 13, 40, *kernel, num_threads=num_threads, strides=strides, pads=pads, dilations=dilations,
              act="relu")
    conv_case(1, 3 * c, 6, 17, 33, *kernel, num_threads=num_threads, strides=strides, pads=pads, dilations=dilations)


# 3x3 stride-1 convs with at least 32 2x2 output tiles take Winograd F(2x2, 3x3) (winograd.h): the
# weights transformed per run, the input transformed per 2x2 tile over channels-last rows, 16 GEMMs,
# the output transformed with the bias and clamp. Cases: odd output sizes (tiles past the edge),
# asymmetric and zero pads, pads of 2 (a larger output), channel counts off the vector width (C = 24,
# K = 40: a partial GEMM panel), K over several panels (split between threads), no bias, batch 2,
# 1-3 threads, and planes whose tile rows span several items.
@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("n,c,hw,m,pads,act,bias", [
    (1, 64, (56, 56), 64, (1, 1, 1, 1), "relu", True),
    (1, 128, (28, 28), 128, (1, 1, 1, 1), "relu", True),
    (1, 96, (14, 14), 160, (1, 1, 1, 1), "none", True),
    (2, 24, (15, 17), 40, (1, 1, 1, 1), "clip", True),
    (1, 32, (16, 13), 48, (0, 0, 0, 0), "relu", False),
    (1, 16, (12, 19), 32, (0, 2, 1, 0), "none", True),
    (1, 16, (11, 11), 24, (2, 2, 2, 2), "relu", True),
], ids=str)
def test_conv_winograd(n, c, hw, m, pads, act, bias, num_threads):
    conv_case(n, c, *hw, m, 3, 3, bias=bias, num_threads=num_threads, pads=pads, act=act)


def test_conv_winograd_more_threads_than_slots():
    # 9 threads: the plan is made for the 8 scratch slots the op sized (winograd.h kSlots).
    conv_case(1, 256, 14, 14, 256, 3, 3, num_threads=9, pads=(1, 1, 1, 1), act="relu")
    conv_case(1, 64, 30, 30, 64, 3, 3, num_threads=9, pads=(1, 1, 1, 1))


def test_conv_winograd_large_values():
    # Inputs of 1e3 and weights of 1e-3: the transforms' sums and differences of large values stay
    # within the relative tolerance of the direct GEMM.
    x = randn(1, 32, 16, 16, scale=1e3)
    w = weights(64, 32, 3, 3, fan_in=288) * np.float32(1e-3)
    check("Conv", conv_attrs(pads=(1, 1, 1, 1)), [x, w, randn(64)], consts={1, 2})


@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_conv_wide_grid_rows(strides):
    # Grid rows wider than a tile: tiles inside a row are stored plainly, those across the dropped
    # columns through the crop (an RGB stem-like K of 27).
    conv_case(1, 3, 9, 75, 8, 3, 3, pads=(1, 1, 1, 1), strides=strides, act="relu")
    conv_case(1, 3, 6, 130, 16, 3, 3, strides=strides)


def test_conv_grouped_threaded():
    conv_case(1, 64, 16, 16, 64, 3, 3, group=4, pads=(1, 1, 1, 1))   # groups spread over threads
    conv_case(1, 48, 20, 20, 48, 3, 3, group=3, pads=(1, 1, 1, 1))   # each group split over threads


def test_conv_batch():
    conv_case(3, 6, 8, 8, 10, 3, 3, pads=(1, 1, 1, 1), strides=(2, 2), act="relu")


# ---- ConvTranspose --------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,strides,pads,dilations,output_padding", [
    ((3, 3), (1, 1), (0, 0, 0, 0), (1, 1), (0, 0)),
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1)),
    ((4, 4), (2, 2), (1, 1, 1, 1), (1, 1), (0, 0)),
    ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (0, 0)),
    ((3, 2), (3, 1), (0, 1, 2, 0), (1, 2), (2, 0)),
    ((3, 3), (1, 2), (2, 0, 1, 1), (2, 1), (0, 1)),
    ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1), (0, 0)),
])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose(kernel, strides, pads, dilations, output_padding, bias):
    x = randn(2, 6, 5, 7)
    w = weights(6, 4, *kernel, fan_in=6)
    inputs = [x, w] + ([randn(4)] if bias else [])
    check("ConvTranspose", convt_attrs(strides, pads, dilations, 1, output_padding), inputs, consts={1, 2})


@pytest.mark.parametrize("group", [2, 3])
def test_conv_transpose_grouped(group):
    x = randn(1, 6, 6, 5)
    w = weights(6, 2, 3, 3, fan_in=6 // group)
    check("ConvTranspose", convt_attrs((2, 2), (1, 1, 1, 1), group=group), [x, w, randn(2 * group)], consts={1, 2})


def test_conv_transpose_large_threaded():
    x, w = randn(1, 64, 16, 16), weights(64, 32, 4, 4, fan_in=64)
    check("ConvTranspose", convt_attrs((2, 2), (1, 1, 1, 1)), [x, w, randn(32)], consts={1, 2}, num_threads=2)


# ---- artifacts that must be rejected at load --------------------------------------------------------
def load_error(graph, kinds=(edgepack.ArtifactError, edgepack.UnsupportedError)) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_graph(graph, Path(tmp) / "bad.epk")
        with pytest.raises(kinds) as err:
            edgepack.load(path)
    return str(err.value)


def rejected(op, attrs, inputs, *needles, consts=frozenset({1}), edit=None, kinds=None):
    graph, _ = op_graph(op, attrs, inputs, set(consts))
    if edit:
        edit(graph)
    message = load_error(graph, kinds) if kinds else load_error(graph)
    for needle in (graph.nodes[0].name,) + needles:
        assert needle in message, f"'{needle}' not in: {message}"


def _set_attr(key, value):
    def edit(graph):
        graph.nodes[0].attrs[key] = value
    return edit


def _drop_attr(key):
    def edit(graph):
        del graph.nodes[0].attrs[key]
    return edit


def _set_const(name, array):
    def edit(graph):
        graph.values[name].const = array
        graph.values[name].shape = array.shape
    return edit


def _set_shape(name, shape):
    def edit(graph):
        graph.values[name].shape = tuple(shape)
    return edit


X = randn(1, 4, 8, 8)
W = weights(6, 4, 3, 3, fan_in=36)
CONV = conv_attrs(pads=(1, 1, 1, 1))
CONVT = convt_attrs((2, 2), (1, 1, 1, 1))


@pytest.mark.parametrize("op,attrs,inputs,edit,needles", [
    # the weight's input channels do not match the input's
    ("Conv", CONV, [X, W], _set_const("in1", weights(6, 3, 3, 3, fan_in=27)), ["input channels"]),
    ("Conv", conv_attrs(group=2, pads=(1, 1, 1, 1)), [X, weights(6, 2, 3, 3, fan_in=18)],
     _set_attr("group", 3), ["group 3"]),
    ("Conv", conv_attrs(group=2, pads=(1, 1, 1, 1)), [X, weights(6, 2, 3, 3, fan_in=18)],
     _set_const("in1", weights(5, 2, 3, 3, fan_in=18)), ["output channels"]),
    ("Conv", CONV, [X, W], _set_shape("out0", (1, 6, 8, 9)), ["output"]),
    ("Conv", CONV, [X, W, randn(6)], _set_const("in2", randn(5)), ["bias"]),
    ("Conv", CONV, [X, W], _set_attr("strides", [0, 1]), ["strides"]),
    ("Conv", CONV, [X, W], _set_attr("strides", [1, 1, 1]), ["strides"]),
    ("Conv", CONV, [X, W], _set_attr("pads", [1, 1, -1, 1]), ["pads"]),
    ("Conv", CONV, [X, W], _set_attr("dilations", [9, 1]), ["window"]),
    ("Conv", CONV, [X, W], _drop_attr("pads"), ["pads"]),
    ("Conv", CONV, [X, W], _set_attr("activation", "swish"), ["swish"]),
    ("Conv", CONV, [X, W], _drop_attr("act_max"), ["act_max"]),
    ("Conv", CONV, [X, W], _set_const("in1", weights(6, 4, 3, fan_in=12)), ["rank 4"]),
    ("ConvTranspose", CONVT, [X, weights(4, 3, 3, 3, fan_in=4)], _set_const("in1", weights(5, 3, 3, 3, fan_in=4)),
     ["input channels"]),
    ("ConvTranspose", CONVT, [X, weights(4, 3, 3, 3, fan_in=4)], _set_attr("group", 3), ["group 3"]),
    ("ConvTranspose", CONVT, [X, weights(4, 3, 3, 3, fan_in=4)], _set_attr("output_padding", [-1, 0]),
     ["output_padding"]),
    ("ConvTranspose", CONVT, [X, weights(4, 3, 3, 3, fan_in=4)], _set_shape("out0", (1, 3, 16, 16)), ["output"]),
    ("ConvTranspose", CONVT, [X, weights(4, 3, 3, 3, fan_in=4)], _set_attr("pads", [9, 9, 9, 9]), ["empty"]),
    ("MatMul", NO_ACT, [randn(5, 7), weights(7, 3, fan_in=7)], _set_const("in1", weights(6, 3, fan_in=6)),
     ["do not multiply"]),
    ("MatMul", NO_ACT, [randn(2, 5, 7), weights(7, 4, fan_in=7)], _set_shape("out0", (2, 5, 5)), ["output"]),
    ("MatMul", NO_ACT, [randn(2, 5, 7), weights(7, 4, fan_in=7)], _set_const("in1", weights(7, fan_in=7)), ["rank"]),
    ("MatMul", NO_ACT, [randn(5, 7), weights(7, 3, fan_in=7), randn(3)], _set_const("in2", randn(4)), ["bias"]),
    ("MatMul", ACTIVATIONS["clip"], [randn(5, 7), weights(7, 3, fan_in=7)], _set_attr("act_min", float("nan")),
     ["NaN"]),
])
def test_bad_artifact_rejected_at_load(op, attrs, inputs, edit, needles):
    consts = {1, 2} if len(inputs) > 2 else {1}
    rejected(op, attrs, inputs, *needles, consts=consts, edit=edit)


def test_matmul_batches_that_do_not_broadcast_rejected():
    def edit(graph):
        graph.values["in1"].const = weights(3, 7, 4, fan_in=7)
        graph.values["in1"].shape = (3, 7, 4)
    rejected("MatMul", NO_ACT, [randn(2, 5, 7), weights(2, 7, 4, fan_in=7)], "broadcast", edit=edit)


def test_run_time_conv_weight_is_unsupported():
    rejected("Conv", CONV, [X, W], "constant", consts=frozenset(), kinds=edgepack.UnsupportedError)


@pytest.mark.parametrize("op,attrs,inputs", [
    ("MatMul", NO_ACT, [np.arange(35, dtype=np.int32).reshape(5, 7), np.arange(21, dtype=np.int32).reshape(7, 3)]),
    ("Conv", CONV, [X.astype(np.int32), W.astype(np.int32)]),
])
def test_unsupported_dtype_is_rejected(op, attrs, inputs):
    # (int8 / float16 operands belong to the quantized kernels, not to these float ones)
    rejected(op, attrs, inputs, "int32", kinds=edgepack.UnsupportedError)
