"""Compile a validated policy document into the frozen values of ``model.py``.

Runs after the schema and semantic checks passed, so it may assume the shape
is right. Everything that can be decided once is decided here: aliases are
resolved to concrete models, durations become seconds, windows become
``Window`` values, and every rule gets its effective mode and ``on_error``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from governor.ledger.windows import NO_WINDOW, Window, parse_duration
from governor.policy.model import (
    AlertRule,
    AlertSink,
    AlertsSpec,
    Budget,
    CallCap,
    ContextCap,
    LedgerSpec,
    ModelPrice,
    Policy,
    Revision,
    Route,
    SoftThreshold,
    SourceRef,
    StopCondition,
)
from governor.policy.yamlsrc import SourceMap

_PER_MTOK = 1_000_000.0


class _Ctx:
    def __init__(self, doc: Mapping[str, Any], smap: SourceMap, file: str) -> None:
        self.doc = doc
        self.smap = smap
        self.file = file
        self.mode = doc.get("mode", "enforce")
        self.on_error = doc.get("on_error", "fail_closed")
        self.aliases: dict[str, str] = dict((doc.get("models") or {}).get("aliases") or {})

    def resolve(self, name: str | None) -> str | None:
        return None if name is None else self.aliases.get(name, name)

    def source(self, pointer: str) -> SourceRef:
        loc = self.smap.value(pointer)
        if loc is None:
            return SourceRef(self.file, 0, 0, pointer)
        return SourceRef(loc.file, loc.line, loc.col, pointer)

    def base(self, item: Mapping[str, Any], pointer: str) -> dict[str, Any]:
        return {
            "id": item["id"],
            "mode": item.get("mode", self.mode),
            "match": _plain(item.get("match")),
            "exclude": _plain(item.get("exclude")),
            "source": self.source(pointer),
        }


def _plain(spec: Any) -> Any:
    """A private deep copy of a match spec: plain dicts and lists, as the schema validated them."""
    return copy.deepcopy(spec) if spec else None


def parse_window(spec: Any) -> Window:
    """``none`` | ``"24h"`` | ``{calendar: day|month, timezone: X}`` -> Window."""
    if spec is None or spec == "none":
        return NO_WINDOW
    if isinstance(spec, str):
        return Window(kind="rolling", seconds=parse_duration(spec))
    return Window(kind="calendar", unit=spec["calendar"], tz=spec.get("timezone", "UTC"))


def _stop(ctx: _Ctx, item: Mapping[str, Any], ptr: str) -> StopCondition:
    kind = item["type"]
    raw_max = item["max"]
    max_value = parse_duration(raw_max) if isinstance(raw_max, str) else float(raw_max)
    within = parse_duration(item["within"]) if "within" in item else None
    tool = item.get("tool")
    tools = (tool,) if isinstance(tool, str) else tuple(tool or ())
    return StopCondition(**ctx.base(item, ptr), type=kind, max=max_value, within_s=within, tools=tools)


def _route(ctx: _Ctx, item: Mapping[str, Any], ptr: str) -> Route:
    target = item["to"]
    return Route(
        **ctx.base(item, ptr),
        to=ctx.resolve(target) or target,
        to_alias=target if target in ctx.aliases else None,
        fallbacks=tuple(ctx.resolve(f) or f for f in item.get("fallbacks") or ()),
    )


def _context(ctx: _Ctx, item: Mapping[str, Any], ptr: str) -> ContextCap:
    limit = item["max_input_tokens"]
    action = item["action"]
    keep = item.get("keep_last") if action == "trim" else None  # None: as many of the newest as fit
    keep_last = None if keep is None else int(keep)
    return ContextCap(
        **ctx.base(item, ptr),
        max_input_tokens=None if limit == "window" else int(limit),
        action=action,
        keep_last=keep_last,
        to=ctx.resolve(item.get("to")),
    )


def _call(ctx: _Ctx, item: Mapping[str, Any], ptr: str) -> CallCap:
    cost = item.get("max_cost_usd")
    out = item.get("max_output_tokens")
    return CallCap(
        **ctx.base(item, ptr),
        max_cost_usd=None if cost is None else float(cost),
        max_output_tokens=None if out is None else int(out),
    )


def _budget(ctx: _Ctx, item: Mapping[str, Any], ptr: str) -> Budget:
    limit = item["limit"]
    soft_spec = item.get("soft")
    soft = None
    if soft_spec is not None:
        soft = SoftThreshold(at=float(soft_spec["at"]), action=soft_spec["action"], to=ctx.resolve(soft_spec.get("to")))
    usd = limit.get("usd")
    return Budget(
        **ctx.base(item, ptr),
        scope=item["scope"],
        limit_usd=None if usd is None else float(usd),
        limit_tokens=None if limit.get("tokens") is None else int(limit["tokens"]),
        limit_calls=None if limit.get("calls") is None else int(limit["calls"]),
        window=parse_window(item.get("window", "none")),
        soft=soft,
        on_error=item.get("on_error", ctx.on_error),
    )


_RATE_KEYS = (
    ("input_per_mtok", "input"),
    ("output_per_mtok", "output"),
    ("cache_read_per_mtok", "cache_read"),
    ("cache_write_per_mtok", "cache_write"),
    ("cache_write_1h_per_mtok", "cache_write_1h"),
    ("reasoning_per_mtok", "reasoning"),
)


def _rates(spec: Mapping[str, Any], base: ModelPrice) -> ModelPrice:
    """``base`` with the rates ``spec`` gives (per million tokens) in place of its own; its context
    tiers (``above``) start from those rates."""
    rates: dict[str, Any] = {
        name: float(spec[key]) / _PER_MTOK for key, name in _RATE_KEYS if spec.get(key) is not None
    }
    price = replace(base, **rates)
    above = spec.get("above")
    if above:
        plain = replace(price, above=(), variants={})
        tiers = sorted(((int(t), _rates(r, plain)) for t, r in above.items()), key=lambda t: t[0])
        price = replace(price, above=tuple(tiers))
    return price


def parse_from(value: Any) -> float | None:
    """``from: 2026-07-01`` (UTC when no zone) as epoch seconds."""
    if value is None:
        return None
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def price_from_spec(model: str, spec: Mapping[str, Any], *, index: int | None = None, version: str = "") -> ModelPrice:
    """One ``models.prices`` entry as a :class:`ModelPrice` (every rate, tier, speed and geo)."""
    entry = f"models.prices.{model}" + ("" if index is None else f"[{index}]")
    base = ModelPrice(
        model=model,
        input=float(spec["input_per_mtok"]) / _PER_MTOK,
        output=float(spec["output_per_mtok"]) / _PER_MTOK,
        context_window=None if spec.get("context_window") is None else int(spec["context_window"]),
        max_output_tokens=None if spec.get("max_output_tokens") is None else int(spec["max_output_tokens"]),
        source="policy",
        entry=entry,
        version=version,
        valid_from=parse_from(spec.get("from")),
        geo={str(k).lower(): float(v) for k, v in (spec.get("geo") or {}).items()},
    )
    price = _rates(spec, base)
    variants = {}
    for group in ("service_tiers", "speed"):
        for name, rates in (spec.get(group) or {}).items():
            variants[str(name)] = _rates(rates, replace(price, above=(), variants={}, geo={}))
    return replace(price, variants=variants) if variants else price


def prices_from_spec(model: str, spec: Any, version: str = "") -> ModelPrice | tuple[ModelPrice, ...]:
    """A ``models.prices`` value: one price, or dated prices (a list, each with its ``from``)."""
    if isinstance(spec, Mapping):
        price = price_from_spec(model, spec, version=version)
        return price if price.valid_from is None else (price,)
    return tuple(price_from_spec(model, s, index=i, version=version) for i, s in enumerate(spec))


def _alerts(ctx: _Ctx, spec: Mapping[str, Any] | None) -> AlertsSpec | None:
    if not spec:
        return None
    sinks = {
        name: AlertSink(
            name=name,
            type=item["type"],
            url=item.get("url"),
            url_env=item.get("url_env"),
            headers=MappingProxyType(dict(item.get("headers") or {})),
            timeout_s=parse_duration(item["timeout"]) if "timeout" in item else 5.0,
        )
        for name, item in (spec.get("sinks") or {}).items()
    }
    rules = tuple(
        AlertRule(
            id=item["id"],
            on=item["on"],
            to=tuple(item["to"]),
            budgets=tuple(item.get("budgets") or ()),
            stops=tuple(item.get("stops") or ()),
            thresholds=tuple(sorted({float(t) for t in item.get("thresholds") or (0.8, 1.0)})),
            min_usd=float(item.get("min_usd", 0.0)),
            every_s=parse_duration(item["every"]) if "every" in item else 300.0,
            source=ctx.source(f"/alerts/rules/{i}"),
        )
        for i, item in enumerate(spec.get("rules") or ())
    )
    return AlertsSpec(
        sinks=MappingProxyType(sinks),
        rules=rules,
        queue=int(spec.get("queue", 1000)),
        retries=int(spec.get("retries", 5)),
        backoff_s=parse_duration(spec["backoff"]) if "backoff" in spec else 1.0,
    )


_SECTIONS = (("stop", _stop), ("routes", _route), ("context", _context), ("calls", _call), ("budgets", _budget))


def build_policy(
    doc: Mapping[str, Any],
    smap: SourceMap,
    *,
    file: str,
    revision: Revision,
    source_files: tuple[str, ...] = (),
    warnings: tuple[Any, ...] = (),
) -> Policy:
    """The compiled :class:`Policy` of a merged, validated document."""
    ctx = _Ctx(doc, smap, file)
    meta = doc.get("metadata") or {}
    defaults = doc.get("defaults") or {}
    ledger = doc.get("ledger") or {}
    models = doc.get("models") or {}
    groups: dict[str, tuple[Any, ...]] = {}
    for name, build in _SECTIONS:
        groups[name] = tuple(build(ctx, item, f"/{name}/{i}") for i, item in enumerate(doc.get(name) or ()))
    return Policy(
        name=meta["name"],
        revision=revision,
        source_file=file,
        api_version=doc["apiVersion"],
        description=meta.get("description", ""),
        labels=MappingProxyType(dict(meta.get("labels") or {})),
        mode=ctx.mode,
        on_error=ctx.on_error,
        default_output_tokens=int(defaults.get("output_tokens", 1024)),
        lease_s=parse_duration(defaults["lease"]) if "lease" in defaults else 600.0,
        allow_unpriced=bool(defaults.get("allow_unpriced", False)),
        log_content=bool((doc.get("logging") or {}).get("content", False)),
        ungoverned=str(doc.get("ungoverned", "block")),
        ledger=LedgerSpec(
            type=ledger.get("type", "memory"),
            path=ledger.get("path"),
            url=ledger.get("url"),
            key_prefix=ledger.get("key_prefix", "governor"),
        ),
        aliases=MappingProxyType(dict(ctx.aliases)),
        prices=MappingProxyType(
            {m: prices_from_spec(m, p, f"policy {revision}") for m, p in (models.get("prices") or {}).items()}
        ),
        stop=groups["stop"],
        routes=groups["routes"],
        context=groups["context"],
        calls=groups["calls"],
        budgets=groups["budgets"],
        alerts=_alerts(ctx, doc.get("alerts")),
        document=copy.deepcopy(doc),
        source_files=source_files,
        warnings=tuple(warnings),
    )
