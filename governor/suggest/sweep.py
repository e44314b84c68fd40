"""Candidate policies, built once each, replayed through the production path, in parallel when asked.

A candidate is the base policy plus rules: a small YAML document that
``extends`` the base file (exactly what ``governor suggest -o`` writes), loaded
and compiled once by the policy loader, so every candidate is a policy the
loader validated. The calls are imported once; each candidate replays them
(fit part and held-out part) with :func:`governor.replay.run.replay_policy`,
and only per-run summaries come back (small, so forked workers return them
cheaply). With ``jobs > 1`` candidates are replayed in forked processes that
inherit the compiled policies and the imported calls: nothing is parsed again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governor.policy.model import Policy
from governor.replay.run import replay_policy
from governor.suggest.figures import RunSummary, summarize
from governor.suggest.split import Split

Rule = tuple[str, Mapping[str, Any]]  # (policy section, rule item)
Summaries = tuple[tuple[RunSummary, ...], tuple[RunSummary, ...]]  # (fit part, held-out part)
_JOB: dict[str, Any] = {}  # the compiled policies and the split, inherited by the forked workers


@dataclass(frozen=True, kw_only=True)
class Frame:
    """What every candidate policy shares: the base it extends, and what it sets around its rules."""

    base: Path | None = None
    """The base policy file (None: no base)."""
    mode: str | None = None
    """``enforce`` when the base's mode is not (the rules do what is measured), else None."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """``defaults:`` of the candidate (without a base: ``allow_unpriced`` when the runs use unpriced models)."""


def policy_document(rules: Iterable[Rule], frame: Frame, *, name: str = "suggested") -> dict[str, Any]:
    """The document of the base policy plus ``rules`` (``extends`` the base file when there is one)."""
    doc: dict[str, Any] = {"apiVersion": "governor/v1", "kind": "Policy", "metadata": {"name": name}}
    if frame.base is not None:
        doc["extends"] = str(frame.base)
    if frame.defaults:
        doc["defaults"] = dict(frame.defaults)
    for section, item in rules:
        entry = dict(item)
        if frame.mode is not None:
            entry["mode"] = frame.mode
        doc.setdefault(section, []).append(entry)
    return doc


def build_policy(rules: Iterable[Rule], frame: Frame) -> Policy:
    """Load and compile the base plus ``rules`` (raises PolicyError if the loader refuses it)."""
    import yaml

    from governor.policy.loader import load_policy_text

    anchor = str((frame.base.parent if frame.base is not None else Path.cwd()) / "suggested.yaml")
    text = yaml.safe_dump(policy_document(rules, frame), sort_keys=False)
    return load_policy_text(text, file=anchor)


@contextlib.contextmanager
def quiet_engine() -> Iterator[None]:
    """The engine's per-call warnings (an overrun of a reservation) held back while a sweep replays:
    every candidate meets the same calls, and replay reports overruns in its results anyway."""
    log = logging.getLogger("governor.engine")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def replay_both(policy: Policy, split: Split) -> Summaries:
    """The policy's per-run summaries on the fit part and on the held-out part."""
    return summarize(replay_policy(policy, split.fit)), summarize(replay_policy(policy, split.held))


def _work(k: int) -> Summaries:
    return replay_both(_JOB["policies"][k], _JOB["split"])


def replay_all(policies: Sequence[Policy], split: Split, *, jobs: int = 1) -> list[Summaries]:
    """Each policy's summaries, in order; ``jobs > 1`` replays candidates in that many forked processes."""
    if jobs <= 1 or len(policies) < 2:
        return [replay_both(p, split) for p in policies]
    _JOB.update(policies=policies, split=split)
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(policies))) as pool:
            return pool.map(_work, range(len(policies)), chunksize=1)
    finally:
        _JOB.clear()
