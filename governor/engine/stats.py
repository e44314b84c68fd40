"""Running totals from the governor: spend, calls, blocks, errors, outcomes.

Reported by run, user, team and model, plus a grand total, so ``gov.stats()``
answers "what did this cost, and what did we get for it" without a database.

Definitions (also in the README):

* ``calls`` are settled calls (``record``); ``checks``/``blocks``/``reroutes``/
  ``trims`` count check verdicts.
* ``spend_usd`` sums priced calls only; ``unpriced_calls`` counts the rest, so
  a spend that misses calls says so instead of reading as complete.
* A run's outcome is its *latest* ``record_outcome``; ``cost_per_accepted_task``
  is the group's whole spend (failed and rejected work included) divided by
  its runs whose outcome is ``accepted`` -- None when there are none.
  Outcomes are not kept per model (a run may use several).

Hot path: ``add_check`` and ``add_record`` append one event to a deque (the
decision, or the decision and its usage: a C-level append, safe from any
thread, no lock) and every ``FOLD_AT`` events the appending thread folds them
into cells, keyed (model, run, user, team) as the decision says, under the
lock; ``snapshot`` and ``add_outcome`` fold first, so nothing is ever reported
late. Folding a batch costs a fraction of what a lock, a call
and a lookup per event did on every check. The views by dimension are summed
from the cells in :meth:`Stats.snapshot`. Cells and runs are bounded: the
oldest cell is folded into its (model, user, team) cell without a run, and
the oldest run's outcome into its (user, team) counts, so totals by user,
team and model stay exact while per-run detail is bounded.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from governor.decision import OUTCOMES, Decision
from governor.errors import GovernorError

_FIELDS = (
    "checks", "blocks", "reroutes", "trims", "calls", "errors", "spend_usd", "unpriced_calls",
    "input_tokens", "output_tokens",
)  # fmt: skip
FOLD_AT = 256  # events buffered before the appending thread folds them into cells
CHECK_COUNTS = {"allow": (0, 0, 0), "reroute": (0, 1, 0), "trim": (0, 0, 1), "block": (1, 0, 0)}


class _Cell:
    """Counters of one (model, run, user, team) combination (hot: slots, plain numbers)."""

    __slots__ = _FIELDS

    def __init__(self) -> None:
        self.checks = self.blocks = self.reroutes = self.trims = 0
        self.calls = self.errors = self.unpriced_calls = 0
        self.input_tokens = self.output_tokens = 0
        self.spend_usd = 0.0

    def add(self, other: _Cell) -> None:
        for name in _FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class _Run:
    __slots__ = ("user", "team", "outcome")

    def __init__(self, user: Any = None, team: Any = None) -> None:
        self.user = user
        self.team = team
        self.outcome: str | None = None


class _View(_Cell):
    """A cell summed over a dimension, with outcome counts: what snapshot() reports."""

    __slots__ = ("outcomes",)

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, int] = {}

    def as_dict(self, outcomes: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        if outcomes:
            accepted = self.outcomes.get("accepted", 0)
            d["outcomes"] = {o: self.outcomes[o] for o in OUTCOMES if self.outcomes.get(o)}
            d["cost_per_accepted_task"] = (self.spend_usd / accepted) if accepted else None
        return d


class Stats:
    """Thread-safe aggregates; ``add_check``/``add_record`` append an event, folded in batches."""

    def __init__(self, max_cells: int = 100_000, max_runs: int = 100_000) -> None:
        self._lock = threading.Lock()
        # a check's Decision, and (decision, cost, in, out, error) for a record, in call order
        self._events: deque[Any] = deque()
        self._cells: dict[tuple[Any, ...], _Cell] = {}
        self._runs: dict[Any, _Run] = {}  # insertion order = age
        self._folded: dict[tuple[Any, ...], dict[str, int]] = {}  # (user, team) -> outcomes of evicted runs
        self._max_cells = max_cells
        self._max_runs = max_runs
        self._overruns = 0  # recorded calls that used more than their check reserved
        self._overrun_usd = 0.0  # and by how much, in total

    # -- hot path ----------------------------------------------------------------------
    def add_check(self, decision: Decision) -> None:
        """Count a check (its verdict, in its cell)."""
        events = self._events
        events.append(decision)
        if len(events) >= FOLD_AT:
            self._fold(wait=False)

    def add_record(
        self,
        decision: Decision,
        cost_usd: float | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        error: bool = False,
    ) -> None:
        """Count a recorded call: its spend (None: unpriced), tokens and error, in its check's cell."""
        events = self._events
        events.append((decision, cost_usd, input_tokens, output_tokens, error))
        if len(events) >= FOLD_AT:
            self._fold(wait=False)

    def add_overrun(self, overrun: Any) -> None:
        """Count a call that used more than its check reserved (a governor.engine.overrun.Overrun)."""
        with self._lock:
            self._overruns += 1
            self._overrun_usd += overrun.usd

    def add_outcome(self, run_id: str, outcome: str) -> None:
        """Set a run's outcome; a later call replaces the earlier one."""
        if outcome not in OUTCOMES:
            raise GovernorError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        with self._lock:
            self._fold_locked()
            self._run(run_id, None, None).outcome = outcome

    def _fold(self, wait: bool) -> None:
        """Fold the buffered events; without ``wait``, leave them to a thread already folding."""
        if self._lock.acquire(wait):
            try:
                self._fold_locked()
            finally:
                self._lock.release()

    def _fold_locked(self) -> None:
        """Apply the buffered events in order (lock held). Events appended meanwhile wait for the next fold.

        A check's event always precedes its record's, so a record whose key has no cell
        had its cell folded away in between: it goes where that cell went.
        """
        events, cells = self._events, self._cells
        pop = events.popleft
        for _ in range(len(events)):
            ev = pop()
            if ev.__class__ is not tuple:  # a check: its Decision
                md = ev.metadata
                key = (ev.model, md.get("run_id"), md.get("user"), md.get("team"))
                cell = cells.get(key)
                if cell is None:
                    cell = self._new_cell(key)
                cell.checks += 1
                verdict = ev.verdict
                if verdict != "allow":
                    blocks, reroutes, trims = CHECK_COUNTS[verdict]
                    cell.blocks += blocks
                    cell.reroutes += reroutes
                    cell.trims += trims
                continue
            decision, cost_usd, input_tokens, output_tokens, error = ev
            md = decision.metadata
            model, user, team = decision.model, md.get("user"), md.get("team")
            cell = cells.get((model, md.get("run_id"), user, team))
            if cell is None:
                cell = cells.get((model, None, user, team)) or self._new_cell((model, None, user, team))
            cell.calls += 1  # a recorded call
            cell.input_tokens += input_tokens
            cell.output_tokens += output_tokens
            if error:
                cell.errors += 1
            if cost_usd is None:
                cell.unpriced_calls += 1
            else:
                cell.spend_usd += cost_usd

    # -- bookkeeping (lock held) ---------------------------------------------------------
    def _new_cell(self, key: tuple[Any, ...]) -> _Cell:
        model, run_id, user, team = key
        if len(self._cells) >= self._max_cells:
            self._fold_oldest_cell()
        cell = self._cells[key] = _Cell()
        if run_id is not None:
            self._run(run_id, user, team)
        return cell

    def _run(self, run_id: Any, user: Any, team: Any) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            if len(self._runs) >= self._max_runs:
                self._fold_oldest_run()
            run = self._runs[run_id] = _Run(user, team)
        else:
            run.user = user if user is not None else run.user
            run.team = team if team is not None else run.team
        return run

    def _fold_oldest_cell(self) -> None:
        key = next(iter(self._cells))
        cell = self._cells.pop(key)
        model, _, user, team = key
        target = self._cells.get((model, None, user, team))
        if target is None:
            target = self._cells[(model, None, user, team)] = _Cell()
        target.add(cell)

    def _fold_oldest_run(self) -> None:
        run_id = next(iter(self._runs))
        run = self._runs.pop(run_id)
        if run.outcome is not None:
            counts = self._folded.setdefault((run.user, run.team), {})
            counts[run.outcome] = counts.get(run.outcome, 0) + 1

    # -- reporting -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy: {"total": {...}, "by_run": {...}, "by_user", "by_team", "by_model"}."""
        total = _View()
        by: dict[str, dict[Any, _View]] = {"run": {}, "user": {}, "team": {}, "model": {}}
        with self._lock:
            self._fold_locked()
            for (model, run_id, user, team), cell in self._cells.items():
                total.add(cell)
                for dim, value in (("model", model), ("user", user), ("team", team)):
                    if value is not None:
                        _view(by[dim], value).add(cell)
                if run_id is not None and run_id in self._runs:  # evicted runs: totals only
                    _view(by["run"], run_id).add(cell)
            outcomes = [(run.user, run.team, run.outcome, run_id) for run_id, run in self._runs.items()]
            folded = [(u, t, dict(c)) for (u, t), c in self._folded.items()]
            runs = {run_id: (run.user, run.team, run.outcome) for run_id, run in self._runs.items()}
            overruns, overrun_usd = self._overruns, self._overrun_usd
        for user, team, outcome, run_id in outcomes:
            if outcome is not None:
                _count(total, by, user, team, outcome, 1)
                _view(by["run"], run_id).outcomes[outcome] = 1
        for user, team, counts in folded:
            for outcome, n in counts.items():
                _count(total, by, user, team, outcome, n)
        by_run = {}
        for run_id, view in by["run"].items():
            d = view.as_dict()
            user, team, outcome = runs.get(run_id, (None, None, None))
            d.update(user=user, team=team, outcome=outcome)
            by_run[str(run_id)] = d
        totals = total.as_dict()
        totals.update(overruns=overruns, overrun_usd=round(overrun_usd, 12))
        return {
            "total": totals,
            "by_run": by_run,
            "by_user": {str(k): v.as_dict() for k, v in by["user"].items()},
            "by_team": {str(k): v.as_dict() for k, v in by["team"].items()},
            "by_model": {str(k): v.as_dict(outcomes=False) for k, v in by["model"].items()},
        }


def _view(table: dict[Any, _View], key: Any) -> _View:
    v = table.get(key)
    if v is None:
        v = table[key] = _View()
    return v


def _count(total: _View, by: dict[str, dict[Any, _View]], user: Any, team: Any, outcome: str, n: int) -> None:
    total.outcomes[outcome] = total.outcomes.get(outcome, 0) + n
    if user is not None:
        u = _view(by["user"], user).outcomes
        u[outcome] = u.get(outcome, 0) + n
    if team is not None:
        t = _view(by["team"], team).outcomes
        t[outcome] = t.get(outcome, 0) + n
