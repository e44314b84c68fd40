"""Fixtures for the integration tests: policy files, and one real litellm proxy per session."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from litellm_proxy_proc import ProxyProcess, start_proxy, write_config  # noqa: E402

PROXY_POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: proxy-test}
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
context:
  - id: long-history
    match: {task: chat}
    max_input_tokens: 100
    action: trim
    keep_last: 2
calls:
  - id: out-cap
    max_output_tokens: 256
budgets:
  - id: per-run
    scope: run
    match: {task: agent-loop}
    limit: {calls: 12}
"""


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class GovernedProxy:
    """The running proxy plus the files it writes: decision log and the probe of sent requests."""

    def __init__(self, proc: ProxyProcess, decisions: Path, probe: Path) -> None:
        self.proc = proc
        self.decisions_path = decisions
        self.probe_path = probe

    @property
    def base_url(self) -> str:
        return self.proc.base_url

    def decisions(self) -> list[dict[str, Any]]:
        return read_jsonl(self.decisions_path)

    def sent(self) -> list[dict[str, Any]]:
        return read_jsonl(self.probe_path)


@pytest.fixture(scope="session")
def governed_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GovernedProxy]:
    directory = tmp_path_factory.mktemp("proxy")
    policy = directory / "policy.yaml"
    policy.write_text(PROXY_POLICY)
    decisions, probe = directory / "decisions.jsonl", directory / "probe.jsonl"
    env = {"GOVERNOR_POLICY": str(policy), "GOVERNOR_DECISION_LOG": str(decisions), "GOVERNOR_TEST_PROBE": str(probe)}
    proc = start_proxy(write_config(directory, governed=True), env, directory / "proxy.log")
    try:
        yield GovernedProxy(proc, decisions, probe)
    finally:
        proc.stop()
