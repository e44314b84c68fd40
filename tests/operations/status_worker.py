"""Another process on the shared ledger: settles some calls and leaves some reservations in flight."""

from __future__ import annotations

import sys
import time

from governor import Governor


def main(policy: str, team: str, settled: int, held: int) -> None:
    gov = Governor.from_path(policy, log=sys.argv[5] if len(sys.argv) > 5 else None)
    for _ in range(settled):
        d = gov.check(model="m-cheap", input_tokens=100_000, max_tokens=1, metadata={"team": team, "run_id": "r-ok"})
        gov.record(d, input_tokens=100_000, output_tokens=0)
    for i in range(held):  # checked, never recorded: held until the lease ends
        gov.check(model="m-cheap", input_tokens=50_000, max_tokens=1, metadata={"team": team, "run_id": f"h{i}"})
    for _ in range(3):  # a run the stop condition stops on its third call
        gov.check(model="m-cheap", input_tokens=10, max_tokens=1, metadata={"team": team, "run_id": "loopy"})
    print("ready", flush=True)
    time.sleep(float(sys.argv[6]) if len(sys.argv) > 6 else 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
