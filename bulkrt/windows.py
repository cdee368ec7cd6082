"""Rate budgets per (account, endpoint): a log of our own requests, corrected by headers.

**The model.** A :class:`Window` allows a request when fewer than ``limit`` of our requests
are counted in the trailing ``period``. Each request is counted from the moment it is sent
until ``period`` seconds after its response arrived (a request still in flight counts). The
server processed a request somewhere between our send and our receipt of its answer, so on
our own clock its server-side window ended no later than ``response time + period``. This
makes the log safe against a fixed window starting at the first request (what X does,
SPEC §4.1), a fixed window aligned anywhere, and a sliding window, with no clock
synchronisation at all: the only cost is one round trip per window.

**Headers correct it.** Every response's ``x-rate-limit-*`` says what the server counted:

- more used than our log holds (another client shares the account, or a window opened
  before this run): phantom entries fill the difference until the reported reset;
- ``remaining == 0`` with a reset later than our log would free a slot (the server's window
  is longer than the ``--window`` model): the window is blocked until that reset;
- ``x-rate-limit-limit`` replaces the model's limit;
- 24-hour headers become windows of their own (per user, per app) the same way.

**Margins.** ``x-rate-limit-reset`` is whole epoch seconds (the sandbox rounds up, X may round
either way) on the server's clock, so every wait derived from it adds
:attr:`Margins.reset` (default 2 s: 1 s of rounding plus 1 s of clock skew). A reset
that lies in the past by more than that margin, or absurdly far ahead, is flagged as
suspected clock skew and clamped. The log itself needs no margin.

``now`` is epoch seconds on the same scale as ``x-rate-limit-reset`` (the shell passes
``time.time()``; tests pass a fake clock).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from bulkrt.items import Action
from bulkrt.ratelimits import LimitReading, RateLimitSnapshot
from bulkrt.tiers import CapScope, LimitModel

__all__ = [
    "APP",
    "APP_DAY",
    "DAY",
    "USER_DAY",
    "BudgetKey",
    "Limiter",
    "Margins",
    "Permit",
    "Window",
    "WindowLimiter",
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

    #: added to every ``x-rate-limit-reset``: whole-second rounding plus clock skew
    reset: float = 2.0
    #: a reset further ahead than this (seconds) is clamped and flagged
    horizon: float = DAY + 3600.0


class Window:
    """One rate budget: at most ``limit`` requests counted in any trailing ``period``.

    >>> w = Window(limit=2, period=10.0)
    >>> w.acquire(0.0); w.acquire(0.0); w.ready_at(0.0) is None   # both in flight
    True
    >>> w.release(1.0); w.release(1.5); w.ready_at(2.0)
    11.0
    """

    __slots__ = ("_blocked_until", "_expiries", "in_flight", "limit", "margins", "period")

    def __init__(self, limit: int, period: float, margins: Margins | None = None) -> None:
        #: the most requests counted at once (the model's, until a header says otherwise)
        self.limit = limit
        #: seconds a request stays counted after its response
        self.period = period
        self.margins = margins or Margins()
        #: requests sent and not answered yet
        self.in_flight = 0
        # ascending times at which answered (or phantom) requests stop counting
        self._expiries: list[float] = []
        self._blocked_until = 0.0

    def __repr__(self) -> str:
        return (
            f"Window(limit={self.limit}, period={self.period}, in_flight={self.in_flight}, "
            f"counted={len(self._expiries)}, blocked_until={self._blocked_until})"
        )

    def _prune(self, now: float) -> None:
        cut = bisect.bisect_right(self._expiries, now)
        if cut:
            del self._expiries[:cut]

    def counted(self, now: float) -> int:
        """Requests that count against the window at ``now``, in flight included."""
        self._prune(now)
        return len(self._expiries) + self.in_flight

    def ready_at(self, now: float) -> float | None:
        """When a request may go: ``now`` or later, or None until a response frees a slot."""
        self._prune(now)
        free = self.limit - self.in_flight
        if free <= 0:
            return None
        at = max(now, self._blocked_until)
        excess = len(self._expiries) - free
        if excess >= 0:
            at = max(at, self._expiries[excess])
        return at

    def acquire(self, now: float) -> None:
        """Count a request sent at ``now``."""
        self.in_flight += 1

    def release(self, now: float) -> None:
        """The answer to one request arrived (or it failed) at ``now``; it counts until
        ``now + period``."""
        self.in_flight = max(0, self.in_flight - 1)
        bisect.insort(self._expiries, now + self.period)

    def block(self, until: float) -> None:
        """Send nothing before ``until`` (a 429's reset, already padded)."""
        self._blocked_until = max(self._blocked_until, until)

    def observe(self, now: float, reading: LimitReading) -> bool:
        """Correct the window from a response's headers; True when clock skew is suspected."""
        reset, skewed = self._clamp(now, reading.reset)
        if reading.limit is not None and reading.limit >= 1:
            self.limit = reading.limit
        if reading.remaining is None:
            return skewed
        if reset is not None and reset <= now:
            return skewed  # the server's window is already over: the count is stale
        until = (reset if reset is not None else now + self.period) + self.margins.reset
        used = max(0, self.limit - reading.remaining)
        missing = used - self.counted(now)
        for _ in range(missing):
            bisect.insort(self._expiries, until)
        if reading.remaining == 0 and reset is not None:
            excess = len(self._expiries) - self.limit
            frees_at = self._expiries[excess] if excess >= 0 else now
            if reset > frees_at + self.margins.reset:
                self.block(until)  # the server's window outlasts our model of it
        return skewed

    def _clamp(self, now: float, reset: float | None) -> tuple[float | None, bool]:
        if reset is None:
            return None, False
        if reset < now - self.margins.reset:
            return reset, True
        if reset > now + self.margins.horizon:
            return now + self.margins.horizon, True
        return reset, False

    def padded_reset(self, now: float, reset: float | None) -> tuple[float, bool]:
        """The time to wait for after a 429 that named ``reset``, and whether skew is suspected.

        A reset in the past (or missing) still waits :attr:`Margins.reset` seconds, so a wrong
        header cannot drive a tight loop of 429s.
        """
        clamped, skewed = self._clamp(now, reset)
        return max(now, clamped if clamped is not None else now) + self.margins.reset, skewed


@dataclass(frozen=True, slots=True)
class Permit:
    """The budgets one request was counted against; hand it back when the request ends."""

    account: str
    action: Action
    keys: tuple[BudgetKey, ...]


class Limiter(Protocol):
    """Where the scheduler asks whether a request may go, and reports how it went.

    The in-memory :class:`WindowLimiter` implements it; a Redis-backed version (shared by
    several machines) implements the same calls over shared keys.
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

    def block(
        self, account: str, action: Action, now: float, reset: float | None
    ) -> tuple[float, bool]:
        """After a 429 naming ``reset``: block the endpoint; until when, and whether skewed."""
        ...


class WindowLimiter:
    """The in-memory :class:`Limiter`: one :class:`Window` per budget, created on first use.

    >>> from bulkrt.tiers import limit_model
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
        self._windows: dict[BudgetKey, Window] = {}

    def window(self, key: BudgetKey) -> Window | None:
        """The window of ``key``, if one exists yet (for tests and progress display)."""
        return self._windows.get(key)

    def _keys(self, account: str, action: Action) -> tuple[BudgetKey, ...]:
        keys: list[BudgetKey] = [(account, action.value)]
        for cap in self.model.caps_for(action):
            owner = APP if cap.scope is CapScope.APP else account
            keys.append((owner, cap.name))
            self._ensure((owner, cap.name), cap.window.limit, cap.window.period)
        endpoint = self.model.window_for(action)
        self._ensure(keys[0], endpoint.limit, endpoint.period)
        keys += [k for k in ((account, USER_DAY), (APP, APP_DAY)) if k in self._windows]
        return tuple(keys)

    def _ensure(self, key: BudgetKey, limit: int, period: float) -> Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = Window(limit, period, self.margins)
        return window

    def ready_at(self, account: str, action: Action, now: float) -> float | None:
        at = now
        for key in self._keys(account, action):
            ready = self._windows[key].ready_at(now)
            if ready is None:
                return None
            at = max(at, ready)
        return at

    def acquire(self, account: str, action: Action, now: float) -> Permit:
        keys = self._keys(account, action)
        for key in keys:
            self._windows[key].acquire(now)
        return Permit(account, action, keys)

    def settle(self, permit: Permit, now: float, limits: RateLimitSnapshot) -> bool:
        for key in permit.keys:
            self._windows[key].release(now)
        skewed = False
        observed = (
            ((permit.account, permit.action.value), limits.window),
            ((permit.account, USER_DAY), limits.user_day),
            ((APP, APP_DAY), limits.app_day),
        )
        for key, reading in observed:
            if reading is None:
                continue
            window = self._windows.get(key)
            if window is None:
                if reading.limit is None or reading.limit < 1:
                    continue
                window = self._ensure(key, reading.limit, DAY)
            skewed = window.observe(now, reading) or skewed
        return skewed

    def block(
        self, account: str, action: Action, now: float, reset: float | None
    ) -> tuple[float, bool]:
        window = self._windows[(account, action.value)]
        until, skewed = window.padded_reset(now, reset)
        window.block(until)
        return until, skewed
