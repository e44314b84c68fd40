"""pydantic-ai capability: every model request of an ``Agent`` goes through the governor.

    agent = Agent(model, capabilities=[GovernorCapability(gov, models={"gpt-4o-mini": cheap})])

``wrap_model_request`` checks the request, then reroutes (the ``Model``
registered under the decided name, else ``infer_model(name)``), trims the
request's messages, clamps ``max_tokens`` in the model settings and records the
response's ``usage``. A block raises the ``CallBlocked`` subclass
(``on_block="raise"``, the default) or skips the model call with
``SkipModelRequest`` and a text response naming the rule (``on_block="end"``).
The governor's ``run_id`` is pydantic-ai's ``ctx.run_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import SkipModelRequest
from pydantic_ai.messages import ModelRequest, ModelResponse, SystemPromptPart, TextPart, ToolCallPart
from pydantic_ai.models import Model

from governor.decision import Decision
from governor.integrations._common import block_error, block_message, kept_messages, message_text
from governor.integrations.usage import estimated_usage, from_pydantic_ai


def _part_text(part: Any) -> str:
    if isinstance(part, ToolCallPart):
        return f"{part.tool_name}({part.args_as_json_str()})"
    content = getattr(part, "content", None)
    if content is None:
        return ""
    if isinstance(content, (str, list, tuple)):
        return message_text(content)
    return str(content)


def to_chat_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """One chat dict per pydantic-ai message, for counting and trimming (not for sending)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        text = "\n".join(t for t in (_part_text(p) for p in msg.parts) if t)
        if isinstance(msg, ModelRequest):
            if getattr(msg, "instructions", None):
                text = f"{msg.instructions}\n{text}"
            role = "system" if any(isinstance(p, SystemPromptPart) for p in msg.parts) else "user"
        else:
            role = "assistant"
        out.append({"role": role, "content": text})
    return out


@dataclass
class GovernorCapability(AbstractCapability[Any]):
    """Checks, reroutes, trims, clamps or blocks each model request of a pydantic-ai agent."""

    governor: Any
    models: Mapping[str, Model] = field(default_factory=dict)
    on_block: Literal["raise", "end"] = "raise"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.on_block not in ("raise", "end"):
            raise ValueError(f"on_block must be 'raise' or 'end', not {self.on_block!r}")

    @classmethod
    def get_serialization_name(cls) -> str | None:
        return None

    def model_for(self, name: str) -> Model:
        if name in self.models:
            return self.models[name]
        from pydantic_ai.models import infer_model

        return infer_model(name)

    def _blocked(self, decision: Decision) -> None:
        if self.on_block == "raise":
            raise block_error(decision)
        raise SkipModelRequest(ModelResponse(parts=[TextPart(block_message(decision))], model_name="governor"))

    def _apply(self, request_context: Any, decision: Decision, sent: list[dict[str, Any]], name: str) -> Any:
        changes: dict[str, Any] = {}
        if decision.model != name:
            changes["model"] = self.model_for(decision.model)
        if len(decision.messages) != len(sent):
            changes["messages"] = kept_messages(request_context.messages, sent, decision.messages)
        if decision.max_tokens is not None:
            changes["model_settings"] = {**(request_context.model_settings or {}), "max_tokens": decision.max_tokens}
        return replace(request_context, **changes) if changes else request_context

    async def wrap_model_request(self, ctx: Any, *, request_context: Any, handler: Any) -> ModelResponse:
        name = request_context.model.model_name
        sent = to_chat_messages(request_context.messages)
        settings = request_context.model_settings or {}
        metadata = dict(self.metadata)
        if getattr(ctx, "run_id", None):
            metadata["run_id"] = str(ctx.run_id)
        decision = await self.governor.acheck(
            model=name,
            messages=sent,
            max_tokens=settings.get("max_tokens"),
            tools=[t.name for t in request_context.model_request_parameters.function_tools] or None,
            metadata=metadata,
        )
        if decision.blocked:
            self._blocked(decision)
        try:
            response = await handler(self._apply(request_context, decision, sent, name))
        except SkipModelRequest:
            raise
        except Exception as exc:
            await self.governor.arecord(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        usage = from_pydantic_ai(response.usage)
        if usage is None or (usage.input_tokens == 0 and usage.output_tokens == 0):
            usage = estimated_usage(decision.input_tokens, "".join(_part_text(p) for p in response.parts))
        await self.governor.arecord(decision, **usage.as_kwargs())
        return response


__all__ = ["GovernorCapability", "to_chat_messages"]
