"""passes/merge_matmuls.py: dynamic int8 MatMuls that read the same input (attention's Q, K and V
projections) become one MatMul with a `split` of outputs. The native kernel quantizes the input once
and writes each output's columns; every output is bit for bit what its own MatMul gave, in the native
runtime and in the reference; `unmerge` writes the separate MatMuls back."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import edgepack
from edgepack.api import to_graph
from edgepack.passes import PIPELINE, merge_matmuls, run_passes
from edgepack.quant.quantize import quantize_graph
from edgepack.reference import run_graph
from op_harness import run_graph_native, write_graph

WIDTHS = (64, 64, 96, 40)   # the last is not a whole number of 32-column panels: it stays separate


class Projections(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = torch.nn.LayerNorm(48)
        self.proj = torch.nn.ModuleList(torch.nn.Linear(48, w) for w in WIDTHS)

    def forward(self, x: torch.Tensor):
        h = self.norm(x)
        return tuple(p(h) for p in self.proj)


def feeds(seed=0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((1, 21, 48)).astype(np.float32)}


def quantized_graph():
    graph = run_passes(to_graph(Projections().eval(), example_inputs=torch.from_numpy(feeds()["x"])), PIPELINE)
    return quantize_graph(graph, {n.name: "int8-dynamic" for n in graph.nodes if n.op == "MatMul"}).graph


native = run_graph_native


@pytest.mark.parametrize("threads", [1, 2])
def test_projections_merge_and_compute_the_same(threads):
    graph = quantized_graph()
    f = feeds(1)
    before_native, before_ref = native(graph, f, threads), run_graph(graph, f)
    assert merge_matmuls.run(graph).modified
    matmuls = [n for n in graph.nodes if n.op == "MatMul"]
    assert sorted(n.attrs.get("split", [0]) for n in matmuls) == [[0], [64, 64, 96]]
    after_native, after_ref = native(graph, f, threads), run_graph(graph, f)
    for name in before_native:
        np.testing.assert_array_equal(after_native[name], before_native[name])
        np.testing.assert_array_equal(after_ref[name], before_ref[name])
    separate = merge_matmuls.unmerge(graph)
    separate.verify()
    assert not any("split" in n.attrs for n in separate.nodes)
    assert [n.op for n in separate.nodes].count("MatMul") == len(WIDTHS)
    unmerged_ref = run_graph(separate, f)
    for name in before_ref:
        np.testing.assert_array_equal(unmerged_ref[name], before_ref[name])


def test_outputs_that_straddle_a_panel_compute_the_same():
    # widths 40 and 64: the kernel's column tile at 32..63 (or 16..47, 40..47) has columns of both outputs
    graph = quantized_graph()
    f = feeds(2)
    before = native(graph, f)
    nodes = [n for n in graph.nodes if n.op == "MatMul" and graph.values[n.inputs[1]].shape[1] in (40, 64)]
    nodes = [nodes[-1], nodes[0]]   # widths 40 and 64; both feed graph outputs only, so either may come first
    merge_matmuls._merge(graph, nodes, nodes[0].inputs[0], "", True)
    graph.prune_values()
    assert [n.attrs["split"] for n in graph.nodes if "split" in n.attrs] == [[40, 64]]
    after = native(graph, f)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_native_rejects_a_split_that_does_not_add_up():
    graph = quantized_graph()
    merge_matmuls.run(graph)
    node = next(n for n in graph.nodes if "split" in n.attrs)
    node.attrs["split"] = [64, 64, 64]
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(edgepack.ArtifactError, match="split adds up to 192 columns, B has 224") as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    assert node.name in str(err.value)
