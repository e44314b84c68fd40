"""One process of the cross-process alert dedupe test: spend on a shared ledger, then deliver alerts."""

from __future__ import annotations

import sys

from governor import Governor


def main(policy: str, calls: int) -> None:
    gov = Governor.from_path(policy)
    for _ in range(calls):
        d = gov.check(model="m-cheap", input_tokens=50_000, max_tokens=1, metadata={"team": "platform"})
        if d.allowed:
            gov.record(d, input_tokens=50_000, output_tokens=0)
    assert gov.alerts is not None and gov.alerts.flush(20)
    gov.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
