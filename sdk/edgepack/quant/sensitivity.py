"""Sensitivity and debugging: how much each node's quantization costs.

For every node a recipe quantizes:
  * single-node SQNR: the model output's SQNR when only that node is quantized (all else fp32) —
    what the budget planner uses to decide which nodes can afford low precision;
  * along-network SQNR: in the fully quantized model, the SQNR of that node's output against the
    same tensor in the fp32 model — where the error enters and grows.
SQNR (dB) = 10 log10( sum(ref^2) / sum((ref - x)^2) ); higher is better, inf when identical.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ir import DType, Graph
from ..reference import run_graph
from ..reference.quantized import dequantize
from .calibrate import calibrate
from .quantize import quantize_graph
from .recipe import Recipe, assign_precisions


def sqnr(reference: np.ndarray, approx: np.ndarray) -> float:
    reference = np.asarray(reference, np.float64)
    noise = float(np.sum((reference - np.asarray(approx, np.float64)) ** 2))
    signal = float(np.sum(reference ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


@dataclass
class NodeSensitivity:
    node: str
    op: str
    precision: str
    single_sqnr_db: float          # model output, only this node quantized
    along_sqnr_db: float | None    # this node's output in the fully quantized model (None: not int8)
    note: str = ""


@dataclass
class SensitivityReport:
    nodes: list[NodeSensitivity] = field(default_factory=list)
    full_sqnr_db: float = math.inf     # model output, everything quantized

    def most_sensitive(self, count: int = 5) -> list[NodeSensitivity]:
        return sorted(self.nodes, key=lambda n: n.single_sqnr_db)[:count]

    def to_json(self) -> str:
        def clean(x: Any) -> Any:
            return None if isinstance(x, float) and not math.isfinite(x) else x
        rows = [{k: clean(v) for k, v in asdict(n).items()} for n in self.nodes]
        return json.dumps({"full_sqnr_db": clean(self.full_sqnr_db), "nodes": rows}, indent=1)

    def table(self) -> str:
        lines = [f"{'node':<40} {'op':<14} {'precision':<13} {'single dB':>10} {'along dB':>10}  note"]
        for n in self.nodes:
            along = f"{n.along_sqnr_db:10.1f}" if n.along_sqnr_db is not None else f"{'-':>10}"
            lines.append(f"{n.node[:40]:<40} {n.op:<14} {n.precision:<13} {n.single_sqnr_db:10.1f} {along}  {n.note}")
        lines.append(f"whole model quantized: output SQNR {self.full_sqnr_db:.1f} dB")
        return "\n".join(lines)

    def write_html(self, path: str | Path) -> None:
        """A self-contained page: the table and a bar chart of single-node SQNR (inline SVG)."""
        finite = [n.single_sqnr_db for n in self.nodes if math.isfinite(n.single_sqnr_db)]
        top = max(finite, default=1.0)
        bar_h, width = 14, 600
        bars = []
        for i, n in enumerate(self.nodes):
            value = n.single_sqnr_db if math.isfinite(n.single_sqnr_db) else top
            w = max(1, int(width * max(value, 0) / max(top, 1e-9)))
            color = "#d9534f" if value < 20 else "#f0ad4e" if value < 35 else "#5cb85c"
            bars.append(f'<rect x="260" y="{i * bar_h}" width="{w}" height="{bar_h - 2}" fill="{color}"/>'
                        f'<text x="255" y="{i * bar_h + 11}" font-size="10" text-anchor="end">{n.node[:40]}</text>'
                        f'<text x="{265 + w}" y="{i * bar_h + 11}" font-size="10">{value:.1f} dB</text>')
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 330}" height="{len(self.nodes) * bar_h + 10}">'
               + "".join(bars) + "</svg>")
        rows = "".join(f"<tr><td>{n.node}</td><td>{n.op}</td><td>{n.precision}</td><td>{n.single_sqnr_db:.1f}</td>"
                       f"<td>{'' if n.along_sqnr_db is None else f'{n.along_sqnr_db:.1f}'}</td><td>{n.note}</td></tr>"
                       for n in self.nodes)
        Path(path).write_text(
            "<!doctype html><meta charset='utf-8'><title>edgepack sensitivity</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style>"
            f"<h1>Quantization sensitivity</h1><p>Whole model quantized: output SQNR {self.full_sqnr_db:.1f} dB</p>"
            f"<h2>Output SQNR with only this node quantized</h2>{svg}"
            "<h2>Per node</h2><table><tr><th>node</th><th>op</th><th>precision</th><th>single dB</th>"
            f"<th>along dB</th><th>note</th></tr>{rows}</table>")


def _output_sqnr(graph: Graph, samples: list[dict[str, np.ndarray]], reference: list[dict[str, np.ndarray]]) -> float:
    ref = np.concatenate([np.concatenate([r[o].reshape(-1) for o in graph.outputs]) for r in reference])
    got = np.concatenate([np.concatenate([run_graph(graph, s)[o].reshape(-1).astype(np.float64)
                                          for o in graph.outputs]) for s in samples])
    return sqnr(ref, got)


def analyze_graph(graph: Graph, recipe: Recipe, calibration: list[dict[str, np.ndarray]],
                  evaluation: list[dict[str, np.ndarray]], progress: bool = True) -> SensitivityReport:
    precisions, reasons = assign_precisions(graph, recipe)
    stats = calibrate(graph, calibration, recipe.observer, progress) \
        if {"int8", "int8-dynamic"} & set(precisions.values()) else None
    reference = [run_graph(graph, s) for s in evaluation]
    full = quantize_graph(graph, precisions, stats, recipe.observer)
    report = SensitivityReport(full_sqnr_db=_output_sqnr(full.graph, evaluation, reference))

    # along the fully quantized network: each int8 tensor against its fp32 twin
    along: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for sample in evaluation:
        float_env = run_graph(graph, sample, keep=True)
        quant_env = run_graph(full.graph, sample, keep=True)
        for name, value in full.graph.values.items():
            base = name.split("::")[0]
            if value.quant is not None and value.dtype is DType.INT8 and not value.is_const and base in float_env:
                along.setdefault(base, []).append((float_env[base], dequantize(quant_env[name], value.quant)))
    producer = {out: node for node in graph.nodes for out in node.outputs}
    decisions = {d.node: d for d in full.decisions}

    for node in graph.nodes:
        if precisions[node.name] == "fp32":
            continue
        single = quantize_graph(graph, {node.name: precisions[node.name]}, stats, recipe.observer)
        out = node.outputs[0]
        pairs = along.get(out) if producer.get(out) is node else None
        along_db = sqnr(np.concatenate([p[0].reshape(-1) for p in pairs]),
                        np.concatenate([p[1].reshape(-1) for p in pairs])) if pairs else None
        decision = decisions.get(node.name)
        report.nodes.append(NodeSensitivity(node.name, node.op, decision.used if decision else precisions[node.name],
                                            _output_sqnr(single.graph, evaluation, reference), along_db,
                                            decision.note if decision and decision.note != "default" else ""))
    return report
