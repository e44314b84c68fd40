"""Stages 0 and 1: safe YAML with locations, then the apiVersion / kind gate."""

from __future__ import annotations

from pathlib import Path

from conftest import only

from governor.policy.loader import validate_file, validate_text


def test_yaml_syntax_error_is_located(check) -> None:
    result = check("stop: [\n")
    finding = only(result.errors, "yaml-syntax")
    assert finding.message.startswith("YAML syntax error: ")
    assert (finding.line, finding.col) == (6, 1)


def test_empty_file(write) -> None:
    result = validate_file(write("", header=False))
    finding = only(result.errors, "empty")
    assert finding.message == "the policy file is empty"
    assert (finding.line, finding.col) == (1, 1)


def test_more_than_one_document(check) -> None:
    finding = only(check("---\nmode: audit\n").errors, "yaml-syntax")
    assert "expected one YAML document" in finding.message
    assert finding.line == 5


def test_duplicate_key_points_at_the_second_and_names_the_first(check) -> None:
    result = check("mode: audit\nstop: []\nmode: enforce\n")
    finding = only(result.errors, "duplicate-key")
    assert finding.message == "duplicate key 'mode' (first defined at line 5, column 1)"
    assert (finding.line, finding.col, finding.pointer) == (7, 1, "/mode")


def test_validation_goes_on_after_a_duplicate_key(check) -> None:
    result = check("mode: audit\nmode: enforce\nbudget: 1\n")
    assert {f.code for f in result.errors} == {"duplicate-key", "unknown-key"}


def test_non_string_key(check) -> None:
    finding = only(check("1: one\n").errors, "yaml-key")
    assert finding.message == "keys must be strings, got '1'"
    assert (finding.line, finding.col) == (5, 1)


def test_non_finite_number(check) -> None:
    result = check("calls:\n  - id: c\n    max_cost_usd: .inf\n")
    finding = only(result.errors, "yaml-value")
    assert finding.message == "expected a finite number, got .inf"
    assert (finding.line, finding.col, finding.pointer) == (7, 19, "/calls/0/max_cost_usd")
    assert len(result.errors) == 1  # the schema's complaint about the same value is not repeated


def test_python_tags_are_refused(check) -> None:
    finding = only(check("mode: !!python/object/apply:os.getcwd []\n").errors, "yaml-value")
    assert "cannot read value" in finding.message
    assert (finding.line, finding.col, finding.pointer) == (5, 7, "/mode")


def test_self_referencing_alias(check) -> None:
    result = check("routes: &r\n  - id: a\n    to: gpt-4o-mini\n    fallbacks: *r\n")
    finding = only(result.errors, "yaml-recursion")
    assert finding.message == "document nests too deeply (or an alias refers to itself)"
    assert (finding.line, finding.col, finding.pointer) == (
        5,
        9,
        "/routes/0/fallbacks",
    )  # at the anchor (&r) it refers to


def test_bad_merge_key(check) -> None:
    finding = only(check("defaults:\n  <<: 3\n").errors, "yaml-merge")
    assert finding.message.startswith("bad merge key: expected a mapping or list of mappings for merging")
    assert (finding.line, finding.col, finding.pointer) == (6, 3, "/defaults")


def test_anchors_aliases_and_merge_keys_are_allowed(check) -> None:
    result = check(
        """\
        stop:
          - &loop {id: loop, type: repeated_call, max: 3, within: 10m}
          - <<: *loop
            id: slow-loop
            within: 1h
        """
    )
    assert result.errors == ()
    slow = result.policy.stop[1]
    assert (slow.id, slow.type, slow.max, slow.within_s) == ("slow-loop", "repeated_call", 3.0, 3600.0)
    assert slow.source.line == 7


