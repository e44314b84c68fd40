"""`extends`: precedence as documented in docs/policy-format.md, cycles, and errors located in the right file."""

from __future__ import annotations

from pathlib import Path

from conftest import only

from governor.policy.loader import load_policy, validate_file

BASE = """\
apiVersion: governor/v1
kind: Policy
metadata:
  name: org-base
  description: from the base
  labels: {owner: platform, cost-center: "42"}
mode: audit
defaults: {output_tokens: 2048, lease: 5m}
models:
  aliases: {cheap: gpt-4o-mini, strong: claude-sonnet-4-5}
stop:
  - {id: retry-storm, type: consecutive_errors, max: 3}
  - {id: loop, type: repeated_call, max: 3, within: 10m}
  - {id: max-calls, type: max_calls, max: 100}
budgets:
  - {id: per-run, scope: run, limit: {usd: 2}, soft: {at: 0.5, action: downgrade, to: cheap}}
  - {id: org, scope: global, limit: {usd: 5000}}
"""


def _overlay(body: str, extends: str = "base.yaml") -> str:
    return f"apiVersion: governor/v1\nkind: Policy\nextends: {extends}\nmetadata:\n  name: team\n{body}"


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    overlay = tmp_path / "team.yaml"
    overlay.write_text(
        _overlay(
            "  labels: {owner: research}\n"
            "defaults: {output_tokens: 512}\n"
            "models:\n  aliases: {strong: gpt-4.1, long: gpt-4.1}\n"
            "stop:\n"
            "  - {id: max-calls, type: max_calls, max: 300}\n"
            "  - {id: loop, remove: true}\n"
            "  - {id: wall, type: max_wall_time, max: 1h}\n"
            "routes:\n  - {id: r, to: strong, fallbacks: [long]}\n"
        )
    )
    policy = load_policy(overlay)
    assert policy.name == "team"  # never inherited
    assert policy.description == "from the base"
    assert dict(policy.labels) == {"owner": "research", "cost-center": "42"}  # key by key, overlay wins
    assert policy.mode == "audit"  # inherited scalar
    assert (policy.default_output_tokens, policy.lease_s) == (512, 300.0)
    assert dict(policy.aliases) == {"cheap": "gpt-4o-mini", "strong": "gpt-4.1", "long": "gpt-4.1"}
    # by id: replaced in place, removed, appended after the base's items
    assert [(s.id, s.max) for s in policy.stop] == [("retry-storm", 3.0), ("max-calls", 300.0), ("wall", 3600.0)]
    assert [b.id for b in policy.budgets] == ["per-run", "org"]  # untouched section inherited whole
    assert policy.budgets[0].soft.to == "gpt-4o-mini"  # base alias resolved in the merged policy
    assert policy.routes[0].to == "gpt-4.1" and policy.routes[0].fallbacks == ("gpt-4.1",)
    # each item remembers the file it was written in
    assert policy.stop[0].source.file.endswith("base.yaml") and policy.stop[0].source.line == 12
    assert policy.stop[1].source.file == str(overlay) and policy.stop[1].source.line == 11
    assert policy.source_files == (str(overlay), str(tmp_path / "base.yaml"))


def test_list_of_bases_applies_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: a}\nmode: audit\n"
        "calls:\n  - {id: cap, max_output_tokens: 100}\n"
    )
    (tmp_path / "b.yaml").write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: b}\nmode: 'off'\n"
        "calls:\n  - {id: cap, max_output_tokens: 200}\n  - {id: cost, max_cost_usd: 1}\n"
    )
    top = tmp_path / "top.yaml"
    top.write_text(_overlay("", extends="[a.yaml, b.yaml]"))
    policy = load_policy(top)
    assert policy.mode == "off"
    assert [(c.id, c.max_output_tokens) for c in policy.calls] == [("cap", 200), ("cost", None)]


def test_bases_resolve_relative_to_the_extending_file(tmp_path: Path) -> None:
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "root.yaml").write_text(BASE)
    (tmp_path / "org" / "mid.yaml").write_text(
        "apiVersion: governor/v1\nkind: Policy\nextends: root.yaml\nmetadata: {name: mid}\n"
    )
    (tmp_path / "team.yaml").write_text(_overlay("", extends="org/mid.yaml"))
    policy = load_policy(tmp_path / "team.yaml")
    assert [s.id for s in policy.stop] == ["retry-storm", "loop", "max-calls"]
    assert len(policy.source_files) == 3


def test_diamond_is_not_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    for name in ("x", "y"):
        (tmp_path / f"{name}.yaml").write_text(
            f"apiVersion: governor/v1\nkind: Policy\nextends: base.yaml\nmetadata: {{name: {name}}}\n"
        )
    (tmp_path / "top.yaml").write_text(_overlay("", extends="[x.yaml, y.yaml]"))
    assert [b.id for b in load_policy(tmp_path / "top.yaml").budgets] == ["per-run", "org"]


