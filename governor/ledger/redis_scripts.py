"""The Lua scripts of the Redis ledger: each ledger operation is one atomic script, one round trip.

Keys (``T`` is the hash tag: ``{prefix:budget_id}`` in Redis Cluster, so a
budget's keys share a slot; the bare prefix on a single primary):

* ``{prefix:budget_id}:c:<counter key>:v`` -- one HASH per counter, everything
  a reserve reads in one HMGET: ``<slot>:u|t|c`` settled nano-USD / tokens /
  calls per window slot; ``iu|it|ic|in`` its live reservations (sum and
  count); for a rolling window ``sum@`` (the bucket the running sum is for) and
  ``su|st|sc`` (the sum of the live buckets, re-added from the slots once per
  bucket); for a calendar one ``at`` (the current slot, so older slots are
  dropped once per day or month, not looked at per call). A windowed counter
  expires after its window's TTL without writes.
* ``T:leases`` ZSET reservation id -> lease expiry, and ``T:res:<id>`` HASH
  (``amt`` "u t c", ``keys`` the counters' hashes as JSON): each script first
  gives back up to RECLAIM_BATCH expired reservations from the front of the
  ZSET, so a crashed worker's reservations free their budget after the lease
  with bounded work per call.
* ``T:done:<id>`` marks a settled id (SET with TTL): settle is idempotent.

Figures are decimal strings in Redis and Lua numbers (doubles) in the scripts:
every stored figure stays within MAX_QUANTITY = 2**53 - 1, where doubles are
exact integers (Redis writes a number argument in its shortest exact form, and
returns it as an integer); a settled figure beyond it is saturated (such a
counter denies every reservation), as in every ledger.
"""

from __future__ import annotations

from governor.ledger.windows import ROLLING_SLOTS

RECLAIM_BATCH = 64  # expired reservations a script gives back before its own work

_PRELUDE = (
    r"""
local MAXQ = 9007199254740991
local function num(v) return tonumber(v) or 0 end

-- give back reservation rid: its amount leaves the in-flight figures of every counter it holds
local function drop(res, leases, rid)
  local rec = redis.call('HMGET', res, 'amt', 'keys')
  redis.call('ZREM', leases, rid)
  if not rec[1] then return false end
  local u, t, c = string.match(rec[1], '^(%S+) (%S+) (%S+)$')
  for _, key in ipairs(cjson.decode(rec[2])) do
    if u ~= '0' then redis.call('HINCRBY', key, 'iu', '-' .. u) end
    if t ~= '0' then redis.call('HINCRBY', key, 'it', '-' .. t) end
    if c ~= '0' then redis.call('HINCRBY', key, 'ic', '-' .. c) end
    redis.call('HINCRBY', key, 'in', -1)
  end
  redis.call('DEL', res)
  return true
end

local function reclaim(leases, res_prefix, now)
  local ids = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, """
    + str(RECLAIM_BATCH)
    + r""")
  for _, rid in ipairs(ids) do drop(res_prefix .. rid, leases, rid) end
end

-- the settled figures of counter key at window (kind 'r': rolling, lo < bucket <= cur; else lo is the
-- current slot), given what HMGET read (v[1..3]: the current slot's or the running sum's, v[4]: sum@ or at);
-- returns u, t, c and the fields to write with the caller's HSET
local function settled(key, kind, lo, cur, v, out)
  if kind == 'r' then
    if v[4] == cur then return num(v[1]), num(v[2]), num(v[3]) end
    -- a new bucket: drop the buckets that left the window, sum the live ones (once per bucket)
    local flat = redis.call('HGETALL', key)
    local u, t, c, stale = 0, 0, 0, {}
    local loN, curN = tonumber(lo), tonumber(cur)
    for j = 1, #flat, 2 do
      local f = flat[j]
      if string.sub(f, 1, 1) == 'r' then
        local sep = string.find(f, ':', 1, true)
        local idx = tonumber(string.sub(f, 2, sep - 1))
        local m = string.sub(f, sep + 1)
        if idx <= loN then stale[#stale + 1] = f
        elseif idx <= curN then
          local x = tonumber(flat[j + 1])
          if m == 'u' then u = u + x elseif m == 't' then t = t + x else c = c + x end
        end
      elseif string.sub(f, 1, 1) ~= 'i' and string.sub(f, 1, 1) ~= 's' then
        table.insert(stale, f)  -- a calendar slot or marker: the budget's window changed
      end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    out[#out + 1] = 'sum@'; out[#out + 1] = cur
    out[#out + 1] = 'su'; out[#out + 1] = (u)
    out[#out + 1] = 'st'; out[#out + 1] = (t)
    out[#out + 1] = 'sc'; out[#out + 1] = (c)
    return u, t, c
  end
  if v[4] ~= lo then
    -- a new day or month (or the first read): drop the other slots' fields (once per slot)
    local flat = redis.call('HGETALL', key)
    local stale = {}
    for j = 1, #flat, 2 do
      local f = flat[j]
      local head = string.sub(f, 1, 1)
      if head ~= 'i' and f ~= 'at' and string.sub(f, 1, #lo + 1) ~= lo .. ':' then
        if head == 'r' or head == 's' or string.sub(f, 1, 1) ~= string.sub(lo, 1, 1) or f < lo then
          stale[#stale + 1] = f
        end
      end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    out[#out + 1] = 'at'; out[#out + 1] = lo
  end
  return num(v[1]), num(v[2]), num(v[3])
end

local function fields(kind, lo)
  if kind == 'r' then return 'su', 'st', 'sc', 'sum@' end
  return lo .. ':u', lo .. ':t', lo .. ':c', 'at'
end
"""
)

