"""Revision: a content hash of the canonical form, plus git commit and dirty flag."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from governor.policy.loader import load_policy, load_policy_text

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: rev, labels: {a: "1", b: "2"}}
routes:
  - {id: r, to: gpt-4o-mini, match: {task: [a, b]}}
budgets:
  - {id: b, scope: run, limit: {usd: 1, calls: 5}}
"""

REORDERED = """\
# the same policy: keys reordered, flow style expanded, comments and an anchor added
kind: Policy
budgets:
  - limit: &lim
      calls: 5   # five calls
      usd: 1
    scope: run
    id: b
metadata:
  labels: {b: "2", a: "1"}
  name: rev
apiVersion: governor/v1
routes:
  - match:
      task:
        - a
        - b
    to: gpt-4o-mini
    id: r
"""


def test_hash_is_stable_under_formatting_and_key_order() -> None:
    one, two = load_policy_text(POLICY), load_policy_text(REORDERED)
    assert len(one.revision.content_hash) == 12
    assert one.revision.content_hash == two.revision.content_hash
    assert str(one.revision) == one.revision.content_hash  # no git for text


def test_hash_changes_with_meaning() -> None:
    base = load_policy_text(POLICY).revision.content_hash
    assert load_policy_text(POLICY.replace("usd: 1,", "usd: 1.5,")).revision.content_hash != base
    assert load_policy_text(POLICY.replace("[a, b]", "[b, a]")).revision.content_hash != base  # list order matters


def test_hash_is_the_same_whether_inlined_or_extended(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: base}\n"
        "budgets:\n  - {id: b, scope: run, limit: {usd: 1, calls: 5}}\n"
    )
    (tmp_path / "top.yaml").write_text(
        "apiVersion: governor/v1\nkind: Policy\nextends: base.yaml\n"
        "metadata: {name: rev, labels: {a: '1', b: '2'}}\n"
        "routes:\n  - {id: r, to: gpt-4o-mini, match: {task: [a, b]}}\n"
    )
    inline = tmp_path / "inline.yaml"
    inline.write_text(POLICY)
    assert load_policy(tmp_path / "top.yaml").revision.content_hash == load_policy(inline).revision.content_hash


def test_no_git_outside_a_work_tree(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    revision = load_policy(path).revision
    assert revision.git_commit is None and revision.git_dirty is False


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    path = tmp_path / "policies" / "p.yaml"
    path.parent.mkdir()
    path.write_text(POLICY)
    untracked = load_policy(path).revision
    assert untracked.git_commit is None and untracked.git_dirty  # no commit yet, file untracked

    git("add", ".")
    git("commit", "-qm", "policy")
    head = git("rev-parse", "HEAD").strip()
    clean = load_policy(path).revision
    assert (clean.git_commit, clean.git_dirty) == (head, False)
    assert str(clean) == f"{clean.content_hash}@{head[:12]}"

    (tmp_path / "unrelated.txt").write_text("other changes do not make the policy dirty")
    assert load_policy(path).revision.git_dirty is False

    path.write_text(POLICY + "# a comment only\n")
    dirty = load_policy(path).revision
    assert (dirty.git_commit, dirty.git_dirty) == (head, True)
    assert dirty.content_hash == clean.content_hash  # comments do not change the content hash
    assert str(dirty).endswith("+dirty")


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_an_ignored_policy_file_is_dirty(tmp_path: Path) -> None:
    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=True)
    (tmp_path / ".gitignore").write_text("*.yaml\n")
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    assert load_policy(path).revision.git_dirty is True  # not in HEAD, so not what HEAD says


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_without_a_git_binary_the_revision_is_just_the_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=False)
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no `git` to be found
    revision = load_policy(path).revision
    assert (revision.git_commit, revision.git_dirty) == (None, False)
    assert str(revision) == revision.content_hash
