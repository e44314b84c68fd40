"""Stage 3: what a schema cannot say. Runs on a schema-valid merged document.

Errors: duplicate ids, aliases pointing at aliases, models with no known price
(unless priced here or ``defaults.allow_unpriced``), bad regexes, unknown time
zones, zero durations. Warnings: unreachable or shadowed routes, unused
aliases, budgets switched off, call-scoped budgets with a window.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from governor.errors import Finding
from governor.ledger.windows import parse_duration
from governor.policy.envvars import ENV_FIELDS
from governor.policy.envvars import problems as env_problems
from governor.policy.regex import regex_error
from governor.policy.yamlsrc import SourceMap, escape

SECTIONS = ("stop", "routes", "context", "calls", "budgets")


class _Report:
    def __init__(self, smap: SourceMap, file: str) -> None:
        self.smap = smap
        self.file = file
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []

    def where(self, pointer: str, key: bool = False) -> str:
        loc = self.smap.key(pointer) if key else self.smap.value(pointer)
        return f"{loc.file}:{loc.line}:{loc.col}" if loc else self.file

    def add(self, severity: str, pointer: str, message: str, code: str, hint: str = "", key: bool = False) -> None:
        loc = self.smap.key(pointer) if key else self.smap.value(pointer)
        finding = Finding(
            severity,
            message,
            loc.file if loc else self.file,
            loc.line if loc else 0,
            loc.col if loc else 0,
            pointer,
            code,
            hint,
        )
        (self.errors if severity == "error" else self.warnings).append(finding)


def _close(name: str, choices: Any, cutoff: float = 0.6) -> str | None:
    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def _items(doc: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for section in SECTIONS:
        for i, item in enumerate(doc.get(section) or ()):
            yield section, i, item


def _model_refs(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(pointer, name) of every place a rule names a model or alias to send to."""
    for i, route in enumerate(doc.get("routes") or ()):
        yield f"/routes/{i}/to", route["to"]
        for j, name in enumerate(route.get("fallbacks") or ()):
            yield f"/routes/{i}/fallbacks/{j}", name
    for i, cap in enumerate(doc.get("context") or ()):
        if "to" in cap:
            yield f"/context/{i}/to", cap["to"]
    for i, budget in enumerate(doc.get("budgets") or ()):
        soft = budget.get("soft") or {}
        if "to" in soft:
            yield f"/budgets/{i}/soft/to", soft["to"]


def _walk_match(spec: Any, ptr: str) -> Iterator[tuple[str, str, Any]]:
    """(pointer, key, value) of every condition inside a match spec, recursively."""
    if not isinstance(spec, dict):
        return
    for key, value in spec.items():
        child = f"{ptr}/{escape(key)}"
        if key in ("any", "all"):
            for i, sub in enumerate(value):
                yield from _walk_match(sub, f"{child}/{i}")
        elif key == "not":
            yield from _walk_match(value, child)
        elif key == "metadata":
            for meta_key, cond in value.items():
                yield f"{child}/{escape(meta_key)}", meta_key, cond
        else:
            yield child, key, value


def _check_ids(doc: dict[str, Any], rep: _Report) -> None:
    seen: dict[str, str] = {}
    for section, i, item in _items(doc):
        ptr = f"/{section}/{i}/id"
        if item["id"] in seen:
            rep.add(
                "error",
                ptr,
                f"duplicate id '{item['id']}' (first used at {rep.where(seen[item['id']])})",
                "duplicate-id",
            )
        else:
            seen[item["id"]] = ptr


