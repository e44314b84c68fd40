"""Ledgers: where budget counters live. The engine reaches them only through the protocol in base.

base     the :class:`Ledger` protocol (reserve / settle / release / usage, claim, scopes /
         in_flight, adjust / adjustments, close), the values it speaks (Amount, Limit,
         Counter, ReserveResult, Adjustment) and the stored bounds.
windows  budget windows (none, rolling, calendar) mapped to slots, the same in every store.
memory   the in-process ledger: the default, and the reference semantics.
sqlite   one WAL file shared by processes on one machine.
redis    one Redis (or Cluster) shared by hosts; redis_scripts holds its Lua.
factory  the ledger a policy's ``ledger:`` section names.
forks    what each ledger (and the governor) renews in a child after ``fork()``.
"""