def test_cycle_is_an_error_at_the_extends_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: governor/v1\nkind: Policy\nmetadata: {name: a}\nextends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("apiVersion: governor/v1\nkind: Policy\nmetadata: {name: b}\nextends: a.yaml\n")
    result = validate_file(tmp_path / "a.yaml")
    finding = only(result.errors, "extends-cycle")
    a, b = (tmp_path / "a.yaml").resolve(), (tmp_path / "b.yaml").resolve()
    assert finding.message == f"extends cycle: {a} -> {b} -> {a}"
    assert finding.file.endswith("b.yaml")
    assert (finding.line, finding.col, finding.pointer) == (4, 10, "/extends")


def test_self_extension_is_a_cycle(tmp_path: Path) -> None:
    path = tmp_path / "me.yaml"
    path.write_text(_overlay("", extends="me.yaml"))
    assert only(validate_file(path).errors, "extends-cycle").line == 3


def test_missing_base(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(_overlay("", extends="[base.yaml, nope.yaml]"))
    (tmp_path / "base.yaml").write_text(BASE)
    finding = only(validate_file(path).errors, "extends-missing")
    assert finding.message.startswith("extends: no such file 'nope.yaml'")
    assert (finding.line, finding.col, finding.pointer) == (3, 22, "/extends/1")


def test_extends_of_the_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(_overlay("", extends="3"))
    finding = only(validate_file(path).errors, "extends-type")
    assert finding.message == "extends: expected a file path or a non-empty list of file paths"
    assert (finding.line, finding.pointer) == (3, "/extends")


def test_removing_an_unknown_id_suggests_the_right_one(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "team.yaml"
    path.write_text(_overlay("stop:\n  - {id: retry-strom, remove: true}\n"))
    finding = only(validate_file(path).errors, "remove-unknown")
    assert finding.message == "remove: no item 'retry-strom' in the base stop"
    assert finding.hint == "did you mean 'retry-storm'?"
    assert (finding.file, finding.line, finding.col) == (str(path), 7, 10)


def test_remove_without_a_base_and_malformed_remove(tmp_path: Path) -> None:
    path = tmp_path / "solo.yaml"
    path.write_text(
        "apiVersion: governor/v1\nkind: Policy\nmetadata: {name: s}\n"
        "stop:\n  - {id: a, remove: true}\n  - {id: b, type: max_calls, max: 2, remove: true}\n"
    )
    result = validate_file(path)
    assert "(" + str(path) + " extends nothing)" in only(result.errors, "remove-unknown").message
    bad = only(result.errors, "bad-remove")
    assert bad.message == "a removal takes exactly {id: <id>, remove: true}"
    assert (bad.line, bad.pointer) == (6, "/stop/1/remove")


def test_errors_in_an_inherited_item_point_into_the_base_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE.replace("max: 100", "max: lots"))
    path = tmp_path / "team.yaml"
    path.write_text(_overlay(""))
    finding = only(validate_file(path).errors, "type")
    assert finding.file.endswith("base.yaml")
    assert (finding.line, finding.col, finding.pointer) == (14, 43, "/stop/2/max")


def test_a_base_with_a_bad_header_is_reported_in_the_base(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE.replace("governor/v1", "governor/v0"))
    path = tmp_path / "team.yaml"
    path.write_text(_overlay(""))
    finding = only(validate_file(path).errors, "api-version")
    assert finding.file.endswith("base.yaml") and finding.line == 1


def test_duplicate_ids_after_merge_are_errors(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "team.yaml"
    path.write_text(_overlay("calls:\n  - {id: loop, max_output_tokens: 10}\n"))
    finding = only(validate_file(path).errors, "duplicate-id")
    assert finding.file == str(path) and finding.pointer == "/calls/0/id"
    assert "base.yaml:13:" in finding.message


def test_example_overlay_in_the_repository_loads() -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "policies"
    policy = load_policy(root / "team-overlay.yaml")
    assert policy.name == "research-team"
    assert [s.id for s in policy.stop] == ["retry-storm", "max-calls"]
    assert [b.id for b in policy.budgets] == ["per-run", "org-monthly", "team-daily"]
    assert policy.labels["cost-center"] == "4200"


def test_unusable_base_paths_are_findings_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(_overlay("", extends='["a\\0b", "' + "x" * 5000 + '", "."]'))
    findings = validate_file(path).errors
    assert [(f.code, f.pointer, f.line, f.col) for f in findings] == [
        ("extends-missing", "/extends/0", 3, 11),
        ("extends-missing", "/extends/1", 3, 19),
        ("extends-missing", "/extends/2", 3, 5023),
    ]
    assert findings[0].message == "extends: cannot use path 'a\\x00b': embedded null byte"
    assert "File name too long" in findings[1].message
    assert findings[2].message.startswith("extends: no such file '.'")
