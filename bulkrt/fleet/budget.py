"""The rate-limit budget that every process of the multi-machine mode shares: per account (its
platform user id) and endpoint, a sliding-window log of the requests admitted, and a "blocked
until" deadline learned from the API's answers; a log per cap no header shows, an account's own
or one for the whole app.

Why no window is ever overspent, whoever sends: a request goes out only after `SharedBudget.admit`
admitted it, and admission is one Lua script, so Redis runs it alone: for each log the request
counts against (`BudgetLog`: the endpoint's window, then the tier's caps) it drops the entries
older than the window and counts the rest, and it adds the request to every log only when each
has fewer than its ``limit`` (all or none: a full cap spends nothing of the window). Its
one clock is Redis's ``TIME``, read inside the script, so the processes' own clocks (on several
machines, possibly skewed) never enter the count. Two jobs, two drivers, or a worker taking over
an account another one held all draw from the same log.

What the log cannot know, the answers tell (`SharedBudget.learn`): a 429 blocks the endpoint
until the window's reset (a later deadline is never shortened); ``x-rate-limit-remaining: 0``
holds back every holder of the account but the one that learnt it (whose scheduler paces on that
reset) until the reset, so a next holder does not send into the platform's spent window; a
remaining count lower than the log allows (requests sent by something else,
a limit lower than the caller's model) adds placeholder entries, timed to leave the log when the
server's window resets, so the log is never looser than the server; a 429 the headers do not
explain (a cap no header shows) blocks for the ``park`` the caller chose. A reset further ahead
than the window can reset (`bulkrt.core.ratelimits.reset_horizon`: two windows, at least 30
minutes) is another clock's (the API's ahead of Redis's, a wrong header), as the embedded mode
judges it: never waited for, the answer counts for one window from its arrival (a spent window
holds the others back one window; a 429 naming such a reset blocks for the ``park``, as a 429 no
header explains). Learning only ever tightens the budget, so it is accepted from any process,
even one whose lease has lapsed.

An admission may be tied to a lease (``lease=(worker, fence)``): the script refuses it unless
``u:{uid}:lease`` still holds ``worker|fence``, so a worker that lost its account (stalled,
partitioned) cannot spend the next holder's budget. A full log still admits the holder when every
admission in it is the holder's own under that same lease: one lease is one session of one
scheduler, which already paces those requests with the embedded mode's limiter (which frees a
window's slots together when the platform's window resets, where a log frees them one by one, a
round trip per request per window later). Anything else in the log (an earlier holder's
admissions, another job's, placeholders learnt from headers, admissions without a lease) keeps
the log strict, so a next holder, or a second sender, never overspends what the holder spent.
An app-wide log (an app's cap) counts every account's requests, from every process: it is strict
for everyone, holders included, and no process's own pacing of the cap can overspend it.

A retweet's sent mark (`SentMark`, `bulkrt.fleet.shared_journal`) is written by the admission
that lets its request go, in the same script: the mark is in Redis (and on disk, with
``appendfsync always``, before Redis answers) before the request leaves, one round trip for
both, and a request the budget refuses leaves no mark behind. The script then touches an
account's keys, the app's logs and a job's journal together: like `bulkrt.fleet.store`'s
scripts, it needs one Redis server (or one shard), not a cluster spread over slots.

Stored in Redis (prefix first, the user id as a hash tag so one account's keys share a slot):
``u:{uid}:sw:<endpoint>`` a sorted set of admissions scored by Redis time in milliseconds, each
member ending ``@worker|fence`` when made under a lease (the set expires one window after its
last admission), and ``u:{uid}:sw:<cap>`` likewise per cap of the account; ``app:sw:<cap>``
the log of an app-wide cap; ``u:{uid}:blk:<endpoint>`` the blocked-until deadline in
milliseconds, expiring at it. None holds a secret.

>>> budget = SharedBudget(redis, "bulkrt:")  # doctest: +SKIP
>>> await budget.acquire("2244994945", Action.RETWEET, limit=50, window=900, lease=None)
... # doctest: +SKIP
BudgetAdmission(ok=True, retry_after=0.0, reason=None, at=1764777600.123)
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import anyio
import anyio.lowlevel
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from bulkrt.core.items import Action
from bulkrt.core.limiter import Margins
from bulkrt.core.ratelimits import reset_horizon
from bulkrt.fleet.keyspace import KeySpace
from bulkrt.fleet.script_calls import run_scripts

__all__ = ["BudgetAdmission", "BudgetLog", "Refusal", "SentMark", "SentMarks", "SharedBudget"]


class Refusal(StrEnum):
    """Why a request was not admitted."""

    #: the window already holds ``limit`` admissions
    BUDGET = "budget"
    #: the endpoint is blocked (a 429, no requests remaining, a cap no header shows)
    BLOCKED = "blocked"
    #: the caller's lease on the account is gone (expired, or another worker holds it)
    LEASE = "lease"


@dataclass(frozen=True, slots=True)
class BudgetAdmission:
    """What `SharedBudget.acquire` answered."""

    #: the request may be sent now
    ok: bool
    #: when refused for the budget or a block: seconds until asking again can succeed (0 when
    #: admitted, or refused for the lease)
    retry_after: float
    #: why it was refused; None when admitted
    reason: Refusal | None
    #: Redis's clock when it decided (epoch seconds, millisecond resolution)
    at: float
    #: refused for the budget: the name of the log that refused it (the one freeing last)
    log: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetLog:
    """One sliding-window log a request takes a place in: the endpoint's (named after it), or a
    cap's (named after the cap). An ``app_wide`` log counts every account's requests together
    (an app's cap): it is strict for every sender, the holder of an account included."""

    name: str
    limit: int
    window: float
    app_wide: bool = False


@dataclass(frozen=True, slots=True)
class SentMark:
    """A request's sent mark, written in its admission's own step (`SharedBudget.admit`): a
    line appended to the journal's ``stream`` (field ``line``), and ``code`` appended to
    ``field`` of the journal's ``state`` hash (`bulkrt.fleet.shared_journal` names them)."""

    stream: str
    line: str
    state: str
    field: str
    code: str


class SentMarks(Protocol):
    """Where an account's sender takes the sent mark of a request about to leave (the journal
    handed it over), and says once its admission wrote it (`bulkrt.fleet.shared_journal`)."""

    def __call__(self, action: Action, tweet_id: str) -> SentMark | None: ...

    def written(self, mark: SentMark) -> None: ...


# KEYS: 1 the lease, 2 the endpoint's block, 3 its spent window, then the n logs, then (with a
# mark) the journal's stream and its state hash.  ARGV: 1 the lease as "worker|fence" ("" for
# none), 2 a unique member, 3 n, 4 the mark's line ("" for none), 5 its state field, 6 its
# letter, then per log: limit, window (ms), "1" when app-wide (no holder's exemption).
# Returns {admitted, wait ms, reason, now ms, the refusing log's number (1-based; 0 for none)}.
#: how long a 429 whose headers explain it (nothing remaining) but whose reset has already passed
#: on Redis's clock blocks the endpoint: the embedded mode's wait after such a 429
#: (`bulkrt.core.limiter.BudgetWindow.padded_reset`), not the park period
_PAST_RESET_WAIT = Margins().reset

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = ARGV[1]
if held ~= '' and redis.call('GET', KEYS[1]) ~= held then
  return {0, 0, 'lease', now, 0}
end
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then
  return {0, blocked, 'blocked', now, 0}
end
local spent = redis.call('GET', KEYS[3])
if spent and (spent == '' or spent ~= held) then
  return {0, math.max(1, redis.call('PTTL', KEYS[3])), 'blocked', now, 0}
end
local n = tonumber(ARGV[3])
local own = ''
if held ~= '' then own = '@' .. held end
local wait, refusing = 0, 0
for i = 1, n do
  local log = KEYS[3 + i]
  local limit = tonumber(ARGV[4 + 3 * i])
  local window = tonumber(ARGV[5 + 3 * i])
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  local count = redis.call('ZCARD', log)
  if count >= limit then
    -- full, unless every admission in it is the caller's own under this very lease: its
    -- scheduler paces those itself (see the module docstring); an app-wide log has many
    -- senders, so it is full for everyone
    local foreign = own == '' or ARGV[6 + 3 * i] == '1'
    if not foreign then
      for _, member in ipairs(redis.call('ZRANGE', log, 0, -1)) do
        if string.sub(member, -#own) ~= own then
          foreign = true
          break
        end
      end
    end
    if foreign then
      local freeing = redis.call('ZRANGE', log, count - limit, count - limit, 'WITHSCORES')
      local frees = tonumber(freeing[2]) + window - now
      if frees > wait or refusing == 0 then
        wait, refusing = frees, i
      end
    end
  end
end
if refusing > 0 then
  return {0, wait, 'budget', now, refusing}
end
local member = now .. ':' .. ARGV[2] .. own
for i = 1, n do
  local log = KEYS[3 + i]
  local window = tonumber(ARGV[5 + 3 * i])
  redis.call('ZADD', log, now, member)
  if redis.call('PTTL', log) < window then
    redis.call('PEXPIRE', log, window)
  end
end
if ARGV[4] ~= '' then
  -- the request's sent mark, in the step that admits it: there iff the request may leave
  redis.call('XADD', KEYS[4 + n], '*', 'line', ARGV[4])
  local was = redis.call('HGET', KEYS[5 + n], ARGV[5]) or ''
  redis.call('HSET', KEYS[5 + n], ARGV[5], was .. ARGV[6])
end
return {1, 0, '', now, 0}
"""

# KEYS: 1 the log, 2 the block, 3 the spent window.  ARGV: 1 status (0 for none), 2 limit,
# 3 remaining (-1 for unknown), 4 reset (epoch ms, 0 for none), 5 window (ms), 6 park (ms), 7 a
# unique member, 8 the learner's lease as "worker|fence" ("" for none), 9 how far ahead (ms) the
# window can plausibly reset (`reset_horizon`).
# Returns the block's deadline in ms (0 when not blocked).
_LEARN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local status = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local remaining = tonumber(ARGV[3])
local reset = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
-- a reset further ahead than the window can reset is another clock's (the API's ahead of
-- Redis's, a wrong header): not waited for; the answer counts for one window from now instead
local far = reset > now + tonumber(ARGV[9])
local until_ms = 0
if status == 429 then
  if reset > now and not far and remaining <= 0 then
    until_ms = reset
  elseif reset > 0 and not far and remaining <= 0 then
    -- explained, but its reset has passed on Redis's clock (whole seconds, another clock a
    -- little behind): a short wait, as the embedded mode's, not a park
    until_ms = now + tonumber(ARGV[10])
  else
    -- a 429 its headers do not explain (or with a reset not worth waiting for): parked
    until_ms = now + tonumber(ARGV[6])
  end
end
if status ~= 429 and remaining == 0 and reset > now then
  -- the window is spent until the reset: the learner's own scheduler knows that reset and paces
  -- on it; anyone else (a next holder) waits for it
  local spent = reset - now
  if far then
    spent = window
  end
  if redis.call('PTTL', KEYS[3]) < spent then
    redis.call('SET', KEYS[3], ARGV[8], 'PX', spent)
  end
end
if until_ms > now then
  local held = tonumber(redis.call('GET', KEYS[2]) or '0')
  if until_ms > held then
    redis.call('SET', KEYS[2], until_ms, 'PX', until_ms - now)
  end
end
if remaining >= 0 and limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  local missing = limit - remaining - redis.call('ZCARD', KEYS[1])
  if missing > 0 then
    local at = now
    if reset > now and reset - window < now then
      at = math.max(reset - window, now - window + 1)
    end
    for n = 1, missing do
      redis.call('ZADD', KEYS[1], at, at .. ':' .. ARGV[7] .. ':' .. n)
    end
    if redis.call('PTTL', KEYS[1]) < window then
      redis.call('PEXPIRE', KEYS[1], window)
    end
  end
end
local left = redis.call('PTTL', KEYS[2])
if left > 0 then
  return now + left
end
return 0
"""


class SharedBudget:
    """The shared sliding-window budget of every account and endpoint, in one Redis.

    ``limit`` and ``window`` are the caller's model of the endpoint's limit (the tier, corrected
    by headers); every caller must give one endpoint the same ``window``, since each call drops
    the entries older than its own. The log lives ``window`` seconds after its last entry.
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._keys = KeySpace(prefix)
        self._acquire = redis.register_script(_ACQUIRE)
        self._learn = redis.register_script(_LEARN)
        #: script calls asked for and not yet on their way (`_batched`)
        self._asks: list[_Ask] = []
        self._leading = False

    async def acquire(
        self,
        uid: str,
        endpoint: str,
        *,
        limit: int,
        window: float,
        lease: tuple[str, int] | None,
    ) -> BudgetAdmission:
        """Admit one request for ``uid`` on ``endpoint`` now, or say why not and for how long."""
        return await self.admit(uid, [BudgetLog(endpoint, limit, window)], lease=lease)

    async def admit(
        self,
        uid: str,
        logs: Sequence[BudgetLog],
        *,
        lease: tuple[str, int] | None,
        mark: SentMark | None = None,
    ) -> BudgetAdmission:
        """Admit one request for ``uid`` into every one of ``logs`` at once (the endpoint's
        first: its blocks apply), or into none of them, saying why and for how long; with
        ``mark``, write the request's sent mark in the same step, only when admitted."""
        if not logs:
            raise ValueError("an admission needs at least one log")
        keys = [
            self._keys.lease(uid),
            self._keys.blocked(uid, logs[0].name),
            self._keys.spent(uid, logs[0].name),
        ]
        held = "" if lease is None else f"{lease[0]}|{lease[1]}"
        args: list[str | int] = [held, secrets.token_hex(8), len(logs)]
        args += ["", "", ""] if mark is None else [mark.line, mark.field, mark.code]
        for log in logs:
            if log.limit < 1 or not log.window > 0:
                raise ValueError(f"a log needs a limit of 1 or more and a positive window: {log}")
            keys.append(
                self._keys.app_window_log(log.name)
                if log.app_wide
                else self._keys.window_log(uid, log.name)
            )
            args += [log.limit, _ms(log.window), "1" if log.app_wide else "0"]
        if mark is not None:
            keys += [mark.stream, mark.state]
        admitted, wait_ms, reason, now_ms, refusing = _five(
            await self._batched(self._acquire, keys, args)
        )
        return BudgetAdmission(
            ok=admitted == 1,
            retry_after=max(0, wait_ms) / 1000,
            reason=Refusal(reason) if reason else None,
            at=now_ms / 1000,
            log=logs[refusing - 1].name if refusing else None,
        )

    async def _batched(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        """Run ``script`` (an admission, or a lesson from an answer) together with every other
        one asked for in the same pass of the event loop: one pipeline, one round trip, each
        script call still atomic on its own (a session dispatching a window's worth of requests
        at once asks for them all together, and learns what their answers said together). The
        first asker sends the batch; whoever asked while it was on its way, or whose batch was
        cancelled with the task that sent it, asks again."""
        while True:
            ask = _Ask(script, keys, args)
            self._asks.append(ask)
            if not self._leading:
                self._leading = True
                try:
                    await anyio.lowlevel.checkpoint()  # let the admissions of this pass join
                    batch, self._asks = self._asks, []
                    await self._send(batch)
                finally:
                    self._leading = False
                    # asked while this batch was on its way (or it was cancelled): they ask
                    # again, the first of them sending the next batch
                    for left in self._asks:
                        left.done.set()
                    self._asks = []
            await ask.done.wait()
            if ask.error is not None:
                raise ask.error
            if ask.answered:
                return ask.answer

    async def _send(self, batch: list[_Ask]) -> None:
        """One pipeline of script calls; every ask of ``batch`` ends answered, failed, or
        (when this task is cancelled meanwhile) neither, to be asked again."""
        try:
            answers = await run_scripts(
                self._redis, [(ask.script, ask.keys, ask.args) for ask in batch]
            )
            for ask, answer in zip(batch, answers, strict=True):
                if isinstance(answer, Exception):
                    ask.error = answer
                else:
                    ask.answer, ask.answered = answer, True
                ask.done.set()
        except Exception as exc:
            for ask in batch:
                if not ask.done.is_set():
                    ask.error = exc
        finally:
            for ask in batch:
                ask.done.set()

    async def learn(
        self,
        uid: str,
        endpoint: str,
        *,
        status: int | None,
        limit: int | None,
        remaining: int | None,
        reset: float | None,
        window: float,
        park: float,
        lease: tuple[str, int] | None = None,
    ) -> float | None:
        """Take in what an answer said: its HTTP ``status`` (None when there was no answer) and
        its ``x-rate-limit-limit``/``-remaining``/``-reset`` headers (``reset`` in epoch
        seconds; None when absent). ``window`` is the endpoint's window (the log's length);
        ``park`` is how long a 429 the headers do not explain blocks the endpoint (seconds).
        A window an answer says is spent holds back every holder but ``lease`` (the learner's,
        whose scheduler paces on the reset itself) until the reset. A reset further ahead than
        `reset_horizon` of ``window`` (on Redis's clock) is not waited for: the answer holds the
        others back one window from its arrival, and a 429 naming it blocks for ``park``. A 429
        saying nothing remains whose reset has already passed blocks for `_PAST_RESET_WAIT`.

        Returns when the endpoint is blocked until (epoch seconds, Redis's clock), or None."""
        keys = [
            self._keys.window_log(uid, endpoint),
            self._keys.blocked(uid, endpoint),
            self._keys.spent(uid, endpoint),
        ]
        args: list[str | int] = [
            status or 0,
            limit if limit is not None and limit > 0 else 0,
            remaining if remaining is not None and remaining >= 0 else -1,
            _ms(reset) if reset is not None and math.isfinite(reset) and reset > 0 else 0,
            _ms(window),
            _ms(park),
            secrets.token_hex(8),
            "" if lease is None else f"{lease[0]}|{lease[1]}",
            _ms(reset_horizon(window)),
            _ms(_PAST_RESET_WAIT),
        ]
        until_ms = int(await self._batched(self._learn, keys, args))
        return until_ms / 1000 if until_ms > 0 else None


@dataclass(slots=True, eq=False)
class _Ask:
    """One script call asked for: the script, its keys and arguments, and what came of it."""

    script: AsyncScript
    keys: list[str]
    args: list[str | int]
    done: anyio.Event = field(default_factory=anyio.Event)
    answered: bool = False
    answer: Any = None
    error: Exception | None = None


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _five(answer: Any) -> tuple[int, int, str, int, int]:
    admitted, wait_ms, reason, now_ms, refusing = answer
    text = reason.decode() if isinstance(reason, bytes) else str(reason)
    return int(admitted), int(wait_ms), text, int(now_ms), int(refusing)
