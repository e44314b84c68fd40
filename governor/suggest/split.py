"""Fit on the earlier runs, report on the rest: the held-out split of ``governor suggest``.

Runs are ordered by the time of their first call and the earliest
``1 - holdout`` of them are the fit part; the rest are held out. When the runs
carry no usable time (every run starts at the same instant, e.g. a format
without timestamps), the split is a seeded shuffle instead, so the same seed
gives the same split. Suggestions are fitted on the fit part only; the
held-out part shows whether they generalise.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from governor.traces.model import TraceRun, TraceSet


@dataclass(frozen=True, kw_only=True)
class Split:
    """The two parts of a run set."""

    fit: TraceSet
    """The earlier runs, on which candidate values are chosen."""
    held: TraceSet
    """The later runs, on which the chosen values are only reported."""
    by: str
    """How the runs were split: ``time`` (by each run's first call) or ``seed`` (a seeded shuffle)."""
    seed: int
    """The seed of a ``seed`` split (kept for a ``time`` split too, unused)."""
    holdout: float
    """The fraction of runs held out (0 keeps every run in the fit part)."""


def run_start(run: TraceRun) -> float:
    """The time of a run's first call (0.0 for a run without calls)."""
    return min((c.timestamp for c in run.calls), default=0.0)


def split_runs(traces: TraceSet, *, holdout: float = 0.3, seed: int = 0) -> Split:
    """Split ``traces`` into the earlier ``1 - holdout`` of runs and the held-out rest."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    runs = list(traces.runs)
    starts = [run_start(r) for r in runs]
    by = "time" if len(set(starts)) > 1 or len(runs) < 2 else "seed"
    order = list(range(len(runs)))
    if by == "time":
        order.sort(key=lambda i: (starts[i], runs[i].run_id))
    else:
        order.sort(key=lambda i: runs[i].run_id)
        random.Random(seed).shuffle(order)
    n_held = math.floor(len(runs) * holdout) if len(runs) > 1 else 0
    n_fit = len(runs) - n_held
    fit = sorted(order[:n_fit])  # each part keeps the import's run order
    held = sorted(order[n_fit:])

    def part(positions: list[int]) -> TraceSet:
        return TraceSet(tuple(runs[i] for i in positions), (), traces.formats, ())

    return Split(fit=part(fit), held=part(held), by=by, seed=seed, holdout=holdout)