def test_yaml_1_2_scalars_off_and_dates_stay_strings(check) -> None:
    """`mode: off` is the string "off" (YAML 1.1 would make it false); `yes` is not a boolean either."""
    result = check("mode: off\nmetadata: {name: t, description: 2026-01-01, labels: {flag: yes}}\n")
    # metadata appears twice: the duplicate is reported, the values are still read as strings
    assert [f.code for f in result.errors] == ["duplicate-key"]
    ok = check("mode: 'off'\n").policy
    assert ok.mode == "off"
    result = validate_text(
        "apiVersion: governor/v1\nkind: Policy\nmode: off\nmetadata: {name: t, description: 2026-01-01, labels: {flag: yes}}\n"
    )
    assert result.errors == ()
    assert result.policy.mode == "off"
    assert result.policy.description == "2026-01-01"
    assert result.policy.labels == {"flag": "yes"}


def test_not_a_mapping(write) -> None:
    finding = only(validate_file(write("- a\n- b\n", header=False)).errors, "not-a-mapping")
    assert finding.message == "expected a mapping with apiVersion, kind and metadata, got a list"
    assert (finding.line, finding.col) == (1, 1)


def test_unknown_api_version_is_one_error_however_bad_the_rest(write) -> None:
    path = write("apiVersion: governor/v2\nkind: Polcy\nroutes: 7\nbudget: {}\n", header=False)
    result = validate_file(path)
    assert len(result.errors) == 1
    (finding,) = result.errors
    assert finding.code == "api-version"
    assert finding.message == "unsupported apiVersion 'governor/v2': this governor reads 'governor/v1'"
    assert (finding.line, finding.col, finding.pointer) == (1, 13, "/apiVersion")
    assert finding.hint == "did you mean 'governor/v1'?"


def test_missing_api_version_suggests_the_misspelled_key(write) -> None:
    result = validate_file(write("apiversion: governor/v1\nkind: Policy\n", header=False))
    finding = only(result.errors, "api-version")
    assert finding.message == "missing apiVersion (expected 'governor/v1')"
    assert finding.hint == "did you mean 'apiversion'?"
    assert (finding.line, finding.col) == (1, 1)


def test_wrong_kind(write) -> None:
    result = validate_file(write("apiVersion: governor/v1\nkind: Polcy\nmetadata: {name: a}\n", header=False))
    finding = only(result.errors, "kind")
    assert finding.message == "expected kind 'Policy', got 'Polcy'"
    assert (finding.line, finding.col, finding.pointer, finding.hint) == (2, 7, "/kind", "did you mean 'Policy'?")


def test_unreadable_files(tmp_path: Path) -> None:
    missing = validate_file(tmp_path / "nope.yaml")
    assert only(missing.errors, "unreadable").message == "cannot read policy file: No such file or directory"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert only(validate_file(binary).errors, "unreadable").file == str(binary)


def test_alias_bomb_is_cut_off(check) -> None:
    bomb = "x0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]\n" + "".join(
        f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
    )  # 9**10 values if expanded
    finding = only(check(bomb).errors, "yaml-recursion")
    assert finding.message == "document expands to more than 100000 values (aliases of aliases?)"
    assert finding.line == 5 and finding.pointer.startswith("/x5/")


def test_deep_nesting_is_an_error_not_a_recursion_error(check) -> None:
    """A located error, never a RecursionError, whichever layer sees the depth first:
    PyYAML >= 6.0.4 stops at its own nesting limit while scanning (``yaml-syntax``), older
    releases compose the document and the walker stops at its 65th level (``yaml-recursion``)."""
    findings = check("routes: " + "[" * 3000 + "]" * 3000 + "\n").errors
    assert len(findings) == 1, findings
    finding = findings[0]
    assert finding.code in ("yaml-syntax", "yaml-recursion")
    assert "nest" in finding.message
    assert finding.line == 5 and finding.col > 1  # on the line of the brackets, past the key


def test_nesting_past_the_walkers_limit_is_located_at_its_65th_level(check) -> None:
    finding = only(check("routes: " + "[" * 100 + "]" * 100 + "\n").errors, "yaml-recursion")
    assert finding.message == "document nests too deeply (or an alias refers to itself)"
    assert (finding.line, finding.col) == (5, 73)  # the 65th level
