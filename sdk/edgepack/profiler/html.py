"""The profile report as one self-contained HTML page: no scripts, no external files, plots as inline SVG
(latency histogram and CDF, per-op time breakdown, predicted vs measured, other runtimes)."""
from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Sequence

from .report import format_value as _fmt
from .stats import histogram

if TYPE_CHECKING:
    from .report import ProfileReport

WIDTH, PLOT_HEIGHT = 640, 220
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 56, 36, 12
BAR_HEIGHT, LABEL_WIDTH = 16, 220
TOP_OPS = 15
MEASURED, PREDICTED, ACCENT = "#3b6fb6", "#e0902f", "#c0392b"
STATUS_COLOURS = {"PASS": "#1e8449", "FAIL": "#c0392b", "INFO": "#566573", "EMULATED": "#7d3c98"}

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: 3px 10px; text-align: left; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: bold; } .verdict { font-size: 1.3em; font-weight: bold; }
.warning { color: #a04000; } svg { display: block; margin: .4em 0; } svg text { font: 11px sans-serif; }
"""


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _axis_ms(x0: float, x1: float, width: float, left: float, baseline: float, ticks: int = 5) -> list[str]:
    parts = [f'<line x1="{left}" y1="{baseline}" x2="{left + width}" y2="{baseline}" stroke="#888"/>']
    for i in range(ticks + 1):
        value = x0 + (x1 - x0) * i / ticks
        x = left + width * i / ticks
        parts.append(f'<line x1="{x:.1f}" y1="{baseline}" x2="{x:.1f}" y2="{baseline + 4}" stroke="#888"/>')
        parts.append(f'<text x="{x:.1f}" y="{baseline + 16}" text-anchor="middle">{escape(_fmt(value, "s"))}</text>')
    return parts


def _marker(x: float, top: float, bottom: float, label: str, colour: str) -> str:
    return (f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="{colour}" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{top + 10}" fill="{colour}">{escape(label)}</text>')


def latency_histogram_svg(samples: Sequence[float], markers: Sequence[tuple[str, float, str]]) -> str:
    """Counts of runs per latency bin, with vertical markers (label, seconds, colour) inside the range."""
    counts, edges = histogram(samples)
    if not counts:
        return ""
    lo, hi = edges[0], edges[-1]
    if hi == lo:
        lo, hi = lo * 0.95, hi * 1.05 or 1e-6
    width, height = WIDTH - MARGIN_LEFT - 40, PLOT_HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    baseline = MARGIN_TOP + height
    top = max(counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{PLOT_HEIGHT}" role="img" '
             f'aria-label="latency histogram">']
    span = hi - lo
    for count, left_edge, right_edge in zip(counts, edges, edges[1:]):
        x = MARGIN_LEFT + (left_edge - lo) / span * width
        w = max((right_edge - left_edge) / span * width - 1, 1)
        h = count / top * height
        parts.append(f'<rect x="{x:.1f}" y="{baseline - h:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{MEASURED}">'
                     f'<title>{count} runs in {escape(_fmt(left_edge, "s"))} .. {escape(_fmt(right_edge, "s"))}'
                     '</title></rect>')
    parts += _axis_ms(lo, hi, width, MARGIN_LEFT, baseline)
    parts.append(f'<text x="12" y="{MARGIN_TOP + height / 2}" transform="rotate(-90 12 {MARGIN_TOP + height / 2})" '
                 f'text-anchor="middle">runs</text>')
    parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{MARGIN_TOP + 8}" text-anchor="end">{top}</text>')
    for label, value, colour in markers:
        if lo <= value <= hi:
            parts.append(_marker(MARGIN_LEFT + (value - lo) / span * width, MARGIN_TOP, baseline, label, colour))
    parts.append("</svg>")
    return "".join(parts)


def latency_cdf_svg(samples: Sequence[float]) -> str:
    """The empirical CDF: the share of runs at or below each latency."""
    if not samples:
        return ""
    ordered = sorted(samples)
    lo, hi = ordered[0], ordered[-1]
    if hi == lo:
        lo, hi = lo * 0.95, hi * 1.05 or 1e-6
    width, height = WIDTH - MARGIN_LEFT - 40, PLOT_HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    baseline = MARGIN_TOP + height
    n = len(ordered)
    points = [(MARGIN_LEFT, baseline)]
    for i, value in enumerate(ordered):
        x = MARGIN_LEFT + (value - lo) / (hi - lo) * width
        points.append((x, baseline - i / n * height))
        points.append((x, baseline - (i + 1) / n * height))
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{PLOT_HEIGHT}" role="img" '
             f'aria-label="latency CDF">',
             f'<polyline points="{path}" fill="none" stroke="{MEASURED}" stroke-width="1.5"/>']
    for share in (0.5, 0.95):
        y = baseline - share * height
        parts.append(f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{MARGIN_LEFT + width}" y2="{y:.1f}" stroke="#bbb" '
                     f'stroke-dasharray="3 3"/><text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'p{share * 100:.0f}</text>')
    parts.append(f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{baseline}" stroke="#888"/>')
    parts += _axis_ms(lo, hi, width, MARGIN_LEFT, baseline)
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(rows: Sequence[tuple[str, Sequence[float | None]]], series: Sequence[tuple[str, str]],
             unit: str = "s") -> str:
    """Horizontal bars: one row per label, one bar per series (name, colour); None leaves a gap."""
    if not rows:
        return ""
    values = [v for _, row in rows for v in row if v is not None]
    scale_max = _nice_max(max(values) if values else 0.0)
    per_row = BAR_HEIGHT * len(series) + 6
    legend = 18 if len(series) > 1 else 4   # room for the legend, or a small top margin
    height = legend + per_row * len(rows) + 24
    plot_width = WIDTH - LABEL_WIDTH - 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
             f'aria-label="{escape(" vs ".join(name for name, _ in series))}">']
    for i, (name, colour) in enumerate(series if len(series) > 1 else ()):
        parts.append(f'<rect x="{LABEL_WIDTH + i * 140}" y="2" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{LABEL_WIDTH + i * 140 + 14}" y="11">{escape(name)}</text>')
    for r, (label, row) in enumerate(rows):
        y0 = legend + r * per_row
        shown = label if len(label) <= 34 else label[:31] + "..."
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{y0 + per_row / 2 + 3:.1f}" text-anchor="end">'
                     f'<title>{escape(label)}</title>{escape(shown)}</text>')
        for j, value in enumerate(row):
            if value is None:
                continue
            w = value / scale_max * plot_width
            y = y0 + j * BAR_HEIGHT
            parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{max(w, 0.5):.1f}" height="{BAR_HEIGHT - 2}" '
                         f'fill="{series[j][1]}"><title>{escape(series[j][0])}: {escape(_fmt(value, unit))}</title>'
                         f'</rect><text x="{LABEL_WIDTH + w + 4:.1f}" y="{y + BAR_HEIGHT - 5}">'
                         f'{escape(_fmt(value, unit))}</text>')
    parts.append(f'<line x1="{LABEL_WIDTH}" y1="{legend}" x2="{LABEL_WIDTH}" y2="{height - 20}" stroke="#888"/>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{cell}</td>'
                                    for i, cell in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render_html(report: "ProfileReport") -> str:
    m, s = report.measurement, report.stats
    verdict_colour = STATUS_COLOURS[report.verdict]
    title = f"edgepack profile: {report.artifact.name} on {m.device}"
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="verdict" style="color:{verdict_colour}">{report.verdict}</p>',
            f"<p>profile <b>{escape(report.profile.name)}</b> ({escape(report.profile.description)}); budgets: "
            f"{escape(report.budgets_source)}.<br>{escape(m.arch)}, {m.threads} thread{'s' if m.threads != 1 else ''}"
            f"{', <b>emulated</b>' if m.emulated else ''}; {s.runs} measured runs after {m.warmup} warm-up; "
            f"created {escape(report.created)}.</p>"]

    rows = []
    for check in report.checks:
        colour = STATUS_COLOURS.get(check.status, "#222")
        rows.append([escape(check.name), escape(_fmt(check.measured, check.unit)),
                     escape(_fmt(check.predicted, check.unit)), escape(_fmt(check.budget, check.unit)),
                     f'<span class="status" style="color:{colour}">{check.status}</span>', escape(check.note)])
    body += ["<h2>Budgets</h2>",
             _table(["check", "measured", "predicted", "budget", "status", "note"], rows, (1, 2, 3))]
    body.append(f"<p>Energy: <b>{escape(report.energy.source)}</b> ({escape(report.energy.how)}). Predictions: "
                f"{escape(report.prediction.source if report.prediction else 'none')}.</p>")
    if report.warnings:
        body.append("<ul>" + "".join(f'<li class="warning">{escape(w)}</li>' for w in report.warnings) + "</ul>")

    stats_rows = [[escape(name), escape(_fmt(value, "s"))] for name, value in
                  (("min", s.min_s), ("p50", s.p50_s), ("p90", s.p90_s), ("p95", s.p95_s), ("p99", s.p99_s),
                   ("max", s.max_s), ("mean", s.mean_s), ("std", s.std_s), ("load", m.load_s),
                   ("first run", m.first_run_s))] + [["cv", f"{s.cv:.1%}"]]
    markers = [("p50", s.p50_s, MEASURED), ("p95", s.p95_s, ACCENT)]
    if report.prediction is not None:
        markers.append(("predicted", report.prediction.latency_s, PREDICTED))
    body += ["<h2>Latency</h2>", _table(["statistic", "value"], stats_rows, (1,)),
             "<h3>Histogram</h3>", latency_histogram_svg(m.latencies_s, markers),
             "<h3>Cumulative distribution</h3>", latency_cdf_svg(m.latencies_s)]

    predicted_ops = report.prediction.per_op_s if report.prediction is not None else {}
    if m.per_op:
        slowest = sorted(m.per_op, key=lambda o: -o.mean_s)[:TOP_OPS]
        by_type: dict[str, float] = {}
        for op in m.per_op:
            by_type[op.op] = by_type.get(op.op, 0.0) + op.mean_s
        body += [f"<h2>Per-op time</h2><p>{len(m.per_op)} ops; their means add up to "
                 f"{escape(_fmt(m.per_op_sum_s, 's'))}, {report.per_op_coverage:.0%} of the mean run "
                 f"({escape(_fmt(s.mean_s, 's'))}); the rest is dispatch and the call itself.</p>",
                 "<h3>By op type</h3>",
                 bars_svg([(name, [t]) for name, t in sorted(by_type.items(), key=lambda kv: -kv[1])],
                          [("measured", MEASURED)]),
                 f"<h3>Slowest {len(slowest)} ops: measured vs predicted</h3>",
                 bars_svg([(f"{op.name} ({op.op})", [op.mean_s, predicted_ops.get(op.name)]) for op in slowest],
                          [("measured", MEASURED), ("predicted (cost model)", PREDICTED)])]
        op_rows = [[escape(op.name), escape(op.op), escape(_fmt(op.mean_s, "s")),
                    f"{op.mean_s / m.per_op_sum_s:.1%}" if m.per_op_sum_s else "-",
                    escape(_fmt(predicted_ops.get(op.name), "s"))] for op in m.per_op]
        body.append("<details><summary>every op, in execution order</summary>"
                    + _table(["op", "type", "mean", "share", "predicted"], op_rows, (2, 3, 4)) + "</details>")

    if report.prediction is not None:
        totals = [("latency", "s", s.p50_s, report.prediction.latency_s),
                  ("peak memory", "B", m.peak_memory_bytes, report.prediction.ram_bytes),
                  ("arena", "B", m.arena_bytes, report.prediction.arena_bytes),
                  ("energy / inference", "J", report.energy.per_inference_j, report.prediction.energy_j)]
        body.append("<h2>Predicted vs measured</h2>")
        for name, unit, measured, predicted in totals:
            body.append(f"<h3>{escape(name)}</h3>" + bars_svg([(name, [measured, predicted])],
                                                             [("measured", MEASURED), ("predicted", PREDICTED)], unit))

    if report.comparisons:
        rows = [("edgepack (native)", s)] if m.runner == "local" else []
        rows += [(c.runtime, c.stats) for c in report.comparisons]
        body += ["<h2>Runtimes on this host</h2>",
                 bars_svg([(name, [st.p50_s, st.p95_s]) for name, st in rows], [("p50", MEASURED), ("p95", ACCENT)]),
                 _table(["runtime", "p50", "p95", "mean", "cv"],
                        [[escape(name), escape(_fmt(st.p50_s, "s")), escape(_fmt(st.p95_s, "s")),
                          escape(_fmt(st.mean_s, "s")), f"{st.cv:.1%}"] for name, st in rows], (1, 2, 3, 4))]

    memory_rows = [["peak", escape(_fmt(m.peak_memory_bytes, "B")), escape(m.memory_how)],
                   ["arena", escape(_fmt(m.arena_bytes, "B")), "planned by the compiler"],
                   ["weights", escape(_fmt(m.weights_bytes, "B")), "in the artifact (mmapped)"]]
    body += ["<h2>Memory</h2>", _table(["figure", "bytes", "what"], memory_rows, (1,))]
    if m.cpu:
        body += ["<h2>Machine</h2>", _table(["key", "value"], [[escape(k), escape(str(v))] for k, v in m.cpu.items()])]
    if m.notes:
        body.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in m.notes) + "</ul>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
