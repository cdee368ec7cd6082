"""Rate budgets per (account, endpoint): a log of our own requests, sharpened by headers.

**Before any header** a :class:`BudgetWindow` is a sliding log: a request counts from its send until
``period`` seconds after its response arrived (in flight, it counts). The server processed it
somewhere between our send and our receipt of the answer, so on our own clock whatever server
window counted it ended no later than ``response time + period``. That is safe against a fixed
window starting at the first request (what X does, docs/api.md §4.1), a fixed window aligned
anywhere, and a sliding window, with no clock synchronisation.

**Once headers arrive** they tell the truth about the server's current window (X's windows are
fixed and start at the first request). Responses that report the same ``x-rate-limit-reset``
were counted in the same server window, which started no later than the first of those
responses arrived; so the whole group stops counting at ``first response + period``, all at
once, as the server's window does. A log alone would free the slots one by one and drift a
round trip per request per window. Also:

- ``limit - remaining`` larger than the group (another client shares the account, or the
  window opened before this run): the group counts as the server says;
- a reset that disagrees with ``first response + period`` by more than the reset's rounding
  and clock skew (the ``--window`` model is wrong, or the window opened earlier): the group
  counts until the reset plus :attr:`Margins.reset` instead;
- ``x-rate-limit-limit`` replaces the model's limit, but never lowers it below a tenth of it
  (`bulkrt.core.limit_evidence.learned_limit`); 24-hour headers become windows of their own (per
  user, per app) that work the same way. Only answers that can only come from the API's rate
  limiter reach a window (`bulkrt.core.limit_evidence.teachable`): never a 5xx's headers.

**Margins.** ``x-rate-limit-reset`` is whole epoch seconds (the sandbox rounds up; X may round
either way) on the server's clock, so a wait taken from it adds :attr:`Margins.reset`:
:attr:`Margins.rounding` (1 s) plus :attr:`Margins.skew` (default 1 s; 0 is right when the
sandbox runs on this host). A reset that lies in the past by more than that, or further ahead
than a window can reset (`bulkrt.core.ratelimits.reset_horizon`: two windows, at least 30
minutes, the API's clock ahead of this one, say), is flagged as suspected clock skew and not
trusted: the answer counts for one window from its arrival instead, not until that reset. The
causal bound needs no margin.
Windows shorter than a second are not supported (two windows could share a reset).

``now`` is epoch seconds on the same scale as ``x-rate-limit-reset`` (the shell passes
``time.time()``; tests pass a fake clock).
"""

from __future__ import annotations

import bisect
import heapq
import math
from array import array
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from bulkrt.core.items import Action, draft_class
from bulkrt.core.limit_evidence import learned_limit
from bulkrt.core.ratelimits import (
    WINDOW_HORIZON_FLOOR,
    LimitReading,
    RateLimitSnapshot,
    reset_horizon,
)
from bulkrt.core.tiers import CapScope, LimitModel

__all__ = [
    "APP",
    "APP_DAY",
    "DAY",
    "USER_DAY",
    "BudgetKey",
    "Limiter",
    "Margins",
    "Permit",
    "BudgetWindow",
    "WindowLimiter",
    "new_permit",
    "permit_draft",
]

#: the owner of app-wide budgets in a :data:`BudgetKey`
APP = ""
#: budget names of the 24-hour windows learnt from headers
USER_DAY = "user-24h"
APP_DAY = "app-24h"
DAY = 86_400.0

#: ``(owner, name)``: owner is an account name or :data:`APP`; name is an endpoint
#: (``retweet``/``undo``), a hidden cap, or a 24-hour window
BudgetKey: TypeAlias = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Margins:
    """Safety margins around what the server's clock says."""

    #: ``x-rate-limit-reset`` is whole seconds, so the true reset may be up to 1 s later
    rounding: float = 1.0
    #: how far our clock may disagree with X's
    skew: float = 1.0
    #: a 429's reset further ahead than this (seconds) is clamped and flagged (an answer's
    #: reset further ahead than `reset_horizon` is counted as one window from now instead)
    horizon: float = DAY + 3600.0

    @property
    def reset(self) -> float:
        """Added to every wait taken from ``x-rate-limit-reset``."""
        return self.rounding + self.skew


