"""The Lua scripts of `bulkrt.fleet.store`: every step that reads and writes several keys runs as
one script, so Redis applies it whole, between any two other clients' steps.

Why this is safe:

- **One clock.** Every time (a lease's expiry, when an account began to wait, a quiet period) is
  Redis ``TIME`` read inside the script that uses it, in milliseconds; no worker's clock is
  compared with another's. Redis 7 replicates a script's effects, not the script, so reading
  ``TIME`` before writing is allowed and replicas see the same values.
- **Fencing.** A lease is the key ``u:{uid}:lease`` holding ``"<worker>|<fence>"``; the fence is
  incremented on every claim and never reused. `COMPLETE` and `RELEASE` compare the whole value
  before writing anything, in the same script as the write, so a worker whose lease expired (it
  stalled past the TTL, or was cut off) changes nothing, even if it comes back after another
  worker claimed the account: the new holder's value has a higher fence.
- **Every queued account is somewhere.** An account with queued items is in ``avail`` (waiting)
  or in ``leased`` (held, or expired and not yet reaped), never both: `CLAIM` moves it from the
  first to the second, `RELEASE` and `REAP` move it back if it still has items, and `PUBLISH`
  adds it to ``avail`` only when it is not in ``leased``. So no item is stranded and no two
  leases are live on one account.
- **Quiet after an expiry.** A lease that expired instead of being released may have had a
  request in flight; `REAP` records ``now + quiet`` for the account and `CLAIM` hands it to the
  next holder, who sends nothing before it.
- **Publishing once.** Items are published in serial (file) order, one script per batch, and the
  job records the highest serial published (``published_through``). A driver that restarts
  after a partial publish sends the job again: items at or below the mark were published (some
  may be finished and gone from the queue) and are skipped, so none is queued twice.

Every script takes the key prefix as ``ARGV[1]`` and names keys with `LUA_KEYS`.
"""

from __future__ import annotations

from bulkrt.fleet.keyspace import LUA_KEYS

__all__ = [
    "CLAIM",
    "COMPLETE",
    "DRIVER_BEAT",
    "FINISH_JOB",
    "FINISH_PUBLISHING",
    "JOB_STATUS",
    "PUBLISH",
    "QUEUED",
    "REAP",
    "REGISTER_JOB",
    "RELEASE",
    "RENEW",
    "WAITING",
    "WORKER_BEAT",
    "WORKERS",
]

#: ARGV: prefix, job, ledger, host, pid, total, created, limits -> 1 registered, 0 already there
REGISTER_JOB = (
    LUA_KEYS
    + """
local job = ARGV[2]
if redis.call('EXISTS', k_job(job)) == 1 then return 0 end
local seq = redis.call('INCR', K_JOB_SEQ)
redis.call('HSET', k_job(job), 'ledger', ARGV[3], 'host', ARGV[4], 'pid', ARGV[5],
  'total', ARGV[6], 'created', ARGV[7], 'published', 0, 'done', 0, 'seq', seq,
  'driver_beat', now_ms(), 'limits', ARGV[8] or '')
redis.call('ZADD', K_JOBS, seq, job)
return 1
"""
)

