"""Prices per call, with provenance: policy overrides, litellm's bundled table, genai-prices.

A :class:`PriceTable` is built once per policy load. ``lookup(model)`` gives a
model's standard rates (reservations, context windows) and is a dict hit
after the first call for a name; ``quote(model, usage, at=...)`` prices one
finished call in full and says where its price came from (:class:`Quote`).

Where a price comes from, in order (docs/pricing.md):

1. **The policy** (``models.prices``): every rate, context tier, service tier,
   speed and geo can be overridden, and dated entries (``from: 2026-07-01``)
   apply from their date; a call before a model's first dated entry falls
   through to the tables.
2. **genai-prices** where it serves better, measured on recorded costs: for a
   call made before the latest dated price change genai-prices knows for the
   model (litellm keeps only today's price), for Anthropic fast mode
   (``speed: fast``: litellm has no rate for it), and for models litellm does
   not price.
3. **litellm's bundled table**, read in full: 5-minute and 1-hour cache
   writes (``cache_creation_input_token_cost_above_1hr``), context tiers
   (``*_above_200k_tokens``, ``*_above_272k_tokens``...), service tiers
   (``*_flex``, ``*_priority``, ``*_batches``) and data residency
   (``provider_specific_entry``).

Model names are found as litellm finds them: exact, then without a provider
prefix (``openai/gpt-4.1``), then a fine-tuned name at its fine-tune rates
(``ft:gpt-4.1-2025-04-14:org:name:id`` -> ``ft:gpt-4.1-2025-04-14``), then a
dated snapshot at its undated entry (``claude-x-20260101`` -> ``claude-x``).
A name no source prices is unpriced: ``None``, never $0.

Token accounting (normalised, as ``governor.integrations.usage``):
``input_tokens`` includes cached tokens; ``cache_read_tokens`` and
``cache_write_tokens`` are parts of it, ``cache_write_1h_tokens`` the 1-hour
part of the writes; ``reasoning_tokens`` is part of ``output_tokens``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from governor.policy.model import ModelPrice

_PER_MTOK = 1_000_000.0

# litellm's field suffixes for service tiers, and the names usage reports them by
_TIER_SUFFIX = {"flex": "_flex", "priority": "_priority", "batch": "_batches"}
_TIER_ALIASES = {"batches": "batch", "scale": "priority"}
_ABOVE = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")
_DATED = re.compile(r"^(.+?)(?:[-@]\d{8}|-\d{4}-\d{2}-\d{2}|-latest)$")


def tier_name(value: str | None) -> str | None:
    """A service tier as the price table names it (``batches`` -> ``batch``); None for standard."""
    if not value:
        return None
    low = value.lower()
    if low in ("default", "standard", "auto", "standard_only"):
        return None
    return _TIER_ALIASES.get(low, low)


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """The price of one call and where it came from."""

    usd: float
    """The call's cost in USD."""
    source: str
    """``policy``, ``litellm`` or ``genai-prices``."""
    entry: str
    """The entry that priced it (table key, or ``models.prices.<name>``)."""
    version: str
    """The version of the table (or the policy revision) the price was read from."""
    notes: tuple[str, ...] = ()
    """What shaped the price (context tier, service tier, speed, geo) or could not be priced apart."""


# -- litellm -------------------------------------------------------------------------


