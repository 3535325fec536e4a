"""Activation smoothing for dynamic int8 MatMuls (edgepack.quant.smooth, docs/quantization.md).

The model is a transformer-style block: a LayerNorm whose scale has two outlier channels (x40, as
BERT's do) feeds a Linear and the residual stream. Per-row dynamic int8 spends its 255 levels on the
two outliers; smoothing must recover most of the error while leaving the float function unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import edgepack
from edgepack.api import to_graph
from edgepack.passes import PIPELINE, run_passes
from edgepack.quant.calibrate import calibrate
from edgepack.quant.quantize import quantize_graph
from edgepack.quant.smooth import smooth_matmul_inputs, smoothing_scales, unfold
from edgepack.reference import run_graph

WIDTH = 64
OUTLIERS = [3, 17]


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = torch.nn.LayerNorm(WIDTH)
        self.up = torch.nn.Linear(WIDTH, 128)
        self.down = torch.nn.Linear(128, WIDTH)
        with torch.no_grad():
            self.norm.weight.fill_(1.0)
            self.norm.weight[OUTLIERS] = 40.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return h + self.down(torch.relu(self.up(h)))


def feeds(count: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 16, WIDTH)).astype(np.float32)} for _ in range(count)]


def float_graph():
    return run_passes(to_graph(Block().eval(), example_inputs=torch.from_numpy(feeds(1, 0)[0]["x"])), PIPELINE)


def sqnr_db(reference: list[np.ndarray], got: list[np.ndarray]) -> float:
    """Signal: reference; noise: got - reference."""
    r, g = np.concatenate([a.ravel() for a in reference]), np.concatenate([a.ravel() for a in got])
    return float(10 * np.log10(np.sum(r.astype(np.float64) ** 2) / np.sum((r - g).astype(np.float64) ** 2)))


def test_scales_by_hand():
    # s_c = sqrt(max|x_c| / max|W_c|): sqrt(4 / 1) = 2 and sqrt(1 / 4) = 0.5, geometric mean already 1
    np.testing.assert_allclose(smoothing_scales(np.array([4.0, 1.0]), np.array([1.0, 4.0])), [2.0, 0.5])
    # 4 and 1 over a geometric mean of 2; a channel never seen non-zero keeps s = 1
    np.testing.assert_allclose(smoothing_scales(np.array([16.0, 1.0, 0.0]), np.ones(3)), [2.0, 0.5, 1.0])


def test_smoothing_leaves_the_float_function_unchanged():
    graph = float_graph()
    stats = calibrate(graph, feeds(4, 1), progress=False)
    matmuls = {node.name for node in graph.nodes if node.op == "MatMul"}
    before = [run_graph(graph, f)[graph.outputs[0]] for f in feeds(3, 2)]
    smoothed, muls = smooth_matmul_inputs(graph, stats, matmuls)
    assert smoothed == matmuls and len(muls) == 2   # each MatMul has its own input
    graph.verify()
    after = [run_graph(graph, f)[graph.outputs[0]] for f in feeds(3, 2)]
    for a, b in zip(before, after):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_dynamic_int8_with_calibration_is_smoothed_and_more_accurate(tmp_path):
    model = Block().eval()
    example = torch.from_numpy(feeds(1, 0)[0]["x"])
    test = feeds(8, 3)
    with torch.no_grad():
        reference = [model(torch.from_numpy(f["x"])).numpy() for f in test]
        # the quantized MatMuls' share of the output: the noise is measured against it
        branch = [(model(torch.from_numpy(f["x"])) - model.norm(torch.from_numpy(f["x"]))).numpy() for f in test]
    plain = edgepack.compile(model, example_inputs=example, precision="int8-dynamic", output=tmp_path / "plain.epk",
                             progress=False)
    smooth = edgepack.compile(model, example_inputs=example, precision="int8-dynamic", output=tmp_path / "smooth.epk",
                              calibration_data=feeds(8, 1), progress=False)
    def input_scales(graph):
        return [node.inputs[3] for node in graph.nodes if node.op == "MatMul" and len(node.inputs) > 3]
    assert not input_scales(plain.graph)
    # the smoothing Muls are folded into the dynamic MatMuls as their input scale (MatMul input 3) ...
    assert len(input_scales(smooth.graph)) == 2 and not any(n.op == "Mul" for n in smooth.graph.nodes)
    # ... and come back as Muls for targets whose MatMul has no such input, computing the same
    separate = unfold(smooth.graph)
    assert sum(node.name.startswith("smooth/") for node in separate.nodes) == 2 and not input_scales(separate)
    for f in test[:2]:
        np.testing.assert_array_equal(run_graph(separate, f)[separate.outputs[0]],
                                      run_graph(smooth.graph, f)[smooth.graph.outputs[0]])
    notes = {d.node: d.note for d in smooth.decisions if d.op == "MatMul"}
    assert notes and all("smoothed" in note for note in notes.values())
    assert smooth.manifest["calibration_samples"] == 8

    results = {}
    for name, compiled in (("plain", plain), ("smooth", smooth)):
        session = edgepack.load(compiled.path)
        native = [session.run(f)["output"] if "output" in session.run(f) else next(iter(session.run(f).values()))
                  for f in test]
        oracle = [run_graph(compiled.graph, f)[compiled.graph.outputs[0]] for f in test]
        for a, b in zip(native, oracle):   # the kernels follow the reference: only float rounding differs
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        # the output minus the (float) residual h = reference - branch: the quantized branch
        results[name] = sqnr_db(branch, [n - (r - b) for n, r, b in zip(native, reference, branch)])
    # measured: 38.3 dB plain, 43.7 dB smoothed
    assert results["smooth"] > results["plain"] + 4, results


@pytest.mark.parametrize("precision", ["int4", "fp16"])
def test_other_precisions_are_not_smoothed(precision, tmp_path):
    compiled = edgepack.compile(Block().eval(), example_inputs=torch.from_numpy(feeds(1, 0)[0]["x"]),
                                precision=precision, calibration_data=feeds(4, 1), output=tmp_path / "m.epk",
                                progress=False)
    assert not any(node.name.startswith("smooth/") for node in compiled.graph.nodes)


def test_static_int8_smooths_the_matmuls_it_runs_dynamically(tmp_path):
    """In static int8 a MatMul reading a LayerNorm runs with per-row activations (a fragile neighbour):
    it is smoothed too; the MatMul after the ReLU runs static int8 and is not."""
    compiled = edgepack.compile(Block().eval(), example_inputs=torch.from_numpy(feeds(1, 0)[0]["x"]),
                                precision="int8", calibration_data=feeds(8, 1), output=tmp_path / "m.epk",
                                progress=False)
    notes = {d.node: d.note for d in compiled.decisions if d.op == "MatMul"}
    smoothed = [name for name, note in notes.items() if "smoothed" in note]
    assert len(smoothed) == 1 and "LayerNormalization" in notes[smoothed[0]], notes
