"""Where a worker session's finished items go: not a ledger file, but each job's results stream
in Redis, from which the driving ``bulkrt run`` writes the operator's ledger.

`SharedResults` speaks the dispatcher's `bulkrt.shell.dispatcher.LedgerSink` seam. Lines are
masked of every secret the worker knows, queued, and handed to Redis by one task: each batch of
one account in one fenced Lua call (`bulkrt.fleet.store.FleetStore.complete_each`, every
account's batch in one round trip) that appends the lines and takes the items off the queue
together, so an item is either finished (its line waits in Redis for the driver) or still queued
for whoever holds the account next. A batch the fence refuses (the lease was lost) changes
nothing: the account's next holder sends it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import anyio

from bulkrt.fleet.connection import patiently
from bulkrt.fleet.store import FleetStore, Lease
from bulkrt.ledger.record import LedgerRecord
from bulkrt.ledger.writer import redacted
from bulkrt.redaction import Redactor

__all__ = ["SharedResults"]


class SharedResults:
    """The ledger sink of one worker session (see the module docstring)."""

    def __init__(
        self,
        store: FleetStore,
        leases: Mapping[str, Lease],
        jobs: Mapping[str, str],
        remaining: Mapping[str, int],
        redactor: Redactor,
        *,
        on_done: Callable[[Lease], None],
        on_lost: Callable[[Lease], None],
    ) -> None:
        self._store = store
        #: account name -> its lease
        self._leases = leases
        #: item key -> its job
        self._jobs = jobs
        #: account name -> items of it not finished yet
        self._remaining = dict(remaining)
        self._redactor = redactor
        self._on_done = on_done
        self._on_lost = on_lost
        #: (account, item key, masked line)
        self._pending: list[tuple[str, str, str]] = []
        self._kick = anyio.Event()
        # one hand-over at a time: the session's last `drain` must wait for a batch the flusher
        # has taken and not handed over yet (else that batch is cancelled with the flusher, and
        # its items, still queued, are released and sent again by the next holder)
        self._handing = anyio.Lock()
        #: lines handed to Redis and accepted
        self.lines = 0

    def write(self, record: LedgerRecord) -> None:
        masked = redacted(record, self._redactor) if self._redactor else record
        self._pending.append((record.account, record.key, masked.to_json()))

    def sync_if_due(self) -> None:
        if self._pending:
            self._kick.set()

    def sync(self) -> None:
        self._kick.set()

    async def flush_forever(self) -> None:
        """Hand queued lines to Redis as they come (cancel it after `drain`)."""
        while True:
            await self._kick.wait()
            self._kick = anyio.Event()
            await self.drain()

    async def drain(self) -> None:
        """Hand every queued line to Redis now (after any hand-over under way)."""
        async with self._handing:
            await self._hand_over()

    async def _hand_over(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            by_account: dict[str, list[tuple[str, str, str]]] = {}
            for account, key, line in batch:
                by_account.setdefault(account, []).append((self._jobs[key], key, line))
            batches = [(self._leases[account], entries) for account, entries in by_account.items()]
            accepted = await patiently(
                partial(self._store.complete_each, batches), what="handing results to Redis"
            )
            for (account, entries), done in zip(by_account.items(), accepted, strict=True):
                lease = self._leases[account]
                if not done:
                    self._on_lost(lease)
                    continue
                self.lines += len(entries)
                left = self._remaining[account] = self._remaining[account] - len(entries)
                if left <= 0:
                    self._on_done(lease)
