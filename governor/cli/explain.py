"""``governor explain POLICY``: what the policy does, in evaluation order, and what it costs.

Prints the stop conditions, routes, context caps, per-call caps and budgets in
the order the engine applies them, then every model the policy can send to
with its price and where the price came from (the policy or litellm's table).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Iterable

from governor.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help="explain a policy: rules in order, budgets, model prices",
                                   description="Explain a policy: rules in evaluation order, budgets, models and prices.")
    parser.add_argument("policy", metavar="POLICY", help="policy YAML file")
    parser.set_defaults(func=run)


def _cond(spec: Any) -> str:
    return json.dumps(spec, separators=(", ", ": "), ensure_ascii=False) if spec else "every call"


def _when(rule: Any) -> str:
    text = f"when {_cond(rule.match)}"
    if rule.exclude:
        text += f" except {_cond(rule.exclude)}"
    return text


def _mode(rule: Any, default: str) -> str:
    return f" [{rule.mode}]" if rule.mode != "enforce" or default != "enforce" else ""


def _model(name: str | None, alias: str | None = None) -> str:
    return f"{name} (alias {alias})" if alias else str(name)


def _section(title: str, lines: Iterable[str]) -> list[str]:
    body = list(lines)
    return [f"{title}:", *(body or ["  (none)"])]


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"${value * 1e6:g}/M"


def explain_lines(policy: Any) -> list[str]:
    from governor.policy.bundled_prices import LazyPriceTable
    from governor.pricing import PriceTable

    d = policy.mode
    out = [f"policy {policy.name} (revision {policy.revision}), mode {policy.mode}, on_error {policy.on_error}",
           f"files: {', '.join(policy.source_files)}"]
    if policy.description:
        out.append(f"  {policy.description}")
    out += _section("1. stop conditions (all checked; the first that fires blocks)", (
        f"  {s.id}{_mode(s, d)}: {s.type} max "
        + (_human(s.max) if s.type == "max_wall_time" else f"{s.max:g}")
        + (f" within {_human(s.within_s)}" if s.within_s else "") + f", {_when(s)}" for s in policy.stop))
    out += _section("2. routes (first match wins)", (
        f"  {r.id}{_mode(r, d)}: {_when(r)} -> {_model(r.to, r.to_alias)}"
        + (f", fallbacks {', '.join(r.fallbacks)}" if r.fallbacks else "") for r in policy.routes))
    out += _section("3. context caps", (
        f"  {c.id}{_mode(c, d)}: over "
        f"{f'{c.max_input_tokens} input tokens' if c.max_input_tokens is not None else 'the model context window'}"
        f" -> {c.action}"
        + (f" keeping system + last {c.keep_last}" if c.keep_last is not None else "")
        + (" keeping system + newest that fit" if c.action == "trim" and c.keep_last is None else "")
        + (f" to {c.to}" if c.to else "") + f", {_when(c)}" for c in policy.context))
    out += _section("4. per-call caps", (
        f"  {c.id}{_mode(c, d)}: "
        + ", ".join(x for x in (
            f"clamp max_tokens to {c.max_output_tokens}" if c.max_output_tokens is not None else "",
            f"block above ${c.max_cost_usd:g} worst-case cost" if c.max_cost_usd is not None else "") if x)
        + f", {_when(c)}" for c in policy.calls))
    out += _section("5. budgets", (_budget(b, d) for b in policy.budgets))
    table = PriceTable(policy.prices, table=LazyPriceTable())
    rows = []
    for model in _models(policy):
        price = table.lookup(model)
        if price is None:
            rows.append(f"  {model}: NO PRICE ({'allowed: defaults.allow_unpriced' if policy.allow_unpriced else 'error'})")
            continue
        where = {"policy": f"policy ({price.entry or 'models.prices'})",
                 "genai-prices": f"genai-prices ({price.version}, entry {price.entry})"}.get(
            price.source, f"litellm's bundled table ({price.version or _litellm_version()}, entry {price.entry or model})")
        rows.append(f"  {model}: in {_fmt_rate(price.input)}, out {_fmt_rate(price.output)}, cache read "
                    f"{_fmt_rate(price.cache_read)}, cache write {_fmt_rate(price.cache_write)} (1h "
                    f"{_fmt_rate(price.cache_write_1h)}), context "
                    f"{price.context_window or '-'}; from {where}")
    out += _section("models (prices per million tokens)", rows)
    if policy.aliases:
        out += _section("aliases", (f"  {a} -> {m}" for a, m in policy.aliases.items()))
    return out


def _budget(b: Any, default_mode: str) -> str:
    limits = [f"${b.limit_usd:g}" if b.limit_usd is not None else "",
              f"{b.limit_tokens} tokens" if b.limit_tokens is not None else "",
              f"{b.limit_calls} calls" if b.limit_calls is not None else ""]
    window = f"rolling {_human(b.window.seconds)}" if b.window.kind == "rolling" else b.window.describe()
    text = f"  {b.id}{_mode(b, default_mode)}: {' / '.join(x for x in limits if x)} per {b.scope}, {window}"
    if b.soft is not None:
        text += f", soft at {b.soft.at:.0%}: {b.soft.action}" + (f" to {b.soft.to}" if b.soft.to else "")
    return text + f", on_error {b.on_error}, {_when(b)}"


def _human(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _models(policy: Any) -> list[str]:
    names: list[str] = [*policy.aliases.values(), *policy.prices]
    for r in policy.routes:
        names += [r.to, *r.fallbacks]
    names += [c.to for c in policy.context if c.to]
    names += [b.soft.to for b in policy.budgets if b.soft is not None and b.soft.to]
    return sorted(dict.fromkeys(names))


def _litellm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"litellm {version('litellm')}"
    except PackageNotFoundError:  # pragma: no cover
        return "litellm"


def run(args: argparse.Namespace) -> int:
    from governor.errors import PolicyError
    from governor.policy.loader import load_policy

    path = Path(args.policy)
    if not path.is_file():
        print(f"governor explain: {args.policy}: no such file")
        return EXIT_USAGE
    try:
        policy = load_policy(path, source=args.policy)
    except PolicyError as exc:
        for finding in (*exc.findings, *exc.warnings):
            print(finding)
        return EXIT_INVALID
    print("\n".join(explain_lines(policy)))
    return EXIT_OK
