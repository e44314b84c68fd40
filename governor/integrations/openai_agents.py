"""OpenAI Agents SDK: a governed ``Model`` (and ``ModelProvider``) for ``Runner.run``.

    agent = Agent(name="a", model=GovernedModel(gov, inner_model, name="gpt-4o", models={...}))
    # or: RunConfig(model_provider=GovernedModelProvider(gov, OpenAIProvider()))

Each ``get_response`` / ``stream_response`` is checked first: the call goes to
the model registered (or provided) under the decided name, with trimmed input
items and a clamped ``max_tokens``; the response's ``usage`` is recorded. A
block raises the ``CallBlocked`` subclass (``on_block="raise"``, the default)
or returns a final assistant message naming the rule (``on_block="end"``),
which ends the run as its output. The governor's ``run_id`` is the SDK's trace
id (or, with tracing disabled, an id minted per ``Runner.run``); give the
agent's name as ``metadata={"agent": ...}`` to match rules on it. (``RunHooks``
cannot carry this: the runner gathers them in separate tasks, so nothing they
set reaches the model call, and they cannot change or stop it.)
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any, Literal

from agents.items import ModelResponse
from agents.models.interface import Model, ModelProvider
from agents.usage import Usage as AgentsUsage
from openai.types.responses import ResponseOutputMessage, ResponseOutputText

from governor.decision import Decision
from governor.integrations._common import block_error, block_message, kept_messages, message_text
from governor.integrations.usage import estimated_usage, from_responses_usage

_SYSTEM = object()
_owner_runs: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def current_run_id() -> str | None:
    """The SDK's id for the running ``Runner.run``: its trace id, else one minted per run."""
    from agents.tracing import get_current_trace

    trace = get_current_trace()
    trace_id = getattr(trace, "trace_id", None)
    if trace_id and trace_id != "no-op":
        return str(trace_id)
    try:  # the per-run owner object the runner sets around each model call
        from agents.models._run_context import get_model_run_owner
    except ImportError:  # pragma: no cover - older SDKs
        return None
    owner = get_model_run_owner()
    if owner is None:
        return None
    try:
        return _owner_runs.setdefault(owner, uuid.uuid4().hex)
    except TypeError:  # not weak-referenceable
        return None


def _item_message(item: Any) -> dict[str, Any]:
    get = item.get if isinstance(item, Mapping) else (lambda k, d=None: getattr(item, k, d))
    kind = get("type")
    if kind == "function_call":
        return {"role": "assistant", "content": f"{get('name')}({get('arguments') or ''})"}
    if kind == "function_call_output":
        return {"role": "tool", "content": message_text(get("output"))}
    return {"role": get("role") or "user", "content": message_text(get("content"))}


