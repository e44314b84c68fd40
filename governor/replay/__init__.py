"""Dry-run policies on recorded traces: replay, reports, policy diffs and policy tests.

Entry points: :func:`governor.replay.run.replay_policy` (replay one compiled
policy over imported calls, in parallel processes when the runs are
independent), :class:`governor.replay.engine.Replayer` (replay a TraceSet
through the production Governor), :func:`governor.replay.report.build_report`
(the JSON report), :func:`governor.replay.diff.build_diff` and
:mod:`governor.replay.policytest`. The CLI (``governor replay | diff | test``)
is a thin layer over these.
"""