# KEYS: res, done, leases, then one hash per counter.
# ARGV: rid, now, expires_at, u, t, c, keep_ms, keys_json, res_prefix,
#       then per counter kind, lo, cur, lu, lt, lc, ttl_ms
#       (kind 'r' rolling with bucket bounds lo < idx <= cur; else lo is the current slot; the limits are
#        MAX_QUANTITY where unlimited; ttl_ms 0: the counter never expires).
# Returns {ok, denied_index (1-based, 0 none), denied_metric, u1, t1, c1, u2, ...}.
RESERVE = (
    _PRELUDE
    + r"""
local rid, now, exp = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local nu, nt, nc = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
reclaim(KEYS[3], ARGV[9], now)
local n = #KEYS - 3
local known = redis.call('EXISTS', KEYS[2]) == 1
if not known then
  local e = redis.call('HGET', KEYS[1], 'exp')
  known = e and tonumber(e) > now
end
local out, writes, used = {1, 0, ''}, {}, {}
for i = 1, n do
  local key, o = KEYS[3 + i], 9 + (i - 1) * 7
  local kind, lo, cur = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3]
  local fu, ft, fc, mark = fields(kind, lo)
  local v = redis.call('HMGET', key, fu, ft, fc, mark, 'iu', 'it', 'ic', 'in')
  local w = {}
  local su, st, sc = settled(key, kind, lo, cur, v, w)
  local iu, it, ic = num(v[5]), num(v[6]), num(v[7])
  if known then
    used[i] = {su + iu, st + it, sc + ic}
  else
    local tu, tt, tc = su + iu + nu, st + it + nt, sc + ic + nc
    local metric = nil
    if tu > tonumber(ARGV[o + 4]) then metric = 'usd'
    elseif tt > tonumber(ARGV[o + 5]) then metric = 'tokens'
    elseif tc > tonumber(ARGV[o + 6]) then metric = 'calls' end
    if metric then return {0, i, metric} end
    used[i] = {tu, tt, tc}
    w[#w + 1] = 'iu'; w[#w + 1] = (iu + nu)
    w[#w + 1] = 'it'; w[#w + 1] = (it + nt)
    w[#w + 1] = 'ic'; w[#w + 1] = (ic + nc)
    w[#w + 1] = 'in'; w[#w + 1] = (num(v[8]) + 1)
  end
  writes[i] = w
end
for i = 1, n do  -- nothing is written before every counter said yes
  local key, w = KEYS[3 + i], writes[i]
  if #w > 0 then redis.call('HSET', key, unpack(w)) end
  local ttl = tonumber(ARGV[9 + (i - 1) * 7 + 7])
  if not known and ttl > 0 and redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
if not known then
  redis.call('HSET', KEYS[1], 'exp', exp, 'amt', ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6], 'keys', ARGV[8])
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('ZADD', KEYS[3], exp, rid)
end
for i = 1, n do
  out[#out + 1] = (used[i][1]); out[#out + 1] = (used[i][2]); out[#out + 1] = (used[i][3])
end
return out
"""
)

