"""The one exception hierarchy of budget-governor.

Everything the package raises on purpose derives from :class:`GovernorError`, so
an integration can catch one type. Errors about user input carry where the bad
input is (file, line, column, JSON pointer) so the message can point at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from governor.decision import Decision


class GovernorError(Exception):
    """Base class of every error raised by budget-governor."""


@dataclass(frozen=True)
class Finding:
    """One validation finding (an error or a warning) located in a source file.

    ``line`` and ``col`` are 1-based; 0 means unknown. ``pointer`` is the
    RFC 6901 JSON pointer of the offending node inside the policy document.
    """

    severity: str  # "error" | "warning"
    message: str
    file: str = "<string>"
    line: int = 0
    col: int = 0
    pointer: str = ""
    code: str = ""  # stable machine-readable class, e.g. "unknown-key"
    hint: str = ""  # e.g. "did you mean 'max_tokens'?"

    def location(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col or 1}"
        return self.file

    def __str__(self) -> str:
        text = f"{self.location()}: {self.severity}: {self.message}"
        if self.pointer:
            text += f" (at {self.pointer})"
        if self.hint:
            text += f"; {self.hint}"
        return text


MAX_SHOWN_FINDINGS = 20
"""How many findings a message (PolicyError's text, ``governor validate``) shows before "... and N more"."""


def show_findings(findings: Sequence[Finding], limit: int = MAX_SHOWN_FINDINGS) -> list[str]:
    """The first ``limit`` findings as text, then a line counting the rest."""
    lines = [str(f) for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more (governor validate --format json lists them all)")
    return lines


class PolicyError(GovernorError):
    """A policy failed to load: it holds every error found, sorted by place (its text shows the first 20)."""

    def __init__(self, findings: Sequence[Finding], warnings: Sequence[Finding] = ()) -> None:
        self.findings: tuple[Finding, ...] = tuple(findings)
        self.warnings: tuple[Finding, ...] = tuple(warnings)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if not self.findings:
            return "invalid policy"
        lines = show_findings(self.findings)
        head = f"{len(self.findings)} error(s) in policy:\n  " if len(self.findings) > 1 else ""
        return head + "\n  ".join(lines)


class InvalidCall(GovernorError, ValueError):
    """A call's arguments are not something the governor can decide on or account for.

    Raised by ``check``/``record`` (and the adapters) before anything is reserved
    or charged; the proxy answers it with HTTP 400. ``field`` names the argument,
    dotted into mappings and indexed into lists (``metadata.team``, ``messages[2]``).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"invalid {field}: {message}")


class PricingError(GovernorError):
    """A model has no known price and the policy does not allow unpriced calls."""


class TraceError(GovernorError):
    """A trace file or record could not be read. ``line`` is 1-based (or a record index)."""

    def __init__(self, message: str, *, file: str = "", line: int = 0) -> None:
        self.file = file
        self.line = line
        self.message = message  # without the file:line prefix
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(where + message)


class HookInputError(GovernorError):
    """A coding agent's hook event (stdin of ``governor hook``) is not what the agent sends; names the field."""


class UnreadableCall(GovernorError, ValueError):
    """A request the governor cannot read (no model, empty or malformed messages / input / prompt).

    The message names the API shape and the field. Integrations refuse such a
    request instead of sending it unchecked (the proxy follows ``ungoverned``).
    """


class LedgerError(GovernorError):
    """The budget store is unavailable or answered something it should not."""


class OperatorError(GovernorError, ValueError):
    """An operator action that cannot be done as asked (``governor budget raise|reset``, ``governor run
    resume``): an unknown budget, a scope of the wrong kind, a raise that would lower a limit."""


class CallBlocked(GovernorError):
    """A call was blocked by the policy. ``decision`` says which rule and why."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        rules = ", ".join(decision.rule_ids) or "-"
        reason = "; ".join(decision.reasons) or "blocked by policy"
        by = f"blocked by {decision.blocked_by}; " if decision.blocked_by else ""
        super().__init__(f"{reason} [{by}rules: {rules}; policy revision {decision.revision}]")

    @property
    def blocked_by(self) -> str | None:
        """The id of the rule that blocked the call."""
        return self.decision.blocked_by

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return self.decision.rule_ids


class BudgetExceeded(CallBlocked):
    """The call would push a budget over its hard limit (HTTP 429 in the proxy)."""


class StopConditionHit(CallBlocked):
    """A stop condition of the run fired: call cap, retry storm, loop, wall time."""


class ContextTooLarge(CallBlocked):
    """A context cap blocked the call."""


class CostCapExceeded(CallBlocked):
    """A per-call cost cap blocked the call."""


class UnpricedModel(CallBlocked):
    """The call was blocked because the model has no price (on_error fail_closed)."""


class StoreUnavailable(CallBlocked):
    """The budget store was down and the budget is fail_closed."""


BLOCK_ERRORS: dict[str, type[CallBlocked]] = {
    "budget": BudgetExceeded,
    "stop": StopConditionHit,
    "context": ContextTooLarge,
    "cost": CostCapExceeded,
    "unpriced": UnpricedModel,
    "store": StoreUnavailable,
}
"""A blocked decision's ``block_kind`` -> the :class:`CallBlocked` subclass raised for it."""


def block_error(decision: Decision) -> CallBlocked:
    """The ``CallBlocked`` subclass matching ``decision.block_kind`` (CallBlocked itself otherwise)."""
    return BLOCK_ERRORS.get(decision.block_kind or "", CallBlocked)(decision)


class NoAcceptedRuns(GovernorError):
    """``governor suggest`` was given runs none of which (in the part it fits on) has an accepted outcome:
    without accepted work there is nothing a cap must keep, so no policy is suggested."""
