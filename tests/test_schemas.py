"""The packaged JSON Schemas are what an editor needs: every property described, every example valid.

``governor/schema/policy-v1.json`` (policies) and
``governor/schema/policy-test-v1.json`` (policy test files). A property is any
entry of a ``properties`` mapping, except inside an ``if`` (there it is a
condition that picks a branch, not a key an editor offers).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from governor.policy.schema_check import policy_schema
from governor.replay import policytest
from governor.replay.policytest import test_file_schema as load_test_file_schema
from tests.conftest import REPO_ROOT

SCHEMAS = {"policy": policy_schema(), "test-file": load_test_file_schema()}


def properties(node: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(JSON pointer, property schema) of every property declared in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "if":
                continue
            if key == "properties" and isinstance(value, dict):
                for name, prop in value.items():
                    yield f"{pointer}/properties/{name}", prop
            yield from properties(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from properties(value, f"{pointer}/{i}")


def with_examples(node: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "examples" in node:
            yield pointer, node
        for key, value in node.items():
            yield from with_examples(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from with_examples(value, f"{pointer}/{i}")


@pytest.mark.parametrize("which", SCHEMAS)
def test_every_property_has_a_description(which: str) -> None:
    schema = SCHEMAS[which]
    Draft202012Validator.check_schema(schema)
    found = list(properties(schema))
    assert len(found) >= 30  # the walk finds them (guards against a walk that finds nothing)
    missing = [p for p, prop in found if not (isinstance(prop, dict) and str(prop.get("description", "")).strip())]
    assert not missing, f"{which} schema: properties without a description: {missing}"


@pytest.mark.parametrize("which", SCHEMAS)
def test_every_example_is_valid_where_it_stands(which: str) -> None:
    schema = SCHEMAS[which]
    nodes = list(with_examples(schema))
    assert len(nodes) > 30
    for pointer, node in nodes:
        sub = {**{k: v for k, v in node.items() if k != "examples"}, "$defs": schema["$defs"]}
        validator = Draft202012Validator(sub)
        for example in node["examples"]:
            errors = [e.message for e in validator.iter_errors(example)]
            assert not errors, f"{which} schema {pointer}: example {example!r} is invalid: {errors}"


def test_the_test_file_schema_knows_exactly_the_keys_the_runner_reads() -> None:
    defs = SCHEMAS["test-file"]["$defs"]
    assert set(defs["case"]["properties"]) == policytest.CASE_KEYS
    assert set(defs["call"]["properties"]) == policytest.CALL_KEYS
    assert set(defs["state"]["properties"]) == policytest.STATE_KEYS
    assert set(defs["expect"]["properties"]) == policytest.EXPECT_KEYS
    assert set(defs["priorCall"]["properties"]) == policytest.CALL_KEYS | {"output_tokens", "error"}


def _as_an_editor_reads_it(value: Any) -> Any:
    """PyYAML turns ISO times into datetimes; editors (and the schema) see the text."""
    if isinstance(value, dict):
        return {k: _as_an_editor_reads_it(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_an_editor_reads_it(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def test_shipped_test_files_follow_the_schema_and_a_misspelling_does_not() -> None:
    validator = Draft202012Validator(SCHEMAS["test-file"])
    files = sorted((REPO_ROOT / "policies").glob("*.test.yaml"))
    assert files
    for path in files:
        doc = _as_an_editor_reads_it(yaml.safe_load(path.read_text()))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, f"{path.name}: {errors}"
        assert path.read_text().startswith("# yaml-language-server: $schema=../governor/schema/policy-test-v1.json")
    doc = _as_an_editor_reads_it(yaml.safe_load(files[0].read_text()))
    doc["cases"][0]["expect"]["blocked-by"] = "x"
    (error,) = validator.iter_errors(doc)
    assert list(error.absolute_path) == ["cases", 0, "expect"] and "blocked-by" in error.message


def test_governor_schema_prints_the_packaged_schemas() -> None:
    governor = str(Path(sys.executable).parent / "governor")
    for which in ("policy", "test-file"):
        out = subprocess.run([governor, "schema", which], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and json.loads(out.stdout) == SCHEMAS[which]


def test_the_documented_test_file_follows_the_schema() -> None:
    from tests.test_docs import extract_blocks

    (block,) = [b for b in extract_blocks(REPO_ROOT / "docs" / "policy-tests.md") if b.lang == "yaml"]
    doc = _as_an_editor_reads_it(yaml.safe_load(block.code))
    validator = Draft202012Validator(SCHEMAS["test-file"])
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert not errors, errors
