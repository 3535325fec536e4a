"""The cost model against hand-computed MACs, bytes, latency, energy and memory on small graphs.

The test profile has round figures: sustained fp32 1 GOPS, int8 4 GOPS, bandwidth 1 GB/s, 10 us per op;
2 pJ per fp32 MAC, 0.5 pJ per int8 MAC, 10 pJ per byte, 1 W idle. Dense kernels (MatMul, Conv) run at the
sustained rate; other kernel families at KERNEL_EFFICIENCY of it."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

import edgepack
from edgepack.backends.epk import write_epk
from edgepack.ir import DType, Graph, Node, QuantParams
from edgepack.ir.ops import SCHEMAS
from edgepack.planner.cost import (DYNAMIC_QUANTIZE_OPS, KERNEL_EFFICIENCY, QUANT_PARAM_BYTES, SCALE_BYTES,
                                   SUPPORTED_OPS, cost_table, estimate, infer_precision, int4_block_size,
                                   kernel_efficiency, op_kind)
from edgepack.planner.memory import plan_memory
from edgepack.reference import run_graph
from edgepack.profiles import available_profiles, load_profile

US = 1e-6
PJ = 1e-12


def make_profile(tmp_path, runtime="native", target="linux-x86_64", fp16=False, weights_in="ram",
                 ram="1 MiB", p50="1 ms", cache=None):
    peak = {"fp32": "2 GOPS", "int8": "8 GOPS", **({"fp16": "4 GOPS"} if fp16 else {})}
    mac = {"fp32": "2 pJ", "int8": "0.5 pJ", **({"fp16": "1 pJ"} if fp16 else {})}
    data = {
        "name": "test-board", "description": "round numbers for hand computation",
        "target": {"name": target, "runtime": runtime, "isa": ["sse2"]},
        "memory": {"ram": ram, "storage": "1 MiB", "runtime_overhead": "64 KiB", "weights_in": weights_in},
        "compute": {"unit": "test", "cores": 1, "peak": peak, "ops_efficiency": 0.5, "bandwidth": "2 GB/s",
                    "bandwidth_efficiency": 0.5, "op_overhead": "10 us"},
        "energy": {"mac": mac, "memory_byte": "10 pJ", "active_power": "3 W", "idle_power": "1 W"},
        "latency": {"p50": p50, "p95": "2 ms"},
        "accuracy": {"min_cosine": 0.99, "max_sqnr_loss": "3 dB"},
        "sources": [{"fields": ["memory.*", "compute.*", "energy.*", "latency.*", "accuracy.*"],
                     "chosen": "round numbers for the tests"}],
    }
    if cache is not None:   # (size, bandwidth) of a last-level cache
        data["compute"].update(cache=cache[0], cache_bandwidth=cache[1])
    path = tmp_path / "test-board.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(path)


@pytest.fixture
def profile(tmp_path):
    return make_profile(tmp_path)


def f32(*shape):
    return np.zeros(shape, np.float32)


def graph_of(op, inputs, out_shape, attrs=None, out_dtype=DType.FLOAT32):
    """One-node graph: `inputs` are shapes (run-time inputs) or arrays (constants)."""
    g = Graph(op.lower())
    names = []
    for i, item in enumerate(inputs):
        if isinstance(item, np.ndarray):
            names.append(g.add_const(item, f"c{i}"))
        else:
            dtype = DType.INT64 if op == "Gather" and i == 1 else DType.FLOAT32
            g.add_value(f"x{i}", dtype, item)
            g.inputs.append(f"x{i}")
            names.append(f"x{i}")
    g.add_value("y", out_dtype, out_shape)
    g.nodes.append(Node(op, op.lower(), names, ["y"], dict(attrs or {})))
    g.outputs = ["y"]
    g.verify()
    return g


def conv_attrs(pads=0, stride=1, group=1, activation="none"):
    return {"strides": [stride, stride], "pads": [pads] * 4, "dilations": [1, 1], "group": group,
            "activation": activation}


# ---- counts ---------------------------------------------------------------------------------------------------

def test_conv_latency_and_energy_by_hand(profile):
    attrs = conv_attrs(pads=1, activation="relu")
    g = graph_of("Conv", [(1, 3, 8, 8), f32(4, 3, 3, 3), f32(4)], (1, 4, 8, 8), attrs)
    row = estimate(g, profile).nodes[0]
    assert row.macs == 4 * 8 * 8 * 3 * 3 * 3 == 6912
    assert row.ops == 2 * 6912 + 256 * 2                          # + bias add and relu per output
    assert (row.weight_bytes, row.activation_bytes) == (108 * 4 + 4 * 4, 192 * 4 + 256 * 4)
    assert row.compute_s == pytest.approx(14336 / 1e9)             # sustained fp32: 2 GOPS x 0.5
    assert row.memory_s == pytest.approx(2240 / 1e9)               # sustained: 2 GB/s x 0.5
    assert row.bound == "compute"
    assert row.latency_s == pytest.approx(14.336 * US + 10 * US)
    assert row.compute_energy_j == pytest.approx(14336 / 2 * 2 * PJ)
    assert row.memory_energy_j == pytest.approx(2240 * 10 * PJ)
    assert row.static_energy_j == pytest.approx(24.336 * US * 1.0)
    assert row.energy_j == pytest.approx(14.336e-9 + 22.4e-9 + 24.336e-6)


def test_depthwise_and_grouped_conv(profile):
    depthwise = graph_of("Conv", [(1, 8, 10, 10), f32(8, 1, 3, 3)], (1, 8, 8, 8), conv_attrs(group=8))
    assert estimate(depthwise, profile).macs == 8 * 8 * 8 * 9
    grouped = graph_of("Conv", [(1, 4, 6, 6), f32(6, 2, 3, 3)], (1, 6, 4, 4), conv_attrs(group=2))
    assert estimate(grouped, profile).macs == 6 * 4 * 4 * 2 * 9


def test_conv_transpose(profile):
    attrs = {"strides": [2, 2], "pads": [0] * 4, "dilations": [1, 1], "group": 1, "output_padding": [0, 0]}
    g = graph_of("ConvTranspose", [(1, 2, 3, 3), f32(2, 4, 2, 2), f32(4)], (1, 4, 6, 6), attrs)
    row = estimate(g, profile).nodes[0]
    assert row.macs == (2 * 3 * 3) * (4 * 2 * 2)                   # every input pixel meets every filter tap
    assert row.ops == 2 * row.macs + 4 * 6 * 6                      # + bias


def test_matmul_with_batch_broadcasting(profile):
    g = graph_of("MatMul", [(2, 1, 5, 7), (3, 7, 4)], (2, 3, 5, 4), {"activation": "none"})
    row = estimate(g, profile).nodes[0]
    assert row.macs == 2 * 3 * 5 * 4 * 7
    assert (row.weight_bytes, row.activation_bytes) == (0, (70 + 84 + 120) * 4)


@pytest.mark.parametrize("op,inputs,out,attrs,ops", [
    ("Add", [(2, 3, 4), f32(4)], (2, 3, 4), {}, 24),
    ("Relu", [(2, 3, 4)], (2, 3, 4), {}, 24),
    ("Clip", [(2, 3, 4)], (2, 3, 4), {"min": 0.0, "max": 6.0}, 48),
    ("Exp", [(2, 3, 4)], (2, 3, 4), {}, 240),
    ("Softmax", [(2, 5)], (2, 5), {"axis": 1}, 10 * 14),
    ("LayerNormalization", [(2, 8), f32(8), f32(8)], (2, 8), {"axis": 1, "epsilon": 1e-5}, 16 * 7),
    ("MaxPool", [(1, 1, 4, 4)], (1, 1, 2, 2),
     {"kernel": [2, 2], "strides": [2, 2], "pads": [0] * 4, "dilations": [1, 1]}, 4 * 4),
    ("AveragePool", [(1, 1, 4, 4)], (1, 1, 2, 2),
     {"kernel": [2, 2], "strides": [2, 2], "pads": [0] * 4, "dilations": [1, 1], "count_include_pad": 0}, 4 * 5),
    ("ReduceMean", [(2, 6)], (2, 1), {"axes": [1], "keepdims": 1}, 12 + 2),
    ("Transpose", [(2, 3)], (3, 2), {"perm": [1, 0]}, 0),
])
def test_elementwise_pooling_normalisation_movement(profile, op, inputs, out, attrs, ops):
    g = graph_of(op, inputs, out, attrs)
    row = estimate(g, profile).nodes[0]
    assert (row.macs, row.ops) == (0, ops)
    read = sum(4 * (x.size if isinstance(x, np.ndarray) else int(np.prod(x))) for x in inputs)
    assert row.bytes == read + 4 * int(np.prod(out))


def test_elementwise_ops_and_softmax_run_in_place(tmp_path):
    """x -> Relu -> r -> Softmax -> s -> LogSoftmax -> l; y = l + s. Softmax overwrites r (r dies there),
    LogSoftmax reads its input twice so l gets its own bytes, Add overwrites l; Relu does not overwrite
    the graph input. The native runtime computes the same as the reference with these offsets."""
    g = Graph("in_place")
    for name in ("x", "r", "s", "l", "y"):
        g.add_value(name, DType.FLOAT32, (4, 64))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes = [Node("Relu", "relu", ["x"], ["r"]), Node("Softmax", "softmax", ["r"], ["s"], {"axis": 1}),
               Node("LogSoftmax", "log_softmax", ["s"], ["l"], {"axis": 1}), Node("Add", "add", ["l", "s"], ["y"])]
    g.verify()
    plan = plan_memory(g)
    offsets = plan.offsets
    assert offsets["s"] == offsets["r"] != offsets["x"]
    assert offsets["y"] == offsets["l"] != offsets["s"]
    assert plan.arena_bytes == 2 * 4 * 64 * 4   # l / y reuse x's bytes once Relu has read them
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    path = tmp_path / "in_place.epk"
    write_epk(g, plan, path)
    got = edgepack.load(path).run({"x": x})["y"]
    np.testing.assert_allclose(got, run_graph(g, {"x": x})["y"], rtol=1e-5, atol=1e-6)


def _concat_graph(consumer_after: bool = False, axis: int = 1, batch: int = 1) -> Graph:
    """x -> Relu -> a, x -> Neg -> b, Concat(a, b) along `axis` -> c, Tanh(c) -> y (and y2 = b + b after
    the Concat when consumer_after)."""
    g = Graph("concat")
    g.add_value("x", DType.FLOAT32, (batch, 3, 4, 5))
    for name in ("a", "b"):
        g.add_value(name, DType.FLOAT32, (batch, 3, 4, 5))
    shape = [batch, 3, 4, 5]
    shape[axis] *= 2
    g.add_value("c", DType.FLOAT32, tuple(shape))
    g.add_value("y", DType.FLOAT32, tuple(shape))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes = [Node("Relu", "relu", ["x"], ["a"]), Node("Neg", "neg", ["x"], ["b"]),
               Node("Concat", "concat", ["a", "b"], ["c"], {"axis": axis}), Node("Tanh", "tanh", ["c"], ["y"])]
    if consumer_after:
        g.add_value("y2", DType.FLOAT32, (batch, 3, 4, 5))
        g.nodes.append(Node("Add", "add", ["b", "b"], ["y2"]))
        g.outputs.append("y2")
    g.verify()
    return g


@pytest.mark.parametrize("case", ["aliased", "part read later", "outer rows", "batch 2"])
def test_concat_parts_are_placed_inside_its_output(tmp_path, case):
    """Along an axis with only 1s before it, parts that die at the Concat are planned at their block of
    the output (the kernel then copies nothing); a part read later, or a Concat whose blocks are split
    into rows (axis 2, batch 2), keeps its own bytes. The native result equals the reference's."""
    g = _concat_graph(consumer_after=case == "part read later", axis=2 if case == "outer rows" else 1,
                      batch=2 if case == "batch 2" else 1)
    plan = plan_memory(g)
    o = plan.offsets
    part = 3 * 4 * 5 * 4 * (2 if case == "batch 2" else 1)
    if case == "aliased":
        assert (o["a"], o["b"]) == (o["c"], o["c"] + part)
    else:
        assert o["a"] != o["c"] and o["b"] not in range(o["c"], o["c"] + 2 * part)
    x = np.random.default_rng(1).standard_normal(g.values["x"].shape).astype(np.float32)
    path = tmp_path / "concat.epk"
    write_epk(g, plan, path)
    got = edgepack.load(path).run({"x": x})
    want = run_graph(g, {"x": x})
    for name in g.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_nested_concats_are_placed_inside_each_other(tmp_path):
    """Concat(Concat(a, b), c): a and b lie inside ab, which lies inside abc with c after it."""
    g = Graph("nested")
    for name in ("x", "a", "b", "c"):
        g.add_value(name, DType.FLOAT32, (1, 2, 3, 4))
    g.add_value("ab", DType.FLOAT32, (1, 4, 3, 4))
    g.add_value("abc", DType.FLOAT32, (1, 6, 3, 4))
    g.add_value("y", DType.FLOAT32, (1, 6, 3, 4))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes = [Node("Relu", "relu", ["x"], ["a"]), Node("Neg", "neg", ["x"], ["b"]),
               Node("Concat", "inner", ["a", "b"], ["ab"], {"axis": 1}), Node("Tanh", "tanh", ["x"], ["c"]),
               Node("Concat", "outer", ["ab", "c"], ["abc"], {"axis": 1}), Node("Sigmoid", "sigmoid", ["abc"], ["y"])]
    g.verify()
    plan = plan_memory(g)
    o, part = plan.offsets, 2 * 3 * 4 * 4
    assert (o["a"], o["b"], o["ab"], o["c"]) == (o["abc"], o["abc"] + part, o["abc"], o["abc"] + 2 * part)
    x = np.random.default_rng(2).standard_normal((1, 2, 3, 4)).astype(np.float32)
    path = tmp_path / "nested.epk"
    write_epk(g, plan, path)
    np.testing.assert_allclose(edgepack.load(path).run({"x": x})["y"], run_graph(g, {"x": x})["y"], rtol=1e-5,
                               atol=1e-6)


