"""Stage 1: stop conditions per run, and the run scope (contextvars, nesting, threads, asyncio)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from governor import StopConditionHit
from tests.engine.conftest import MSGS, user


def go(gov, messages=MSGS, **md):
    return gov.check(model="gpt-4o-mini", messages=messages, input_tokens=100, max_tokens=10, metadata=md or None)


def test_max_calls_blocks_the_call_after_max(make_gov) -> None:
    gov = make_gov("stop: [{id: max-calls, type: max_calls, max: 3}]\n")
    assert [go(gov, run_id="r").verdict for _ in range(4)] == ["allow", "allow", "allow", "block"]
    with pytest.raises(StopConditionHit) as err:
        gov.check_or_raise(model="gpt-4o-mini", messages=MSGS, input_tokens=1, metadata={"run_id": "r"})
    assert err.value.rule_ids == ("max-calls",) and "run r already made 3 calls" in str(err.value)
    assert go(gov, run_id="other").allowed  # state is per run


def test_blocked_calls_do_not_count_as_calls(make_gov) -> None:
    gov = make_gov(
        """
        stop: [{id: max-calls, type: max_calls, max: 2}]
        budgets: [{id: one, scope: run, limit: {calls: 1}}]
        """
    )
    assert go(gov, run_id="r").allowed
    assert go(gov, run_id="r").block_kind == "budget"
    assert gov._runs.peek("r").calls == 1


def test_consecutive_errors_and_a_success_resets(make_gov) -> None:
    gov = make_gov("stop: [{id: retry-storm, type: consecutive_errors, max: 2}]\n")
    for _ in range(2):
        gov.record(go(gov, run_id="r"), input_tokens=0, output_tokens=0, error=TimeoutError("upstream"))
    d = go(gov, run_id="r")
    assert d.block_kind == "stop" and d.rule_ids == ("retry-storm",)
    gov2 = make_gov("stop: [{id: retry-storm, type: consecutive_errors, max: 2}]\n")
    gov2.record(go(gov2, run_id="r"), input_tokens=0, output_tokens=0, error="500")
    gov2.record(go(gov2, run_id="r"), input_tokens=10, output_tokens=5)
    gov2.record(go(gov2, run_id="r"), input_tokens=0, output_tokens=0, error="500")
    assert go(gov2, run_id="r").allowed


def test_repeated_identical_call_within_the_window(make_gov, clock) -> None:
    gov = make_gov("stop: [{id: loop, type: repeated_call, max: 3, within: 10m}]\n")
    same = [
        user("list the files"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}],
        },
    ]
    assert go(gov, same, run_id="r").allowed
    assert go(gov, [dict(m) for m in same], run_id="r").allowed  # equal content, new objects
    assert go(gov, same + [user("different")], run_id="r").allowed
    d = go(gov, same, run_id="r")  # the 3rd identical call within 10 minutes is the loop
    assert d.block_kind == "stop" and "would make the same call 3 times within 600s" in d.reasons[0]
    assert go(gov, same, run_id="other-run").allowed
    clock.advance(601)
    assert go(gov, same, run_id="r").allowed  # the sightings aged out of the window


def test_tool_call_arguments_are_part_of_the_fingerprint(make_gov) -> None:
    gov = make_gov("stop: [{id: loop, type: repeated_call, max: 2, within: 10m}]\n")

    def with_args(args: str) -> list[dict]:
        return [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "read", "arguments": args}}],
            }
        ]

    assert go(gov, with_args('{"p": 1}'), run_id="r").allowed
    assert go(gov, with_args('{"p": 2}'), run_id="r").allowed
    assert go(gov, with_args('{"p": 1}'), run_id="r").blocked


def test_max_wall_time(make_gov, clock) -> None:
    gov = make_gov("stop: [{id: wall, type: max_wall_time, max: 30m}]\n")
    assert go(gov, run_id="r").allowed
    clock.advance(1799)
    assert go(gov, run_id="r").allowed
    clock.advance(2)
    d = go(gov, run_id="r")
    assert d.block_kind == "stop" and "started 1801s ago" in d.reasons[0]


def test_no_run_id_means_no_run_state(make_gov) -> None:
    gov = make_gov("stop: [{id: max-calls, type: max_calls, max: 1}]\n")
    assert go(gov).allowed and go(gov).allowed


def test_audit_stop_condition_notes_only(make_gov) -> None:
    gov = make_gov("stop: [{id: max-calls, mode: audit, type: max_calls, max: 1}]\n")
    go(gov, run_id="r")
    d = go(gov, run_id="r")
    assert d.allowed and [(a.rule_id, a.would) for a in d.audit] == [("max-calls", "block")]


def test_run_scope_sets_metadata_and_check_overrides_it(make_gov) -> None:
    gov = make_gov("routes: [{id: cheap, match: {task: classify, team: a}, to: gpt-4.1-nano}]\n")
    with gov.run(run_id="r1", user="ann", team="a", task="classify", agent="triage"):
        d = go(gov)
        assert d.model == "gpt-4.1-nano"
        assert {k: d.metadata[k] for k in ("run_id", "user", "team", "task", "agent")} == {
            "run_id": "r1",
            "user": "ann",
            "team": "a",
            "task": "classify",
            "agent": "triage",
        }
        assert go(gov, task="reply").model == "gpt-4o-mini"
    assert go(gov).metadata == {}


def test_nested_runs_charge_the_parent_run_too(make_gov) -> None:
    gov = make_gov(
        """
        stop: [{id: run-calls, type: max_calls, max: 3}]
        budgets: [{id: per-run, scope: run, limit: {calls: 100}}]
        """
    )
    with gov.run(run_id="parent"):
        go(gov)
        with gov.run(run_id="child-1"):
            go(gov)
            go(gov)
        with gov.run(run_id="child-2"):
            d = go(gov)  # the parent made 3 calls already
    assert d.blocked and "run parent already made 3 calls" in d.reasons[0]
    budget = gov._compiled.budgets[0]
    now = gov._clock()
    assert gov.ledger.usage(budget.counter("parent"), now=now).calls == 3
    assert gov.ledger.usage(budget.counter("child-1"), now=now).calls == 2
    assert gov.ledger.usage(budget.counter("child-2"), now=now).calls == 0


def test_scope_is_per_thread_and_per_task(make_gov) -> None:
    gov = make_gov("routes: []\n")
    seen: dict[str, object] = {}

    def worker() -> None:
        seen["thread"] = go(gov).metadata.get("run_id")

    async def main() -> None:
        async def task(name: str) -> str | None:
            with gov.run(run_id=name):
                await asyncio.sleep(0)
                return (await gov.acheck(model="gpt-4o-mini", messages=MSGS, input_tokens=1)).metadata["run_id"]

        seen["tasks"] = await asyncio.gather(task("a"), task("b"), task("c"))

    with gov.run(run_id="outer"):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        asyncio.run(main())
    assert seen == {"thread": None, "tasks": ["a", "b", "c"]}  # a new thread starts with an empty scope


def test_run_state_conditions_work_without_stop_conditions(make_gov) -> None:
    gov = make_gov("routes: [{id: long-run, match: {run_calls: {gte: 2}}, to: gpt-4.1-nano}]\n")
    models = []
    for _ in range(3):
        d = go(gov, run_id="r")
        models.append(d.model)
        gov.record(d, input_tokens=100, output_tokens=10)
    assert models == ["gpt-4o-mini", "gpt-4o-mini", "gpt-4.1-nano"]


def test_repeated_call_needs_messages_or_a_fingerprint(make_gov) -> None:
    gov = make_gov("stop: [{id: loop, type: repeated_call, max: 2, within: 10m}]\n")
    # no messages and no fingerprint: nothing to compare, so no call is a repeat
    assert all(go(gov, (), run_id="r").allowed for _ in range(4))
    # the caller's digest stands in for the messages
    assert go(gov, (), run_id="s").allowed
    assert gov.check(
        model="gpt-4o-mini", messages=(), input_tokens=1, metadata={"run_id": "s"}, fingerprint="a"
    ).allowed
    assert gov.check(
        model="gpt-4o-mini", messages=(), input_tokens=1, metadata={"run_id": "s"}, fingerprint="b"
    ).allowed
    d = gov.check(model="gpt-4o-mini", messages=(), input_tokens=1, metadata={"run_id": "s"}, fingerprint="a")
    assert d.block_kind == "stop" and d.rule_ids == ("loop",)
    with pytest.raises(StopConditionHit):
        gov.check_or_raise(model="gpt-4o-mini", input_tokens=1, metadata={"run_id": "s"}, fingerprint="a")
    # a given fingerprint takes precedence over hashing the messages (the caller already has a digest)
    assert go(gov, [user("x")], run_id="t").allowed
    assert gov.check(
        model="gpt-4o-mini", messages=[user("y")], input_tokens=1, metadata={"run_id": "t"}, fingerprint="z"
    ).allowed
    d = gov.check(model="gpt-4o-mini", messages=[user("w")], input_tokens=1, metadata={"run_id": "t"}, fingerprint="z")
    assert d.block_kind == "stop" and d.rule_ids == ("loop",)


@pytest.mark.parametrize(
    "messages",
    [
        [user("list the files")],
        [
            user("a"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}],
            },
        ],
        [{"role": "user", "content": [{"type": "text", "text": "what is in this picture"}]}],
        [{"role": "assistant", "content": "done", "tool_calls": None, "turn": 3}],  # hashable values, tool_calls key
    ],
    ids=["text", "tool-calls", "content-parts", "hashable-extras"],
)
def test_a_repeat_is_seen_whether_the_governor_counts_the_tokens_or_is_given_them(make_gov, messages) -> None:
    # a counted check hashes each message once for the token cache and reuses the hashes for
    # the fingerprint; a check with input_tokens hashes the messages itself: the same call
    # must have the same fingerprint either way
    gov = make_gov("stop: [{id: loop, type: repeated_call, max: 3, within: 10m}]\n")

    def counted():
        return gov.check(
            model="gpt-4o-mini", messages=[dict(m) for m in messages], max_tokens=10, metadata={"run_id": "r"}
        )

    assert counted().allowed and go(gov, messages, run_id="r").allowed
    d = counted()
    assert d.block_kind == "stop" and d.rule_ids == ("loop",) and not d.input_tokens_estimated
    d = go(gov, messages, run_id="r")
    assert d.block_kind == "stop" and d.rule_ids == ("loop",)


def test_max_calls_with_a_match_counts_only_the_matching_calls(make_gov) -> None:
    gov = make_gov("stop: [{id: agent-calls, type: max_calls, max: 2, match: {agent: agent}}]\n")
    user_sim = {"run_id": "r", "agent": "user-simulator"}
    agent = {"run_id": "r", "agent": "agent"}
    # other calls of the run neither count nor are stopped
    assert all(go(gov, **user_sim).allowed for _ in range(5))
    assert go(gov, **agent).allowed and go(gov, **agent).allowed
    d = go(gov, **agent)
    assert d.block_kind == "stop" and "run r already made 2 matching calls (max 2)" in d.reasons[0]
    assert go(gov, **user_sim).allowed
    assert gov._runs.peek("r").calls == 8  # the run itself counts every admitted call


def test_a_matching_call_blocked_later_is_not_counted(make_gov) -> None:
    gov = make_gov(
        """
        stop: [{id: agent-calls, type: max_calls, max: 2, match: {agent: agent}}]
        budgets: [{id: one, scope: run, limit: {calls: 1}}]
        """
    )
    assert go(gov, run_id="r", agent="agent").allowed
    assert go(gov, run_id="r", agent="agent").block_kind == "budget"
    assert gov._runs.peek("r").matched == {"agent-calls": 1}
