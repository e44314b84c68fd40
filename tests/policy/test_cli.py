"""The real `governor` command (subprocess): validate, schema, explain, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "policies").glob("*.yaml"))
SCRIPT = Path(sys.executable).with_name("governor")


def governor(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "governor"]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_validate_the_policy_library_exits_0() -> None:
    proc = governor("validate", *LIBRARY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in LIBRARY:
        if not name.endswith(".test.yaml"):
            assert f"{name}: ok: policy '" in proc.stdout


def test_misspelled_key_exits_3_with_location_and_suggestion(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata:\n  name: bad\nbudgets:\n"
        "  - id: b\n    scope: run\n    limt: {usd: 1}\n"
    )
    proc = governor("validate", str(bad))
    assert proc.returncode == 3
    assert f"{bad}:8:5: error: unknown key 'limt'" in proc.stdout
    assert "(at /budgets/0/limt); did you mean 'limit'?" in proc.stdout
    assert (
        f"{bad}:6:5: error: missing required key 'limit' (at /budgets/0); 'limt' looks like a misspelling of it"
        in proc.stdout
    )


def test_json_format(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: governor/v1\nkind: Policy\nmetadata: {name: j}\nmode: enfroce\n")
    proc = governor("validate", "--format", "json", str(bad), "policies/coding-agent.yaml")
    assert proc.returncode == 3
    out = json.loads(proc.stdout)
    assert [(r["valid"], r["skipped"]) for r in out] == [(False, False), (True, False)]
    (error,) = out[0]["errors"]
    assert error == {
        "severity": "error",
        "file": str(bad),
        "line": 4,
        "col": 7,
        "pointer": "/mode",
        "code": "enum",
        "message": 'expected one of "enforce", "audit", "off", got "enfroce"',
        "hint": "did you mean 'enforce'?",
    }
    assert out[1]["revision"].startswith(out[1]["revision"][:12]) and len(out[1]["revision"]) >= 12


def test_warnings_pass_unless_strict(tmp_path: Path) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text("apiVersion: governor/v1\nkind: Policy\nmetadata: {name: w}\nmodels:\n  aliases: {spare: gpt-4o}\n")
    relaxed = governor("validate", str(path))
    assert relaxed.returncode == 0
    assert f"{path}:5:13: warning: alias 'spare' is never used (at /models/aliases/spare)" in relaxed.stdout
    assert governor("validate", "--strict", str(path)).returncode == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert governor("validate").returncode == 2
    assert governor("validate", "--format", "xml", "policies/coding-agent.yaml").returncode == 2
    missing = governor("validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_schema_prints_the_packaged_schema() -> None:
    proc = governor("schema")
    assert proc.returncode == 0
    printed = json.loads(proc.stdout)
    assert printed == json.loads((ROOT / "governor" / "schema" / "policy-v1.json").read_text())
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_validates_the_library_in_an_editor_s_sense() -> None:
    """The schema alone (as an editor would use it via the modeline) accepts every library policy."""
    import yaml
    from jsonschema import Draft202012Validator

    schema = json.loads(governor("schema").stdout)
    for name in (n for n in LIBRARY if not n.endswith(".test.yaml")):
        doc = yaml.safe_load((ROOT / name).read_text())
        assert list(Draft202012Validator(schema).iter_errors(doc)) == [], name


def test_explain_lists_rules_in_order_and_where_prices_come_from() -> None:
    proc = governor("explain", "policies/tau2-airline.yaml")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    order = [
        out.index(h) for h in ("1. stop conditions", "2. routes", "3. context caps", "4. per-call caps", "5. budgets")
    ]
    assert order == sorted(order)
    assert (
        'short-turns-to-cheap [audit]: when {"agent": "agent", "input_tokens": {"lte": 3000}} -> gpt-4.1-mini (alias cheap)'
        in out
    )
    assert "per-run: $0.5 per run, no window, soft at 80%: warn, on_error fail_closed" in out
    assert "xai/grok-3: in $3/M, out $15/M" in out and "from policy (models.prices.xai/grok-3)" in out
    assert "gpt-4.1-mini: in $0.4/M, out $1.6/M" in out and "from litellm's bundled table (litellm " in out


def test_explain_an_invalid_policy_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: e}\nroutes:\n  - {id: r, to: no-such-model}\n"
    )
    proc = governor("explain", str(bad))
    assert proc.returncode == 3
    assert f"{bad}:5:17: error: model 'no-such-model' has no known price" in proc.stdout


def test_python_dash_m_governor() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "governor", "validate", "policies/batch-extraction.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "batch-extraction.yaml: ok" in proc.stdout


@pytest.mark.parametrize("code", ["import governor", "import governor.policy.loader"])
def test_importing_does_not_import_litellm(code: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print('litellm' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "False", proc.stderr


def test_a_policy_that_prices_all_its_models_loads_without_litellm(tmp_path: Path) -> None:
    path = tmp_path / "self-priced.yaml"
    path.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: s}\n"
        "models:\n  aliases: {house: acme/house}\n  prices:\n"
        "    acme/house: {input_per_mtok: 1, output_per_mtok: 2}\n    acme/big: {input_per_mtok: 3, output_per_mtok: 9}\n"
        "routes:\n  - {id: r, to: house, fallbacks: [acme/big]}\n"
    )
    code = (
        "import sys; from governor.policy.loader import load_policy; "
        f"p = load_policy({str(path)!r}); print(p.routes[0].to, 'litellm' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "acme/house False", proc.stderr


def test_validation_reads_the_same_price_table_as_litellm() -> None:
    """Validation reads litellm's bundled JSON without importing litellm; it must equal litellm.model_cost."""
    code = (
        "import sys; from governor.policy.bundled_prices import litellm_price_table, _bundled; "
        "t = litellm_price_table(); assert 'litellm' not in sys.modules; "
        "from governor._litellm import model_cost_table; m = model_cost_table(); "
        "assert litellm_price_table() is m; "
        "print(len(m) > 1000, set(m) == set(t), all(m[k] == t[k] for k in m))"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.stdout.split() == ["True", "True", "True"], proc.stderr


def test_policy_test_files_are_skipped_in_order_and_json_stays_json(tmp_path: Path) -> None:
    test_file = tmp_path / "p.test.yaml"
    test_file.write_text("this is not a policy: [")
    text = governor("validate", str(test_file), "policies/support-bot.yaml")
    assert text.returncode == 0
    assert text.stdout.splitlines()[0] == f"{test_file}: skipped: a policy test file (run `governor test`)"
    out = json.loads(governor("validate", "--format", "json", str(test_file)).stdout)
    assert out == [
        {"file": str(test_file), "skipped": True, "valid": None, "revision": None, "errors": [], "warnings": []}
    ]