def test_reshape_is_free_when_aliased(profile):
    g = graph_of("Reshape", [(2, 3, 4)], (6, 4))
    row = estimate(g, profile).nodes[0]
    assert (row.ops, row.bytes) == (0, 0)
    assert row.latency_s == pytest.approx(10 * US)                 # only the dispatch overhead


def test_gather_reads_only_the_gathered_rows(profile):
    g = graph_of("Gather", [f32(10, 4), (3,)], (3, 4), {"axis": 0})
    report = estimate(g, profile)
    row = report.nodes[0]
    assert row.weight_bytes == 3 * 4 * 4                            # 3 rows of the table
    assert row.activation_bytes == 3 * 8 + 3 * 4 * 4                # int64 indices + the output
    assert report.weights_bytes == 10 * 4 * 4                       # the whole table stays resident


def test_slice_reads_only_the_slice(profile):
    g = graph_of("Slice", [(10, 10)], (2, 10), {"starts": [0, 0], "ends": [2, 10], "steps": [1, 1]})
    assert estimate(g, profile).nodes[0].bytes == 2 * (2 * 10 * 4)


def test_every_ir_op_has_a_cost_rule():
    assert set(SCHEMAS) <= SUPPORTED_OPS


# ---- precisions -------------------------------------------------------------------------------------------

