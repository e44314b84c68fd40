"""A loaded, validated policy as frozen values.

The loader (``governor.policy.loader``) turns YAML into these; the engine
compiles them further into matchers and price lookups once per load. Match
conditions stay as validated plain data (``MatchSpec``) here: their meaning is
documented in ``docs/policy-format.md`` and compiled by ``governor.engine.match``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

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
    """Per-token USD rates of one model and where they came from."""

    model: str
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    source: str = "policy"  # "policy" | "litellm"


@dataclass(frozen=True)
class RuleBase:
    id: str
    mode: str  # effective mode: enforce | audit | off (policy default applied)
    match: MatchSpec | None
    exclude: MatchSpec | None
    source: SourceRef


@dataclass(frozen=True)
class StopCondition(RuleBase):
    type: str  # max_calls | consecutive_errors | repeated_call | max_wall_time
    max: float  # a count, or seconds for max_wall_time
    within_s: float | None = None  # repeated_call window


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
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)  # policy overrides only
    stop: tuple[StopCondition, ...] = ()
    routes: tuple[Route, ...] = ()
    context: tuple[ContextCap, ...] = ()
    calls: tuple[CallCap, ...] = ()
    budgets: tuple[Budget, ...] = ()
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
