"""The Lua scripts of the Redis ledger: each ledger operation is one atomic script.

Keys of one counter (``C`` = ``{prefix:budget_id}:c:<counter key>``; the hash
tag keeps a budget's keys in one Redis Cluster slot):

* ``C:s`` HASH ``<slot>:u|t|c`` -> settled nano-USD / tokens / calls per window
  slot; stale slots are deleted when read, the key expires after the window's
  TTL without writes.
* ``C:i`` HASH ``u|t|c`` -> the counter's in-flight (reserved) total.
* ``C:z`` ZSET reservation id -> lease expiry; ``C:a`` HASH id -> ``"u t c"``.
  Expired ids are reclaimed (subtracted from ``C:i``) by every script that reads
  the counter, so a crashed worker's reservations free their budget after the lease.

Per reservation: ``<prefix>:res:<id>`` HASH (exp, amt, the counters' base keys)
so ``release`` by id finds its counters; ``<prefix>:done:<id>`` marks a settled
id (SET with TTL) so settle is idempotent.

Amounts are passed and stored as decimal strings and changed with HINCRBY, so
large nano-USD values never go through Lua's doubles on the write path.
"""

from __future__ import annotations

_PRELUDE = r"""
local function neg(s)
  if s == '0' then return s end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end

local function add(key, u, t, c)
  if u ~= '0' then redis.call('HINCRBY', key, 'u', u) end
  if t ~= '0' then redis.call('HINCRBY', key, 't', t) end
  if c ~= '0' then redis.call('HINCRBY', key, 'c', c) end
end

local function take(inf, z, a, rid)
  local amt = redis.call('HGET', a, rid)
  if not amt then return false end
  local u, t, c = string.match(amt, '^(%S+) (%S+) (%S+)$')
  add(inf, neg(u), neg(t), neg(c))
  redis.call('HDEL', a, rid)
  redis.call('ZREM', z, rid)
  return true
end

local function reclaim(inf, z, a, now)
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, rid in ipairs(ids) do
    if not take(inf, z, a, rid) then redis.call('ZREM', z, rid) end
  end
end

local function drop(res, rid)
  local rec = redis.call('HGET', res, 'keys')
  if not rec then return false end
  local bases = cjson.decode(rec)
  local any = #bases == 0
  for _, base in ipairs(bases) do
    if take(base .. ':i', base .. ':z', base .. ':a', rid) then any = true end
  end
  redis.call('DEL', res)
  return any
end

local function settled(key, kind, lo, cur)
  local flat = redis.call('HGETALL', key)
  local u, t, c = 0, 0, 0
  local stale = {}
  local loN, curN = tonumber(lo), tonumber(cur)
  for j = 1, #flat, 2 do
    local f = flat[j]
    local sep = string.find(f, ':', 1, true)
    local slot, m = string.sub(f, 1, sep - 1), string.sub(f, sep + 1)
    local live = false
    if kind == 'r' then
      local idx = string.sub(slot, 1, 1) == 'r' and tonumber(string.sub(slot, 2)) or nil
      if idx == nil or idx <= loN then table.insert(stale, f)
      elseif idx <= curN then live = true end
    elseif slot == lo then
      live = true
    elseif string.sub(slot, 1, 1) ~= string.sub(lo, 1, 1) or slot < lo then
      table.insert(stale, f)
    end
    if live then
      local v = tonumber(flat[j + 1])
      if m == 'u' then u = u + v elseif m == 't' then t = t + v else c = c + v end
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  return u, t, c
end

local function inflight(key)
  local v = redis.call('HMGET', key, 'u', 't', 'c')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
end

local function keep(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# KEYS: res, done, then per counter s, i, z, a.
# ARGV: rid, now, expires_at, u, t, c, keep_ms, bases_json, then per counter kind, lo, cur, lu, lt, lc
#       (kind 'r' rolling with slot index bounds lo < idx <= cur; else lo is the current slot;
#        a limit of '-1' means unlimited; the client sends MAX_QUANTITY instead, the most a counter holds).
# Returns {ok, denied_index (1-based, 0 none), denied_metric, u1, t1, c1, u2, ...}.
RESERVE = (
    _PRELUDE
    + r"""
