"""Governed Anthropic Python client: ``wrap(client, gov)`` governs ``messages.create`` / ``stream`` / ``parse``.

    from anthropic import Anthropic
    from governor.integrations.anthropic import wrap

    client = wrap(Anthropic(), gov)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=[...],
                           governor_metadata={"task": "chat"})

Works for ``Anthropic`` and ``AsyncAnthropic`` (and any server speaking the
Messages API behind ``base_url``). ``messages.create(stream=True)`` and
``messages.stream(...)`` record when the stream ends, from the usage of its
``message_start`` and last ``message_delta`` events (input excludes the cache
in Anthropic's report; the record's input includes cache reads and writes).
A stream the caller closes early records what was streamed. ``messages.parse``
and ``messages.with_raw_response`` / ``with_streaming_response`` are governed
the same way. Everything else on the client (``messages.count_tokens``,
``models``, ``beta``...) is the client's own. A
block raises the ``CallBlocked`` subclass of the decision before anything is sent.
"""

from __future__ import annotations

from typing import Any

from governor.integrations._governed_call import GovernedCall, GovernedResource, WrappedClient


class GovernedAnthropic(WrappedClient):
    """An Anthropic client whose ``messages.create`` / ``messages.stream`` are governed."""

    def __init__(self, client: Any, governor: Any, *, stop_streams_at_cap: bool = False) -> None:
        from anthropic import AsyncAnthropic

        self._client = client
        self.governor = governor
        is_async = isinstance(client, AsyncAnthropic)
        call = GovernedCall("messages", governor, stop_at_cap=stop_streams_at_cap)
        self.messages = GovernedResource(client.messages, call, is_async=is_async, methods=("create", "parse"))


def wrap(client: Any, governor: Any, *, stop_streams_at_cap: bool = False) -> GovernedAnthropic:
    """Govern ``messages.create`` and ``messages.stream`` of an ``Anthropic`` or ``AsyncAnthropic`` client."""
    return GovernedAnthropic(client, governor, stop_streams_at_cap=stop_streams_at_cap)


__all__ = ["GovernedAnthropic", "wrap"]
