"""How a wait is told to the operator: when (with the date, unless it is today), why, and whether
it is long enough to warn about.

A scheduler `AccountEvent` says an account waits (a spent window, a park, suspected clock skew); the
dispatcher logs it at INFO, or at WARNING when the wait is longer than `LONG_WAIT` seconds, so
a run that stalls for a long time says so on a terminal and in logs alike.

>>> from datetime import datetime
>>> now = datetime(2026, 12, 3, 10, 0).timestamp()
>>> when(now + 60, now)
'10:01:00'
>>> when(now + 86_400, now)
'2026-12-04 10:00:00'
"""

from __future__ import annotations

from datetime import datetime

from bulkrt.core.scheduler import AccountEvent, EventKind

__all__ = ["LONG_WAIT", "is_long", "reason", "when"]

#: a wait longer than this (seconds) is logged at WARNING
LONG_WAIT = 300.0

_REASONS = {
    EventKind.RATE_LIMITED: "its rate-limit window is spent (a 429); waiting for the reset",
    EventKind.PARKED: "a 429 its headers do not explain; parked",
    EventKind.GAVE_UP: "given up after repeated unexplained 429s",
    EventKind.REFRESH: "refreshing its credentials after a 401",
    EventKind.PAUSED: "its credentials were refused",
    EventKind.SKEW: "a reset that does not fit the clock",
    EventKind.HELD: "its window is spent by other runs or workers sharing it; waiting",
}


def when(epoch: float, now: float) -> str:
    """``HH:MM:SS`` (local time) when ``epoch`` is today, else with the date in front."""
    moment = datetime.fromtimestamp(epoch)
    if moment.date() == datetime.fromtimestamp(now).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def reason(event: AccountEvent) -> str:
    """Why the account of ``event`` waits, for the operator."""
    text = _REASONS.get(event.kind, event.kind.value)
    return f"{text}: {event.detail}" if event.detail else text


def is_long(event: AccountEvent) -> bool:
    """Whether ``event`` makes its account wait longer than `LONG_WAIT`."""
    return event.until is not None and event.until - event.at > LONG_WAIT
