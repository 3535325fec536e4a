"""The budget planner (edgepack.planner.search), its compile report and its place in compile().

The synthetic model is three MatMuls of the same input, summed: y = x @ W_big + x @ W_mid + x @ W_small,
each W 128 x 128, scaled by 100, 30 and 1. Its weights, by hand (docs/profiles.md, "Precisions"):
  fp32          128 * 128 * 4                      = 65,536 B
  int8-dynamic  128 * 128 + 128 channels * 8 B     = 17,408 B   (saves 48,128 B)
  int4          128 * 128 / 2 + 128 blocks * 8 B   =  9,216 B   (saves 56,320 B)
  fp16          resident 4 B (the native runtime widens it at load): saves no RAM
A node's output noise scales with the square of its weights' scale, and int4 is ~330x noisier than int8
((127/7)^2), so W_small is the least sensitive node and W_mid at int8 is noisier than W_small at int4.
A RAM budget 50,000 B below fp32 cannot be met by one int8-dynamic node, is met by one int4 node, and
the least loss is W_small at int4 with the other two at fp32."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.backends.epk import read_epk
from edgepack.cli import main as cli_main
from edgepack.ir import DType, Graph, Node
from edgepack.planner.cost import estimate
from edgepack.planner.report import format_table, report_dict, write_html, write_json
from edgepack.planner.search import (BudgetCheck, BudgetError, Budgets, Option, PlanError, _Executor, _Planner,
                                     format_figure, mean_cosine, node_precisions, plan_precisions, runtime_precisions,
                                     solve_ilp)
from edgepack.profiles import load_profile
from edgepack.quant.calibrate import calibrate
from edgepack.quant.quantize import quantize_graph
from edgepack.reference import run_graph

SCALES = {"big": 100.0, "mid": 30.0, "small": 1.0}
WIDTH = 128
FP32_W, INT8_W, INT4_W = 65_536, 17_408, 9_216


def write_profile(tmp_path, name="planner-board", runtime="native", target="linux-x86_64", isa=("sse2",),
                  ram="64 MiB", storage="64 MiB", overhead="1 MiB", weights_in="ram", p50="1 s"):
    data = {
        "name": name, "description": "round numbers for the planner tests",
        "target": {"name": target, "runtime": runtime, "isa": list(isa)},
        "memory": {"ram": ram, "storage": storage, "runtime_overhead": overhead, "weights_in": weights_in},
        "compute": {"unit": "test", "cores": 1, "peak": {"fp32": "2 GOPS", "int8": "8 GOPS"}, "ops_efficiency": 0.5,
                    "bandwidth": "2 GB/s", "bandwidth_efficiency": 0.5, "op_overhead": "10 us"},
        "energy": {"mac": {"fp32": "2 pJ", "int8": "0.5 pJ"}, "memory_byte": "10 pJ", "active_power": "3 W",
                   "idle_power": "1 W"},
        "latency": {"p50": p50, "p95": "2 s"},
        "accuracy": {"min_cosine": 0.99, "max_sqnr_loss": "3 dB"},
        "sources": [{"fields": ["memory.*", "compute.*", "energy.*", "latency.*", "accuracy.*"],
                     "chosen": "round numbers for the tests"}],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: (rng.standard_normal((WIDTH, WIDTH)) * scale / math.sqrt(WIDTH)).astype(np.float32)
            for name, scale in SCALES.items()}


def three_matmuls() -> Graph:
    g = Graph("three_matmuls")
    g.add_value("x", DType.FLOAT32, (1, WIDTH))
    g.inputs = ["x"]
    for name, w in weights().items():
        g.add_value(f"y_{name}", DType.FLOAT32, (1, WIDTH))
        g.nodes.append(Node("MatMul", name, ["x", g.add_const(w, f"w_{name}")], [f"y_{name}"]))
    g.add_value("partial", DType.FLOAT32, (1, WIDTH))
    g.add_value("y", DType.FLOAT32, (1, WIDTH))
    g.nodes += [Node("Add", "add1", ["y_big", "y_mid"], ["partial"]),
                Node("Add", "add2", ["partial", "y_small"], ["y"])]
    g.outputs = ["y"]
    g.verify()
    return g


def three_matmuls_onnx() -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", f"w_{n}"], [f"y_{n}"], name=n) for n in SCALES]
    nodes += [helper.make_node("Add", ["y_big", "y_mid"], ["partial"], name="add1"),
              helper.make_node("Add", ["partial", "y_small"], ["y"], name="add2")]
    graph = helper.make_graph(nodes, "three_matmuls",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])],
                              [numpy_helper.from_array(w, f"w_{n}") for n, w in weights().items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def samples(count: int = 6, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, WIDTH)).astype(np.float32)} for _ in range(count)]


@pytest.fixture
def board(tmp_path):
    return load_profile(write_profile(tmp_path))


def fp32_ram(graph, profile) -> int:
    return estimate(graph, profile).ram_bytes


# ---- the ILP --------------------------------------------------------------------------------------------

def brute_force(options, limits, base):
    best = None
    for combo in itertools.product(*[list(choices.items()) for choices in options.values()]):
        totals = {r: base[r] + sum(o.resource(r, True) for _, o in combo) for r in limits}
        if all(totals[r] <= limits[r] for r in limits):
            loss = sum(o.loss for _, o in combo)
            if best is None or loss < best[0]:
                best = (loss, {n: p for n, (p, _) in zip(options, combo)})
    return best


def test_ilp_equals_brute_force_on_random_instances():
    rng = np.random.default_rng(3)
    precisions = ("fp32", "int8-dynamic", "int4")
    for trial in range(40):
        options = {f"n{i}": {p: Option(p, 0.0 if p == "fp32" else float(rng.uniform(1e-6, 1e-1)),
                                       int(rng.integers(1_000, 100_000)), int(rng.integers(1_000, 100_000)),
                                       float(rng.uniform(1e-4, 1e-2)), float(rng.uniform(1e-4, 1e-2)))
                             for p in precisions}
                   for i in range(4)}
        limits = {"ram": float(rng.uniform(50_000, 300_000)), "latency": float(rng.uniform(0.01, 0.04))}
        base = {"ram": 10_000.0, "latency": 0.001}
        expected = brute_force(options, limits, base)
        got = solve_ilp(options, limits, base)
        if expected is None:
            assert got is None, trial
        else:
            assert got is not None, trial
            assert math.isclose(sum(options[n][p].loss for n, p in got.items()), expected[0], rel_tol=1e-9), trial


def test_ilp_elastic_is_closest_to_the_budget():
    options = {"a": {"fp32": Option("fp32", 0.0, 100, 100, 0, 0), "int4": Option("int4", 0.5, 20, 20, 0, 0)},
               "b": {"fp32": Option("fp32", 0.0, 100, 100, 0, 0), "int4": Option("int4", 0.1, 30, 30, 0, 0)}}
    assert solve_ilp(options, {"ram": 40}, {"ram": 0}) is None
    assert solve_ilp(options, {"ram": 40}, {"ram": 0}, elastic=True) == {"a": "int4", "b": "int4"}
    assert solve_ilp(options, {"ram": 130}, {"ram": 0}) == {"a": "fp32", "b": "int4"}


# ---- options ---------------------------------------------------------------------------------------------

def test_runtime_precisions(tmp_path):
    mcu = load_profile(write_profile(tmp_path, "mcu", runtime="tflite", target="cortex-m7", isa=("dsp",),
                                     weights_in="storage"))
    assert runtime_precisions(mcu) == ("fp32", "int8")
    assert runtime_precisions(load_profile(write_profile(tmp_path, runtime="tflite"))) == \
        ("fp32", "fp16", "int8", "int8-dynamic")


def test_node_options_never_fall_back():
    g = Graph("options")
    g.add_value("ids", DType.INT64, (1, 4))
    g.add_value("x", DType.FLOAT32, (1, 3, 4, 4))
    g.inputs = ["ids", "x"]
    rng = np.random.default_rng(0)
    table = g.add_const(rng.standard_normal((10, 64)).astype(np.float32), "table")
    conv_w = g.add_const(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv_w")
    odd_w = g.add_const(rng.standard_normal((64, 8)).astype(np.float32) * 0.1, "odd_w")
    for name, shape in {"e": (1, 4, 64), "c": (1, 4, 4, 4), "m": (1, 4, 8)}.items():
        g.add_value(name, DType.FLOAT32, shape)
    g.nodes = [Node("Gather", "embed", [table, "ids"], ["e"], {"axis": 0}),
               Node("Conv", "conv", ["x", conv_w], ["c"], {"strides": [1, 1], "pads": [1, 1, 1, 1],
                                                           "dilations": [1, 1], "group": 1, "activation": "none"}),
               Node("MatMul", "proj", ["e", odd_w], ["m"])]
    g.outputs = ["c", "m"]
    g.verify()
    nodes = {n.name: n for n in g.nodes}
    assert node_precisions(g, nodes["embed"]) == ["fp32", "int8-dynamic", "int4"]
    assert node_precisions(g, nodes["conv"]) == ["fp32", "fp16", "int8"]
    assert node_precisions(g, nodes["proj"]) == ["fp32", "fp16", "int8", "int8-dynamic", "int4"]
    assert node_precisions(g, nodes["conv"], ("fp32", "int8")) == ["fp32", "int8"]
    stats = calibrate(g, [{"ids": np.array([[1, 2, 3, 4]]), "x": rng.standard_normal((1, 3, 4, 4)).astype(np.float32)}],
                      progress=False)
    for node in g.nodes:
        for precision in node_precisions(g, node)[1:]:
            decision = {d.node: d for d in quantize_graph(g, {node.name: precision}, stats).decisions}[node.name]
            assert decision.used == precision, (node.name, precision, decision.note)


# ---- planning --------------------------------------------------------------------------------------------

def test_ram_budget_forces_exactly_the_least_sensitive_matmul_to_int4(board):
    graph = three_matmuls()
    ram = fp32_ram(graph, board) - 50_000
    budgets = Budgets.from_profile(board, {"ram": f"{ram} B"})
    plan = plan_precisions(graph, board, budgets, evaluation=samples(), progress=False)

    assert {c.node: c.precision for c in plan.nodes if c.op == "MatMul"} == \
        {"big": "fp32", "mid": "fp32", "small": "int4"}
    choices = {c.node: c for c in plan.nodes}
    losses = {name: choices[name].options["int4"].loss for name in SCALES}
    assert losses["big"] > losses["mid"] > losses["small"]
    assert choices["mid"].options["int8-dynamic"].loss > losses["small"]   # why int8 on two nodes loses
    assert [o.ram_bytes for o in choices["small"].options.values()] == [FP32_W, FP32_W, INT8_W, INT4_W]
    # the planner re-runs only what a variant changes; a full reference run agrees
    variant = quantize_graph(graph, {"mid": "int4"}).graph
    reference = [run_graph(graph, x)["y"].astype(np.float64) for x in samples()[:4]]
    noisy = [run_graph(variant, x)["y"].astype(np.float64) for x in samples()[:4]]
    signal = sum(float(np.sum(r ** 2)) for r in reference)
    noise = sum(float(np.sum((n - r) ** 2)) for n, r in zip(noisy, reference)) / signal
    assert choices["mid"].options["int4"].loss == pytest.approx(noise, rel=1e-6)
    assert choices["small"].reason == f"int4: needed to meet the {format_figure('ram', ram, ram)} RAM budget"
    assert choices["big"].reason.startswith("fp32: kept")
    assert plan.cost.ram_bytes == fp32_ram(graph, board) - (FP32_W - INT4_W) <= ram
    assert not plan.over_budget and plan.metric >= board.accuracy.min_cosine
    assert plan.predicted_sqnr_db == pytest.approx(plan.output_sqnr_db, abs=3.0)   # noise powers add


def test_a_looser_budget_keeps_fp32_without_data(board):
    plan = plan_precisions(three_matmuls(), board, progress=False)
    assert set(plan.precisions.values()) == {"fp32"}
    assert plan.metric is None and plan.method.startswith("fp32 meets every budget")
    assert all(c.reason == "fp32: every budget holds at full precision" for c in plan.nodes if c.op == "MatMul")


def test_impossible_budget_names_the_budget_and_the_numbers(board):
    graph = three_matmuls()
    all_int4 = quantize_graph(graph, {name: "int4" for name in SCALES}).graph
    smallest = estimate(all_int4, board).ram_bytes
    budgets = Budgets.from_profile(board, {"ram": f"{smallest - 4096} B"})
    with pytest.raises(BudgetError) as caught:
        plan_precisions(graph, board, budgets, evaluation=samples(), progress=False)
    (miss,) = caught.value.misses
    assert (miss.budget, miss.limit, miss.value) == ("ram", smallest - 4096, smallest)
    message = str(caught.value)
    assert f"best achievable {miss.figure(smallest)}" in message
    assert f"budget {miss.figure(smallest - 4096)}" in message
    assert f"misses by {miss.figure(4096)}" in message and "allow_over_budget" in message


def test_breaking_a_budget_without_data_asks_for_data(board):
    budgets = Budgets.from_profile(board, {"ram": f"{fp32_ram(three_matmuls(), board) - 1000} B"})
    with pytest.raises(PlanError, match="evaluation_data="):
        plan_precisions(three_matmuls(), board, budgets, progress=False)


def test_unreachable_tolerance_raises_with_the_best_metric_reached(board):
    graph = three_matmuls()
    ram = fp32_ram(graph, board) - 50_000
    loose = plan_precisions(graph, board, Budgets.from_profile(board, {"ram": f"{ram} B"}), evaluation=samples(),
                            progress=False)
    strict = Budgets.from_profile(board, {"ram": f"{ram} B", "accuracy": 1.0})
    with pytest.raises(BudgetError, match="accuracy: best reached within the other budgets") as caught:
        plan_precisions(graph, board, strict, evaluation=samples(), progress=False)
    assert caught.value.misses[0].value == pytest.approx(loose.metric)


def test_greedy_upgrade_raises_the_most_sensitive_node_one_step_at_a_time(board):
    """The ILP's choice is already the least loss within the budgets, so upgrades only happen where the
    exact estimate leaves room the linear model did not see; here the planner starts from every MatMul at
    int4 under a roomy budget and a tolerance that fp16 meets."""
    graph = three_matmuls()
    planner = _Planner(graph, board, Budgets.from_profile(board, {"accuracy": 1 - 1e-9}), None, samples(), None,
                       "mean cosine", "minmax", {}, False, 4, False)
    options = planner.measure_options(_Executor(graph, samples()[:4], keep=True))
    start = {**{name: "fp32" for name in planner.precisions}, **{name: "int4" for name in SCALES}}
    plan = planner.finish(start, options, "test", _Executor(graph, samples(), keep=False))
    # big (x100) is the noisiest at int4; mid at int4 (900 x 330) beats big at int8 (10,000)
    assert plan.upgrades[:3] == ["big: int4 -> int8-dynamic", "mid: int4 -> int8-dynamic", "big: int8-dynamic -> fp16"]
    assert plan.metric >= 1 - 1e-9
    assert {c.node: c.reason for c in plan.nodes}["big"].startswith("fp")
    assert "raised from" in {c.node: c.reason for c in plan.nodes}["mid"]


def test_budget_overrides(board):
    budgets = Budgets.from_profile(board, {"ram": "20 MB", "energy": "30 mJ", "latency": "50 ms", "accuracy": 0.995})
    assert (budgets.ram_bytes, budgets.energy_j, budgets.latency_s, budgets.accuracy) == (20_000_000, 0.03, 0.05, 0.995)
    assert budgets.storage_bytes == board.memory.storage_bytes
    assert Budgets.from_profile(board).energy_j is None
    with pytest.raises(ValueError, match="unknown budget 'rom'"):
        Budgets.from_profile(board, {"rom": "1 MB"})
    with pytest.raises(ValueError, match="missing unit"):
        Budgets.from_profile(board, {"ram": "20"})
    assert format_figure("ram", 17_300_000, 20_000_000) == "17.3 MB"
    assert format_figure("ram", 3 * 1024, 512 * 1024) == "3 KiB"
    assert BudgetCheck("accuracy", 0.995, 0.99).margin == pytest.approx(-0.005)


def test_default_metric_is_mean_cosine():
    a, b = np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 2.0]], np.float32)
    assert mean_cosine([{"y": a}, {"y": b}], [{"y": a}, {"y": a}]) == pytest.approx(0.5)
    assert mean_cosine([{"y": -a}], [{"y": a}]) == pytest.approx(-1.0)


def test_energy_budget_constrains_the_choice(board):
    graph = three_matmuls()
    energy = estimate(graph, board).energy_j
    plan = plan_precisions(graph, board, Budgets.from_profile(board, {"energy": f"{energy * 1e3 * 0.97} mJ"}),
                           evaluation=samples(), progress=False)
    assert plan.cost.energy_j <= energy * 0.97
    assert any(c.precision != "fp32" and "energy budget" in c.reason for c in plan.nodes)


# ---- compile(), the manifest, the report and the CLI --------------------------------------------------------------

def test_compile_auto_records_the_plan(tmp_path, board):
    profile = write_profile(tmp_path)
    ram = fp32_ram(three_matmuls(), board) - 50_000
    compiled = edgepack.compile(three_matmuls_onnx(), profile=str(profile), output=tmp_path / "m.epk",
                                evaluation_data=samples(), budgets={"ram": f"{ram} B"}, progress=False)
    manifest = read_epk(compiled.path).manifest
    assert manifest["precision"] == "auto" and manifest["profile"] == "planner-board"
    assert manifest["budgets"]["ram_bytes"] == ram
    assert manifest["predicted"]["ram_bytes"] == compiled.plan.cost.ram_bytes <= ram
    assert manifest["predicted"]["arena_bytes"] == compiled.arena_bytes
    assert manifest["precisions"]["small"] == "int4" and manifest["precisions"]["big"] == "fp32"
    assert manifest["over_budget"] == [] and manifest["allow_over_budget"] == 0   # the manifest stores flags as i64
    assert compiled.plan.artifact_bytes == compiled.file_bytes


def test_over_budget_raises_and_writes_nothing_unless_allowed(tmp_path):
    profile = write_profile(tmp_path, ram="1040 KiB")   # 16 KiB beside the 1 MiB runtime: int4 needs 27 KiB
    output = tmp_path / "m.epk"
    with pytest.raises(BudgetError, match="RAM: best achievable"):
        edgepack.compile(three_matmuls_onnx(), profile=str(profile), output=output, evaluation_data=samples(),
                         progress=False)
    assert not output.exists()
    compiled = edgepack.compile(three_matmuls_onnx(), profile=str(profile), output=output, evaluation_data=samples(),
                                allow_over_budget=True, progress=False)
    manifest = read_epk(output).manifest
    assert manifest["allow_over_budget"] == 1
    assert len(manifest["over_budget"]) == 1 and manifest["over_budget"][0].startswith("RAM:")
    assert set(manifest["precisions"][n] for n in SCALES) == {"int4"}   # as close to the budget as it gets
    assert "OVER BUDGET" in format_table(compiled.plan)


def test_explicit_precision_is_priced_and_checked(tmp_path):
    profile = write_profile(tmp_path, ram="1040 KiB")
    compiled = edgepack.compile(three_matmuls_onnx(), profile=str(profile), output=tmp_path / "m.epk",
                                precision="int8-dynamic", allow_over_budget=True, progress=False)
    assert {d.used for d in compiled.decisions if d.op == "MatMul"} == {"int8-dynamic"}
    assert compiled.manifest["precision"] == "int8-dynamic"
    assert compiled.plan.method == "explicit precision 'int8-dynamic'"
    with pytest.raises(BudgetError, match="(?s)the chosen precisions miss .* RAM: predicted"):
        edgepack.compile(three_matmuls_onnx(), profile=str(profile), output=tmp_path / "n.epk",
                         precision="int8-dynamic", progress=False)


def test_report_table_json_and_html(tmp_path, board):
    graph = three_matmuls()
    budgets = Budgets.from_profile(board, {"ram": f"{fp32_ram(graph, board) - 50_000} B"})
    plan = plan_precisions(graph, board, budgets, evaluation=samples(), progress=False)
    table = format_table(plan, model="three")
    assert "small" in table and "int4: needed to meet the" in table
    assert "RAM: " in table and "PASS" in table and "accuracy: " in table
    write_json(plan, tmp_path / "r.json", model="three")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data == json.loads(json.dumps(report_dict(plan, "three")))
    assert {b["budget"]: b["passed"] for b in data["budgets"]} == {"ram": True, "storage": True, "latency": True,
                                                                  "accuracy": True}
    assert {n["node"]: n["precision"] for n in data["nodes"]}["small"] == "int4"
    write_html(plan, tmp_path / "r.html", model="three")
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 2 and "int4: needed to meet the" in page and "<script" not in page


def test_cli_compile_writes_reports(tmp_path, board, capsys):
    model = tmp_path / "three.onnx"
    onnx.save(three_matmuls_onnx(), model)
    np.savez(tmp_path / "eval.npz", x=np.stack([s["x"] for s in samples()]))
    ram = fp32_ram(three_matmuls(), board) - 50_000
    code = cli_main(["compile", str(model), "-o", str(tmp_path / "three.epk"),
                     "--profile", str(write_profile(tmp_path)), "--budget", f"ram={ram} B",
                     "--evaluation", str(tmp_path / "eval.npz"), "--json", str(tmp_path / "r.json"),
                     "--html", str(tmp_path / "r.html")])
    assert code == 0
    out = capsys.readouterr().out
    assert "int4: needed to meet the" in out and "RAM: " in out
    assert (tmp_path / "r.json").exists() and (tmp_path / "r.html").exists()
    code = cli_main(["compile", str(model), "-o", str(tmp_path / "x.epk"), "--profile", str(write_profile(tmp_path)),
                     "--budget", "ram=100 kB", "--evaluation", str(tmp_path / "eval.npz")])
    assert code == 2 and "misses by" in capsys.readouterr().err
    code = cli_main(["compile", str(model), "-o", str(tmp_path / "x.epk"), "--profile", str(write_profile(tmp_path)),
                     "--budget", "ram=100 kB", "--evaluation", str(tmp_path / "eval.npz"), "--allow-over-budget"])
    assert code == 0 and read_epk(tmp_path / "x.epk").manifest["allow_over_budget"] == 1


# ---- the digits CNN on a microcontroller -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits(request, tmp_path_factory):
    """The trained digits CNN as ONNX (exported once) and its data. The weights are kept in pytest's cache
    across runs when the cache is on (training is seeded, so they are the same either way)."""
    import torch
    from edgepack.frontends.torch import to_onnx
    from edgepack.models.digits import train_digits_cnn
    cache = (request.config.cache.mkdir("edgepack-digits") if request.config.pluginmanager.hasplugin("cacheprovider")
             else tmp_path_factory.mktemp("digits"))
    model, data = train_digits_cnn(cache_dir=cache)
    # the TorchScript exporter: a second where dynamo takes ten, and the same graph for this CNN
    return to_onnx(model, torch.from_numpy(data.x_train[:1]), dynamo=False), data


def test_digits_cnn_fits_stm32h743_and_the_runtime_arena_is_the_planned_one(tmp_path, digits):
    model, data = digits
    calibration = [{"x": data.x_train[i:i + 1]} for i in range(32)]
    compiled = edgepack.compile(model, profile="stm32h743", output=tmp_path / "digits.epk",
                                calibration_data=calibration, progress=False)
    profile = load_profile("stm32h743")
    plan = compiled.plan
    assert not plan.over_budget
    overhead = profile.memory.runtime_overhead_bytes
    assert plan.cost.ram_bytes == plan.cost.arena_bytes + overhead <= profile.memory.ram_bytes   # weights in flash
    assert compiled.file_bytes <= profile.memory.storage_bytes
    assert plan.cost.arena_bytes == compiled.arena_bytes == edgepack.load(compiled.path).arena_bytes


def test_digits_cnn_storage_budget_takes_static_int8(tmp_path, digits):
    model, data = digits
    calibration = [{"x": data.x_train[i:i + 1]} for i in range(32)]
    evaluation = [{"x": data.x_test[i:i + 1]} for i in range(16)]
    compiled = edgepack.compile(model, profile="stm32h743", output=tmp_path / "digits.epk",
                                calibration_data=calibration, evaluation_data=evaluation,
                                budgets={"storage": "20 KiB"}, progress=False)
    plan = compiled.plan
    assert set(plan.precisions.values()) <= {"fp32", "int8"}          # TFLite Micro: float and int8 only
    assert "int8" in plan.precisions.values() and not plan.over_budget
    assert compiled.file_bytes <= 20 * 1024
    assert plan.cost.arena_bytes == compiled.arena_bytes
    assert plan.metric >= load_profile("stm32h743").accuracy.min_cosine
