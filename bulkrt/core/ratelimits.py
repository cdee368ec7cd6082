"""Rate-limit headers of an X API response, read into a frozen snapshot.

Every response carries ``x-rate-limit-limit/remaining/reset`` for the per-user, per-endpoint
window; some also carry ``x-user-limit-24hour-*`` and ``x-app-limit-24hour-*`` (docs/api.md §4.2).
Values that are missing or not numbers read as ``None``; nothing here raises.

>>> snap = parse_rate_limits({"X-Rate-Limit-Limit": "50", "x-rate-limit-remaining": "0",
...                           "x-rate-limit-reset": "1671196077"})
>>> snap.window.remaining, snap.exhausted_until()
(0, 1671196077.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "DAY_HORIZON",
    "LimitReading",
    "RateLimitSnapshot",
    "implausible_reset",
    "parse_rate_limits",
]

#: the furthest a 24-hour limit's reset may lie ahead (a day, plus an hour for clocks)
DAY_HORIZON = 86_400.0 + 3600.0

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

    def readings(self) -> Iterable[LimitReading]:
        """The readings that are present, window first."""
        return (r for r in (self.window, self.user_day, self.app_day) if r is not None)

    def exhausted_until(self) -> float | None:
        """The latest reset among readings with nothing remaining (docs/api.md §6.5), or None."""
        resets = [r.reset for r in self.readings() if r.exhausted and r.reset is not None]
        return max(resets) if resets else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _epoch(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _reading(headers: Mapping[str, str], prefix: str) -> LimitReading | None:
    raw = [headers.get(f"{prefix}-{name}") for name in ("limit", "remaining", "reset")]
    if all(value is None for value in raw):
        return None
    return LimitReading(limit=_int(raw[0]), remaining=_int(raw[1]), reset=_epoch(raw[2]))


def parse_rate_limits(headers: Mapping[str, str]) -> RateLimitSnapshot:
    """Read the rate-limit headers of a response; header names match case-insensitively."""
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    return RateLimitSnapshot(
        window=_reading(lowered, _WINDOW),
        user_day=_reading(lowered, _USER_DAY),
        app_day=_reading(lowered, _APP_DAY),
    )


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
        (limits.window, now + 2 * max(period, 900.0)),
        (limits.user_day, now + DAY_HORIZON),
        (limits.app_day, now + DAY_HORIZON),
    )
    for reading, horizon in horizons:
        reset = reading.reset if reading is not None and reading.exhausted else None
        if reset is not None and reset > horizon:
            return reset
    return None
