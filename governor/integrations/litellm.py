"""Governed litellm SDK calls of every API shape (no monkey-patching).

    governed = GovernedLiteLLM(gov)
    response = governed.completion(model="gpt-4o", messages=[...], governor_metadata={"task": "classify"})

Governed: ``completion``/``acompletion`` (chat), ``responses``/``aresponses``
(the Responses API), ``anthropic_messages``/``aanthropic_messages``
(``litellm.anthropic.messages.create``/``acreate``), ``text_completion``/
``atext_completion`` and ``embedding``/``aembedding``.

Each call is checked first; a block raises the ``CallBlocked`` subclass named by
the decision (rule ids and policy revision in the message and on ``.decision``).
Otherwise the call goes out with the decided model, messages and max_tokens,
and its real usage (cache and reasoning tokens included) or its error is
recorded. Streams ask for a final usage chunk and record at their end; with
``stop_streams_at_cap=True`` a stream that passes the call's output cap is
stopped mid-way with ``CostCapExceeded``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from governor._litellm import litellm
from governor.decision import Decision
from governor.integrations._common import block_error
from governor.integrations._governed_call import API_KEY, GovernedCall
from governor.integrations._streams import (
    AsyncGovernedStream,
    GovernedStream,
    asked_for_usage,
    with_usage_option,
)
from governor.integrations.usage import Usage, estimated_usage, from_chat_usage

DECISION_ID_KEY = "governor_decision_id"


def _output_text(response: Any) -> str:
    try:
        return str(response.choices[0].message.content or "")
    except (AttributeError, IndexError, TypeError):
        return ""


def response_usage(response: Any, decision: Decision) -> Usage:
    """The response's reported usage, or an estimate that is never zero-cost by omission."""
    found = from_chat_usage(getattr(response, "usage", None), service_tier=getattr(response, "service_tier", None))
    return found if found is not None else estimated_usage(decision.input_tokens, _output_text(response))


def send_kwargs(decision: Decision, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request as decided: model, messages and the (possibly clamped) output cap."""
    out = dict(kwargs)
    out["model"] = decision.model
    out["messages"] = list(decision.messages)
    if decision.max_tokens is not None:
        key = "max_completion_tokens" if "max_completion_tokens" in kwargs else "max_tokens"
        out[key] = decision.max_tokens
    metadata = dict(out.get("metadata") or {})
    metadata[DECISION_ID_KEY] = decision.decision_id
    out["metadata"] = metadata
    return out


def _requested_max_tokens(kwargs: Mapping[str, Any]) -> int | None:
    value = kwargs.get("max_completion_tokens", kwargs.get("max_tokens"))
    return None if value is None else int(value)


class GovernedLiteLLM:
    """litellm's completion functions behind a governor.

    ``stop_streams_at_cap``: stop a stream whose approximate output passes the
    decided ``max_tokens`` (for providers that overrun it), raising ``CostCapExceeded``.
    """

    def __init__(self, governor: Any, *, stop_streams_at_cap: bool = False) -> None:
        self.governor = governor
        self.stop_streams_at_cap = stop_streams_at_cap

    def _check_args(
        self, model: str, messages: Sequence[Mapping[str, Any]], kwargs: Mapping[str, Any], metadata: Any
    ) -> dict[str, Any]:
        return {
            "model": model,
            "messages": messages,
            "max_tokens": _requested_max_tokens(kwargs),
            "tools": kwargs.get("tools"),
            "metadata": {**(metadata or {}), API_KEY: "chat"},
        }

    def completion(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        governor_metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """``litellm.completion`` governed; extra keyword arguments go to litellm unchanged."""
        decision = self.governor.check(**self._check_args(model, messages, kwargs, governor_metadata))
        if decision.blocked:
            raise block_error(decision)
        request = send_kwargs(decision, kwargs)
        if request.get("stream"):
            with_usage_option(request)
        try:
            response = litellm().completion(**request)
        except Exception as exc:
            self.governor.record(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        if request.get("stream"):
            return GovernedStream(
                response,
                self.governor,
                decision,
                stop_at_cap=self.stop_streams_at_cap,
                show_usage_chunk=asked_for_usage(kwargs),
            )
        self.governor.record(decision, **response_usage(response, decision).as_kwargs())
        return response

    async def acompletion(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        governor_metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """``litellm.acompletion`` governed; extra keyword arguments go to litellm unchanged."""
        decision = await self.governor.acheck(**self._check_args(model, messages, kwargs, governor_metadata))
        if decision.blocked:
            raise block_error(decision)
        request = send_kwargs(decision, kwargs)
        if request.get("stream"):
            with_usage_option(request)
        try:
            response = await litellm().acompletion(**request)
        except Exception as exc:
            await self.governor.arecord(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        if request.get("stream"):
            return AsyncGovernedStream(
                response,
                self.governor,
                decision,
                stop_at_cap=self.stop_streams_at_cap,
                show_usage_chunk=asked_for_usage(kwargs),
            )
        await self.governor.arecord(decision, **response_usage(response, decision).as_kwargs())
        return response

    # -- the other API shapes: one governed call each, sync and async ------------------------------------

    def _call(self, shape: str) -> GovernedCall:
        return GovernedCall(shape, self.governor, stop_at_cap=self.stop_streams_at_cap and shape != "embeddings")

    def responses(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """``litellm.responses`` governed (``stream=True`` included)."""
        return self._call("responses").create(litellm().responses, kwargs, governor_metadata)

    async def aresponses(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """``litellm.aresponses`` governed (``stream=True`` included)."""
        return await self._call("responses").acreate(litellm().aresponses, kwargs, governor_metadata)

    def anthropic_messages(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """``litellm.anthropic.messages.create`` governed: the Anthropic Messages API to any provider."""
        return self._call("messages").create(litellm().anthropic.messages.create, kwargs, governor_metadata)

    async def aanthropic_messages(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """``litellm.anthropic.messages.acreate`` governed."""
        return await self._call("messages").acreate(litellm().anthropic.messages.acreate, kwargs, governor_metadata)

    def text_completion(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """``litellm.text_completion`` governed (legacy completions: ``prompt``)."""
        return self._call("completions").create(litellm().text_completion, kwargs, governor_metadata)

    async def atext_completion(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """``litellm.atext_completion`` governed."""
        return await self._call("completions").acreate(litellm().atext_completion, kwargs, governor_metadata)

    def embedding(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """``litellm.embedding`` governed: costed by input tokens."""
        return self._call("embeddings").create(litellm().embedding, kwargs, governor_metadata)

    async def aembedding(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """``litellm.aembedding`` governed."""
        return await self._call("embeddings").acreate(litellm().aembedding, kwargs, governor_metadata)


__all__ = ["DECISION_ID_KEY", "GovernedLiteLLM", "response_usage", "send_kwargs"]
