"""A self-contained, offline HTML replay report: inline CSS and SVG, no scripts, no fetches.

For the people who pay first: spend over time (recorded, without the policy,
governed), savings per rule, the runs the policy would stop with their
outcomes (accepted ones first: the price of the policy), cost per accepted
task over time, spend by team / user / project / model / agent, and the tasks
that spend most for the least accepted work. Then the charts per run, and the
full report as HTML tables. Every run is counted in every chart and table: a
chart or table that cannot show each run shows the largest and one aggregate
of the rest, and says so. Every text is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from governor.replay.render import usd
from governor.replay.result import ReplayResult

REC, BASE, GOV, STOP = "#9aa5b1", "#c7b37a", "#2f6fb0", "#c0392b"
CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2733}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde3ea}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .6rem;border-bottom:1px solid #eef1f4;
text-align:right}td:first-child,th:first-child{text-align:left}.legend span{margin-right:1rem}
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
svg text{font:11px system-ui,sans-serif;fill:#33414f}pre{white-space:pre-wrap}
caption{caption-side:bottom;text-align:left;color:#5b6875;font-size:12px;padding-top:.2rem}
tr.other td{font-style:italic;color:#5b6875}.note{color:#5b6875}"""
MAX_BARS = 150  # bars in the per-run chart; beyond it the cheaper runs become one aggregate bar
MAX_ROWS = 500  # rows in the per-run table; beyond it the rest are one aggregate row


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<p class="legend">'
        + "".join(f'<span><i class="sw" style="background:{c}"></i>{escape(n)}</span>' for n, c in items)
        + "</p>"
    )


def bars_per_run(runs: Sequence[Mapping[str, Any]], width: int = 1040, height: int = 220) -> str:
    """Grouped bars: recorded vs governed spend per run, costliest first; past MAX_BARS, the rest as one bar."""
    ordered = sorted(runs, key=lambda r: -(r["cost_usd_recorded"] or 0))
    if not ordered:
        return "<p>No runs.</p>"
    rows: list[Mapping[str, Any]] = list(ordered)
    caption = f"Every run is drawn ({len(ordered):,})."
    if len(ordered) > MAX_BARS:
        rest = ordered[MAX_BARS - 1 :]
        rows = [
            *ordered[: MAX_BARS - 1],
            {
                "run_id": f"the other {len(rest):,} runs",
                "cost_usd_recorded": _known_sum(r["cost_usd_recorded"] for r in rest),
                "cost_usd_governed": _known_sum(r["cost_usd_governed"] for r in rest),
                "stopped_at_call": None,
                "aggregate": True,
            },
        ]
        caption = (
            f"The {MAX_BARS - 1} costliest of {len(ordered):,} runs one bar each; the last bar is the other "
            f"{len(rest):,} runs together, so every run is counted."
        )
    top = max(max(r["cost_usd_recorded"] or 0, r["cost_usd_governed"] or 0) for r in rows) or 1.0
    step = (width - 60) / len(rows)
    bw = max(step / 2 - 0.5, 0.5)
    parts = [
        f'<svg role="img" viewBox="0 0 {width} {height + 30}" width="100%">',
        f'<text x="0" y="12">{escape(usd(top))}</text>'
        f'<line x1="55" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>',
    ]
    for i, r in enumerate(rows):
        x = 58 + i * step
        for j, (key, color) in enumerate((("cost_usd_recorded", REC), ("cost_usd_governed", GOV))):
            tip = f"{r['run_id']}: {key.split('_')[-1]} {usd(r[key])}"
            if r[key] is None:  # unknown cost: a marker, never a zero-height bar that reads as $0
                parts.append(
                    f'<text x="{x + j * bw:.1f}" y="{height - 2}" fill="{STOP}">?<title>{escape(tip)}</title></text>'
                )
                continue
            h = r[key] / top * (height - 20)
            extra = ' opacity="0.55"' if r.get("aggregate") else ""
            parts.append(
                f'<rect x="{x + j * bw:.1f}" y="{height - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                f'fill="{color}"{extra}><title>{escape(tip)}</title></rect>'
            )
        if r["stopped_at_call"] is not None:
            parts.append(f'<circle cx="{x + bw:.1f}" cy="{height + 8}" r="2.5" fill="{STOP}"/>')
    parts.append(
        f'<text x="58" y="{height + 26}">runs, costliest first (red dot: stopped by the policy; '
        f"?: cost unpriced)</text></svg>"
    )
    return _legend([("recorded", REC), ("governed", GOV)]) + "".join(parts) + f'<p class="note">{escape(caption)}</p>'