@dataclass(slots=True)
class _Group:
    """Our answered requests that the server counted in one window (one reported reset)."""

    #: when the server's window is over on our clock, at the latest
    expires: float
    #: our responses that reported this reset
    ours: int = 0
    #: ``limit - remaining`` at its highest
    server_used: int = 0

    @property
    def weight(self) -> int:
        return max(self.ours, self.server_used)


class BudgetWindow:
    """One rate budget: at most ``limit`` requests counted at once over ``period`` seconds.

    >>> w = BudgetWindow(limit=2, period=10.0)
    >>> w.acquire(0.0); w.acquire(0.0); w.ready_at(0.0) is None   # both in flight
    True
    >>> _ = w.release(1.0); _ = w.release(1.5); w.ready_at(2.0)     # no headers: a sliding log
    11.0
    """

    __slots__ = (
        "_blocked_until",
        "_groups",
        "_groups_end",
        "_groups_weight",
        "_loose",
        "in_flight",
        "key",
        "limit",
        "margins",
        "model_limit",
        "period",
        "sweep_at",
    )

    def __init__(self, limit: int, period: float, margins: Margins | None = None) -> None:
        #: the most requests counted at once (the model's, until a header says otherwise)
        self.limit = limit
        #: the model's limit, which a header's may move from only so far (`learned_limit`)
        self.model_limit = limit
        #: seconds a request stays counted after its response, without better knowledge
        self.period = period
        self.margins = margins or Margins()
        #: requests sent and not answered yet
        self.in_flight = 0
        # ascending expiries of answered requests that no usable header placed in a window
        # (an array of doubles: 8 bytes an entry)
        self._loose = array("d")
        # server windows by reported reset (None until a header reports one), with the sum of
        # their weights and the earliest of their expiries kept as they change: a request's
        # look at the window costs the same however many windows it holds
        self._groups: dict[float, _Group] | None = None
        self._groups_weight = 0
        self._groups_end = math.inf
        self._blocked_until = 0.0
        #: the budget this window counts, when a `WindowLimiter` holds it
        self.key: BudgetKey | None = None
        #: when the holding `WindowLimiter` looks again whether the window is idle (0: never)
        self.sweep_at = 0.0

    def __repr__(self) -> str:
        return (
            f"BudgetWindow(limit={self.limit}, period={self.period}, in_flight={self.in_flight}, "
            f"loose={len(self._loose)}, groups={len(self._groups or ())}, "
            f"blocked_until={self._blocked_until})"
        )

    def _prune(self, now: float) -> None:
        cut = bisect.bisect_right(self._loose, now)
        if cut:
            del self._loose[:cut]
        groups = self._groups
        if groups and self._groups_end <= now:
            for reset in [r for r, g in groups.items() if g.expires <= now]:
                self._groups_weight -= groups.pop(reset).weight
            self._groups_end = min((g.expires for g in groups.values()), default=math.inf)

    def counted(self, now: float) -> int:
        """Requests that count against the window at ``now``, in flight included."""
        self._prune(now)
        return len(self._loose) + self._groups_weight + self.in_flight

    def idle(self, now: float) -> bool:
        """Whether the window holds nothing a fresh one would not: nothing counted or in flight,
        no block, and the model's limit (a limit learnt from a header is kept)."""
        return (
            not self.counted(now) and self._blocked_until <= now and self.limit == self.model_limit
        )

    def horizon(self) -> float:
        """When everything the window counts now (answered requests, a block) has passed."""
        loose = self._loose[-1] if self._loose else 0.0
        if not self._groups:
            return max(self._blocked_until, loose)
        return max([self._blocked_until, loose, *(g.expires for g in self._groups.values())])

    def ready_at(self, now: float) -> float | None:
        """When a request may go: ``now`` or later, or None until a response frees a slot."""
        loose = self._loose
        if (loose and loose[0] <= now) or self._groups_end <= now:  # else nothing to drop
            self._prune(now)
        free = self.limit - self.in_flight
        if free <= 0:
            return None
        at = max(now, self._blocked_until)
        if not self._groups:  # a plain sliding log: the expiry that frees enough room
            over = len(self._loose) - free
            return at if over < 0 else max(at, self._loose[over])
        if len(loose) + self._groups_weight < free:  # room now: no expiry to wait for
            return at
        entries = [(expiry, 1) for expiry in self._loose]
        entries += [(g.expires, g.weight) for g in self._groups.values()]
        entries.sort()
        counted = sum(weight for _, weight in entries)
        for expiry, weight in entries:
            if counted < free:
                break
            counted -= weight
            at = max(at, expiry)
        return at

    def acquire(self, now: float) -> None:
        """Count a request sent at ``now``."""
        self.in_flight += 1

    def release(self, now: float, reading: LimitReading | None = None) -> bool:
        """The request ended at ``now`` with these headers (None: no response, or a budget no
        header reports). Returns True when the reset suggests clock skew."""
        self.in_flight = max(0, self.in_flight - 1)
        if reading is None:  # the common case: no header, one more entry in the log
            loose = self._loose
            expiry = now + self.period
            if not loose or loose[-1] <= expiry:
                loose.append(expiry)
            else:
                bisect.insort(loose, expiry)
            return False
        return self._count(now, reading, ours=1)

    def observe(self, now: float, reading: LimitReading) -> bool:
        """Learn from headers about a window we did not count this request in (a 24-hour
        window first seen now). Returns True when the reset suggests clock skew."""
        return self._count(now, reading, ours=0)

    def _count(self, now: float, reading: LimitReading | None, ours: int) -> bool:
        if reading is not None and reading.limit is not None and reading.limit >= 1:
            self.limit = learned_limit(self.model_limit, reading.limit)
        if reading is None or reading.remaining is None or reading.reset is None:
            self._loose_entries(now, ours)
            return False
        reset, skewed = reading.reset, False
        if reset < now - self.margins.reset:
            self._loose_entries(now, ours)  # a reset in the past tells nothing we can use
            return True
        if reset > now + WINDOW_HORIZON_FLOOR and reset > now + reset_horizon(self.period):
            skewed = True  # another clock's (`reset_horizon`): counted one window from now
        if self._groups is None:
            self._groups = {}
        group = self._groups.get(reset)
        if group is None:
            expires = now + self.period if skewed else self._expiry(now, reset)
            group = self._groups[reset] = _Group(expires)
            self._groups_end = min(self._groups_end, expires)
        weight = group.weight
        group.ours += ours
        reported = reading.limit if reading.limit is not None else self.limit
        group.server_used = max(group.server_used, reported - reading.remaining)
        self._groups_weight += group.weight - weight
        return skewed

    def _loose_entries(self, now: float, count: int) -> None:
        for _ in range(count):
            bisect.insort(self._loose, now + self.period)

    def _expiry(self, now: float, reset: float) -> float:
        """When a server window first heard of at ``now``, reporting ``reset``, is over."""
        causal = now + self.period
        if abs(reset - causal) <= self.margins.reset:
            return causal  # the header confirms our model; our bound is the sharper one
        return reset + self.margins.reset

    def block(self, until: float) -> None:
        """Send nothing before ``until`` (a 429's reset, already padded)."""
        self._blocked_until = max(self._blocked_until, until)

    def padded_reset(self, now: float, reset: float | None) -> tuple[float, bool]:
        """The time to wait for after a 429 that named ``reset``, and whether skew is suspected.

        A reset in the past (or missing) still waits :attr:`Margins.reset` seconds, so a wrong
        header cannot drive a tight loop of 429s.
        """
        if reset is None:
            return now + self.margins.reset, False
        skewed = not (now - self.margins.reset <= reset <= now + self.margins.horizon)
        clamped = min(max(reset, now), now + self.margins.horizon)
        return clamped + self.margins.reset, skewed


