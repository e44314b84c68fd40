"""Compile a validated policy document into the frozen values of ``model.py``.

Runs after the schema and semantic checks passed, so it may assume the shape
is right. Everything that can be decided once is decided here: aliases are
resolved to concrete models, durations become seconds, windows become
``Window`` values, and every rule gets its effective mode and ``on_error``.
"""

from __future__ import annotations

import copy
from types import MappingProxyType
from typing import Any, Mapping

from governor.ledger.windows import NO_WINDOW, Window, parse_duration
from governor.policy.model import (
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
    return StopCondition(**ctx.base(item, ptr), type=kind, max=max_value, within_s=within)


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


def price_from_spec(model: str, spec: Mapping[str, Any]) -> ModelPrice:
    def rate(key: str) -> float | None:
        value = spec.get(key)
        return None if value is None else float(value) / _PER_MTOK

    return ModelPrice(
        model=model,
        input=float(spec["input_per_mtok"]) / _PER_MTOK,
        output=float(spec["output_per_mtok"]) / _PER_MTOK,
        cache_read=rate("cache_read_per_mtok"),
        cache_write=rate("cache_write_per_mtok"),
        reasoning=rate("reasoning_per_mtok"),
        context_window=None if spec.get("context_window") is None else int(spec["context_window"]),
        max_output_tokens=None if spec.get("max_output_tokens") is None else int(spec["max_output_tokens"]),
        source="policy",
    )


_SECTIONS = (("stop", _stop), ("routes", _route), ("context", _context), ("calls", _call), ("budgets", _budget))


def build_policy(
    doc: Mapping[str, Any],
    smap: SourceMap,
    *,
    file: str,
    revision: Revision,
    source_files: tuple[str, ...] = (),
    warnings: tuple = (),
) -> Policy:
    """The compiled :class:`Policy` of a merged, validated document."""
    ctx = _Ctx(doc, smap, file)
    meta = doc.get("metadata") or {}
    defaults = doc.get("defaults") or {}
    ledger = doc.get("ledger") or {}
    models = doc.get("models") or {}
    groups: dict[str, tuple] = {}
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
        prices=MappingProxyType({m: price_from_spec(m, p) for m, p in (models.get("prices") or {}).items()}),
        stop=groups["stop"],
        routes=groups["routes"],
        context=groups["context"],
        calls=groups["calls"],
        budgets=groups["budgets"],
        document=copy.deepcopy(doc),
        source_files=source_files,
        warnings=tuple(warnings),
    )
