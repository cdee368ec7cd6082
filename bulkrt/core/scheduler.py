"""Which item goes next, and when: the dispatcher's pure core.

The :class:`Scheduler` holds each account's items in file order, asks a :class:`Limiter`
whether the account's window has room (requests in flight included), and answers the async
shell with one :data:`Step` at a time. It never sleeps and never reads a clock: every call
takes ``now``. The shell's loop is a few lines::

    while not isinstance(step := scheduler.next(clock()), Done):
        match step:
            case Dispatch(ticket):  start a task: send, classify, then
                                    results = scheduler.on_response(ticket, clock(), outcome)
            case Refresh(account):  refresh once (single flight), then
                                    results = scheduler.on_refreshed(account, clock(), ok)
            case Wait(until):       sleep until ``until`` or until a task reports, whichever first
            case Idle():            wait until a task reports
        write ``results`` to the ledger; log ``scheduler.drain_events()``

What it honours: a global cap on requests in flight (waiting accounts hold no slot); per
account, file order (a retried or rate-limited item stays at the head, and the account's next
item waits behind it; two items on the same Tweet are never in flight together); the
windows of the limiter; 429 waits that spend no attempt; parking after a hidden limit; one
credential refresh, then a pause that ends the account's items as ``error``. Accounts with
room are served round-robin, so a large account cannot starve the others.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias

from bulkrt.core.attribution import Effect, Evidence, effect_of, origin, preexisting
from bulkrt.core.items import ErrorDetail, Item, Status
from bulkrt.core.limit_evidence import teachable
from bulkrt.core.limiter import BudgetWindow, Limiter, Margins, Permit, WindowLimiter, new_permit
from bulkrt.core.outcome import Decision, Outcome
from bulkrt.core.ratelimits import clock_note, implausible_reset, untrusted_reset
from bulkrt.core.retry_policy import ParkPolicy, RetryPolicy
from bulkrt.core.tiers import LimitModel
from bulkrt.core.work import (
    AccountQueues,
    Dispatch,
    Done,
    Idle,
    ItemResult,
    Refresh,
    Step,
    Ticket,
    Wait,
    WorkSource,
    new_result,
    new_ticket,
    result_draft,
    ticket_draft,
)

__all__ = [
    "AccountQueues",
    "AccountState",
    "Overview",
    "Dispatch",
    "Done",
    "AccountEvent",
    "EventKind",
    "Idle",
    "ItemResult",
    "Refresh",
    "Scheduler",
    "Step",
    "Ticket",
    "Wait",
    "WorkSource",
]


class AccountState(StrEnum):
    """Where an account stands, for progress displays."""

    #: has items and may send now
    READY = "ready"
    #: waiting for its window, a retry delay or a response
    WAITING = "waiting"
    #: a 429 no header explained: nothing goes until the park ends
    PARKED = "parked"
    #: its credentials are being refreshed
    REFRESHING = "refreshing"
    #: its credentials failed after a refresh, or it was given up after hidden limits:
    #: its items end as ``error``
    PAUSED = "paused"
    #: nothing left to send
    FINISHED = "finished"


class EventKind(StrEnum):
    """State changes the shell logs (one event each)."""

    #: a 429 with a reset: the endpoint waits for it
    RATE_LIMITED = "account_rate_limited"
    #: a hidden limit: the account is parked
    PARKED = "account_parked"
    #: too many hidden limits in a row: the account's items end as ``error``
    GAVE_UP = "account_given_up"
    #: a 401: the credentials are refreshed once
    REFRESH = "account_refresh"
    #: a 401 after the refresh: the account's items end as ``error``
    PAUSED = "account_paused"
    #: a reset far in the past or future: the clocks may disagree
    SKEW = "clock_skew_suspected"
    #: the budget shared with other runs or workers (the multi-machine mode) is spent
    HELD = "account_held"


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """One state change of an account."""

    kind: EventKind
    account: str
    at: float
    until: float | None = None
    detail: str = ""


class _Auth(StrEnum):
    #: credentials believed good
    OK = "ok"
    #: a 401 came back: refresh before sending more
    NEEDS_REFRESH = "needs_refresh"
    #: the shell is refreshing
    REFRESHING = "refreshing"
    #: refreshed once since the last good response; another 401 pauses the account
    REFRESHED = "refreshed"
    #: given up for this run
    PAUSED = "paused"


@dataclass(slots=True)
class _Account:
    name: str
    auth: _Auth = _Auth.OK
    #: set when the account is paused or given up: every item of it ends with this error
    stopped: ErrorDetail | None = None
    parked_until: float = 0.0
    #: when the current park was decided; 429s to requests sent before it add no park
    parked_at: float = -1.0
    #: hidden limits in a row (reset by any other response)
    parks: int = 0
    #: one request at a time until a response other than 429: at the start (slow start: bad
    #: credentials or an unknown limit cost one request, not a burst) and after a park
    probing: bool = True
    #: the end of the last 429 wait; a 429 to a request sent after it is a hidden limit,
    #: unless it names a later reset than the one waited for (`Scheduler._waited_resets`)
    waited_until: float | None = None
    #: bumped by each credential refresh; a 401 to an older request is not held against it
    generation: int = 0
    in_flight: int = 0
    #: the Tweet of one of its requests in flight (the first sent while none was); those of
    #: the others are counted in `Scheduler._tweets_in_flight` (rarely any: one dict entry made
    #: and dropped per request costs more than this slot)
    tweet: str | None = None
    #: its name is in `Scheduler._retired` (it was forgotten before)
    known: bool = False


#: a request in flight: (ticket, its permit, sent at, the account's credential generation then,
#: the account's record, which stays the account's while a request of it is in flight); a plain
#: tuple, one allocation per request (a named tuple's costs two, a frozen dataclass's more).
#: When the in-memory limiter counted the request against one budget only, its `BudgetWindow`
#: stands for the permit (see `_permit`): no `Permit` is made per request, and the window is
#: not looked up again (a window is never dropped while a request it counts is in flight).
_Flight: TypeAlias = tuple[Ticket, Permit | BudgetWindow, float, int, _Account]


def _permit(flight: _Flight) -> Permit:
    """The permit of the request in ``flight``, for the limiter's `settle` or `cancel`."""
    held = flight[1]
    if type(held) is BudgetWindow:
        account, action = flight[4].name, flight[0].item.action
        return new_permit(account, action, (held.key or (account, action.value),))
    assert isinstance(held, Permit)
    return held


