"""LangChain v1 agent middleware: every model call of ``create_agent`` goes through the governor.

    agent = create_agent(model, tools, middleware=[GovernorMiddleware(gov, models={"gpt-4o-mini": cheap})])

``wrap_model_call`` checks the request, then reroutes (``request.override(model=...)``
with the chat model registered under the decided name, or one built by
``model_factory``, default ``init_chat_model``), trims the messages, clamps
``max_tokens`` (``model_settings``) and records the response's
``usage_metadata``. A block either raises the ``CallBlocked`` subclass
(``on_block="raise"``, the default) or ends the run with an ``AIMessage``
naming the rule and reason (``on_block="end"``).

The governor's ``run_id`` is the LangGraph run id if the config gives one,
else the thread id, else an id minted once per agent invocation.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal

from langchain.agents.middleware.types import AgentMiddleware, AgentState, ModelRequest, ModelResponse, PrivateStateAttr
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, SystemMessage, convert_to_openai_messages
from typing_extensions import NotRequired

from governor.decision import Decision
from governor.integrations._common import block_error, block_message, kept_messages, message_text
from governor.integrations.usage import Usage, estimated_usage, from_langchain

RUN_KEY = "governor_run_id"


class GovernorState(AgentState):
    """Agent state plus the governor's per-invocation run id (private: not in input/output)."""

    governor_run_id: NotRequired[Annotated[str, PrivateStateAttr]]  # type: ignore[valid-type]  # AgentState is a TypedDict


def _model_name(model: Any) -> str | None:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def _ai_message(result: Any) -> AIMessage | None:
    if isinstance(result, AIMessage):
        return result
    messages = getattr(result, "result", None)
    if messages is None:
        inner = getattr(result, "model_response", None)
        messages = getattr(inner, "result", None) or []
    return next((m for m in messages if isinstance(m, AIMessage)), None)


class GovernorMiddleware(AgentMiddleware):
    """Checks, reroutes, trims, clamps or blocks each model call of a LangChain agent."""

    state_schema = GovernorState

    def __init__(
        self,
        governor: Any,
        *,
        models: Mapping[str, BaseChatModel] | None = None,
        model_factory: Callable[[str], BaseChatModel] | None = None,
        on_block: Literal["raise", "end"] = "raise",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if on_block not in ("raise", "end"):
            raise ValueError(f"on_block must be 'raise' or 'end', not {on_block!r}")
        self.governor = governor
        self.models = dict(models or {})
        self.model_factory = model_factory
        self.on_block = on_block
        self.metadata = dict(metadata or {})

    # -- run id --------------------------------------------------------------------------
    def before_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return {RUN_KEY: uuid.uuid4().hex}

    async def abefore_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return {RUN_KEY: uuid.uuid4().hex}

    @staticmethod
    def run_id(request: ModelRequest) -> str | None:
        info = getattr(getattr(request, "runtime", None), "execution_info", None)
        for value in (getattr(info, "run_id", None), getattr(info, "thread_id", None)):
            if value:
                return str(value)
        state = request.state or {}
        return state.get(RUN_KEY)

    # -- mapping -------------------------------------------------------------------------
    def name_of(self, model: BaseChatModel) -> str:
        for registered_name, registered in self.models.items():
            if registered is model:
                return registered_name
        name = _model_name(model)
        if name is None:
            raise ValueError(
                f"cannot tell the model name of {type(model).__name__}: register it in GovernorMiddleware(models=...)"
            )
        return name

    def model_for(self, name: str) -> BaseChatModel:
        if name in self.models:
            return self.models[name]
        if self.model_factory is not None:
            return self.model_factory(name)
        from langchain.chat_models import init_chat_model

        return init_chat_model(name)

    def _check_args(self, request: ModelRequest) -> tuple[dict[str, Any], list[Any], list[Any]]:
        originals: list[Any] = ([request.system_message] if request.system_message else []) + list(request.messages)
        sent = convert_to_openai_messages(originals)
        requested = request.model_settings.get("max_tokens", getattr(request.model, "max_tokens", None))
        metadata = dict(self.metadata)
        run_id = self.run_id(request)
        if run_id:
            metadata["run_id"] = run_id
        args = {
            "model": self.name_of(request.model),
            "messages": sent,
            "max_tokens": requested if isinstance(requested, int) else None,
            "tools": [getattr(t, "name", t) for t in request.tools] or None,
            "metadata": metadata,
        }
        return args, originals, sent

    def _apply(self, request: ModelRequest, decision: Decision, originals: list[Any], sent: list[Any]) -> ModelRequest:
        overrides: dict[str, Any] = {}
        if decision.model != self.name_of(request.model):
            overrides["model"] = self.model_for(decision.model)
        if len(decision.messages) != len(sent):
            kept = kept_messages(originals, sent, decision.messages)
            system = kept[0] if kept and isinstance(kept[0], SystemMessage) else None
            overrides["messages"] = kept[1:] if system is not None else kept
            overrides["system_message"] = system
        if decision.max_tokens is not None:
            overrides["model_settings"] = {**request.model_settings, "max_tokens": decision.max_tokens}
        return request.override(**overrides) if overrides else request

    def _blocked(self, decision: Decision) -> AIMessage:
        if self.on_block == "raise":
            raise block_error(decision)
        return AIMessage(
            content=block_message(decision),
            name="governor",
            response_metadata={
                "governor_blocked": True,
                "governor_rule_ids": list(decision.rule_ids),
                "governor_revision": decision.revision,
            },
        )

    @staticmethod
    def _usage(result: Any, decision: Decision) -> Usage:
        message = _ai_message(result)
        found = from_langchain(getattr(message, "usage_metadata", None)) if message is not None else None
        if found is not None:
            return found
        return estimated_usage(decision.input_tokens, message_text(getattr(message, "content", "")))

    # -- hooks ---------------------------------------------------------------------------
    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> Any:
        args, originals, sent = self._check_args(request)
        decision = self.governor.check(**args)
        if decision.blocked:
            return self._blocked(decision)
        try:
            result = handler(self._apply(request, decision, originals, sent))
        except Exception as exc:
            self.governor.record(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        self.governor.record(decision, **self._usage(result, decision).as_kwargs())
        return result

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> Any:
        args, originals, sent = self._check_args(request)
        decision = await self.governor.acheck(**args)
        if decision.blocked:
            return self._blocked(decision)
        try:
            result = await handler(self._apply(request, decision, originals, sent))
        except Exception as exc:
            await self.governor.arecord(decision, input_tokens=0, output_tokens=0, error=exc)
            raise
        await self.governor.arecord(decision, **self._usage(result, decision).as_kwargs())
        return result


__all__ = ["GovernorMiddleware", "GovernorState"]