def dense(k=64, n=128):
    return graph_of("MatMul", [(1, k), f32(k, n), f32(n)], (1, n), {"activation": "none"})


def test_weight_bytes_per_precision(profile):
    g = dense()
    weights = {p: estimate(g, profile, default=p).nodes[0].weight_bytes
               for p in ("fp32", "fp16", "int8", "int8-dynamic", "int4")}
    assert weights["fp32"] == 8192 * 4 + 128 * 4
    assert weights["fp16"] == 8192 * 4 + 128 * 4                   # the native runtime widens fp16 at load
    assert weights["int8"] == 8192 + 128 * QUANT_PARAM_BYTES + 128 * (4 + QUANT_PARAM_BYTES)   # int32 bias
    assert weights["int8-dynamic"] == 8192 + 128 * QUANT_PARAM_BYTES + 128 * 4
    assert weights["int4"] == 8192 // 2 + 128 * QUANT_PARAM_BYTES + 128 * 4     # K=64: one block per column
    stored = estimate(g, profile, default="fp16")
    assert (stored.stored_weights_bytes, stored.weights_bytes) == (8192 * 2 + 512, 8192 * 4 + 512)
    # the artifact stores a symmetric weight's scales without zero points; the runtime holds both
    stored = estimate(g, profile, default="int8-dynamic")
    assert (stored.stored_weights_bytes, stored.weights_bytes) == (8192 + 128 * SCALE_BYTES + 512,
                                                                   8192 + 128 * QUANT_PARAM_BYTES + 512)


