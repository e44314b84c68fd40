"""``governor explain POLICY``: what the policy does, in evaluation order, and what it costs.

Prints the stop conditions, routes, context caps, per-call caps and budgets in
the order the engine applies them, then every model the policy can send to
with its price and where the price came from (the policy or litellm's table).
``--format json`` prints the same as one JSON document (:func:`explain_json`):
each rule with its stage, its fields, where it is defined and the line the
text format prints for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from governor.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="explain a policy: rules in order, budgets, model prices",
        description="Explain a policy: rules in evaluation order, budgets, models and prices.",
    )
    parser.add_argument("policy", metavar="POLICY", help="policy YAML file")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
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


def _stop_text(s: Any, d: str) -> str:
    return (
        f"  {s.id}{_mode(s, d)}: {s.type} max "
        + (_human(s.max) if s.type == "max_wall_time" else f"{s.max:g}")
        + (f" within {_human(s.within_s)}" if s.within_s else "")
        + (f" calls of {', '.join(s.tools)}" if getattr(s, "tools", ()) else "")
        + f", {_when(s)}"
    )


def _route_text(r: Any, d: str) -> str:
    return f"  {r.id}{_mode(r, d)}: {_when(r)} -> {_model(r.to, r.to_alias)}" + (
        f", fallbacks {', '.join(r.fallbacks)}" if r.fallbacks else ""
    )


def _context_text(c: Any, d: str) -> str:
    return (
        f"  {c.id}{_mode(c, d)}: over "
        f"{f'{c.max_input_tokens} input tokens' if c.max_input_tokens is not None else 'the model context window'}"
        f" -> {c.action}"
        + (f" keeping system + last {c.keep_last}" if c.keep_last is not None else "")
        + (" keeping system + newest that fit" if c.action == "trim" and c.keep_last is None else "")
        + (f" to {c.to}" if c.to else "")
        + f", {_when(c)}"
    )


def _call_text(c: Any, d: str) -> str:
    return (
        f"  {c.id}{_mode(c, d)}: "
        + ", ".join(
            x
            for x in (
                f"clamp max_tokens to {c.max_output_tokens}" if c.max_output_tokens is not None else "",
                f"block above ${c.max_cost_usd:g} worst-case cost" if c.max_cost_usd is not None else "",
            )
            if x
        )
        + f", {_when(c)}"
    )


# (JSON key, text heading, the policy's rules, one rule's line) in evaluation order
STAGES: tuple[tuple[str, str, str, Callable[[Any, str], str]], ...] = (
    ("stop", "1. stop conditions (all checked; the first that fires blocks)", "stop", _stop_text),
    ("routes", "2. routes (first match wins)", "routes", _route_text),
    ("context", "3. context caps", "context", _context_text),
    ("calls", "4. per-call caps", "calls", _call_text),
    ("budgets", "5. budgets", "budgets", lambda b, d: _budget(b, d)),
)


def _price_rows(policy: Any) -> list[tuple[str, Any]]:
    """(model, ModelPrice or None) for every model the policy can send to."""
    from governor.policy.bundled_prices import LazyPriceTable
    from governor.pricing import PriceTable

    table = PriceTable(policy.prices, table=LazyPriceTable())
    return [(model, table.lookup(model)) for model in _models(policy)]


def _price_source(price: Any) -> str:
    if price.source == "policy":
        return f"policy ({price.entry or 'models.prices'})"
    if price.source == "genai-prices":
        return f"genai-prices ({price.version}, entry {price.entry})"
    return f"litellm's bundled table ({price.version or _litellm_version()}, entry {price.entry or '-'})"


def explain_lines(policy: Any) -> list[str]:
    d = policy.mode
    out = [
        f"policy {policy.name} (revision {policy.revision}), mode {policy.mode}, on_error {policy.on_error}",
        f"files: {', '.join(policy.source_files)}",
    ]
    if policy.description:
        out.append(f"  {policy.description}")
    for _key, title, attr, text in STAGES:
        out += _section(title, (text(rule, d) for rule in getattr(policy, attr)))
    rows = []
    for model, price in _price_rows(policy):
        if price is None:
            unpriced = "allowed: defaults.allow_unpriced" if policy.allow_unpriced else "error"
            rows.append(f"  {model}: NO PRICE ({unpriced})")
            continue
        rows.append(
            f"  {model}: in {_fmt_rate(price.input)}, out {_fmt_rate(price.output)}, cache read "
            f"{_fmt_rate(price.cache_read)}, cache write {_fmt_rate(price.cache_write)} (1h "
            f"{_fmt_rate(price.cache_write_1h)}), context {price.context_window or '-'}; "
            f"from {_price_source(price)}"
        )
    out += _section("models (prices per million tokens)", rows)
    if policy.aliases:
        out += _section("aliases", (f"  {a} -> {m}" for a, m in policy.aliases.items()))
    return out


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _per_mtok(value: float | None) -> float | None:
    return None if value is None else round(value * 1e6, 9)


def explain_json(policy: Any) -> dict[str, Any]:
    """What ``governor explain --format json`` prints: the policy, its rules per stage in
    evaluation order (each with ``order``, its fields, ``source`` and the text line), the models
    with prices per million tokens and their source, and the aliases."""
    d = policy.mode
    out: dict[str, Any] = {
        "policy": {
            "name": policy.name,
            "revision": str(policy.revision),
            "api_version": policy.api_version,
            "description": policy.description,
            "mode": policy.mode,
            "on_error": policy.on_error,
            "allow_unpriced": policy.allow_unpriced,
            "files": list(policy.source_files),
        },
    }
    for key, _title, attr, text in STAGES:
        out[key] = [
            {"order": i + 1, **_jsonable(rule), "text": text(rule, d).strip()}
            for i, rule in enumerate(getattr(policy, attr))
        ]
    models = []
    for model, price in _price_rows(policy):
        entry: dict[str, Any] = {"model": model, "priced": price is not None}
        if price is None:
            entry["unpriced"] = "allowed (defaults.allow_unpriced)" if policy.allow_unpriced else "error"
        else:
            entry.update(
                {
                    "input_usd_per_mtok": _per_mtok(price.input),
                    "output_usd_per_mtok": _per_mtok(price.output),
                    "cache_read_usd_per_mtok": _per_mtok(price.cache_read),
                    "cache_write_usd_per_mtok": _per_mtok(price.cache_write),
                    "reasoning_usd_per_mtok": _per_mtok(price.reasoning),
                    "context_window": price.context_window,
                    "max_output_tokens": price.max_output_tokens,
                    "source": price.source,
                    "source_detail": _price_source(price),
                }
            )
        models.append(entry)
    out["models"] = models
    out["aliases"] = dict(policy.aliases)
    return out


def _budget(b: Any, default_mode: str) -> str:
    limits = [
        f"${b.limit_usd:g}" if b.limit_usd is not None else "",
        f"{b.limit_tokens} tokens" if b.limit_tokens is not None else "",
        f"{b.limit_calls} calls" if b.limit_calls is not None else "",
    ]
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
    if args.format == "json":
        print(json.dumps(explain_json(policy), indent=2, ensure_ascii=False))
    else:
        print("\n".join(explain_lines(policy)))
    return EXIT_OK