#: ARGV: prefix, job, then (serial, user id, item key, item JSON) per item -> items newly queued
#: ARGV[3]: '1' to make the accounts available to claim at once, '0' to leave that to
#: MAKE_AVAILABLE (a driver publishing a large job, so no account is claimed half-published)
PUBLISH = (
    LUA_KEYS
    + """
local job = ARGV[2]
local seq = redis.call('HGET', k_job(job), 'seq')
if not seq then return redis.error_reply('ERR bulkrt: job ' .. job .. ' is not registered') end
local through = tonumber(redis.call('HGET', k_job(job), 'published_through') or '-1')
local last = through
for i = 4, #ARGV, 4 do
  local serial = tonumber(ARGV[i])
  if serial > through then
    if serial <= last then
      return redis.error_reply('ERR bulkrt: items out of serial order at serial ' .. ARGV[i])
    end
    last = serial
  end
end
local now = now_ms()
local added = 0
for i = 4, #ARGV, 4 do
  local uid, key = ARGV[i + 1], ARGV[i + 2]
  if tonumber(ARGV[i]) > through and redis.call('HSETNX', k_items(job), key, ARGV[i + 3]) == 1 then
    redis.call('ZADD', k_queue(job, uid), 'NX', ARGV[i], key)
    redis.call('ZADD', k_user_jobs(uid), 'NX', seq, job)
    redis.call('SADD', k_job_users(job), uid)
    if ARGV[3] == '1' and not redis.call('ZSCORE', K_LEASED, uid) then
      redis.call('ZADD', K_AVAIL, 'NX', now, uid)
    end
    added = added + 1
  end
end
redis.call('HSET', k_job(job), 'published_through', last)
return added
"""
)

#: ARGV: prefix, job -> 1 when the job exists
#: ARGV: prefix, job -> how many accounts became available: every account the job published
#: items for that has items queued and no lease (published on the wake channel, when any)
MAKE_AVAILABLE = (
    LUA_KEYS
    + """
local now = now_ms()
local made = 0
for _, uid in ipairs(redis.call('SMEMBERS', k_job_users(ARGV[2]))) do
  if redis.call('ZCARD', k_user_jobs(uid)) > 0 and not redis.call('ZSCORE', K_LEASED, uid) then
    made = made + redis.call('ZADD', K_AVAIL, 'NX', now, uid)
  end
end
if made > 0 then redis.call('PUBLISH', K_WAKE, made) end
return made
"""
)

FINISH_PUBLISHING = (
    LUA_KEYS
    + """
if redis.call('EXISTS', k_job(ARGV[2])) == 0 then return 0 end
redis.call('HSET', k_job(ARGV[2]), 'published', 1)
return 1
"""
)

#: ARGV: prefix, job -> 1 when the job exists
DRIVER_BEAT = (
    LUA_KEYS
    + """
if redis.call('EXISTS', k_job(ARGV[2])) == 0 then return 0 end
redis.call('HSET', k_job(ARGV[2]), 'driver_beat', now_ms())
return 1
"""
)

#: ARGV: prefix, worker, n, ttl ms -> (user id, fence, quiet until ms or 0) per account claimed,
#: oldest waiting first
CLAIM = (
    LUA_KEYS
    + """
local worker, ttl = ARGV[2], tonumber(ARGV[4])
local now = now_ms()
local out = {}
local popped = redis.call('ZPOPMIN', K_AVAIL, ARGV[3])
for i = 1, #popped, 2 do
  local uid = popped[i]
  local fence = redis.call('INCR', k_fence(uid))
  redis.call('SET', k_lease(uid), worker .. '|' .. fence, 'PX', ttl)
  redis.call('ZADD', K_LEASED, now + ttl, uid)
  local quiet = tonumber(redis.call('HGET', K_QUIET, uid) or '0')
  if quiet <= now then
    redis.call('HDEL', K_QUIET, uid)
    quiet = 0
  end
  table.insert(out, uid)
  table.insert(out, fence)
  table.insert(out, quiet)
end
return out
"""
)

#: ARGV: prefix, ttl ms, then (user id, lease value) per lease -> the user ids whose lease is lost
RENEW = (
    LUA_KEYS
    + """
local ttl = tonumber(ARGV[2])
local now = now_ms()
local lost = {}
for i = 3, #ARGV, 2 do
  local uid = ARGV[i]
  if redis.call('GET', k_lease(uid)) == ARGV[i + 1] then
    redis.call('PEXPIRE', k_lease(uid), ttl)
    redis.call('ZADD', K_LEASED, now + ttl, uid)
  else
    table.insert(lost, uid)
  end
end
return lost
"""
)

