"""What a candidate policy changes on a set of runs, against the base policy on the same runs.

Every figure comes from two replays of the same runs through the production
path (:func:`governor.replay.run.replay_policy`): the base policy's and the
candidate's. Money is what replay says: the recorded cost of what was paid,
governed costs standing on it (``docs/replay.md``); a run whose cost is
unknown under either policy is left out of the sums and counted in
``unpriced_runs``, never costed as zero.

A run is *stopped* by a candidate when the candidate blocks one of its calls
and the base policy blocked none; *trimmed* when the candidate trims one of its
calls and the base trimmed none. Accepted work is a run whose outcome is
``accepted`` or ``edited``; ``rejected_stopped`` counts rejected and escalated
runs, ``unknown_stopped`` runs without an outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from governor.replay.result import ReplayResult

ACCEPTED_WORK = ("accepted", "edited")
REJECTED = ("rejected", "escalated")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """One run's fate under one policy: the little a sweep keeps of a replay (it crosses processes)."""

    run_id: str
    """The run."""
    outcome: str | None
    """accepted | edited | rejected | escalated | None (unknown)."""
    paid_usd: float | None
    """What the run cost as recorded (replay's ``cost_recorded``); None when unknown."""
    governed_usd: float | None
    """What it would cost under the policy (replay's ``cost_governed``); None when unknown."""
    stopped_at: int | None
    """1-based index of the run's first blocked call, or None."""
    stop_rule: str | None
    """The rule that blocked that call."""
    trimmed_calls: int
    """Calls the policy trimmed."""
    unpriced_blocks: int
    """Calls blocked because their model has no price (a block that is no saving)."""


def summarize(result: ReplayResult) -> tuple[RunSummary, ...]:
    """Each run of a replay, summarised, in the replay's run order."""
    out = []
    for r in result.runs:
        out.append(
            RunSummary(
                run_id=r.run.run_id,
                outcome=r.run.outcome,
                paid_usd=r.cost_recorded,
                governed_usd=r.cost_governed,
                stopped_at=r.stopped_at_call,
                stop_rule=r.stop_rule,
                trimmed_calls=sum(1 for c in r.calls if c.verdict == "trim"),
                unpriced_blocks=sum(1 for c in r.calls if c.block_kind == "unpriced"),
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """A candidate against the base policy on one part of the runs (fit or held out)."""

    runs: int
    """Runs in the part."""
    accepted: int
    """Runs with accepted work (accepted or edited)."""
    paid_usd: float
    """What the priced runs cost as recorded."""
    base_usd: float
    """What they cost under the base policy (what was paid, when there is no base)."""
    governed_usd: float
    """What they cost under the candidate."""
    saved_usd: float
    """base_usd - governed_usd."""
    saved_pct: float | None
    """saved_usd as a percentage of base_usd (None when base_usd is 0)."""
    accepted_stopped: int
    """Runs with accepted work the candidate stops (the cost of the policy)."""
    rejected_stopped: int
    """Rejected or escalated runs the candidate stops."""
    unknown_stopped: int
    """Runs without an outcome the candidate stops."""
    accepted_trimmed: int
    """Runs with accepted work whose calls the candidate trims (replay assumes the outcome unchanged)."""
    runs_trimmed: int
    """Runs whose calls the candidate trims."""
    cost_per_accepted_before: float | None
    """base_usd / accepted runs the base policy does not stop (None without such runs)."""
    cost_per_accepted_after: float | None
    """governed_usd / accepted runs the candidate does not stop (None without such runs)."""
    unpriced_runs: int
    """Runs left out of the sums: a cost unknown under either policy."""
    unpriced_blocks: int
    """Calls the candidate blocks only because their model has no price (beyond those the base blocks)."""

    @property
    def accepted_touched(self) -> int:
        """Runs with accepted work the candidate stops or trims (what a default pick must keep at 0)."""
        return self.accepted_stopped + self.accepted_trimmed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 6)
        return out


def compare(base: Sequence[RunSummary], cand: Sequence[RunSummary]) -> Figures:
    """The figures of a candidate's summaries against the base's, run by run (same runs, same order)."""
    if [b.run_id for b in base] != [c.run_id for c in cand]:
        raise ValueError("base and candidate summaries are not of the same runs")
    paid = base_usd = governed = 0.0
    unpriced = 0
    accepted = sum(1 for b in base if b.outcome in ACCEPTED_WORK)
    acc_stopped = rej_stopped = unk_stopped = acc_trimmed = runs_trimmed = 0
    kept_base = kept_cand = 0
    for b, c in zip(base, cand, strict=True):
        if b.paid_usd is None or b.governed_usd is None or c.governed_usd is None:
            unpriced += 1
        else:
            paid += b.paid_usd
            base_usd += b.governed_usd
            governed += c.governed_usd
        newly_stopped = c.stopped_at is not None and b.stopped_at is None
        newly_trimmed = c.trimmed_calls > 0 and b.trimmed_calls == 0
        work = b.outcome in ACCEPTED_WORK
        if work:
            kept_base += b.stopped_at is None
            kept_cand += c.stopped_at is None
        if newly_stopped:
            if work:
                acc_stopped += 1
            elif b.outcome in REJECTED:
                rej_stopped += 1
            else:
                unk_stopped += 1
        if newly_trimmed:
            runs_trimmed += 1
            acc_trimmed += work
    saved = base_usd - governed
    return Figures(
        runs=len(base),
        accepted=accepted,
        paid_usd=paid,
        base_usd=base_usd,
        governed_usd=governed,
        saved_usd=saved,
        saved_pct=100.0 * saved / base_usd if base_usd > 0 else None,
        accepted_stopped=acc_stopped,
        rejected_stopped=rej_stopped,
        unknown_stopped=unk_stopped,
        accepted_trimmed=acc_trimmed,
        runs_trimmed=runs_trimmed,
        cost_per_accepted_before=base_usd / kept_base if kept_base else None,
        cost_per_accepted_after=governed / kept_cand if kept_cand else None,
        unpriced_runs=unpriced,
        unpriced_blocks=max(0, sum(c.unpriced_blocks for c in cand) - sum(b.unpriced_blocks for b in base)),
    )
