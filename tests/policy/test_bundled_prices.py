"""litellm's bundled price file read as litellm serves it: ``aliases`` lists and ``alias_of`` rows.

tests/policy/test_cli.py holds the whole table equal to ``litellm.model_cost``
for the installed litellm (the locked one in step 1 of CI, the newest in step
2); this pins the alias rules on a small table, including the cases a given
litellm release may not ship.
"""

from __future__ import annotations

from governor.policy.bundled_prices import _expand_aliases


def test_aliases_and_pointer_rows_are_served_as_their_model_and_never_replace_one() -> None:
    real = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    other = {"input_cost_per_token": 3e-6, "output_cost_per_token": 4e-6}
    table = _expand_aliases(
        {
            "m": {**real, "aliases": ["m-alias", "other"]},  # "other" is a real entry: it stays itself
            "other": other,
            "m-latest": {"alias_of": "m"},  # a pointer row: served as m
            "dangling": {"alias_of": "missing"},  # a pointer to nothing: dropped
            "chained": {"alias_of": "m-latest"},  # a pointer to a pointer: dropped
            "m-alias": {"alias_of": "other"},  # already claimed by m's aliases list: m wins
        }
    )
    assert set(table) == {"m", "other", "m-latest", "m-alias"}
    assert table["m"] == real and "aliases" not in table["m"]
    assert table["m-latest"] is table["m"] and table["m-alias"] is table["m"]
    assert table["other"] == other
