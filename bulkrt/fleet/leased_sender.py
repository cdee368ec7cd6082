"""A `bulkrt.shell.sender.Sender` for an account whose lease this worker holds: before each
request leaves, it takes a place in the account's shared budget (`bulkrt.fleet.budget`: the
endpoint's window and every cap the tier is known to have, the app's included), checked against
the lease's fence, and writes the retweet's sent mark the journal handed over, all in the same
atomic step; after a 429, or an answer saying the window
is spent, it teaches the budget what the rate-limit headers said, so every worker and every job
on the same Redis learns it at once (the other answers tell the log nothing it does not hold: the
holder is the account's only sender).

A 429 its headers explain (nothing remaining, a reset a window away at most) means the account's
window was spent by requests this Redis never admitted: another process outside this Redis (a run
without ``--redis``, or one on another Redis) may be using the account. The budget holds it until
that reset for every worker (not a park), and the sender says so once per session
(``account_used_outside_redis``). A reset further ahead than a window can reset
(`bulkrt.core.ratelimits.reset_horizon`: another clock's) is not waited for by the budget either
(`SharedBudget.learn`).

A request the budget refuses never leaves: the dispatcher gets `Exchange.held_until` (the core's
``HELD``: wait, no attempt spent). So does every request before the lease's quiet period ends (the
previous holder died; what it had in flight must land first). A fence that no longer matches
means the lease was lost: `on_lost` is told and the request is held (the session is abandoned);
so does a lease this process has not renewed in time by its own clock (it stalled, or Redis did
not answer), checked after admission, just before the request leaves.

With ``--max-rps``, the request first waits for its turn (`bulkrt.shell.pace.Pace`, one for
the whole worker) and only then takes its place in the budget, and leaves 1/R after the
previous request at the earliest (`Pace.departure`); a request whose turn is refused
(the worker or its session stopped meanwhile) never leaves and is held like one refused by the
budget.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial

import structlog

from bulkrt.core.credential_refresh import RefreshReport
from bulkrt.core.items import Action
from bulkrt.core.ratelimits import CLOCK_TOLERANCE, LimitReading, parse_rate_limits, reset_horizon
from bulkrt.core.tiers import CapScope, LimitModel
from bulkrt.fleet.account_wait import Hold, WaitReason
from bulkrt.fleet.budget import BudgetAdmission, BudgetLog, Refusal, SentMarks, SharedBudget
from bulkrt.fleet.connection import patiently
from bulkrt.fleet.store import Lease
from bulkrt.shell.client import Exchange
from bulkrt.shell.sender import Sender

__all__ = ["LeasedSender"]

_log = structlog.get_logger()

#: how long a request refused for a lost lease, or a stop, is held (its session ends meanwhile)
_LOST_HOLD = 3600.0


class LeasedSender:
    """Wraps the account's real sender with the shared budget and the lease's fence."""

    def __init__(
        self,
        inner: Sender,
        budget: SharedBudget,
        lease: Lease,
        model: LimitModel,
        *,
        park: float,
        on_lost: Callable[[Lease], None],
        valid: Callable[[], bool] = lambda: True,
        turn: Callable[[], Awaitable[bool]] | None = None,
        departure: Callable[[], Awaitable[None]] | None = None,
        marks: SentMarks | None = None,
        clock: Callable[[], float] = time.time,
        account: str | None = None,
    ) -> None:
        self._inner = inner
        self._budget = budget
        self._lease = lease
        self._model = model
        #: how long a 429 that no header explains blocks the account for every worker
        self._park = park
        self._on_lost = on_lost
        #: whether the lease surely still lives by this process's own clock (renewed in time)
        self._valid = valid
        #: waits for the request's ``--max-rps`` turn (shared by the worker's sessions); False
        #: when the request must not go (a stop came first)
        self._turn = turn
        #: waits, just before the request leaves, until its ``--max-rps`` spacing allows it
        self._departure = departure
        #: the sent mark the journal handed over for a request (action, Tweet), if any: written
        #: in the admission's own step (`SharedJournal.marks`)
        self._marks = marks
        self._clock = clock
        #: the account's name in the accounts file, for the log (its user id when not given)
        self._account = account or lease.user_id
        #: whether a 429 from outside this Redis was logged (`_outside`): once per account
        self._told_outside = False
        #: per action, the logs a request takes a place in: its endpoint's window, then each cap
        #: the tier is known to have (a user's, or the app's), all admitted together or none
        self._logs = {action: _logs(model, action) for action in Action}
        #: what the budget (or the quiet period) last refused, until a request is admitted:
        #: why the account waits, for ``bulkrt status --redis``
        self.hold: Hold | None = None

    @property
    def user_id(self) -> str:
        return self._inner.user_id

    @property
    def refreshable(self) -> bool:
        return self._inner.refreshable

    async def refresh(self) -> RefreshReport:
        return await self._inner.refresh()

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        # taken at once: the dispatcher calls this right after the journal handed the mark over
        mark = None if self._marks is None else self._marks(action, tweet_id)
        now = self._clock()
        lease = self._lease
        if lease.quiet_until > now:
            self.hold = Hold(WaitReason.QUIET, lease.quiet_until)
            return Exchange(None, sent=False, held_until=lease.quiet_until)
        if self._turn is not None and not await self._turn():
            return Exchange(None, sent=False, held_until=self._clock() + _LOST_HOLD)
        admission = await patiently(
            partial(
                self._budget.admit,
                lease.user_id,
                self._logs[action],
                lease=(lease.worker, lease.fence),
                mark=mark,
            ),
            what="the shared rate-limit budget",
        )
        if admission.reason is Refusal.LEASE:
            self._on_lost(lease)
            return Exchange(None, sent=False, held_until=now + _LOST_HOLD)
        if not admission.ok:
            until = self._clock() + admission.retry_after
            self.hold = Hold(_reason(admission, str(action)), until)
            return Exchange(None, sent=False, held_until=until)
        self.hold = None
        if mark is not None and self._marks is not None:
            self._marks.written(mark)  # in Redis with the admission, before anything else
        if not self._valid():
            # Admitted, but this process stalled (or Redis did not answer its renewals) long
            # enough that the lease may have passed to another: it must not send now.
            self._on_lost(lease)
            return Exchange(None, sent=False, held_until=now + _LOST_HOLD)
        if self._departure is not None:
            await self._departure()
        exchange = await self._inner.send(action, tweet_id)
        if exchange.http is not None:
            await self._teach(action, self._logs[action][0].window, exchange)
        return exchange

    async def _teach(self, action: Action, period: float, exchange: Exchange) -> None:
        """Tell the shared budget what a 429, or an answer saying the window is spent, taught
        (every other answer agrees with the log: this holder is the account's only sender)."""
        if exchange.http != 429 and not _spent(exchange.headers):
            return  # most answers: looked at without parsing every header
        reading = parse_rate_limits(exchange.headers).window
        if exchange.http == 429 and not self._told_outside:
            self._outside(reading, period)
        await patiently(
            lambda: self._budget.learn(
                self._lease.user_id,
                action,
                status=exchange.http,
                limit=reading.limit if reading else None,
                remaining=reading.remaining if reading else None,
                reset=reading.reset if reading else None,
                window=period,
                park=self._park,
                lease=(self._lease.worker, self._lease.fence),
            ),
            what="the shared rate-limit budget",
        )

    def _outside(self, reading: LimitReading | None, period: float) -> None:
        """A 429 its headers explain (nothing remaining, a plausible reset): this Redis admitted
        no more than the window holds, so something outside it spent the window. Said once."""
        now = self._clock()
        reset = None if reading is None else reading.reset
        if reading is None or reading.remaining != 0 or reset is None:
            return  # a cap no header shows: parked, as the scheduler says
        if not now - CLOCK_TOLERANCE < reset <= now + reset_horizon(period):
            return  # another clock's reset: not waited for, as the scheduler says
        self._told_outside = True
        when = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        _log.warning(
            "account_used_outside_redis",
            account=self._account,
            reason=f"a 429 on a window this Redis's shared budget had not spent (nothing "
            f"remaining until {when}): another process outside this Redis may be using this "
            f"account (a run without --redis, or one on another Redis: give every run on these "
            f"accounts the same --redis); every worker on this Redis waits for that reset",
        )


def _spent(headers: Mapping[str, str]) -> bool:
    """Whether an answer's ``x-rate-limit-remaining`` says 0, read as `parse_rate_limits` reads
    it (`Exchange.headers` names are lower-case)."""
    value = headers.get("x-rate-limit-remaining")
    if value is None:
        return False
    try:
        return int(value.strip()) == 0
    except ValueError:
        return False


def _logs(model: LimitModel, action: Action) -> tuple[BudgetLog, ...]:
    """The logs a request of ``action`` takes a place in, its endpoint's first."""
    window = model.window_for(action)
    return (BudgetLog(str(action), window.limit, window.period),) + tuple(
        BudgetLog(cap.name, cap.window.limit, cap.window.period, cap.scope is CapScope.APP)
        for cap in model.caps_for(action)
    )


def _reason(admission: BudgetAdmission, endpoint: str) -> WaitReason:
    """Why a refused request waits: blocked by what an answer taught, the endpoint's window
    full, or a cap no header shows full."""
    if admission.reason is Refusal.BLOCKED:
        return WaitReason.RATE_LIMITED
    return WaitReason.WINDOW_FULL if admission.log == endpoint else WaitReason.HIDDEN_CAP
