"""The async shell of `bulkrt run`: it feeds items to the scheduler, sends what the scheduler says
to send, and hands every finished item to the single ledger-writer task.

Structured concurrency only: one task group holds the request and refresh tasks, another the
ledger writer; a bounded memory object stream carries records to the writer, so lines never
interleave. The scheduler is pure and synchronous; every call to it happens between awaits on
the one event loop, so it needs no lock. Items are fed lazily, at most ``lookahead`` at a time,
so memory does not grow with the job file.

    dispatcher = Dispatcher(scheduler, client, authorizers, user_ids, ledger, run_id="r1")
    await dispatcher.run(items)          # returns when every item has a line, or after a stop
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Container, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import anyio
import structlog
from aiolimiter import AsyncLimiter
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bulkrt.core import waits
from bulkrt.core.attribution import Effect, Origin, effect_of, origin, preexisting
from bulkrt.core.first_answers import FirstAnswers, Misconfiguration
from bulkrt.core.items import Action, ErrorDetail, Item, Status
from bulkrt.core.outcome import Decision, FailureKind, Outcome, classify
from bulkrt.core.scheduler import (
    AccountEvent,
    Dispatch,
    Done,
    ItemResult,
    Refresh,
    Scheduler,
    Ticket,
    Wait,
)
from bulkrt.errors import LedgerError, StorageError
from bulkrt.ledger.journal import JournalEvent, SentJournal
from bulkrt.ledger.record import LedgerRecord
from bulkrt.ledger.writer import LedgerWriter
from bulkrt.shell.client import Authorizer, XClient
from bulkrt.shell.credentials import (
    OAuth2Bearer,
    ReauthorizationNeeded,
    RefreshFailed,
    refused_advice,
)

__all__ = ["DispatchSettings", "Dispatcher", "RunTally"]

_log = structlog.get_logger()
#: records waiting for the ledger writer beyond which no new request is dispatched
_BACKLOG = 256
#: how often an idle ledger is checked for lines older than its sync interval
_SYNC_TICK = 0.25
_ORIGIN_EVENT = {
    Origin.CAMPAIGN: JournalEvent.MADE,
    Origin.OWNER: JournalEvent.OWNER,
    Origin.UNDECIDED: JournalEvent.UNDECIDED,
}


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """How the shell behaves, beyond what the scheduler decides."""

    #: items held by the scheduler at once; the rest wait in the job file
    lookahead: int = 50_000
    #: seconds the requests in flight get to finish after a stop; then they are abandoned
    grace: float = 20.0
    #: an app-wide cap on requests per second (aiolimiter), None for none
    max_rps: float | None = None


@dataclass(slots=True)
class RunTally:
    """What a run has done so far, for the progress display and the summary."""

    #: items of the job, including those finished by earlier runs
    total: int = 0
    #: the accounts of the job
    accounts: list[str] = field(default_factory=list)
    #: items skipped because the ledger holds them as finished, and how many of those are rejected
    skipped: int = 0
    skipped_rejected: int = 0
    by_status: Counter[Status] = field(default_factory=Counter)
    #: per account, the items finished in this run
    by_account: dict[str, Counter[Status]] = field(default_factory=dict)
    #: HTTP requests sent
    requests: int = 0
    #: accounts whose credentials failed, with what the operator must do
    reauthorize: dict[str, str] = field(default_factory=dict)
    #: set when the first answers proved the API base wrong; the run stopped early
    misconfiguration: Misconfiguration | None = None

    @property
    def finished(self) -> int:
        return self.skipped + sum(self.by_status.values())

    def count(self, result: ItemResult) -> None:
        self.by_status[result.status] += 1
        self.by_account.setdefault(result.item.account, Counter())[result.status] += 1


class Dispatcher:
    """Runs one job's items through a scheduler, a client and a ledger."""

    def __init__(
        self,
        scheduler: Scheduler,
        client: XClient,
        authorizers: Mapping[str, Authorizer],
        user_ids: Mapping[str, str],
        ledger: LedgerWriter,
        *,
        run_id: str,
        journal: SentJournal | None = None,
        settings: DispatchSettings | None = None,
        tally: RunTally | None = None,
        clock: Callable[[], float] = time.time,
        superseded: Container[str] = (),
        first_answers: FirstAnswers | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._first_answers = first_answers
        self.tally = tally or RunTally()
        self.run_id = run_id
        self._client = client
        self._auth = authorizers
        self._user_ids = user_ids
        self._ledger = ledger
        self._journal = journal
        #: keys not to send: a later item on their (account, Tweet) finished in an earlier run
        self._superseded = superseded
        self._settings = settings or DispatchSettings()
        self._clock = clock
        self._rps = AsyncLimiter(self._settings.max_rps, 1.0) if self._settings.max_rps else None
        self._wake = anyio.Event()
        self._pending = 0
        self._items: Iterator[Item] = iter(())
        self._exhausted = False
        #: the credential generation a 401 was answered to, per account
        self._failed_generation: dict[str, int] = {}
        self._out: MemoryObjectSendStream[LedgerRecord] | None = None
        self._requests: TaskGroup | None = None
        #: set by `stop`: no new request goes out
        self.stopping = False
        #: the first failure to write the ledger or the journal; the run stops on it
        self.failure: StorageError | None = None
        #: each account's latest event: why it waits, for the progress display
        self.last_event: dict[str, AccountEvent] = {}
        self._warned_until = 0.0

    # -- control -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop sending: requests in flight may finish (within the grace period); nothing new."""
        self.stopping = True
        self._poke()

    def abandon(self) -> None:
        """Stop at once: requests in flight are abandoned unrecorded (they are resent on resume)."""
        self.stop()
        if self._requests is not None:
            self._requests.cancel_scope.cancel()

    @property
    def grace(self) -> float:
        """Seconds the requests in flight get to finish after `stop`."""
        return self._settings.grace

    def _poke(self) -> None:
        self._wake.set()

    async def _sleep(self, until: float | None) -> None:
        """Wait until ``until`` (None: indefinitely) or until something happens."""
        if not self._wake.is_set():
            delay = None if until is None else max(0.0, until - self._clock())
            with anyio.move_on_after(delay):
                await self._wake.wait()
        self._wake = anyio.Event()

    # -- the run -------------------------------------------------------------------------------
    async def run(self, items: Iterator[Item]) -> RunTally:
        """Send every item (or stop early on `stop`); returns the tally."""
        self._items = items
        send, receive = anyio.create_memory_object_stream[LedgerRecord](max_buffer_size=1024)
        self._out = send
        async with anyio.create_task_group() as background:
            background.start_soon(self._sync_periodically)
            if self._journal is not None:
                background.start_soon(self._journal.flush_forever)
            async with anyio.create_task_group() as writers:
                writers.start_soon(self._write_ledger, receive)
                async with send, anyio.create_task_group() as requests:
                    self._requests = requests
                    await self._loop(requests)
                    if self.stopping:
                        # Let the requests in flight answer, but not for ever.
                        deadline = anyio.current_time() + self._settings.grace
                        requests.cancel_scope.deadline = deadline
            background.cancel_scope.cancel()
        return self.tally

    async def _sync_periodically(self) -> None:
        """fsync the ledger within its sync interval of a write, also while nothing happens
        (a long rate-limit wait must not leave lines unsynced)."""
        while True:
            await anyio.sleep(_SYNC_TICK)
            if self._journal is not None:
                if self._journal.failure is not None:
                    self._storage_failed(self._journal.failure)
                    return
                self._journal.flush()
            try:
                self._ledger.sync_if_due()
            except LedgerError as exc:
                self._storage_failed(exc)
                return

    def _storage_failed(self, exc: LedgerError | None) -> None:
        """The ledger or the journal cannot be written: send nothing more, keep the first cause."""
        if self.failure is None and exc is not None:
            self.failure = StorageError(exc.path, exc.message)
            _log.error("storage_failed", path=exc.path, detail=exc.message)
        self.stop()

    def _backlogged(self) -> bool:
        """Whether finished items are waiting for the ledger writer (then nothing new goes out:
        an item is not done until its line is written)."""
        assert self._out is not None
        stats = self._out.statistics()
        return stats.tasks_waiting_send > 0 or stats.current_buffer_used >= _BACKLOG

    async def _loop(self, requests: TaskGroup) -> None:
        while not self.stopping:
            if self._backlogged():
                await self._sleep(None)
                continue
            await self._feed()
            step = self.scheduler.next(self._clock())
            if isinstance(step, Dispatch):
                requests.start_soon(self._send, step.ticket)
            elif isinstance(step, Refresh):
                requests.start_soon(self._refresh, step.account)
            elif isinstance(step, Done):
                if self._exhausted:
                    return
            else:
                if isinstance(step, Wait):
                    self._warn_long_wait(step.until)
                await self._sleep(step.until if isinstance(step, Wait) else None)
                self._log_events()
        self._log_events()

    async def _feed(self) -> None:
        """Add up to 1000 more items, keeping at most ``lookahead`` in the scheduler."""
        room = min(1000, self._settings.lookahead - self._pending)
        now = self._clock()
        for _ in range(max(0, room)):
            item = next(self._items, None)
            if item is None:
                self._exhausted = True
                return
            self._pending += 1
            if item.key in self._superseded:
                await self._record([_superseded(item, now)])
                continue
            await self._record(self.scheduler.add(item, now))

    async def _send(self, ticket: Ticket) -> None:
        item = ticket.item
        auth = self._auth[item.account]
        generation = auth.generation if isinstance(auth, OAuth2Bearer) else 0
        journal = self._journal if item.action is Action.RETWEET else None
        if journal is not None and not await journal.before_send(item):
            self._storage_failed(journal.failure)  # not sent: the run stops
            return
        with structlog.contextvars.bound_contextvars(account=item.account, item=item.key):
            outcome = await self._exchange(item, auth)
        if journal is not None:
            effect = effect_of(outcome)
            if effect is not Effect.ANSWERED:
                none = effect is Effect.NONE
                journal.record(item, JournalEvent.NONE if none else JournalEvent.MAYBE)
        if outcome.decision is Decision.AUTH_FAILED:
            self._failed_generation[item.account] = generation
        if outcome.decision is Decision.CREDENTIALS_REFUSED and outcome.error is not None:
            oauth1 = not isinstance(auth, OAuth2Bearer)
            advice = refused_advice(item.account, outcome.error.type, oauth1)
            self.tally.reauthorize.setdefault(item.account, advice)
        self._watch_first_answers(item.account, outcome)
        await self._record(self.scheduler.on_response(ticket, self._clock(), outcome))
        self._poke()

    def _watch_first_answers(self, account: str, outcome: Outcome) -> None:
        """Stop the run when its first answers prove the API base wrong (see `first_answers`)."""
        if self._first_answers is None or self.tally.misconfiguration is not None:
            return
        proof = self._first_answers.observe(account, outcome)
        if proof is not None:
            self._misconfigured(proof)

    def _misconfigured(self, proof: Misconfiguration) -> None:
        """The API base is proved wrong: say so and stop the run."""
        self.tally.misconfiguration = proof
        _log.error(
            "run_misconfigured", base=self._client.base_url, cause=proof.cause, detail=proof.detail
        )
        self.stop()

    def _watch_refresh(self, account: str, failed: RefreshFailed) -> bool:
        """Stop the run when a failed token refresh proves the API base wrong (see
        `first_answers`); True when the run stops for that (the base, not the account, is at
        fault)."""
        if self._first_answers is None:
            return False
        if self.tally.misconfiguration is None:
            proof = self._first_answers.observe_refresh(
                account, failed.http, failed.detail, not_api=failed.not_api
            )
            if proof is not None:
                self._misconfigured(proof)
        return self.tally.misconfiguration is not None

    async def _exchange(self, item: Item, auth: Authorizer) -> Outcome:
        """Send one request for ``item`` and say what its answer means."""
        send = self._client.retweet if item.action is Action.RETWEET else self._client.undo
        try:
            if self._rps is not None:
                await self._rps.acquire()
            exchange = await send(auth, self._user_ids[item.account], item.tweet_id)
        except ReauthorizationNeeded as exc:
            self.tally.reauthorize[item.account] = str(exc)
            error = ErrorDetail("reauthorization-needed", "Unauthorized", str(exc))
            return Outcome(Decision.AUTH_FAILED, error=error, unsent=True)
        except RefreshFailed as exc:
            self._watch_refresh(item.account, exc)
            error = ErrorDetail(FailureKind.NETWORK, "Refresh failed", str(exc))
            return Outcome(Decision.RETRY, error=error, unsent=True)
        self.tally.requests += 1
        return classify(
            item.action,
            exchange.http,
            exchange.headers,
            exchange.body,
            exchange.content_type,
            exchange.failure,
        )

    async def _refresh(self, account: str) -> None:
        """Refresh an account's credentials once (OAuth 2.0), then tell the scheduler."""
        auth = self._auth[account]
        ok = False
        if isinstance(auth, OAuth2Bearer):
            seen = self._failed_generation.get(account, auth.generation)
            try:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(RefreshFailed),
                    stop=stop_after_attempt(3),
                    wait=wait_exponential(multiplier=1, max=10),
                    reraise=True,
                ):
                    with attempt:
                        await auth.refresh(seen=seen)
                ok = True
            except ReauthorizationNeeded as exc:
                self.tally.reauthorize[account] = str(exc)
            except RefreshFailed as exc:
                if not self._watch_refresh(account, exc):
                    self.tally.reauthorize[account] = str(exc)
        else:
            self.tally.reauthorize[account] = refused_advice(account, "unauthorized", oauth1=True)
        error = None
        if not ok and account in self.tally.reauthorize:
            _log.error(
                "account_needs_reauthorization",
                account=account,
                detail=self.tally.reauthorize[account],
            )
        if not ok:
            cause = (
                "OAuth 2.0 token refresh failed"
                if isinstance(auth, OAuth2Bearer)
                else "OAuth 1.0a credentials refused; nothing to refresh"
            )
            error = ErrorDetail("unauthorized", "Unauthorized", cause)
        await self._record(self.scheduler.on_refreshed(account, self._clock(), ok, error))
        self._poke()

    # -- results -------------------------------------------------------------------------------
    async def _record(self, results: list[ItemResult]) -> None:
        assert self._out is not None
        for result in results:
            self._pending -= 1
            if self._journal is not None:
                result = self._settle_journal(result)
            self.tally.count(result)
            await self._out.send(self._ledger_record(result))

    def _settle_journal(self, result: ItemResult) -> ItemResult:
        """Settle who made a retweet found in place, with the journal's evidence of earlier runs,
        and record the origin of every retweet that exists (bulkrt.core.attribution)."""
        assert self._journal is not None
        item = result.item
        if item.action is not Action.RETWEET or result.status is not Status.OK:
            return result
        if result.preexisting is False:
            verdict = Origin.CAMPAIGN  # a 2xx retweeted:true: the campaign made it
        else:  # "already retweeted"; None: an attempt of this run may have been applied
            earlier = self._journal.evidence(item.key)
            evidence = replace(
                earlier,
                possible=earlier.possible or result.preexisting is None,
                made=earlier.made or self._journal.made(item),
            )
            verdict = origin(evidence)
            result = replace(result, preexisting=preexisting(verdict))
        self._journal.record(item, _ORIGIN_EVENT[verdict])
        return result

    def _ledger_record(self, result: ItemResult) -> LedgerRecord:
        error = result.error
        return LedgerRecord.of(
            result.item,
            run=self.run_id,
            user_id=self._user_ids[result.item.account],
            at=datetime.fromtimestamp(result.finished_at, UTC),
            status=result.status,
            retweeted=result.retweeted,
            preexisting=result.preexisting,
            http=result.http,
            error=ErrorDetail(str(error.type), error.title, error.detail) if error else None,
            attempts=result.attempts,
            sent=None if result.sent_at is None else datetime.fromtimestamp(result.sent_at, UTC),
        )

    async def _write_ledger(self, receive: MemoryObjectReceiveStream[LedgerRecord]) -> None:
        """The one task that writes the ledger: a whole line per write, flushed at once."""
        async with receive:
            async for first in receive:
                # Write everything already waiting in this same pass: taking one record per
                # pass of the event loop lets the ledger fall thousands of lines behind the
                # requests, and a crash would lose those outcomes.
                batch = [first]
                with suppress(anyio.WouldBlock, anyio.EndOfStream):
                    while True:
                        batch.append(receive.receive_nowait())
                if self.failure is None:
                    try:
                        for record in batch:
                            self._ledger.write(record)
                    except LedgerError as exc:
                        self._storage_failed(exc)  # later records are dropped: resent on resume
                self._poke()  # dispatching may be held back while records wait
        if self.failure is None:
            try:
                self._ledger.sync()
            except LedgerError as exc:
                self._storage_failed(exc)

    def _warn_long_wait(self, until: float) -> None:
        """Warn once per wait when nothing can go for longer than `waits.LONG_WAIT`."""
        now = self._clock()
        if until - now <= waits.LONG_WAIT or until == self._warned_until:
            return
        self._warned_until = until
        waiting = sorted(a for a, e in self.last_event.items() if e.until and e.until > now)
        _log.warning(
            "run_waiting",
            until=datetime.fromtimestamp(until, UTC).isoformat(),
            seconds=round(until - now),
            reason="every account with items left has spent its rate-limit window"
            + (f" ({', '.join(waiting[:5])} after a 429 or a park)" if waiting else ""),
        )

    def _log_events(self) -> None:
        for event in self.scheduler.drain_events():
            self.last_event[event.account] = event
            log = _log.warning if waits.is_long(event) else _log.info
            log(
                event.kind.value,
                account=event.account,
                until=datetime.fromtimestamp(event.until, UTC).isoformat() if event.until else None,
                reason=waits.reason(event),
            )


def _superseded(item: Item, now: float) -> ItemResult:
    """The result of an item that must not be sent: the job's later word on its Tweet is in."""
    error = ErrorDetail(
        "superseded",
        "Superseded",
        "a later item on the same account and Tweet finished in an earlier run; sending this "
        "one would undo it",
    )
    return ItemResult(item, Status.SUPERSEDED, None, False, None, error, 0, now)