@dataclass(frozen=True, slots=True)
class Permit:
    """The budgets one request was counted against; hand it back when the request ends."""

    account: str
    action: Action
    keys: tuple[BudgetKey, ...]


_PermitDraft = draft_class(Permit)
#: an empty draft of a `Permit`, for a loop that builds permits inline (see `new_permit`)
permit_draft: Any = _PermitDraft


def new_permit(account: str, action: Action, keys: tuple[BudgetKey, ...]) -> Permit:
    """``Permit(account, action, keys)``, built faster (`bulkrt.core.items.draft_class`)."""
    draft = _PermitDraft()
    draft.account = account
    draft.action = action
    draft.keys = keys
    draft.__class__ = Permit
    permit: Permit = draft
    return permit


class Limiter(Protocol):
    """Where the scheduler asks whether a request may go, and reports how it went.

    The in-memory :class:`WindowLimiter` implements it. The calls are synchronous because the
    scheduler is pure; a Redis-backed version (shared by several machines) keeps the same
    calls over a local view and reconciles with the shared keys in the async shell (an atomic
    check-and-count before each send that may veto it, and the ``settle`` data pushed after).
    """

    def ready_at(self, account: str, action: Action, now: float) -> float | None:
        """When a request of ``action`` for ``account`` may go (None: after a response)."""
        ...

    def acquire(self, account: str, action: Action, now: float) -> Permit:
        """Count a request that goes now; only after ``ready_at`` returned ``<= now``."""
        ...

    def settle(self, permit: Permit, now: float, limits: RateLimitSnapshot) -> bool:
        """The request ended at ``now`` with these headers; True when clock skew is suspected."""
        ...

    def cancel(self, permit: Permit, now: float) -> None:
        """The request never left (no byte was sent): it counts against nothing."""
        ...

    def block(
        self, account: str, action: Action, now: float, reset: float | None
    ) -> tuple[float, bool]:
        """After a 429 naming ``reset``: block the endpoint; until when, and whether skewed."""
        ...


