"""Policy tests: YAML files of cases beside the policies, run through the real engine.

A test file ``policies/<name>.test.yaml`` tests ``policies/<name>.yaml`` (or
the file named by its ``policy:`` key). Each case is one call, an optional
starting state, and what the decision must be::

    cases:
      - name: summaries go to the cheap model
        call: {model: strong, input_tokens: 1200, max_tokens: 500, metadata: {task: summarize}}
        # or messages: [{role: user, content: "..."}]
        state:                       # optional
          run_calls: 150             # prior calls of this run, made through the governor first
          prior_calls: [{input_tokens: 900, output_tokens: 10, error: timeout}]   # or explicit ones
          run_age: 50m               # prior calls happen this long before the tested call
          spend: [{budget: per-user-daily, value: alice, usd: 39.5}]
          now: 2026-01-01T09:00:00Z  # the simulated clock (default 2026-01-01T00:00:00Z)
        expect:
          verdict: reroute           # allow | reroute | trim | block
          model: claude-haiku-4-5
          rule_ids: [housekeeping-cheap]   # exactly these (any order); rules_include: subset
          blocked_by: per-user-daily # optional: the one rule that blocked the call
          block_kind: budget         # optional

Every case gets a fresh governor, ledger and clock, so cases never leak into
each other. A failure reads ``Want block, got allow (rule per-run)``.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governor.errors import GovernorError
from governor.policy.model import Policy
from governor.replay.state import _time, apply_spend

DEFAULT_NOW = 1767225600.0  # 2026-01-01T00:00:00Z
CASE_KEYS = {"name", "call", "state", "expect"}
CALL_KEYS = {"model", "messages", "input_tokens", "max_tokens", "metadata", "tools"}
STATE_KEYS = {"run_calls", "prior_calls", "run_age", "spend", "now"}
EXPECT_KEYS = {"verdict", "model", "blocked_by", "rule_ids", "rules_include", "block_kind", "max_tokens"}
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")


@dataclass
class CaseResult:
    """The outcome of one case."""

    file: str
    """The test file, as given."""
    name: str
    """The case's ``name`` (or its place, ``FILE: cases[i]``, when it has none)."""
    failures: list[str] = field(default_factory=list)
    """One line per unmet expectation (``Want block, got allow ...``); empty when the case passed."""
    seconds: float = 0.0
    """Wall time of the case (building the governor, the starting state and the call)."""

    @property
    def ok(self) -> bool:
        return not self.failures


class TestFileError(GovernorError):
    """A test file is malformed: names the file, the case and the field."""


def test_file_schema() -> dict[str, Any]:
    """The packaged JSON Schema of policy test files (``governor/schema/policy-test-v1.json``), for editors."""
    import json
    from importlib import resources

    text = resources.files("governor").joinpath("schema/policy-test-v1.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = DURATION.match(str(value))
    if not m:
        raise TestFileError(f"{where}: expected seconds or a duration like 30s, 10m, 2h, got {value!r}")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _check_keys(obj: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise TestFileError(f"{where}: must be a mapping")
    unknown = set(obj) - allowed
    if unknown:
        raise TestFileError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(allowed))}"
        )
    return obj