def to_chat_messages(system_instructions: str | None, input: str | list[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """(originals, chat dicts) for counting and trimming; the system prompt is marked, not an item."""
    items: list[Any] = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
    originals: list[Any] = ([_SYSTEM] if system_instructions else []) + items
    sent = ([{"role": "system", "content": system_instructions}] if system_instructions else []) + [
        _item_message(i) for i in items
    ]
    return originals, sent


def _final_message(text: str) -> ModelResponse:
    message = ResponseOutputMessage(
        id=f"governor-{uuid.uuid4().hex[:12]}",
        content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
        role="assistant",
        status="completed",
        type="message",
    )
    return ModelResponse(output=[message], usage=AgentsUsage(), response_id=None)


def _completed_event(response: ModelResponse) -> Any:
    """A streamed run's graceful stop: one ``response.completed`` event carrying the final message."""
    from openai.types.responses import Response, ResponseCompletedEvent

    done = Response(
        id=f"governor-{uuid.uuid4().hex[:12]}",
        created_at=0,
        model="governor",
        object="response",
        output=response.output,
        parallel_tool_calls=False,
        tool_choice="none",
        tools=[],
    )
    return ResponseCompletedEvent(response=done, sequence_number=0, type="response.completed")


class GovernedModel(Model):
    """A ``Model`` that checks with the governor before delegating to the decided model."""

    def __init__(
        self,
        governor: Any,
        inner: Model,
        *,
        name: str,
        models: Mapping[str, Model] | None = None,
        resolve: Callable[[str], Model] | None = None,
        on_block: Literal["raise", "end"] = "raise",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if on_block not in ("raise", "end"):
            raise ValueError(f"on_block must be 'raise' or 'end', not {on_block!r}")
        self.governor = governor
        self.inner = inner
        self.name = name
        self.models = dict(models or {})
        self.resolve = resolve
        self.on_block = on_block
        self.metadata = dict(metadata or {})

    def model_for(self, name: str) -> Model:
        if name == self.name:
            return self.inner
        if name in self.models:
            return self.models[name]
        if self.resolve is not None:
            return self.resolve(name)
        raise LookupError(f"the governor routed to {name!r}, but no model is registered under that name")

    async def _decide(
        self, system_instructions: str | None, input: Any, settings: Any, tools: list[Any]
    ) -> tuple[Any, ...]:
        originals, sent = to_chat_messages(system_instructions, input)
        metadata = dict(self.metadata)
        run_id = current_run_id()
        if run_id:
            metadata["run_id"] = run_id
        decision: Decision = await self.governor.acheck(
            model=self.name,
            messages=sent,
            max_tokens=getattr(settings, "max_tokens", None),
            tools=[getattr(t, "name", str(t)) for t in tools] or None,
            metadata=metadata,
        )
        if decision.blocked:
            return decision, None
        if len(decision.messages) != len(sent):
            kept = kept_messages(originals, sent, decision.messages)
            system_instructions = system_instructions if kept and kept[0] is _SYSTEM else None
            input = [m for m in kept if m is not _SYSTEM]
        if decision.max_tokens is not None:
            settings = replace(settings, max_tokens=decision.max_tokens)
        return decision, (self.model_for(decision.model), system_instructions, input, settings)

    def _blocked(self, decision: Decision) -> ModelResponse:
        if self.on_block == "raise":
            raise block_error(decision)
        return _final_message(block_message(decision))

    async def get_response(
        self,
        system_instructions: Any,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        **kw: Any,
    ) -> Any:
        decision, plan = await self._decide(system_instructions, input, model_settings, tools)
        if plan is None:
            return self._blocked(decision)
        model, system_instructions, input, model_settings = plan
        try:
            response = await model.get_response(
                system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kw
            )
        except Exception as exc:
            await self.governor.arecord(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        usage = from_responses_usage(response.usage, service_tier=getattr(response, "service_tier", None))
        if usage is None or (usage.input_tokens == 0 and usage.output_tokens == 0):
            usage = estimated_usage(decision.input_tokens)
        await self.governor.arecord(decision, **usage.as_kwargs())
        return response

    async def stream_response(
        self,
        system_instructions: Any,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        **kw: Any,
    ) -> AsyncIterator[Any]:
        decision, plan = await self._decide(system_instructions, input, model_settings, tools)
        if plan is None:
            yield _completed_event(self._blocked(decision))
            return
        model, system_instructions, input, model_settings = plan
        usage = None
        try:
            async for event in model.stream_response(
                system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kw
            ):
                if getattr(event, "type", "") == "response.completed":
                    usage = from_responses_usage(getattr(getattr(event, "response", None), "usage", None))
                yield event
        except Exception as exc:
            await self.governor.arecord(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        await self.governor.arecord(decision, **(usage or estimated_usage(decision.input_tokens)).as_kwargs())


class GovernedModelProvider(ModelProvider):
    """Wraps a provider so every model it hands out is governed (reroutes resolve through it)."""

    def __init__(self, governor: Any, inner: ModelProvider, **options: Any) -> None:
        self.governor = governor
        self.inner = inner
        self.options = options

    def get_model(self, model_name: str | None) -> Model:
        inner = self.inner.get_model(model_name)
        name = model_name or getattr(inner, "model", None) or "default"
        return GovernedModel(self.governor, inner, name=str(name), resolve=self.inner.get_model, **self.options)


__all__ = ["GovernedModel", "GovernedModelProvider", "current_run_id", "to_chat_messages"]
