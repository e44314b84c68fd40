"""The real Claude Code and Codex CLIs for end-to-end tests, run offline against a local upstream.

The CLIs are the pinned npm packages (``VERSIONS``) that the README's test
command installs into ``.ci/node`` (``GOVERNOR_AGENT_CLI_BIN`` names another
``node_modules/.bin``). Tests that need them skip, saying why, only where
node is missing; with node present and the CLIs absent they fail (CI must
install them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

VERSIONS = {"claude": "2.1.197", "codex": "0.171.0"}
NPM_PACKAGES = ("@anthropic-ai/claude-code@2.1.197", "@openai/codex@0.171.0")


def cli_bin() -> Path:
    env = os.environ.get("GOVERNOR_AGENT_CLI_BIN")
    return Path(env) if env else REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin"


def agent_cli(name: str) -> str:
    """The path of the pinned ``claude`` or ``codex``; skips without node, fails without the CLI."""
    if shutil.which("node") is None:
        pytest.skip(
            "node is not installed here, so the real coding-agent CLIs cannot run "
            "(the README's test command installs nodejs from Debian)"
        )
    path = cli_bin() / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: install the pinned CLIs with "
            f"`npm install --prefix .ci/node {' '.join(NPM_PACKAGES)}` (the README's test command does)"
        )
    return str(path)


@dataclass(frozen=True, kw_only=True)
class AgentRun:
    """One CLI run: its exit code, output and how long it took."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> dict[str, Any]:
        """Claude Code's ``--output-format json`` result object."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def claude_env(home: Path, base_url: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        **extra,
    }


def run_claude(
    prompt: str, *, cwd: Path, env: dict[str, str], model: str = "claude-sonnet-4-5", timeout: float = 90
) -> AgentRun:
    import time

    t = time.monotonic()
    out = subprocess.run(
        [agent_cli("claude"), "-p", prompt, "--model", model, "--output-format", "json", "--allowedTools", "Bash"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return AgentRun(returncode=out.returncode, stdout=out.stdout, stderr=out.stderr, seconds=time.monotonic() - t)


def hook_settings(
    project: Path,
    command: str,
    events: tuple[str, ...] = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop"),
) -> None:
    """A project ``.claude/settings.json`` that runs ``command`` on each of ``events``."""
    tool_events = {"PreToolUse", "PostToolUse"}
    hooks = {
        ev: [{**({"matcher": "*"} if ev in tool_events else {}), "hooks": [{"type": "command", "command": command}]}]
        for ev in events
    }
    (project / ".claude").mkdir(parents=True, exist_ok=True)
    (project / ".claude" / "settings.json").write_text(json.dumps({"hooks": hooks}), encoding="utf-8")


def transcripts(home: Path) -> list[Path]:
    return sorted((home / ".claude" / "projects").glob("*/*.jsonl"))


def codex_home(home: Path, base_url: str, *, hook: str | None = None, events: tuple[str, ...] = ()) -> Path:
    """A ``$CODEX_HOME`` whose ``config.toml`` points Codex at ``base_url`` (Responses API) and whose
    ``hooks.json`` runs ``hook`` on each of ``events`` (Codex 0.171 hooks, Claude Code's format)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        'model = "gpt-4o"\nmodel_provider = "scripted"\n[model_providers.scripted]\nname = "scripted"\n'
        f'base_url = "{base_url}/v1"\nenv_key = "CODEX_TEST_KEY"\nwire_api = "responses"\n',
        encoding="utf-8",
    )
    if hook is not None:
        groups = {ev: [{"hooks": [{"type": "command", "command": hook}]}] for ev in events}
        (home / "hooks.json").write_text(json.dumps({"hooks": groups}), encoding="utf-8")
    return home


def run_codex(prompt: str, *, cwd: Path, home: Path, timeout: float = 90, extra: tuple[str, ...] = ()) -> AgentRun:
    """``codex exec --json`` in ``cwd`` with ``$CODEX_HOME`` ``home``. Hooks in ``home`` are not yet trusted
    (Codex records trust per hook): ``--dangerously-bypass-hook-trust`` runs them, as automation would."""
    import time

    t = time.monotonic()
    out = subprocess.run(
        [
            agent_cli("codex"),
            "exec",
            "--skip-git-repo-check",
            "--disable",
            "plugins",
            "--dangerously-bypass-hook-trust",
            "--json",
            *extra,
            prompt,
        ],
        cwd=cwd,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(home.parent),
            "CODEX_HOME": str(home),
            "CODEX_TEST_KEY": "sk-test",
            "LANG": "C.UTF-8",
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return AgentRun(returncode=out.returncode, stdout=out.stdout, stderr=out.stderr, seconds=time.monotonic() - t)


def rollouts(home: Path) -> list[Path]:
    return sorted((home / "sessions").glob("*/*/*/rollout-*.jsonl"))
