"""The CLI as CI uses it, through the real console script.

``governor explain --format json``; ``governor test --junit/-k/-x``;
``governor validate --format github|sarif``; the replay progress bar (only on
a terminal: a real pty here); the pre-commit hooks, run by the real pre-commit
(``try-repo`` on a temporary git repository, offline); the GitHub Action's
script, run locally on a temporary git repository with a policy change.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from governor.cli.annotations import github_annotation
from governor.errors import Finding
from tests.conftest import REPO_ROOT

BIN = Path(sys.executable).parent
GOVERNOR = str(BIN / "governor")
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

POLICY = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: tiny}
defaults: {allow_unpriced: true}
stop:
  - {id: per-run-calls, type: max_calls, max: 3}
routes:
  - {id: summaries-cheap, match: {task: summarize}, to: gpt-4o-mini}
"""

CASES = """\
cases:
  - name: summaries go cheap
    call: {model: gpt-4o, input_tokens: 100, max_tokens: 10, metadata: {task: summarize}}
    expect: {verdict: reroute, model: gpt-4o-mini}
  - name: wrong on purpose
    call: {model: gpt-4o, input_tokens: 100, max_tokens: 10}
    expect: {verdict: block}
  - name: the fourth call is blocked
    call: {model: gpt-4o, input_tokens: 100, max_tokens: 10, metadata: {run_id: r1}}
    state: {run_calls: 3}
    expect: {verdict: block, rule_ids: [per-run-calls]}
  - name: also wrong
    call: {model: gpt-4o, input_tokens: 100, max_tokens: 10}
    expect: {verdict: trim}
"""


def governor(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GOVERNOR, *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300)


def policy_dir(tmp_path: Path, cases: str = CASES) -> Path:
    d = tmp_path / "policies"
    d.mkdir()
    (d / "tiny.yaml").write_text(POLICY)
    (d / "tiny.test.yaml").write_text(cases)
    return d


# -- governor explain --format json ------------------------------------------------------------


def test_explain_json_lists_every_rule_in_order_with_its_source_and_the_text_line() -> None:
    policy = REPO_ROOT / "policies" / "support-bot.yaml"
    text = governor("explain", str(policy))
    proc = governor("explain", str(policy), "--format", "json")
    assert proc.returncode == 0 == text.returncode, proc.stderr
    out = json.loads(proc.stdout)
    doc = yaml.safe_load(policy.read_text())
    source_lines = policy.read_text().splitlines()
    assert out["policy"]["name"] == "support-bot" and out["policy"]["revision"]
    for stage in ("stop", "routes", "context", "calls", "budgets"):
        assert [r["id"] for r in out[stage]] == [r["id"] for r in doc.get(stage) or []]
        for i, rule in enumerate(out[stage]):
            assert rule["order"] == i + 1
            assert f"  {rule['text']}" in text.stdout.splitlines()  # the same line the text format prints
            assert rule["source"]["pointer"] == f"/{stage}/{i}"
            assert rule["id"] in source_lines[rule["source"]["line"] - 1]
    priced = [m for m in out["models"] if m["priced"]]
    assert priced and all(m["input_usd_per_mtok"] > 0 and m["source"] in ("policy", "litellm") for m in priced)
    assert {m["model"] for m in out["models"]} >= set(doc["models"]["aliases"].values())


# -- governor test --junit / -k / -x ------------------------------------------------------------


