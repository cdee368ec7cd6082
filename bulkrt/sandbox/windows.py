"""Fixed rate-limit windows as the API counts them: a window opens at the first request and
admits ``limit`` requests until ``start + seconds``; the next request after that opens a new one."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

from bulkrt.sandbox.config import FixedWindow

__all__ = ["WindowCounter", "WindowView"]


@dataclass(frozen=True, slots=True)
class WindowView:
    """What a window looks like at one moment, as the response headers report it."""

    limit: int
    remaining: int
    #: absolute epoch seconds, rounded up so a client never wakes before the window really resets
    reset: int

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0


class WindowCounter:
    """Counts requests per key (user and endpoint, or app) in fixed windows.

    >>> counter = WindowCounter()
    >>> w = FixedWindow(limit=2, seconds=60)
    >>> counter.take("u", w, now=100.0).remaining, counter.take("u", w, now=101.0).remaining
    (1, 0)
    >>> counter.view("u", w, now=161.0).remaining  # the window that opened at 100 has ended
    2
    """

    __slots__ = ("_open",)

    def __init__(self) -> None:
        #: key -> (start of the open window, requests counted in it)
        self._open: dict[Hashable, tuple[float, int]] = {}

    def _current(self, key: Hashable, window: FixedWindow, now: float) -> tuple[float, int] | None:
        state = self._open.get(key)
        if state is None or now >= state[0] + window.seconds:
            return None
        return state

    def view(self, key: Hashable, window: FixedWindow, now: float) -> WindowView:
        """The window as it stands, without counting a request."""
        state = self._current(key, window, now)
        start, used = state if state is not None else (now, 0)
        return WindowView(
            window.limit, max(0, window.limit - used), math.ceil(start + window.seconds)
        )

    def take(self, key: Hashable, window: FixedWindow, now: float) -> WindowView:
        """Count one request (the caller has checked there is room) and return the new view."""
        state = self._current(key, window, now)
        start, used = state if state is not None else (now, 0)
        self._open[key] = (start, used + 1)
        return WindowView(
            window.limit, max(0, window.limit - used - 1), math.ceil(start + window.seconds)
        )