#: why a window the scheduler kept room in was spent: a run gets no 429 of its own
_SHARED_BUDGET = (
    "another process may be using this account (runs and workers share a budget only through "
    "one --redis)"
)

# what _gate answers: dispatch now, a time to wake, or wait for a response/refresh
_NOW = "now"
_AWAIT = "await"
_EMPTY = "empty"


class Scheduler:
    """Decides which item goes next; see the module docstring for the shell's loop.

    >>> from bulkrt.core.items import Action
    >>> from bulkrt.core.tiers import limit_model
    >>> s = Scheduler(limit_model("basic", limit=1, window=3), concurrency=4)
    >>> s.add(Item("k1", "c", "acme", "20", Action.RETWEET, "job.csv", 2))
    []
    >>> step = s.next(0.0); step.ticket.item.key
    'k1'
    """

    def __init__(
        self,
        model: LimitModel,
        *,
        concurrency: int,
        retry: RetryPolicy | None = None,
        park: ParkPolicy | None = None,
        margins: Margins | None = None,
        limiter: Limiter | None = None,
        work: WorkSource | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.park = park or ParkPolicy()
        self.model = model
        self.limiter: Limiter = limiter or WindowLimiter(model, margins)
        self.work: WorkSource = work or AccountQueues()
        self._accounts: dict[str, _Account] = {}
        self._serial = 0
        self._in_flight: dict[int, _Flight] = {}
        # requests in flight per (account, Tweet) but for the one in `_Account.tweet`; an entry
        # goes when it drops to zero
        self._tweets_in_flight: dict[tuple[str, str], int] = {}
        # accounts whose auth is REFRESHING
        self._refreshes = 0
        # accounts ever forgotten (see `_forget`), ``_revived`` of them with a record again, and
        # those forgotten now and still in their slow start. A dict of each name to itself: a
        # later item of the account finds there the one string its name was keyed with, and
        # the scheduler keys the account with that string again (dicts and sets then match it
        # by identity, without comparing text: a job's rows bring a new string per item). A
        # name stays when its account comes back: the dict neither shrinks nor grows as
        # accounts come and go.
        self._retired: dict[str, str] = {}
        self._revived = 0
        self._unproven: set[str] = set()
        # forgotten records, reset as new, for the next new account (one record made and
        # dropped per item costs more than resetting it)
        self._spare: list[_Account] = []
        self._view = _View()
        self._ready: deque[str] = deque()
        self._in_ready: set[str] = set()
        self._sleeping: list[tuple[float, int, str]] = []
        self._awaiting: dict[str, None] = {}  # a set in insertion order: seeded runs replay
        self._refresh_due: deque[str] = deque()
        self._events: list[AccountEvent] = []
        # accounts told of a reset that did not fit the clock (`_skewed`)
        self._skew_told: set[str] = set()
        # per account that waited for a 429's reset: the latest reset (server clock) waited
        # for, read only while its `waited_until` is set (accounts with 429s are few: no slot)
        self._waited_resets: dict[str, float] = {}

    # -- feeding --------------------------------------------------------------------------

    def add(self, item: Item, now: float = 0.0) -> list[ItemResult]:
        """Queue ``item`` behind its account's earlier items.

        Returns its result at once (``error``) when the account is already paused.
        """
        return self.add_many((item,), now)

    def add_many(  # noqa: C901 (inlined on purpose: one loop per batch, not calls per item)
        self, items: Iterable[Item], now: float = 0.0
    ) -> list[ItemResult]:
        """`add` each of ``items`` in turn, in one call; returns all their results."""
        results: list[ItemResult] = []
        put, accounts, view = self.work.put, self._accounts, self._view
        in_ready, ready, retired, unproven = (
            self._in_ready,
            self._ready,
            self._retired,
            self._unproven,
        )
        # `AccountQueues.add`, inline, when the work source is the in-memory one
        work: Any = self.work
        queues: dict[str, Any] | None = work._queues if type(work) is AccountQueues else None
        serial, spare, added, revived = self._serial, self._spare, 0, 0
        dirty = view.dirty if view.on else None
        try:  # ``_serial`` and ``work._size`` moved once, at the end: nothing here reads them
            for item in items:
                serial += 1
                name = item.account
                account = accounts.get(name)
                if account is None:  # a new record (``unproven`` is in ``retired``)
                    probing = True
                    known = retired.get(name)
                    if known is not None:
                        name = known  # the string the account was keyed with
                        revived += 1
                        probing = bool(unproven) and name in unproven
                        if probing:
                            unproven.remove(name)
                    if spare:
                        account = spare.pop()
                        account.name = name
                        account.probing = probing
                    else:
                        account = _Account(name, probing=probing)
                    account.known = known is not None
                    accounts[name] = account
                else:
                    name = account.name
                if queues is None:
                    put(new_ticket(serial, item, 0, 0, 0.0, False))
                else:  # `AccountQueues.add`, inline: no ticket made until the item is taken
                    queue = queues.get(name)
                    if queue is None:
                        queues[name] = (serial, item)
                    elif type(queue) is deque:
                        queue.append((serial, item))
                    else:
                        queues[name] = deque((queue, (serial, item)))
                    added += 1
                if dirty is not None:
                    dirty.add(name)
                if name not in in_ready:  # `_wake`, inline: one call less per item
                    in_ready.add(name)
                    ready.append(name)
                if account.stopped is not None:
                    results += self._fail_all(account, now, account.stopped, None)
        finally:
            self._serial = serial
            self._revived += revived
            if added:
                work._size += added
        return results

    def _forget(self, account: _Account, now: float) -> bool:
        """Drop ``account``'s record when nothing in it can matter any more: no item queued,
        nothing in flight, credentials good, no park, no 429 wait or hidden-limit count. An
        item of it that comes later starts from a fresh record (the limiter keeps its windows
        until they pass); only its name and whether its slow start is over are kept. Returns
        whether it was dropped.

        A fresh record answers as the dropped one would have: its generation restarts, but no
        request of the old one is in flight to compare with it."""
        if (
            account.in_flight
            or account.stopped is not None
            or account.auth is not _Auth.OK
            or account.parks
            or account.waited_until is not None
            or account.parked_until > now
            or self.work.head(account.name) is not None
        ):
            return False
        name = account.name
        del self._accounts[name]
        if account.known:
            self._revived -= 1
        else:
            self._retired[name] = name
        if account.probing:
            self._unproven.add(name)
        if self._view.on:  # `_touch`, inline
            self._view.dirty.add(name)
        self._recycle(account)
        return True

    def _recycle(self, account: _Account) -> None:
        """Keep a forgotten record for a new account, reset as `_Account` makes it (its name,
        ``probing`` and ``known`` are set on reuse). `_forget`'s tests left the other fields as
        new. The spares never outnumber the records once held at the same time."""
        account.parked_until = 0.0
        account.parked_at = -1.0
        account.generation = 0
        self._spare.append(account)

    def _touch(self, name: str) -> None:
        """``name``'s state may have changed: the overview looks at it again."""
        if self._view.on:
            self._view.dirty.add(name)

    def _set_auth(self, account: _Account, auth: _Auth) -> None:
        self._refreshes += (auth is _Auth.REFRESHING) - (account.auth is _Auth.REFRESHING)
        account.auth = auth

    # -- choosing -------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests sent and not reported yet."""
        return len(self._in_flight)

    def next(self, now: float) -> Step:
        """The next thing the shell should do at ``now``."""
        step = self._step(now)
        return Dispatch(step) if isinstance(step, Ticket) else step

    def next_batch(self, now: float, limit: int) -> tuple[list[Ticket], Step | None]:
        """What calling `next` at ``now`` says until it says something other than `Dispatch`,
        or ``limit`` times, in one call: the tickets of those `Dispatch` steps, in order, and the
        step that followed them (None when ``limit`` tickets were taken: call again).

        >>> from bulkrt.core.items import Action
        >>> from bulkrt.core.tiers import limit_model
        >>> s = Scheduler(limit_model("basic", limit=1, window=3), concurrency=4)
        >>> s.add_many(Item(f"k{n}", "c", f"u{n}", "2", Action.RETWEET, "j", n) for n in (1, 2))
        []
        >>> tickets, then = s.next_batch(0.0, 10); [t.item.key for t in tickets], then
        (['k1', 'k2'], Idle())
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        tickets: list[Ticket] = []
        flying, concurrency = self._in_flight, self.concurrency
        while True:
            step = self._step(now)
            if not isinstance(step, Ticket):
                return tickets, step
            tickets.append(step)
            # At the same ``now``, `_step` can only pick next: a dispatch queues no refresh and
            # books no wake at or before ``now``, and requests are in flight (so not Done).
            # `_pick_many` stops early when nothing is ready: `_step` says what comes instead.
            self._pick_many(now, tickets, min(limit - len(tickets), concurrency - len(flying)))
            if len(tickets) >= limit:
                return tickets, None

    def _step(self, now: float) -> Ticket | Step:
        """`next`, with a ticket to send in place of its `Dispatch` step."""
        if self._refresh_due:
            name = self._refresh_due.popleft()
            self._set_auth(self._accounts[name], _Auth.REFRESHING)
            self._touch(name)
            return Refresh(name)
        in_flight = len(self._in_flight)
        if not in_flight and not len(self.work) and not self._refreshes:
            # Waits still held (a window, a park) belong to accounts with nothing left.
            self._sleeping.clear()
            return Done()
        sleeping = self._sleeping
        while sleeping and sleeping[0][0] <= now:
            self._wake(heapq.heappop(sleeping)[2])
        if in_flight < self.concurrency:
            ticket = self._pick(now)
            if ticket is not None:
                return ticket
        elif self._ready:
            return Idle()
        if self._sleeping:
            return Wait(self._sleeping[0][0])
        if self.in_flight or self._refreshing():
            return Idle()
        if len(self.work):
            # Unreachable by design (an account waits on time, a response or a refresh);
            # re-check everyone shortly rather than hang the run.
            for name in self.work.accounts():
                self._wake(name)
            return Wait(now + 1.0)
        return Done()

    def _pick(self, now: float) -> Ticket | None:
        """Dispatch the first ready account's head, round-robin; re-file the others."""
        ready, in_ready, accounts = self._ready, self._in_ready, self._accounts
        for _ in range(len(ready)):
            name = ready.popleft()
            account = accounts.get(name)
            if account is None:  # forgotten: nothing of it is queued
                in_ready.discard(name)
                continue
            gate = self._gate(account, now)
            if gate is _NOW:
                ready.append(name)  # back of the line (still in ``in_ready``): round-robin
                return self._dispatch(name, account, now)
            in_ready.discard(name)
            if isinstance(gate, float):
                heapq.heappush(self._sleeping, (gate, self._serial, name))
            elif gate is _AWAIT:
                self._awaiting[name] = None
            else:
                self._forget(account, now)
        return None

    def _pick_many(self, now: float, tickets: list[Ticket], wanted: int) -> None:  # noqa: C901
        """`_pick` up to ``wanted`` times, appending each ticket to ``tickets``; stops at the first
        pick that finds none. With the in-memory work source and limiter, `_gate`, `_dispatch`
        and the limiter's calls for an endpoint that is its only budget (a plain log) run inline
        here, in one loop: what the calls would do, without a call per item."""
        limiter, work = self.limiter, self.work
        if wanted <= 0:
            return
        if type(limiter) is not WindowLimiter or type(work) is not AccountQueues:
            pick = self._pick
            for _ in range(wanted):
                ticket = pick(now)
                if ticket is None:
                    return
                tickets.append(ticket)
            return
        ready, in_ready, accounts = self._ready, self._in_ready, self._accounts
        queues, tweets, flying, view = (
            work._queues,
            self._tweets_in_flight,
            self._in_flight,
            self._view,
        )
        windows, names, caps, sweeps = (
            limiter._windows,
            limiter._names,
            limiter._caps,
            limiter._sweeps,
        )
        # Sweep the limiter's idle windows once, now: a sweep books its next looks after ``now``,
        # so none falls due again in this call (`WindowLimiter.acquire` would sweep here).
        if sweeps and sweeps[0][0] <= now:
            limiter._sweep(now)
        endpoints, margins = limiter._endpoint, limiter.margins
        # per action, its endpoint's budget name when that is its only budget (no hidden cap, no
        # 24-hour window learnt: nothing in this call learns one)
        alone = {} if limiter._days else {a: names[a] for a in caps if not caps[a]}
        ok_auth, needs_refresh, refreshing = _Auth.OK, _Auth.NEEDS_REFRESH, _Auth.REFRESHING
        # each account in the line once at most per ticket taken (a `for` costs more)
        turns = len(ready)
        while turns:
            turns -= 1
            name = ready.popleft()
            account = accounts.get(name)
            if account is None:  # forgotten: nothing of it is queued
                in_ready.discard(name)
                continue
            # `_gate`, inline
            queue: Any = queues.get(name)
            gate: Any
            if queue is None or account.stopped is not None:
                gate = _EMPTY
            elif (auth := account.auth) is not ok_auth and (
                auth is needs_refresh or auth is refreshing
            ):
                gate = _AWAIT
            else:
                head: Any = queue[0] if type(queue) is deque else queue
                wake = account.parked_until
                if type(head) is tuple:  # `Fresh`: never taken, no retry delay
                    item = head[1]
                else:
                    item = head.item
                    if head.not_before > wake:
                        wake = head.not_before
                if wake > now:
                    gate = wake
                elif account.in_flight and (
                    account.probing
                    or account.tweet == item.tweet_id
                    or (tweets and (name, item.tweet_id) in tweets)
                ):
                    gate = _AWAIT
                else:
                    action = item.action
                    endpoint_name = alone.get(action)
                    if endpoint_name is None:
                        window = None
                        gate = limiter.ready_at(name, action, now)
                    else:
                        window = windows.get(budget := (name, endpoint_name))
                        if window is None:  # its first request: `WindowLimiter._ensure`
                            endpoint = endpoints[action]
                            window = BudgetWindow(endpoint.limit, endpoint.period, margins)
                            window.key = budget
                            windows[budget] = window
                        loose: Any = window._loose
                        if window._groups or (loose and loose[0] <= now):
                            gate = limiter.ready_at(name, action, now)
                        else:  # `BudgetWindow.ready_at` of a plain log, inline
                            free = window.limit - window.in_flight
                            if free <= 0:
                                gate = None
                            else:
                                gate = now
                                if window._blocked_until > now:
                                    gate = window._blocked_until
                                over = len(loose) - free
                                if over >= 0 and loose[over] > gate:
                                    gate = loose[over]
                    if gate is None:
                        gate = _AWAIT
                    elif gate <= now:
                        gate = _NOW
            if gate is not _NOW:
                in_ready.discard(name)
                if isinstance(gate, float):
                    heapq.heappush(self._sleeping, (gate, self._serial, name))
                elif gate is _AWAIT:
                    self._awaiting[name] = None
                else:
                    self._forget(account, now)
                continue
            ready.append(name)  # back of the line (still in ``in_ready``): round-robin
            # `_dispatch`, with `AccountQueues.take` and `WindowLimiter.acquire`, inline
            work._size -= 1
            if type(queue) is deque:
                queue.popleft()
                if len(queue) == 1:
                    queues[name] = queue[0]
            else:
                del queues[name]
            ticket = ticket_draft()
            ticket.item = item
            if type(head) is tuple:
                ticket.serial = serial = head[0]
                ticket.sent = 1
                ticket.tries = 0
                ticket.not_before = 0.0
                ticket.maybe_applied = False
            else:
                ticket.serial = serial = head.serial
                ticket.sent = head.sent + 1
                ticket.tries = head.tries
                ticket.not_before = head.not_before
                ticket.maybe_applied = head.maybe_applied
            ticket.__class__ = Ticket
            held: Permit | BudgetWindow
            if window is None:
                held = limiter.acquire(name, action, now)
            else:  # the only budget: `WindowLimiter.acquire`, inline, without a `Permit`
                window.in_flight += 1
                held = window
            flying[serial] = (ticket, held, now, account.generation, account)
            if account.tweet is None:  # `_sent_tweet`, inline
                account.tweet = item.tweet_id
            else:
                key = (name, item.tweet_id)
                tweets[key] = tweets.get(key, 0) + 1
            if view.on:
                view.dirty.add(name)
            account.in_flight += 1
            tickets.append(ticket)
            wanted -= 1
            if not wanted:
                return
            turns = len(ready)

    def _refreshing(self) -> bool:
        return self._refreshes > 0

    def _gate(self, account: _Account, now: float) -> float | str:
        ticket = self.work.head(account.name)
        if ticket is None or account.stopped is not None:
            return _EMPTY
        auth = account.auth
        if auth is _Auth.NEEDS_REFRESH or auth is _Auth.REFRESHING:
            return _AWAIT
        wake = account.parked_until
        if ticket.not_before > wake:
            wake = ticket.not_before
        if wake > now:
            return wake
        if account.in_flight and (account.probing or self._flying(account, ticket.item.tweet_id)):
            return _AWAIT
        ready = self.limiter.ready_at(account.name, ticket.item.action, now)
        if ready is None:
            return _AWAIT
        return ready if ready > now else _NOW

    def _dispatch(self, name: str, account: _Account, now: float) -> Ticket:
        t = self.work.take(name)
        item = t.item
        ticket = new_ticket(t.serial, item, t.sent + 1, t.tries, t.not_before, t.maybe_applied)
        permit = self.limiter.acquire(name, item.action, now)
        self._in_flight[t.serial] = (ticket, permit, now, account.generation, account)
        self._sent_tweet(account, item.tweet_id)
        if self._view.on:
            self._view.dirty.add(name)
        account.in_flight += 1
        return ticket

    def _flying(self, account: _Account, tweet: str) -> bool:
        """Whether a request of ``account`` on ``tweet`` is in flight."""
        if account.tweet == tweet:
            return True
        return bool(self._tweets_in_flight) and (account.name, tweet) in self._tweets_in_flight

    def _sent_tweet(self, account: _Account, tweet: str) -> None:
        """Count a request of ``account`` on ``tweet`` as in flight."""
        if account.tweet is None:
            account.tweet = tweet
        else:
            key = (account.name, tweet)
            self._tweets_in_flight[key] = self._tweets_in_flight.get(key, 0) + 1

    def _answered_tweet(self, account: _Account, tweet: str) -> None:
        """A request of ``account`` on ``tweet`` is no longer in flight."""
        if account.tweet == tweet:
            account.tweet = None
            return
        key = (account.name, tweet)
        left = self._tweets_in_flight.pop(key) - 1
        if left:
            self._tweets_in_flight[key] = left

    def _wake(self, name: str) -> None:
        if name not in self._in_ready:
            self._in_ready.add(name)
            self._ready.append(name)

    # -- learning -------------------------------------------------------------------------

    def on_response(self, ticket: Ticket, now: float, outcome: Outcome) -> list[ItemResult]:
        """Record how ``ticket``'s request went; returns the items that finished."""
        flight = self._in_flight.pop(ticket.serial)
        ticket = flight[0]
        if effect_of(outcome) is Effect.POSSIBLE and not ticket.maybe_applied:
            ticket = replace(ticket, maybe_applied=True)
            flight = (ticket, flight[1], flight[2], flight[3], flight[4])
        item = ticket.item
        account = flight[4]
        name = account.name
        account.in_flight -= 1
        if self._view.on:
            self._view.dirty.add(name)
        self._answered_tweet(account, item.tweet_id)
        if outcome.unsent:  # never left: the platform counted nothing
            self.limiter.cancel(_permit(flight), now)
        elif self.limiter.settle(_permit(flight), now, teachable(outcome)):
            self._skewed(name, now, outcome)
        http = outcome.http
        if http is not None and http != 429:
            account.parks = 0
            account.probing = False
            account.waited_until = None
            if http != 401 and account.auth is _Auth.REFRESHED:
                self._set_auth(account, _Auth.OK)
        if outcome.decision is Decision.DONE:  # the common case, without `_apply`'s tests
            results = [self._result(ticket, now, outcome, flight[2])]
        else:
            results = self._apply(account, flight, now, outcome)
        if account.stopped is not None:  # an answer that came back after the account stopped
            results += self._fail_all(account, now, account.stopped, http)
        if self._awaiting:
            self._wake_awaiting()
        if name not in self._in_ready:  # `_wake`, inline
            self._in_ready.add(name)
            self._ready.append(name)
        # An account left with nothing to do is dropped now rather than found empty on its turn
        # in the ready line (where it keeps its place, for an item added before that turn).
        # Nothing before that turn could have kept it: only an `add`, which a fresh record
        # serves alike.
        self._forget(account, now)
        return results

    def _wake_awaiting(self) -> None:
        """A response came: the accounts that waited for one look again."""
        for waiting in self._awaiting:
            self._wake(waiting)
        self._awaiting.clear()

    def on_responses(  # noqa: C901 (inlined on purpose: one loop per batch, not calls per item)
        self, answers: Iterable[tuple[Ticket, Outcome]], now: float
    ) -> list[ItemResult]:
        """`on_response` for each (ticket, outcome) of ``answers`` in turn, at ``now``, in one
        call; returns all the items that finished, in that order."""
        results: list[ItemResult] = []
        on_response = self.on_response
        limiter, work = self.limiter, self.work
        if type(limiter) is not WindowLimiter or type(work) is not AccountQueues:
            for ticket, outcome in answers:
                results += on_response(ticket, now, outcome)
            return results
        # The common answer (done, its retweet state known, sent) runs `on_response` inline:
        # with the limiter's settle when no header came, and `_result` and `_forget`.
        done, ok_auth, refreshed = Decision.DONE, _Auth.OK, _Auth.REFRESHED
        flying, accounts, tweets, view = (
            self._in_flight,
            self._accounts,
            self._tweets_in_flight,
            self._view,
        )
        sweeps, queues = limiter._sweeps, work._queues
        # `WindowLimiter.settle`'s sweep, once for the batch: a sweep books its next looks after
        # ``now``, so none falls due again in this call
        if sweeps and sweeps[0][0] <= now:
            limiter._sweep(now)
        in_ready, ready, retired, unproven = (
            self._in_ready,
            self._ready,
            self._retired,
            self._unproven,
        )
        append, spare, revived = results.append, self._spare, 0
        for ticket, outcome in answers:
            if outcome.decision is not done or outcome.retweeted is None or outcome.unsent:
                results += on_response(ticket, now, outcome)
                continue
            # `effect_of` is ANSWERED: nothing to learn for `Ticket.maybe_applied`
            flight = flying.pop(ticket.serial)
            ticket = flight[0]
            item = ticket.item
            account = flight[4]
            name = account.name
            account.in_flight -= 1
            if view.on:
                view.dirty.add(name)
            tweet = item.tweet_id  # `_answered_tweet`, inline
            if account.tweet == tweet:
                account.tweet = None
            else:
                key = (name, tweet)
                left = tweets.pop(key) - 1
                if left:
                    tweets[key] = left
            window: Any = flight[1]
            limits = outcome.limits
            if (
                type(window) is BudgetWindow
                and limits.window is None
                and limits.user_day is None
                and limits.app_day is None
            ):  # `WindowLimiter.settle` with no header, `BudgetWindow.release` inline
                if window.in_flight > 0:
                    window.in_flight -= 1
                loose = window._loose
                expiry = now + window.period
                if not loose or loose[-1] <= expiry:
                    loose.append(expiry)
                else:
                    bisect.insort(loose, expiry)
                if not window.sweep_at:
                    limiter._schedule(window, now)
            elif limiter.settle(_permit(flight), now, teachable(outcome)):
                self._skewed(name, now, outcome)
            http = outcome.http
            if http is not None and http != 429:
                account.parks = 0
                account.probing = False
                account.waited_until = None
                if account.auth is refreshed and http != 401:
                    self._set_auth(account, ok_auth)
            # `_result`, inline
            result = result_draft()
            result.item = item
            result.status = outcome.status or Status.ERROR
            result.retweeted = outcome.retweeted
            result.preexisting = (
                preexisting(origin(Evidence(possible=ticket.maybe_applied)))
                if outcome.preexisting
                else False
            )
            sent = ticket.sent
            result.http = http if sent else None
            result.error = outcome.error
            result.attempts = sent
            result.finished_at = now
            result.sent_at = flight[2]
            result.__class__ = ItemResult
            append(result)
            if account.stopped is not None:  # an answer that came back after it stopped
                results += self._fail_all(account, now, account.stopped, http)
            if self._awaiting:
                self._wake_awaiting()
            if name not in in_ready:  # `_wake`, inline
                in_ready.add(name)
                ready.append(name)
            # `_forget`, inline (see `on_response`)
            if (
                account.in_flight
                or account.stopped is not None
                or account.auth is not ok_auth
                or account.parks
                or account.waited_until is not None
                or account.parked_until > now
                or name in queues
            ):
                continue
            del accounts[name]
            if account.known:
                revived += 1
            else:
                retired[name] = name
            if account.probing:
                unproven.add(name)
            if view.on:
                view.dirty.add(name)
            account.parked_until = 0.0  # `_recycle`, inline
            account.parked_at = -1.0
            account.generation = 0
            spare.append(account)
        self._revived -= revived
        return results

    def _apply(
        self, account: _Account, flight: _Flight, now: float, outcome: Outcome
    ) -> list[ItemResult]:
        ticket = flight[0]
        decision = outcome.decision
        if decision is Decision.HELD:
            # Not sent: no attempt spent; the account's next item goes when the budget frees.
            until = outcome.until if outcome.until is not None else now
            self.work.put_back(replace(ticket, sent=ticket.sent - 1, not_before=until))
            self._emit(EventKind.HELD, account.name, now, until)
            return []
        if decision is Decision.WAIT_RATE_LIMIT:
            if self._implausible(account, ticket, now, outcome):
                decision = Decision.HIDDEN_LIMIT
            elif (
                account.waited_until is None
                or flight[2] < account.waited_until
                or (outcome.until or 0.0) > self._waited_resets.get(account.name, 0.0)
            ):
                return self._wait_for_reset(account, ticket, now, outcome)
            else:
                decision = Decision.HIDDEN_LIMIT  # sent after waiting for the reset, refused
        if decision is Decision.HIDDEN_LIMIT:
            if flight[2] < account.parked_at:
                self.work.put_back(ticket)  # sent before the park began: it is counted already
                return []
            return self._park(account, ticket, now, outcome)
        if decision is Decision.CREDENTIALS_REFUSED:
            self.work.put_back(ticket)
            return self._pause(account, now, outcome.error, outcome.http)
        if decision is Decision.AUTH_FAILED:
            if flight[3] < account.generation:
                self.work.put_back(ticket)  # sent with the credentials before the refresh
                return []
            return self._auth_failed(account, ticket, now, outcome)
        if decision is Decision.RETRY:
            tries = ticket.tries + 1
            if not self.retry.exhausted(tries):
                delay = self.retry.delay(tries)
                self.work.put_back(replace(ticket, tries=tries, not_before=now + delay))
                return []
            ticket = replace(ticket, tries=tries)
            outcome = replace(outcome, status=Status.ERROR)
        return [self._result(ticket, now, outcome, sent_at=flight[2])]

    def _skewed(self, name: str, now: float, outcome: Outcome) -> None:
        """An answer's reset did not fit the clock: told once per account (every answer of a
        server whose clock is ahead says so again)."""
        if name not in self._skew_told:
            self._skew_told.add(name)
            self._emit(EventKind.SKEW, name, now, detail=untrusted_reset(outcome.limits, now))

    def _implausible(self, account: _Account, ticket: Ticket, now: float, outcome: Outcome) -> bool:
        """Whether a 429's reset lies implausibly far ahead: then it is parked, not waited for."""
        period = self.model.window_for(ticket.item.action).period
        reset = implausible_reset(outcome.limits, now, period)
        if reset is None:
            return False
        when = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        detail = (
            f"429 reset {when} is implausibly far ahead: parked instead of waiting for it; "
            f"{clock_note(outcome.limits, now)}"
        )
        self._emit(EventKind.SKEW, account.name, now, reset, detail)
        return True

    def _wait_for_reset(
        self, account: _Account, ticket: Ticket, now: float, outcome: Outcome
    ) -> list[ItemResult]:
        until, skewed = self.limiter.block(account.name, ticket.item.action, now, outcome.until)
        if skewed:
            self._emit(EventKind.SKEW, account.name, now, until, "429 reset out of range")
        self._emit(EventKind.RATE_LIMITED, account.name, now, until, _SHARED_BUDGET)
        reset, name = outcome.until or 0.0, account.name
        if account.waited_until is None:
            self._waited_resets[name] = reset
        else:
            self._waited_resets[name] = max(self._waited_resets.get(name, 0.0), reset)
        account.waited_until = max(account.waited_until or 0.0, until)
        self.work.put_back(ticket)
        return []

    def _park(
        self, account: _Account, ticket: Ticket, now: float, outcome: Outcome
    ) -> list[ItemResult]:
        account.parks += 1
        self.work.put_back(ticket)
        if self.park.gives_up(account.parks):
            self._emit(EventKind.GAVE_UP, account.name, now, detail=f"{account.parks} parks")
            account.stopped = outcome.error or ErrorDetail("hidden-limit", "Too Many Requests", "")
            return self._fail_all(account, now, account.stopped, outcome.http)
        account.parked_at = now
        account.probing = True
        account.parked_until = max(account.parked_until, now + self.park.delay(account.parks))
        error = outcome.error
        why = f"{outcome.http or 'no'} answer" + (
            f" ({error.title}: {error.detail})" if error else ""
        )
        self._emit(
            EventKind.PARKED,
            account.name,
            now,
            account.parked_until,
            f"park {account.parks} (a hidden limit, or a reset not worth waiting for): {why}",
        )
        return []

    def _auth_failed(
        self, account: _Account, ticket: Ticket, now: float, outcome: Outcome
    ) -> list[ItemResult]:
        if account.auth is _Auth.OK:
            self._set_auth(account, _Auth.NEEDS_REFRESH)
            self._refresh_due.append(account.name)
            self._emit(EventKind.REFRESH, account.name, now)
        if account.auth is _Auth.REFRESHED:
            self.work.put_back(ticket)
            return self._pause(account, now, outcome.error, outcome.http)
        if account.auth is _Auth.PAUSED:
            return [self._result(ticket, now, replace(outcome, status=Status.ERROR))]
        self.work.put_back(ticket)  # resent after the refresh
        return []

    def on_refreshed(
        self, account: str, now: float, ok: bool, error: ErrorDetail | None = None
    ) -> list[ItemResult]:
        """The shell's refresh of ``account`` ended; returns items that finished because of it.

        ``ok=False`` (no refresh possible, e.g. OAuth 1.0a, or the token endpoint refused)
        pauses the account.
        """
        state = self._accounts[account]
        self._wake(account)
        self._touch(account)
        if ok:
            self._set_auth(state, _Auth.REFRESHED)
            state.generation += 1
            return []
        error = error or ErrorDetail("unauthorized", "Unauthorized", "credentials refused")
        return self._pause(state, now, error, 401)

    def _pause(
        self, account: _Account, now: float, error: ErrorDetail | None, http: int | None
    ) -> list[ItemResult]:
        self._set_auth(account, _Auth.PAUSED)
        account.stopped = error or ErrorDetail("unauthorized", "Unauthorized", "")
        self._emit(EventKind.PAUSED, account.name, now, detail=account.stopped.detail or "")
        return self._fail_all(account, now, account.stopped, http)

    def _fail_all(
        self, account: _Account, now: float, error: ErrorDetail | None, http: int | None
    ) -> list[ItemResult]:
        failed = Outcome(Decision.DONE, status=Status.ERROR, http=http, error=error)
        return [self._result(t, now, failed) for t in self.work.drain(account.name)]

    def _result(
        self, ticket: Ticket, now: float, outcome: Outcome, sent_at: float | None = None
    ) -> ItemResult:
        # "Already retweeted" is the owner's retweet only when every earlier attempt of this
        # run is proved to have had no effect; else nobody can tell (bulkrt.core.attribution).
        # The dispatcher adds what the journal knows of earlier runs.
        found = (
            preexisting(origin(Evidence(possible=ticket.maybe_applied)))
            if outcome.preexisting
            else False
        )
        return new_result(
            ticket.item,
            outcome.status or Status.ERROR,
            outcome.retweeted,
            found,
            outcome.http if ticket.sent else None,
            outcome.error,
            ticket.sent,
            now,
            sent_at,
        )

    def _emit(
        self,
        kind: EventKind,
        account: str,
        now: float,
        until: float | None = None,
        detail: str = "",
    ) -> None:
        self._events.append(AccountEvent(kind, account, now, until, detail))

    # -- telling --------------------------------------------------------------------------

    def drain_events(self) -> list[AccountEvent]:
        """The state changes since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def resumes_at(self, account: str, now: float) -> float | None:
        """When a waiting or parked ``account`` may send next, if that is a known time."""
        state = self._accounts.get(account)
        if state is None or state.stopped is not None:
            return None
        gate = self._gate(state, now)
        return gate if isinstance(gate, float) else None

    def state(self, account: str, now: float) -> AccountState:
        """Where ``account`` stands at ``now``."""
        state = self._accounts.get(account)
        if state is None:
            return AccountState.FINISHED
        if state.stopped is not None:
            return AccountState.PAUSED
        if state.auth in (_Auth.NEEDS_REFRESH, _Auth.REFRESHING):
            return AccountState.REFRESHING
        if self.work.head(account) is None:
            return AccountState.WAITING if state.in_flight else AccountState.FINISHED
        if state.parked_until > now:
            return AccountState.PARKED
        gate = self._gate(state, now)
        return AccountState.READY if gate == _NOW else AccountState.WAITING

    def overview(self, now: float, top: int = 5) -> Overview:
        """How many accounts stand where at ``now``, and the ``top`` soonest known resume times:
        what walking `state` and `resumes_at` over every account the scheduler was given would
        say, at a cost that follows what changed since the last call, not the number of accounts.

        The first call (and a call whose ``now`` is earlier than the last one's) indexes every
        account once; later calls look only at accounts touched since. Budgets shared by all
        accounts (an app-wide cap, an app-wide 24-hour window) are read when an account is
        touched, so an account that waits only on one of them may show its earlier answer.
        """
        view = self._view
        if not view.on or now < view.now:
            self._view = view = _View(on=True, now=now)
            view.dirty.update(self._accounts)
        view.advance(now)
        for name in view.dirty:
            view.remove(name)
            account = self._accounts.get(name)
            if account is not None:
                self._index(account, now)
        view.dirty.clear()
        counts = dict(view.static)
        counts[AccountState.FINISHED] = counts.get(AccountState.FINISHED, 0) + (
            len(self._retired) - self._revived
        )
        parked = view.parked_n
        ready = view.gated - view.later_n - view.never_n
        counts[AccountState.PARKED] = parked
        counts[AccountState.READY] = ready
        counts[AccountState.WAITING] = counts.get(AccountState.WAITING, 0) + (
            view.gated - ready - parked
        )
        return Overview(
            at=now,
            counts=tuple((state, counts.get(state, 0)) for state in AccountState),
            soonest=view.soonest(now, top),
            latest=view.latest(now),
        )

    def _index(self, account: _Account, now: float) -> None:
        """Enter ``account``'s state as `state` and `resumes_at` would tell it from ``now`` on."""
        view = self._view
        name = account.name
        if account.stopped is not None:
            view.add_static(name, AccountState.PAUSED)
            return
        if account.auth in (_Auth.NEEDS_REFRESH, _Auth.REFRESHING):
            view.add_static(name, AccountState.REFRESHING)
            return
        ticket = self.work.head(name)
        if ticket is None:
            busy = AccountState.WAITING if account.in_flight else AccountState.FINISHED
            view.add_static(name, busy)
            return
        wake = max(account.parked_until, ticket.not_before)
        ready: float | None = None
        held = self._flying(account, ticket.item.tweet_id) or (
            account.probing and account.in_flight
        )
        if not held:
            ready = self.limiter.ready_at(name, ticket.item.action, now)
        view.add_gated(
            name, account.parked_until, wake, None if ready is None else max(wake, ready)
        )


@dataclass(frozen=True, slots=True)
class Overview:
    """Where the accounts stand at one moment, for a progress display (`Scheduler.overview`)."""

    #: the ``now`` it describes
    at: float
    #: accounts per state, every `AccountState` listed in its declared order
    counts: tuple[tuple[AccountState, int], ...]
    #: the soonest known resume times after ``at``, as (time, account), soonest first
    soonest: tuple[tuple[float, str], ...]
    #: the latest moment after ``at`` at which an account stops waiting on time (a park's end, a
    #: retry delay, a window that opens); None when no account waits on time
    latest: float | None = None

    def count(self, state: AccountState) -> int:
        """Accounts in ``state``."""
        return dict(self.counts)[state]


_INF = float("inf")


class _View:
    """The overview's index: counts of the states that time does not change, and heaps of the
    moments at which time changes the others (a park's end, the moment an account may send).

    An account's entries carry its version; entries of an older version are skipped. Counts of
    entries still ahead (``parked_n``, ``later_n``) drop as ``now`` passes them.
    """

    __slots__ = (
        "dirty",
        "entries",
        "gated",
        "later",
        "last",
        "later_n",
        "never_n",
        "now",
        "on",
        "parked",
        "parked_n",
        "resumes",
        "static",
        "version",
    )

    def __init__(self, *, on: bool = False, now: float = 0.0) -> None:
        self.on = on
        self.now = now
        self.dirty: set[str] = set()
        self.version = 0
        #: per indexed account: (version, its static state or None, park end, ready time)
        self.entries: dict[str, tuple[int, AccountState | None, float, float]] = {}
        self.static: dict[AccountState, int] = {}
        #: accounts with an item to send, not paused or refreshing
        self.gated = 0
        self.parked: list[tuple[float, str, int]] = []
        self.parked_n = 0
        self.later: list[tuple[float, str, int]] = []
        self.later_n = 0
        #: gated accounts that wait for a response, not for a time
        self.never_n = 0
        self.resumes: list[tuple[float, str, int]] = []
        #: per gated account, the moment after which it waits on no time: a max-heap (negated)
        self.last: list[tuple[float, str, int]] = []

    def _valid(self, name: str, version: int) -> bool:
        entry = self.entries.get(name)
        return entry is not None and entry[0] == version

    def advance(self, now: float) -> None:
        """Let the entries at or before ``now`` pass."""
        for heap, attr in ((self.parked, "parked_n"), (self.later, "later_n")):
            while heap and heap[0][0] <= now:
                _, name, version = heapq.heappop(heap)
                if self._valid(name, version):
                    setattr(self, attr, getattr(self, attr) - 1)
        self.now = now

    def remove(self, name: str) -> None:
        entry = self.entries.pop(name, None)
        if entry is None:
            return
        _, static, park_end, ready = entry
        if static is not None:
            self.static[static] -= 1
            return
        self.gated -= 1
        if park_end > self.now:
            self.parked_n -= 1
        if ready == _INF:
            self.never_n -= 1
        elif ready > self.now:
            self.later_n -= 1

    def add_static(self, name: str, state: AccountState) -> None:
        self.version += 1
        self.entries[name] = (self.version, state, 0.0, 0.0)
        self.static[state] = self.static.get(state, 0) + 1

    def add_gated(self, name: str, park_end: float, wake: float, ready: float | None) -> None:
        self.version += 1
        version = self.version
        at = _INF if ready is None else ready
        self.entries[name] = (version, None, park_end, at)
        self.gated += 1
        if park_end > self.now:
            self.parked_n += 1
            heapq.heappush(self.parked, (park_end, name, version))
        if at == _INF:
            self.never_n += 1
        elif at > self.now:
            self.later_n += 1
            heapq.heappush(self.later, (at, name, version))
        for moment in {wake, at}:
            if self.now < moment < _INF:
                heapq.heappush(self.resumes, (moment, name, version))
        final = at if at < _INF else wake  # a park ends by ``wake``
        if self.now < final < _INF:
            heapq.heappush(self.last, (-final, name, version))
        if len(self.resumes) > 64 + 4 * len(self.entries):  # mostly stale: rebuild
            self.resumes = [e for e in self.resumes if self._valid(e[1], e[2])]
            heapq.heapify(self.resumes)
        if len(self.last) > 64 + 4 * len(self.entries):
            self.last = [e for e in self.last if self._valid(e[1], e[2])]
            heapq.heapify(self.last)

    def latest(self, now: float) -> float | None:
        """The latest moment after ``now`` at which an account stops waiting on time (a park's
        end, a retry delay, a window that opens), or None when none waits on time."""
        heap = self.last
        while heap:
            negated, name, version = heap[0]
            if -negated <= now:
                return None  # the latest has passed, so every other one has too
            if self._valid(name, version):
                return -negated
            heapq.heappop(heap)
        return None

    def soonest(self, now: float, top: int) -> tuple[tuple[float, str], ...]:
        """The ``top`` soonest resume times after ``now``: each account's first entry ahead."""
        found: list[tuple[float, str]] = []
        seen: set[str] = set()
        keep: list[tuple[float, str, int]] = []
        heap = self.resumes
        while heap and len(found) < top:
            moment, name, version = heapq.heappop(heap)
            if moment <= now or not self._valid(name, version):
                continue  # passed, or replaced: never needed again
            keep.append((moment, name, version))
            if name not in seen:
                seen.add(name)
                found.append((moment, name))
        for entry in keep:
            heapq.heappush(heap, entry)
        return tuple(found)