#: ARGV: prefix, user id, lease value -> 1 released, 0 not held
RELEASE = (
    LUA_KEYS
    + """
local uid = ARGV[2]
if redis.call('GET', k_lease(uid)) ~= ARGV[3] then return 0 end
redis.call('DEL', k_lease(uid))
redis.call('ZREM', K_LEASED, uid)
if redis.call('ZCARD', k_user_jobs(uid)) > 0 then
  redis.call('ZADD', K_AVAIL, 'NX', now_ms(), uid)
end
return 1
"""
)

#: ARGV: prefix, quiet ms, most accounts to reap -> the user ids whose expired lease was reaped
REAP = (
    LUA_KEYS
    + """
local quiet, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local out = {}
for _, uid in ipairs(redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'LIMIT', 0, limit)) do
  if redis.call('EXISTS', k_lease(uid)) == 0 then
    redis.call('ZREM', K_LEASED, uid)
    local until_ms = math.max(now + quiet, tonumber(redis.call('HGET', K_QUIET, uid) or '0'))
    redis.call('HSET', K_QUIET, uid, until_ms)
    if redis.call('ZCARD', k_user_jobs(uid)) > 0 then
      redis.call('ZADD', K_AVAIL, 'NX', now, uid)
    end
    table.insert(out, uid)
  end
end
return out
"""
)

#: ARGV: prefix, user id -> (job, item key, item JSON) per queued item, by job sequence then serial
QUEUED = (
    LUA_KEYS
    + """
local uid = ARGV[2]
local out = {}
for _, job in ipairs(redis.call('ZRANGE', k_user_jobs(uid), 0, -1)) do
  for _, key in ipairs(redis.call('ZRANGE', k_queue(job, uid), 0, -1)) do
    local payload = redis.call('HGET', k_items(job), key)
    if payload then
      table.insert(out, job)
      table.insert(out, key)
      table.insert(out, payload)
    end
  end
end
return out
"""
)

#: ARGV: prefix, user id, lease value, then (job, item key, ledger line) per item -> -1 when the
#: lease is not held (nothing changed), else how many lines were appended (an item no longer
#: queued, already completed, is not appended again)
COMPLETE = (
    LUA_KEYS
    + """
local uid = ARGV[2]
if redis.call('GET', k_lease(uid)) ~= ARGV[3] then return -1 end
local appended = 0
for i = 4, #ARGV, 3 do
  local job, key = ARGV[i], ARGV[i + 1]
  if redis.call('ZREM', k_queue(job, uid), key) == 1 then
    redis.call('XADD', k_results(job), '*', 'line', ARGV[i + 2])
    redis.call('HDEL', k_items(job), key)
    redis.call('HINCRBY', k_job(job), 'done', 1)
    if redis.call('ZCARD', k_queue(job, uid)) == 0 then
      redis.call('ZREM', k_user_jobs(uid), job)
    end
    appended = appended + 1
  end
end
return appended
"""
)

#: ARGV: prefix, job ids (none: every registered job) -> per job found: (job, ledger, host, pid,
#: total, published, done, driver beat ms, items queued, results waiting)
JOB_STATUS = (
    LUA_KEYS
    + """
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do table.insert(ids, ARGV[i]) end
else
  ids = redis.call('ZRANGE', K_JOBS, 0, -1)
end
local out = {}
for _, job in ipairs(ids) do
  local h = redis.call('HMGET', k_job(job), 'ledger', 'host', 'pid', 'total', 'published', 'done',
    'driver_beat')
  if h[1] then
    table.insert(out, {job, h[1], h[2], h[3], h[4], h[5], h[6], h[7] or '0',
      redis.call('HLEN', k_items(job)), redis.call('XLEN', k_results(job))})
  end
end
return out
"""
)

