"""Put each decision on the caller's current OpenTelemetry span.

``span_observer(decision)`` is a governor observer (``gov.add_observer``; the
engine registers it by itself when ``opentelemetry`` is importable). When a
span is recording, it adds ``governor.*`` attributes: verdict, rule ids, policy
revision, requested and routed model, estimated cost, decision id. A blocked
call sets the span status to ERROR with the reason, so the block shows in the
user's own traces. Without OpenTelemetry, or with no recording span, it does nothing.
"""

from __future__ import annotations

from typing import Any

from governor.decision import Decision

PREFIX = "governor."

try:  # optional dependency (extra "otel")
    from opentelemetry import trace as _trace
    from opentelemetry.trace import Status, StatusCode
except ImportError:  # pragma: no cover - exercised only without the extra
    _trace = None


def _span_getter() -> Any:
    """``() -> the current context's span or None``, read straight from OpenTelemetry's
    context variable (the default runtime context) when it can be: the observer runs on
    every check, and the public ``get_current_span`` costs five calls to say "none".
    Any other runtime context (``OTEL_PYTHON_CONTEXT``) goes through the public API."""
    if _trace is None:
        return None
    try:
        from opentelemetry import context as _context
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY

        runtime = _context._RUNTIME_CONTEXT
        if runtime.__class__ is ContextVarsRuntimeContext:
            get_context = runtime._current_context.get
            return lambda: get_context().get(_SPAN_KEY)
    except (ImportError, AttributeError):  # pragma: no cover - another OpenTelemetry layout
        pass
    return _trace.get_current_span


_current_span = _span_getter()


def available() -> bool:
    """Whether the OpenTelemetry API is installed."""
    return _trace is not None


def decision_attributes(decision: Decision) -> dict[str, Any]:
    """The ``governor.*`` span attributes of one decision (OTel-legal value types only)."""
    attrs: dict[str, Any] = {
        PREFIX + "verdict": decision.verdict,
        PREFIX + "rule_ids": list(decision.rule_ids),
        PREFIX + "policy.revision": decision.revision,
        PREFIX + "model.requested": decision.requested_model or decision.model,
        PREFIX + "model.routed": decision.model,
        PREFIX + "decision_id": decision.decision_id,
        PREFIX + "input_tokens": decision.input_tokens,
    }
    if decision.policy_name:
        attrs[PREFIX + "policy.name"] = decision.policy_name
    if decision.estimated_cost_usd is not None:
        attrs[PREFIX + "estimated_cost_usd"] = float(decision.estimated_cost_usd)
    if decision.max_tokens is not None:
        attrs[PREFIX + "max_tokens"] = decision.max_tokens
    if decision.block_kind:
        attrs[PREFIX + "block_kind"] = decision.block_kind
    if decision.blocked_by:
        attrs[PREFIX + "blocked_by"] = decision.blocked_by
    if decision.reasons:
        attrs[PREFIX + "reasons"] = list(decision.reasons)
    if decision.audit:
        attrs[PREFIX + "audit.rule_ids"] = [note.rule_id for note in decision.audit]
    return attrs


def span_observer(decision: Decision) -> None:
    """Annotate the current span with the decision; mark it ERROR if the call was blocked."""
    if _current_span is None:
        return
    span = _current_span()
    if span is None or not isinstance(span, _trace.Span) or not span.is_recording():
        return
    span.set_attributes(decision_attributes(decision))
    if decision.blocked:
        reason = "; ".join(decision.reasons) or "blocked by policy"
        rules = ",".join(decision.rule_ids) or "-"
        by = decision.blocked_by or "-"
        span.set_status(Status(StatusCode.ERROR, f"governor blocked the call ({by}): {reason} [rules: {rules}]"))


__all__ = ["available", "decision_attributes", "span_observer"]