def test_junit_report_has_one_testcase_per_case_and_the_failures(tmp_path: Path) -> None:
    d = policy_dir(tmp_path)
    (d / "broken.test.yaml").write_text("policy: tiny.yaml\ncases:\n  - {name: x, call: {model: m}, expect: {}}\n")
    report = tmp_path / "junit.xml"
    proc = governor("test", str(d), "--junit", str(report))
    assert proc.returncode == 2, proc.stdout + proc.stderr  # the malformed file wins over the failures
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "5" and root.get("failures") == "2"
    assert root.get("errors") == "1"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    tiny = suites[str(d / "tiny.test.yaml")]
    cases = {c.get("name"): c for c in tiny.iter("testcase")}
    assert list(cases) == ["summaries go cheap", "wrong on purpose", "the fourth call is blocked", "also wrong"]
    assert cases["summaries go cheap"].find("failure") is None
    failure = cases["wrong on purpose"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("Want block, got allow")
    assert all(float(c.get("time", "-1")) >= 0 for c in cases.values())
    error = suites[str(d / "broken.test.yaml")].find("testcase/error")
    assert error is not None and "cases[0]" in error.get("message", "")


def test_k_selects_cases_by_substring_or_glob(tmp_path: Path) -> None:
    d = policy_dir(tmp_path)

    def names(*select: str) -> list[str]:
        args = [a for s in select for a in ("-k", s)]
        proc = governor("test", str(d), "--format", "json", *args)
        return [c["name"] for c in json.loads(proc.stdout)["cases"]]

    assert names("FOURTH") == ["the fourth call is blocked"]
    assert names("*wrong*") == ["wrong on purpose", "also wrong"]
    assert names("summaries", "also") == ["summaries go cheap", "also wrong"]
    assert names("tiny.test.yaml::summ") == ["summaries go cheap"]
    only = governor("test", str(d), "-k", "fourth")
    assert only.returncode == 0 and "1 passed, 0 failed" in only.stdout
    none = governor("test", str(d), "-k", "no such case")
    assert none.returncode == 1 and "no test case selected by -k ran" in none.stderr


def test_x_stops_at_the_first_failing_case(tmp_path: Path) -> None:
    d = policy_dir(tmp_path)
    every = json.loads(governor("test", str(d), "--format", "json").stdout)
    first = json.loads(governor("test", str(d), "--format", "json", "-x").stdout)
    assert [c["ok"] for c in every["cases"]] == [True, False, True, False]
    assert [c["name"] for c in first["cases"]] == ["summaries go cheap", "wrong on purpose"]
    text = governor("test", str(d), "-x")
    assert text.returncode == 1 and "stopped at the first failure" in text.stdout


# -- governor validate --format github / sarif --------------------------------------------------

BAD = """\
apiVersion: governor/v1
kind: Policy
metadata: {name: t}
calls:
  - {id: c, max_output_token: 5}
"""


def test_github_annotations_point_at_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    proc = governor(
        "validate", "--format", "github", "bad.yaml", str(REPO_ROOT / "policies" / "support-bot.yaml"), cwd=tmp_path
    )
    assert proc.returncode == 3
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("::")]
    assert (
        "::error file=bad.yaml,line=5,col=13,title=governor validate (unknown-key)::unknown key "
        "'max_output_token'" in "\n".join(lines)
    )
    assert all(re.match(r"^::(error|warning) file=[^,]+,line=\d+,col=\d+,title=[^:]+::.+$", ln) for ln in lines)