def _known_sum(values: Any) -> float | None:
    """The sum of costs, or None (unpriced) when any of them is unknown: never a partial sum read as the whole."""
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def bars_over_time(periods: Sequence[Mapping[str, Any]], unit: str, width: int = 1040, height: int = 200) -> str:
    """Spend per period: recorded, without the policy (baseline) and governed, side by side."""
    if not periods:
        return "<p>No calls.</p>"
    keys = (("cost_usd_recorded", REC), ("cost_usd_baseline", BASE), ("cost_usd_governed", GOV))
    top = max(max(p[k] or 0 for k, _ in keys) for p in periods) or 1.0
    step = (width - 60) / len(periods)
    bw = max(step / 3 - 0.5, 0.5)
    parts = [
        f'<svg role="img" viewBox="0 0 {width} {height + 30}" width="100%">',
        f'<text x="0" y="12">{escape(usd(top))}</text>'
        f'<line x1="55" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>',
    ]
    for i, p in enumerate(periods):
        x = 58 + i * step
        for j, (key, color) in enumerate(keys):
            h = (p[key] or 0) / top * (height - 20)
            tip = f"{unit} of {p['period']}: {key.split('_')[-1]} {usd(p[key])}, {p['calls']:,} calls"
            parts.append(
                f'<rect x="{x + j * bw:.1f}" y="{height - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(tip)}</title></rect>'
            )
    first, last = periods[0]["period"], periods[-1]["period"]
    parts.append(f'<text x="58" y="{height + 26}">{escape(f"per {unit}, {first} to {last}")}</text></svg>')
    return _legend([("recorded", REC), ("without the policy (repriced)", BASE), ("governed", GOV)]) + "".join(parts)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "", other: Sequence[Any] | None = None
) -> str:
    """A real HTML table; ``other`` is an aggregate row (the rows not shown), set apart."""
    if not rows and other is None:
        return '<p class="note">None.</p>'
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = ["<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows]
    if other is not None:
        body.append('<tr class="other">' + "".join(f"<td>{escape(_cell(v))}</td>" for v in other) + "</tr>")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1000 else f"{v:,.2f}"
    return str(v)


def _money(row: Mapping[str, Any]) -> list[Any]:
    return [usd(row.get("cost_usd_recorded")), usd(row.get("cost_usd_baseline")), usd(row.get("cost_usd_governed"))]


def cumulative(
    result: ReplayResult | None, runs: Sequence[Mapping[str, Any]], width: int = 1040, height: int = 260
) -> str:
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
    parts = [
        f'<svg role="img" viewBox="0 0 {width} {height + 30}" width="100%">',
        f'<text x="0" y="12">{escape(usd(top))}</text>',
        f'<line x1="60" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>',
    ]
    for r, rec, gov in data:
        for vals, color, dash in ((rec, BASE, ' stroke-dasharray="4 3"'), (gov, GOV, "")):
            pts = " ".join(f"{60 + k * sx:.1f},{height - v * sy:.1f}" for k, v in enumerate(vals))
            parts.append(
                f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"{dash}>'
                f"<title>{escape(r.run.run_id)}</title></polyline>"
            )
        stop = r.stopped_at_call
        if stop is not None:
            k = stop - 1
            parts.append(
                f'<circle cx="{60 + k * sx:.1f}" cy="{height - gov[k] * sy:.1f}" r="4" fill="{STOP}">'
                f"<title>{escape(f'{r.run.run_id}: stopped at call {stop} by {r.stop_rule}')}"
                "</title></circle>"
            )
    parts.append(f'<text x="60" y="{height + 26}">call number within the run (up to {longest})</text></svg>')
    note = f"<p>{left_out} run(s) with unpriced calls left out.</p>" if left_out else ""
    return (
        _legend([("recorded (what was paid, dashed)", BASE), ("governed", GOV), ("stop point", STOP)])
        + "".join(parts)
        + note
    )


def hbars(
    items: Sequence[tuple[str, Sequence[float]]], colors: Sequence[str], fmt: Any = str, width: int = 1040
) -> str:
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
            parts.append(
                f'<rect x="260" y="{y + 4 + j * 12}" width="{w:.1f}" height="10" fill="{colors[j]}"/>'
                f'<text x="{264 + w:.1f}" y="{y + 13 + j * 12}">{escape(text)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _finops_sections(f: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    over = f["spend_over_time"]
    unit = over["granularity"]
    out += [
        f"<h2>Spend per {unit}</h2>",
        bars_over_time(over["periods"], unit),
        table(
            [unit, "calls", "runs", "recorded", "without the policy", "governed", "saved"],
            [[p["period"], p["calls"], p["runs"], *_money(p), usd(p["savings_usd"])] for p in over["periods"]],
            f"Every call is in one {unit} (UTC); 'without the policy' is the recorded usage repriced with the "
            "policy's price table.",
        ),
    ]
    out += [
        "<h2>Savings per rule</h2>",
        table(
            ["rule", "calls changed", "saved", "calls without a price"],
            [[r["rule"], r["calls"], usd(r["saved_usd"]), r["calls_unpriced"]] for r in f["savings_by_rule"]],
            "Each changed call's cost without the policy minus its governed cost, to the rule that decided it "
            "(a blocked call, and the rest of a run a stop ends, to the rule that blocked it).",
        ),
    ]
    stopped = f["stopped_runs"]
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(stopped["by_outcome"].items()))
    out += [
        "<h2>Runs the policy would stop</h2>",
        f"<p>{stopped['total']:,} runs stopped ({escape(counts or 'none')}). Accepted runs stopped are the price "
        "of the policy: they come first.</p>",
        table(
            ["run", "outcome", "stopped by", "at call", "calls", "recorded", "without the policy", "governed"],
            [
                [r["run_id"], r["outcome"] or "unknown", r["stop_rule"], r["stopped_at_call"], r["calls"], *_money(r)]
                for r in stopped["runs"]
            ],
            f"{stopped['shown']:,} of {stopped['total']:,} stopped runs listed"
            + ("" if stopped["shown"] == stopped["total"] else "; the JSON report counts them all")
            + ".",
        ),
    ]
    cpa = f["cost_per_accepted_over_time"]
    out += [
        f"<h2>Cost per accepted task per {cpa['granularity']}</h2>",
        table(
            [cpa["granularity"], "runs", "accepted", "per accepted, without the policy", "per accepted, governed"],
            [
                [
                    p["period"],
                    p["runs"],
                    p["accepted"],
                    usd(p["cost_per_accepted_usd_baseline"]),
                    usd(p["cost_per_accepted_usd_governed"]),
                ]
                for p in cpa["periods"]
            ],
            "A run counts in the period of its first call; a run without an outcome is unknown, never accepted; "
            "the governed figure counts accepted runs the policy does not stop.",
        ),
    ]
    for key, d in f["by"].items():
        other = d["other"]
        out += [
            f"<h2>Spend by {escape(key)}</h2>",
            table(
                [key, "calls", "runs", "recorded", "without the policy", "governed", "saved"],
                [[r["value"], r["calls"], r["runs"], *_money(r), usd(r["savings_usd"])] for r in d["rows"]],
                f"{len(d['rows'])} of {d['values']:,} values one row each"
                + (", the rest in the last row" if other else "")
                + ".",
                other=None
                if other is None
                else [other["value"], other["calls"], other["runs"], *_money(other), usd(other["savings_usd"])],
            ),
        ]
    low = f["low_acceptance_high_spend"]
    if low["key"]:
        out += [
            f"<h2>Low acceptance, high spend: by {escape(low['key'])}</h2>",
            table(
                [low["key"], "runs", "with an outcome", "accepted", "acceptance", "without the policy"],
                [
                    [
                        r["value"],
                        r["runs"],
                        r["judged"],
                        r["accepted"],
                        "-" if r["acceptance"] is None else f"{100 * r['acceptance']:.0f}%",
                        usd(r["cost_usd_baseline"]),
                    ]
                    for r in low["rows"]
                ],
                f"{len(low['rows'])} of {low['groups']:,} lowest acceptance first, costliest first within it.",
            ),
        ]
    return out


def _full_report(report: Mapping[str, Any]) -> list[str]:
    t, o = report["totals"], report["outcomes"]
    out = [
        "<h2>Full report</h2>",
        "<h3>Totals</h3>",
        table(["measure", "value"], [[k.replace("_", " "), v] for k, v in t.items()]),
        "<h3>Outcomes</h3>",
        table(
            ["measure", "value"], [[k.replace("_", " "), v] for k, v in o.items() if not isinstance(v, (dict, list))]
        ),
    ]
    joined = o.get("joined")
    if joined:
        out.append(
            table(
                ["unmatched outcome record", "file", "line"],
                [[u["run_id"], u["file"], u["line"]] for u in joined["unmatched"]],
                f"Outcomes joined from {', '.join(joined['files'])}: {joined['runs_matched']:,} runs matched.",
            )
        )
    out += [
        "<h3>Rules</h3>",
        table(
            ["rule", "kind", "fired", "blocked", "audit would fire"],
            [[r["id"], r["kind"], r["fired"], r["blocked"], r["audit_would_fire"]] for r in report["rules"]],
        ),
    ]
    runs = sorted(report["runs"], key=lambda r: -(r["cost_usd_baseline"] or 0))
    shown, rest = runs[:MAX_ROWS], runs[MAX_ROWS:]
    other = None
    if rest:
        other = [
            f"the other {len(rest):,} runs",
            sum(r["calls"] for r in rest),
            sum(r["calls_blocked"] for r in rest),
            usd(sum(r["cost_usd_recorded"] or 0 for r in rest)),
            usd(sum(r["cost_usd_baseline"] or 0 for r in rest)),
            usd(sum(r["cost_usd_governed"] or 0 for r in rest)),
            f"{sum(1 for r in rest if r['stopped_at_call'] is not None):,} stopped",
            "-",
        ]
    out += [
        "<h3>Runs</h3>",
        table(
            ["run", "calls", "blocked", "recorded", "without the policy", "governed", "stopped at", "outcome"],
            [
                [
                    r["run_id"],
                    r["calls"],
                    r["calls_blocked"],
                    *_money(r),
                    r["stopped_at_call"],
                    r["outcome"] or "unknown",
                ]
                for r in shown
            ],
            f"{len(shown):,} of {len(runs):,} runs one row each, costliest first"
            + ("; the last row is the other runs together (the JSON report lists every run)" if rest else "")
            + ".",
            other=other,
        ),
    ]
    unpriced = report.get("diagnostics", {}).get("unpriced_models", [])
    if unpriced:
        out += [
            "<h3>Unpriced models</h3>",
            table(
                ["model", "recorded calls", "governed calls"],
                [[m["model"], m["calls_recorded"], m["calls_governed"]] for m in unpriced],
                "Their cost is unknown, never zero: price them under models.prices, or set defaults.allow_unpriced.",
            ),
        ]
    skipped = report.get("skipped", [])
    if skipped:
        out += [
            "<h3>Skipped records</h3>",
            table(
                ["file", "line", "where", "why"],
                [[s["file"], s["line"], s["where"], s["message"]] for s in skipped[:MAX_ROWS]],
                f"{min(len(skipped), MAX_ROWS):,} of {len(skipped):,} skipped records listed.",
            ),
        ]
    notes = report.get("notes", [])
    if notes:
        out += ["<h3>Notes</h3>", "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"]
    return out


def render_html(report: Mapping[str, Any], result: ReplayResult | None = None) -> str:
    t, p = report["totals"], report["policy"]
    verdicts = [
        (v, [t[f"calls_{k}"]])
        for v, k in (("allow", "allowed"), ("reroute", "rerouted"), ("trim", "trimmed"), ("block", "blocked"))
    ]
    rules = [(r["id"], [r["fired"], r["blocked"]]) for r in report["rules"]]
    models = [
        (
            m["model"],
            [
                m["cost_per_accepted_usd_recorded"],
                m["cost_per_accepted_usd_baseline"],
                m["cost_per_accepted_usd_governed"],
            ],
        )
        for m in report.get("diagnostics", {}).get("cost_per_accepted_by_model", [])
    ]
    title = f"Replay of {p['name']} ({p['revision']})"
    o = report["outcomes"]
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p>{t['runs']:,} runs, {t['calls']:,} calls. Recorded (paid) {escape(usd(t['cost_usd_recorded']))}, "
        f"governed {escape(usd(t['cost_usd_governed']))} (saved {escape(usd(t['savings_usd']))}, over "
        f"{t.get('cost_basis', {}).get('compared_calls', 0):,} calls whose costs are known); at list price "
        f"{escape(usd(t['cost_usd_baseline']))}; {t['runs_stopped']:,} runs stopped, of them "
        f"{o['accepted_runs_stopped']:,} accepted; {t['calls_blocked']:,} calls blocked, "
        f"{t['unpriced_calls']:,} unpriced calls, {t['skipped_records']:,} skipped records.</p>",
    ]
    if "finops" in report:
        body += _finops_sections(report["finops"])
    cum_note = ""
    if result is not None:
        chosen = min(
            len({r["run_id"] for r in report["runs"] if r["stopped_at_call"] is not None}) + 6, 12, len(report["runs"])
        )
        cum_note = (
            f'<p class="note">A selection: up to {chosen} of {len(report["runs"]):,} runs (the costliest '
            "and the stopped ones); the per-run chart above and the tables count every run.</p>"
        )
    body += [
        "<h2>Spend per run</h2>",
        bars_per_run(report["runs"]),
        "<h2>Cumulative spend within runs</h2>",
        cumulative(result, report["runs"]),
        cum_note,
        "<h2>Calls by verdict</h2>",
        hbars(verdicts, [GOV], lambda v: f"{int(v):,}"),
        "<h2>Calls by rule</h2>",
        _legend([("fired", GOV), ("blocked", STOP)]),
        hbars(rules, [GOV, STOP], lambda v: f"{int(v):,}"),
        "<h2>Cost per accepted task by model</h2>",
        _legend([("recorded", REC), ("list price (baseline)", BASE), ("governed", GOV)]),
        hbars(models, [REC, BASE, GOV], usd),
        *_full_report(report),
    ]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
