"""The compile report of a Plan: per node the precision, its sensitivity, its predicted latency, energy and
weight bytes and the reason for the choice; totals against the budgets (PASS / FAIL with margins). As a
terminal table, as JSON, and as one self-contained HTML page whose charts are inline SVG."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .search import NodeChoice, Plan, format_figure

PRECISION_COLORS = {"fp32": "#4c72b0", "fp16": "#55a868", "int8-dynamic": "#dd8452", "int8": "#c44e52",
                    "int4": "#8172b3"}
_CONVERSIONS = ("Quantize", "Dequantize", "Requantize")


def _shown(choice: NodeChoice) -> bool:
    """Rows worth a line: nodes with quantizable weights, and nodes that run below fp32."""
    return choice.weighted or choice.precision != "fp32"


def _db(value: float | None) -> str:
    """An SQNR for a table cell: '-' when not measured or exact (fp32)."""
    return "-" if value is None or math.isinf(value) else f"{value:.1f}"


def _clean(value: Any) -> Any:
    """JSON has no infinities: an exact (noise-free) SQNR becomes null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _conversions(plan: Plan) -> dict[str, Any]:
    """The Quantize / Dequantize / Requantize nodes the quantizer inserted at precision boundaries."""
    names = {choice.node for choice in plan.nodes}
    rows = [row for row in plan.cost.nodes if row.name not in names and row.op in _CONVERSIONS]
    return {"count": len(rows), "latency_s": sum(r.latency_s for r in rows), "energy_j": sum(r.energy_j for r in rows)}


def report_dict(plan: Plan, model: str = "") -> dict[str, Any]:
    """Plain data of the whole report (what write_json writes)."""
    cost = plan.cost
    return {
        "model": model,
        "profile": plan.profile.name,
        "runtime": plan.profile.runtime,
        "method": plan.method,
        "budgets": [{"budget": c.budget, "limit": c.limit, "value": c.value, "passed": c.passed,
                     "margin": c.margin, "text": c.describe()} for c in plan.checks],
        "latency_p95_s": plan.budgets.p95_s,
        "totals": cost.as_dict()["totals"],
        "metric": {"name": plan.metric_name, "value": plan.metric, "tolerance": plan.budgets.accuracy,
                   "output_sqnr_db": _clean(plan.output_sqnr_db),
                   "predicted_sqnr_db": _clean(plan.predicted_sqnr_db),
                   "evaluation_samples": plan.evaluation_samples},
        "upgrades": plan.upgrades,
        "allow_over_budget": plan.allow_over_budget,
        "over_budget": [c.describe() for c in plan.over_budget],
        "conversions": _conversions(plan),
        "nodes": [{"node": c.node, "op": c.op, "precision": c.precision, "reason": c.reason,
                   "sqnr_db": _clean(c.sqnr_db), "weight_bytes": c.weight_bytes, "latency_s": c.latency_s,
                   "energy_j": c.energy_j,
                   "options": {p: {"sqnr_db": _clean(o.sqnr_db), "ram_bytes": o.ram_bytes,
                                   "storage_bytes": o.storage_bytes, "latency_s": o.latency_s,
                                   "energy_j": o.energy_j} for p, o in c.options.items()}}
                  for c in plan.nodes],
    }


def _budget_lines(plan: Plan) -> list[str]:
    cost = plan.cost
    lines = []
    for check in plan.checks:
        line = f"  {check.describe()}"
        if check.budget == "ram":
            weights = cost.weights_bytes if plan.profile.memory.weights_in == "ram" else 0
            line += (f"  [weights {check.figure(weights)} + arena {check.figure(cost.arena_bytes)} + runtime "
                     f"{check.figure(cost.runtime_overhead_bytes)}]")
        if check.budget == "accuracy":
            line += (f"  [{plan.metric_name} on {plan.evaluation_samples} samples; output SQNR "
                     f"{_db(plan.output_sqnr_db)} dB, predicted {_db(plan.predicted_sqnr_db)} dB]")
        lines.append(line)
    if plan.budgets.energy_j is None:
        lines.append(f"  energy: {format_figure('energy', cost.energy_j)} per inference (no budget)")
    lines.append(f"  latency p95: target {format_figure('p95', plan.budgets.p95_s)}, not predicted "
                 "(the profiler measures tails)")
    if plan.metric is None:
        lines.append("  accuracy: not measured" + (" (every node at fp32)" if all(
            c.precision == "fp32" for c in plan.nodes) else " (no evaluation data)"))
    return lines


