"""Governed OpenAI Python client: ``wrap(client, gov)`` governs every call that costs money.

    client = wrap(OpenAI(), gov)
    client.chat.completions.create(model="gpt-4o", messages=[...], governor_metadata={"task": "chat"})
    client.responses.create(model="gpt-4.1", input="...", governor_metadata={"task": "agent"})

Governed: ``chat.completions.create``, ``responses.create`` (``stream=True``
included), ``responses.stream``, ``completions.create`` and
``embeddings.create``. Works for ``OpenAI`` and ``AsyncOpenAI`` (and any
OpenAI-compatible server behind ``base_url``); everything else on the client is
the client's own. A block raises the ``CallBlocked`` subclass of the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from governor.integrations._chat_stream import (
    AsyncGovernedStream,
    GovernedStream,
    asked_for_usage,
    with_usage_option,
)
from governor.integrations._common import block_error
from governor.integrations._governed_call import API_KEY, GovernedCall
from governor.integrations.usage import Usage, estimated_usage, from_chat_usage


def _usage(response: Any, input_tokens: int) -> Usage:
    found = from_chat_usage(getattr(response, "usage", None), service_tier=getattr(response, "service_tier", None))
    if found is not None:
        return found
    try:
        text = response.choices[0].message.content or ""
    except (AttributeError, IndexError):
        text = ""
    return estimated_usage(input_tokens, text)


def _prepare(governor_metadata: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    requested = kwargs.get("max_completion_tokens", kwargs.get("max_tokens"))
    return {
        "model": kwargs["model"],
        "messages": kwargs["messages"],
        "max_tokens": None if requested is None else int(requested),
        "tools": kwargs.get("tools"),
        "metadata": {**(governor_metadata or {}), API_KEY: "chat"},
    }


def _decided(decision: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    out["model"] = decision.model
    out["messages"] = list(decision.messages)
    if decision.max_tokens is not None:
        out["max_completion_tokens" if "max_completion_tokens" in kwargs else "max_tokens"] = decision.max_tokens
    if out.get("stream"):
        with_usage_option(out)
    return out


class _Completions:
    def __init__(self, inner: Any, governor: Any, stop_at_cap: bool) -> None:
        self._inner, self._gov, self._stop_at_cap = inner, governor, stop_at_cap

    def create(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        decision = self._gov.check(**_prepare(governor_metadata, kwargs))
        if decision.blocked:
            raise block_error(decision)
        request = _decided(decision, kwargs)
        try:
            response = self._inner.create(**request)
        except Exception as exc:
            self._gov.record(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        if request.get("stream"):
            return GovernedStream(
                response, self._gov, decision, stop_at_cap=self._stop_at_cap, show_usage_chunk=asked_for_usage(kwargs)
            )
        self._gov.record(decision, **_usage(response, decision.input_tokens).as_kwargs())
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AsyncCompletions:
    def __init__(self, inner: Any, governor: Any, stop_at_cap: bool) -> None:
        self._inner, self._gov, self._stop_at_cap = inner, governor, stop_at_cap

    async def create(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        decision = await self._gov.acheck(**_prepare(governor_metadata, kwargs))
        if decision.blocked:
            raise block_error(decision)
        request = _decided(decision, kwargs)
        try:
            response = await self._inner.create(**request)
        except Exception as exc:
            await self._gov.arecord(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        if request.get("stream"):
            return AsyncGovernedStream(
                response, self._gov, decision, stop_at_cap=self._stop_at_cap, show_usage_chunk=asked_for_usage(kwargs)
            )
        await self._gov.arecord(decision, **_usage(response, decision.input_tokens).as_kwargs())
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Chat:
    def __init__(self, inner: Any, completions: Any) -> None:
        self._inner = inner
        self.completions = completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Resource:
    """An SDK resource (``responses``, ``completions``, ``embeddings``) whose ``create`` / ``stream`` are governed;
    everything else on it is the SDK's own."""

    def __init__(self, inner: Any, call: GovernedCall, is_async: bool) -> None:
        self._inner, self._call, self._async = inner, call, is_async

    def create(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        if self._async:
            return self._call.acreate(self._inner.create, kwargs, governor_metadata)
        return self._call.create(self._inner.create, kwargs, governor_metadata)

    def stream(self, *, governor_metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        if self._async:
            return self._call.astream(self._inner.stream, kwargs, governor_metadata)
        return self._call.stream(self._inner.stream, kwargs, governor_metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GovernedClient:
    """An OpenAI client whose model calls (chat, Responses, completions, embeddings) are governed."""

    def __init__(self, client: Any, governor: Any, *, stop_streams_at_cap: bool = False) -> None:
        self._client = client
        self.governor = governor
        from openai import AsyncClient  # the base of AsyncOpenAI and AsyncAzureOpenAI

        is_async = isinstance(client, AsyncClient)
        cls = _AsyncCompletions if is_async else _Completions
        self.chat = _Chat(client.chat, cls(client.chat.completions, governor, stop_streams_at_cap))
        cap = stop_streams_at_cap
        self.responses = _Resource(client.responses, GovernedCall("responses", governor, stop_at_cap=cap), is_async)
        self.completions = _Resource(
            client.completions, GovernedCall("completions", governor, stop_at_cap=cap), is_async
        )
        self.embeddings = _Resource(client.embeddings, GovernedCall("embeddings", governor), is_async)

    @property
    def unwrapped(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def wrap(client: Any, governor: Any, *, stop_streams_at_cap: bool = False) -> GovernedClient:
    """Govern the model calls of an ``OpenAI`` or ``AsyncOpenAI`` client (chat, Responses, completions,
    embeddings)."""
    return GovernedClient(client, governor, stop_streams_at_cap=stop_streams_at_cap)


__all__ = ["GovernedClient", "wrap"]
