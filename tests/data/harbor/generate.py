"""Re-generate the Harbor trial directories in this folder with Harbor's own code and the real Claude Code CLI.

    npm install --prefix /tmp/cli @anthropic-ai/claude-code@2.1.197
    uv venv /tmp/harbor --python 3.12 && VIRTUAL_ENV=/tmp/harbor uv pip install harbor==0.25.0
    /tmp/harbor/bin/python tests/data/harbor/generate.py /tmp/cli/node_modules/.bin

Each trial is laid out as Harbor lays one out: the agent's logs in ``agent/``
(Claude Code's session under ``agent/sessions/projects/`` from
``CLAUDE_CONFIG_DIR``, its stream-json stdout in ``agent/claude-code.txt``),
``agent/trajectory.json`` written by Harbor's own Claude Code converter
(``ClaudeCode.populate_context_post_run``: ATIF), and ``config.json`` /
``result.json`` serialised from Harbor's ``TrialConfig`` / ``TrialResult``
models, as ``harbor.trial.Trial`` writes them. The agent ran offline against
tests/support/upstream.py with the turns of ../scripted_agents.py; its log of every call served is
upstream.jsonl. The trials are written in trials/. The rewards (1.0 and 0.0) are what a verifier would have
written; no verifier ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harbor.agents.installed.claude_code import ClaudeCode
from harbor.models.agent.context import AgentContext
from harbor.models.task.id import LocalTaskId
from harbor.models.trial.config import AgentConfig, TaskConfig, TrialConfig
from harbor.models.trial.result import AgentInfo, ModelInfo, TrialResult
from harbor.models.verifier.result import VerifierResult

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from scripted_agents import ScriptedUpstream, scripted, write_log  # noqa: E402

TRIALS = (
    ("hello-world__accepted", "USE_BASH: print a word", 1.0),
    ("hello-world__rejected", "USE_AGENT: delegate a computation", 0.0),
)
MODEL = "claude-sonnet-4-5"


def main(bin_dir: str) -> None:
    claude = str(Path(bin_dir) / "claude")
    version = subprocess.run([claude, "--version"], capture_output=True, text=True).stdout.split()[0]
    scratch = Path(tempfile.gettempdir()) / "budget-governor-harbor"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "app").mkdir(parents=True)
    task_dir = scratch / "tasks" / "hello-world"
    task_dir.mkdir(parents=True)
    log: list[dict[str, Any]] = []
    upstream = ScriptedUpstream().start()
    upstream.responder = scripted(log)
    port = upstream.port
    try:
        for name, prompt, reward in TRIALS:
            trial = scratch / "trials" / name  # moved into trials/ here once written
            agent_dir = trial / "agent"
            agent_dir.mkdir(parents=True)
            env = {
                "PATH": os.environ["PATH"],
                "LANG": "C.UTF-8",
                "HOME": str(scratch / "home"),
                "CLAUDE_CONFIG_DIR": str(agent_dir / "sessions"),
                "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
                "ANTHROPIC_API_KEY": "sk-test",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_TELEMETRY": "1",
            }
            started = datetime.now(timezone.utc)
            out = subprocess.run(
                [
                    claude,
                    "--verbose",
                    "--output-format",
                    "stream-json",
                    "-p",
                    prompt,
                    "--model",
                    MODEL,
                    "--allowedTools",
                    "Bash",
                    "Agent",
                ],
                env=env,
                cwd=scratch / "app",
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
            )
            (agent_dir / "claude-code.txt").write_text(out.stdout)
            finished = datetime.now(timezone.utc)
            agent = ClaudeCode(logs_dir=agent_dir, model_name=f"anthropic/{MODEL}")
            context = AgentContext()
            agent.populate_context_post_run(context)  # writes agent/trajectory.json (ATIF)
            config = TrialConfig(
                task=TaskConfig(path=task_dir),
                trial_name=name,
                trials_dir=scratch / "trials",
                agent=AgentConfig(name="claude-code", model_name=f"anthropic/{MODEL}"),
            )
            (trial / "config.json").write_text(config.model_dump_json(indent=4, exclude_defaults=True))
            result = TrialResult(
                task_name="hello-world",
                trial_name=name,
                trial_uri=trial.as_uri(),
                task_id=LocalTaskId(path=task_dir),
                task_checksum="0" * 64,
                config=config,
                agent_info=AgentInfo(
                    name="claude-code", version=version, model_info=ModelInfo(name=MODEL, provider="anthropic")
                ),
                agent_result=context,
                verifier_result=VerifierResult(rewards={"reward": reward}),
                started_at=started,
                finished_at=finished,
            )
            (trial / "result.json").write_text(result.model_dump_json(indent=4))
    finally:
        upstream.stop()
    shutil.rmtree(HERE / "trials", ignore_errors=True)
    shutil.copytree(scratch / "trials", HERE / "trials")
    write_log(log, HERE / "upstream.jsonl")
    (HERE / "VERSIONS").write_text(f"{version} (Claude Code)\nharbor 0.25.0\n")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main(sys.argv[1])