def format_table(plan: Plan, model: str = "", all_nodes: bool = False) -> str:
    """The terminal report. Without `all_nodes`, the fixed fp32 nodes are summed up in one line."""
    header = f"{'node':<36} {'op':<10} {'precision':<12} {'SQNR dB':>8} {'weights':>10} {'latency':>10} " \
             f"{'energy':>10}  reason"
    ram = plan.budgets.ram_bytes   # byte figures in the unit family the RAM budget is written in
    lines = [f"compile report: {model + ' ' if model else ''}for profile '{plan.profile.name}' "
             f"({plan.profile.runtime} runtime)", f"method: {plan.method}", "", header, "-" * len(header)]
    hidden = []
    for c in plan.nodes:
        if not all_nodes and not _shown(c):
            hidden.append(c)
            continue
        lines.append(f"{c.node[:36]:<36} {c.op[:10]:<10} {c.precision:<12} {_db(c.sqnr_db):>8} "
                     f"{format_figure('ram', c.weight_bytes, ram):>10} {format_figure('latency', c.latency_s):>10} "
                     f"{format_figure('energy', c.energy_j):>10}  {c.reason}")
    if hidden:
        lines.append(f"{'+ ' + str(len(hidden)) + ' other nodes at fp32':<60} "
                     f"{format_figure('ram', sum(c.weight_bytes for c in hidden), ram):>10} "
                     f"{format_figure('latency', sum(c.latency_s for c in hidden)):>10} "
                     f"{format_figure('energy', sum(c.energy_j for c in hidden)):>10}  no weights to quantize "
                     "(activations, normalisation, data movement)")
    conversions = _conversions(plan)
    if conversions["count"]:
        lines.append(f"{'+ ' + str(conversions['count']) + ' precision conversions (Quantize/Dequantize)':<71} "
                     f"{format_figure('latency', conversions['latency_s']):>10} "
                     f"{format_figure('energy', conversions['energy_j']):>10}")
    lines.append("(SQNR dB: the model output's SQNR with only that node at its precision)")
    lines += ["", "budgets:"] + _budget_lines(plan)
    if plan.upgrades:
        lines.append("upgrades after measuring: " + "; ".join(plan.upgrades))
    if plan.over_budget:
        lines.append("OVER BUDGET (allow_over_budget): " + "; ".join(c.describe() for c in plan.over_budget))
    return "\n".join(lines)


def write_json(plan: Plan, path: str | Path, model: str = "") -> None:
    Path(path).write_text(json.dumps(report_dict(plan, model), indent=1))


# ---- HTML ----------------------------------------------------------------------------------------------

def _budget_svg(plan: Plan) -> str:
    """One bar per budget: the figure as a share of its budget, the budget line at 100%."""
    checks = plan.checks
    width, label, row = 420, 150, 26
    parts = []
    for i, check in enumerate(checks):
        if check.budget == "accuracy":
            share = check.value / check.limit if check.limit else 1.0
        else:
            share = check.value / check.limit if check.limit else 0.0
        bar = max(1, int(width * min(share, 1.5) / 1.5))
        color = "#5cb85c" if check.passed else "#d9534f"
        y = i * row
        parts.append(
            f'<text x="{label - 6}" y="{y + 15}" font-size="12" text-anchor="end">{html.escape(check.name)}</text>'
            f'<rect x="{label}" y="{y + 4}" width="{bar}" height="14" fill="{color}"/>'
            f'<text x="{label + bar + 4}" y="{y + 15}" font-size="11">'
            f'{html.escape(check.figure(check.value))} / {html.escape(check.figure(check.limit))}</text>')
    limit_x = label + int(width / 1.5)
    height = len(checks) * row + 6
    parts.append(f'<line x1="{limit_x}" y1="0" x2="{limit_x}" y2="{height}" stroke="#333" stroke-dasharray="4 3"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{label + width + 200}" height="{height}">'
            + "".join(parts) + "</svg>")


