"""The embeddable governor: check every call before it is sent, record usage after.

``check`` runs :func:`governor.engine.decide.decide` against the
policy compiled at load, reserving the call's worst case on its budgets;
``record`` settles the actual cost against that reservation (against the
revision the call was checked with, even across a reload). Everything on the
per-call path is a few dict lookups, one ledger call and one run-state lock.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from governor import inputs
from governor.decision import OUTCOMES, Decision
from governor.engine import scope as _scope
from governor.engine.budgets import Reservation
from governor.engine.compiled import CompiledPolicy
from governor.engine.decide import CallRequest, decide
from governor.engine.decision_log import DecisionLog
from governor.engine.events import Recorded, RecordObserver
from governor.engine.observed import observe
from governor.engine.overrun import Overrun
from governor.engine.overrun import measure as measure_overrun
from governor.engine.pending import Pending, PendingCalls
from governor.engine.progress import Tail
from governor.engine.reload import PolicyWatcher, default_observers, load_or_log, watched_files
from governor.engine.runstate import RunStates
from governor.engine.settle_queue import SettleQueue
from governor.engine.stats import Stats
from governor.engine.tokens import TokenCounter, message_hash
from governor.errors import BLOCK_ERRORS, GovernorError, InvalidCall, LedgerError, block_error
from governor.ledger.base import MAX_QUANTITY, Amount, Ledger, usd_to_nano
from governor.ledger.factory import is_blocking, open_ledger
from governor.ledger.forks import after_fork_in_child
from governor.policy.model import Policy
from governor.pricing import PriceTable

log = logging.getLogger("governor.engine")

__all__ = ["BLOCK_ERRORS", "Governor", "Observer"]  # BLOCK_ERRORS: re-exported from governor.errors

Observer = Callable[[Decision], Any]


class Governor:
    """Decides, for each LLM call, allow / reroute / trim / block, and accounts for it.

    ``ledger`` defaults to the one the policy names (memory unless set);
    ``clock`` is a zero-arg callable returning epoch seconds; ``log`` is a
    decision-log sink ("stderr", "stdout", a path, a stream, or a ready
    :class:`DecisionLog`); ``record_to`` writes a governor-trace/v1 JSONL file.
    ``stats=False`` keeps no :meth:`stats` and ``observers=False`` installs no
    default observer (the OpenTelemetry span annotator): a replay builds its
    own report, and must not annotate the caller's span with simulated calls.

    ``freeze_gc=True`` calls :func:`gc.freeze` once the policy is compiled (and
    after each reload): every object alive then -- the host's imports, litellm's
    price tables, the compiled policy -- leaves the cyclic garbage collector's
    scans, so its full collections no longer stall a check for tens of
    milliseconds (``benchmarks/README.md``, bench_check row (e)). It acts on the
    whole process, hence opt-in: an object alive at that moment that later becomes
    part of unreachable reference cycles is never collected (objects freed by
    reference counting, the usual case, are freed as ever).

    ``prices`` is the price table for ``policy`` (built from its
    ``models.prices`` with a table of its own, as ``governor hook`` does with
    the price rows it keeps); by default one is built from the policy. A
    reload builds its own.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        ledger: Ledger | None = None,
        clock: Callable[[], float] | None = None,
        log: Any = None,
        record_to: str | os.PathLike[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        tokens: TokenCounter | None = None,
        stats: bool = True,
        observers: bool = True,
        freeze_gc: bool = False,
        prices: PriceTable | None = None,
    ) -> None:
        self._clock = clock or time.time
        self._compiled = CompiledPolicy(policy, prices)
        self._freeze_gc = freeze_gc
        self._owns_ledger = ledger is None
        base_dir = os.path.dirname(os.fspath(path)) if path is not None else None
        self._ledger: Ledger = ledger if ledger is not None else open_ledger(policy.ledger, base_dir=base_dir)
        self._blocking = is_blocking(self._ledger)
        self._runs = RunStates(self._compiled.fp_ttl)
        self._tokens = tokens or TokenCounter()
        if isinstance(log, DecisionLog):
            self._log = log
        else:
            header = {"policy": policy.name, "revision": str(policy.revision)}
            self._log = DecisionLog(log, content=policy.log_content, record_to=record_to, header=header)
        self._stats: Stats | None = Stats() if stats else None
        self._pending = PendingCalls()  # allowed calls awaiting record()
        self._unsettled = SettleQueue()  # settlements the store refused while down, retried later
        self._observers: list[Observer] = []
        self._record_observers: list[RecordObserver] = []
        self._path = None if path is None else os.fspath(path)
        self._prefix = secrets.token_hex(6)
        self._ids = itertools.count(1)
        self._reload_lock = threading.Lock()
        self.last_overrun: Overrun | None = None
        """The overrun of the latest record() of this governor, None when it stayed within its reservation
        (replay reads it; concurrent callers should use stats()["total"]["overruns"])."""
        self.watcher: PolicyWatcher | None = None
        if observers:
            self._observers.extend(default_observers())
        self.alerts: Any = None  # governor.alerts.AlertWatcher, when the policy has an alerts: section
        if policy.alerts is not None:
            self._attach_alerts()
        after_fork_in_child(self, Governor._after_fork)
        if freeze_gc:
            _freeze_gc()

    def _after_fork(self) -> None:
        """In a forked child: a new decision-id prefix and counter (the parent's ids would be handed
        out again, and a ledger shared with the parent takes a known id as already reserved), and
        fresh locks (another thread may have held one at the fork). The watcher's thread did not
        survive the fork: call :meth:`watch` again in the child to keep watching."""
        self._prefix = secrets.token_hex(6)
        self._ids = itertools.count(1)
        self._reload_lock = threading.Lock()
        self._runs.lock = threading.Lock()
        for part in (self._pending, self._unsettled, self._stats, self._tokens, self._log):
            if part is not None and hasattr(part, "_lock"):
                part._lock = threading.Lock()
        self.watcher = None

    def _attach_alerts(self) -> None:
        from governor.alerts import attach_alerts

        self.alerts = attach_alerts(self)

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        *,
        ledger: Ledger | None = None,
        clock: Callable[[], float] | None = None,
        log: Any = None,
        record_to: str | os.PathLike[str] | None = None,
        watch: bool | float = False,
        freeze_gc: bool = False,
    ) -> Governor:
        """Load and compile the policy at ``path``. ``watch=True`` (or seconds) polls it for changes;
        ``freeze_gc`` as in the constructor."""
        from governor.policy.loader import load_policy

        gov = cls(
            load_policy(path), ledger=ledger, clock=clock, log=log, record_to=record_to, path=path, freeze_gc=freeze_gc
        )
        if watch:
            gov.watch(2.0 if watch is True else float(watch))
        return gov

    # -- introspection -------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        return self._compiled.policy

    @property
    def revision(self) -> str:
        return self._compiled.revision

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    def stats(self) -> dict[str, Any]:
        """Spend, calls, blocks and cost per accepted task by run / user / team / model."""
        if self._stats is None:
            raise GovernorError("this governor keeps no stats (built with stats=False)")
        return self._stats.snapshot()

    def add_observer(self, fn: Observer) -> None:
        """``fn(decision)`` is called after every check; its exceptions are logged, never raised."""
        self._observers.append(fn)

    def add_record_observer(self, fn: RecordObserver) -> None:
        """``fn(recorded)`` is called after every settled call (:class:`Recorded`); exceptions are logged."""
        self._record_observers.append(fn)

    def in_flight(self) -> int:
        """Allowed calls checked and not yet recorded (their reservations are held)."""
        return len(self._pending)

    def run(
        self,
        run_id: str | None = None,
        *,
        user: str | None = None,
        team: str | None = None,
        task: str | None = None,
        **metadata: Any,
    ) -> AbstractContextManager[_scope.Scope]:
        """A run scope: metadata for every check inside it (threads and asyncio tasks alike)."""
        return _scope.run_scope(run_id, user=user, team=team, task=task, **metadata)

    # -- check ---------------------------------------------------------------------
    def check(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
        tools: Sequence[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        input_tokens: int | None = None,
        fingerprint: str | int | None = None,
        message_count: int | None = None,
    ) -> Decision:
        """Decide one call. Blocking is returned as ``verdict == "block"``, never raised.

        Arguments the governor cannot decide on (a negative or huge count, a list
        as ``metadata["team"]``, messages that are not mappings) raise
        :class:`~governor.errors.InvalidCall` naming the field, before anything
        is reserved (:mod:`governor.inputs` says what is accepted).

        ``fingerprint`` is a stable digest of the request (str or int), used by
        ``repeated_call`` instead of hashing the messages: a caller that already
        has one (a trace's digest, replay's per-run prefix hash) saves the
        hashing. Without it the messages are hashed; with neither messages nor a
        fingerprint, ``repeated_call`` does not fire. ``message_count`` is what
        ``messages`` match conditions see when no messages are given (replay of
        a trace recorded without prompt text); given messages always win.
        """
        model, msgs, max_tokens, tools, metadata, input_tokens, fingerprint, message_count = inputs.check_args(
            model, messages, max_tokens, tools, metadata, input_tokens, fingerprint, message_count
        )
        cp = self._compiled
        md, chain = _scope.resolve(metadata)
        model = cp.policy.aliases.get(model, model)
        hashes = None
        if input_tokens is None:
            # each message hashed once: the token cache's keys, and the repeated-call
            # fingerprint's digest (what runstate.call_fingerprint makes of the same messages)
            hashes = list(map(message_hash, msgs))
            n, estimated = self._tokens.count(model, msgs, tools, hashes)
            if fingerprint is None and hashes:
                fingerprint = hash(tuple(hashes))
        else:
            n, estimated = int(input_tokens), False
        now = self._clock()
        did = f"{self._prefix}{next(self._ids):x}"
        call = CallRequest(
            model=model,
            messages=msgs,
            max_tokens=max_tokens,
            tools=tools,
            metadata=md,
            run_chain=chain,
            input_tokens=n,
            estimated=estimated,
            now=now,
            decision_id=did,
            fingerprint=fingerprint,
            message_count=message_count,
        )
        checked = decide(cp, self._runs, self._ledger, self._tokens, call)
        d = checked.decision
        if self._stats is not None:
            self._stats.add_check(d)
        pending = None
        if d.verdict != "block":
            pending = Pending(policy=cp, reservation=checked.reservation, runs=checked.runs, checked_at=now)
        self._pending.put(did, pending, now)
        if self._unsettled.items:
            self._unsettled.flush(self._ledger, now)
        if self._log.enabled:
            for adj in checked.adjustments:  # before the check it changed: a reader meets the record first
                self._log.adjustment(adj, ts=now, policy=cp.name, revision=cp.revision)
            self._log.check(d, ts=now, messages=msgs, max_tokens=max_tokens, tools=tools, hashes=hashes)
        for fn in self._observers:
            try:
                fn(d)
            except Exception:
                log.exception("decision observer %r failed", fn)
        return d

    async def acheck(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
        tools: Sequence[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        input_tokens: int | None = None,
        fingerprint: str | int | None = None,
        message_count: int | None = None,
    ) -> Decision:
        """:meth:`check` for asyncio; a ledger doing I/O runs in a worker thread
        (which inherits this task's run scope)."""
        kwargs: dict[str, Any] = dict(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            tools=tools,
            metadata=metadata,
            input_tokens=input_tokens,
            fingerprint=fingerprint,
            message_count=message_count,
        )
        if self._blocking:
            import asyncio  # loaded already in a coroutine; not at module import (a hook process never needs it)

            return await asyncio.to_thread(lambda: self.check(**kwargs))
        return self.check(**kwargs)

    def check_or_raise(self, **kwargs: Any) -> Decision:
        """:meth:`check`, raising the :class:`CallBlocked` subclass that matches a block."""
        d = self.check(**kwargs)
        if d.verdict == "block":
            raise block_error(d)
        return d

    async def acheck_or_raise(self, **kwargs: Any) -> Decision:
        d = await self.acheck(**kwargs)
        if d.verdict == "block":
            raise block_error(d)
        return d

    # -- record ----------------------------------------------------------------------
    def record(
        self,
        decision: Decision,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        error: str | BaseException | None = None,
        cache_write_1h_tokens: int = 0,
        service_tier: str | None = None,
        speed: str | None = None,
        inference_geo: str | None = None,
        cost_usd: float | None = None,
    ) -> float | None:
        """Settle one call: its actual USD cost (None if the model is unpriced).

        Token counts are in the normal form of ``governor.integrations.usage``
        (input includes the cache; ``cache_write_1h_tokens`` is the 1-hour part
        of the writes). ``service_tier``, ``speed`` and ``inference_geo`` select
        the provider's rate for them (``governor.pricing``). ``cost_usd`` is the
        cost the provider billed, where the caller knows it: it is settled
        instead of the computed cost.

        Counts must be non-negative integers in range and ``cost_usd`` a finite,
        non-negative number (:class:`~governor.errors.InvalidCall` otherwise, with the
        reservation kept for a corrected record). Idempotent by decision id. A call
        that failed (``error``) with no tokens
        releases its reservation; one that failed after using tokens is charged.
        A blocked decision records nothing (returns 0.0).
        """
        if not isinstance(decision, Decision):
            raise InvalidCall("decision", f"expected the Decision check() returned, got {type(decision).__name__}")
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens = inputs.record_counts(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, error
        )
        if cache_write_1h_tokens:
            cache_write_1h_tokens = inputs.count(cache_write_1h_tokens, "cache_write_1h_tokens")
        if cost_usd is not None:
            cost_usd = inputs.usd(cost_usd, "cost_usd")
        if decision.verdict == "block":
            return 0.0
        now = self._clock()
        p = self._pending.take(decision.decision_id)
        cp = p.policy if p is not None else self._compiled
        if cost_usd is not None:
            cost: float | None = cost_usd
        else:
            cost = cp.prices.cost(
                decision.model,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
                cache_write_1h_tokens,
                service_tier,
                speed,
                inference_geo,
                now,
            )
        if p is None:
            log.warning("record of unknown or already settled decision %s ignored", decision.decision_id)
            return cost
        res, runs, at = p.reservation, p.runs, p.checked_at
        store_down = False
        if res is not None and (res.counters or res.audit_counters):
            if error is not None and not (input_tokens or output_tokens):
                try:
                    self._ledger.release(decision.decision_id, now=now)
                except LedgerError:  # the lease reclaims it
                    store_down = True
                    log.warning("could not release decision %s: budget store unavailable", decision.decision_id)
            else:
                usd = 0 if cost is None else usd_to_nano(cost)
                store_down = not self._settle(decision.decision_id, res, usd, input_tokens + output_tokens, now, at)
        if self._unsettled.items:
            self._unsettled.flush(self._ledger, now)
        over = None
        if res is not None and (res.counters or res.audit_counters):  # only a reservation can be overrun
            over = measure_overrun(decision, cost, input_tokens, output_tokens, cp.default_output_tokens)
            if over is not None:
                log.warning("%s", over)
                if self._stats is not None:
                    self._stats.add_overrun(over)
        if runs:
            self._runs.settle(runs, cost, error is not None, over is not None)
        if self._stats is not None:
            self._stats.add_record(decision, cost, input_tokens, output_tokens, error is not None)
        if self._log.enabled:
            self._log.record(
                decision,
                ts=now,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read_tokens,
                cache_write_tokens=cache_write_tokens,
                reasoning_tokens=reasoning_tokens,
                cost_usd=cost,
                error=error,
                check_ts=at,
                overrun=None if over is None else over.as_dict(),
            )
        self.last_overrun = over
        if self._record_observers:
            event = Recorded(
                decision=decision,
                cost_usd=cost,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read_tokens,
                cache_write_tokens=cache_write_tokens,
                reasoning_tokens=reasoning_tokens,
                error=error is not None,
                ts=now,
                ledger_error=store_down,
                counters=() if res is None else res.counters + res.audit_counters,
            )
            for ob in self._record_observers:
                try:
                    ob(event)
                except Exception:
                    log.exception("record observer %r failed", ob)
        return cost

    def _settle(
        self, decision_id: str, res: Reservation, usd: int, tokens: int, now: float, reserved_at: float
    ) -> bool:
        """Settle through the Ledger protocol; a store that is down gets it later (SettleQueue): False."""
        counters = res.counters + res.audit_counters
        if usd > MAX_QUANTITY or tokens > MAX_QUANTITY:  # saturate, loudly: the spend happened
            log.error(
                "decision %s: actual spend (%d nano-USD, %d tokens) beyond what a ledger stores; counted as %d",
                decision_id,
                usd,
                tokens,
                MAX_QUANTITY,
            )
            usd, tokens = min(usd, MAX_QUANTITY), min(tokens, MAX_QUANTITY)
        actual = Amount(usd, tokens, 1)
        try:
            self._ledger.settle(decision_id, counters, actual, now=now, reserved_at=reserved_at)
        except LedgerError:
            self._unsettled.add(decision_id, counters, actual, reserved_at, now)
            return False
        return True

    def cancel(self, decision: Decision) -> None:
        """The call ``decision`` allowed will not be made: give its reservation back. (Its admission
        into its runs stays counted; a caller that probes with a check keeps run state itself.)"""
        if decision.verdict == "block" or self._pending.take(decision.decision_id) is None:
            return
        try:
            self._ledger.release(decision.decision_id, now=self._clock())
        except LedgerError:  # the lease reclaims it
            log.warning("could not release decision %s: budget store unavailable", decision.decision_id)

    def observe(
        self,
        *,
        call_id: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        service_tier: str | None = None,
        speed: str | None = None,
        error: bool = False,
        metadata: Mapping[str, Any] | None = None,
        at: float | None = None,
        tail: Tail | None = None,
    ) -> float | None:
        """Account for a call made without a check (a transcript a hook reads): charge its budgets
        (idempotent by ``call_id``) and count it in its runs. See :mod:`governor.engine.observed`."""
        md, chain = _scope.resolve(metadata)
        cp = self._compiled
        model = cp.policy.aliases.get(model, model)
        now = self._clock() if at is None else at
        cost, counters, fresh = observe(
            cp,
            self._ledger,
            self._runs,
            call_id=call_id,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            cache_write_1h_tokens=cache_write_1h_tokens,
            service_tier=service_tier,
            speed=speed,
            error=error,
            metadata=md,
            run_chain=chain,
            at=now,
            tail=tail,
        )
        if fresh and self._record_observers:  # metrics and alerts see the hook path's calls too
            decision = Decision(
                verdict="allow",
                model=model,
                messages=(),
                max_tokens=None,
                rule_ids=(),
                reasons=(),
                revision=cp.revision,
                estimated_cost_usd=None,
                decision_id=call_id,
                requested_model=model,
                input_tokens=input_tokens,
                policy_name=cp.name,
                metadata=md,
            )
            event = Recorded(
                decision=decision,
                cost_usd=cost,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read_tokens,
                cache_write_tokens=cache_write_tokens,
                error=error,
                ts=now,
                counters=counters,
                observed=True,
            )
            for ob in self._record_observers:
                try:
                    ob(event)
                except Exception:
                    log.exception("record observer %r failed", ob)
        return cost

    def export_run(self, run_id: str) -> dict[str, Any] | None:
        """The stop-condition state of ``run_id`` as JSON values (a hook keeps it between its processes)."""
        return self._runs.export(str(run_id))

    def restore_run(self, run_id: str, state: Mapping[str, Any]) -> None:
        """Install a state :meth:`export_run` produced, before checking calls of that run."""
        self._runs.restore(str(run_id), state, self._clock())

    async def arecord(self, decision: Decision, **kwargs: Any) -> float | None:
        if self._blocking:
            import asyncio

            return await asyncio.to_thread(lambda: self.record(decision, **kwargs))
        return self.record(decision, **kwargs)

    def record_outcome(self, run_id: str, outcome: str) -> None:
        """The run's result: accepted | edited | rejected | escalated (the latest wins)."""
        if outcome not in OUTCOMES:
            raise GovernorError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        if self._stats is not None:
            self._stats.add_outcome(str(run_id), outcome)
        self._runs.set_outcome(str(run_id), outcome)
        if self._log.enabled:
            self._log.outcome(
                str(run_id), outcome, ts=self._clock(), policy=self._compiled.name, revision=self.revision
            )

    # -- reload ---------------------------------------------------------------------
    def reload(self, policy: Policy | None = None) -> bool:
        """Load the policy file again (or install ``policy``); False, keeping the running one, if invalid.

        Never raises for a bad policy: whatever fails (validation, compiling), the error is logged
        and the running policy keeps serving.
        """
        with self._reload_lock:
            if policy is None:
                if self._path is None:
                    raise GovernorError("this governor was not loaded from a file: pass reload(policy)")
                policy = load_or_log(self._path, self.revision)
                if policy is None:
                    return False
            old = self._compiled
            try:
                compiled = CompiledPolicy(policy)
            except Exception:  # noqa: BLE001 - a bad policy never replaces the good one
                log.exception("policy reload rejected: it does not compile; still serving revision %s", old.revision)
                return False
            if policy.ledger != old.policy.ledger:
                log.warning("policy reload changes the ledger section; the running ledger is kept until restart")
            self._runs.fp_ttl = compiled.fp_ttl
            self._compiled = compiled
            if self._freeze_gc:
                _freeze_gc()
            if self.alerts is None and policy.alerts is not None:
                self._attach_alerts()
            log.info("policy %s reloaded: revision %s -> %s", policy.name, old.revision, compiled.revision)
            return True

    def watch(self, interval_s: float = 2.0) -> PolicyWatcher:
        """Poll the policy file (and the files it extends) every ``interval_s``; reload on change."""
        if self._path is None:
            raise GovernorError("this governor was not loaded from a file: nothing to watch")
        if self.watcher is None:
            self.watcher = PolicyWatcher(
                lambda: watched_files(self._compiled.policy, self._path), self.reload, interval_s
            )
        return self.watcher

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        """Stop the watcher, close the decision log and (if we opened it) the ledger."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self._log.close()
        if self.alerts is not None:
            self.alerts.close()
        if self._owns_ledger:
            self._ledger.close()

    def __enter__(self) -> Governor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _freeze_gc() -> None:
    """Collect what is garbage now, then move every surviving object out of the collector's scans."""
    gc.collect()
    gc.freeze()
