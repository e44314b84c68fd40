"""``governor diff`` between two git revisions of a policy in a temporary repository, on real traces."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from governor.cli import main

V1 = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: agents}
defaults: {allow_unpriced: true}
stop:
  - {id: run-calls, type: max_calls, max: 30}
"""
V2 = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: agents}
defaults: {allow_unpriced: true}
stop:
  - {id: run-calls, type: max_calls, max: 12}
calls:
  - {id: out-cap, max_output_tokens: 64, match: {agent: user-simulator}}
"""


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "policies").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "policies" / "agents.yaml").write_text(V1)
    git(repo, "add", "policies/agents.yaml")
    git(repo, "commit", "-qm", "v1")
    (repo / "policies" / "agents.yaml").write_text(V2)
    git(repo, "commit", "-qam", "v2")
    (repo / "policies" / "agents.yaml").write_text("this working-tree copy must not be read\n")
    return repo


def run_diff(repo: Path, tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "diff.json"
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        code = main(["diff", *args, "--format", "json", "-o", str(out), "--no-progress"])
    finally:
        os.chdir(cwd)
    return code, json.loads(out.read_text())


def test_diff_of_two_git_revisions_on_tau2(repo: Path, tmp_path: Path, tau2_dir: Path) -> None:
    code, d = run_diff(
        repo,
        tmp_path,
        "HEAD~1:policies/agents.yaml",
        "HEAD:policies/agents.yaml",
        "--traces",
        str(tau2_dir),
        "--exit-code",
    )
    assert code == 1  # decisions changed
    assert d["old"]["ref"] == "HEAD~1:policies/agents.yaml"
    rules = d["rules"]
    assert [r["id"] for r in rules["added"]] == ["out-cap"]
    assert rules["removed"] == []
    assert rules["changed"] == [{"id": "run-calls", "kind": "stop", "fields": {"max": {"old": 30.0, "new": 12.0}}}]
    groups = {(g["old_verdict"], g["new_verdict"], g["rule"]): g for g in d["replay"]["groups"]}
    # independent count: runs longer than 12 calls lose every call from the 13th (those up to 30 were allowed)
    from tests.replay.conftest import tau2_docs

    newly_blocked = 0
    for doc in tau2_docs(tau2_dir):
        for sim in doc["simulations"]:
            n = sum(1 for m in sim["messages"] if m.get("usage") is not None)
            newly_blocked += max(0, min(n, 30) - 12)
    assert groups[("allow", "block", "run-calls")]["calls"] == newly_blocked
    assert groups[("allow", "block", "run-calls")]["cost_usd_delta"] < 0
    assert ("allow", "allow", "out-cap") in groups  # clamped user-simulator calls change rule ids only
    assert all(len(g["examples"]) >= 1 for g in d["replay"]["groups"])
    impact = d["replay"]["outcomes"]
    assert impact["cost_usd_governed_new"] < impact["cost_usd_governed_old"]
    assert impact["cost_usd_delta"] == pytest.approx(
        impact["cost_usd_governed_new"] - impact["cost_usd_governed_old"], abs=1e-6
    )


def test_same_policy_has_no_changes_and_exit_code_0(repo: Path, tmp_path: Path, tau2_dir: Path) -> None:
    code, d = run_diff(
        repo,
        tmp_path,
        "HEAD:policies/agents.yaml",
        "HEAD:policies/agents.yaml",
        "--traces",
        str(tau2_dir),
        "--exit-code",
    )
    assert code == 0
    assert d["replay"]["changed_calls"] == 0 and d["replay"]["groups"] == []
    assert d["rules"] == {"added": [], "removed": [], "changed": [], "settings": {}}


def test_markdown_diff_for_a_pull_request(repo: Path, tmp_path: Path, tau2_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        code = main(
            [
                "diff",
                "HEAD~1:policies/agents.yaml",
                "HEAD:policies/agents.yaml",
                "--traces",
                str(tau2_dir),
                "--format",
                "markdown",
                "--no-progress",
            ]
        )
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert code == 0
    assert "| allow -> block | run-calls |" in out
    assert "| changed | run-calls | stop | max: 30.0 -> 12.0 |" in out


def test_unknown_revision_is_a_clear_error(repo: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        code = main(["diff", "nosuchrev:policies/agents.yaml", "HEAD:policies/agents.yaml"])
    finally:
        os.chdir(cwd)
    assert code == 2
    assert "nosuchrev" in capsys.readouterr().err
