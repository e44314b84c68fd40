"""Running totals from the governor: spend, calls, blocks, errors, outcomes.

Kept by run, user, team and model, plus a grand total, so ``gov.stats()``
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

Per-run entries live in an LRU of ``max_runs`` so a long-lived service stays
bounded; totals by user/team/model are exact regardless.
"""

from __future__ import annotations

import threading
from typing import Any

from cachetools import LRUCache

from governor.decision import OUTCOMES, Decision
from governor.errors import GovernorError

DIMENSIONS = ("run", "user", "team", "model")


class _Group:
    """Mutable counters of one group (hot: slots, plain ints)."""

    __slots__ = (
        "checks", "blocks", "reroutes", "trims", "calls", "errors", "spend_usd", "unpriced_calls",
        "input_tokens", "output_tokens", "outcomes",
    )  # fmt: skip

    def __init__(self) -> None:
        self.checks = self.blocks = self.reroutes = self.trims = 0
        self.calls = self.errors = self.unpriced_calls = 0
        self.input_tokens = self.output_tokens = 0
        self.spend_usd = 0.0
        self.outcomes: dict[str, int] = {}

    def as_dict(self) -> dict[str, Any]:
        accepted = self.outcomes.get("accepted", 0)
        return {
            "checks": self.checks,
            "blocks": self.blocks,
            "reroutes": self.reroutes,
            "trims": self.trims,
            "calls": self.calls,
            "errors": self.errors,
            "spend_usd": self.spend_usd,
            "unpriced_calls": self.unpriced_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "outcomes": {o: self.outcomes[o] for o in OUTCOMES if self.outcomes.get(o)},
            "cost_per_accepted_task": (self.spend_usd / accepted) if accepted else None,
        }


class _Run(_Group):
    __slots__ = ("user", "team", "outcome")

    def __init__(self) -> None:
        super().__init__()
        self.user: str | None = None
        self.team: str | None = None
        self.outcome: str | None = None


class Stats:
    """Thread-safe aggregates; ``add_*`` are a lock and a few increments."""

    def __init__(self, max_runs: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._total = _Group()
        self._runs: LRUCache = LRUCache(maxsize=max_runs)
        self._users: dict[str, _Group] = {}
        self._teams: dict[str, _Group] = {}
        self._models: dict[str, _Group] = {}

    def _groups(self, meta: Any, model: str) -> tuple[_Group, ...]:
        """The groups a call counts in (caller holds the lock)."""
        groups: list[_Group] = [self._total, _get(self._models, model, _Group)]
        run_id = meta.get("run_id")
        user = meta.get("user")
        team = meta.get("team")
        if run_id is not None:
            run = self._runs.get(run_id)
            if run is None:
                run = self._runs[run_id] = _Run()
            run.user = user if user is not None else run.user
            run.team = team if team is not None else run.team
            groups.append(run)
        if user is not None:
            groups.append(_get(self._users, str(user), _Group))
        if team is not None:
            groups.append(_get(self._teams, str(team), _Group))
        return tuple(groups)

    def add_check(self, decision: Decision) -> None:
        verdict = decision.verdict
        with self._lock:
            for g in self._groups(decision.metadata, decision.model):
                g.checks += 1
                if verdict == "block":
                    g.blocks += 1
                elif verdict == "reroute":
                    g.reroutes += 1
                elif verdict == "trim":
                    g.trims += 1

    def add_record(
        self,
        decision: Decision,
        *,
        cost_usd: float | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        error: bool = False,
    ) -> None:
        with self._lock:
            for g in self._groups(decision.metadata, decision.model):
                g.calls += 1
                g.input_tokens += input_tokens
                g.output_tokens += output_tokens
                if error:
                    g.errors += 1
                if cost_usd is None:
                    g.unpriced_calls += 1
                else:
                    g.spend_usd += cost_usd

    def add_outcome(self, run_id: str, outcome: str) -> None:
        """Set a run's outcome; a later call replaces the earlier one."""
        if outcome not in OUTCOMES:
            raise GovernorError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                run = self._runs[run_id] = _Run()
            groups: list[_Group] = [self._total, run]
            if run.user is not None:
                groups.append(_get(self._users, run.user, _Group))
            if run.team is not None:
                groups.append(_get(self._teams, run.team, _Group))
            previous, run.outcome = run.outcome, outcome
            for g in groups:
                if previous is not None and g.outcomes.get(previous, 0) > 0:
                    g.outcomes[previous] -= 1
                g.outcomes[outcome] = g.outcomes.get(outcome, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy: {"total": {...}, "by_run": {...}, "by_user", "by_team", "by_model"}."""
        with self._lock:
            return {
                "total": self._total.as_dict(),
                "by_run": {k: _run_dict(r) for k, r in self._runs.items()},
                "by_user": {k: g.as_dict() for k, g in self._users.items()},
                "by_team": {k: g.as_dict() for k, g in self._teams.items()},
                "by_model": {k: _model_dict(g) for k, g in self._models.items()},
            }


def _get(table: dict[str, _Group], key: str, factory: type[_Group]) -> _Group:
    g = table.get(key)
    if g is None:
        g = table[key] = factory()
    return g


def _run_dict(run: _Run) -> dict[str, Any]:
    d = run.as_dict()
    d.update(user=run.user, team=run.team, outcome=run.outcome)
    return d


def _model_dict(g: _Group) -> dict[str, Any]:
    d = g.as_dict()
    del d["outcomes"], d["cost_per_accepted_task"]
    return d
