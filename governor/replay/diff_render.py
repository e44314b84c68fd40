"""Text and Markdown renderings of a policy diff (markdown fits a pull-request comment)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from governor.replay.render import table, usd


def _short(v: Any) -> str:
    text = json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."


def _sections(d: Mapping[str, Any], md: bool) -> list[tuple[str, str]]:
    rules = d["rules"]
    out = []
    rows = [["added", r["id"], r["kind"], ""] for r in rules["added"]]
    rows += [["removed", r["id"], r["kind"], ""] for r in rules["removed"]]
    for r in rules["changed"]:
        for field, ch in r["fields"].items():
            rows.append(["changed", r["id"], r["kind"], f"{field}: {_short(ch['old'])} -> {_short(ch['new'])}"])
    for key, ch in rules["settings"].items():
        if key == "prices":
            for model, pc in ch.items():
                rows.append(["changed", f"price {model}", "setting", f"{_short(pc['old'])} -> {_short(pc['new'])}"])
        else:
            rows.append(["changed", key, "setting", f"{_short(ch['old'])} -> {_short(ch['new'])}"])
    out.append(("Rule changes", table(["change", "id", "kind", "detail"], rows, md) if rows else "No rule changes."))
    rep = d.get("replay")
    if rep is not None:
        o = rep["outcomes"]
        head = (
            f"{rep['changed_calls']:,} of {rep['calls']:,} calls decided differently "
            f"({rep['runs']:,} runs). Governed cost {usd(o['cost_usd_governed_old'])} -> "
            f"{usd(o['cost_usd_governed_new'])} (delta {usd(o['cost_usd_delta'])})."
        )
        rows = [
            [
                f"{g['old_verdict']} -> {g['new_verdict']}",
                g["rule"],
                g["calls"],
                g["runs"],
                usd(g["cost_usd_delta"]),
                ", ".join(e["call_id"] for e in g["examples"][:2]),
            ]
            for g in rep["groups"]
        ]
        body = head + (
            "\n\n" + table(["verdict change", "rule", "calls", "runs", "cost delta", "example calls"], rows, md)
            if rows
            else ""
        )
        out.append(("Decision changes on recorded traffic", body))
        impact = [
            f"Runs newly stopped: {o['runs_newly_stopped']} (accepted among them: {o['accepted_runs_newly_stopped']})",
            f"Runs no longer stopped: {o['runs_no_longer_stopped']} "
            f"(accepted among them: {o['accepted_runs_no_longer_stopped']})",
            f"Cost per accepted run (governed): {usd(o['cost_per_accepted_usd_governed_old'])} -> "
            f"{usd(o['cost_per_accepted_usd_governed_new'])}",
        ]
        if md:
            impact = [f"- {line}" for line in impact]
        out.append(("Outcome impact", "\n".join(impact)))
    return out


def render_diff_text(d: Mapping[str, Any]) -> str:
    head = f"Policy diff {d['old']['ref']} ({d['old']['revision']}) -> {d['new']['ref']} ({d['new']['revision']})"
    parts = [head, "=" * len(head)]
    for title, body in _sections(d, False):
        parts += ["", title, "-" * len(title), body]
    return "\n".join(parts) + "\n"


def render_diff_markdown(d: Mapping[str, Any]) -> str:
    parts = [
        f"## Policy diff `{d['old']['ref']}` → `{d['new']['ref']}`",
        f"`{d['old']['revision']}` → `{d['new']['revision']}`",
    ]
    for title, body in _sections(d, True):
        parts += ["", f"### {title}", "", body]
    return "\n".join(parts) + "\n"
