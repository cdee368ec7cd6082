"""A virtual clock for one simulated run: an asyncio loop whose time jumps to the next timer
whenever every task waits (the `looptime` library), read as epoch seconds from a fixed start.

Run anyio on it through the asyncio backend's ``loop_factory``::

    clock = VirtualClock(start=1_800_000_000.0)
    anyio.run(main, backend="asyncio", backend_options={"loop_factory": clock.new_loop})
    clock.now()   # epoch seconds, virtual: 1_800_000_000.0 plus the loop's time
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import Context

import looptime

__all__ = ["RESOLUTION", "VirtualClock", "virtual_loop"]

#: the virtual clock's tick: asyncio's clock resolution on Linux
RESOLUTION = 1e-9


def virtual_loop() -> asyncio.AbstractEventLoop:
    """A new event loop in virtual time, starting at 0.

    ``noop_cycles=1``: no I/O and no threads ever wake it, so the time may move as soon as
    nothing is ready to run (looptime's default waits 42 idle passes for I/O). And no timer is
    due at or before the moment it is set: each is set at least one tick ahead. On a real clock
    time passes while a callback re-arms itself "now"; here it would not, and a callback that
    waits for time to pass before it can make progress (aiolimiter's, when a float rounding
    leaves its bucket a hair too full) would re-arm itself at the same instant for ever.

    >>> import asyncio
    >>> loop = virtual_loop()
    >>> loop.run_until_complete(asyncio.sleep(3600)); loop.time()
    3600.0
    >>> loop.close()
    """
    loop = looptime.new_event_loop(start=0.0, noop_cycles=1, resolution=RESOLUTION)
    at = loop.call_at

    def call_at(
        when: float, callback: Callable[..., object], *args: object, context: Context | None = None
    ) -> asyncio.TimerHandle:
        return at(max(when, loop.time() + RESOLUTION), callback, *args, context=context)

    loop.call_at = call_at  # type: ignore[method-assign]
    return loop


class VirtualClock:
    """Epoch seconds on a virtual-time event loop; one clock per run (one loop).

    >>> import anyio
    >>> clock = VirtualClock(start=1_000.0)
    >>> anyio.run(anyio.sleep, 900, backend="asyncio",
    ...           backend_options={"loop_factory": clock.new_loop})
    >>> clock.now()
    1900.0
    """

    def __init__(self, start: float) -> None:
        self.start = start
        self._loop: asyncio.AbstractEventLoop | None = None

    def new_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the run (anyio's ``loop_factory``); its time starts at 0."""
        if self._loop is not None:
            raise RuntimeError("a VirtualClock drives one loop; make a new clock per run")
        self._loop = virtual_loop()
        return self._loop

    def now(self) -> float:
        """Epoch seconds: the start plus the loop's virtual time (the start before the loop)."""
        return self.start + (self._loop.time() if self._loop is not None else 0.0)
