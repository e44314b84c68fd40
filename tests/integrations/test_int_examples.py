"""Every example in examples/ runs offline, as a user would run it, and shows what it claims."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECTED = {
    "litellm_sdk.py": [
        "rerouted: asked gpt-4o, served by gpt-4o-mini",
        "streamed: streamed answer",
        "blocked by per-run",
    ],
    "openai_client.py": ["answered by gpt-4o-mini", "stopped by loop"],
    "langchain_agent.py": ["tool: 3 results for q2", "[blocked by per-run; rules: triage-cheap, per-run;"],
    "pydantic_ai_agent.py": ["cheap summary", "blocked by per-user-daily"],
    "openai_agents_sdk.py": ["final output: stop max-calls", "calls made: 2 blocked: 1"],
    "otel_spans.py": ["first call UNSET reroute ['classify-cheap']", "second call ERROR block ['per-run']"],
    "litellm_proxy.py": ["reroute by classify-cheap", "step 5: ok", "step 6: HTTP 429, rules ['out-cap', 'per-run']"],
}


def test_every_integration_has_its_example() -> None:
    assert set(EXPECTED) <= {p.name for p in EXAMPLES.glob("*.py")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen]]:
    """Start every example at once (they overlap while the proxy example waits for its server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GOVERNOR_"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    cwd = tmp_path_factory.mktemp("examples")
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in sorted(EXPECTED, key=lambda n: n != "litellm_proxy.py")  # the slow one first
    }
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_offline(name: str, runs: dict[str, subprocess.Popen]) -> None:
    stdout, stderr = runs[name].communicate(timeout=300)
    assert runs[name].returncode == 0, stderr[-3000:]
    for line in EXPECTED[name]:
        assert line in stdout, f"{line!r} not in output:\n{stdout}"
