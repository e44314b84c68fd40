"""A self-contained, offline HTML replay report: inline CSS and SVG, no scripts, no fetches.

Charts: spend per run (recorded vs governed), cumulative spend within the
costliest and stopped runs with their stop points, calls by verdict and by
rule, and cost per accepted task by model. Every text is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any, Mapping, Sequence

from governor.replay.render import render_markdown, usd
from governor.replay.result import ReplayResult

REC, BASE, GOV, STOP = "#9aa5b1", "#c7b37a", "#2f6fb0", "#c0392b"
CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2733}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde3ea}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .6rem;border-bottom:1px solid #eef1f4;
text-align:right}td:first-child,th:first-child{text-align:left}.legend span{margin-right:1rem}
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
svg text{font:11px system-ui,sans-serif;fill:#33414f}pre{white-space:pre-wrap}"""


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<p class="legend">' + "".join(
        f'<span><i class="sw" style="background:{c}"></i>{escape(n)}</span>' for n, c in items) + "</p>"


def bars_per_run(runs: Sequence[Mapping[str, Any]], width: int = 1040, height: int = 220) -> str:
    """Grouped bars: recorded vs governed spend of every run, costliest first."""
    rows = sorted(runs, key=lambda r: -(r["cost_usd_recorded"] or 0))[:150]
    if not rows:
        return "<p>No runs.</p>"
    top = max(max(r["cost_usd_recorded"] or 0, r["cost_usd_governed"] or 0) for r in rows) or 1.0
    step = (width - 60) / len(rows)
    bw = max(step / 2 - 0.5, 0.5)
    parts = [f'<svg role="img" viewBox="0 0 {width} {height + 30}" width="100%">',
             f'<text x="0" y="12">{escape(usd(top))}</text><line x1="55" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>']
    for i, r in enumerate(rows):
        x = 58 + i * step
        for j, (key, color) in enumerate((("cost_usd_recorded", REC), ("cost_usd_governed", GOV))):
            tip = f"{r['run_id']}: {key.split('_')[-1]} {usd(r[key])}"
            if r[key] is None:  # unknown cost: a marker, never a zero-height bar that reads as $0
                parts.append(f'<text x="{x + j * bw:.1f}" y="{height - 2}" fill="{STOP}">?<title>'
                             f'{escape(tip)}</title></text>')
                continue
            h = r[key] / top * (height - 20)
            parts.append(f'<rect x="{x + j * bw:.1f}" y="{height - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{escape(tip)}</title></rect>')
        if r["stopped_at_call"] is not None:
            parts.append(f'<circle cx="{x + bw:.1f}" cy="{height + 8}" r="2.5" fill="{STOP}"/>')
    parts.append(f'<text x="58" y="{height + 26}">runs, costliest first (red dot: stopped by the policy; '
                 f'?: cost unpriced)</text></svg>')
    return _legend([("recorded", REC), ("governed", GOV)]) + "".join(parts)


def cumulative(result: ReplayResult | None, runs: Sequence[Mapping[str, Any]], width: int = 1040,
               height: int = 260) -> str:
    """Cumulative spend by call within the costliest and the stopped runs, with stop points."""
    if result is None:
        return "<p>Per-call data not available.</p>"
    chosen = {r["run_id"] for r in sorted(runs, key=lambda r: -(r["cost_usd_recorded"] or 0))[:6]}
    chosen |= {r["run_id"] for r in runs if r["stopped_at_call"] is not None}
    series = [r for r in result.runs if r.run.run_id in chosen][:12]
    if not series:
        return "<p>No runs.</p>"
    longest = max(len(r.calls) for r in series) or 1
    def cum(vals: list[float]) -> list[float]:
        out, s = [], 0.0
        for v in vals:
            s += v
            out.append(s)
        return out
    data = []
    left_out = 0
    for r in series:
        # what was paid against what the policy would have paid, for the same calls
        if not all(c.compared for c in r.calls):
            left_out += 1  # a run with an unpriced call is not drawn as if that call were free
            continue
        rec = cum([c.cost_original or 0.0 for c in r.calls])
        gov = cum([c.cost_governed or 0.0 for c in r.calls])
        data.append((r, rec, gov))
    if not data:
        return "<p>The chosen runs have unpriced calls: not drawn.</p>"
    top = max(max(rec[-1], gov[-1]) for _, rec, gov in data if rec) or 1.0
    sx = (width - 70) / max(longest - 1, 1)
    sy = (height - 20) / top
    parts = [f'<svg role="img" viewBox="0 0 {width} {height + 30}" width="100%">',
             f'<text x="0" y="12">{escape(usd(top))}</text>',
             f'<line x1="60" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>']
    for r, rec, gov in data:
        for vals, color, dash in ((rec, BASE, ' stroke-dasharray="4 3"'), (gov, GOV, "")):
            pts = " ".join(f"{60 + k * sx:.1f},{height - v * sy:.1f}" for k, v in enumerate(vals))
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"{dash}>'
                         f'<title>{escape(r.run.run_id)}</title></polyline>')
        stop = r.stopped_at_call
        if stop is not None:
            k = stop - 1
            parts.append(f'<circle cx="{60 + k * sx:.1f}" cy="{height - gov[k] * sy:.1f}" r="4" fill="{STOP}">'
                         f'<title>{escape(f"{r.run.run_id}: stopped at call {stop} by {r.stop_rule}")}</title></circle>')
    parts.append(f'<text x="60" y="{height + 26}">call number within the run (up to {longest})</text></svg>')
    note = f"<p>{left_out} run(s) with unpriced calls left out.</p>" if left_out else ""
    return _legend([("recorded (what was paid, dashed)", BASE), ("governed", GOV),
                    ("stop point", STOP)]) + "".join(parts) + note