class WindowLimiter:
    """The in-memory :class:`Limiter`: one :class:`BudgetWindow` per budget, created on first use
    and dropped once it is idle again (everything it counted has passed, `BudgetWindow.idle`):
    a fresh window would answer the same, so memory follows the budgets in use, not every
    account ever served.

    >>> from bulkrt.core.tiers import limit_model
    >>> limiter = WindowLimiter(limit_model("basic", limit=1, window=3))
    >>> permit = limiter.acquire("acme", Action.RETWEET, 0.0)
    >>> limiter.settle(permit, 0.2, RateLimitSnapshot())
    False
    >>> limiter.ready_at("acme", Action.RETWEET, 1.0), limiter.ready_at("acme", Action.UNDO, 1.0)
    (3.2, 1.0)
    """

    def __init__(self, model: LimitModel, margins: Margins | None = None) -> None:
        self.model = model
        self.margins = margins or Margins()
        self._windows: dict[BudgetKey, BudgetWindow] = {}
        # per action: its endpoint's window and its hidden caps as (app-wide, name, limit, period)
        self._endpoint = {action: model.window_for(action) for action in Action}
        # per action: its endpoint's budget name (``action.value``, read once: it is hot)
        self._names = {action: action.value for action in Action}
        self._caps = {
            action: tuple(
                (cap.scope is CapScope.APP, cap.name, cap.window.limit, cap.window.period)
                for cap in model.caps_for(action)
            )
            for action in Action
        }
        # whether any 24-hour window was ever learnt (until then no request looks for one)
        self._days = False
        # (when, key): look then whether the window of key is idle; one entry per window
        self._sweeps: list[tuple[float, BudgetKey]] = []

    def window(self, key: BudgetKey) -> BudgetWindow | None:
        """The window of ``key``, if one exists yet (for tests and progress display)."""
        return self._windows.get(key)

    def slowdown(self) -> float:
        """How many times slower than the model the limits learned from headers make sending:
        the largest ``model_limit / limit`` over the windows (1.0 while none is lower)."""
        return max((w.model_limit / w.limit for w in self._windows.values()), default=1.0)

    def _keys(self, account: str, action: Action) -> tuple[BudgetKey, ...]:
        endpoint: BudgetKey = (account, self._names[action])
        if endpoint not in self._windows:
            window = self._endpoint[action]
            self._ensure(endpoint, window.limit, window.period)
        caps = self._caps[action]
        if not caps and not self._days:
            return (endpoint,)
        keys: list[BudgetKey] = [endpoint]
        for app_wide, name, limit, period in caps:
            key = (APP if app_wide else account, name)
            keys.append(key)
            self._ensure(key, limit, period)
        if self._days:
            keys += [k for k in ((account, USER_DAY), (APP, APP_DAY)) if k in self._windows]
        return tuple(keys)

    def _ensure(self, key: BudgetKey, limit: int, period: float) -> BudgetWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = BudgetWindow(limit, period, self.margins)
            window.key = key
            if key[1] in (USER_DAY, APP_DAY):
                self._days = True
        return window

    def _schedule(self, window: BudgetWindow, now: float) -> None:
        """Look again at ``window`` once what it counts now has passed (if not booked yet; a
        window that has nothing left to pass yet is not idle keeps what it learnt)."""
        if not window.sweep_at and window.key is not None and (at := window.horizon()) > now:
            window.sweep_at = at
            heapq.heappush(self._sweeps, (at, window.key))

    def _sweep(self, now: float) -> None:
        """Drop the windows that are idle at ``now``; book a later look at the others."""
        sweeps = self._sweeps
        while sweeps and sweeps[0][0] <= now:
            when, key = heapq.heappop(sweeps)
            window = self._windows.get(key)
            if window is None or window.sweep_at != when:
                continue
            window.sweep_at = 0.0
            if window.idle(now):
                del self._windows[key]
            elif not window.in_flight:  # one in flight books its look when it settles
                self._schedule(window, now)

    def _alone(self, account: str, action: Action) -> BudgetWindow | None:
        """The endpoint's window (created if need be) when it is the only budget ``action``
        counts against (no hidden cap, no 24-hour window learnt): the common case, kept short."""
        if self._caps[action] or self._days:
            return None
        key = (account, self._names[action])
        window = self._windows.get(key)
        if window is None:
            endpoint = self._endpoint[action]
            window = self._ensure(key, endpoint.limit, endpoint.period)
        return window

    def ready_at(self, account: str, action: Action, now: float) -> float | None:
        if not self._days and not self._caps[action]:  # `_alone`, inline: it is hot
            alone = self._windows.get((account, self._names[action]))
            if alone is None:
                alone = self._alone(account, action)
                assert alone is not None
            return alone.ready_at(now)  # never earlier than ``now``
        at = now
        for key in self._keys(account, action):
            ready = self._windows[key].ready_at(now)
            if ready is None:
                return None
            at = max(at, ready)
        return at

    def acquire(self, account: str, action: Action, now: float) -> Permit:
        if self._sweeps and self._sweeps[0][0] <= now:
            self._sweep(now)
        if not self._days and not self._caps[action]:  # `_alone`, inline: it is hot
            alone = self._windows.get((account, self._names[action]))
            if alone is None:
                alone = self._alone(account, action)
        else:
            alone = None
        if alone is not None:
            alone.in_flight += 1  # `BudgetWindow.acquire`, inline
            return new_permit(account, action, (alone.key or (account, self._names[action]),))
        keys = self._keys(account, action)
        for key in keys:
            self._windows[key].acquire(now)
        return new_permit(account, action, keys)

    def cancel(self, permit: Permit, now: float) -> None:
        for key in permit.keys:
            window = self._windows[key]
            window.in_flight = max(0, window.in_flight - 1)
            self._schedule(window, now)
        self._sweep(now)

    def settle(self, permit: Permit, now: float, limits: RateLimitSnapshot) -> bool:
        if limits.window is None and limits.user_day is None and limits.app_day is None:
            for key in permit.keys:  # the common case: no header to learn from
                window = self._windows[key]
                window.release(now)  # one more entry in the log
                if not window.sweep_at:
                    self._schedule(window, now)
            if self._sweeps and self._sweeps[0][0] <= now:
                self._sweep(now)
            return False
        readings = {
            (permit.account, permit.action.value): limits.window,
            (permit.account, USER_DAY): limits.user_day,
            (APP, APP_DAY): limits.app_day,
        }
        skewed = False
        for key in permit.keys:
            window = self._windows[key]
            skewed = window.release(now, readings.pop(key, None)) or skewed
            self._schedule(window, now)
        for key, reading in readings.items():  # 24-hour windows this request was not counted in
            if reading is None or reading.limit is None or reading.limit < 1:
                continue
            window = self._windows.get(key) or self._ensure(key, reading.limit, DAY)
            skewed = window.observe(now, reading) or skewed
            self._schedule(window, now)
        self._sweep(now)
        return skewed

    def block(
        self, account: str, action: Action, now: float, reset: float | None
    ) -> tuple[float, bool]:
        endpoint = self._endpoint[action]
        window = self._ensure((account, action.value), endpoint.limit, endpoint.period)
        until, skewed = window.padded_reset(now, reset)
        window.block(until)
        self._schedule(window, now)
        return until, skewed