def load_test_file(path: Path) -> tuple[Path, list[Mapping[str, Any]]]:
    """(policy path, cases) of one test file."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TestFileError(f"{path}: cannot read test file: {exc}") from exc
    doc = _check_keys(doc, {"policy", "cases"}, str(path))
    name = path.name[: -len(".test.yaml")] if path.name.endswith(".test.yaml") else path.stem
    policy = path.parent / str(doc.get("policy") or f"{name}.yaml")
    cases = doc.get("cases") or []
    if not isinstance(cases, list):
        raise TestFileError(f"{path}: 'cases' must be a list")
    return policy, cases


def _call_args(call: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not call.get("model"):
        raise TestFileError(f"{where}.call.model: required")
    if call.get("messages") is None and call.get("input_tokens") is None:
        raise TestFileError(f"{where}.call: give messages or input_tokens")
    return {
        "model": str(call["model"]),
        "messages": list(call.get("messages") or []),
        "max_tokens": call.get("max_tokens"),
        "metadata": dict(call.get("metadata") or {}),
        "input_tokens": call.get("input_tokens"),
        "tools": call.get("tools"),
    }


def run_case(policy: Policy, case: Any, where: str, file: str) -> CaseResult:
    from governor.engine.governor import Governor
    from governor.ledger.memory import MemoryLedger

    case = _check_keys(case, CASE_KEYS, where)
    name = str(case.get("name") or where)
    call = _call_args(_check_keys(case.get("call"), CALL_KEYS, f"{where}.call"), where)
    state = _check_keys(case.get("state"), STATE_KEYS, f"{where}.state")
    expect = _check_keys(case.get("expect"), EXPECT_KEYS, f"{where}.expect")
    if not expect:
        raise TestFileError(f"{where}.expect: required (at least a verdict)")
    now = _time(state.get("now"), f"{where}.state") or DEFAULT_NOW
    clock = [now]
    ledger = MemoryLedger()
    gov = Governor(policy, ledger=ledger, clock=lambda: clock[0])
    apply_spend(policy, ledger, state.get("spend"), now=now, source=f"{where}.state")
    prior = list(state.get("prior_calls") or [])
    prior += [{}] * int(state.get("run_calls") or 0)
    clock[0] = now - _seconds(state.get("run_age", 0), f"{where}.state.run_age")
    for i, p in enumerate(prior):
        p = _check_keys(p, CALL_KEYS | {"output_tokens", "error"}, f"{where}.state.prior_calls[{i}]")
        # prior calls differ from each other (distinct messages) unless the file says otherwise,
        # so a repeated-call stop condition only fires when a test asks for it
        distinct = [{"role": "user", "content": f"prior call {i + 1}"}]
        args = {**call, "messages": distinct, **{k: v for k, v in p.items() if k in CALL_KEYS}}
        if args.get("input_tokens") is None:
            args["input_tokens"] = call.get("input_tokens") or 100
        if p.get("metadata"):
            args["metadata"] = {**call["metadata"], **p["metadata"]}
        d = gov.check(**args)
        if d.verdict != "block":
            gov.record(
                d,
                input_tokens=int(args.get("input_tokens") or d.input_tokens),
                output_tokens=int(p.get("output_tokens") or 0),
                error=p.get("error"),
            )
    clock[0] = now
    d = gov.check(**call)
    return CaseResult(file, name, compare(expect, d))


def compare(expect: Mapping[str, Any], d: Any) -> list[str]:
    """Failure lines, Kyverno-style: ``Want block, got allow (rule per-run)``."""
    out = []
    got_rules = sorted(d.rule_ids)
    want_rules = expect.get("rule_ids")
    if "verdict" in expect and expect["verdict"] != d.verdict:
        rules = (
            [expect["blocked_by"]]
            if expect.get("blocked_by")
            else want_rules or expect.get("rules_include") or got_rules
        )
        shown = f" (rule {', '.join(rules)})" if rules else ""
        reason = f": {'; '.join(d.reasons)}" if d.reasons else ""
        out.append(f"Want {expect['verdict']}, got {d.verdict}{shown}{reason}")
    verdict_ok = expect.get("verdict", d.verdict) == d.verdict
    if "blocked_by" in expect and expect["blocked_by"] != d.blocked_by and verdict_ok:
        out.append(f"Want blocked by {expect['blocked_by']}, got {d.blocked_by or 'nothing'}")
    if "model" in expect and expect["model"] != d.model:
        out.append(f"Want model {expect['model']}, got {d.model}")
    if want_rules is not None and sorted(want_rules) != got_rules:
        out.append(f"Want rules [{', '.join(sorted(want_rules))}], got [{', '.join(got_rules)}]")
    missing = [r for r in expect.get("rules_include") or [] if r not in d.rule_ids]
    if missing:
        out.append(f"Want rules including [{', '.join(missing)}], got [{', '.join(got_rules)}]")
    if "block_kind" in expect and expect["block_kind"] != d.block_kind:
        out.append(f"Want block_kind {expect['block_kind']}, got {d.block_kind}")
    if "max_tokens" in expect and expect["max_tokens"] != d.max_tokens:
        out.append(f"Want max_tokens {expect['max_tokens']}, got {d.max_tokens}")
    return out


def find_test_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(p.rglob("*.test.yaml")))
        elif p.is_file():
            files.append(p)
        else:
            raise TestFileError(f"{p}: no such test file or directory")
    return files


def case_name(case: Any, where: str) -> str:
    """The name a case is reported (and selected with ``-k``) by."""
    return str(case.get("name") or where) if isinstance(case, Mapping) else where


def selected(file: str, name: str, patterns: list[str] | None) -> bool:
    """Whether ``-k`` patterns select a case: each pattern is a case-insensitive substring
    of ``FILE::NAME``, or a glob (``*``, ``?``, ``[``) matched against the name or ``FILE::NAME``;
    any pattern selects. No patterns select every case."""
    if not patterns:
        return True
    full = f"{file}::{name}".lower()
    for pattern in patterns:
        p = pattern.lower()
        if any(ch in p for ch in "*?[") and (fnmatch.fnmatchcase(name.lower(), p) or fnmatch.fnmatchcase(full, p)):
            return True
        if p in full:
            return True
    return False


def run_file(path: Path, select: list[str] | None = None, stop_at_failure: bool = False) -> list[CaseResult]:
    """Run the cases of one test file (those ``select`` patterns pick; see :func:`selected`).

    With ``stop_at_failure`` the run ends after the first failing case.
    """
    from governor.policy.loader import load_policy

    policy_path, cases = load_test_file(path)
    if not policy_path.is_file():
        raise TestFileError(f"{path}: policy {policy_path} not found (set 'policy:' in the test file)")
    policy = load_policy(str(policy_path))
    results = []
    for i, case in enumerate(cases):
        where = f"{path}: cases[{i}]"
        if not selected(str(path), case_name(case, where), select):
            continue
        start = time.perf_counter()
        result = run_case(policy, case, where, str(path))
        result.seconds = time.perf_counter() - start
        results.append(result)
        if stop_at_failure and not result.ok:
            break
    return results
