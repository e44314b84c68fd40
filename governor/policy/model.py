"""A loaded, validated policy as frozen values.

The loader (``governor.policy.loader``) turns YAML into these; the engine
compiles them further into matchers and price lookups once per load. Match
conditions stay as validated plain data (``MatchSpec``) here: their meaning is
documented in ``docs/policy-format.md`` and compiled by ``governor.engine.match``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from governor.errors import Finding
from governor.ledger.windows import NO_WINDOW, Window

MatchSpec = Mapping[str, Any]  # a validated `match:` / `exclude:` mapping

MODES = ("enforce", "audit", "off")
ON_ERROR = ("fail_closed", "fail_open")


@dataclass(frozen=True)
class SourceRef:
    """Where an item was written: for messages that point back at the YAML."""

    file: str = "<string>"
    line: int = 0
    col: int = 0
    pointer: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


@dataclass(frozen=True)
class Revision:
    """Which policy decided: content hash of the canonical form, plus git facts."""

    content_hash: str  # first 12 hex chars of sha256 over the canonical JSON
    git_commit: str | None = None
    git_dirty: bool = False

    def __str__(self) -> str:
        text = self.content_hash
        if self.git_commit:
            text += f"@{self.git_commit[:12]}" + ("+dirty" if self.git_dirty else "")
        return text


@dataclass(frozen=True)
class ModelPrice:
    """Per-token USD rates of one model and where they came from.

    The top-level rates are the standard ones (no service tier, prompt at or
    below the first context tier). ``above`` holds the rates that apply to a
    call whose inclusive input exceeds a threshold; ``variants`` the rates of a
    service tier (``flex``, ``priority``, ``batch``) or speed (``fast``), each
    a ModelPrice of its own (with its own ``above``); ``geo`` multiplies the
    whole cost by data-residency region.
    """

    model: str
    """The model name this price was looked up for."""
    input: float
    """USD per input token that is neither read from nor written to the cache."""
    output: float
    """USD per output token (reasoning tokens too, unless ``reasoning`` is set)."""
    cache_read: float | None = None
    """USD per cache-read input token (None: the input rate)."""
    cache_write: float | None = None
    """USD per cache-write input token with the 5-minute TTL (None: the input rate)."""
    reasoning: float | None = None
    """USD per reasoning output token (None: the output rate)."""
    context_window: int | None = None
    """The model's maximum input tokens, where the source says."""
    max_output_tokens: int | None = None
    """The model's maximum output tokens, where the source says."""
    source: str = "policy"
    """Where the rates came from: ``policy``, ``litellm`` or ``genai-prices``."""
    cache_write_1h: float | None = None
    """USD per cache-write input token with the 1-hour TTL (None: the 5-minute rate, with a note)."""
    entry: str = ""
    """The entry of the source that priced it (the table key, or ``models.prices.<name>``)."""
    version: str = ""
    """The version of the source table (``litellm 1.x``, ``genai-prices 0.x``, the policy revision)."""
    above: tuple[tuple[int, ModelPrice], ...] = ()
    """Context tiers: (threshold, rates) ascending; the highest threshold below a call's input applies to it."""
    variants: Mapping[str, ModelPrice] = field(default_factory=dict)
    """Rates by service tier or speed (``flex``, ``priority``, ``batch``, ``fast``)."""
    geo: Mapping[str, float] = field(default_factory=dict)
    """Cost multipliers by ``inference_geo`` (e.g. ``{"us": 1.1}``)."""
    valid_from: float | None = None
    """Epoch seconds from which a dated policy price applies (None: always)."""


@dataclass(frozen=True)
class RuleBase:
    id: str
    mode: str  # effective mode: enforce | audit | off (policy default applied)
    match: MatchSpec | None
    exclude: MatchSpec | None
    source: SourceRef


@dataclass(frozen=True)
class StopCondition(RuleBase):
    type: str  # max_calls | consecutive_errors | repeated_call | max_wall_time | no_progress | max_tool_calls
    max: float  # a count, or seconds for max_wall_time
    within_s: float | None = None  # repeated_call window
    tools: tuple[str, ...] = ()  # max_tool_calls: the tool names (globs) whose calls count together


