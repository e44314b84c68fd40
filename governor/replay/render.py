"""Text and Markdown renderings of a replay report (the JSON report is the source of truth)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_ROWS = 15


UNPRICED = "unpriced"  # a cost that cannot be known: never shown as $0


def usd(x: float | None) -> str:
    if x is None:
        return UNPRICED
    return f"${x:,.4f}" if abs(x) < 100 else f"${x:,.2f}"


def num(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else ("-" if x is None else str(x))


# Everything in a report may come from a trace (run ids, models, agents, error text): in Markdown
# it is shown as text, never as markup. `<` and `&` are entity-escaped (GitHub renders inline HTML;
# a lone `>` inside a line opens nothing), the
# characters Markdown gives meaning to are backslash-escaped, and line breaks become spaces.
_MD_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        "\\": "\\\\",
        "|": "\\|",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "#": "\\#",
        "~": "\\~",
        "!": "\\!",
        "\n": " ",
        "\r": " ",
        "\x85": " ",
        "\u2028": " ",
        "\u2029": " ",
    }
)


def md_text(value: Any) -> str:
    """``value`` as literal Markdown text (table cell or inline): no HTML, no markup, one line."""
    return str(value).translate(_MD_ESCAPES)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    if markdown:
        cells = [[md_text(c) for c in r] for r in cells]
        out = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))
        ).rstrip()
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _sections(rep: Mapping[str, Any], md: bool) -> list[tuple[str, str]]:
    t, o = rep["totals"], rep["outcomes"]
    out: list[tuple[str, str]] = []
    summary = table(
        ["", "recorded (paid)", "governed", "list price (baseline)"],
        [
            ["cost", usd(t["cost_usd_recorded"]), usd(t["cost_usd_governed"]), usd(t["cost_usd_baseline"])],
            ["input tokens", num(t["input_tokens"]), num(t["input_tokens_governed"]), num(t["input_tokens"])],
            ["output tokens", num(t["output_tokens"]), num(t["output_tokens_governed"]), num(t["output_tokens"])],
            [
                "cost per accepted run",
                usd(o["cost_per_accepted_usd_recorded"]),
                usd(o["cost_per_accepted_usd_governed"]),
                usd(o["cost_per_accepted_usd_baseline"]),
            ],
        ],
        md,
    )
    pct = "" if t["savings_pct"] is None else f" ({t['savings_pct']}% of recorded)"
    b = t.get("cost_basis") or {}
    basis = (
        f"Costs compared over {num(b.get('compared_calls'))} calls ({num(b.get('recorded_calls'))} with a "
        f"recorded cost, {num(b.get('computed_calls'))} computed at list price for want of one)"
    )
    if b.get("excluded_calls"):
        basis += (
            f"; excluded: {num(b['excluded_calls'])} unpriced calls ({', '.join(b['excluded_models'])}), "
            "their cost is unknown, not zero"
        )
    if b.get("baseline_calls") is not None and b.get("baseline_calls") != b.get("compared_calls"):
        basis += f"; list price known for {num(b['baseline_calls'])} of them"
    src = b.get("governed_sources") or {}
    lines = [
        summary,
        "",
        f"Savings (recorded - governed): {usd(t['savings_usd'])}{pct}",
        basis,
        f"Governed cost by source: recorded {num(src.get('recorded', 0))}, computed {num(src.get('computed', 0))}, "
        f"unknown {num(src.get('unknown', 0))} calls",
        f"Calls: {num(t['calls'])} = allowed {num(t['calls_allowed'])}, rerouted {num(t['calls_rerouted'])}, "
        f"trimmed {num(t['calls_trimmed'])}"
        + (f" ({t['calls_trimmed_estimated']} estimated)" if t["calls_trimmed_estimated"] else "")
        + f", blocked {num(t['calls_blocked'])} ({num(t['calls_blocked_after_stop'])} after their run was stopped)"
        + (
            f"; {num(t['calls_overran'])} used more than their check reserved (+{usd(t['overrun_usd'])})"
            if t.get("calls_overran")
            else ""
        ),
        f"Runs: {num(t['runs'])}; stopped {num(t['runs_stopped'])}; outcomes: accepted {o['accepted']}, "
        f"edited {o.get('edited', 0)}, rejected {o['rejected']}, escalated {o.get('escalated', 0)}, "
        f"unknown {o.get('unknown', o['other'])}; accepted runs the policy would stop: "
        f"{o['accepted_runs_stopped']}",
    ]
    joined = o.get("joined")
    if joined:
        lines.append(
            f"Outcomes joined from {', '.join(joined['files'])}: {joined['runs_matched']} run(s) matched, "
            f"{len(joined['unmatched'])} record(s) matched no run, {joined['skipped']} skipped"
        )
    if t["unpriced_calls"]:
        lines.append(f"Unpriced calls: {num(t['unpriced_calls'])} (their cost is unknown, not zero; see below)")
    if t["skipped_records"]:
        lines.append(f"Skipped malformed records: {num(t['skipped_records'])} (listed below)")
    out.append(("Summary", "\n".join(lines)))
    out.append(
        (
            "Rules",
            table(
                ["rule", "kind", "fired", "blocked", "audit would fire"],
                [[r["id"], r["kind"] or "-", r["fired"], r["blocked"], r["audit_would_fire"]] for r in rep["rules"]],
                md,
            )
            if rep["rules"]
            else "(the policy has no rules)",
        )
    )
    stopped = [r for r in rep["runs"] if r["stopped_at_call"] is not None]
    if stopped:
        rows = [
            [
                r["run_id"],
                r["calls"],
                r["stopped_at_call"],
                r["stop_rule"] or "-",
                usd(r["cost_usd_recorded"]),
                usd(r["cost_usd_governed"]),
                r["outcome"] or "-",
            ]
            for r in stopped[:MAX_ROWS]
        ]
        more = f"\n... and {len(stopped) - MAX_ROWS} more (see --format json)" if len(stopped) > MAX_ROWS else ""
        out.append(
            (
                "Stopped runs",
                table(["run", "calls", "stopped at call", "rule", "recorded", "governed", "outcome"], rows, md) + more,
            )
        )
    if rep.get("unpriced"):
        out.append(
            (
                "Unpriced",
                table(
                    ["model", "calls", "recorded side", "governed side", "example call"],
                    [
                        [u["model"], u["calls"], u["recorded_side"], u["governed_side"], u["example_call"]]
                        for u in rep["unpriced"]
                    ],
                    md,
                )
                + "\nTheir cost is unknown (null in JSON), not zero; price them under models.prices.",
            )
        )
    recon = rep.get("reconciliation")
    if recon and recon["by_model"]:
        out.append(("Reconciliation (computed at list price vs recorded)", reconciliation_text(recon, md)))
    diag = rep.get("diagnostics")
    if diag:
        out.extend(_diagnostics(diag, md))
    if rep.get("skipped"):
        rows = [
            [
                f"{s['file']}:{s['line'] or s['where']}"
                if not (s["line"] and s["where"])
                else f"{s['file']}:{s['line']}:{s['where']}",
                s["message"],
            ]
            for s in rep["skipped"][:50]
        ]
        out.append(("Skipped records", table(["where", "problem"], rows, md)))
    if rep.get("adjustments"):
        from governor.engine.adjust import describe
        from governor.ledger.base import Adjustment

        rows = []
        for doc in rep["adjustments"]:
            a = Adjustment.from_dict(doc)
            rows.append([_utc(a.at), a.kind, describe(a).partition(" ")[2]])
        title = "Operators' adjustments in the traces (applied at their time)"
        out.append((title, table(["at", "kind", "what"], rows, md)))
    return out


def _utc(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def reconciliation_text(recon: Mapping[str, Any], md: bool) -> str:
    def ratio(r: Mapping[str, Any]) -> str:
        return "-" if r["computed_over_recorded"] is None else f"{r['computed_over_recorded']:.3f}"

    rows = [
        [
            r["model"],
            r["calls"],
            usd(r["cost_usd_recorded"]),
            usd(r["cost_usd_computed"]) if r["calls"] else UNPRICED,
            ratio(r),
            "DRIFT" if r["flagged"] else "ok",
        ]
        for r in recon["by_model"]
    ]
    text = table(
        ["model", "calls", "recorded", "computed", "computed/recorded", f">{recon['drift_threshold_pct']:g}%"], rows, md
    )
    text += "\n\n" + "\n".join(f"- {r['model']}: {r['cause']}" for r in recon["by_model"])
    days = [d for d in recon["by_model_day"] if d["flagged"]]
    if days:
        text += "\n\nDays drifting above the threshold:\n" + table(
            ["model", "day", "calls", "recorded", "computed", "computed/recorded"],
            [
                [d["model"], d["day"], d["calls"], usd(d["cost_usd_recorded"]), usd(d["cost_usd_computed"]), ratio(d)]
                for d in days[: MAX_ROWS * 2]
            ],
            md,
        )
    return text


def _diagnostics(d: Mapping[str, Any], md: bool) -> list[tuple[str, str]]:
    out = []
    e = md_text if md else str
    if d["unpriced_models"]:
        out.append(
            (
                "Unpriced models",
                table(
                    ["model", "recorded calls", "governed calls"],
                    [[u["model"], u["calls_recorded"], u["calls_governed"]] for u in d["unpriced_models"]],
                    md,
                )
                + "\nPrice them under models.prices in the policy"
                + ("." if d.get("allow_unpriced") else ", or set defaults.allow_unpriced."),
            )
        )
    rows = [
        [
            r["model"],
            r["calls"],
            r["accepted_runs"],
            usd(r["cost_usd_recorded"]),
            usd(r["cost_per_accepted_usd_recorded"]),
            usd(r["cost_per_accepted_usd_governed"]),
        ]
        for r in d["cost_per_accepted_by_model"]
    ]
    out.append(
        (
            "Cost per accepted task by model",
            table(
                ["model", "calls", "accepted runs", "recorded", "per accepted (recorded)", "per accepted (governed)"],
                rows,
                md,
            ),
        )
    )
    rows = [
        [
            r["agent"],
            r["calls"],
            r["accepted_runs"],
            usd(r["cost_usd_recorded"]),
            usd(r["cost_per_accepted_usd_recorded"]),
            usd(r["cost_per_accepted_usd_governed"]),
        ]
        for r in d["cost_per_accepted_by_agent"]
    ]
    out.append(
        (
            "Cost per accepted task by agent",
            table(
                ["agent", "calls", "accepted runs", "recorded", "per accepted (recorded)", "per accepted (governed)"],
                rows,
                md,
            ),
        )
    )
    rows = [
        [
            r["run_id"],
            r["calls"],
            num(r["input_tokens"]),
            usd(r["cost_usd_recorded"]),
            usd(r["cost_usd_governed"]),
            r["outcome"] or "-",
        ]
        for r in d["most_expensive_runs"][:5]
    ]
    out.append(
        ("Most expensive runs", table(["run", "calls", "input tokens", "recorded", "governed", "outcome"], rows, md))
    )
    lc = d["long_context"]
    rc = d["repeated_identical_calls"]
    lines = [
        f"Long context: {lc['calls_over_threshold']} calls above {lc['threshold_tokens']:,} input tokens "
        f"({lc['share_of_input'] * 100:.1f}% of all input); {lc['growing_runs_count']} run/model streams whose "
        f"context grew 4x or more",
    ]
    g0 = lc["grew_without_new_content"]
    lines.append(
        f"Context grown without new content: {g0['calls']} calls added {g0['input_tokens_added']:,} input "
        f"tokens by re-sending messages already sent"
    )
    for g in lc["growing_runs"][:5]:
        lines.append(
            f"  - run {e(g['run_id'])} ({e(g['model'])}): {g['first_input_tokens']:,} -> "
            f"{g['last_input_tokens']:,} input tokens over {g['calls']} calls"
        )
    lines.append(
        f"Repeated identical calls: {rc['repeated_calls']} (recorded cost {usd(rc['cost_usd_recorded'])}; "
        f"{rc['calls_with_messages']} calls had messages to compare)"
    )
    lines.append(f"Retry storms: {len(d['retry_storms'])}")
    for s in d["retry_storms"][:5]:
        lines.append(f"  - {e(s['kind'])} in run {e(s['run_id'])}: {s['calls']} calls, {s['errors']} errors")
    out.append(("Waste", "\n".join(lines)))
    return out


def render_text(rep: Mapping[str, Any]) -> str:
    p = rep["policy"]
    head = f"Replay of policy {p['name']} (revision {p['revision']}) over {len(rep['inputs']['files'])} file(s)"
    parts = [head, "=" * len(head)]
    for title, body in _sections(rep, False):
        parts += ["", title, "-" * len(title), body]
    return "\n".join(parts) + "\n"


def render_markdown(rep: Mapping[str, Any]) -> str:
    p = rep["policy"]
    parts = [f"## Replay of policy `{p['name']}` (revision `{p['revision']}`)"]  # an id and a hash: no markup
    for title, body in _sections(rep, True):
        parts += ["", f"### {title}", "", body]
    return "\n".join(parts) + "\n"
