"""What a ``governor hook`` process loads: a warm event imports neither litellm nor genai-prices, reads no
whole price table and validates no policy, and still answers as the full tables would (benchmarks/bench_hook.py
measures the time this saves)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor.hooks.price_rows import PriceRows
from governor.policy.bundled_prices import litellm_price_table
from governor.pricing import CallUsage, PriceTable
from tests.hooks.test_hook_claude_code import DATA as CLAUDE_DATA
from tests.hooks.test_hook_claude_code import TOOL_SESSION
from tests.hooks.test_hook_codex import PARENT, _rollout

PROBE = r"""
import io, json, sys
from governor.cli import main
sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[1].encode()))
out = io.StringIO()
real, sys.stdout = sys.stdout, out
code = main(sys.argv[2:])
sys.stdout = real
from governor.policy import bundled_prices
print(json.dumps({
    "code": code,
    "answer": out.getvalue(),
    "modules": sorted(m for m in ("litellm", "genai_prices", "yaml", "jsonschema", "openai", "httpx")
                      if m in sys.modules),
    "tables_read": bundled_prices._bundled.cache_info().currsize,
}))
"""

POLICY = """apiVersion: governor/v1
kind: Policy
metadata: {name: startup}
ledger: {type: sqlite, path: ledger.db}
budgets:
  - {id: session-usd, scope: run, limit: {usd: 0.0001}}
"""


def _event(agent: str) -> tuple[str, str]:
    if agent == "claude-code":
        transcript, session = CLAUDE_DATA / f"{TOOL_SESSION}.jsonl", TOOL_SESSION
    else:
        transcript, session = _rollout(PARENT), PARENT
    doc = {
        "session_id": session,
        "transcript_path": str(transcript),
        "hook_event_name": "PreToolUse",
        "model": "gpt-5.1-codex",
        "tool_name": "Bash",
        "tool_input": {"command": "make"},
    }
    return json.dumps(doc), session


def _run(tmp: Path, agent: str) -> dict[str, object]:
    raw, _ = _event(agent)
    args = ["hook", agent, "--policy", str(tmp / "policy.yaml"), "--user", "dev1", "--state-dir", str(tmp / "st")]
    env = {"PATH": "/usr/bin:/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HOME": str(tmp)}
    done = subprocess.run([sys.executable, "-c", PROBE, raw, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("agent", ["claude-code", "codex"])
def test_a_warm_hook_event_imports_no_price_library_and_reads_no_whole_table(tmp_path: Path, agent: str) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    cold = _run(tmp_path, agent)  # the machine's first event: validates the policy, reads the tables once
    assert cold["tables_read"] == 1 and "yaml" in cold["modules"]
    warm = _run(tmp_path, agent)
    assert warm["modules"] == [] and warm["tables_read"] == 0, warm
    # and the answer is the one the full tables gave: the session's spend is priced and over its limit
    for got in (cold, warm):
        out = json.loads(got["answer"])["hookSpecificOutput"]
        assert out["permissionDecision"] == "deny" and "rule session-usd" in out["permissionDecisionReason"]
    assert json.loads(cold["answer"]) == json.loads(warm["answer"])


TABLE = litellm_price_table()
NAMES = sorted(k for k, v in TABLE.items() if isinstance(v, dict) and "input_cost_per_token" in v)


def _variants(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [name, f"openai/{name}", f"anthropic/{name}", f"{name}-20990101", f"ft:{name}:org:x:1", f"{name}-nope"]
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(NAMES).flatmap(_variants), min_size=1, max_size=6))
def test_kept_price_rows_price_every_name_as_the_whole_table(tmp_path_factory, names: list[str]) -> None:
    state = tmp_path_factory.mktemp("rows")
    full = PriceTable()
    usage = CallUsage(input_tokens=1200, output_tokens=300, cache_read_tokens=200)
    # built directly: price_rows() declines when litellm is already imported (its live table then rules)
    first = PriceRows(state / "prices.json", "stamp")
    table = PriceTable(table=first, table_version=first.version, genai_dates=first.dates)
    want = [(full.lookup(n), full.quote(n, usage)) for n in names]
    assert [(table.lookup(n), table.quote(n, usage)) for n in names] == want
    first.save()
    again = PriceRows(state / "prices.json", "stamp")  # the next hook process: the rows from the file
    assert again.version == first.version
    kept = PriceTable(table=again, table_version=again.version, genai_dates=again.dates)
    assert [(kept.lookup(n), kept.quote(n, usage)) for n in names] == want
    if not any(n.startswith("ft:") for n in names):  # a fine-tune's dated base is found by listing the table
        assert again._full is None
