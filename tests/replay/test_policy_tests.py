"""Every shipped policy has a test file, and ``governor test`` (the real CLI, in a subprocess) passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GOVERNOR = [str(Path(sys.executable).parent / "governor")]  # the installed console script

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: tiny}
defaults: {allow_unpriced: true}
stop:
  - {id: per-run-calls, type: max_calls, max: 3}
budgets:
  - {id: per-run-budget, scope: run, limit: {usd: 1.0}}
"""


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same CLI entry point, in this process (litellm is imported once per session)."""
    from governor.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def governor(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GOVERNOR, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": "/usr/bin:/bin"},
    )


def shipped_policies(policies: Path) -> list[Path]:
    return sorted(p for p in policies.glob("*.yaml") if not p.name.endswith(".test.yaml"))


def test_every_shipped_policy_has_a_test_file(repo_root: Path) -> None:
    policies = shipped_policies(repo_root / "policies")
    assert policies, "no policies shipped"
    missing = [p.name for p in policies if not p.with_name(p.stem + ".test.yaml").is_file()]
    assert not missing, f"policies without a test file: {missing}"


def test_shipped_policy_tests_pass_through_the_cli(repo_root: Path) -> None:
    proc = governor("test", "policies", "--format", "json", cwd=repo_root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["failed"] == 0
    tested = {Path(c["file"]).name for c in out["cases"]}
    for policy in shipped_policies(repo_root / "policies"):
        assert policy.stem + ".test.yaml" in tested
    assert out["passed"] >= 4 * len(shipped_policies(repo_root / "policies"))


def test_a_failing_case_reads_want_got_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(POLICY)
    (tmp_path / "tiny.test.yaml").write_text("""\
cases:
  - name: fourth call is blocked
    call: {model: gpt-4o-mini, input_tokens: 100, max_tokens: 10, metadata: {run_id: r1}}
    state: {run_calls: 3}
    expect: {verdict: block, rule_ids: [per-run-calls]}
  - name: wrong on purpose
    call: {model: gpt-4o-mini, input_tokens: 100, max_tokens: 10, metadata: {run_id: r2}}
    expect: {verdict: block, rule_ids: [per-run-budget]}
""")
    proc = governor("test", str(tmp_path))
    assert proc.returncode == 1
    assert "Want block, got allow (rule per-run-budget)" in proc.stdout
    assert "1 passed, 1 failed" in proc.stdout


def test_run_budget_spent_in_the_starting_state_blocks(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tiny.yaml").write_text(POLICY)
    (tmp_path / "tiny.test.yaml").write_text("""\
cases:
  - name: budget already spent
    call: {model: gpt-4o-mini, input_tokens: 100, max_tokens: 10, metadata: {run_id: r1}}
    state: {spend: [{budget: per-run-budget, value: r1, usd: 1.0}]}
    expect: {verdict: block, rule_ids: [per-run-budget], block_kind: budget}
  - name: another run is not affected
    call: {model: gpt-4o-mini, input_tokens: 100, max_tokens: 10, metadata: {run_id: r2}}
    state: {spend: [{budget: per-run-budget, value: r1, usd: 1.0}]}
    expect: {verdict: allow, rule_ids: []}
""")
    code, out, err = in_process(capsys, "test", str(tmp_path / "tiny.test.yaml"))
    assert code == 0, out + err
    assert "2 passed, 0 failed" in out


def test_no_test_case_is_a_failure(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tiny.yaml").write_text(POLICY)
    (tmp_path / "tiny.test.yaml").write_text("cases: []\n")
    code, _, err = in_process(capsys, "test", str(tmp_path))
    assert code == 1
    assert "no test case ran" in err


@pytest.mark.parametrize(
    "body, message",
    [
        ("cases:\n  - call: {model: m, input_tokens: 1}\n    expect: {verdikt: allow}\n", "unknown key(s) verdikt"),
        ("cases:\n  - call: {input_tokens: 1}\n    expect: {verdict: allow}\n", "cases[0].call.model: required"),
        (
            "cases:\n  - call: {model: m, input_tokens: 1}\n    state: {spend: [{budget: nope, usd: 1}]}\n"
            "    expect: {verdict: allow}\n",
            "unknown budget id 'nope'",
        ),
    ],
)
def test_malformed_test_files_name_the_place(tmp_path: Path, body: str, message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tiny.yaml").write_text(POLICY)
    (tmp_path / "tiny.test.yaml").write_text(body)
    code, _, err = in_process(capsys, "test", str(tmp_path))
    assert code == 2
    assert "tiny.test.yaml" in err and message in err, err
