"""The async shell of `bulkrt run`: it feeds items to the scheduler, sends what the scheduler says
to send, and writes every finished item's ledger line.

Structured concurrency only: one task group holds the request senders and refresh tasks, another the
journal's flusher and the ledger's periodic sync. Requests go through a pool of long-lived sender
tasks fed by a hand-over queue (grown on demand, up to the scheduler's concurrency: a task per
request would cost several times the hand-over). Ledger lines are written synchronously by whoever
holds the finished items (a sender once the scheduler has its answer, the feeder for items that end
without a request), so they never interleave, an item is counted only once its line is written,
and no answer waits for a writer task (whose writes were synchronous too: the hand-over to it
cost about 3 µs an item and bought nothing).
The scheduler is pure and synchronous; every call to it happens between awaits on the one event
loop, so it needs no lock. Items are fed lazily, at most ``lookahead`` at a time,
so memory does not grow with the job file.

    dispatcher = Dispatcher(scheduler, senders, ledger, run_id="r1")
    stats = await dispatcher.run(items)  # returns when every item has a line, or after a stop

Its one seam to the outside is a `bulkrt.shell.sender.Sender` per account: whatever speaks that
Protocol (HTTP, a scripted fake, a simulation in virtual time) can be driven. Every decision is
the core's (the scheduler, `classify`, `bulkrt.core.credential_refresh`,
`bulkrt.core.attribution`); the dispatcher sends, sleeps and writes. What the run has done is
published as an immutable `RunStats` (`stats()`), counted once each ledger line is written.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from itertools import islice
from math import modf
from typing import Any, Protocol

import anyio
import structlog
from anyio.abc import TaskGroup

from bulkrt.core import waits
from bulkrt.core.attribution import (
    Effect,
    Evidence,
    Origin,
    effect_of,
    preexisting,
    settled_origin,
)
from bulkrt.core.credential_refresh import (
    REFRESH_RETRY,
    RefreshReport,
    RefreshVerdict,
    refresh_end,
    refresh_retry_delay,
    refused_advice,
    unsent_outcome,
)
from bulkrt.core.first_answers import FirstAnswers, Misconfiguration
from bulkrt.core.items import Action, ErrorDetail, Item, Status, draft_class
from bulkrt.core.outcome import Decision, Outcome, classify
from bulkrt.core.retry_policy import RetryPolicy
from bulkrt.core.run_stats import RunStats
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
from bulkrt.ledger.journal import JournalEvent
from bulkrt.ledger.record import SCHEMA, LedgerRecord
from bulkrt.logs import REQUEST
from bulkrt.shell.pace import Pace
from bulkrt.shell.sender import Sender

__all__ = ["DispatchSettings", "Dispatcher", "Journal", "LedgerSink"]

_log = structlog.get_logger()
#: how often an idle ledger is checked for lines older than its sync interval
_SYNC_TICK = 0.25
#: an empty `LedgerRecord` to fill (`Dispatcher._ledger_record`)
_RecordDraft: Any = draft_class(LedgerRecord)
_ORIGIN_EVENT = {
    Origin.CAMPAIGN: JournalEvent.MADE,
    Origin.OWNER: JournalEvent.OWNER,
    Origin.UNDECIDED: JournalEvent.UNDECIDED,
}
#: the ledger's ``preexisting`` of an item an earlier run's journal records as ended ok with
#: this event (`Journal.ended_before`): a retweet's, as for its origin; an undo's ``undone``:
#: False, as for an undo sent
_ENDED_PREEXISTING: dict[JournalEvent, bool | None] = {
    event: preexisting(origin) for origin, event in _ORIGIN_EVENT.items()
} | {JournalEvent.UNDONE: False}


class LedgerSink(Protocol):
    """Where finished items' lines go: the ledger file (`LedgerWriter`), or in the multi-machine
    mode the shared results that the driving run writes to it. A failure raises `LedgerError`."""

    def write(self, record: LedgerRecord) -> None: ...

    def sync_if_due(self) -> None: ...

    def sync(self) -> None: ...


class Journal(Protocol):
    """The attribution evidence of retweet attempts (`SentJournal`, or a shared one)."""

    @property
    def failure(self) -> LedgerError | None: ...

    def evidence(self, key: str) -> Evidence: ...

    def made(self, item: Item) -> bool: ...

    def undone(self, item: Item) -> None: ...

    def ended_before(self, item: Item) -> JournalEvent | None: ...

    def pair_possible(self, item: Item) -> bool: ...

    def record(self, item: Item, event: JournalEvent) -> None: ...

    def flush(self) -> None: ...

    async def before_send(self, item: Item) -> bool: ...

    async def flush_forever(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """How the shell behaves, beyond what the scheduler decides."""

    #: items held by the scheduler at once; the rest wait in the job file
    lookahead: int = 50_000
    #: seconds the requests in flight get to finish after a stop; then they are abandoned
    grace: float = 20.0
    #: an app-wide cap on requests per second (aiolimiter), None for none
    max_rps: float | None = None
    #: how often, and how far apart, a failed credential refresh is tried
    refresh_retry: RetryPolicy = REFRESH_RETRY
    #: where requests go, for the log line of a misconfigured run
    api_base: str = ""


class Dispatcher:
    """Runs one job's items through a scheduler, a client and a ledger."""

    def __init__(
        self,
        scheduler: Scheduler,
        senders: Mapping[str, Sender],
        ledger: LedgerSink,
        *,
        run_id: str,
        journal: Journal | None = None,
        settings: DispatchSettings | None = None,
        stats: RunStats | None = None,
        clock: Callable[[], float] = time.time,
        superseded: Container[str] = (),
        first_answers: FirstAnswers | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._first_answers = first_answers
        #: what the run starts from (total, accounts, items finished before it)
        self._base = stats or RunStats()
        self._by_status: Counter[Status] = Counter()
        self._requests_sent = 0
        self._reauthorize: dict[str, str] = {}
        self._misconfiguration: Misconfiguration | None = None
        self.run_id = run_id
        self._senders = senders
        self._ledger = ledger
        self._journal = journal
        #: keys not to send: a later item on their (account, Tweet) finished in an earlier run
        self._superseded = superseded
        self._settings = settings or DispatchSettings()
        self._clock = clock
        #: ``--max-rps``'s turns, cut short by `stop`
        rps = self._settings.max_rps
        self._pace = Pace(rps) if rps else None
        self._wake = anyio.Event()
        self._pending = 0
        self._items: Iterator[Item] = iter(())
        self._exhausted = False
        self._requests: TaskGroup | None = None
        #: tickets for the pool of sender tasks (`_serve`), and how many of them wait for one
        self._tickets = _Handover()
        self._senders_idle = 0
        #: set by `stop`: no new request goes out
        self.stopping = False
        #: the first failure to write the ledger or the journal; the run stops on it
        self.failure: StorageError | None = None
        #: a ledger write or sync failed: no line is written from then on (a journal that failed
        #: stops the run too, but the answers still in flight get their lines)
        self._ledger_failed = False
        #: per OAuth 1.0a account refused (401), how far ahead of this machine's clock the
        #: answer's Date was (a clock off by minutes invalidates every OAuth 1.0a signature)
        self._clock_skew: dict[str, float] = {}
        #: the first failure to write the credential store (the accounts file); the run stops on
        #: it, and the ledger takes every line of what finished
        self.store_failure: StorageError | None = None
        #: each account's latest event: why it waits, for the progress display
        self.last_event: dict[str, AccountEvent] = {}
        self._warned_until = 0.0
        self._stamps = _Stamps()
        #: keys recorded as an earlier run's journal says they ended (`Journal.ended_before`),
        #: with the ``preexisting`` of their line, until their line is written
        self._ended_before: dict[str, bool | None] = {}

    def stats(self) -> RunStats:
        """What the run has done so far, as an immutable snapshot."""
        return replace(
            self._base,
            by_status=dict(self._by_status),
            requests=self._requests_sent,
            in_flight=self.scheduler.in_flight,
            reauthorize=dict(self._reauthorize),
            misconfiguration=self._misconfiguration,
        )

    # -- control -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop sending: requests in flight may finish (within the grace period); nothing new
        (a request still waiting for its ``--max-rps`` turn is not sent)."""
        self.stopping = True
        if self._pace is not None:
            self._pace.stop()
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
            if until is None:  # no cancel scope to make: the common wait, for an answer
                await self._wake.wait()
            else:
                with anyio.move_on_after(max(0.0, until - self._clock())):
                    await self._wake.wait()
        self._wake = anyio.Event()

    # -- the run -------------------------------------------------------------------------------
    async def run(self, items: Iterator[Item]) -> RunStats:
        """Send every item (or stop early on `stop`); returns what the run did."""
        self._items = items
        async with anyio.create_task_group() as background:
            background.start_soon(self._sync_periodically)
            if self._journal is not None:
                background.start_soon(self._journal.flush_forever)
            async with anyio.create_task_group() as requests:
                self._requests = requests
                try:
                    await self._loop(requests)
                finally:
                    self._tickets.close()
                if self.stopping:
                    # Let the requests in flight answer, but not for ever.
                    deadline = anyio.current_time() + self._settings.grace
                    requests.cancel_scope.deadline = deadline
            if not self._ledger_failed:
                try:
                    self._ledger.sync()
                except LedgerError as exc:
                    self._ledger_storage_failed(exc)
            background.cancel_scope.cancel()
        return self.stats()

    async def _sync_periodically(self) -> None:
        """fsync the ledger within its sync interval of a write, also while nothing happens
        (a long rate-limit wait must not leave lines unsynced)."""
        while True:
            await anyio.sleep(_SYNC_TICK)
            if self._journal is not None:
                if self._journal.failure is not None:
                    # the run stops; the ledger is still synced for the answers still to come
                    self._storage_failed(self._journal.failure)
                else:
                    self._journal.flush()
            try:
                self._ledger.sync_if_due()
            except LedgerError as exc:
                self._ledger_storage_failed(exc)
                return

    def _ledger_storage_failed(self, exc: LedgerError) -> None:
        """The ledger cannot be written: no line is written any more, and the run stops."""
        self._ledger_failed = True
        self._storage_failed(exc)

    def _storage_failed(self, exc: LedgerError | None) -> None:
        """The ledger or the journal cannot be written: send nothing more, keep the first cause."""
        if self.failure is None and exc is not None:
            self.failure = StorageError(exc.path, exc.message)
            _log.error("storage_failed", path=exc.path, detail=exc.message)
        self.stop()

    def _store_failed(self, report: RefreshReport) -> None:
        """The credential store cannot be written: send nothing more, keep the first cause."""
        if self.store_failure is None:
            self.store_failure = StorageError(report.store or "", report.message)
            _log.error("credential_store_failed", path=report.store, detail=report.message)
        self.stop()

    async def _loop(self, requests: TaskGroup) -> None:
        scheduler = self.scheduler
        while not self.stopping:
            # Tickets one at a time while items wait to be fed (each pass feeds before it
            # picks, as the scheduler's choices depend on what it holds), then in batches.
            limit = 1 if self._feedable() else scheduler.concurrency
            self._feed()
            tickets, step = scheduler.next_batch(self._clock(), limit)
            for ticket in tickets:
                self._dispatch(requests, ticket)
            if step is None or isinstance(step, Dispatch):
                continue
            if isinstance(step, Refresh):
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

    def _feedable(self) -> bool:
        """Whether `_feed` would add an item now."""
        return not self._exhausted and self._pending < self._settings.lookahead

    def _feed(self) -> None:
        """Add up to 1000 more items, keeping at most ``lookahead`` in the scheduler."""
        room = min(1000, self._settings.lookahead - self._pending)
        if room <= 0 or self._exhausted:
            return
        now = self._clock()
        superseded = self._superseded
        batch = list(islice(self._items, room))
        if len(batch) < room:
            self._exhausted = True
        self._pending += len(batch)
        if superseded:
            # In file order, an item at a time: the superseded ones' lines go in between.
            for item in batch:
                if item.key in superseded:
                    self._record([_superseded(item, now)])
                else:
                    self._record(self.scheduler.add(item, now))
        elif batch:
            self._record(self.scheduler.add_many(batch, now))

    def _dispatch(self, requests: TaskGroup, ticket: Ticket) -> None:
        """Hand ``ticket`` to an idle sender task, starting one when every one is busy (the
        scheduler keeps at most its concurrency in flight and a sender is idle again as soon as
        the scheduler has its answer, so the pool never grows beyond it)."""
        if self._senders_idle == 0:
            self._senders_idle += 1
            requests.start_soon(self._serve)
        self._senders_idle -= 1
        self._tickets.put(ticket)

    async def _serve(self) -> None:
        """One sender task: send the tickets it is handed, one at a time, until the loop ends. A
        ticket handed over just before a stop is not sent (its item stays unfinished)."""
        tickets = self._tickets
        while (ticket := await tickets.get()) is not None:
            outcome = None if self.stopping else await self._send(ticket)
            # Free again from here, with no await since the scheduler took the answer: the
            # loop may hand over the next ticket at once, and the pool stays within the
            # concurrency (counted free after the line, it grew to twice that).
            self._senders_idle += 1
            if outcome is not None:
                finished = self.scheduler.on_response(ticket, self._clock(), outcome)
                if finished:
                    self._record(finished)
            self._poke()  # the scheduler may have room again (an answer, a retry)

    async def _send(self, ticket: Ticket) -> Outcome | None:
        """Send ``ticket``'s request; returns what its answer means for the scheduler (None: not
        sent, the run stops)."""
        item = ticket.item
        journal = self._journal
        ended = journal.ended_before(item) if journal is not None else None
        if ended is not None:
            # An earlier run's attempt of this row ended ok (the journal says how) and its ledger
            # line is gone since (an older backup): not sent again, which would act on the pair
            # as it is now (remove the owner's retweet made since, retweet again what a later
            # undo took back), but recorded as it ended, and nothing journaled of it again.
            self._ended_before[item.key] = _ENDED_PREEXISTING[ended]
            retweet = item.action is Action.RETWEET
            return Outcome(Decision.DONE, Status.OK, retweeted=retweet, unsent=True)
        journal = journal if item.action is Action.RETWEET else None
        if journal is not None and not await journal.before_send(item):
            self._storage_failed(journal.failure)  # not sent: the run stops
            return None
        if self._pace is not None and not await self._turn():  # no coroutine without a pace
            # The run stopped before the request left: not sent (its item stays unfinished,
            # like a ticket skipped in `_serve`), and the journal says so.
            if journal is not None:
                journal.record(item, JournalEvent.NONE)
            return None
        # what is logged during the exchange names the account and the item
        request = REQUEST.set((item.account, item.key))
        try:
            outcome = await self._exchange(item)
        finally:
            REQUEST.reset(request)
        if journal is not None:
            effect = effect_of(outcome)
            if effect is not Effect.ANSWERED:
                none = effect is Effect.NONE
                journal.record(item, JournalEvent.NONE if none else JournalEvent.MAYBE)
        if outcome.decision is Decision.CREDENTIALS_REFUSED and outcome.error is not None:
            oauth1 = not self._senders[item.account].refreshable
            advice = refused_advice(item.account, outcome.error.type, oauth1)
            self._reauthorize.setdefault(item.account, advice)
        self._watch_first_answers(item.account, outcome)
        return outcome

    def _watch_first_answers(self, account: str, outcome: Outcome) -> None:
        """Stop the run when its first answers prove the API base wrong (see `first_answers`)."""
        if self._first_answers is None or self._misconfiguration is not None:
            return
        proof = self._first_answers.observe(account, outcome)
        if proof is not None:
            self._misconfigured(proof)

    def _misconfigured(self, proof: Misconfiguration) -> None:
        """The API base is proved wrong: say so and stop the run."""
        self._misconfiguration = proof
        base = self._settings.api_base
        _log.error("run_misconfigured", base=base, cause=proof.cause, detail=proof.detail)
        self.stop()

    def _watch_refresh(self, account: str, report: RefreshReport) -> bool:
        """Stop the run when a failed token refresh proves the API base wrong (see
        `first_answers`); True when the run stops for that (the base, not the account, is at
        fault)."""
        if self._first_answers is None:
            return False
        if self._misconfiguration is None:
            proof = self._first_answers.observe_refresh(
                account, report.http, report.detail, not_api=report.not_api
            )
            if proof is not None:
                self._misconfigured(proof)
        return self._misconfiguration is not None

    async def _turn(self) -> bool:
        """Wait for the request's turn under ``--max-rps``; False when the run stops first (a
        request dispatched before a stop, and not held by ``--max-rps``, goes as it always did)."""
        if self._pace is None:
            return True
        return await self._pace.turn()  # `stop` stops the pace too

    async def _exchange(self, item: Item) -> Outcome:
        """Send one request for ``item`` and say what its answer means."""
        exchange = await self._senders[item.account].send(item.action, item.tweet_id)
        report = exchange.credentials
        if report is not None:  # never sent: the credentials could not be refreshed first
            if report.verdict is RefreshVerdict.STORE_FAILED:
                self._store_failed(report)
            elif report.verdict is RefreshVerdict.FAILED:
                self._watch_refresh(item.account, report)
            else:
                self._reauthorize[item.account] = report.message
            return unsent_outcome(report)
        if exchange.held_until is not None:  # never sent: the shared budget is spent
            return Outcome(Decision.HELD, until=exchange.held_until, unsent=True)
        self._requests_sent += 1
        if exchange.http == 401 and not self._senders[item.account].refreshable:
            skew = _clock_skew(exchange.headers.get("date"))
            if skew is not None:
                self._clock_skew[item.account] = skew
        return classify(
            item.action,
            exchange.http,
            exchange.headers,
            exchange.body,
            exchange.content_type,
            exchange.failure,
            lower_names=True,  # what `Exchange.headers` promises
        )

    async def _refresh(self, account: str) -> None:
        """Refresh an account's credentials (retried per the core's policy), then tell the
        scheduler."""
        sender = self._senders[account]
        attempts = 0
        while True:
            attempts += 1
            report = await sender.refresh()
            delay = refresh_retry_delay(report, attempts, self._settings.refresh_retry)
            if delay is None:
                break
            await anyio.sleep(delay)
        if report.verdict is RefreshVerdict.STORE_FAILED:
            self._store_failed(report)  # the account's items stay unfinished: resumed later
            return
        misconfigured = report.verdict is RefreshVerdict.FAILED and self._watch_refresh(
            account, report
        )
        end = refresh_end(
            account, report, misconfigured=misconfigured, clock_skew=self._clock_skew.get(account)
        )
        if end.advice is not None:
            self._reauthorize[account] = end.advice
            _log.error("account_needs_reauthorization", account=account, detail=end.advice)
        self._record(self.scheduler.on_refreshed(account, self._clock(), end.ok, end.error))
        self._poke()

    # -- results -------------------------------------------------------------------------------
    def _record(self, results: list[ItemResult]) -> None:
        """Write the ledger lines of ``results``, each counted once written. Written here, by
        whoever has the results, in one synchronous pass: an item is not done until its line is
        written, and nothing else runs meanwhile (a slow fsync holds the event loop, as it would
        in a writer task). After a failure to write the ledger, the later lines are dropped (the
        run stops; their items are resent on resume); after the journal's failure, which stops
        the run too, the answers still in flight are written as they come (each one resent on
        resume would find its own retweet, with no journal line to say whose it is)."""
        for result in results:
            self._pending -= 1
            if self._journal is not None:
                result = self._settle_journal(result)
            if self._ledger_failed:
                continue
            record = self._ledger_record(result)
            try:
                self._ledger.write(record)
            except LedgerError as exc:
                self._ledger_storage_failed(exc)
            else:
                self._by_status[record.status] += 1  # counted once written

    def _settle_journal(self, result: ItemResult) -> ItemResult:
        """Settle who made a retweet found in place, with the journal's evidence of earlier runs
        (`bulkrt.core.attribution.settled_origin`), and journal the origin of every retweet that
        exists. An ``ok`` undo ends what the campaigns made of its pair: a retweet found there
        later is not theirs."""
        assert self._journal is not None
        item = result.item
        if result.status is not Status.OK:
            return result
        if item.key in self._ended_before:
            # as the journal has it already: journaled again now, it would come after what
            # happened to the pair since (a later undo) and be read as the newer word
            found = self._ended_before.pop(item.key)
            return replace(result, preexisting=found, attempts=0, sent_at=None)
        if item.action is not Action.RETWEET:
            self._journal.undone(item)
            return result
        evidence = self._journal.evidence(item.key)
        if not evidence.possible and self._journal.pair_possible(item):
            evidence = replace(evidence, possible=True)  # another row's attempt on the pair
        verdict = settled_origin(result.preexisting, evidence, made=self._journal.made(item))
        self._journal.record(item, _ORIGIN_EVENT[verdict])
        settled = preexisting(verdict)
        return result if settled is result.preexisting else replace(result, preexisting=settled)

    def _ledger_record(self, result: ItemResult) -> LedgerRecord:
        """The ledger line of ``result``: `LedgerRecord.of` the item, with its times stamped by
        `_Stamps` (the same text, made in a fraction of the time)."""
        error = result.error
        item = result.item
        stamp = self._stamps
        # every field set on a draft, then made a `LedgerRecord` (`draft_class`): a frozen
        # dataclass's ``__init__`` sets each of the 16 through ``object.__setattr__``
        record = _RecordDraft()
        record.schema = SCHEMA
        record.ts = stamp(result.finished_at)
        record.run = self.run_id
        record.key = item.key
        record.campaign = item.campaign
        record.account = item.account
        record.user_id = self._senders[item.account].user_id
        record.tweet_id = item.tweet_id
        record.action = item.action
        record.status = result.status
        record.retweeted = result.retweeted
        record.preexisting = result.preexisting
        record.http = result.http
        record.error = ErrorDetail(str(error.type), error.title, error.detail) if error else None
        record.attempts = result.attempts
        record.sent = None if result.sent_at is None else stamp(result.sent_at)
        record.__class__ = LedgerRecord
        built: LedgerRecord = record
        return built

    def _warn_long_wait(self, until: float) -> None:
        """Warn once per wait when nothing can go for longer than `waits.LONG_WAIT`."""
        now = self._clock()
        if until - now <= waits.LONG_WAIT or until == self._warned_until:
            return
        self._warned_until = until
        # why, truthfully: the model's window, and what each account's own last event says
        # (a 429, a park, the budget shared with other workers), not a 429 that never came
        waiting = sorted(
            ((a, e) for a, e in self.last_event.items() if e.until and e.until > now),
            key=lambda pair: pair[0],
        )
        model = self.scheduler.model.source
        _log.warning(
            "run_waiting",
            until=datetime.fromtimestamp(until, UTC).isoformat(),
            seconds=round(until - now),
            reason="every account with items left has spent its rate-limit window"
            + (f" ({model})" if model else "")
            + "".join(f"; {account}: {waits.reason(event)}" for account, event in waiting[:5]),
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


class _Handover:
    """Tickets from the dispatcher's loop to its sender tasks, first come first served: a
    ticket goes straight to the sender that has waited longest, or waits for the next one.

    A memory object stream did this with an event and a receiver made per ticket, each asking
    anyio for the running backend; here a waiting sender waits on a future of the running loop
    (a real run's and a simulation's are asyncio loops). After `close`, the tickets handed over
    are still taken, then every sender is told the loop ended (`get` gives None).
    """

    __slots__ = ("_closed", "_ready", "_waiting")

    def __init__(self) -> None:
        self._ready: deque[Ticket] = deque()
        self._waiting: deque[asyncio.Future[Ticket | None]] = deque()
        self._closed = False

    def put(self, ticket: Ticket) -> None:
        """Hand ``ticket`` to the sender that has waited longest, or keep it for the next."""
        waiting = self._waiting
        while waiting:
            sender = waiting.popleft()
            if not sender.done():  # not cancelled meanwhile
                sender.set_result(ticket)
                return
        self._ready.append(ticket)

    async def get(self) -> Ticket | None:
        """The next ticket; None once the loop ended and every ticket was taken."""
        # one pass of the event loop first, as the stream's `receive` made: the order in which
        # tasks run at one instant (a simulation's results) stays what it was
        await asyncio.sleep(0)
        if self._ready:
            return self._ready.popleft()
        if self._closed:
            return None
        sender: asyncio.Future[Ticket | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(sender)
        return await sender

    def close(self) -> None:
        """The loop ended: senders take what was handed over, then end."""
        self._closed = True
        while self._waiting:
            sender = self._waiting.popleft()
            if not sender.done():
                sender.set_result(None)


class _Stamps:
    """Ledger timestamps (UTC, milliseconds, ``Z``) of epoch seconds, as `LedgerRecord.of`
    writes them for ``datetime.fromtimestamp(seconds, UTC)``; the text of the whole second is
    made once per second rather than formatted for every line.

    >>> _Stamps()(1764118800.0429)
    '2025-11-26T01:00:00.042Z'
    """

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second: int | None = None
        self._text = ""

    def __call__(self, seconds: float) -> str:
        # rounded to the microsecond as `datetime.fromtimestamp` rounds (what `of` does): the
        # fraction's microseconds, half to even, carried into the next second at 1,000,000
        fraction, whole = modf(seconds)
        micro = round(fraction * 1e6)
        second = int(whole)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            self._second = second
            at = datetime.fromtimestamp(second, UTC)
            self._text = at.isoformat()[:19]  # YYYY-MM-DDTHH:MM:SS
        return f"{self._text}.{micro // 1000:03d}Z"


def _superseded(item: Item, now: float) -> ItemResult:
    """The result of an item that must not be sent: the job's later word on its Tweet is in."""
    error = ErrorDetail(
        "superseded",
        "Superseded",
        "a later item on the same account and Tweet finished in an earlier run; sending this "
        "one would undo it",
    )
    return ItemResult(item, Status.SUPERSEDED, None, False, None, error, 0, now)


def _clock_skew(date: str | None) -> float | None:
    """How far ahead of this machine's clock an answer's ``Date`` header is (seconds), or None."""
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp() - time.time()
    except (TypeError, ValueError):
        return None
