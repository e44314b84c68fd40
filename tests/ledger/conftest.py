"""Ledger fixtures: every ledger kind behind one factory, and a real redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ledger_workers import SLOW_BOX, unique_prefix
from redis_proc import RedisClusterNodes, RedisServer

from governor.ledger.base import Ledger
from governor.ledger.memory import MemoryLedger
from governor.ledger.redis import RedisLedger
from governor.ledger.sqlite import SqliteLedger

KINDS = ("memory", "sqlite", "redis", "redis-cluster")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    cluster = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def make_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Ledger]]:
    """``make_ledger(kind)`` opens a fresh ledger; every call for the same kind in one
    test opens another handle on the *same* store (as a second process would)."""
    opened: list[Ledger] = []
    prefix = unique_prefix(request.node.name[:40])

    def make(kind: str) -> Ledger:
        if kind == "memory":
            ledger: Ledger = MemoryLedger()
        elif kind == "sqlite":
            ledger = SqliteLedger(tmp_path / "ledger.db")
        elif kind == "redis":
            server = request.getfixturevalue("redis_server")
            ledger = RedisLedger(server.url, key_prefix=prefix, **SLOW_BOX)
        elif kind == "redis-cluster":
            nodes = request.getfixturevalue("redis_cluster")
            ledger = RedisLedger(nodes.url, key_prefix=prefix, **SLOW_BOX)
        else:
            raise ValueError(kind)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture(params=KINDS)
def ledger(request: pytest.FixtureRequest, make_ledger: Callable[[str], Ledger]) -> Ledger:
    return make_ledger(request.param)