def _f(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rates_from_litellm(
    model: str, entry: Mapping[str, Any], suffix: str, key: str, version: str, above: str = ""
) -> ModelPrice | None:
    def rate(name: str) -> float | None:
        return _f(entry, f"{name}{above}{suffix}")

    inp = rate("input_cost_per_token")
    out = rate("output_cost_per_token")
    if inp is None or out is None:
        return None
    w1 = _f(entry, f"cache_creation_input_token_cost_above_1hr{above}{suffix}")
    if w1 is None and not suffix:
        w1 = _f(entry, f"cache_creation_input_token_cost_above_1hr{above}")
    return ModelPrice(
        model=model,
        input=inp,
        output=out,
        cache_read=rate("cache_read_input_token_cost"),
        cache_write=rate("cache_creation_input_token_cost"),
        reasoning=rate("output_cost_per_reasoning_token") if not above else None,
        cache_write_1h=w1,
        context_window=None if above or suffix else _opt_int(entry.get("max_input_tokens")),
        max_output_tokens=None if above or suffix else _opt_int(entry.get("max_output_tokens")),
        source="litellm",
        entry=key,
        version=version,
    )


def _with_tiers(model: str, entry: Mapping[str, Any], suffix: str, key: str, version: str) -> ModelPrice | None:
    base = _rates_from_litellm(model, entry, suffix, key, version)
    if base is None:
        return None
    tiers = []
    for field_name in entry:
        m = _ABOVE.match(field_name)
        if m:
            tier = _rates_from_litellm(model, entry, suffix, key, version, f"_above_{m.group(1)}k_tokens")
            if tier is not None:
                tiers.append((int(m.group(1)) * 1000, tier))
    return replace(base, above=tuple(sorted(tiers, key=lambda t: t[0]))) if tiers else base


def price_from_litellm(model: str, entry: Mapping[str, Any], key: str = "", version: str = "") -> ModelPrice | None:
    """litellm's table entry as a :class:`ModelPrice`, read in full (tiers, TTLs, service tiers, geo)."""
    key = key or model
    base = _with_tiers(model, entry, "", key, version)
    if base is None:
        return None
    variants = {}
    for tier, suffix in _TIER_SUFFIX.items():
        v = _with_tiers(model, entry, suffix, key, version)
        if v is not None:
            # a tier's entry that omits cache rates keeps the standard ones scaled like its input rate
            if v.cache_read is None and base.cache_read is not None and base.input:
                v = replace(v, cache_read=base.cache_read * v.input / base.input)
            variants[tier] = v
    geo_entry = entry.get("provider_specific_entry")
    geo = (
        {
            str(k).lower(): float(v)
            for k, v in geo_entry.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if isinstance(geo_entry, Mapping)
        else {}
    )
    return replace(base, variants=variants, geo=geo)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def litellm_version() -> str:
    try:
        from importlib.metadata import version

        return f"litellm {version('litellm')}"
    except Exception:  # pragma: no cover - litellm is a dependency
        return "litellm"


def find_entry(table: Mapping[str, Any], model: str) -> str | None:
    """The key under which litellm's table prices ``model``, found as litellm finds it; None if none."""
    if model in table:
        return model
    if "/" in model:
        # "openai/gpt-4.1" -> "gpt-4.1" when the table files it under that provider
        provider, _, bare = model.partition("/")
        entry = table.get(bare)
        if isinstance(entry, Mapping) and str(entry.get("litellm_provider", "")).startswith(provider):
            return bare
        found = find_entry(table, bare) if bare else None
        if found is not None:
            entry = table[found]
            if str(entry.get("litellm_provider", "")).startswith(provider) or provider in ("litellm_proxy",):
                return found
    if model.startswith("ft:"):
        # ft:<base>:<org>:<name>:<id> is priced at the base model's fine-tune rates (ft:<base>)
        base = model[3:].split(":", 1)[0]
        if f"ft:{base}" in table:
            return f"ft:{base}"
        dated = sorted(k for k in table if k.startswith(f"ft:{base}-") and _DATED.match(k[3:]))
        return dated[-1] if dated else None
    m = _DATED.match(model)
    if m and m.group(1) in table:
        return m.group(1)
    return None


# -- genai-prices ----------------------------------------------------------------------


class _GenAI:
    """genai-prices, imported on first use (a policy priced by litellm never imports it)."""

    def __init__(self) -> None:
        self._mod: Any = None
        self.version = ""
        self._models: dict[str, Any] = {}

    def _load(self) -> Any:
        if self._mod is None:
            import genai_prices

            self._mod = genai_prices
            self.version = f"genai-prices {genai_prices.__version__}"
        return self._mod

    def available(self) -> bool:
        try:
            self._load()
        except ImportError:
            return False
        return True

    def model(self, name: str) -> Any:
        """(provider, model info) for ``name``, or None."""
        try:
            return self._models[name]
        except KeyError:
            pass
        found = None
        try:
            gp = self._load()
            provider_id = None
            bare = name
            if "/" in name:
                provider_id, _, bare = name.partition("/")
                provider_id = {"xai": "x-ai", "gemini": "google", "vertex_ai": "google", "bedrock": "aws"}.get(
                    provider_id, provider_id
                )
            snap = gp.data_snapshot.get_snapshot()
            try:
                found = snap.find_provider_model(bare, None, provider_id, None)
            except LookupError:
                found = snap.find_provider_model(bare, None, None, None) if provider_id else None
        except (ImportError, LookupError, ValueError):
            found = None
        self._models[name] = found
        return found

    def last_change(self, name: str) -> float | None:
        """Epoch seconds of the latest dated price change genai-prices knows for ``name`` (None if undated)."""
        found = self.model(name)
        if found is None:
            return None
        prices = found[1].prices
        latest = None
        if isinstance(prices, list):
            for cp in prices:
                start = getattr(getattr(cp, "constraint", None), "start_date", None)
                if start is not None:
                    ts = datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp()
                    latest = ts if latest is None or ts > latest else latest
        return latest

    def has_speed(self, name: str, speed: str) -> bool:
        found = self.model(name)
        variants = getattr(found[1], "price_variants", None) if found is not None else None
        return any(getattr(v, "when", {}).get("speed") == speed for v in variants or ())

    def quote(self, name: str, u: CallUsage, at: float | None) -> Quote | None:
        found = self.model(name)
        if found is None:
            return None
        gp = self._load()
        provider, info = found
        w1 = u.cache_write_1h_tokens
        usage = gp.Usage(
            input_tokens=u.input_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            cache_write_1h_tokens=w1,
            cache_write_5m_tokens=u.cache_write_tokens - w1,
            output_tokens=u.output_tokens,
        )
        context: dict[str, str] = {}
        if u.speed:
            context["speed"] = u.speed
        tier = tier_name(u.service_tier)
        if tier == "batch":
            context["processing"] = "batch"
        elif tier:
            context["service_tier"] = tier
        when = datetime.fromtimestamp(at, tz=timezone.utc) if at is not None else None
        try:
            calc = info.calc_price(
                usage,
                provider,
                genai_request_timestamp=when or datetime.now(tz=timezone.utc),
                auto_update_timestamp=None,
                price_context=context or None,
            )
        except (ValueError, TypeError, KeyError):
            return None
        notes = []
        if context:
            notes.append(", ".join(f"{k} {v}" for k, v in context.items()))
        return Quote(
            usd=float(calc.total_price),
            source="genai-prices",
            entry=f"{provider.id}/{info.id}",
            version=self.version,
            notes=tuple(notes),
        )


_GENAI = _GenAI()


# -- the resolver ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CallUsage:
    """What a call's price depends on, in the normal form (see the module docstring)."""

    input_tokens: int
    """All input tokens, cached ones included."""
    output_tokens: int
    """All output tokens, reasoning included."""
    cache_read_tokens: int = 0
    """Part of the input read from the cache."""
    cache_write_tokens: int = 0
    """Part of the input written to the cache (5-minute and 1-hour)."""
    cache_write_1h_tokens: int = 0
    """Part of the cache writes with the 1-hour TTL."""
    reasoning_tokens: int = 0
    """Part of the output spent on reasoning."""
    service_tier: str | None = None
    """``flex``, ``priority``, ``batch`` (None: standard)."""
    speed: str | None = None
    """``fast`` for Anthropic's fast mode (None: standard)."""
    inference_geo: str | None = None
    """Data-residency region (None: global)."""


def _tiered(price: ModelPrice, input_tokens: int) -> tuple[ModelPrice, int | None]:
    chosen, threshold = price, None
    for at, tier in price.above:
        if input_tokens > at:
            chosen, threshold = tier, at
    return chosen, threshold


def call_cost(
    price: ModelPrice,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
) -> float:
    """USD cost of one call at ``price``'s rates: C = p_in*T_in + p_out*T_out (+ cache and reasoning rates).

    A context tier (``price.above``) applies to every token of a call whose
    input exceeds its threshold. Service tier, speed and geo are chosen by
    :meth:`PriceTable.quote`.
    """
    if price.above:
        price, _ = _tiered(price, input_tokens)
    if not (cache_read_tokens or cache_write_tokens or reasoning_tokens) and input_tokens >= 0 and output_tokens >= 0:
        return input_tokens * price.input + output_tokens * price.output
    cr = price.cache_read if price.cache_read is not None else price.input
    cw = price.cache_write if price.cache_write is not None else price.input
    cw1 = price.cache_write_1h if price.cache_write_1h is not None else cw
    rr = price.reasoning if price.reasoning is not None else price.output
    w1 = min(cache_write_1h_tokens, cache_write_tokens)
    plain_in = max(input_tokens - cache_read_tokens - cache_write_tokens, 0)
    plain_out = max(output_tokens - reasoning_tokens, 0)
    return (
        plain_in * price.input
        + cache_read_tokens * cr
        + (cache_write_tokens - w1) * cw
        + w1 * cw1
        + plain_out * price.output
        + reasoning_tokens * rr
    )


class PriceTable:
    """Model name -> prices, with policy overrides winning (see the module docstring for the order).

    ``overrides`` maps a model name to its policy price, or to a sequence of
    dated policy prices (``valid_from`` ascending). ``table`` defaults to
    litellm's bundled table (read on the first lookup the overrides do not
    answer). ``genai=False`` never consults genai-prices.
    """

    def __init__(
        self,
        overrides: Mapping[str, ModelPrice | Sequence[ModelPrice]] | None = None,
        table: Mapping[str, Any] | None = None,
        *,
        genai: bool = True,
        policy_version: str = "",
        table_version: str = "",
        genai_dates: dict[str, float | None] | None = None,
    ) -> None:
        self._schedules: dict[str, tuple[ModelPrice, ...]] = {}
        current: dict[str, ModelPrice] = {}
        for name, value in (overrides or {}).items():
            entries = (value,) if isinstance(value, ModelPrice) else tuple(value)
            entries = tuple(sorted(entries, key=lambda p: p.valid_from or float("-inf")))
            if policy_version:
                entries = tuple(replace(p, version=p.version or policy_version) for p in entries)
            self._schedules[name] = entries
            if entries and entries[0].valid_from is None:
                current[name] = entries[-1] if len(entries) == 1 else entries[0]
        self._overrides = current
        self._dated = frozenset(m for m, e in self._schedules.items() if any(p.valid_from is not None for p in e))
        self._table = table
        self._genai = genai
        self._cache: dict[str, ModelPrice | None] = {}
        self._genai_quoted: set[str] = set()  # genai-prices models with tiered rates: priced by genai-prices
        self._lock = threading.Lock()
        self._version = table_version  # "litellm <version>" of ``table`` (empty: read when first needed)
        # model -> genai-prices' latest dated change (None: undated or unknown), filled as models are priced;
        # a caller that keeps it between processes (governor hook) spares them importing genai-prices
        self._dates: dict[str, float | None] = {} if genai_dates is None else genai_dates
        import time

        # a call older than this (replayed history) is priced with its date in mind (quote)
        self._recent = time.time() - 86400.0

    def _litellm_table(self) -> Mapping[str, Any]:
        if self._table is None:
            # litellm's bundled price file, read without importing litellm (~3 s)
            from governor.policy.bundled_prices import litellm_price_table

            self._table = litellm_price_table()
        return self._table

    @property
    def litellm_version(self) -> str:
        if not self._version:
            self._version = litellm_version()
        return self._version

    def lookup(self, model: str) -> ModelPrice | None:
        """The standard price of ``model`` now, or None when no source knows it."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        price = self._resolve(model)
        with self._lock:
            self._cache[model] = price
        return price

    def _resolve(self, model: str) -> ModelPrice | None:
        schedule = self._schedules.get(model)
        if schedule:
            import time

            now = time.time()
            live = [p for p in schedule if p.valid_from is None or p.valid_from <= now]
            if live:
                return live[-1]
        table = self._litellm_table()
        key = find_entry(table, model)
        if key is not None:
            price = price_from_litellm(model, table[key], key, self.litellm_version)
            if price is not None:
                return price
        price = self._genai_price(model)
        if price is None and schedule:
            return schedule[0]  # priced by the policy from a later date only: its first dated price
        return price

    def _genai_price(self, model: str) -> ModelPrice | None:
        """genai-prices' current rates for a model litellm does not price, compiled like litellm's.

        A model whose genai-prices rates are tiered by prompt length is priced per call by
        genai-prices itself (``quote``); its compiled rates are the base tier's, for reservations.
        """
        if not self._genai or not _GENAI.available():
            return None
        found = _GENAI.model(model)
        if found is None:
            return None
        provider, info = found
        try:
            rates = info.get_prices(datetime.now(tz=timezone.utc))
        except (ValueError, TypeError, LookupError):
            return None
        tiered = False

        def rate(name: str) -> float | None:
            nonlocal tiered
            value = getattr(rates, name, None)
            if value is None:
                return None
            if hasattr(value, "base"):  # TieredPrices
                tiered = True
                value = value.base
            return float(value) / _PER_MTOK

        inp, out = rate("input_mtok"), rate("output_mtok")
        if inp is None or out is None:
            return None
        if tiered:
            self._genai_quoted.add(model)
        return ModelPrice(
            model=model,
            input=inp,
            output=out,
            cache_read=rate("cache_read_mtok"),
            cache_write=rate("cache_write_mtok"),
            cache_write_1h=rate("cache_write_1h_mtok"),
            context_window=getattr(info, "context_window", None),
            source="genai-prices",
            entry=f"{provider.id}/{info.id}",
            version=_GENAI.version,
        )

    def known(self, model: str) -> bool:
        return self.lookup(model) is not None

    def _policy_at(self, model: str, at: float | None) -> ModelPrice | None:
        schedule = self._schedules.get(model)
        if not schedule:
            return None
        if len(schedule) == 1 and schedule[0].valid_from is None:
            return schedule[0]
        if at is None:
            import time

            at = time.time()
        live = [p for p in schedule if p.valid_from is None or p.valid_from <= at]
        return live[-1] if live else None

    def cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        service_tier: str | None = None,
        speed: str | None = None,
        inference_geo: str | None = None,
        at: float | None = None,
    ) -> float | None:
        """USD cost of one call (None: unpriced): the engine's per-call path.

        A standard call made now (within a day of the table's load) of a model
        without dated policy prices is priced from the compiled rates (a dict
        hit and the arithmetic); any other call goes through :meth:`quote`.
        """
        if (
            not (service_tier or speed or inference_geo)
            and model not in self._dated
            and (at is None or at >= self._recent)
        ):
            price = self.lookup(model)
            if price is None:
                return None
            if price.source != "genai-prices" or model not in self._genai_quoted:
                return call_cost(
                    price,
                    input_tokens,
                    output_tokens,
                    cache_read_tokens,
                    cache_write_tokens,
                    reasoning_tokens,
                    cache_write_1h_tokens,
                )
        q = self.quote(
            model,
            CallUsage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read_tokens,
                cache_write_tokens=cache_write_tokens,
                cache_write_1h_tokens=cache_write_1h_tokens,
                reasoning_tokens=reasoning_tokens,
                service_tier=service_tier,
                speed=speed,
                inference_geo=inference_geo,
            ),
            at,
        )
        return None if q is None else q.usd

    def quote(self, model: str, usage: CallUsage, at: float | None = None) -> Quote | None:
        """The full price of one call of ``model`` made at ``at`` (epoch seconds; None: now); None if unpriced."""
        policy = self._policy_at(model, at)
        if policy is not None:
            return _apply(policy, usage, "policy")
        base = self.lookup(model)
        if base is not None and base.source == "policy":
            base = None  # a dated policy price that starts after this call: the tables price it
            table = self._litellm_table()
            key = find_entry(table, model)
            if key is not None:
                base = price_from_litellm(model, table[key], key, self.litellm_version)
        if self._genai and base is not None and base.source == "litellm" and self._genai_serves(model, usage, at):
            q = _GENAI.quote(model, usage, at)
            if q is not None:
                return q
        if base is None:
            return _GENAI.quote(model, usage, at) if self._genai and _GENAI.available() else None
        if base.source == "genai-prices" and (
            model in self._genai_quoted or usage.speed or usage.service_tier or (at is not None and at < self._recent)
        ):
            return _GENAI.quote(model, usage, at)  # its variants, tiers and dated history
        return _apply(base, usage, base.source)

    def _genai_serves(self, model: str, usage: CallUsage, at: float | None) -> bool:
        """genai-prices prices this call better than litellm: it predates a dated change, or it is fast mode."""
        if usage.speed and usage.speed != "standard":
            return _GENAI.available() and _GENAI.has_speed(model, usage.speed)
        if at is not None:
            change = self._last_change(model)
            return change is not None and at < change
        return False

    def _last_change(self, model: str) -> float | None:
        """genai-prices' latest dated price change for ``model`` (kept in ``genai_dates``), None if none."""
        try:
            return self._dates[model]
        except KeyError:
            pass
        change = _GENAI.last_change(model) if _GENAI.available() else None
        self._dates[model] = change
        return change


_PER_MTOK_INT = 1_000_000


def _apply(price: ModelPrice, u: CallUsage, source: str) -> Quote:
    notes: list[str] = []
    geo, entry, version = price.geo, price.entry or price.model, price.version  # the model's, not a variant's
    tier = tier_name(u.service_tier)
    if tier:
        variant = price.variants.get(tier)
        if variant is not None:
            price = variant
            notes.append(f"service tier {tier}")
        else:
            notes.append(f"service tier {tier}: no rate in {price.entry or price.model}, standard rate used")
    if u.speed and u.speed != "standard":
        variant = price.variants.get(u.speed)
        if variant is not None:
            price = variant
            notes.append(f"speed {u.speed}")
        else:
            notes.append(f"speed {u.speed}: no rate in {price.entry or price.model}, standard rate used")
    tiered, threshold = _tiered(price, u.input_tokens)
    if threshold is not None:
        notes.append(f"context tier above {threshold:,} input tokens")
    if u.cache_write_1h_tokens and tiered.cache_write_1h is None:
        notes.append("no 1-hour cache-write rate: 5-minute rate used")
    usd = call_cost(
        tiered,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        u.cache_write_1h_tokens,
    )
    if u.inference_geo:
        factor = geo.get(u.inference_geo.lower())
        if factor is not None:
            usd *= factor
            notes.append(f"inference geo {u.inference_geo} x{factor:g}")
    return Quote(usd=usd, source=source, entry=entry, version=version, notes=tuple(notes))