@dataclass(frozen=True)
class Route(RuleBase):
    to: str  # concrete model (alias resolved)
    to_alias: str | None = None
    fallbacks: tuple[str, ...] = ()  # concrete models


@dataclass(frozen=True)
class ContextCap(RuleBase):
    max_input_tokens: int | None  # None: the model's context window ("window")
    action: str  # block | trim | reroute
    keep_last: int | None = None
    to: str | None = None  # reroute target, concrete


@dataclass(frozen=True)
class CallCap(RuleBase):
    max_cost_usd: float | None = None
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class SoftThreshold:
    at: float  # fraction of the hard limit, 0 < at < 1
    action: str  # warn | downgrade
    to: str | None = None  # downgrade target, concrete


@dataclass(frozen=True)
class Budget(RuleBase):
    scope: str  # call | run | user | team | tag | global | metadata.<key>
    limit_usd: float | None = None
    limit_tokens: int | None = None
    limit_calls: int | None = None
    window: Window = NO_WINDOW
    soft: SoftThreshold | None = None
    on_error: str = "fail_closed"


@dataclass(frozen=True)
class AlertSink:
    """Where alerts go (``alerts.sinks.<name>``)."""

    name: str
    type: str  # webhook | slack | log
    url: str | None = None
    url_env: str | None = None  # the URL is read from this environment variable when sending
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 5.0


@dataclass(frozen=True)
class AlertRule:
    """What to alert on (``alerts.rules[]``)."""

    id: str
    on: str  # budget | stop | store_outage | overrun
    to: tuple[str, ...]  # sink names
    budgets: tuple[str, ...] = ()  # on budget: watched budget ids (empty: all)
    stops: tuple[str, ...] = ()  # on stop: watched stop ids (empty: all)
    thresholds: tuple[float, ...] = (0.8, 1.0)  # on budget: ascending fractions of the limit
    min_usd: float = 0.0  # on overrun
    every_s: float = 300.0  # on store_outage: per-process repeat interval
    source: SourceRef = SourceRef()


@dataclass(frozen=True)
class AlertsSpec:
    """The ``alerts:`` section."""

    sinks: Mapping[str, AlertSink] = field(default_factory=dict)
    rules: tuple[AlertRule, ...] = ()
    queue: int = 1000
    retries: int = 5
    backoff_s: float = 1.0


@dataclass(frozen=True)
class LedgerSpec:
    type: str = "memory"  # memory | sqlite | redis
    path: str | None = None
    url: str | None = None
    key_prefix: str = "governor"


@dataclass(frozen=True)
class Policy:
    name: str
    revision: Revision
    source_file: str
    api_version: str = "governor/v1"
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    mode: str = "enforce"
    on_error: str = "fail_closed"
    default_output_tokens: int = 1024
    lease_s: float = 600.0
    allow_unpriced: bool = False
    log_content: bool = False
    ungoverned: str = "block"  # "block" | "allow": requests the governor cannot read (the proxy's side routes)
    ledger: LedgerSpec = LedgerSpec()
    aliases: Mapping[str, str] = field(default_factory=dict)
    prices: Mapping[str, ModelPrice | tuple[ModelPrice, ...]] = field(default_factory=dict)
    """Policy price overrides by model: one price, or dated prices in ``valid_from`` order."""
    stop: tuple[StopCondition, ...] = ()
    routes: tuple[Route, ...] = ()
    context: tuple[ContextCap, ...] = ()
    calls: tuple[CallCap, ...] = ()
    budgets: tuple[Budget, ...] = ()
    alerts: AlertsSpec | None = None  # None: no alerts section
    document: Mapping[str, Any] = field(default_factory=dict)  # the merged document (after extends)
    source_files: tuple[str, ...] = ()  # this file and every file it extends (what to watch)
    warnings: tuple[Finding, ...] = ()  # validation warnings (the policy loaded despite them)

    def resolve(self, model: str) -> str:
        """A model name with an alias expanded (non-aliases unchanged)."""
        return self.aliases.get(model, model)

    def rule(self, rule_id: str) -> RuleBase | None:
        for group in (self.stop, self.routes, self.context, self.calls, self.budgets):
            for item in group:
                if item.id == rule_id:
                    return item
        return None
