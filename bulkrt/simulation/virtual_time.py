"""A virtual clock for one simulated run: an asyncio loop whose time jumps to the next timer
whenever every task waits (the `looptime` library), read as epoch seconds from a fixed start.

Run anyio on it through the asyncio backend's ``loop_factory``::

    clock = VirtualClock(start=1_800_000_000.0)
    anyio.run(main, backend="asyncio", backend_options={"loop_factory": clock.new_loop})
    clock.now()   # epoch seconds, virtual: 1_800_000_000.0 plus the loop's time
"""

from __future__ import annotations

import asyncio

import looptime

__all__ = ["VirtualClock"]


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
        # noop_cycles: no I/O and no threads ever wake this loop, so the time may move as soon
        # as nothing is ready to run (the library's default waits 42 idle passes for I/O).
        self._loop = looptime.new_event_loop(start=0.0, noop_cycles=1)
        return self._loop

    def now(self) -> float:
        """Epoch seconds: the start plus the loop's virtual time (the start before the loop)."""
        return self.start + (self._loop.time() if self._loop is not None else 0.0)
