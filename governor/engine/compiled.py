"""A policy compiled once per load into what the per-call path reads.

* every rule's ``match``/``exclude`` becomes a static and a dynamic closure
  (:mod:`governor.engine.match`); the static results of all rules are cached per
  (model, metadata fingerprint) in a bounded dict as a :class:`View`: the
  rules of each kind whose static part holds, in policy order;
* prices come from :class:`governor.pricing.PriceTable` (policy overrides,
  then litellm's bundled table), resolved once per model;
* budget counters are built once per (budget, scope value) and reused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from governor.engine.generations import Generations
from governor.engine.match import CallContext, Pred, compile_rule_match, referenced_metadata_keys, uses_run_state
from governor.ledger.base import Counter, Limit, usd_to_nano
from governor.policy.model import Budget, ModelPrice, Policy, RuleBase
from governor.pricing import PriceTable

VIEW_CACHE_MAX = 4096  # per generation (governor.engine.generations)
PLAN_CACHE_MAX = 8192  # budget plans per generation, over all views; twice MAX_LANES
COUNTER_CACHE_MAX = 65536
REASON_CACHE_MAX = 256  # per route: requested models whose reroute reason is kept
NONE_VALUE = "(none)"  # scope value of a call that has no value for a budget's scope key
TAIL_STOPS = frozenset({"no_progress", "max_tool_calls"})  # stops that read a call's tail (engine.progress)


class CompiledRule:
    """One rule with its compiled matchers. ``rule`` is the policy-model object."""

    __slots__ = (
        "id",
        "mode",
        "static",
        "dynamic",
        "rule",
        "audit",
        "counts_matched",
        "kind",
        "max",
        "within",
        "tools",
        "_reasons",
    )

    def __init__(self, rule: RuleBase) -> None:
        self.id = rule.id
        self.mode = rule.mode
        self.audit = rule.mode == "audit"
        self.rule: Any = rule
        self.static, self.dynamic = compile_rule_match(rule.match, rule.exclude)
        # stop conditions: what the engine compares on every check, without reaching into the rule
        self.kind: str | None = getattr(rule, "type", None)
        self.max: float = getattr(rule, "max", 0.0) or 0.0
        self.within: float = getattr(rule, "within_s", None) or 600.0
        self.tools: tuple[str, ...] = getattr(rule, "tools", ())  # max_tool_calls
        # a max_calls stop with a match counts only the calls that match it
        self.counts_matched = self.kind == "max_calls" and (self.static is not None or self.dynamic is not None)
        self._reasons: dict[str, str] = {}  # a route's reason, by requested model

    def route_reason(self, model: str) -> str:
        """Why this route sends ``model`` elsewhere (worded once per requested model)."""
        text = self._reasons.get(model)
        if text is None:
            text = f"route {self.id}: {model} -> {self.rule.to}"
            if len(self._reasons) < REASON_CACHE_MAX:
                self._reasons[model] = text
        return text

    def holds(self, ctx: CallContext) -> bool:
        """The dynamic part (the static part was checked by the view)."""
        return self.dynamic is None or self.dynamic(ctx)

    def holds_fully(self, ctx: CallContext) -> bool:
        return (self.static is None or self.static(ctx)) and (self.dynamic is None or self.dynamic(ctx))


class CompiledBudget(CompiledRule):
    __slots__ = ("limit", "window", "scope", "_counters", "has_usd", "fail_open")

    def __init__(self, budget: Budget) -> None:
        super().__init__(budget)
        self.limit = Limit(
            usd_nano=None if budget.limit_usd is None else usd_to_nano(budget.limit_usd),
            tokens=budget.limit_tokens,
            calls=budget.limit_calls,
        )
        self.window = budget.window
        self.scope = budget.scope
        self.has_usd = budget.limit_usd is not None
        self.fail_open = budget.on_error == "fail_open"
        self._counters: dict[str, Counter] = {}

    def counter(self, value: str) -> Counter:
        c = self._counters.get(value)
        if c is None:
            if len(self._counters) >= COUNTER_CACHE_MAX:
                self._counters.clear()
            key = f"{self.id}|global" if self.scope == "global" else f"{self.id}|{self.scope}={value}"
            c = self._counters[value] = Counter(key, self.id, self.limit, self.window)
        return c

    def counters_for(self, metadata: Mapping[str, Any], run_chain: Sequence[str]) -> list[Counter]:
        """The counters one call charges: one per scope value (run chain, tags)."""
        scope = self.scope
        if scope == "global":
            return [self.counter("")]
        if scope == "run":
            return [self.counter(r) for r in run_chain] if run_chain else [self.counter(NONE_VALUE)]
        if scope == "tag":
            tags = metadata.get("tags")
            if isinstance(tags, str):
                tags = [tags]
            return [self.counter(str(t)) for t in dict.fromkeys(tags)] if tags else [self.counter(NONE_VALUE)]
        key = scope[9:] if scope.startswith("metadata.") else scope
        value = metadata.get(key)
        return [self.counter(NONE_VALUE if value is None else str(value))]


class View:
    """The rules of each kind whose static part holds for one (model, metadata)."""

    __slots__ = (
        "model",
        "stops",
        "routes",
        "context",
        "calls",
        "budgets",
        "repeat",
        "tails",
        "static_budgets",
        "ctx_floor",
        "out_floor",
        "cost_floor",
        "stop_floors",
    )

    def __init__(
        self,
        model: str,
        stops: tuple[CompiledRule, ...],
        routes: tuple[CompiledRule, ...],
        context: tuple[CompiledRule, ...],
        calls: tuple[CompiledRule, ...],
        budgets: tuple[CompiledBudget, ...],
        context_window: int | None = None,
    ) -> None:
        self.model = model
        # Below these, a stage can do nothing whatever the per-call conditions say, so the engine
        # skips it: every context cap acts only on input above its limit (-1: a cap's limit is the
        # unknown context window, which warns); a call cap only clamps max_tokens above its
        # max_output_tokens (or unset) and only blocks a worst case above its max_cost_usd.
        limits = [
            c.rule.max_input_tokens
            if c.rule.max_input_tokens is not None
            else context_window
            if context_window is not None
            else -1
            for c in context
        ]
        self.ctx_floor: float = min(limits, default=math.inf)
        self.out_floor: float = min(
            (c.rule.max_output_tokens for c in calls if c.rule.max_output_tokens is not None), default=math.inf
        )
        self.cost_floor: float = min(
            (c.rule.max_cost_usd for c in calls if c.rule.max_cost_usd is not None), default=math.inf
        )
        self.stops = stops
        self.repeat = any(s.kind == "repeated_call" for s in stops)  # needs a call fingerprint
        self.tails = any(s.kind in TAIL_STOPS for s in stops)  # needs each call's tail (engine.progress)
        self.stop_floors = _stop_floors(stops)
        self.static_budgets = all(b.dynamic is None for b in budgets)  # budget plans can be cached
        self.routes = routes
        self.context = context
        self.calls = calls
        self.budgets = budgets


def _stop_floors(stops: Sequence[CompiledRule]) -> tuple[float, float, float, bool] | None:
    """Below these no stop of the view can fire, whatever its match says: (calls, consecutive
    errors, seconds of wall time, "a repeated call is possible"). A run under all of them
    (and, with a repeated_call stop, whose call fingerprint it has not seen) skips the
    per-stop loop. None when the loop must always run: a max_calls stop that counts only
    the calls it matches (admission must know which), repeated_call with max <= 1, or a stop
    that reads what the call adds to its run (no_progress, max_tool_calls)."""
    calls = errors = wall = math.inf
    repeat = False
    for s in stops:
        if s.counts_matched or (s.kind == "repeated_call" and s.max <= 1) or s.kind in TAIL_STOPS:
            return None
        if s.kind == "max_calls":
            calls = min(calls, s.max)
        elif s.kind == "consecutive_errors":
            errors = min(errors, s.max)
        elif s.kind == "repeated_call":
            repeat = True
        else:
            wall = min(wall, s.max)
    return calls, errors, wall, repeat


def _live(rules: Sequence[RuleBase], make: Callable[[Any], Any] = CompiledRule) -> tuple[Any, ...]:
    return tuple(make(r) for r in rules if r.mode != "off")


class CompiledPolicy:
    """Everything the per-call path needs for one policy revision."""

    def __init__(self, policy: Policy, prices: PriceTable | None = None) -> None:
        self.policy = policy
        self.revision = str(policy.revision)
        self.name = policy.name
        self.prices = prices or PriceTable(policy.prices)
        self.stops = _live(policy.stop)
        self.routes = _live(policy.routes)
        self.context = _live(policy.context)
        self.calls = _live(policy.calls)
        self.budgets: tuple[CompiledBudget, ...] = _live(policy.budgets, CompiledBudget)
        keys: set[str] = set()
        for group in (self.stops, self.routes, self.context, self.calls, self.budgets):
            for r in group:
                keys |= referenced_metadata_keys(r.rule.match) | referenced_metadata_keys(r.rule.exclude)
        self.meta_keys: tuple[str, ...] = tuple(sorted(keys))
        scope_keys = {
            "tags" if b.scope == "tag" else b.scope[9:] if b.scope.startswith("metadata.") else b.scope
            for b in self.budgets
            if b.scope not in ("run", "global", "call")
        }
        self.scope_keys: tuple[str, ...] = tuple(sorted(scope_keys))
        self.fp_ttl = max((s.rule.within_s or 0.0 for s in self.stops if s.rule.type == "repeated_call"), default=600.0)
        self.has_repeat = any(s.rule.type == "repeated_call" for s in self.stops)
        # run state is kept only when something reads it: stop conditions or run_* match conditions
        self.reads_runs = any(  # some match reads run_calls / run_cost_usd / run_errors
            uses_run_state(r.rule.match) or uses_run_state(r.rule.exclude)
            for group in (self.stops, self.routes, self.context, self.calls, self.budgets)
            for r in group
        )
        self.needs_runs = bool(self.stops) or self.reads_runs
        self.default_output_tokens = policy.default_output_tokens
        self.lease_s = policy.lease_s
        self.allow_unpriced = policy.allow_unpriced
        self.fail_open = policy.on_error == "fail_open"
        # (model, fingerprint) -> View, and (view, (scope values, run chain)) -> budget Plan
        # (budgets.cached_plan)
        self.views: Generations[tuple[Any, ...], View] = Generations(VIEW_CACHE_MAX)
        self.plans: Generations[tuple[Any, ...], Any] = Generations(PLAN_CACHE_MAX)
        self._rates: dict[str, tuple[float, float] | None] = {}
        self.price: Callable[[str], ModelPrice | None] = self.prices.lookup  # a model's price, or None

    # -- static matching ---------------------------------------------------------
    def fingerprint(self, metadata: Mapping[str, Any]) -> tuple[Any, ...]:
        """The values of the metadata keys any static matcher reads (hashable)."""
        return _hashable_values(metadata, self.meta_keys, _match_value) if self.meta_keys else ()

    def scope_fingerprint(self, metadata: Mapping[str, Any]) -> tuple[Any, ...]:
        """The values of the metadata keys budget scopes read (run ids travel separately).
        An int and its str may get two plans: harmless."""
        return _hashable_values(metadata, self.scope_keys, _scope_value)

    def view(self, model: str, metadata: Mapping[str, Any], fp: tuple[Any, ...] | None = None) -> View:
        """The statically matching rules for ``model`` and ``metadata`` (cached).

        ``fp`` is ``fingerprint(metadata)`` when the caller already has it.
        """
        key = (model, self.fingerprint(metadata) if fp is None else fp)
        return self.views.get(key, lambda: self._build_view(model, metadata))

    def _build_view(self, model: str, metadata: Mapping[str, Any]) -> View:
        ctx = CallContext(model, metadata)

        def keep(group: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(r for r in group if r.static is None or _safe(r.static, ctx))

        context = keep(self.context)
        window = self.context_window(model) if any(c.rule.max_input_tokens is None for c in context) else None
        return View(model, keep(self.stops), keep(self.routes), context, keep(self.calls), keep(self.budgets), window)

    # -- prices ------------------------------------------------------------------
    def rates(self, model: str) -> tuple[float, float] | None:
        """(input, worst output) USD per token for reservations; None when unpriced.

        The worst output rate is the higher of the output and reasoning rates.
        """
        try:
            return self._rates[model]
        except KeyError:
            pass
        p = self.prices.lookup(model)
        rates = None
        if p is not None:
            rates = (p.input, max(p.output, p.reasoning or 0.0))
        self._rates[model] = rates
        return rates

    def context_window(self, model: str) -> int | None:
        p = self.prices.lookup(model)
        return None if p is None else p.context_window

    def worst_case_usd(self, model: str, input_tokens: int, max_tokens: int | None) -> float | None:
        rates = self.rates(model)
        if rates is None:
            return None
        out = self.default_output_tokens if max_tokens is None else max_tokens
        return input_tokens * rates[0] + out * rates[1]


def _hashable_values(
    metadata: Mapping[str, Any], keys: tuple[str, ...], convert: Callable[[Any], Any]
) -> tuple[Any, ...]:
    """The values of ``keys`` as a hashable tuple: as they are in the usual case (plain strings,
    numbers, None), else each one through ``convert``."""
    vals = tuple(map(metadata.get, keys))
    try:
        hash(vals)
        return vals
    except TypeError:  # a list (tags), dict or set among them
        return tuple(convert(metadata.get(k)) for k in keys)


def _match_value(v: Any) -> Any:
    """A metadata value as static matchers see it, hashable: lists as tuples, dicts and sets by repr."""
    if v.__class__ is list:
        return tuple(v)
    if v.__class__ is dict or v.__class__ is set:
        return repr(v)
    return v


def _scope_value(v: Any) -> Any:
    """A metadata value as a budget scope value, hashable: lists as tuples, other values as text."""
    if v.__class__ is list:
        return tuple(v)
    if v is not None and v.__class__ is not str:
        return str(v) if v.__hash__ is not None else repr(v)
    return v


def _safe(pred: Pred, ctx: CallContext) -> bool:
    """Static predicates compare metadata values of any type; a TypeError means no match."""
    try:
        return pred(ctx)
    except TypeError:
        return False
