"""The governor inside a litellm proxy, as a ``CustomLogger`` callback.

config.yaml::

    litellm_settings:
      callbacks: governor.integrations.litellm_proxy.proxy_handler_instance

The handler is built on first access from ``GOVERNOR_POLICY`` (the policy
file; required) and ``GOVERNOR_DECISION_LOG`` (optional JSONL decision log). A
missing or invalid policy raises at load, so the proxy fails to start with the
policy error instead of serving ungoverned traffic.

``async_pre_call_hook`` reroutes (``data["model"]``), trims
(``data["messages"]``), clamps ``max_tokens`` or blocks. A block becomes a
``ProxyException``, which the proxy returns as it is: HTTP 400 for a body the
governor cannot decide on (:class:`~governor.errors.InvalidCall`), 429 for budgets and
stop conditions, 400 for a context cap, 403 for a cost cap or an unpriced
model, 503 when a fail-closed budget store is down; the JSON error body names
the rule ids, reasons and policy revision. Usage is recorded from
``standard_logging_object`` on success and the error on failure, matched to
the decision by the id stashed in the request metadata.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from cachetools import TTLCache

from governor._litellm import litellm as _load_litellm

_load_litellm()  # sets LITELLM_LOCAL_MODEL_COST_MAP before any litellm module loads

from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from litellm.proxy._types import ProxyException  # noqa: E402

try:  # the flag litellm's own complexity router sets so a rerouted response names the model that served it
    from litellm.constants import RETURN_RAW_MODEL_NAME_METADATA_KEY as _RAW_MODEL_KEY  # noqa: E402
except ImportError:  # pragma: no cover - older litellm
    _RAW_MODEL_KEY = "_complexity_router_return_raw_model_name"

from governor import inputs
from governor.decision import Decision
from governor.errors import GovernorError, InvalidCall
from governor.integrations._common import block_error
from governor.integrations.usage import estimated_usage, from_chat_usage, from_standard_logging

POLICY_ENV = "GOVERNOR_POLICY"
DECISION_LOG_ENV = "GOVERNOR_DECISION_LOG"
DECISION_ID_KEY = "governor_decision_id"
CANONICAL_KEYS = ("run_id", "user", "team", "task", "agent", "workflow", "tags")
CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})
RUN_HEADER = "x-governor-run-id"

STATUS_BY_KIND: Mapping[str, int] = {
    "budget": 429,
    "stop": 429,
    "context": 400,
    "cost": 403,
    "unpriced": 403,
    "store": 503,
}
ERROR_TYPE_BY_STATUS: Mapping[int, str] = {
    429: "governor_limit_exceeded",
    400: "invalid_request_error",
    403: "governor_policy_violation",
    503: "governor_store_unavailable",
}


def proxy_exception(decision: Decision) -> ProxyException:
    """The HTTP error for a blocked decision; never a 500."""
    status = STATUS_BY_KIND.get(decision.block_kind or "", 403)
    return ProxyException(
        message=str(block_error(decision)),
        type=ERROR_TYPE_BY_STATUS[status],
        param=None,
        code=status,
        openai_code=decision.block_kind or "blocked",
        headers={
            "x-governor-decision-id": decision.decision_id,
            "x-governor-blocked-by": decision.blocked_by or "",
            "x-governor-rule-ids": ",".join(decision.rule_ids),
        },
        provider_specific_fields={
            "governor": {
                "blocked_by": decision.blocked_by,
                "verdict": decision.verdict,
                "block_kind": decision.block_kind,
                "rule_ids": list(decision.rule_ids),
                "reasons": list(decision.reasons),
                "revision": decision.revision,
                "decision_id": decision.decision_id,
            }
        },
    )


def invalid_request(exc: InvalidCall) -> ProxyException:
    """HTTP 400 for a request the governor cannot decide on (a client's mistake, never a 500)."""
    return ProxyException(
        message=str(exc),
        type="invalid_request_error",
        param=exc.field,
        code=400,
        openai_code="invalid_call",
        provider_specific_fields={"governor": {"error": "invalid_call", "field": exc.field, "reason": exc.reason}},
    )


def _metadata_key(data: Mapping[str, Any]) -> str:
    return "litellm_metadata" if "litellm_metadata" in data and "metadata" not in data else "metadata"


def _canonical(source: Mapping[str, Any] | None) -> dict[str, Any]:
    if not source:
        return {}
    out = {k: source[k] for k in CANONICAL_KEYS if source.get(k) is not None}
    nested = source.get("governor")
    if isinstance(nested, Mapping):
        out.update(nested)
    return out


def _internal_key(key: str) -> bool:
    """litellm's own bookkeeping in request metadata (not the caller's)."""
    return key in ("headers", "governor", DECISION_ID_KEY) or key.startswith(("user_api_key", "used_", "litellm_", "governor_"))


IDENTITY_KEYS = ("user", "team")


def request_metadata(
    user_api_key_dict: Any, data: Mapping[str, Any], trusted: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Governor metadata of one proxy request.

    The caller's request supplies the free-form keys and the run: body
    ``metadata`` (all its keys), else the ``x-governor-run-id`` header, else
    litellm's session / trace id (``x-litellm-session-id`` / ``x-litellm-trace-id``).

    Identity (``user``, ``team``) comes from the virtual key only: the key's
    ``user_id`` / ``team_id``, or its metadata (canonical keys or a ``governor:``
    mapping). A request can never name them, so a client cannot charge another
    team's budget or dodge its own. Where a key carries no user or team,
    ``trusted`` (the policy's ``proxy.trusted_identity``) may name a source the
    deployment's own gateway sets and clients cannot: ``header:<name>``,
    ``metadata:<key>`` or ``body:user``; otherwise the scope stays unset. The
    request's ``user`` field is always kept as ``end_user``.
    """
    meta = data.get(_metadata_key(data)) or {}
    requester = meta.get("requester_metadata")
    body_meta = requester if isinstance(requester, Mapping) else meta
    if not isinstance(body_meta, Mapping):
        raise InvalidCall("metadata", f"expected an object, got {type(body_meta).__name__}")
    out: dict[str, Any] = {k: v for k, v in body_meta.items() if not _internal_key(k)}
    out.update(_canonical(body_meta))
    for key in IDENTITY_KEYS:
        out.pop(key, None)
    proxy_request = data.get("proxy_server_request") or {}
    raw_headers = proxy_request.get("headers") if isinstance(proxy_request, Mapping) else None
    headers = {str(k).lower(): v for k, v in raw_headers.items()} if isinstance(raw_headers, Mapping) else {}
    if not out.get("run_id"):
        run = headers.get(RUN_HEADER) or data.get("litellm_session_id") or data.get("litellm_trace_id")
        if run:
            out["run_id"] = run
    if data.get("user") is not None:
        out["end_user"] = data["user"]
    key_meta = _canonical(getattr(user_api_key_dict, "metadata", None))
    key_ids = {"user": getattr(user_api_key_dict, "user_id", None), "team": getattr(user_api_key_dict, "team_id", None)}
    for key in IDENTITY_KEYS:
        value = key_ids[key] or key_meta.get(key)
        if not value and trusted and key in trusted:
            value = _trusted_value(trusted[key], data, body_meta, headers)
        if value:
            out[key] = value
    out.update({k: v for k, v in key_meta.items() if k not in IDENTITY_KEYS})
    return out


def _trusted_value(source: str, data: Mapping[str, Any], body_meta: Mapping[str, Any],
                   headers: Mapping[str, Any]) -> Any:
    kind, _, name = source.partition(":")
    if kind == "header":
        return headers.get(name.lower())
    if kind == "metadata":
        return body_meta.get(name)
    if source == "body:user":
        return data.get("user")
    return None


def trusted_identity(governor: Any) -> Mapping[str, str]:
    """The running policy's ``proxy.trusted_identity`` (empty: identity from the key only)."""
    section = governor.policy.document.get("proxy") or {}
    return section.get("trusted_identity") or {}


class GovernorProxyHandler(CustomLogger):
    """Checks each chat request before the proxy routes it; records usage after."""

    def __init__(self, governor: Any, *, pending_ttl: float = 3600.0) -> None:
        super().__init__()
        self.governor = governor
        self._pending: TTLCache[str, Decision] = TTLCache(maxsize=100_000, ttl=pending_ttl)

    @classmethod
    def from_env(cls) -> "GovernorProxyHandler":
        """Build from ``GOVERNOR_POLICY``; raise a clear error if it is unset, missing or invalid."""
        from governor.engine.governor import Governor

        path = os.environ.get(POLICY_ENV, "").strip()
        if not path:
            raise GovernorError(f"{POLICY_ENV} is not set: point it at the policy YAML file for the litellm proxy")
        if not Path(path).is_file():
            raise GovernorError(f"{POLICY_ENV}={path}: no such policy file")
        record_to = os.environ.get(DECISION_LOG_ENV) or None
        return cls(Governor.from_path(path, record_to=record_to))

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict:
        if call_type not in CHAT_CALL_TYPES:
            return data
        try:
            model, messages, max_tokens, tools = inputs.proxy_body(data)
            decision = await self.governor.acheck(
                model=model, messages=messages, max_tokens=max_tokens, tools=tools,
                metadata=request_metadata(user_api_key_dict, data, trusted_identity(self.governor)),
            )
        except InvalidCall as exc:  # the client's mistake: 400 with the governor's body, nothing reserved
            raise invalid_request(exc) from None
        if decision.blocked:
            raise proxy_exception(decision)
        requested_model = data["model"]
        data["model"] = decision.model
        data["messages"] = list(decision.messages)
        if decision.max_tokens is not None:
            data["max_completion_tokens" if "max_completion_tokens" in data else "max_tokens"] = decision.max_tokens
        meta = data.setdefault(_metadata_key(data), {})
        meta[DECISION_ID_KEY] = decision.decision_id
        meta["governor_verdict"] = decision.verdict
        meta["governor_rule_ids"] = ",".join(decision.rule_ids)
        meta["governor_requested_model"] = decision.requested_model
        if decision.model != requested_model:
            meta[_RAW_MODEL_KEY] = True  # else the proxy stamps the requested model on the response
        self._pending[decision.decision_id] = decision
        return data

    def _take(self, metadata: Mapping[str, Any] | None) -> Decision | None:
        decision_id = (metadata or {}).get(DECISION_ID_KEY)
        return self._pending.pop(decision_id, None) if decision_id else None

    @staticmethod
    def _call_metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
        params = kwargs.get("litellm_params") or {}
        return params.get("metadata") or params.get("litellm_metadata") or kwargs.get("metadata") or {}

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        decision = self._take(self._call_metadata(kwargs))
        if decision is None:
            return
        usage = from_standard_logging(kwargs.get("standard_logging_object"))
        if usage is None:
            usage = from_chat_usage(getattr(response_obj, "usage", None)) or estimated_usage(decision.input_tokens)
        await self.governor.arecord(decision, **usage.as_kwargs())

    async def async_post_call_failure_hook(
        self,
        request_data: dict,
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> None:
        """Once per failed request (after retries and fallbacks): record the error."""
        decision = self._take(request_data.get(_metadata_key(request_data)))
        if decision is not None:
            await self.governor.arecord(decision, input_tokens=0, output_tokens=0, error=original_exception)
        return None

    async def async_post_call_response_headers_hook(
        self, data: dict, user_api_key_dict: Any, response: Any, request_headers: Any = None, **_: Any
    ) -> dict[str, str] | None:
        """Show the decision to the client: verdict, rule ids, requested model."""
        meta = data.get(_metadata_key(data)) or {}
        decision_id = meta.get(DECISION_ID_KEY)
        if not decision_id:
            return None
        return {
            "x-governor-decision-id": str(decision_id),
            "x-governor-verdict": str(meta.get("governor_verdict", "")),
            "x-governor-rule-ids": str(meta.get("governor_rule_ids", "")),
            "x-governor-requested-model": str(meta.get("governor_requested_model", "")),
        }


_instance: GovernorProxyHandler | None = None


def __getattr__(name: str) -> Any:
    """``proxy_handler_instance`` is built on first access, so importing this module needs no env."""
    global _instance
    if name == "proxy_handler_instance":
        if _instance is None:
            _instance = GovernorProxyHandler.from_env()
        return _instance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GovernorProxyHandler", "invalid_request", "proxy_exception", "request_metadata", "trusted_identity"]
