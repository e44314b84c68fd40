"""The governor inside a litellm proxy, as a ``CustomLogger`` callback.

config.yaml::

    litellm_settings:
      callbacks: governor.integrations.litellm_proxy.proxy_handler_instance

The handler is built on first access from ``GOVERNOR_POLICY`` (the policy
file; required) and ``GOVERNOR_DECISION_LOG`` (optional JSONL decision log). A
missing or invalid policy raises at load, so the proxy fails to start with the
policy error instead of serving ungoverned traffic.

``async_pre_call_hook`` governs every call type that costs money: chat
(``/v1/chat/completions``), Responses (``/v1/responses``), Anthropic Messages
(``/v1/messages``), legacy completions (``/v1/completions``) and embeddings
(``/v1/embeddings``), each read by :mod:`governor.integrations.shapes`. It
reroutes (``data["model"]``), trims the request's own items (``messages`` or
``input``), clamps the output allowance or blocks. Any other call type that
reaches a model, and a request the governor cannot read (an empty
``messages``), follows the policy's ``ungoverned`` setting: refused by default
(HTTP 403 or 400 naming the route and how to allow it), let through unchecked
with ``ungoverned: allow``. Call types that reach no model (reading or deleting
stored responses, files, batches) pass.

A request body the governor cannot decide on (a negative or huge ``max_tokens``,
a list as ``metadata.team``: :class:`~governor.errors.InvalidCall`) is HTTP 400
naming the field. User and team come from the virtual key (or the policy's
``proxy.trusted_identity``), never from the request.

A block becomes a ``ProxyException``, which the proxy returns in the API's own
error shape (the OpenAI ``error`` object; Anthropic's ``{"type": "error",
"error": {...}}`` on ``/v1/messages``): HTTP 429 for budgets and stop
conditions, 400 for a context cap, 403 for a cost cap or an unpriced model,
503 when a fail-closed budget store is down; the body names the rule ids,
reasons and policy revision. A refusal of a Codex request (``originator`` /
``user-agent``) is HTTP 400 whatever the reason, with the status it would have
had in ``x-governor-status``: the only status Codex 0.171 shows the body of
without retrying (governor.integrations.coding_agents). Every refusal carries ``x-should-retry: false``
(clients retry 429 by default), and ``Retry-After`` when a windowed budget is
the reason. Usage is recorded from ``standard_logging_object`` on success and
the error on failure, matched to the decision by the id stashed in the request
metadata (litellm's failure events mislabel the call types of these routes, so
nothing there depends on the call type).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from cachetools import TTLCache

from governor._litellm import litellm as _load_litellm

_load_litellm()  # the first litellm import: with the bundled price map unless the user chose (governor/_litellm.py)

from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from litellm.proxy._types import ProxyException  # noqa: E402

try:  # the flag litellm's own complexity router sets so a rerouted response names the model that served it
    from litellm.constants import RETURN_RAW_MODEL_NAME_METADATA_KEY as _RAW_MODEL_KEY  # noqa: E402
except ImportError:  # pragma: no cover - older litellm
    _RAW_MODEL_KEY = "_complexity_router_return_raw_model_name"

from governor.decision import Decision
from governor.errors import GovernorError, InvalidCall, UnreadableCall
from governor.integrations._common import block_error
from governor.integrations._streams import StreamTally
from governor.integrations.coding_agents import agent_session, client_agent, refusal_status
from governor.integrations.shapes import Call, decided_request, read_call
from governor.integrations.usage import Usage, estimated_usage, from_any_usage, from_standard_logging
from governor.ledger.windows import seconds_until_window_frees
from governor.policy.model import Budget, Policy

log = logging.getLogger("governor.proxy")

POLICY_ENV = "GOVERNOR_POLICY"
DECISION_LOG_ENV = "GOVERNOR_DECISION_LOG"
DECISION_ID_KEY = "governor_decision_id"
CANONICAL_KEYS = ("run_id", "user", "team", "task", "agent", "workflow", "tags")
RUN_HEADER = "x-governor-run-id"
API_KEY = "api"  # the metadata key that names a call's API shape in the decision log (and for match conditions)

SHAPE_BY_CALL_TYPE: Mapping[str, str] = {
    "completion": "chat",
    "acompletion": "chat",
    "responses": "responses",
    "aresponses": "responses",
    "anthropic_messages": "messages",
    "aanthropic_messages": "messages",
    "text_completion": "completions",
    "atext_completion": "completions",
    "embedding": "embeddings",
    "aembedding": "embeddings",
}
"""The litellm call types the governor checks, and the API shape each one speaks."""
CHAT_CALL_TYPES = frozenset(k for k, v in SHAPE_BY_CALL_TYPE.items() if v == "chat")

FREE_CALL_TYPES = frozenset(
    {
        # reading, listing, cancelling or deleting what is stored: no model runs
        "aget_responses",
        "adelete_responses",
        "acancel_responses",
        "alist_input_items",
        "aretrieve_batch",
        "retrieve_batch",
        "alist_batches",
        "acancel_batch",
        "cancel_batch",
        "afile_content",
        "afile_retrieve",
        "afile_delete",
        "afile_list",
        "file_list",
        "file_retrieve",
        "file_delete",
        "file_content",
        "acreate_file",
        "create_file",
        "alist_fine_tuning_jobs",
        "aretrieve_fine_tuning_job",
        "acancel_fine_tuning_job",
        "avector_store_retrieve",
        "avector_store_list",
        "avector_store_delete",
        "avector_store_update",
        "avector_store_file_list",
        "avector_store_file_retrieve",
        "avector_store_file_content",
        "avector_store_file_update",
        "avector_store_file_delete",
        "avideo_list",
        "avideo_status",
        "avideo_content",
        "avideo_get_character",
        "alist_containers",
        "aretrieve_container",
        "adelete_container",
        "alist_container_files",
        "aretrieve_container_file",
        "adelete_container_file",
        "aretrieve_container_file_content",
        "alist_skills",
        "aget_skill",
        "adelete_skill",
        "aget_interaction",
        "adelete_interaction",
        "acancel_interaction",
        "alist_agents",
    }
)
"""Call types that reach no model (stored objects only): they pass without a check."""

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


def retry_after_seconds(policy: Policy, decision: Decision, now: float) -> int | None:
    """Seconds until the windowed budget that blocked ``decision`` frees up (None: not a windowed budget)."""
    if decision.block_kind != "budget" or not decision.blocked_by:
        return None
    rule = policy.rule(decision.blocked_by)
    wait = seconds_until_window_frees(rule.window, now) if isinstance(rule, Budget) else None
    return None if wait is None else max(1, math.ceil(wait))


def proxy_exception(decision: Decision, *, retry_after: int | None = None, agent: str | None = None) -> ProxyException:
    """The HTTP error for a blocked decision; never a 500. Clients are told not to retry it; a coding agent
    (``agent``) gets the status that makes it show the reason and stop (coding_agents.refusal_status)."""
    reason_status = STATUS_BY_KIND.get(decision.block_kind or "", 403)
    status = refusal_status(reason_status, agent)
    headers = {
        "x-governor-decision-id": decision.decision_id,
        "x-governor-blocked-by": decision.blocked_by or "",
        "x-governor-rule-ids": ",".join(decision.rule_ids),
        "x-should-retry": "false",
    }
    if status != reason_status:
        headers["x-governor-status"] = str(reason_status)
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return ProxyException(
        message=str(block_error(decision)),
        type=ERROR_TYPE_BY_STATUS[status],
        param=None,
        code=status,
        openai_code=decision.block_kind or "blocked",
        headers=headers,
        # Codex prints the whole body of a 400: only the message, which names the rule (headers keep the rest)
        provider_specific_fields=None
        if agent == "codex"
        else {
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
        headers={"x-should-retry": "false"},
        provider_specific_fields={"governor": {"error": "invalid_call", "field": exc.field, "reason": exc.reason}},
    )


def ungoverned_exception(route: str, reason: str, *, status: int = 403, agent: str | None = None) -> ProxyException:
    """The refusal of a request the governor does not read: names the route and how to allow it."""
    reason_status, status = status, refusal_status(status, agent)
    headers = {"x-should-retry": "false", "x-governor-verdict": "ungoverned"}
    if status != reason_status:
        headers["x-governor-status"] = str(reason_status)
    message = (
        f"budget-governor refused {route}: {reason}. Requests the governor cannot check are refused so that "
        "no route bypasses the budgets; to let them through unchecked set 'ungoverned: allow' in the policy"
    )
    return ProxyException(
        message=message,
        type="invalid_request_error" if status == 400 else "governor_policy_violation",
        param=None,
        code=status,
        openai_code="ungoverned",
        headers=headers,
        provider_specific_fields={"governor": {"verdict": "ungoverned", "route": route, "reason": reason}},
    )


def _headers(data: Mapping[str, Any]) -> dict[str, Any]:
    """The request's headers as the proxy received them, names lower-cased (empty when unknown)."""
    proxy_request = data.get("proxy_server_request") or {}
    raw = proxy_request.get("headers") if isinstance(proxy_request, Mapping) else None
    return {str(k).lower(): v for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _metadata_key(data: Mapping[str, Any]) -> str:
    """Where litellm keeps its metadata for this request: ``litellm_metadata`` on the routes whose API has a
    ``metadata`` field of its own (Responses, Anthropic Messages), else ``metadata``."""
    return "litellm_metadata" if "litellm_metadata" in data else "metadata"


def _route(data: Mapping[str, Any], call_type: Any) -> str:
    request = data.get("proxy_server_request") or {}
    url = request.get("url") if isinstance(request, Mapping) else None
    if isinstance(url, str) and url:
        from urllib.parse import urlsplit

        return f"{request.get('method') or 'POST'} {urlsplit(url).path}"
    return f"call type {call_type}"


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
    return key in ("headers", "governor", DECISION_ID_KEY) or key.startswith(
        ("user_api_key", "used_", "litellm_", "governor_")
    )


IDENTITY_KEYS = ("user", "team")


def request_metadata(
    user_api_key_dict: Any, data: Mapping[str, Any], trusted: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Governor metadata of one proxy request.

    The caller's request supplies the free-form keys and the run: body
    ``metadata`` (all its keys), else the ``x-governor-run-id`` header, else a
    coding agent's session id (Claude Code's ``x-claude-code-session-id``,
    Codex's ``session-id``; ``agent`` says which: governor.integrations.coding_agents),
    else litellm's session / trace id (``x-litellm-session-id`` / ``x-litellm-trace-id``).

    Identity (``user``, ``team``) comes from the virtual key only: the key's
    ``user_id`` / ``team_id``, or its metadata (canonical keys or a ``governor:``
    mapping). A request can never name them, so a client cannot charge another
    team's budget or dodge its own. Where a key carries no user or team,
    ``trusted`` (the policy's ``proxy.trusted_identity``) may name a source the
    deployment's own gateway sets and clients cannot: ``header:<name>``,
    ``metadata:<key>`` or ``body:user``; otherwise the scope stays unset. The
    request's ``user`` field is always kept as ``end_user``.
    """
    key = _metadata_key(data)
    meta = data.get(key) or {}
    if not isinstance(meta, Mapping):
        raise InvalidCall("metadata", f"expected an object, got {type(meta).__name__}")
    requester = meta.get("requester_metadata")
    if isinstance(requester, Mapping):
        body_meta = requester
    elif key == "litellm_metadata":  # litellm's own bookkeeping: the caller's metadata is the API's field
        own = data.get("metadata")
        body_meta = own if isinstance(own, Mapping) else {}
    else:
        body_meta = meta
    out: dict[str, Any] = {k: v for k, v in body_meta.items() if not _internal_key(k)}
    out.update(_canonical(body_meta))
    for name in IDENTITY_KEYS:
        out.pop(name, None)
    headers = _headers(data)
    if not out.get("run_id"):
        session, agent = agent_session(headers)  # a Claude Code or Codex session is a run
        run = headers.get(RUN_HEADER) or session or data.get("litellm_session_id") or data.get("litellm_trace_id")
        if run:
            out["run_id"] = run
        if agent and not out.get("agent"):
            out["agent"] = agent
    if data.get("user") is not None:
        out["end_user"] = data["user"]
    key_meta = _canonical(getattr(user_api_key_dict, "metadata", None))
    key_ids = {"user": getattr(user_api_key_dict, "user_id", None), "team": getattr(user_api_key_dict, "team_id", None)}
    for name in IDENTITY_KEYS:
        value = key_ids[name] or key_meta.get(name)
        if not value and trusted and name in trusted:
            value = _trusted_value(trusted[name], data, body_meta, headers)
        if value:
            out[name] = value
    out.update({k: v for k, v in key_meta.items() if k not in IDENTITY_KEYS})
    return out


def _trusted_value(
    source: str, data: Mapping[str, Any], body_meta: Mapping[str, Any], headers: Mapping[str, Any]
) -> Any:
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


def success_usage(kwargs: Mapping[str, Any], response_obj: Any, decision: Decision) -> Usage:
    """What a successful call used: the response's own usage report (chat, Responses or Anthropic), else
    litellm's standard logging payload, else an estimate. Never free: a report of zero input tokens (a
    stream whose provider was not asked for usage) takes the check's count instead, marked estimated."""
    found = from_any_usage(_get_usage(response_obj), service_tier=_get_field(response_obj, "service_tier"))
    if found is None or found.input_tokens == 0:
        found = from_standard_logging(kwargs.get("standard_logging_object")) or found
    if found is None:
        return estimated_usage(decision.input_tokens)
    if found.input_tokens == 0:
        return dataclasses.replace(found, input_tokens=decision.input_tokens, estimated=True)
    return found


def _get_field(response_obj: Any, name: str) -> Any:
    return response_obj.get(name) if isinstance(response_obj, Mapping) else getattr(response_obj, name, None)


def _get_usage(response_obj: Any) -> Any:
    if isinstance(response_obj, Mapping):
        return response_obj.get("usage")
    return getattr(response_obj, "usage", None)


class GovernorProxyHandler(CustomLogger):
    """Checks each model request (chat, Responses, Messages, completions, embeddings) before the proxy
    routes it; records usage after."""

    def __init__(self, governor: Any, *, pending_ttl: float = 3600.0) -> None:
        super().__init__()
        self.governor = governor
        self._pending: TTLCache[str, Decision] = TTLCache(maxsize=100_000, ttl=pending_ttl)
        self._settling: set[asyncio.Task[Any]] = set()  # settlements of streams that ended early

    @classmethod
    def from_env(cls) -> GovernorProxyHandler:
        """Build from ``GOVERNOR_POLICY``; raise a clear error if it is unset, missing or invalid."""
        from governor.engine.governor import Governor

        path = os.environ.get(POLICY_ENV, "").strip()
        if not path:
            raise GovernorError(f"{POLICY_ENV} is not set: point it at the policy YAML file for the litellm proxy")
        if not Path(path).is_file():
            raise GovernorError(f"{POLICY_ENV}={path}: no such policy file")
        record_to = os.environ.get(DECISION_LOG_ENV) or None
        handler = cls(Governor.from_path(path, record_to=record_to, freeze_gc=True))  # a server: its imports live on
        from governor.integrations.proxy_metrics import enable

        enable(handler.governor)  # GET /metrics (GOVERNOR_METRICS=off leaves it out)
        return handler

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        kind = getattr(call_type, "value", call_type)
        shape = SHAPE_BY_CALL_TYPE.get(str(kind))
        if shape is None:
            if kind in FREE_CALL_TYPES:
                return data
            return self._ungoverned(data, kind, f"the governor does not check call type {kind!r}")
        try:
            call = read_call(shape, data)
        except UnreadableCall as exc:
            return self._ungoverned(data, kind, str(exc), status=400)
        try:
            metadata = request_metadata(user_api_key_dict, data, trusted_identity(self.governor))
            metadata[API_KEY] = shape  # the route says which API this is, not the caller
            decision = await self.governor.acheck(**call.check_kwargs(), metadata=metadata)
        except InvalidCall as exc:  # the client's mistake: 400 with the governor's body, nothing reserved
            raise invalid_request(exc) from None
        if decision.blocked:
            raise proxy_exception(
                decision,
                retry_after=retry_after_seconds(self.governor.policy, decision, time.time()),
                agent=client_agent(_headers(data)),
            )
        self._apply(call, decision, data)
        return data

    def _ungoverned(self, data: dict[str, Any], kind: Any, reason: str, *, status: int = 403) -> dict[str, Any]:
        route = _route(data, kind)
        if self.governor.policy.ungoverned == "allow":
            log.warning("budget-governor let %s through unchecked (ungoverned: allow): %s", route, reason)
            return data
        raise ungoverned_exception(route, reason, status=status, agent=client_agent(_headers(data)))

    def _apply(self, call: Call, decision: Decision, data: dict[str, Any]) -> None:
        """Write the decision into the request the proxy sends, and remember it until the call settles."""
        requested_model = data["model"]
        data.update(decided_request(call, decision, data))
        if call.stream and call.shape in ("chat", "completions"):  # ask for the final usage chunk
            data["stream_options"] = {**(data.get("stream_options") or {}), "include_usage": True}
        meta = data.setdefault(_metadata_key(data), {})
        meta[DECISION_ID_KEY] = decision.decision_id
        meta["governor_verdict"] = decision.verdict
        meta["governor_rule_ids"] = ",".join(decision.rule_ids)
        meta["governor_requested_model"] = decision.requested_model
        if decision.model != requested_model:
            meta[_RAW_MODEL_KEY] = True  # else the proxy stamps the requested model on the response
        self._pending[decision.decision_id] = decision

    def _take(self, metadata: Mapping[str, Any] | None) -> Decision | None:
        decision_id = (metadata or {}).get(DECISION_ID_KEY)
        return self._pending.pop(decision_id, None) if decision_id else None

    @staticmethod
    def _call_metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
        params = kwargs.get("litellm_params") or {}
        return params.get("metadata") or params.get("litellm_metadata") or kwargs.get("metadata") or {}

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        decision = self._take(self._call_metadata(kwargs))
        if decision is None:
            return
        await self.governor.arecord(decision, **success_usage(kwargs, response_obj, decision).as_kwargs())

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """Pass a stream through; if it ends before its last event (the client went away, the provider
        failed), settle the call from what was streamed so far instead of leaving it reserved."""
        decision_id = (request_data.get(_metadata_key(request_data)) or {}).get(DECISION_ID_KEY)
        tally = StreamTally()
        finished = False
        try:
            async for item in response:
                if decision_id:
                    tally.feed(item)
                yield item
            finished = True
        finally:
            if not finished and decision_id:
                decision = self._pending.pop(decision_id, None)
                if decision is not None:
                    usage = tally.usage(decision.input_tokens)
                    task = asyncio.get_running_loop().create_task(
                        self.governor.arecord(decision, **usage.as_kwargs(), error="stream ended early")
                    )
                    self._settling.add(task)
                    task.add_done_callback(self._settling.discard)

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
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
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any, request_headers: Any = None, **_: Any
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


__all__ = [
    "FREE_CALL_TYPES",
    "SHAPE_BY_CALL_TYPE",
    "GovernorProxyHandler",
    "invalid_request",
    "proxy_exception",
    "request_metadata",
    "retry_after_seconds",
    "trusted_identity",
    "ungoverned_exception",
]