def test_int4_blocks_follow_the_quantizer():
    assert [int4_block_size(k) for k in (256, 192, 96, 27)] == [128, 64, 32, 32]


def test_int4_scales_per_block(profile):
    row = estimate(dense(k=96, n=8), profile, default="int4").nodes[0]
    assert row.weight_bytes == 96 * 8 // 2 + 8 * 3 * QUANT_PARAM_BYTES + 8 * 4   # blocks of 32 along K
    assert row.arithmetic == "fp32"                                  # weight-only: dequantised, float math


def test_arithmetic_and_activation_widths(profile):
    g = dense()
    fp32, int8, dynamic = (estimate(g, profile, default=p).nodes[0] for p in ("fp32", "int8", "int8-dynamic"))
    assert (fp32.arithmetic, int8.arithmetic, dynamic.arithmetic) == ("fp32", "int8", "int8")
    # 4 GOPS vs 1 GOPS sustained, and the int8 GEMM at its family's fraction of the fp32 one
    assert int8.compute_s == pytest.approx(fp32.compute_s / 4 / KERNEL_EFFICIENCY[("dense", "int8")])
    assert int8.compute_energy_j == pytest.approx(fp32.compute_energy_j / 4)
    # graph input and output keep their float32; dynamic int8 quantizes the input first (+1 write, +1 read)
    assert fp32.activation_bytes == int8.activation_bytes == 64 * 4 + 128 * 4
    assert dynamic.activation_bytes == 64 * (4 + 2) + 128 * 4