#: ARGV: prefix, job -> 1 when the job existed
FINISH_JOB = (
    LUA_KEYS
    + """
local job = ARGV[2]
local existed = redis.call('EXISTS', k_job(job))
for _, uid in ipairs(redis.call('SMEMBERS', k_job_users(job))) do
  redis.call('DEL', k_queue(job, uid))
  redis.call('ZREM', k_user_jobs(uid), job)
  if redis.call('ZCARD', k_user_jobs(uid)) == 0 then redis.call('ZREM', K_AVAIL, uid) end
end
redis.call('DEL', k_items(job), k_job_users(job), k_job(job), k_results(job), k_journal(job))
redis.call('ZREM', K_JOBS, job)
return existed
"""
)

#: ARGV: prefix, worker, ttl ms, then field, value pairs
WORKER_BEAT = (
    LUA_KEYS
    + """
local worker = ARGV[2]
redis.call('ZADD', K_WORKERS, now_ms(), worker)
if #ARGV > 3 then redis.call('HSET', k_worker(worker), unpack(ARGV, 4)) end
redis.call('PEXPIRE', k_worker(worker), tonumber(ARGV[3]))
return 1
"""
)

#: ARGV: prefix, live within ms -> per worker beating since: (worker, last beat ms, live leases
#: held, its hash as field, value pairs)
WORKERS = (
    LUA_KEYS
    + """
local since = now_ms() - tonumber(ARGV[2])
local held = {}
for _, uid in ipairs(redis.call('ZRANGE', K_LEASED, 0, -1)) do
  local value = redis.call('GET', k_lease(uid))
  if value then
    local worker = string.match(value, '^(.*)|%d+$')
    held[worker] = (held[worker] or 0) + 1
  end
end
local beats = redis.call('ZRANGEBYSCORE', K_WORKERS, since, '+inf', 'WITHSCORES')
local out = {}
for i = 1, #beats, 2 do
  local worker = beats[i]
  table.insert(out, {worker, beats[i + 1], held[worker] or 0,
    redis.call('HGETALL', k_worker(worker))})
end
return out
"""
)

#: ARGV: prefix, how many of each kind to name, live within ms (0: do not look for leases of
#: dead workers, a walk over every lease) -> (available, leased, in quiet and not leased, now
#: ms, (user id, waiting since ms) pairs of the longest waiting, longest first, leases held by
#: a worker that did not beat within the live period (or expired, not yet reaped), (user id,
#: worker, expiry ms) triples of some of those, (user id, quiet until ms) pairs)
WAITING = (
    LUA_KEYS
    + """
local now = now_ms()
local named = tonumber(ARGV[2])
local since = now - tonumber(ARGV[3])
local quiet = 0
local quiet_named = {}
local flat = redis.call('HGETALL', K_QUIET)
for i = 1, #flat, 2 do
  -- an account claimed during its quiet period waits in its new holder (who says so)
  if tonumber(flat[i + 1]) > now and not redis.call('ZSCORE', K_LEASED, flat[i]) then
    quiet = quiet + 1
    if quiet <= named then
      table.insert(quiet_named, flat[i])
      table.insert(quiet_named, flat[i + 1])
    end
  end
end
local dead = 0
local dead_named = {}
local leased = {}
if tonumber(ARGV[3]) > 0 then leased = redis.call('ZRANGE', K_LEASED, 0, -1, 'WITHSCORES') end
for i = 1, #leased, 2 do
  local value = redis.call('GET', k_lease(leased[i]))
  local worker = ''
  local gone = true
  if value then
    worker = string.match(value, '^(.*)|%d+$') or ''
    local beat = redis.call('ZSCORE', K_WORKERS, worker)
    gone = not beat or tonumber(beat) < since
  end
  if gone then
    dead = dead + 1
    if dead <= named then
      table.insert(dead_named, leased[i])
      table.insert(dead_named, worker)
      table.insert(dead_named, leased[i + 1])
    end
  end
end
return {redis.call('ZCARD', K_AVAIL), redis.call('ZCARD', K_LEASED), quiet, now,
  redis.call('ZRANGE', K_AVAIL, 0, named - 1, 'WITHSCORES'), dead, dead_named, quiet_named}
"""
)
