"""Per-run prefix fingerprints: ``repeated_call`` keys for replay in O(new messages) per call.

The engine hashes every message of a call to fingerprint it; over a run whose
history grows by a message or two per call that is quadratic. Replay knows
more: consecutive calls of a run resend the same message objects as a prefix
(the tau2 importer shares them), so it keeps, per run, the previous call's
messages and the chained hash of each of their prefixes, checks the shared
prefix by identity and hashes only the messages after it. The chain value is
passed to ``Governor.check(fingerprint=...)``, which adds the model: two calls
of a run get the same fingerprint iff same model and same message sequence
(each message hashed by the engine's own :func:`message_hash`). Trace
messages are values: nothing mutates them during a replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import is_
from typing import Any

from governor.engine.tokens import message_hash

_EMPTY = 0x9E3779B97F4A7C15  # the chain value of no messages (any constant)


class PrefixFingerprints:
    """The chained prefix hashes of one run's latest messages."""

    __slots__ = ("_messages", "_chain")

    def __init__(self) -> None:
        self._messages: Sequence[Mapping[str, Any]] = ()
        self._chain: list[int] = [_EMPTY]  # _chain[k]: hash of the first k messages

    def of(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """The chained hash of ``messages``, reusing the prefix shared (by identity) with the last call."""
        if messages.__class__ is not tuple:
            messages = tuple(messages)  # a list could change under us before the next call
        prev, chain = self._messages, self._chain
        n = len(prev)
        if len(messages) >= n and all(map(is_, messages, prev)):
            k = n  # the usual case: the history grew (C-speed identity scan)
        else:
            k = 0
            for a, b in zip(messages, prev, strict=False):
                if a is not b:
                    break
                k += 1
            del chain[k + 1 :]
        h = chain[k]
        for m in messages[k:]:
            h = hash((h, message_hash(m)))
            chain.append(h)
        self._messages = messages
        return h
