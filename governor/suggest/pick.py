"""Choosing among evaluated candidates: the default pick per knob and the Pareto frontier.

The default pick of a knob is the candidate that saves the most on the fit
runs among those that stop or trim no run with accepted work there (ties go to
the looser value); a knob whose every such candidate saves nothing is not
suggested. The frontier keeps the candidates no other one beats on both
axes: fewer accepted runs stopped or trimmed, more dollars saved (fit part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from governor.suggest.figures import Figures
from governor.suggest.knobs import Candidate

MIN_SAVING_USD = 1e-9


@dataclass(frozen=True, kw_only=True)
class Evaluated:
    """A candidate and what it does on each part of the runs."""

    candidate: Candidate
    """The knob value."""
    fit: Figures
    """On the fit part (in-sample)."""
    held: Figures
    """On the held-out part."""


def default_pick(evaluated: Sequence[Evaluated]) -> tuple[Evaluated | None, str]:
    """(the pick, why) among one knob's candidates."""
    safe = [e for e in evaluated if e.fit.accepted_touched == 0]
    if not safe:
        return None, "every candidate stops or trims a run with accepted work in the fit part"
    saving = [e for e in safe if e.fit.saved_usd > MIN_SAVING_USD and e.fit.unpriced_blocks == 0]
    if not saving:
        return None, "no candidate that spares every accepted run saves anything in the fit part"
    best = max(saving, key=lambda e: (round(e.fit.saved_usd, 9), e.candidate.value))
    return best, "saves the most in the fit part among the candidates that stop and trim no accepted run"


def frontier(points: Sequence[Evaluated]) -> list[Evaluated]:
    """The Pareto-optimal points (accepted runs touched down, dollars saved up), fewest touched first."""
    ordered = sorted(points, key=lambda e: (e.fit.accepted_touched, -e.fit.saved_usd))
    out: list[Evaluated] = []
    best = float("-inf")
    for e in ordered:
        if e.fit.saved_usd > best + MIN_SAVING_USD:
            out.append(e)
            best = e.fit.saved_usd
    return out
