"""``governor suggest`` output: the JSON report (the source of truth), and text, Markdown and HTML renderings of it.

Every figure is shown fit part (in-sample) and held out side by side. The HTML
page is self-contained (inline CSS and SVG, no scripts): the combined policy,
the per-knob tables, and the Pareto frontier as a table and as a chart of
dollars saved against accepted runs stopped or trimmed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from governor.suggest.build import Suggestion
from governor.suggest.emit import split_text, usd
from governor.suggest.knobs import KNOBS
from governor.suggest.pick import Evaluated
from governor.suggest.routes import ASSUMPTION, SHORT_INPUT

SUGGEST_VERSION = 1


def _point(e: Evaluated, picked: bool = False) -> dict[str, Any]:
    knob = KNOBS[e.candidate.knob]
    out: dict[str, Any] = {
        "knob": knob.name,
        "rule_id": knob.rule_id,
        "value": int(e.candidate.value) if knob.integer else e.candidate.value,
        "text": knob.text(e.candidate.value),
        "basis": e.candidate.basis,
        "fit": e.fit.to_json(),
        "held_out": e.held.to_json(),
    }
    if picked:
        out["picked"] = True
    return out


def to_json(s: Suggestion) -> dict[str, Any]:
    """The whole suggestion as JSON-ready data."""
    sp = s.split
    c = s.combined
    return {
        "suggest_version": SUGGEST_VERSION,
        "split": {
            "by": sp.by,
            "holdout": sp.holdout,
            "seed": sp.seed,
            "fit_runs": len(sp.fit.runs),
            "held_out_runs": len(sp.held.runs),
            "text": split_text(s),
        },
        "base": s.base,
        "match": dict(s.match),
        "accepted_fit_runs": len(s.spend.calls),
        "knobs": [
            {
                "knob": k.knob,
                "label": KNOBS[k.knob].label,
                "rule_id": KNOBS[k.knob].rule_id,
                "pick": None if k.pick is None else _point(k.pick),
                "why": k.why,
                "candidates": [_point(e, e is k.pick) for e in k.evaluated],
            }
            for k in s.knobs
        ],
        "skipped": dict(s.skipped),
        "combined": {
            "picks": [_point(e) for e in c.picks],
            "dropped": dict(c.dropped),
            "fit": c.fit.to_json(),
            "held_out": c.held.to_json(),
        },
        "frontier": [_point(e) for e in s.frontier],
        "routes": {
            "assumption": ASSUMPTION,
            "short_input_tokens": SHORT_INPUT,
            "candidates": [
                {
                    "key": r.key,
                    "value": r.value,
                    "calls": r.calls,
                    "short_calls": r.short_calls,
                    "spend_usd": round(r.spend_usd, 6),
                    "short_spend_usd": round(r.short_spend_usd, 6),
                    "reroutes": [
                        {
                            "to": x.to,
                            "calls": x.calls,
                            "cost_usd": None if x.cost_usd is None else round(x.cost_usd, 6),
                            "assumed_saving_usd": None
                            if x.cost_usd is None
                            else round(r.short_spend_usd - x.cost_usd, 6),
                        }
                        for x in r.reroutes
                    ],
                }
                for r in s.routes
            ],
        },
        "notes": list(s.notes),
    }


HEAD = (
    "value",
    "basis",
    "fit saved",
    "fit acc",
    "fit rej/unk",
    "fit $/acc",
    "held saved",
    "held acc",
    "held rej/unk",
    "held $/acc",
    "",
)


LEGEND = (
    "acc: accepted runs stopped (+Nt: trimmed); rej/unk: rejected or escalated / unknown runs stopped; "
    "$/acc: cost per accepted task after (before: the base's, in the combined lines)"
)


def _stops(f: Mapping[str, Any]) -> str:
    trims = f" +{f['accepted_trimmed']}t" if f["accepted_trimmed"] else ""
    return f"{f['accepted_stopped']}{trims}"


def _pct(f: Mapping[str, Any]) -> str:
    return f"{usd(f['saved_usd'])}" + ("" if f["saved_pct"] is None else f" ({f['saved_pct']:.1f}%)")


def _row(p: Mapping[str, Any]) -> list[str]:
    f, h = p["fit"], p["held_out"]
    return [
        p["text"],
        p["basis"],
        _pct(f),
        _stops(f),
        f"{f['rejected_stopped']}/{f['unknown_stopped']}",
        usd(f["cost_per_accepted_after"]),
        _pct(h),
        _stops(h),
        f"{h['rejected_stopped']}/{h['unknown_stopped']}",
        usd(h["cost_per_accepted_after"]),
        "<- pick" if p.get("picked") else "",
    ]


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


def _combined_lines(j: Mapping[str, Any]) -> list[str]:
    c = j["combined"]
    out = []
    for part, f in (("fit part", c["fit"]), ("held out", c["held_out"])):
        out.append(
            f"  {part:<9} {f['runs']} runs ({f['accepted']} accepted): saves {_pct(f)} of {usd(f['base_usd'])}; "
            f"stops {f['accepted_stopped']} accepted, {f['rejected_stopped']} rejected, {f['unknown_stopped']} unknown"
            + (f"; trims {f['runs_trimmed']} runs ({f['accepted_trimmed']} accepted)" if f["runs_trimmed"] else "")
            + f"; cost per accepted task {usd(f['cost_per_accepted_before'])} -> {usd(f['cost_per_accepted_after'])}"
        )
    return out


def render_text(j: Mapping[str, Any]) -> str:
    lines = [f"governor suggest: {j['split']['text']}"]
    if j["match"]:
        lines.append("scope: " + ", ".join(f"{k}={v}" for k, v in j["match"].items()))
    lines.append(f"savings against {'the base policy ' + j['base'] if j['base'] else 'what was paid'}")
    picks = j["combined"]["picks"]
    lines.append("")
    lines.append("Suggested: " + (", ".join(f"{p['rule_id']} {p['text']}" for p in picks) or "nothing (see below)"))
    lines += _combined_lines(j)
    for name, why in j["combined"]["dropped"].items():
        lines.append(f"  left out {KNOBS[name].label}: {why}")
    for k in j["knobs"]:
        lines += ["", f"{k['label']} ({k['rule_id']}): {k['why']}"]
        lines += ["  " + x for x in _text_table(HEAD, [_row(p) for p in k["candidates"]])]
    for name, why in j["skipped"].items():
        lines += ["", f"{KNOBS[name].label}: not swept: {why}"]
    lines += ["", "Pareto frontier (fit part: fewest accepted runs stopped or trimmed, most saved):"]
    lines += ["  " + x for x in _text_table(("knob", *HEAD[:-1]), [[p["knob"], *_row(p)[:-1]] for p in j["frontier"]])]
    lines += _routes_text(j)
    lines += ["", LEGEND]
    lines += [f"note: {n}" for n in j["notes"]]
    return "\n".join(lines) + "\n"


def _routes_text(j: Mapping[str, Any]) -> list[str]:
    r = j["routes"]
    if not r["candidates"]:
        return []
    out = ["", f"Route candidates (calls with input <= {r['short_input_tokens']:,} tokens; {r['assumption']}):"]
    for c in r["candidates"]:
        group = f"{c['key']}={c['value']}" if c["key"] else c["value"]
        priced = ", ".join(
            f"{usd(x['cost_usd'])} on {x['to']} (assumed saving {usd(x['assumed_saving_usd'])})" for x in c["reroutes"]
        )
        out.append(
            f"  {group}: {c['short_calls']} of {c['calls']} calls carry {usd(c['short_spend_usd'])} of "
            f"{usd(c['spend_usd'])}; " + (f"rerouted: {priced}" if priced else "give --route-to MODEL to price it")
        )
    return out


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in rows]
    return out


def render_markdown(j: Mapping[str, Any]) -> str:
    lines = ["## governor suggest", "", j["split"]["text"] + "."]
    if j["match"]:
        lines += ["", "Scope: " + ", ".join(f"`{k}={v}`" for k, v in j["match"].items())]
    picks = j["combined"]["picks"]
    lines += ["", "**Suggested:** " + (", ".join(f"`{p['rule_id']}` {p['text']}" for p in picks) or "nothing"), ""]
    lines += ["- " + x.strip() for x in _combined_lines(j)]
    heads = [h or "pick" for h in HEAD]
    for k in j["knobs"]:
        lines += ["", f"### {k['label']} (`{k['rule_id']}`)", "", k["why"] + ".", ""]
        lines += _md_table(heads, [_row(p) for p in k["candidates"]])
    lines += ["", "### Pareto frontier (fit part)", ""]
    lines += _md_table(["knob", *heads[:-1]], [[p["knob"], *_row(p)[:-1]] for p in j["frontier"]])
    routes = _routes_text(j)
    if routes:
        lines += ["", "### Route candidates", "", *(x.strip() for x in routes[1:])]
    lines += ["", f"_{LEGEND}._"]
    lines += [f"\n> note: {n}" for n in j["notes"]]
    return "\n".join(lines) + "\n"


PARTS = {"fit": "fit part", "held_out": "held out"}


def frontier_chart(j: Mapping[str, Any], part: str = "fit", width: int = 760, height: int = 320) -> str:
    """Every candidate as a dot (dollars saved against accepted runs stopped or trimmed, on ``part``: fit or
    held_out), coloured by what it does in the fit part; the fit part's frontier as a line; the picks ringed."""
    from governor.replay.html import GOV, REC, STOP

    points = [p for k in j["knobs"] for p in k["candidates"]]
    if not points:
        return '<p class="note">No candidates.</p>'

    def touched(p: Mapping[str, Any]) -> int:
        return int(p[part]["accepted_stopped"] + p[part]["accepted_trimmed"])

    left, bottom, top, right = 60, 40, 14, 16
    xmax = max(max(touched(p) for p in points), 1)
    ymax = max(float(max(p[part]["saved_usd"] for p in points)), 1e-9)

    def x(v: float) -> float:
        return left + (width - left - right) * v / xmax

    def y(v: float) -> float:
        return height - bottom - (height - bottom - top) * max(v, 0.0) / ymax

    out = [f'<svg width="{width}" height="{height}" role="img" aria-label="Pareto frontier, {PARTS[part]}">']
    out.append(f'<line x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}" stroke="#8895a3"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0)}" stroke="#8895a3"/>')
    for i in range(5):
        v = ymax * i / 4
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(usd(v))}</text>')
    for v in sorted({touched(p) for p in points} | {0, xmax}):
        out.append(f'<text x="{x(v):.1f}" y="{height - bottom + 16}" text-anchor="middle">{v}</text>')
    out.append(
        f'<text x="{(left + width) / 2:.0f}" y="{height - 6}" text-anchor="middle">'
        f"accepted runs stopped or trimmed ({PARTS[part]})</text>"
    )
    front = j["frontier"]  # in the fit part's order (fewest accepted runs touched first), on either part
    path = " ".join(f"{x(touched(p)):.1f},{y(p[part]['saved_usd']):.1f}" for p in front)
    if part == "fit":  # on the held-out runs the same candidates need not form a frontier: dots only
        out.append(f'<polyline points="{path}" fill="none" stroke="{GOV}" stroke-width="1.5"/>')
    for p in points:
        title = escape(f"{KNOBS[p['knob']].label} {p['text']}: saves {usd(p[part]['saved_usd'])}")
        colour = STOP if p["fit"]["accepted_stopped"] + p["fit"]["accepted_trimmed"] else GOV
        out.append(
            f'<circle cx="{x(touched(p)):.1f}" cy="{y(p[part]["saved_usd"]):.1f}" r="4" fill="{colour}" '
            f'fill-opacity="0.6"><title>{title}</title></circle>'
        )
        if p.get("picked"):
            out.append(
                f'<circle cx="{x(touched(p)):.1f}" cy="{y(p[part]["saved_usd"]):.1f}" r="8" fill="none" '
                f'stroke="{REC}" stroke-width="2"/>'
            )
    out.append("</svg>")
    return "".join(out)


