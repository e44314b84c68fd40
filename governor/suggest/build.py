"""``suggest()``: from recorded runs with outcomes, the rules that save the most without stopping accepted work.

1. Split the runs: the earlier part is fitted on, the rest held out (:mod:`.split`).
2. Replay the base policy on both parts (:mod:`.sweep`); measure the accepted
   fit runs' spend in scope (:mod:`.knobs`) and draw every knob's candidates.
3. Replay every candidate (base + one rule) on both parts, in parallel when
   asked, and compare it with the base run by run (:mod:`.figures`).
4. Pick per knob (:mod:`.pick`), then combine the picks greedily, largest
   saving first, keeping a pick only while the combination still stops and
   trims no accepted fit run and saves more.
5. Price route candidates as an assumption (:mod:`.routes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from governor.errors import GovernorError, NoAcceptedRuns
from governor.policy.model import Policy
from governor.replay.result import ReplayResult
from governor.replay.run import replay_policy
from governor.suggest.figures import ACCEPTED_WORK, Figures, compare, summarize
from governor.suggest.knobs import KNOBS, Candidate, Spend, candidates, matches, measure
from governor.suggest.pick import Evaluated, default_pick, frontier
from governor.suggest.routes import RouteCandidate, route_candidates
from governor.suggest.split import Split, split_runs
from governor.suggest.sweep import Frame, Rule, Summaries, build_policy, quiet_engine, replay_all, replay_both
from governor.traces.model import TraceSet


@dataclass(frozen=True, kw_only=True)
class KnobResult:
    """One knob: every candidate evaluated, and the default pick."""

    knob: str
    """The knob's name (a key of :data:`governor.suggest.knobs.KNOBS`)."""
    evaluated: tuple[Evaluated, ...]
    """Every candidate, loosest last."""
    pick: Evaluated | None
    """The default pick, or None when the knob is not suggested."""
    why: str
    """Why this pick (or why none)."""


@dataclass(frozen=True, kw_only=True)
class Combined:
    """The suggested policy: the base plus the picks that combine without touching accepted work."""

    picks: tuple[Evaluated, ...]
    """The knob values in the policy, largest fit saving first."""
    dropped: Mapping[str, str]
    """Picks left out of the combination, and why."""
    fit: Figures
    """The combined policy on the fit part."""
    held: Figures
    """The combined policy on the held-out part."""