def test_a_weight_only_precision_on_a_weightless_op_is_fp32(profile):
    g = graph_of("Relu", [(4, 4)], (4, 4))
    for precision in ("int8-dynamic", "int4", "fp16"):
        row = estimate(g, profile, default=precision).nodes[0]
        assert row.arithmetic == "fp32" and row.bytes == 2 * 64


def test_fp16_arithmetic_where_the_profile_lists_it(tmp_path):
    delegate = make_profile(tmp_path, runtime="tflite", fp16=True)
    row = estimate(dense(), delegate, default="fp16").nodes[0]
    assert row.arithmetic == "fp16"
    assert row.weight_bytes == 8192 * 2 + 128 * 4                    # delegates keep fp16 weights as they are
    assert row.compute_s == pytest.approx(row.ops / 2e9)


def two_convs():
    g = Graph("two")
    g.add_value("x", DType.FLOAT32, (1, 4, 8, 8))
    g.inputs = ["x"]
    a = g.add_const(f32(8, 4, 1, 1), "wa")
    b = g.add_const(f32(4, 8, 1, 1), "wb")
    g.add_value("h", DType.FLOAT32, (1, 8, 8, 8))
    g.add_value("y", DType.FLOAT32, (1, 4, 8, 8))
    g.nodes += [Node("Conv", "a", ["x", a], ["h"], conv_attrs()), Node("Conv", "b", ["h", b], ["y"], conv_attrs())]
    g.outputs = ["y"]
    g.verify()
    return g


