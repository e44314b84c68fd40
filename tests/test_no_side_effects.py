"""Using the governor leaves the host process as it found it.

No environment variable, litellm global, logger or structlog setting that the
user's own code reads is changed by importing or using the governor. The one
documented exception (governor/_litellm.py): when the governor is the first to
import litellm and ``LITELLM_LOCAL_MODEL_COST_MAP`` is unset, that import uses
litellm's bundled price map; the variable itself is gone again afterwards.
Each scenario runs in a fresh interpreter, since imports happen once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

SNAPSHOT = r"""
import json, logging, os, types

def litellm_globals():
    import litellm
    out = {}
    for name, value in sorted(vars(litellm).items()):
        if name.startswith("__") or isinstance(value, (types.ModuleType, types.FunctionType, type)):
            continue
        if isinstance(value, (bool, int, float, str, type(None))):
            out[name] = repr(value)
        elif isinstance(value, (list, tuple, set, dict)):
            out[name] = f"{type(value).__name__} id={id(value)} len={len(value)}"
            if isinstance(value, (list, tuple)) and len(value) < 50:
                out[name] += " " + repr([repr(v) for v in value])
    return out

def loggers():
    names = ["", *sorted(logging.root.manager.loggerDict)]
    out = {}
    for n in names:
        lg = logging.getLogger(n)
        out[n or "root"] = [lg.level, lg.propagate, [type(h).__name__ for h in lg.handlers], lg.disabled]
    return out

def structlog_config():
    import structlog
    return repr(structlog.get_config())

def use_the_governor(tmp):
    from governor import Governor
    from governor.cli.explain import explain_lines
    from governor.integrations.litellm import GovernedLiteLLM
    from governor.policy.loader import validate_file

    gov = Governor.from_path("policies/coding-agent.yaml", record_to=os.path.join(tmp, "calls.jsonl"))
    msgs = [{"role": "user", "content": "Summarize this diff in two lines."}]
    with gov.run(run_id="r1", user="ana", agent="coder"):
        d = gov.check(model="claude-sonnet-4-5", messages=msgs, max_tokens=300, metadata={"task": "summarize"})
        gov.record(d, input_tokens=12, output_tokens=30)
        llm = GovernedLiteLLM(gov)
        reply = llm.completion(model="claude-sonnet-4-5", messages=msgs, max_tokens=200, mock_response="ok")
        assert reply.choices[0].message.content == "ok"
    gov.record_outcome("r1", "accepted")
    from pathlib import Path
    assert validate_file(Path("policies/support-bot.yaml")).ok
    explain_lines(gov.policy)
    gov.close()
"""


def _run(code: str, env_extra: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-c", SNAPSHOT + code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_governor_first_imports_litellm_with_the_bundled_map_and_leaves_environ_as_it_was(tmp_path) -> None:
    out = _run(f"""
before = dict(os.environ)
import governor
use_the_governor({str(tmp_path)!r})
import litellm
from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info
after = dict(os.environ)
print(json.dumps({{"changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
                  "source": get_model_cost_map_source_info()}}))
""")
    assert out["changed"] == []
    # the documented exception: litellm, first imported by the governor, loaded its bundled map (no fetch)
    assert out["source"]["source"] == "local" and out["source"]["url"] is None


def test_after_the_users_own_litellm_import_nothing_the_user_reads_changes(tmp_path) -> None:
    out = _run(
        f"""
import litellm, structlog
litellm.drop_params = True
litellm.success_callback = ["my_logger"]
# the user's app already calls litellm (so litellm's own lazy state is set up before the snapshot)
litellm.completion(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}], mock_response="x")
before = [dict(os.environ), litellm_globals(), loggers(), structlog_config()]
use_the_governor({str(tmp_path)!r})
after = [dict(os.environ), litellm_globals(), loggers(), structlog_config()]
diff = {{}}
for label, b, a in zip(["environ", "litellm", "loggers", "structlog"], before, after):
    if isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        changed = {{k: [b.get(k), a.get(k)] for k in keys if a.get(k) != b.get(k)}}
        # loggers the governor creates for itself (governor.*) are its own, and new ones are only added
        if label == "loggers":
            changed = {{k: v for k, v in changed.items() if v[0] is not None}}
        if changed:
            diff[label] = changed
    elif a != b:
        diff[label] = [b, a]
print(json.dumps({{"diff": diff, "env": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")}}))
""",
        {"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert out["diff"] == {}
    assert out["env"] == "True"  # the user's own setting is kept


def test_a_user_who_chose_the_remote_map_keeps_their_setting(tmp_path) -> None:
    # with the variable set (to anything), the governor imports litellm exactly as the user would
    out = _run(
        """
from governor._litellm import litellm
import sys
assert "litellm" not in sys.modules
litellm()
print(json.dumps({"env": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")}))
""",
        {"LITELLM_LOCAL_MODEL_COST_MAP": "true"},
    )
    assert out["env"] == "true"
