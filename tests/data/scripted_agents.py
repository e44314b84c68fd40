"""The scripted turns the real agent CLIs and SDKs were recorded against (for the generate/record scripts here).

A responder for tests/support/upstream.py's ScriptedUpstream: each answer is
chosen by a keyword in the conversation (USE_BASH, USE_AGENT, FAIL400 for
Claude Code; USE_SHELL for Codex; USE_TOOL for the OpenAI Agents SDK and the
Langfuse-traced client), with token counts that differ per call. Every call
answered is appended to ``log`` with the usage as it went on the wire (the
renderers' rules in upstream.py's Tokens docstrings): the independent count
the importer tests compare with.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: tests.support.upstream

from tests.support.upstream import Received, Reply, ScriptedUpstream, Tokens, ToolCall  # noqa: E402

__all__ = ["ScriptedUpstream", "scripted", "write_log"]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for b in content or []:
        if isinstance(b, dict) and b.get("type") in ("text", "input_text", "output_text"):
            out.append(str(b.get("text", "")))
    return "\n".join(out)


def _wire(route: str, t: Tokens) -> dict[str, Any]:
    if route == "messages":
        return {
            "input_tokens": t.input,
            "cache_read_input_tokens": t.cache_read,
            "cache_creation_input_tokens": t.cache_write,
            "cache_creation": {
                "ephemeral_5m_input_tokens": t.cache_write_5m,
                "ephemeral_1h_input_tokens": t.cache_write_1h,
            },
            "output_tokens": t.output,
        }
    total_in = (t.input or 0) + t.cache_read + t.cache_write
    if route == "responses":
        return {
            "input_tokens": total_in,
            "input_tokens_details": {"cached_tokens": t.cache_read},
            "output_tokens": t.output,
            "output_tokens_details": {"reasoning_tokens": t.reasoning},
        }
    return {
        "prompt_tokens": total_in,
        "completion_tokens": t.output,
        "prompt_tokens_details": {"cached_tokens": t.cache_read},
        "completion_tokens_details": {"reasoning_tokens": t.reasoning},
    }


def scripted(log: list[dict[str, Any]]) -> Callable[[Received], Reply]:
    seq = itertools.count(1)

    def answer(req: Received) -> Reply:
        n = next(seq)
        body = req.body if isinstance(req.body, dict) else {}
        route = req.route
        if route == "messages":
            msgs = body.get("messages") or []
            first = _text(msgs[0].get("content")) if msgs else ""
            results = sum(
                1
                for m in msgs
                if isinstance(m.get("content"), list)
                for b in m["content"]
                if isinstance(b, dict) and b.get("type") == "tool_result"
            )
            rid = f"req_scripted{n:04d}"
            if "FAIL400" in first:
                log.append({"n": n, "api": "anthropic", "status": 400, "request_id": rid})
                return Reply(
                    status=400,
                    error_type="invalid_request_error",
                    headers={"request-id": rid},
                    error_message="prompt is too long: 250000 tokens > 200000 maximum",
                )
            tokens = Tokens(
                input=3 + n, cache_read=1000 * n, cache_write_5m=7 * n, cache_write_1h=2000 + n, output=20 + n
            )
            if "SUBTASK" in first:
                reply = Reply(text="The subtask is done: 42.", usage=tokens)
            elif results == 0 and "USE_AGENT" in first:
                reply = Reply(
                    text="I will delegate this.",
                    usage=tokens,
                    tool_calls=[
                        ToolCall(
                            "Agent",
                            {
                                "description": "compute",
                                "prompt": "SUBTASK: compute 6*7 and reply with the number.",
                                "subagent_type": "general-purpose",
                            },
                        )
                    ],
                )
            elif results == 0 and "USE_BASH" in first:
                reply = Reply(
                    text="Let me run it.",
                    usage=tokens,
                    tool_calls=[ToolCall("Bash", {"command": "echo governed", "description": "print a word"})],
                )
            else:
                reply = Reply(text="Done.", usage=tokens)
            reply = replace(reply, headers={"request-id": rid})  # Claude Code keeps it as requestId
            log.append(
                {
                    "n": n,
                    "api": "anthropic",
                    "status": 200,
                    "request_id": rid,
                    "model": body.get("model"),
                    "session": req.headers.get("x-claude-code-session-id"),
                    "usage": _wire(route, tokens),
                }
            )
            return reply
        tools = [
            t.get("name") or (t.get("function") or {}).get("name")
            for t in body.get("tools") or []
            if isinstance(t, dict)
        ]
        if route == "responses":
            items = body.get("input") or []
            done = sum(1 for it in items if isinstance(it, dict) and it.get("type") == "function_call_output")
            said = " ".join(
                _text(it.get("content")) for it in items if isinstance(it, dict) and it.get("role") == "user"
            )
            tokens = Tokens(input=4000 + 10 * n, cache_read=1000 + n, output=30 + n, reasoning=10 + n)
        else:
            msgs = body.get("messages") or []
            done = sum(1 for m in msgs if isinstance(m, dict) and m.get("role") == "tool")
            said = " ".join(_text(m.get("content")) for m in msgs if isinstance(m, dict) and m.get("role") == "user")
            tokens = Tokens(input=600 + 10 * n, cache_read=100 + n, output=15 + n)
        calls: list[ToolCall] = []
        if "USE_SHELL" in said and done == 0:
            calls = [
                ToolCall("exec_command", {"cmd": "echo governed"})
                if "exec_command" in tools
                else ToolCall("shell", {"command": ["bash", "-lc", "echo governed"]})
            ]
        elif "USE_TOOL" in said and done == 0 and tools:
            calls = [ToolCall(str(tools[0]), {"city": "Paris"})]
        log.append(
            {
                "n": n,
                "api": "responses" if route == "responses" else "chat",
                "status": 200,
                "model": body.get("model"),
                "usage": _wire(route, tokens),
                "session": req.headers.get("session-id") or req.headers.get("session_id"),
            }
        )
        return Reply(text="Done." if not calls else "", tool_calls=calls, usage=tokens)

    return answer


def write_log(log: list[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in log))