def render_html(j: Mapping[str, Any]) -> str:
    from governor.replay.html import CSS, GOV, REC, STOP, _legend, table

    heads = [h or "pick" for h in HEAD]
    picks = j["combined"]["picks"]
    body = [
        "<h1>governor suggest</h1>",
        f"<p>{escape(j['split']['text'])}. Savings against "
        f"{escape('the base policy ' + j['base'] if j['base'] else 'what was paid')}.</p>",
        "<h2>Suggested policy</h2>",
        "<p>" + escape(", ".join(f"{p['rule_id']} {p['text']}" for p in picks) or "Nothing to suggest.") + "</p>",
        *(f"<p>{escape(x.strip())}</p>" for x in _combined_lines(j)),
        "<h2>Pareto frontier</h2>",
        _legend([("spares every accepted fit run", GOV), ("stops or trims accepted work", STOP), ("pick", REC)]),
        frontier_chart(j, "fit"),
        "<p>The same candidates on the held-out runs (colours and rings from the fit part):</p>",
        frontier_chart(j, "held_out"),
        table(["knob", *heads[:-1]], [[p["knob"], *_row(p)[:-1]] for p in j["frontier"]], "fit part and held out"),
    ]
    for k in j["knobs"]:
        body += [f"<h2>{escape(k['label'])} ({escape(k['rule_id'])})</h2>", f"<p>{escape(k['why'])}.</p>"]
        body.append(table(heads, [_row(p) for p in k["candidates"]]))
    routes = _routes_text(j)
    if routes:
        body += ["<h2>Route candidates</h2>", *(f"<p>{escape(x.strip())}</p>" for x in routes[1:])]
    body += [f'<p class="note">{escape(n)}</p>' for n in j["notes"]]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>governor suggest</title>'
        f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
