"""Rate-limit headers of an X API response, read into a frozen snapshot.

Every response carries ``x-rate-limit-limit/remaining/reset`` for the per-user, per-endpoint
window; some also carry ``x-user-limit-24hour-*`` and ``x-app-limit-24hour-*`` (docs/api.md §4.2).
Values that are missing or not numbers read as ``None``; nothing here raises. The ``Date``
header is kept as it came (read only when a reset does not fit this machine's clock, to tell the
operator whether the clocks differ).

A reset lies at most two windows ahead (at least 30 minutes; a 24-hour limit's a day and an
hour): further ahead, it comes from a clock other than this machine's (the API's clock ahead, a
wrong header), and is not waited for in full (`reset_horizon`, `implausible_reset`).

>>> snap = parse_rate_limits({"X-Rate-Limit-Limit": "50", "x-rate-limit-remaining": "0",
...                           "x-rate-limit-reset": "1671196077"})
>>> snap.window.remaining, snap.exhausted_until()
(0, 1671196077.0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "CLOCK_TOLERANCE",
    "DAY_HORIZON",
    "WINDOW_HORIZON_FLOOR",
    "LimitReading",
    "RateLimitSnapshot",
    "clock_note",
    "implausible_reset",
    "parse_rate_limits",
    "reset_horizon",
    "untrusted_reset",
]

#: the furthest a 24-hour limit's reset may lie ahead (a day, plus an hour for clocks)
DAY_HORIZON = 86_400.0 + 3600.0
#: a window's reset lies at most two of its periods ahead, and never less than this (seconds)
WINDOW_HORIZON_FLOOR = 1800.0
#: a ``Date`` header this close to this machine's clock (seconds) agrees with it (the header
#: is whole seconds, and the answer took time to come)
CLOCK_TOLERANCE = 5.0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: an HTTP date (RFC 9110 §5.6.7, IMF-fixdate): ``Fri, 04 Dec 2026 09:13:45 GMT``
_HTTP_DATE = re.compile(
    r"(?:[A-Za-z]{3}, )?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT"
)

_WINDOW = "x-rate-limit"
_USER_DAY = "x-user-limit-24hour"
_APP_DAY = "x-app-limit-24hour"


@dataclass(frozen=True, slots=True)
class LimitReading:
    """One limit as the server reported it; any field may be unknown."""

    #: the ceiling of the window
    limit: int | None = None
    #: requests left in the window when the server answered
    remaining: int | None = None
    #: absolute epoch seconds at which the window resets (server clock)
    reset: float | None = None

    @property
    def exhausted(self) -> bool:
        """True when the server said no request is left in this window."""
        return self.remaining == 0


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """The rate-limit headers of one response."""

    #: the 15-minute (or ``--window``) per-user, per-endpoint window
    window: LimitReading | None = None
    #: ``x-user-limit-24hour-*``, when present
    user_day: LimitReading | None = None
    #: ``x-app-limit-24hour-*``, when present
    app_day: LimitReading | None = None
    #: the ``Date`` header as it came (the server's clock), when present
    date: str | None = None

    def readings(self) -> Iterable[LimitReading]:
        """The readings that are present, window first."""
        return (r for r in (self.window, self.user_day, self.app_day) if r is not None)

    def exhausted_until(self) -> float | None:
        """The latest reset among readings with nothing remaining (docs/api.md §6.5), or None."""
        resets = [r.reset for r in self.readings() if r.exhausted and r.reset is not None]
        return max(resets) if resets else None

    def server_clock(self) -> float | None:
        """The ``Date`` header as epoch seconds (the server's clock when it answered), or None
        when absent or unreadable.

        >>> RateLimitSnapshot(date="Fri, 04 Dec 2026 09:13:45 GMT").server_clock()
        1796375625.0
        """
        match = _HTTP_DATE.fullmatch(self.date.strip()) if self.date else None
        if match is None or match[2].title() not in _MONTHS:
            return None
        day, month, year = int(match[1]), _MONTHS.index(match[2].title()) + 1, int(match[3])
        try:
            moment = datetime(year, month, day, int(match[4]), int(match[5]), int(match[6]))
        except ValueError:
            return None
        return moment.replace(tzinfo=UTC).timestamp()


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)  # `int` itself skips the whitespace around the digits
    except ValueError:
        return None
    return number if number >= 0 else None


def _epoch(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # likewise
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


#: each reading's three header names, in lower case: limit, remaining, reset
_NAMES = {
    prefix: (f"{prefix}-limit", f"{prefix}-remaining", f"{prefix}-reset")
    for prefix in (_WINDOW, _USER_DAY, _APP_DAY)
}


def _reading(get: Callable[[str], str | None], prefix: str) -> LimitReading | None:
    limit_name, remaining_name, reset_name = _NAMES[prefix]
    limit, remaining, reset = get(limit_name), get(remaining_name), get(reset_name)
    if limit is None and remaining is None and reset is None:
        return None
    return LimitReading(limit=_int(limit), remaining=_int(remaining), reset=_epoch(reset))


def parse_rate_limits(headers: Mapping[str, str], *, lower: bool = False) -> RateLimitSnapshot:
    """Read the rate-limit headers of a response; header names match case-insensitively.

    With ``lower``, ``headers`` answers to lower-case names already (its names are lower case,
    or its look-ups ignore case, as aiohttp's do) and is read as it is: a dozen look-ups instead
    of a lower-cased copy of every header of every response."""
    if not lower:
        headers = {str(name).lower(): str(value) for name, value in headers.items()}
    get = headers.get
    return RateLimitSnapshot(
        window=_reading(get, _WINDOW),
        user_day=_reading(get, _USER_DAY),
        app_day=_reading(get, _APP_DAY),
        date=get("date"),
    )


def reset_horizon(period: float) -> float:
    """How far ahead (seconds) a window of ``period`` seconds may plausibly reset: two
    periods, at least 30 minutes; a 24-hour window a day and an hour (`DAY_HORIZON`).

    >>> reset_horizon(2.0), reset_horizon(900.0), reset_horizon(86_400.0)
    (1800.0, 1800.0, 90000.0)
    """
    if period >= 86_400.0:
        return DAY_HORIZON
    return 2 * max(period, WINDOW_HORIZON_FLOOR / 2)


def implausible_reset(limits: RateLimitSnapshot, now: float, period: float) -> float | None:
    """The reset of a spent limit that lies implausibly far ahead of ``now``, or None.

    A window of ``period`` seconds resets within two periods (at least 30 minutes); a 24-hour
    limit within `DAY_HORIZON`. A reset beyond that (a year-2100 header, a wrong clock) is not
    worth waiting for blindly: the scheduler parks the account instead, which retries sooner and
    gives up after a few parks.

    >>> def spent(reset): return parse_rate_limits(
    ...     {"x-rate-limit-remaining": "0", "x-rate-limit-reset": reset})
    >>> implausible_reset(spent("4102444800"), now=1_800_000_000, period=900)
    4102444800.0
    >>> implausible_reset(spent("1800000600"), now=1_800_000_000, period=900) is None
    True
    """
    horizons = (
        (limits.window, now + reset_horizon(period)),
        (limits.user_day, now + DAY_HORIZON),
        (limits.app_day, now + DAY_HORIZON),
    )
    for reading, horizon in horizons:
        reset = reading.reset if reading is not None and reading.exhausted else None
        if reset is not None and reset > horizon:
            return reset
    return None


def untrusted_reset(limits: RateLimitSnapshot, now: float) -> str:
    """Why the reset of ``limits`` furthest from ``now`` (this machine's clock) was not taken as
    it is, for the operator: where it lies, and what the answer's ``Date`` header tells of the
    two clocks (ahead, behind, agreeing, or no header to tell).

    >>> ahead = parse_rate_limits({"x-rate-limit-remaining": "0",
    ...     "x-rate-limit-reset": "1796375627", "date": "Fri, 04 Dec 2026 09:13:45 GMT"})
    >>> print(untrusted_reset(ahead, now=1796367627.0))  # doctest: +NORMALIZE_WHITESPACE
    x-rate-limit-reset 2026-12-04 09:13:47Z lies 8000 s ahead of this machine's clock, beyond
    what a window takes: not waited for (counted as a window of its own instead); the
    answer's Date header is 7998 s ahead of this machine's clock: the clocks differ (check
    this machine's time synchronisation)
    """
    resets = [r.reset for r in limits.readings() if r.reset is not None]
    if not resets:
        return f"x-rate-limit-reset out of range; {clock_note(limits, now)}"
    reset = max(resets, key=lambda r: abs(r - now))
    stamp = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    where = (
        f"{reset - now:.0f} s ahead of this machine's clock, beyond what a window takes"
        if reset >= now
        else f"{now - reset:.0f} s behind this machine's clock, already past"
    )
    return (
        f"x-rate-limit-reset {stamp} lies {where}: not waited for (counted as a window of its "
        f"own instead); {clock_note(limits, now)}"
    )


def clock_note(limits: RateLimitSnapshot, now: float) -> str:
    """What the answer's ``Date`` header says of the server's clock against ``now``."""
    server = limits.server_clock()
    if server is None:
        return (
            "the API's clock may differ from this machine's (the answer has no Date header to "
            "compare)"
        )
    ahead = server - now
    if abs(ahead) <= CLOCK_TOLERANCE:
        return (
            f"the answer's Date header agrees with this machine's clock (within "
            f"{CLOCK_TOLERANCE:.0f} s): the reset itself is off, or the API's rate limiter "
            f"keeps another clock"
        )
    side = "ahead of" if ahead > 0 else "behind"
    return (
        f"the answer's Date header is {abs(ahead):.0f} s {side} this machine's clock: the "
        f"clocks differ (check this machine's time synchronisation)"
    )
