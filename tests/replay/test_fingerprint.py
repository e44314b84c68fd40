"""Replay's per-run prefix fingerprints mean what the engine's do: same message sequence, same key."""

from __future__ import annotations

from governor.engine.runstate import call_fingerprint
from governor.replay.fingerprint import PrefixFingerprints


def msg(role: str, text: str, **extra: object) -> dict[str, object]:
    return {"role": role, "content": text, **extra}


def test_prefix_fingerprints_equal_iff_the_engines_hash_of_the_messages_is_equal() -> None:
    sys_, u1, a1 = msg("system", "be brief"), msg("user", "hi"), msg("assistant", "", tool_calls=[{"name": "f"}])
    u2 = msg("user", "again")
    # a growing history sharing message objects, a rewind, an edit, a rebuilt (equal, not identical) copy
    calls = [
        (sys_, u1),
        (sys_, u1, a1),
        (sys_, u1, a1, u2),
        (sys_, u1),  # rewound to an earlier prefix
        (sys_, u1, a1, u2),  # grown again
        (sys_, msg("user", "hi"), dict(a1), dict(u2)),  # equal messages, new objects
        (sys_, u1, a1, msg("user", "different")),  # same length, last message differs
        (sys_, u1, a1, u2, u2),  # a resent message twice
        (sys_,),
        [sys_, u1, a1, u2],  # a list, not a tuple
    ]
    fps = PrefixFingerprints()
    ours = [call_fingerprint("m", (), fps.of(c)) for c in calls]
    engine = [call_fingerprint("m", c) for c in calls]
    pairs = [(i, j) for i in range(len(calls)) for j in range(i + 1, len(calls))]
    assert [ours[i] == ours[j] for i, j in pairs] == [engine[i] == engine[j] for i, j in pairs]
    assert ours[2] == ours[4] == ours[5] == ours[9] and ours[2] != ours[6]  # the test above is not vacuous
    # the model is part of the key
    assert call_fingerprint("other", (), fps.of(calls[2])) != ours[2]


def test_runs_are_independent_of_the_order_their_calls_come_in() -> None:
    a, b, c = msg("user", "a"), msg("assistant", "b"), msg("user", "c")
    one, two = PrefixFingerprints(), PrefixFingerprints()
    first = [one.of((a,)), one.of((a, b)), one.of((a, b, c))]
    second = [two.of((a, b, c)), two.of((a,)), two.of((a, b))]
    assert first == [second[1], second[2], second[0]]