@given(st.text(), st.text(min_size=1))
def test_annotation_text_survives_any_message_and_file_name(message: str, file: str) -> None:
    line = github_annotation(Finding(severity="error", message=message, file=file, line=3, col=1, code="x"))
    assert "\n" not in line and "\r" not in line
    head, _, body = line.partition("::")[2].partition("::")
    props = dict(p.split("=", 1) for p in head.split(" ", 1)[1].split(","))
    unescape = {"%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ",", "%25": "%"}

    def undo(s: str) -> str:
        return re.sub(r"%(0D|0A|3A|2C|25)", lambda m: unescape[m.group(0)], s)

    assert undo(props["file"]) == file and undo(body) == message


def test_sarif_log_locates_every_finding(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    proc = governor("validate", "--format", "sarif", "bad.yaml", cwd=tmp_path)
    assert proc.returncode == 3
    log = json.loads(proc.stdout)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert run["tool"]["driver"]["name"] == "governor validate" and len(rules) == len(set(rules))
    text = governor("validate", "bad.yaml", cwd=tmp_path).stdout
    assert len(run["results"]) == sum(1 for ln in text.splitlines() if ": error: " in ln) >= 1
    for result in run["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"] and result["level"] in ("error", "warning")
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == "bad.yaml" and loc["region"]["startLine"] == 5
    assert "unknown-key" in rules
    good = str(REPO_ROOT / "policies" / "support-bot.yaml")
    clean = json.loads(governor("validate", "--format", "sarif", good).stdout)
    assert clean["runs"][0]["results"] == []


# -- the replay progress bar ----------------------------------------------------------------------


def _replay_with_stderr_on_a_pty(tmp_path: Path) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            GOVERNOR,
            "replay",
            "policies/tau2-airline.yaml",
            "../shared/traces/tau2",
            "--format",
            "json",
            "-o",
            str(tmp_path / "r.json"),
        ],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the pty closes when the process ends
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_shows_rate_and_eta_on_a_terminal_only(tmp_path: Path) -> None:
    shown = _replay_with_stderr_on_a_pty(tmp_path)
    frames = [f for f in shown.split("\r") if f.strip()]
    assert frames, shown
    m = re.search(r"replaying \[[#.]{30}\] (\d+)/(\d+) calls +([\d,]+) calls/s +ETA (\d+:\d\d)", frames[0])
    assert m, frames[0]
    total = int(m.group(2))
    assert total == json.loads((tmp_path / "r.json").read_text())["totals"]["calls"]
    assert any(f"{total}/{total} calls" in f and "ETA 0:00" in f for f in frames)
    piped = governor(
        "replay",
        "policies/tau2-airline.yaml",
        "../shared/traces/tau2",
        "--format",
        "json",
        "-o",
        str(tmp_path / "p.json"),
        cwd=REPO_ROOT,
    )
    assert piped.returncode == 0 and "replaying" not in piped.stderr


# -- pre-commit hooks and the GitHub Action -----------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _consumer_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "consumer"
    (repo / "policies").mkdir(parents=True)
    for name in ("support-bot.yaml", "support-bot.test.yaml"):
        shutil.copy(REPO_ROOT / "policies" / name, repo / "policies" / name)
    (repo / "notes.yaml").write_text("not: [a, policy]\n")  # outside policies/: the hooks leave it alone
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "policies")
    return repo