def _check_models(doc: dict[str, Any], rep: _Report) -> None:
    from governor.policy.build import prices_from_spec
    from governor.policy.bundled_prices import LazyPriceTable
    from governor.pricing import PriceTable

    models = doc.get("models") or {}
    aliases: dict[str, str] = models.get("aliases") or {}
    prices = models.get("prices") or {}
    allow_unpriced = bool((doc.get("defaults") or {}).get("allow_unpriced", False))
    table = PriceTable({m: prices_from_spec(m, p) for m, p in prices.items()}, table=LazyPriceTable())
    used: set[str] = set()
    for name, target in aliases.items():
        if target in aliases:
            rep.add(
                "error",
                f"/models/aliases/{escape(name)}",
                f"alias '{name}' points at alias '{target}': "
                f"an alias maps to a concrete model (write '{aliases[target]}')",
                "alias-chain",
            )
    for name in prices:
        if name in aliases:
            rep.add(
                "error",
                f"/models/prices/{escape(name)}",
                f"'{name}' is an alias: price its model '{aliases[name]}' instead",
                "price-alias",
                key=True,
            )
    concrete: list[tuple[str, str, bool]] = [(f"/models/aliases/{escape(a)}", t, True) for a, t in aliases.items()]
    for ptr, name in _model_refs(doc):
        if name in aliases:
            used.add(name)
        else:
            concrete.append((ptr, name, False))
    for _section, _i, item in _items(doc):
        for key in ("match", "exclude"):
            for _, cond_key, value in _walk_match(item.get(key), ""):
                if cond_key == "model":
                    used.update(v for v in ([value] if isinstance(value, str) else value) if v in aliases)
    for ptr, name, from_alias in concrete:
        if table.lookup(name) is not None or name in aliases:
            continue
        alias_hint = None if from_alias else _close(name, aliases, 0.75)
        if allow_unpriced:
            if alias_hint:
                rep.add(
                    "warning",
                    ptr,
                    f"'{name}' is not an alias and has no price",
                    "unknown-alias",
                    f"did you mean '{alias_hint}'?",
                )
            continue
        hint = alias_hint or _close(name, [*prices, *_litellm_names(name)], 0.8)
        rep.add(
            "error",
            ptr,
            f"model '{name}' has no known price (not in models.prices nor litellm's table); "
            "price it under models.prices or set defaults.allow_unpriced: true",
            "unpriced-model",
            f"did you mean '{hint}'?" if hint else "",
        )
    for name in aliases:
        if name not in used:
            rep.add(
                "warning", f"/models/aliases/{escape(name)}", f"alias '{name}' is never used", "unused-alias", key=True
            )


def _litellm_names(name: str) -> list[str]:
    from governor.policy.bundled_prices import litellm_price_table

    return [k for k in litellm_price_table() if k[:1] == name[:1]] if name else []


def _check_routes(doc: dict[str, Any], rep: _Report) -> None:
    earlier: list[tuple[str, Any]] = []
    catch_all: str | None = None
    for i, route in enumerate(doc.get("routes") or ()):
        ptr = f"/routes/{i}"
        key = (route.get("match") or None, route.get("exclude") or None)
        if catch_all is not None:
            rep.add(
                "warning",
                ptr,
                f"route '{route['id']}' is unreachable: route '{catch_all}' matches every call and comes first",
                "unreachable-route",
            )
        else:
            twin = next((rid for rid, k in earlier if k == key), None)
            if twin is not None:
                rep.add(
                    "warning",
                    ptr,
                    f"route '{route['id']}' is shadowed by route '{twin}', which has the same match and comes first",
                    "shadowed-route",
                )
        if route.get("mode", doc.get("mode", "enforce")) == "off":
            continue
        earlier.append((route["id"], key))
        if key == (None, None) and catch_all is None:
            catch_all = route["id"]


def _check_conditions(doc: dict[str, Any], rep: _Report) -> None:
    for section, i, item in _items(doc):
        for key in ("match", "exclude"):
            for ptr, _, value in _walk_match(item.get(key), f"/{section}/{i}/{key}"):
                if isinstance(value, dict) and isinstance(value.get("regex"), str):
                    problem = regex_error(value["regex"])
                    if problem is not None:
                        rep.add("error", f"{ptr}/regex", f"invalid regular expression: {problem}", "bad-regex")


