"""passes/attention_bf16.py and Attention's bf16 attribute: attention behind dynamic int8 MatMuls takes
bfloat16 products on a device whose ISA has avx512-bf16. The reference defines it (Q, K, V and
exp(scores - max) rounded to bfloat16, float sums, P V divided by the float sums); the native kernel
(vdpbf16ps with AVX-512 BF16, rounded operands through the float GEMM elsewhere: the aarch64 build in
test_bench.py) gives it up to float summation order and the exp polynomial's ulps, which now and then
move an exp value across a bfloat16 rounding boundary: a change of one bfloat16 step in that value."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest

import edgepack
from edgepack.passes import attention_bf16, fuse_attention
from edgepack.reference.ops import bfloat16
from op_harness import op_graph, run_graph_native, run_op, write_graph
from test_bench import attention_net
from test_fuse_attention import D, H, attention_model, feeds, fold

RNG = np.random.default_rng(16)


def assert_bf16_close(got: np.ndarray, want: np.ndarray) -> None:
    """Within rare one-step flips of an exp value's rounding: at most 2e-3 anywhere, 1e-5 on average
    (bfloat16 against float attention differs by about 1e-3 on average on these inputs)."""
    diff = np.abs(got.astype(np.float64) - want)
    assert np.isfinite(got).all() and diff.max() <= 2e-3 and diff.mean() <= 1e-5, (diff.max(), diff.mean())


def test_bfloat16_rounds_to_nearest_even():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -7)   # bfloat16 step above 1
    x = np.array([1.0, 1.0 + 2.0 ** -9, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -20,
                  -2.5, 3.4e38, np.inf, -np.inf, np.nan, 0.0], np.float32)
    want = np.array([one, one, one, one + 2 * ulp, one + ulp, -2.5, np.inf, np.inf, -np.inf, np.nan, 0.0],
                    np.float32)
    np.testing.assert_array_equal(bfloat16(x), want)   # ties go to the even step; 3.4e38 overflows
    y = bfloat16(RNG.standard_normal(1000).astype(np.float32))
    assert not (y.view(np.uint32) & 0xFFFF).any()       # 8 significant bits: the low half is zero


@pytest.mark.parametrize("shape", [(1, 12, 128, 128, 32, 32), (1, 2, 37, 45, 17, 40), (2, 3, 5, 7, 3, 9)],
                         ids=str)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_native_bf16_attention_matches_the_reference(shape, threads):
    # Odd head sizes and key counts (a last pair padded with zero), Dv off the 32-column tile, a tail
    # block of query rows, several heads per thread.
    b, h, m, t, d, dv = shape
    q = RNG.standard_normal((b, h, m, d)).astype(np.float32)
    k = RNG.standard_normal((b, h, d, t)).astype(np.float32)
    v = RNG.standard_normal((b, h, t, dv)).astype(np.float32)
    (got,), (want,) = run_op("Attention", {"bf16": 1, "scale": 0.25}, [q, k, v], num_threads=threads)
    assert_bf16_close(got, want)
    (float_attention,), _ = run_op("Attention", {"scale": 0.25}, [q, k, v], num_threads=threads)
    assert np.abs(float_attention - want).mean() > 1e-4   # the definition is not float attention's


# K given in other layouts through k_perm (bf16 only): [B, H, T, D] read as K^T (D contiguous per key: the
# transposed pack, D of 40 = two chunks of 16 pairs, 45 keys = a partial panel), and [B, D, T, H] where
# neither axis is contiguous (element by element).
@pytest.mark.parametrize("layout", ["keys_by_rows", "strided"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bf16_reads_k_in_any_layout(layout, threads):
    b, h, m, t, d, dv = 1, 3, 37, 45, 40, 24
    q = RNG.standard_normal((b, h, m, d)).astype(np.float32)
    v = RNG.standard_normal((b, h, t, dv)).astype(np.float32)
    if layout == "keys_by_rows":
        k, perm = RNG.standard_normal((b, h, t, d)).astype(np.float32), [0, 1, 3, 2]
    else:
        k, perm = RNG.standard_normal((b, d, t, h)).astype(np.float32), [0, 3, 1, 2]
    attrs = {"bf16": 1, "k_perm": perm}
    (got,), (want,) = run_op("Attention", attrs, [q, k, v], num_threads=threads)
    assert_bf16_close(got, want)
    (same,), _ = run_op("Attention", {"bf16": 1}, [q, np.ascontiguousarray(np.transpose(k, perm)), v],
                        num_threads=threads)
    np.testing.assert_array_equal(got, same)   # the same packed operand, whatever the layout


def test_float_attention_rejects_a_k_perm_that_moves_the_last_axis():
    q, k, v = (RNG.standard_normal(shape).astype(np.float32) for shape in ((1, 2, 5, 8), (1, 2, 7, 8), (1, 2, 7, 8)))
    graph, _ = op_graph("Attention", {"k_perm": [0, 1, 3, 2]}, [q, k, v])
    node = graph.nodes[0]
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(edgepack.ArtifactError, match="must keep the last axis") as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    assert node.name in str(err.value)


@pytest.mark.parametrize("nan_to_zero", [0, 1])
def test_bf16_with_a_mask_and_fully_masked_rows(nan_to_zero):
    graph = fold(attention_model(40))
    f = feeds(40)
    f["mask"][..., 3, :] = -np.inf
    next(n for n in graph.nodes if n.op == "Softmax").attrs["nan_to_zero"] = nan_to_zero
    assert fuse_attention.run(graph).modified
    next(n for n in graph.nodes if n.op == "Attention").attrs["bf16"] = 1
    from edgepack.reference import run_graph
    got, want = run_graph_native(graph, f)["y"], run_graph(graph, f)["y"]
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all() and nan.sum() == (0 if nan_to_zero else H * D)
    assert_bf16_close(np.where(nan, 0, got), np.where(nan, 0, want))


def test_the_pass_marks_attention_behind_dynamic_int8_matmuls_only():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.onnx"
        onnx.save(attention_net(), path)
        int8 = edgepack.compile(path, output=Path(tmp) / "a8.epk", precision="int8-dynamic", progress=False)
        fp32 = edgepack.compile(path, output=Path(tmp) / "a32.epk", precision="fp32", progress=False)
    host = edgepack.profiles.load_profile("host")
    marked = [n.attrs.get("bf16", 0) for n in int8.graph.nodes if n.op == "Attention"]
    assert marked == [1 if attention_bf16.FEATURE in host.isa else 0]
    if marked == [1]:   # K's head-split Transpose folded into k_perm: no Transpose left
        assert "Transpose" not in [n.op for n in int8.graph.nodes]
        assert "k_perm" in next(n for n in int8.graph.nodes if n.op == "Attention").attrs
    assert [n.attrs.get("bf16", 0) for n in fp32.graph.nodes if n.op == "Attention"] == [0]
    # without the ISA feature nothing changes; with it, the float graph still stays float
    graph = int8.graph
    for node in graph.nodes:
        node.attrs.pop("bf16", None)
    assert not attention_bf16.run(graph, ("avx512f", "avx512-vnni")).modified
    assert attention_bf16.run(graph, ("avx512-bf16",)).modified
    assert not attention_bf16.run(fp32.graph, ("avx512-bf16",)).modified


def test_emitters_write_float_attention():
    graph = fold(attention_model(24))
    fuse_attention.run(graph)
    next(n for n in graph.nodes if n.op == "Attention").attrs["bf16"] = 1
    separate = fuse_attention.unfuse(graph)
    assert "Attention" not in [n.op for n in separate.nodes]
    assert not any("bf16" in n.attrs for n in separate.nodes)


def test_native_rejects_a_bad_bf16_attribute():
    graph = fold(attention_model(24))
    fuse_attention.run(graph)
    node = next(n for n in graph.nodes if n.op == "Attention")
    node.attrs["bf16"] = 2
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(edgepack.ArtifactError, match="bf16 must be 0 or 1") as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    assert node.name in str(err.value)