local rid, now, exp = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local au, at, ac = ARGV[4], ARGV[5], ARGV[6]
local n = (#KEYS - 2) / 4
local used = {}
for i = 1, n do
  local k, o = 2 + (i - 1) * 4, 8 + (i - 1) * 6
  reclaim(KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], now)
  local su, st, sc = settled(KEYS[k + 1], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3])
  local iu, it, ic = inflight(KEYS[k + 2])
  used[i] = {su + iu, st + it, sc + ic}
end
local known = redis.call('EXISTS', KEYS[2]) == 1
if not known then
  local e = redis.call('HGET', KEYS[1], 'exp')
  known = e and tonumber(e) > now
end
local out = {1, 0, ''}
if not known then
  local nu, nt, nc = tonumber(au), tonumber(at), tonumber(ac)
  for i = 1, n do
    local o = 8 + (i - 1) * 6
    local lu, lt, lc = tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6])
    local tu, tt, tc = used[i][1] + nu, used[i][2] + nt, used[i][3] + nc
    local metric = nil
    if lu >= 0 and tu > lu then metric = 'usd'
    elseif lt >= 0 and tt > lt then metric = 'tokens'
    elseif lc >= 0 and tc > lc then metric = 'calls' end
    if metric then return {0, i, metric} end
    used[i] = {tu, tt, tc}
  end
  local ms = tonumber(ARGV[7])
  for i = 1, n do
    local k = 2 + (i - 1) * 4
    add(KEYS[k + 2], au, at, ac)
    redis.call('ZADD', KEYS[k + 3], exp, rid)
    redis.call('HSET', KEYS[k + 4], rid, au .. ' ' .. at .. ' ' .. ac)
    keep(KEYS[k + 2], ms); keep(KEYS[k + 3], ms); keep(KEYS[k + 4], ms)
  end
  redis.call('HSET', KEYS[1], 'exp', exp, 'keys', ARGV[8])
  redis.call('PEXPIRE', KEYS[1], ms)
end
for i = 1, n do
  table.insert(out, used[i][1]); table.insert(out, used[i][2]); table.insert(out, used[i][3])
end
return out
"""
)

# KEYS: res, done, then per counter s, i, z, a.
# ARGV: rid, now, settled_ttl_s, u, t, c, then per counter slot, ttl_s (0 = keep forever).
# Returns 1 if this call settled the id, 0 if it was settled before.
SETTLE = (
    _PRELUDE
    + r"""
local rid, now = ARGV[1], tonumber(ARGV[2])
local u, t, c = ARGV[4], ARGV[5], ARGV[6]
local n = (#KEYS - 2) / 4
for i = 1, n do
  local k = 2 + (i - 1) * 4
  reclaim(KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], now)
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
drop(KEYS[1], rid)
for i = 1, n do
  local s, o = KEYS[2 + (i - 1) * 4 + 1], 6 + (i - 1) * 2
  local slot, ttl = ARGV[o + 1], tonumber(ARGV[o + 2])
  if u ~= '0' then redis.call('HINCRBY', s, slot .. ':u', u) end
  if t ~= '0' then redis.call('HINCRBY', s, slot .. ':t', t) end
  if c ~= '0' then redis.call('HINCRBY', s, slot .. ':c', c) end
  if ttl > 0 then redis.call('EXPIRE', s, ttl) else redis.call('PERSIST', s) end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
)

# KEYS: res. ARGV: rid. Returns 1 if a live reservation was dropped.
RELEASE = (
    _PRELUDE
    + r"""
if drop(KEYS[1], ARGV[1]) then return 1 end
return 0
"""
)

# KEYS: s, i, z, a. ARGV: now, kind, lo, cur. Returns {u, t, c}.
USAGE = (
    _PRELUDE
    + r"""
local now = tonumber(ARGV[1])
reclaim(KEYS[2], KEYS[3], KEYS[4], now)
local su, st, sc = settled(KEYS[1], ARGV[2], ARGV[3], ARGV[4])
local iu, it, ic = inflight(KEYS[2])
return {su + iu, st + it, sc + ic}
"""
)