def test_pre_commit_hooks_pass_on_good_policies_and_fail_on_a_bad_one(tmp_path: Path) -> None:
    """The real pre-commit runs both hooks from this repository (``try-repo``, which includes
    uncommitted changes). It builds the hook's own virtualenv and pip-installs this package into it,
    offline: pip may not use an index and finds the dependencies where this environment has them."""
    repo = _consumer_repo(tmp_path)
    site = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    env = {
        **ENV,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PYTHONPATH": str(site),
    }
    pre_commit = [str(BIN / "pre-commit"), "try-repo", str(REPO_ROOT), "--all-files"]

    ok = subprocess.run(pre_commit, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert re.search(r"governor validate\.+Passed", ok.stdout) and re.search(r"governor test\.+Passed", ok.stdout)

    policy = repo / "policies" / "support-bot.yaml"
    policy.write_text(policy.read_text().replace("max_output_tokens:", "max_output_token:", 1))
    _git(repo, "add", "-A")
    bad = subprocess.run(pre_commit, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert bad.returncode == 1
    assert re.search(r"governor validate\.+Failed", bad.stdout)
    assert re.search(r"policies/support-bot\.yaml:\d+:\d+: error: unknown key 'max_output_token'", bad.stdout)


def _action_script_env(repo: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **ENV,
        "GOVERNOR_TRACES": str(REPO_ROOT / "examples" / "traces"),
        "GOVERNOR_BASE": "main",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        **extra,
    }


def test_the_action_runs_the_diff_script_with_its_inputs() -> None:
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    (diff_step,) = [s for s in action["runs"]["steps"] if s.get("id") == "diff"]
    assert diff_step["run"] == 'bash "$GITHUB_ACTION_PATH/action/policy-diff.sh"'
    for name in action["inputs"]:
        assert (
            f"inputs.{name} }}}}" in diff_step["env"].get(f"GOVERNOR_{name.upper().replace('-', '_')}", "")
            or name == "install"
        )
    assert action["outputs"]["changed"]["value"] == "${{ steps.diff.outputs.changed }}"


def test_action_script_reports_a_policy_change_and_fails_the_check(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "policies").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "policies" / "coding-agent.yaml", repo / "policies" / "coding-agent.yaml")
    shutil.copy(REPO_ROOT / "policies" / "coding-agent.test.yaml", repo / "policies" / "coding-agent.test.yaml")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "policy")
    _git(repo, "checkout", "-q", "-b", "tighter")
    script = ["bash", str(REPO_ROOT / "action" / "policy-diff.sh")]

    # only a test file changed: no policy to compare, the check passes
    (repo / "policies" / "coding-agent.test.yaml").write_text("cases: []\n")
    _git(repo, "commit", "-qam", "tests only")
    quiet = subprocess.run(script, cwd=repo, env=_action_script_env(repo, tmp_path), capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    assert "No policy under `policies` changed since `main`." in quiet.stdout
    assert (tmp_path / "output").read_text() == "changed=false\n"

    # the pull request drops the run call cap from 150 to 5: decisions change, the check fails
    policy = repo / "policies" / "coding-agent.yaml"
    policy.write_text(re.sub(r"(id: max-calls\n\s+type: max_calls\n\s+max: )150", r"\g<1>5", policy.read_text()))
    _git(repo, "commit", "-qam", "tighter")
    (tmp_path / "output").unlink()
    proc = subprocess.run(script, cwd=repo, env=_action_script_env(repo, tmp_path), capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = (tmp_path / "summary.md").read_text()
    assert "## Policy diff `main:policies/coding-agent.yaml` → `policies/coding-agent.yaml`" in summary
    assert "max-calls" in summary and re.search(r"[1-9]\d* of \d+ calls decided differently", summary)
    assert (tmp_path / "output").read_text() == "changed=true\n"

    allowed = subprocess.run(
        script,
        cwd=repo,
        env=_action_script_env(repo, tmp_path, GOVERNOR_FAIL_ON_CHANGE="false"),
        capture_output=True,
        text=True,
    )
    assert allowed.returncode == 0

    missing = subprocess.run(script, cwd=repo, env={**ENV, "GOVERNOR_BASE": "main"}, capture_output=True, text=True)
    assert missing.returncode == 2 and "GOVERNOR_TRACES is required" in missing.stderr


# -- properties of the CI outputs -----------------------------------------------------------------


@given(st.lists(st.tuples(st.text(), st.lists(st.text(), max_size=3)), max_size=5), st.text(min_size=1))
def test_junit_is_well_formed_xml_whatever_the_names_and_messages(
    cases: list[tuple[str, list[str]]], file: str
) -> None:
    from governor.cli.junit import _x, junit_xml
    from governor.replay.policytest import CaseResult

    results = [CaseResult(file, name, failures) for name, failures in cases]
    root = ET.fromstring(junit_xml([file], results, {}))
    got = list(root.iter("testcase"))
    assert len(got) == len(cases)
    assert root.get("failures") == str(sum(1 for _n, f in cases if f))
    for element, (name, failures) in zip(got, cases, strict=True):
        assert (element.find("failure") is not None) == bool(failures)
        # what XML can carry comes back as it was; the rest is U+FFFD, never a broken report
        assert set(_x(name)) <= set(name) | {"\ufffd"}
        assert element.get("name") == _x(name)


@given(st.text(), st.text(), st.text())
def test_k_never_raises_and_a_substring_of_the_name_always_selects(pattern: str, name: str, file: str) -> None:
    from governor.replay.policytest import selected

    selected(file, name, [pattern])  # any pattern, even an unclosed "[", is an answer, not an error
    if name:
        start = len(name) // 3
        assert selected(file, name, [name[start : start + 3]])
    assert selected(file, name, None) and selected(file, name, [])
