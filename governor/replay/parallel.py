"""``replay --jobs N``: independent runs replayed in parallel processes, when no budget couples them.

Runs are independent under a policy when every budget is scoped to one call or
one run: stop conditions, caps and routes already act per call or per run. A
budget scoped to a user, team, tag, metadata value or the whole organisation
adds up calls of several runs in time order, so splitting the runs would
change its decisions: then replay stays in one process and says why
(:func:`coupling_budgets`). Partitions are balanced by calls (the largest run
first into the lightest partition); each process replays its runs with its own
fresh ledger, exactly as the single-process replay would, and the results are
put back in the runs' original order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from governor.policy.model import Budget, Policy
from governor.replay.result import ReplayResult
from governor.traces.model import TraceRun, TraceSet

INDEPENDENT_SCOPES = ("call", "run")
_JOB: dict[str, Any] = {}  # the policy and the partitions, inherited by the forked workers


def coupling_budgets(policy: Policy) -> list[str]:
    """The budgets that add up calls across runs (their ids); empty when runs can be replayed apart."""
    return [b.id for b in policy.budgets if not (isinstance(b, Budget) and b.scope in INDEPENDENT_SCOPES)]


def partitions(runs: Sequence[TraceRun], jobs: int) -> list[list[int]]:
    """Run positions in ``jobs`` groups of about equal calls (largest run first into the lightest group)."""
    groups: list[list[int]] = [[] for _ in range(jobs)]
    load = [0] * jobs
    for i in sorted(range(len(runs)), key=lambda k: -len(runs[k].calls)):
        g = min(range(jobs), key=load.__getitem__)
        groups[g].append(i)
        load[g] += len(runs[i].calls)
    return [sorted(g) for g in groups if g]


def _work(k: int) -> ReplayResult:
    from governor.replay.engine import Replayer

    traces: TraceSet = _JOB["traces"]
    part = TraceSet(tuple(traces.runs[i] for i in _JOB["parts"][k]), (), traces.formats, (), (), traces.adjustments)
    return Replayer(_JOB["policy"]).replay(part)


def replay_parallel(policy: Policy, traces: TraceSet, jobs: int) -> ReplayResult:
    """The same ReplayResult as one process gives, from ``jobs`` forked processes (fork: nothing is copied in)."""
    parts = partitions(traces.runs, jobs)
    _JOB.update(policy=policy, traces=traces, parts=parts)
    try:
        with multiprocessing.get_context("fork").Pool(len(parts)) as pool:
            results = pool.map(_work, range(len(parts)))
    finally:
        _JOB.clear()
    by_position = {}
    for part, res in zip(parts, results, strict=True):
        for i, run in zip(part, res.runs, strict=True):
            by_position[i] = run
    first = results[0]
    return replace(
        first,
        runs=tuple(by_position[i] for i in range(len(traces.runs))),
        issues=traces.issues,
        formats=dict(traces.formats),
        adjustments=tuple(sorted(traces.adjustments, key=lambda a: (a.at, a.id))),
    )
