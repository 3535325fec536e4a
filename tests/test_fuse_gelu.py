"""passes/fuse_gelu.py: the Gelu after a dynamic int8 MatMul becomes its fused activation. The native
kernel applies the Gelu kernel to each stored tile, so the output is bit for bit the separate ops'
(the Gelu is elementwise); the reference agrees; `unfuse` writes the Gelu back; other MatMul kernels
reject the activation by name."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import edgepack
from edgepack.api import to_graph
from edgepack.passes import PIPELINE, fuse_gelu, run_passes
from edgepack.quant.quantize import quantize_graph
from edgepack.reference import run_graph
from op_harness import run_graph_native, write_graph


class FeedForward(torch.nn.Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.up = torch.nn.Linear(48, 100)      # 100 columns: a partial last column tile
        self.act = torch.nn.GELU(approximate=approximate)
        self.down = torch.nn.Linear(100, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


def feeds(seed=0) -> dict[str, np.ndarray]:
    return {"x": (3 * np.random.default_rng(seed).standard_normal((1, 19, 48))).astype(np.float32)}


def graph_of(approximate="none", precision="int8-dynamic"):
    graph = run_passes(to_graph(FeedForward(approximate).eval(), example_inputs=torch.from_numpy(feeds()["x"])),
                       PIPELINE)
    return quantize_graph(graph, {n.name: precision for n in graph.nodes if n.op == "MatMul"}).graph


native = run_graph_native


@pytest.mark.parametrize("threads", [1, 2])
def test_gelu_fuses_and_computes_the_same(threads):
    graph = graph_of()
    f = feeds(1)
    before_native, before_ref = native(graph, f, threads), run_graph(graph, f)
    assert fuse_gelu.run(graph).modified
    assert "Gelu" not in [n.op for n in graph.nodes]
    assert [n.attrs["activation"] for n in graph.nodes if n.op == "MatMul"] == ["gelu", "none"]
    for name, y in native(graph, f, threads).items():
        np.testing.assert_array_equal(y, before_native[name])
    for name, y in run_graph(graph, f).items():
        np.testing.assert_array_equal(y, before_ref[name])
    separate = fuse_gelu.unfuse(graph)
    separate.verify()
    assert [n.op for n in separate.nodes].count("Gelu") == 1
    assert all(n.attrs.get("activation") != "gelu" for n in separate.nodes)
    for name, y in run_graph(separate, f).items():
        np.testing.assert_array_equal(y, before_ref[name])


@pytest.mark.parametrize("approximate, precision", [("tanh", "int8-dynamic"), ("none", "fp32")])
def test_other_gelus_and_matmuls_are_not_fused(approximate, precision):
    graph = graph_of(approximate, precision)
    assert not fuse_gelu.run(graph).modified


def test_float_matmul_rejects_a_gelu_activation():
    graph = graph_of(precision="fp32")
    node = next(n for n in graph.nodes if n.op == "MatMul")
    node.attrs["activation"] = "gelu"
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(edgepack.EdgepackError, match="unknown fused activation 'gelu'") as err:
            edgepack.load(write_graph(graph, Path(tmp) / "bad.epk"))
    assert node.name in str(err.value)
