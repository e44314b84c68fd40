"""The real Claude Code and Codex CLIs (pinned) through the real litellm proxy with the governor, offline.

Each CLI talks to the proxy (Claude Code ``/v1/messages``, Codex
``/v1/responses``); the proxy's deployments answer from the scripted upstream
(tests/support/upstream.py), which records every request that reached it. A
session is a run (its session id), the key's user the developer.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litellm_proxy_proc import MASTER_KEY, ProxyProcess, start_proxy

from tests.support.agents import agent_cli, claude_env, run_claude
from tests.support.upstream import Received, Reply, ScriptedUpstream, Tokens, ToolCall

pytestmark = pytest.mark.slow

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: coding-agents-proxy}
models:
  prices:
    claude-opus-4-1: {input_per_mtok: 15, output_per_mtok: 75, cache_read_per_mtok: 1.5}
    claude-opus-4-8: {input_per_mtok: 5, output_per_mtok: 25, cache_read_per_mtok: 0.5}
    claude-sonnet-4-5: {input_per_mtok: 3, output_per_mtok: 15, cache_read_per_mtok: 0.3}
    claude-sonnet-4-5-20250929: {input_per_mtok: 3, output_per_mtok: 15}
budgets:
  - id: session-calls
    scope: run
    match: {model: [claude-opus-4-1, claude-opus-4-8, claude-sonnet-4-5, gpt-4o]}
    limit: {calls: 1}
  - id: developer-daily
    scope: user
    match: {model: claude-sonnet-4-5-20250929}
    limit: {calls: 3}
    window: {calendar: day}
"""


CONFIG = """\
model_list:
  - model_name: claude-opus-4-1
    litellm_params: {{model: anthropic/claude-opus-4-1, api_key: sk-fake, api_base: '{up}'}}
  - model_name: claude-opus-4-8
    litellm_params: {{model: anthropic/claude-opus-4-8, api_key: sk-fake, api_base: '{up}'}}
  - model_name: claude-sonnet-4-5
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_key: sk-fake, api_base: '{up}'}}
  - model_name: claude-sonnet-4-5-20250929
    litellm_params: {{model: anthropic/claude-sonnet-4-5-20250929, api_key: sk-fake, api_base: '{up}'}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_key: sk-fake, api_base: '{up}/v1'}}
litellm_settings:
  telemetry: false
  callbacks: [governor.integrations.litellm_proxy.proxy_handler_instance]
"""


class Env:
    def __init__(self, upstream: ScriptedUpstream, proxy: ProxyProcess, directory: Path) -> None:
        self.upstream, self.proxy, self.directory = upstream, proxy, directory


