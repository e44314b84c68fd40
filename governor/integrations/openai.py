"""Governed OpenAI Python client: ``wrap(client, gov)`` governs every call that costs money.

    client = wrap(OpenAI(), gov)
    client.chat.completions.create(model="gpt-4o", messages=[...], governor_metadata={"task": "chat"})
    client.responses.create(model="gpt-4.1", input="...", governor_metadata={"task": "agent"})

Governed: ``chat.completions.create`` / ``parse`` / ``stream``,
``responses.create`` (``stream=True`` included) / ``parse`` / ``stream``,
``completions.create`` and ``embeddings.create``, each also through the
resource's ``with_raw_response`` and ``with_streaming_response``. Works for
``OpenAI`` and ``AsyncOpenAI`` (and any OpenAI-compatible server behind
``base_url``); everything else on the client is the client's own. A block
raises the ``CallBlocked`` subclass of the decision.
"""

from __future__ import annotations

from typing import Any

from governor.integrations._governed_call import GovernedCall, GovernedResource, WrappedClient


class _Chat:
    def __init__(self, inner: Any, completions: GovernedResource) -> None:
        self._inner = inner
        self.completions = completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GovernedClient(WrappedClient):
    """An OpenAI client whose model calls (chat, Responses, completions, embeddings) are governed."""

    def __init__(self, client: Any, governor: Any, *, stop_streams_at_cap: bool = False) -> None:
        from openai import AsyncClient  # the base of AsyncOpenAI and AsyncAzureOpenAI

        self._client = client
        self.governor = governor
        is_async = isinstance(client, AsyncClient)

        def resource(inner: Any, shape: str, *methods: str) -> GovernedResource:
            call = GovernedCall(shape, governor, stop_at_cap=stop_streams_at_cap and shape != "embeddings")
            return GovernedResource(inner, call, is_async=is_async, methods=methods)

        self.chat = _Chat(client.chat, resource(client.chat.completions, "chat", "create", "parse"))
        self.responses = resource(client.responses, "responses", "create", "parse")
        self.completions = resource(client.completions, "completions", "create")
        self.embeddings = resource(client.embeddings, "embeddings", "create")


def wrap(client: Any, governor: Any, *, stop_streams_at_cap: bool = False) -> GovernedClient:
    """Govern the model calls of an ``OpenAI`` or ``AsyncOpenAI`` client (chat, Responses, completions,
    embeddings), including their ``with_raw_response`` and ``with_streaming_response`` forms."""
    return GovernedClient(client, governor, stop_streams_at_cap=stop_streams_at_cap)


__all__ = ["GovernedClient", "wrap"]
