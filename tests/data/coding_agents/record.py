"""Re-record the Claude Code and Codex session files in this directory with the real CLIs, offline.

    npm install --prefix /tmp/cli @anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0
    python tests/data/coding_agents/record.py /tmp/cli/node_modules/.bin

Runs each CLI against tests/support/upstream.py on 127.0.0.1 (no network) with
the turns of ../scripted_agents.py, in a
scratch HOME / CODEX_HOME, then copies what the CLIs wrote into claude/projects/
(``$CLAUDE_CONFIG_DIR/projects``) and codex/sessions/
(``$CODEX_HOME/sessions``), with the upstream's own log of every call it served (upstream.jsonl)
and the CLI versions (VERSIONS). Sessions: Claude Code with a tool call, with a
subagent, with an API error, and a resumed fork of the first; Codex with a tool
call, a resume, and a fork of the first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from scripted_agents import ScriptedUpstream, scripted, write_log  # noqa: E402


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    print("$", " ".join(cmd[1:3]), "->", out.returncode, file=sys.stderr)
    return out.stdout


def main(bin_dir: str) -> None:
    claude, codex = str(Path(bin_dir) / "claude"), str(Path(bin_dir) / "codex")
    scratch = Path(tempfile.gettempdir()) / "budget-governor-record"  # fixed: the project dir name is in the data
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    log: list[dict[str, Any]] = []
    upstream = ScriptedUpstream().start()
    upstream.responder = scripted(log)
    port = upstream.port
    try:
        proj = scratch / "proj"
        proj.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "feature/replay"], cwd=proj, check=True)
        base = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
        cc = {
            **base,
            "HOME": str(scratch / "home"),
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
            "ANTHROPIC_API_KEY": "sk-test",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
        }
        flags = ["--output-format", "json"]
        first = json.loads(
            run(
                [
                    claude,
                    "-p",
                    "USE_BASH: print a word",
                    "--model",
                    "claude-sonnet-4-5",
                    *flags,
                    "--allowedTools",
                    "Bash",
                ],
                cc,
                proj,
            )
        )
        run(
            [
                claude,
                "-p",
                "USE_AGENT: delegate a computation",
                "--model",
                "claude-opus-4-1",
                *flags,
                "--allowedTools",
                "Bash",
                "Agent",
            ],
            cc,
            proj,
        )
        run([claude, "-p", "FAIL400 please", "--model", "claude-sonnet-4-5", *flags], cc, proj)
        run(
            [
                claude,
                "-p",
                "and once more",
                "--resume",
                first["session_id"],
                "--fork-session",
                "--model",
                "claude-sonnet-4-5",
                *flags,
            ],
            cc,
            proj,
        )
        codex_home = scratch / "codex-home"
        codex_home.mkdir()
        (codex_home / "config.toml").write_text(
            'model = "gpt-5.1-codex"\nmodel_provider = "litellm"\n[model_providers.litellm]\nname = "scripted"\n'
            f'base_url = "http://127.0.0.1:{port}/v1"\nenv_key = "LITELLM_API_KEY"\nwire_api = "responses"\n'
        )
        cx = {**base, "CODEX_HOME": str(codex_home), "LITELLM_API_KEY": "sk-test"}
        exec_ = [codex, "exec", "--skip-git-repo-check", "--disable", "plugins", "--json"]
        started = run([*exec_, "USE_SHELL: print a word"], cx, proj)
        thread = next(json.loads(x)["thread_id"] for x in started.splitlines() if '"thread.started"' in x)
        run(
            [
                codex,
                "exec",
                "resume",
                "--skip-git-repo-check",
                "--disable",
                "plugins",
                "--json",
                thread,
                "say it again",
            ],
            cx,
            proj,
        )
        run(
            [
                codex,
                "exec",
                "fork",
                "--skip-git-repo-check",
                "--disable",
                "plugins",
                "--json",
                thread,
                "now something else",
            ],
            cx,
            proj,
        )
    finally:
        upstream.stop()
    # laid out as the agents' homes are: CLAUDE_CONFIG_DIR=claude, CODEX_HOME=codex
    for name, src in (
        ("claude/projects", scratch / "home" / ".claude" / "projects"),
        ("codex/sessions", codex_home / "sessions"),
    ):
        shutil.rmtree(HERE / name, ignore_errors=True)
        shutil.copytree(src, HERE / name, ignore=shutil.ignore_patterns("memory"))
    write_log(log, HERE / "upstream.jsonl")
    versions = [
        subprocess.run([b, "--version"], capture_output=True, text=True).stdout.strip() for b in (claude, codex)
    ]
    (HERE / "VERSIONS").write_text("\n".join(versions) + "\n")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main(sys.argv[1])