# KEYS: res, done, leases, then one hash per counter.
# ARGV: rid, now, settled_ttl_s, u, t, c, res_prefix, then per counter slot, kind, ttl_s
#       (slot: the reservation time's slot, "r<bucket>" for a rolling window; ttl_s 0: keep forever; a TTL
#        is only ever extended here, so a longer lease's reservation keeps its counter).
# Returns 1 if this call settled the id, 0 if it was settled before.
SETTLE = (
    _PRELUDE
    + r"""
local rid, now = ARGV[1], tonumber(ARGV[2])
local au, at, ac = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
reclaim(KEYS[3], ARGV[7], now)
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = #KEYS - 3
-- the live reservation: given back in the same write on the counters it shares with this settle
local ru, rt, rc, held = 0, 0, 0, 0
local rec = redis.call('HMGET', KEYS[1], 'amt', 'keys')
local here = {}
if rec[1] then
  for i = 1, n do here[KEYS[3 + i]] = true end
  local others = {}
  for _, key in ipairs(cjson.decode(rec[2])) do
    if not here[key] then others[#others + 1] = key end
  end
  if #others > 0 then  -- reserved on counters this settle does not charge
    redis.call('HSET', KEYS[1], 'keys', cjson.encode(others))
    drop(KEYS[1], KEYS[3], rid)
  else
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[3], rid)
  end
  local u, t, c = string.match(rec[1], '^(%S+) (%S+) (%S+)$')
  ru, rt, rc, held = tonumber(u), tonumber(t), tonumber(c), 1
  for _, key in ipairs(cjson.decode(rec[2])) do here[key] = 'held' end
end
for i = 1, n do
  local key, o = KEYS[3 + i], 7 + (i - 1) * 3
  local slot, kind, ttl = ARGV[o + 1], ARGV[o + 2], tonumber(ARGV[o + 3])
  local back = here[key] == 'held'
  local v = redis.call('HMGET', key, slot .. ':u', slot .. ':t', slot .. ':c', 'iu', 'it', 'ic', 'in', 'sum@',
    'su', 'st', 'sc')
  local w = {slot .. ':u', (math.min(num(v[1]) + au, MAXQ)), slot .. ':t', (math.min(num(v[2]) + at, MAXQ)),
    slot .. ':c', (math.min(num(v[3]) + ac, MAXQ))}
  if back then
    w[#w + 1] = 'iu'; w[#w + 1] = (num(v[4]) - ru)
    w[#w + 1] = 'it'; w[#w + 1] = (num(v[5]) - rt)
    w[#w + 1] = 'ic'; w[#w + 1] = (num(v[6]) - rc)
    w[#w + 1] = 'in'; w[#w + 1] = (num(v[7]) - held)
  end
  if kind == 'r' and v[8] then  -- the running sum holds this bucket: it takes the spend too
    local b, top = tonumber(string.sub(slot, 2)), tonumber(v[8])
    if b > top - """
    + str(ROLLING_SLOTS)
    + r""" and b <= top then
      w[#w + 1] = 'su'; w[#w + 1] = (num(v[9]) + au)
      w[#w + 1] = 'st'; w[#w + 1] = (num(v[10]) + at)
      w[#w + 1] = 'sc'; w[#w + 1] = (num(v[11]) + ac)
    end
  end
  redis.call('HSET', key, unpack(w))
  if ttl <= 0 then redis.call('PERSIST', key)
  elseif redis.call('PTTL', key) < ttl * 1000 then redis.call('EXPIRE', key, ttl) end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
)

# KEYS: res, leases. ARGV: rid. Returns 1 if a live reservation was dropped.
RELEASE = (
    _PRELUDE
    + r"""
if drop(KEYS[1], KEYS[2], ARGV[1]) then return 1 end
return 0
"""
)

# KEYS: counter hash, leases. ARGV: now, kind, lo, cur, res_prefix. Returns {u, t, c, live reservations}.
USAGE = (
    _PRELUDE
    + r"""
local now = tonumber(ARGV[1])
reclaim(KEYS[2], ARGV[5], now)
local kind, lo, cur = ARGV[2], ARGV[3], ARGV[4]
local fu, ft, fc, mark = fields(kind, lo)
local v = redis.call('HMGET', KEYS[1], fu, ft, fc, mark, 'iu', 'it', 'ic', 'in')
local w = {}
local su, st, sc = settled(KEYS[1], kind, lo, cur, v, w)
if #w > 0 and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], unpack(w)) end
return {(su + num(v[5])), (st + num(v[6])), (sc + num(v[7])), (num(v[8]))}
"""
)
