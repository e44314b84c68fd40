"""Adapters that embed the governor where LLM calls happen, and what they share.

Adapters (each imports its framework lazily; install the matching extra):

- ``litellm``: ``GovernedLiteLLM`` for the litellm SDK, every entry point.
- ``litellm_proxy``: the litellm proxy callback; ``proxy_metrics`` its metrics.
- ``openai`` / ``anthropic``: ``wrap(client, gov)`` for the OpenAI and Anthropic clients.
- ``langchain``, ``pydantic_ai``, ``openai_agents``: agent-framework hooks.
- ``otel``: decisions as OpenTelemetry span attributes.
- ``coding_agents``: the Claude Code / Codex session identity read by the proxy.

Shared:

- ``shapes``: one call model for every API shape (chat, Responses, Anthropic
  Messages, completions, embeddings) and the decided request back.
- ``usage``: provider usage reports read into ``Usage``.
- ``_governed_call``: read, check, send as decided, settle: ``GovernedCall`` and
  ``GovernedResource`` (an SDK resource with its model calls governed).
- ``_streams``: one governed stream wrapper for every API's events.
- ``_raw_response``: ``with_raw_response`` / ``with_streaming_response`` bodies.
- ``_common``: block errors and small helpers.
"""
