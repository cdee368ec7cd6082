"""The sandbox's sense of time: one injectable clock drives every window, reset, expiry and nonce.

Tests jump a `ManualClock` or an `OffsetClock` forward instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "OffsetClock", "SystemClock"]


class Clock(Protocol):
    """Anything that tells the current time in epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


class OffsetClock:
    """The wall clock shifted by an offset that only grows: time flows, and tests can jump ahead.

    >>> clock = OffsetClock()
    >>> before = clock.now()
    >>> clock.advance(900)
    >>> clock.now() - before >= 900
    True
    """

    def __init__(self) -> None:
        #: seconds added to the wall clock
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock never goes backwards")
        self.offset += seconds


class ManualClock:
    """A clock that stands still until told to move; for pure unit tests."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock never goes backwards")
        self._now += seconds