@dataclass(frozen=True, kw_only=True)
class Suggestion:
    """Everything ``governor suggest`` found (rendered by :mod:`governor.suggest.render`)."""

    split: Split
    """How the runs were split, and the two parts."""
    base: str | None
    """The base policy file (None: no base, savings on what was paid)."""
    base_policy: Policy
    """The base policy as loaded (an empty policy without --base)."""
    match: Mapping[str, str]
    """The scope of every suggested rule (``--match KEY=VALUE``)."""
    spend: Spend
    """What the accepted fit runs spent in scope, under the base."""
    knobs: tuple[KnobResult, ...]
    """Every swept knob."""
    skipped: Mapping[str, str]
    """Knobs not swept, and why."""
    combined: Combined
    """The suggested combination."""
    frontier: tuple[Evaluated, ...]
    """The Pareto frontier over every candidate (fit part)."""
    routes: tuple[RouteCandidate, ...] = ()
    """Route candidates: spend carried and what a reroute would cost (an assumption)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Things worth saying (unpriced blocks, knobs dropped)."""
    base_fit: ReplayResult | None = None
    """The base policy's replay of the fit part (the decisive test cases are drawn from it)."""
    frame: Frame = Frame()
    """The base, mode and defaults every candidate shared (the written policy sets the same)."""

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The suggested rules, as (section, item)."""
        return tuple(_rule(e.candidate, self.match, self.frame.mode) for e in self.combined.picks)


def _rule(c: Candidate, scope: Mapping[str, str], mode: str | None = None) -> Rule:
    k = KNOBS[c.knob]
    item = k.item(c.value, scope)
    return k.section, item if mode is None else {**item, "mode": mode}


def _unpriced_models(traces: TraceSet) -> list[str]:
    """The models of the runs no price table knows (an empty policy would block them: not what was paid)."""
    from governor.pricing import PriceTable

    table = PriceTable()
    models = sorted({c.model for r in traces.runs for c in r.calls})
    return [m for m in models if table.lookup(m) is None]


def _no_accepted(traces: TraceSet, split: Split) -> str:
    total = sum(1 for r in traces.runs if r.outcome in ACCEPTED_WORK)
    if not traces.runs:
        return "no runs were read: there is nothing to fit a policy on"
    if total == 0:
        known = sum(1 for r in traces.runs if r.outcome is not None)
        return (
            f"none of the {len(traces.runs)} runs has an accepted outcome ({known} with an outcome, "
            f"{len(traces.runs) - known} unknown): without accepted work there is nothing a cap must keep, "
            "so no policy is suggested. Record outcomes (--outcomes FILE: run_id,outcome) and run again"
        )
    return (
        f"none of the {len(split.fit.runs)} fit runs (the earliest by {split.by}) has an accepted outcome "
        f"({total} of the held-out runs do): no policy is suggested; lower --holdout or add outcomes"
    )


def suggest(
    traces: TraceSet,
    *,
    base: Policy | None = None,
    base_path: Path | None = None,
    match: Mapping[str, str] | None = None,
    holdout: float = 0.3,
    seed: int = 0,
    jobs: int = 1,
    knobs: Sequence[str] | None = None,
    route_to: Sequence[str] = (),
) -> Suggestion:
    """Sweep every knob over ``traces``; raises :class:`NoAcceptedRuns` when the fit runs hold no accepted work.

    ``base`` is the policy the candidates extend (``base_path``: its file, default ``base.source_file``);
    ``match`` scopes every rule to calls with that metadata; ``knobs`` restricts the sweep; ``route_to``
    prices short calls rerouted to those models (an assumption, never a saving).
    """
    with quiet_engine():
        return _suggest(traces, base, base_path, match, holdout, seed, jobs, knobs, route_to)


def _suggest(
    traces: TraceSet,
    base: Policy | None,
    base_path: Path | None,
    match: Mapping[str, str] | None,
    holdout: float,
    seed: int,
    jobs: int,
    knobs: Sequence[str] | None,
    route_to: Sequence[str],
) -> Suggestion:
    scope = dict(match or {})
    split = split_runs(traces, holdout=holdout, seed=seed)
    if not any(r.outcome in ACCEPTED_WORK for r in split.fit.runs):
        raise NoAcceptedRuns(_no_accepted(traces, split))
    if scope and not any(matches(c.metadata, scope) for r in split.fit.runs for c in r.calls):
        keys = sorted({k for r in split.fit.runs for c in r.calls for k in c.metadata})
        raise GovernorError(
            f"--match {', '.join(f'{k}={v}' for k, v in scope.items())}: no call of the fit runs has that metadata "
            f"(metadata keys seen: {', '.join(keys[:20]) or 'none'})"
        )
    if base is not None and base_path is None:
        base_path = Path(base.source_file)  # the candidates extend the file the base was loaded from
    frame = Frame(
        base=base_path,
        mode=None if base is None or base.mode == "enforce" else "enforce",
        defaults={} if base is not None or not _unpriced_models(traces) else {"allow_unpriced": True},
    )
    base_policy = base if base is not None else build_policy((), frame)
    base_fit, base_held = replay_policy(base_policy, split.fit), replay_policy(base_policy, split.held)
    base_sum = (summarize(base_fit), summarize(base_held))
    spend = measure(base_fit, scope)
    cands, skipped = candidates(spend)
    if knobs is not None:
        skipped = {k: v for k, v in skipped.items() if k in knobs}
        cands = [c for c in cands if c.knob in knobs]

    policies = [build_policy([_rule(c, scope)], frame) for c in cands]
    results = replay_all(policies, split, jobs=jobs)
    evaluated = [
        Evaluated(candidate=c, fit=compare(base_sum[0], fit), held=compare(base_sum[1], held))
        for c, (fit, held) in zip(cands, results, strict=True)
    ]
    per_knob: list[KnobResult] = []
    for name in KNOBS:
        mine = tuple(e for e in evaluated if e.candidate.knob == name)
        if not mine:
            continue
        pick, why = default_pick(mine)
        per_knob.append(KnobResult(knob=name, evaluated=mine, pick=pick, why=why))
    combined = _combine([k.pick for k in per_knob if k.pick is not None], split, base_sum, frame, scope)
    notes = []
    blocked_unpriced = [e for e in evaluated if e.fit.unpriced_blocks or e.held.unpriced_blocks]
    if blocked_unpriced:
        notes.append(
            f"{len(blocked_unpriced)} candidate(s) block calls only because their model has no price; those blocks "
            "are not savings and such candidates are never picked: price the model under models.prices in --base"
        )
    routes = route_candidates(base_policy, (base_fit, base_held), split, scope, route_to, frame=frame)
    return Suggestion(
        split=split,
        base=str(base_path) if base_path is not None else None,
        base_policy=base_policy,
        match=scope,
        spend=spend,
        knobs=tuple(per_knob),
        skipped=skipped,
        combined=combined,
        frontier=tuple(frontier([*evaluated])),
        routes=routes,
        notes=tuple(notes),
        base_fit=base_fit,
        frame=frame,
    )


def _combine(
    picks: Sequence[Evaluated],
    split: Split,
    base_sum: Summaries,
    frame: Frame,
    scope: Mapping[str, str],
) -> Combined:
    """Add the picks one at a time, largest fit saving first, keeping each that still spares accepted work."""
    kept: list[Evaluated] = []
    dropped: dict[str, str] = {}
    fit = compare(base_sum[0], base_sum[0])
    held = compare(base_sum[1], base_sum[1])
    for e in sorted(picks, key=lambda e: -e.fit.saved_usd):
        trial = [*kept, e]
        rules = [_rule(t.candidate, scope) for t in trial]
        if len(trial) == 1:
            f, h = e.fit, e.held
        else:
            fs, hs = replay_both(build_policy(rules, frame), split)
            f, h = compare(base_sum[0], fs), compare(base_sum[1], hs)
        if f.accepted_touched:
            dropped[e.candidate.knob] = "combined with the picks before it, it stops or trims an accepted fit run"
        elif f.saved_usd <= fit.saved_usd + 1e-9:
            dropped[e.candidate.knob] = "combined with the picks before it, it saves nothing more in the fit part"
        else:
            kept.append(e)
            fit, held = f, h
    return Combined(picks=tuple(kept), dropped=dropped, fit=fit, held=held)