def test_int8_activations_are_one_byte_and_shrink_the_arena(profile):
    g = two_convs()
    fp32 = estimate(g, profile)
    assert fp32.arena_bytes == plan_memory(g).arena_bytes
    int8 = estimate(g, profile, {"a": "int8", "b": "int8"})
    assert int8.by_name["a"].activation_bytes == 256 * 4 + 512       # writes h as int8
    assert int8.by_name["b"].activation_bytes == 512 + 256 * 4       # reads h as int8, y stays float32
    assert int8.arena_bytes < fp32.arena_bytes
    mixed = estimate(g, profile, {"a": "fp32"}, default="int8")      # h is produced in fp32
    assert mixed.by_name["b"].activation_bytes == 512 * 4 + 256 * 4


def test_totals_and_memory(tmp_path, profile):
    g = two_convs()
    report = estimate(g, profile)
    assert report.macs == sum(n.macs for n in report.nodes) == 2 * 8 * 4 * 64
    assert report.latency_s == pytest.approx(sum(n.latency_s for n in report.nodes))
    assert report.energy_j == pytest.approx(sum(n.energy_j for n in report.nodes))
    assert report.weights_bytes == (32 + 32) * 4
    assert report.ram_bytes == report.weights_bytes + report.arena_bytes + 64 * 1024
    assert report.violations() == []
    in_flash = estimate(g, make_profile(tmp_path, weights_in="storage"))
    assert in_flash.ram_bytes == in_flash.arena_bytes + 64 * 1024
    tight = estimate(g, make_profile(tmp_path, ram="65 KiB", p50="1 us"))
    assert [v.split()[0] for v in tight.violations()] == ["RAM", "latency"]
    assert tight.as_dict()["totals"]["macs"] == report.macs


def test_a_quantized_graph_is_priced_as_it_is(profile):
    g = Graph("q")
    g.add_value("x", DType.FLOAT32, (1, 64))
    g.inputs = ["x"]
    w = g.add_const(np.zeros((64, 16), np.int8), "w")
    g.values[w].quant = QuantParams(np.ones(16, np.float32), np.zeros(16, np.int32), 1)
    g.add_value("y", DType.FLOAT32, (1, 16))
    g.nodes.append(Node("MatMul", "fc", ["x", w], ["y"], {"activation": "none"}))
    g.outputs = ["y"]
    assert infer_precision(g, g.nodes[0]) == "int8-dynamic"
    row = estimate(g, profile).nodes[0]
    assert (row.precision, row.arithmetic) == ("int8-dynamic", "int8")
    assert row.weight_bytes == 64 * 16 + 16 * QUANT_PARAM_BYTES


def test_bad_precisions(profile):
    g = dense()
    with pytest.raises(ValueError, match="not in graph 'matmul': nope"):
        estimate(g, profile, {"nope": "int8"})
    with pytest.raises(ValueError, match="unknown precision 'int2'"):
        estimate(g, profile, {"matmul": "int2"})
    with pytest.raises(ValueError, match="default: unknown precision 'bf16'"):
        estimate(g, profile, default="bf16")


def test_cost_table_prices_every_node_at_every_precision(profile):
    table = cost_table(two_convs(), profile)
    assert set(table) == {"a", "b"}
    assert list(table["a"]) == ["fp32", "fp16", "int8", "int8-dynamic", "int4"]
    assert table["a"]["int8"].latency_s < table["a"]["fp32"].latency_s


@pytest.mark.parametrize("name", available_profiles())
def test_every_shipped_profile_prices_a_graph(name):
    report = estimate(two_convs(), load_profile(name), default="int8")
    assert report.latency_s > 0 and report.energy_j > 0 and report.ram_bytes > 0


# ---- kernel families, cache, dynamic quantization ------------------------------------------------------

