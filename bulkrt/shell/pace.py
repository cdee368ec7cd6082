"""``--max-rps``: turns at most R per second, shared by every task that asks, cut short by a stop.

The dispatcher takes a turn before each request it sends. A worker of the multi-machine mode
runs its leased accounts in sessions, each with a dispatcher of its own; a limiter per
dispatcher would let a worker holding k sessions send k x R requests per second. So there the
sessions' dispatchers get no ``--max-rps`` of their own, and every `LeasedSender` of the worker
takes its turn from one `Pace` before it takes a place in the shared budget (taken after the
turn, the budget's log records the request when it leaves, not before a wait). The limiter is a
bucket of one, refilled every 1/R s, so no one-second span sees more than R turns. A request
still waiting for its turn when the run or the worker stops is not sent.

Between the turn and the request's departure the worker's budget makes a round trip to Redis,
whose time varies: two turns 1/R apart could leave closer together. So a `LeasedSender` also
waits, just before the request leaves, until 1/R after the previous departure (`departure`): a
wait no longer than that round trip's variation, since the turns already space them.

    pace = Pace(2.0)
    if await pace.turn():   # False: the worker stopped meanwhile; do not send
        ...                 # the shared budget
        await pace.departure()
        ...                 # the request leaves
    pace.stop()
"""

from __future__ import annotations

import time

import anyio
from aiolimiter import AsyncLimiter

__all__ = ["Pace"]


class Pace:
    """Turns at most ``rps`` per second, shared by every task that asks, until `stop`."""

    def __init__(self, rps: float) -> None:
        self.rps = rps
        # a bucket of one, refilled every 1/R s: no burst, so no 1 s span sees more than R
        self._limiter = AsyncLimiter(1, 1.0 / rps)
        self._waits: set[anyio.CancelScope] = set()
        #: when (monotonic) the latest departure was given
        self._departed = -float("inf")
        self.stopped = False

    async def turn(self) -> bool:
        """Wait for the next turn; False when `stop` came first (the request must not go)."""
        if not self.stopped:
            with anyio.CancelScope() as wait:
                self._waits.add(wait)
                try:
                    await self._limiter.acquire()
                finally:
                    self._waits.discard(wait)
        return not self.stopped

    async def departure(self) -> None:
        """Wait until 1/R after the previous departure (taken turns come 1/R apart, so this wait
        is short), and take this one."""
        now = time.monotonic()
        at = max(now, self._departed + 1.0 / self.rps)
        self._departed = at
        await anyio.sleep(at - now)

    def stop(self) -> None:
        """End every wait at once, and every later one: no turn is given any more."""
        self.stopped = True
        for wait in self._waits:
            wait.cancel()
