"""What a load test tells: a text summary, the JSON document (the summary itself), a self-contained HTML page
(latency over time and the latency histogram as inline SVG) and two runs side by side with ratios."""
from __future__ import annotations

import html
import json
from pathlib import Path

LATENCY_KEYS = ("p50", "p90", "p99", "p999", "max")
# (label, path into the summary, unit): the rows that --compare prints.
COMPARED = [("throughput", ("throughput_rps",), "req/s"),
            *[(f"latency {key}", ("latency_ms", key), "ms") for key in LATENCY_KEYS],
            ("errors", ("errors",), ""),
            ("bytes/s", ("bytes_per_s",), "B/s"),
            ("server CPU per request", ("server", "cpu_ms_per_request"), "ms"),
            ("server CPU", ("server", "cpu_percent"), "%"),
            ("server RSS", ("server", "rss_bytes"), "B"),
            ("client CPU", ("client_cpu_seconds",), "s")]


def load_description(summary: dict) -> str:
    if summary["mode"] == "closed":
        return f"closed loop, {summary['concurrency']} client{'s' if summary['concurrency'] != 1 else ''}"
    return f"open loop at {summary['rate_rps']:g} req/s"


def text(summary: dict) -> str:
    lines = [f"imgsvc loadtest  {summary['door']} {summary['target']}  service {summary['service']}"]
    if summary.get("steps"):
        lines.append(f"step mode, p99 target {summary['p99_target_ms']:g} ms")
        lines.append(f"  {'offered':>10} {'served':>10} {'p50':>8} {'p99':>8} {'errors':>7}")
        for step in summary["steps"]:
            lines.append(f"  {step['rate_rps']:>10.1f} {step['throughput_rps']:>10.1f} "
                         f"{step['latency_ms']['p50']:>8.1f} {step['latency_ms']['p99']:>8.1f} {step['errors']:>7}")
        best = summary["max_rate_rps"]
        lines.append(f"highest rate whose p99 met the target: {best:g} req/s" if best is not None else
                     "no rate met the target")
    lines.append(f"{load_description(summary)}: {summary['requests']} requests in {summary['elapsed_s']:.2f} s, "
                 f"{summary['throughput_rps']:.1f} req/s, {summary['bytes_per_s'] / 1e6:.2f} MB/s, "
                 f"{summary['errors']} errors")
    latency = summary["latency_ms"]
    lines.append("latency ms  " + "  ".join(f"{key} {latency[key]:.2f}" for key in LATENCY_KEYS))
    if summary["errors_by_kind"]:
        lines.append("errors: " + ", ".join(f"{kind} x{n}" for kind, n in summary["errors_by_kind"].items()))
    if summary.get("retries"):
        lines.append(f"retries: {summary['retries']} (exports answered UNAVAILABLE and sent again)")
    if server := summary.get("server"):
        lines.append(f"server pids {','.join(map(str, server['pids']))}: CPU {server['cpu_seconds']:.2f} s "
                     f"({server['cpu_percent']:.0f}%, {server['cpu_ms_per_request']:.2f} ms/request), "
                     f"RSS {server['rss_bytes'] / 2**20:.0f} MiB (peak {server['rss_peak_bytes'] / 2**20:.0f} MiB)")
    lines.append(f"client CPU {summary['client_cpu_seconds']:.2f} s")
    if summary.get("answered_by"):
        lines.append("answered by worker " + ", ".join(f"{w} x{n}" for w, n in summary["answered_by"].items()))
    return "\n".join(lines)