def _nodes_svg(choices: list[NodeChoice], ram: int) -> str:
    """Weight bytes per node, coloured by precision, labelled with the node's single-node SQNR."""
    top = max((c.weight_bytes for c in choices), default=1) or 1
    width, label, row = 420, 260, 16
    parts = []
    for i, c in enumerate(choices):
        bar = max(1, int(width * c.weight_bytes / top))
        y = i * row
        parts.append(
            f'<text x="{label - 6}" y="{y + 12}" font-size="10" text-anchor="end">{html.escape(c.node[:42])}</text>'
            f'<rect x="{label}" y="{y + 2}" width="{bar}" height="{row - 4}" '
            f'fill="{PRECISION_COLORS.get(c.precision, "#999")}"><title>{html.escape(c.reason)}</title></rect>'
            f'<text x="{label + bar + 4}" y="{y + 12}" font-size="10">{c.precision} '
            f'{html.escape(format_figure("ram", c.weight_bytes, ram))}, {_db(c.sqnr_db)} dB</text>')
    legend = "".join(f'<rect x="{label + 90 * i}" y="{len(choices) * row + 6}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{label + 90 * i + 14}" y="{len(choices) * row + 15}" font-size="10">{p}</text>'
                     for i, (p, color) in enumerate(PRECISION_COLORS.items()))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{label + width + 220}" '
            f'height="{len(choices) * row + 24}">' + "".join(parts) + legend + "</svg>")


def write_html(plan: Plan, path: str | Path, model: str = "") -> None:
    """A self-contained page: budget bars, weight bytes per node by precision, the node table."""
    shown = [c for c in plan.nodes if _shown(c)]
    ram = plan.budgets.ram_bytes
    rows = "".join(
        f"<tr><td>{html.escape(c.node)}</td><td>{c.op}</td>"
        f"<td style='color:{PRECISION_COLORS.get(c.precision, '#000')}'>{c.precision}</td>"
        f"<td>{_db(c.sqnr_db)}</td><td>{html.escape(format_figure('ram', c.weight_bytes, ram))}</td>"
        f"<td>{html.escape(format_figure('latency', c.latency_s))}</td>"
        f"<td>{html.escape(format_figure('energy', c.energy_j))}</td>"
        f"<td>{' '.join(f'{p}: {_db(o.sqnr_db)}' for p, o in c.options.items() if p != 'fp32')}</td>"
        f"<td>{html.escape(c.reason)}</td></tr>" for c in shown)
    budget_items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in _budget_lines(plan))
    over = ("<p style='color:#d9534f'><b>Over budget (allowed by allow_over_budget):</b> "
            + html.escape("; ".join(c.describe() for c in plan.over_budget)) + "</p>") if plan.over_budget else ""
    upgrades = (f"<p>Upgrades after measuring: {html.escape('; '.join(plan.upgrades))}</p>" if plan.upgrades else "")
    title = f"edgepack compile report: {model} for {plan.profile.name}" if model else \
        f"edgepack compile report for {plan.profile.name}"
    Path(path).write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
        "text-align:left;font-size:13px}</style>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(plan.profile.description)} &mdash; {plan.profile.runtime} runtime</p>"
        f"<p>Method: {html.escape(plan.method)}</p>{over}"
        f"<h2>Budgets</h2>{_budget_svg(plan)}<ul>{budget_items}</ul>{upgrades}"
        f"<h2>Weights per node, by precision</h2>{_nodes_svg(shown, ram)}"
        "<h2>Nodes with a choice of precision</h2><table><tr><th>node</th><th>op</th><th>precision</th>"
        "<th>SQNR dB (alone)</th><th>weights</th><th>latency</th><th>energy</th><th>options (SQNR dB)</th>"
        f"<th>reason</th></tr>{rows}</table>"
        f"<p>{len(plan.nodes) - len(shown)} other nodes (no weights to quantize) run at fp32.</p>")