def _check_times(doc: dict[str, Any], rep: _Report) -> None:
    durations: list[tuple[str, Any]] = [("/defaults/lease", (doc.get("defaults") or {}).get("lease"))]
    for i, stop in enumerate(doc.get("stop") or ()):
        durations += [(f"/stop/{i}/within", stop.get("within")), (f"/stop/{i}/max", stop.get("max"))]
    for i, budget in enumerate(doc.get("budgets") or ()):
        ptr = f"/budgets/{i}"
        window = budget.get("window", "none")
        if isinstance(window, str) and window != "none":
            durations.append((f"{ptr}/window", window))
        elif isinstance(window, dict):
            _check_zone(window.get("timezone", "UTC"), f"{ptr}/window/timezone", rep)
        if budget["scope"] == "call" and window != "none":
            rep.add(
                "warning",
                f"{ptr}/window",
                f"budget '{budget['id']}' has scope call: each call has its own counter, so its window has no effect",
                "call-window",
            )
        if budget.get("mode", doc.get("mode", "enforce")) == "off":
            rep.add("warning", ptr, f"budget '{budget['id']}' is off: it counts nothing", "unused-budget")
    for ptr, value in durations:
        if isinstance(value, str) and parse_duration(value) <= 0:
            rep.add("error", ptr, f"expected a duration > 0, got '{value}'", "zero-duration")


def _check_zone(name: str, ptr: str, rep: _Report) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = _close(name, available_timezones())
        rep.add(
            "error",
            ptr,
            f"unknown time zone '{name}' (expected an IANA name such as Europe/Berlin)",
            "timezone",
            f"did you mean '{close}'?" if close else "",
        )


def _check_alerts(doc: dict[str, Any], rep: _Report) -> None:
    """Alert rules name sinks, budgets and stop conditions that exist, and each id once."""
    alerts = doc.get("alerts") or {}
    sinks = alerts.get("sinks") or {}
    known = {"budgets": {b["id"] for b in doc.get("budgets") or ()}, "stops": {s["id"] for s in doc.get("stop") or ()}}
    seen: set[str] = set()
    for i, rule in enumerate(alerts.get("rules") or ()):
        ptr = f"/alerts/rules/{i}"
        if rule["id"] in seen:
            rep.add("error", f"{ptr}/id", f"duplicate alert rule id {rule['id']!r}", "duplicate-id")
        seen.add(rule["id"])
        for j, name in enumerate(rule["to"]):
            if name not in sinks:
                close = _close(name, sinks)
                rep.add(
                    "error",
                    f"{ptr}/to/{j}",
                    f"alert rule {rule['id']} sends to unknown sink {name!r}",
                    "unknown-sink",
                    f"did you mean '{close}'?" if close else "define it under alerts.sinks",
                )
        for key, on in (("budgets", "budget"), ("stops", "stop")):
            for j, ref in enumerate(rule.get(key) or ()):
                if ref not in known[key]:
                    close = _close(ref, known[key])
                    rep.add(
                        "error",
                        f"{ptr}/{key}/{j}",
                        f"alert rule {rule['id']} watches unknown {on} {ref!r}",
                        "unknown-rule",
                        f"did you mean '{close}'?" if close else "",
                    )
            if rule.get(key) and rule["on"] != on:
                rep.add(
                    "warning", f"{ptr}/{key}", f"'{key}' is read only by rules with on: {on}", "unused-key", key=True
                )
        if "thresholds" in rule and rule["on"] != "budget":
            rep.add(
                "warning",
                f"{ptr}/thresholds",
                "'thresholds' is read only by rules with on: budget",
                "unused-key",
                key=True,
            )


def check_semantics(doc: dict[str, Any], smap: SourceMap, file: str) -> tuple[list[Finding], list[Finding]]:
    """(errors, warnings) of a schema-valid merged document."""
    rep = _Report(smap, file)
    _check_ids(doc, rep)
    _check_conditions(doc, rep)
    _check_times(doc, rep)
    _check_routes(doc, rep)
    _check_models(doc, rep)
    _check_alerts(doc, rep)
    _check_ledger(doc, rep)
    return rep.errors, rep.warnings


def _check_ledger(doc: dict[str, Any], rep: _Report) -> None:
    """Every ``${VAR}`` in the ledger settings is set (or has a default) now."""
    ledger = doc.get("ledger") or {}
    for key in ENV_FIELDS:
        value = ledger.get(key)
        if isinstance(value, str):
            problem = env_problems(value)
            if problem is not None:
                rep.add("error", f"/ledger/{key}", problem, "unset-env")