def write_json(summary: dict, path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")


def compare(a_path: Path, b_path: Path) -> str:
    """Run A and run B side by side, with B/A for each number both have."""
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    width = 14
    lines = [f"A: {a_path}  ({a['door']}, {load_description(a)})", f"B: {b_path}  ({b['door']}, {load_description(b)})",
             f"{'':<24} {'A':>{width}} {'B':>{width}} {'B/A':>8}"]
    for label, path, unit in COMPARED:
        va, vb = _at(a, path), _at(b, path)
        if va is None and vb is None:
            continue
        ratio = f"{vb / va:8.2f}" if va and vb is not None else f"{'-':>8}"
        lines.append(f"{label + (f' ({unit})' if unit else ''):<24} {_number(va):>{width}} {_number(vb):>{width}} "
                     f"{ratio}")
    return "\n".join(lines)


def _at(doc: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


# ---- HTML ---------------------------------------------------------------------------------------------------

CHART_W, CHART_H, MARGIN = 760, 260, 48
SERIES = (("p50", "#1f77b4"), ("p99", "#d62728"), ("max", "#7f7f7f"))


def write_html(summary: dict, path: Path) -> None:
    path.write_text(page(summary))


def page(summary: dict) -> str:
    latency = summary["latency_ms"]
    rows = [("target", f"{summary['door']} {summary['target']}"), ("service", summary["service"]),
            ("load", load_description(summary)), ("started", summary["started_at"]),
            ("requests", summary["requests"]), ("errors", summary["errors"]),
            ("throughput", f"{summary['throughput_rps']:.1f} req/s"),
            ("bytes", f"{summary['bytes']} ({summary['bytes_per_s'] / 1e6:.2f} MB/s)"),
            *((f"latency {key}", f"{latency[key]:.2f} ms") for key in LATENCY_KEYS)]
    rows += [(f"error {kind}", n) for kind, n in summary["errors_by_kind"].items()]
    if server := summary.get("server"):
        rows += [("server CPU", f"{server['cpu_seconds']:.2f} s ({server['cpu_percent']:.0f}%)"),
                 ("server RSS", f"{server['rss_bytes'] / 2**20:.0f} MiB")]
    table = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    steps = ""
    if summary.get("steps"):
        steps = "<h2>Steps</h2><table><tr><th>offered req/s</th><th>served req/s</th><th>p50 ms</th>" \
                "<th>p99 ms</th><th>errors</th></tr>" + "".join(
                    f"<tr><td>{s['rate_rps']:g}</td><td>{s['throughput_rps']:.1f}</td>"
                    f"<td>{s['latency_ms']['p50']:.2f}</td><td>{s['latency_ms']['p99']:.2f}</td>"
                    f"<td>{s['errors']}</td></tr>" for s in summary["steps"]) + "</table>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>imgsvc loadtest: {html.escape(summary['service'])}</title>
<style>body{{font:14px sans-serif;margin:2em;max-width:820px}} table{{border-collapse:collapse}}
th,td{{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}} svg{{background:#fafafa}}</style></head>
<body><h1>imgsvc loadtest</h1><table>{table}</table>{steps}
<h2>Latency over time</h2>{timeline_svg(summary['timeline'])}
<h2>Latency histogram</h2>{histogram_svg(summary['histogram'])}
</body></html>
"""


def _frame(x_label: str, y_label: str, y_max: float, x_ticks: list[tuple[float, str]]) -> list[str]:
    plot_h = CHART_H - 2 * MARGIN
    parts = [f'<line x1="{MARGIN}" y1="{CHART_H - MARGIN}" x2="{CHART_W - MARGIN}" y2="{CHART_H - MARGIN}" '
             f'stroke="#333"/>', f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{CHART_H - MARGIN}" '
             f'stroke="#333"/>',
             f'<text x="{CHART_W / 2}" y="{CHART_H - 8}" text-anchor="middle">{html.escape(x_label)}</text>',
             f'<text x="12" y="{MARGIN - 16}">{html.escape(y_label)}</text>']
    for i in range(5):
        value = y_max * i / 4
        y = CHART_H - MARGIN - plot_h * i / 4
        parts.append(f'<text x="{MARGIN - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{value:.3g}</text>')
    for x, label in x_ticks:
        parts.append(f'<text x="{x:.1f}" y="{CHART_H - MARGIN + 14}" text-anchor="middle" font-size="11">'
                     f'{html.escape(label)}</text>')
    return parts


def timeline_svg(timeline: list[dict]) -> str:
    """p50, p99 and max of each interval against the time its answers arrived."""
    if not timeline:
        return "<p>No request was measured.</p>"
    t_max = timeline[-1]["t_s"]
    y_max = max(row["max"] for row in timeline) or 1.0
    plot_w, plot_h = CHART_W - 2 * MARGIN, CHART_H - 2 * MARGIN

    def xy(t: float, ms: float) -> str:
        return f"{MARGIN + plot_w * t / t_max:.1f},{CHART_H - MARGIN - plot_h * ms / y_max:.1f}"

    parts = _frame("time (s)", "latency (ms)", y_max, [(MARGIN + plot_w * i / 4, f"{t_max * i / 4:.3g}")
                                                       for i in range(5)])
    for offset, (key, colour) in enumerate(SERIES):
        points = " ".join(xy(row["t_s"], row[key]) for row in timeline)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{CHART_W - MARGIN + 4}" y="{MARGIN + 14 * offset}" fill="{colour}">{key}</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}">{"".join(parts)}</svg>'


def histogram_svg(bins: list[dict]) -> str:
    """One bar per logarithmic latency bin, labelled by its upper edge."""
    if not bins:
        return "<p>No request was measured.</p>"
    plot_w, plot_h = CHART_W - 2 * MARGIN, CHART_H - 2 * MARGIN
    y_max = max(b["count"] for b in bins)
    bar = plot_w / len(bins)
    label_every = max(1, len(bins) // 8)
    parts = _frame("latency (ms, upper edge of bin)", "requests", y_max,
                   [(MARGIN + bar * (i + 0.5), f"{b['le_ms']:.3g}") for i, b in enumerate(bins)
                    if i % label_every == 0])
    for i, b in enumerate(bins):
        h = plot_h * b["count"] / y_max
        parts.append(f'<rect x="{MARGIN + bar * i + 1:.1f}" y="{CHART_H - MARGIN - h:.1f}" width="{max(bar - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="#1f77b4"><title>&#8804; {b["le_ms"]:.3g} ms: {b["count"]}</title></rect>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}">{"".join(parts)}</svg>'
