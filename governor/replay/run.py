"""Replay one compiled policy over imported calls: the one call every caller of replay can build on.

``governor replay`` and ``governor suggest`` both go through
:func:`replay_policy`: the policy is compiled once (at load), the calls are
imported once (a :class:`~governor.traces.model.TraceSet`), and each call
replays them through the production ``Governor.check`` / ``record`` path of
:class:`~governor.replay.engine.Replayer`, in one process or, when no budget
couples the runs, in ``jobs`` forked processes (:mod:`governor.replay.parallel`).
"""

from __future__ import annotations

from governor.policy.model import Policy
from governor.replay.engine import Progress, Replayer
from governor.replay.result import ReplayResult
from governor.traces.model import TraceSet


def replay_policy(policy: Policy, traces: TraceSet, *, jobs: int = 1, progress: Progress | None = None) -> ReplayResult:
    """What ``policy`` would have done to ``traces``: a fresh in-memory ledger, a simulated clock.

    ``jobs > 1`` splits the runs over processes only when they are independent under the
    policy (every budget scoped to a call or a run); otherwise the replay stays in one
    process, so the result is always the one a single process gives.
    """
    if jobs > 1 and len(traces.runs) > 1:
        from governor.replay.parallel import coupling_budgets, replay_parallel

        if not coupling_budgets(policy):
            return replay_parallel(policy, traces, jobs)
    return Replayer(policy).replay(traces, progress)