def hbars(items: Sequence[tuple[str, Sequence[float]]], colors: Sequence[str], fmt: Any = str, width: int = 1040) -> str:
    """Horizontal bars, one row per label, one bar per value."""
    if not items:
        return "<p>Nothing to show.</p>"
    top = max((v for _, vals in items for v in vals if v is not None), default=0) or 1.0
    row_h = 8 + 12 * len(colors)
    height = row_h * len(items)
    parts = [f'<svg role="img" viewBox="0 0 {width} {height}" width="100%">']
    for i, (label, vals) in enumerate(items):
        y = i * row_h
        parts.append(f'<text x="0" y="{y + row_h / 2 + 4:.0f}">{escape(label[:40])}</text>')
        for j, v in enumerate(vals):
            w = 0 if v is None else v / top * (width - 380)
            text = "unpriced" if v is None else fmt(v)
            parts.append(f'<rect x="260" y="{y + 4 + j * 12}" width="{w:.1f}" height="10" fill="{colors[j]}"/>'
                         f'<text x="{264 + w:.1f}" y="{y + 13 + j * 12}">{escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Mapping[str, Any], result: ReplayResult | None = None) -> str:
    t, p = report["totals"], report["policy"]
    verdicts = [(v, [t[f"calls_{k}"]]) for v, k in (("allow", "allowed"), ("reroute", "rerouted"),
                                                       ("trim", "trimmed"), ("block", "blocked"))]
    rules = [(r["id"], [r["fired"], r["blocked"]]) for r in report["rules"]]
    models = [(m["model"], [m["cost_per_accepted_usd_recorded"], m["cost_per_accepted_usd_baseline"],
                            m["cost_per_accepted_usd_governed"]])
              for m in report.get("diagnostics", {}).get("cost_per_accepted_by_model", [])]
    title = f"Replay of {p['name']} ({p['revision']})"
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p>{t['runs']:,} runs, {t['calls']:,} calls. Recorded (paid) {escape(usd(t['cost_usd_recorded']))}, "
        f"governed {escape(usd(t['cost_usd_governed']))}, savings {escape(usd(t['savings_usd']))} "
        f"over {t.get('cost_basis', {}).get('compared_calls', 0):,} calls whose costs are known; list price "
        f"{escape(usd(t['cost_usd_baseline']))}; "
        f"{t['runs_stopped']} runs stopped, {t['calls_blocked']:,} calls blocked, "
        f"{t['unpriced_calls']:,} unpriced calls, {t['skipped_records']} skipped records.</p>",
        "<h2>Spend per run</h2>", bars_per_run(report["runs"]),
        "<h2>Cumulative spend within runs</h2>", cumulative(result, report["runs"]),
        "<h2>Calls by verdict</h2>", hbars(verdicts, [GOV], lambda v: f"{int(v):,}"),
        "<h2>Calls by rule</h2>", _legend([("fired", GOV), ("blocked", STOP)]),
        hbars(rules, [GOV, STOP], lambda v: f"{int(v):,}"),
        "<h2>Cost per accepted task by model</h2>",
        _legend([("recorded", REC), ("list price (baseline)", BASE), ("governed", GOV)]),
        hbars(models, [REC, BASE, GOV], usd),
        "<h2>Full report</h2>", f"<pre>{escape(render_markdown(report))}</pre>",
    ]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