def _tool_then_text(received: Received) -> Reply:
    body = received.body if isinstance(received.body, dict) else {}
    items = body.get("messages") or body.get("input") or []
    answered = any(
        isinstance(m, dict)
        and (
            m.get("type") == "function_call_output"
            or any(
                isinstance(b, dict) and b.get("type") == "tool_result"
                for b in (m.get("content") or [])
                if isinstance(m.get("content"), list)
            )
        )
        for m in items
        if isinstance(items, list)
    )
    if answered:
        return Reply(text="done", usage=Tokens(input=60, output=4))
    if received.route == "responses":
        return Reply(tool_calls=[ToolCall("exec_command", {"cmd": "echo hi"})], usage=Tokens(input=50, output=12))
    return Reply(
        tool_calls=[ToolCall("Bash", {"command": "echo hi", "description": "say hi"})],
        usage=Tokens(input=50, output=12),
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    directory = tmp_path_factory.mktemp("coding-agents")
    (directory / "policy.yaml").write_text(POLICY)
    with ScriptedUpstream() as upstream:
        upstream.responder = _tool_then_text
        config = directory / "config.yaml"
        config.write_text(CONFIG.format(up=upstream.base_url), encoding="utf-8")
        proc = start_proxy(
            config,
            {
                "GOVERNOR_POLICY": str(directory / "policy.yaml"),
                "GOVERNOR_DECISION_LOG": str(directory / "decisions.jsonl"),
            },
            directory / "proxy.log",
            timeout=240,
        )
        try:
            yield Env(upstream, proc, directory)
        finally:
            proc.stop()


def _session_requests(env: Env, route: str, header: str, value: str) -> list[Received]:
    return [r for r in env.upstream.requests_to(route) if r.headers.get(header) == value]


@pytest.mark.parametrize("model", ["claude-opus-4-1", "claude-sonnet-4-5"])
def test_claude_code_session_is_refused_its_second_call_and_stops_with_the_reason(
    env: Env, tmp_path: Path, model: str
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    before = len(env.upstream.requests_to("messages"))
    run = run_claude(
        "say hi with bash",
        cwd=project,
        model=model,
        env=claude_env(tmp_path / "home", env.proxy.base_url, ANTHROPIC_API_KEY=MASTER_KEY),
        timeout=60,
    )
    served = env.upstream.requests_to("messages")[before:]
    assert len(served) == 1, [r.body for r in served]  # the second call never reached the upstream
    assert run.seconds < 30
    out = run.stdout + run.stderr
    assert "session-calls" in out, out[-3000:]
    if "opus" in model:
        # Claude Code sends Opus models a system message between turns (the reader once refused it)
        assert served[0].body["model"].startswith("claude-opus-")
        assert any(m.get("role") == "system" for m in served[0].body["messages"]), served[0].body["messages"]


def test_codex_session_is_refused_its_second_call_and_stops_with_the_reason(env: Env, tmp_path: Path) -> None:
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-4o"\nmodel_provider = "litellm"\n[model_providers.litellm]\nname = "proxy"\n'
        f'base_url = "{env.proxy.base_url}/v1"\nenv_key = "LITELLM_API_KEY"\nwire_api = "responses"\n',
        encoding="utf-8",
    )
    before = len(env.upstream.requests_to("responses"))
    t = time.monotonic()
    done = subprocess.run(
        [
            agent_cli("codex"),
            "exec",
            "--skip-git-repo-check",
            "--disable",
            "plugins",
            "--json",
            "say hi with the shell",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "CODEX_HOME": str(home),
            "LITELLM_API_KEY": MASTER_KEY,
            "LANG": "C.UTF-8",
        },
    )
    seconds = time.monotonic() - t
    served = env.upstream.requests_to("responses")[before:]
    assert len(served) == 1, [r.body for r in served]  # the second call never reached the upstream
    assert seconds < 30
    started = next(json.loads(x) for x in done.stdout.splitlines() if '"thread.started"' in x)
    session = started["thread_id"]  # Codex sends it as the session-id header
    refused = [
        d
        for d in _decisions(env)
        if d.get("event") == "check"
        and d.get("verdict") == "block"
        and (d.get("metadata") or {}).get("run_id") == session
    ]
    assert refused and refused[0]["blocked_by"] == "session-calls"
    assert refused[0]["metadata"]["agent"] == "codex"
    # the refusal is a 400 for Codex: it does not retry it (one refused check) and prints the governor's reason
    assert len(refused) == 1, [d["decision_id"] for d in refused]
    failed = [json.loads(x) for x in done.stdout.splitlines() if '"turn.failed"' in x]
    assert done.returncode != 0 and failed, done.stdout[-3000:]
    shown = failed[-1]["error"]["message"]
    assert "blocked by session-calls" in shown and "would exceed the calls limit 1" in shown, shown
    assert "429" not in shown and "retry limit" not in done.stdout, done.stdout[-3000:]


def _decisions(env: Env) -> list[dict[str, Any]]:
    path = env.directory / "decisions.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def test_two_concurrent_sessions_of_one_developer_never_exceed_the_shared_daily_budget(
    env: Env, tmp_path: Path
) -> None:
    shared = "claude-sonnet-4-5-20250929"
    before = len([r for r in env.upstream.requests_to("messages") if r.body.get("model") == shared])
    runs: list[Any] = [None, None]

    def session(i: int) -> None:
        project = tmp_path / f"proj{i}"
        project.mkdir()
        runs[i] = run_claude(
            "say hi with bash",
            cwd=project,
            model=shared,
            env=claude_env(tmp_path / f"home{i}", env.proxy.base_url, ANTHROPIC_API_KEY=MASTER_KEY),
            timeout=60,
        )

    threads = [threading.Thread(target=session, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = [r for r in env.upstream.requests_to("messages") if r.body.get("model") == shared][before:]
    # each session wants two calls (a tool call, then its answer): four; the developer's day allows three
    assert len(served) == 3, (
        [r.body.get("model") for r in env.upstream.requests_to("messages")],
        [r.json().get("result") for r in runs],
    )
    sessions = {r.json()["session_id"] for r in runs}
    refused = [
        d
        for d in _decisions(env)
        if d.get("event") == "check"
        and d.get("verdict") == "block"
        and (d.get("metadata") or {}).get("run_id") in sessions
    ]
    assert refused and {d["blocked_by"] for d in refused} == {"developer-daily"}
    assert any("developer-daily" in (r.stdout + r.stderr) for r in runs)