def test_op_kinds():
    depthwise = graph_of("Conv", [(1, 8, 10, 10), f32(8, 1, 3, 3)], (1, 8, 8, 8), conv_attrs(group=8))
    pointwise = graph_of("Conv", [(1, 8, 4, 4), f32(16, 8, 1, 1)], (1, 16, 4, 4), conv_attrs())
    grouped = graph_of("Conv", [(1, 4, 6, 6), f32(6, 2, 3, 3)], (1, 6, 4, 4), conv_attrs(group=2))
    winograd = graph_of("Conv", [(1, 16, 16, 16), f32(8, 16, 3, 3)], (1, 8, 16, 16), conv_attrs(pads=1))
    few_tiles = graph_of("Conv", [(1, 16, 7, 7), f32(8, 16, 3, 3)], (1, 8, 7, 7), conv_attrs(pads=1))
    kinds = [op_kind(g, g.nodes[0]) for g in (depthwise, pointwise, grouped, winograd, few_tiles, dense())]
    assert kinds == ["Conv depthwise", "Conv 1x1", "Conv", "Conv winograd", "Conv", "MatMul"]
    assert kernel_efficiency("Conv 1x1", "int8") == KERNEL_EFFICIENCY[("dense", "int8")]
    assert kernel_efficiency("Conv winograd", "fp32") > 1 and kernel_efficiency("Conv winograd", "int8") == \
        KERNEL_EFFICIENCY[("dense", "int8")]
    assert kernel_efficiency("Relu", "fp32") == 1.0                      # no family: the profile's rate


def test_depthwise_conv_runs_at_its_family_efficiency(profile):
    g = graph_of("Conv", [(1, 8, 10, 10), f32(8, 1, 3, 3)], (1, 8, 8, 8), conv_attrs(group=8))
    row = estimate(g, profile).nodes[0]
    assert row.ops == 2 * 8 * 8 * 8 * 9 == 9216
    assert row.compute_s == pytest.approx(9216 / (1e9 * KERNEL_EFFICIENCY[("depthwise", "fp32")]))
    int8 = estimate(g, profile, default="int8").nodes[0]
    assert int8.compute_s == pytest.approx(9216 / (4e9 * KERNEL_EFFICIENCY[("depthwise", "int8")]))


def test_pooling_and_transcendentals_run_at_their_family_efficiency(profile):
    attrs = {"kernel": [2, 2], "strides": [2, 2], "pads": [0] * 4, "dilations": [1, 1]}
    pool = estimate(graph_of("MaxPool", [(1, 1, 4, 4)], (1, 1, 2, 2), attrs), profile).nodes[0]
    assert pool.compute_s == pytest.approx(16 / (1e9 * KERNEL_EFFICIENCY[("window", "fp32")]))
    gelu = estimate(graph_of("Gelu", [(4, 8)], (4, 8), {"approximate": "none"}), profile).nodes[0]
    assert gelu.compute_s == pytest.approx(32 * 13 / (1e9 * KERNEL_EFFICIENCY[("transcendental", "fp32")]))


def test_activations_that_fit_the_cache_move_at_its_bandwidth(tmp_path):
    cached = make_profile(tmp_path, cache=("4 KiB", "8 GB/s"))
    small = estimate(graph_of("Relu", [(4, 4)], (4, 4)), cached).nodes[0]
    assert small.memory_s == pytest.approx(128 / 8e9)                    # 64 B in + 64 B out <= 4 KiB
    large = estimate(graph_of("Relu", [(32, 32)], (32, 32)), cached).nodes[0]
    assert large.memory_s == pytest.approx(8192 / 1e9)                   # 8 KiB: from memory at 1 GB/s
    # weights are read from memory whatever their size; the activations (64 + 128 floats) from the cache
    fc = estimate(dense(), cached).nodes[0]
    assert fc.memory_s == pytest.approx((8192 * 4 + 128 * 4) / 1e9 + (64 + 128) * 4 / 8e9)


def test_cache_figures_come_in_pairs(tmp_path):
    from edgepack.profiles import ProfileError
    data = yaml.safe_load(make_profile(tmp_path).path.read_text())
    data["compute"]["cache"] = "1 MiB"
    path = tmp_path / "test-board.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match="compute.cache and compute.cache_bandwidth go together"):
        load_profile(path)


def test_dynamic_int8_pays_row_quantization(profile):
    row = estimate(dense(), profile, default="int8-dynamic").nodes[0]
    assert DYNAMIC_QUANTIZE_OPS == 4                                      # absmax, scale, round, convert
    assert row.ops == 2 * 64 * 128 + 128 + 4 * 64                       # MACs, bias, quantizing the 64 inputs
    assert row.compute_s == pytest.approx(row.ops / (4e9 * KERNEL_EFFICIENCY[("dense", "int8")]))


def test_threads_follow_the_runtimes_grain(tmp_path):
    """Two cores: an op splits over them only with a grain of work per thread (16384 elements, 2^22 int8
    MACs); fp32 GEMMs always split."""
    two = make_profile(tmp_path)
    data = yaml.safe_load(two.path.read_text())
    data["compute"]["cores"] = 2
    two.path.write_text(yaml.safe_dump(data))
    two = load_profile(two.path)                       # sustained fp32 1 GOPS, int8 4 GOPS: half per core
    small = estimate(graph_of("Gelu", [(4, 8)], (4, 8), {"approximate": "none"}), two).nodes[0]
    big = estimate(graph_of("Gelu", [(256, 128)], (256, 128), {"approximate": "none"}), two).nodes[0]
    eff = KERNEL_EFFICIENCY[("transcendental", "fp32")]
    assert small.compute_s == pytest.approx(32 * 13 / (0.5e9 * eff))      # 32 elements: one thread
    assert big.compute_s == pytest.approx(32768 * 13 / (1e9 * eff))       # 2 x 16384 elements: both
    fp32 = estimate(dense(), two).nodes[0]
    assert fp32.compute_s == pytest.approx(fp32.ops / 1e9)
    int8 = estimate(dense(), two, default="int8").nodes[0]               # 8192 MACs < 2^22: one thread
    assert int8.compute_s == pytest.approx(int8.ops / (2e9 * KERNEL_EFFICIENCY[("dense", "int8")]))


def test_run_overhead_is_added_once(tmp_path):
    profile = make_profile(tmp_path)
    data = yaml.safe_load(profile.path.read_text())
    data["compute"]["run_overhead"] = "3 us"
    profile.path.write_text(yaml.safe_dump(data))
    profile = load_profile(profile.path)
    report = estimate(two_convs(), profile)
    assert report.latency_s == pytest.approx(sum(n.latency_s for n in report.nodes) + 3 * US)
    assert report.energy_j == pytest.approx(sum(n.energy_j for n in report.nodes) + 3 * US * 1.0)   # idle 1 W


def test_a_model_that_fits_the_cache_keeps_its_weights_there(tmp_path):
    # two_convs: 256 B of weights + a 3072 B arena fit in 64 KiB: the weights come from the cache as well
    cached = estimate(two_convs(), make_profile(tmp_path, cache=("64 KiB", "8 GB/s"))).by_name["a"]
    assert cached.memory_s == pytest.approx(128 / 8e9 + (256 + 512) * 4 / 8e9)
    # 3 KiB: node a's 3072 B of activations fit, the whole model (3328 B) does not
    tight = estimate(two_convs(), make_profile(tmp_path, cache=("3 KiB", "8 GB/s"))).by_name["a"]
    assert tight.memory_s == pytest.approx(128 / 1e9 + (256 + 512) * 4 / 8e9)   # weights from memory


def test_other_runtimes_are_priced_at_the_profile_rate(tmp_path):
    delegate = make_profile(tmp_path, runtime="tflite")
    g = graph_of("Conv", [(1, 8, 10, 10), f32(8, 1, 3, 3)], (1, 8, 8, 8), conv_attrs(group=8))
    assert estimate(g, delegate).nodes[0].compute_s == pytest.approx(9216 / 1e9)   # no native kernel families


def test_transcendental_kernels_compute_in_float_on_int8_tensors(profile):
    row = estimate(graph_of("Softmax", [(2, 5)], (2, 5), {"axis": 1}), profile, default="int8").nodes[0]
    assert row.arithmetic == "fp32"                                      # dequantized, exp in float
    assert row.compute_s == pytest.approx(10 * 14 / (1e9 * KERNEL_EFFICIENCY[("transcendental", "fp32")]))
