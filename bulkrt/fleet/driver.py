"""``bulkrt run --redis URL``: the run that drives a job in the multi-machine mode.

It checks the input exactly as the embedded run does (nothing is published before every check
passed), takes the ledger's lock, reads what the ledger holds as finished, and publishes the
rest of the job to Redis, each item with what the ledger's journal says of its earlier attempts.
Then it works on the job itself (a `FleetWorker`, beside any ``bulkrt worker`` on the same Redis)
and *pumps*: it copies the job's results from Redis into the ledger, and the shared journal into
``<ledger>.sent``, fsyncs, and only then deletes them from Redis. The ledger stays the one
record that ``status``, ``rollback`` and ``report`` read, in the same format.

The job's name in Redis comes from this host and the ledger's real path, so running the same
command again after the driver died (or was stopped) finds the job still published, copies what
the workers finished meanwhile, and goes on; nothing is published twice. A driver stopped by
SIGINT/SIGTERM leaves the job to the other workers: its results wait in Redis until the same
command is run again, which the driver's message gives (saying to pipe the same job again when
it was read from standard input). A signal that stopped nothing (every item already had its
line in the ledger) ends the run as done, as in the embedded mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial

import anyio
import click
import structlog
from anyio.abc import TaskStatus
from redis.asyncio import Redis

from bulkrt.core.attribution import Evidence
from bulkrt.core.items import Item, Status
from bulkrt.core.retry_policy import RetryPolicy
from bulkrt.core.run_stats import RunStats
from bulkrt.errors import LedgerError
from bulkrt.exitcodes import ExitCode
from bulkrt.fleet.connection import connect, patiently
from bulkrt.fleet.engine import FleetWorker, WorkerSettings, item_payload
from bulkrt.fleet.published_limits import limits_document
from bulkrt.fleet.store import FleetStore, JobMeta
from bulkrt.jobs.loader import open_jobs, read_items
from bulkrt.ledger.journal import SentJournal, append_lines, journal_path
from bulkrt.ledger.record import LedgerRecord
from bulkrt.ledger.resume import finished_keys
from bulkrt.ledger.writer import LedgerWriter
from bulkrt.shell.accounts import Accounts, load_accounts, user_ids
from bulkrt.shell.accounts_file import recover_write_back
from bulkrt.shell.progress import Progress
from bulkrt.shell.runner import (
    LateSignals,
    RunSettings,
    all_written,
    check_and_plan,
    resume_command,
    resume_under_lock,
    storage_failed,
)

__all__ = ["drive_job", "worker_settings"]

_log = structlog.get_logger()
#: items published per round trip
_PUBLISH_BATCH = 1000
#: items published before their accounts may be claimed (then again every so many): an account
#: claimed while its items are still being published is handed from worker to worker as they come
_AVAILABLE_EVERY = 50_000
#: the journal lines naming the job in Redis (`_Drive._name_job`); the journal's readers skip
#: events they do not know
_JOB = "fleet-job"
_JOB_DONE = "fleet-job-done"
#: results copied into the ledger per fsync
_PUMP_BATCH = 1000
#: how often the pump looks for results when it found none
_PUMP_IDLE = 0.2
#: how long the pump lets results gather after a pass that found some
_PUMP_GATHER = 0.1


#: an item as the driver publishes it: (serial, account, key, payload)
_Published = tuple[int, str, str, str]


async def _reachable(url: str) -> None:
    """Raise `bulkrt.errors.RedisUnavailable` now if Redis cannot be used."""
    redis = await connect(url)
    await redis.aclose()


def worker_settings(settings: RunSettings, prefix: str, lease_ttl: float) -> WorkerSettings:
    """The settings of the driver's own worker, from the run's."""
    return WorkerSettings(
        model=settings.model(),
        api_base=settings.api_base,
        concurrency=settings.concurrency,
        retry=RetryPolicy(
            max_attempts=settings.max_attempts,
            initial=settings.backoff_initial,
            maximum=max(settings.backoff_initial, settings.backoff_max),
        ),
        park=settings.park_policy(),
        timeouts=settings.timeouts,
        grace=settings.grace,
        max_rps=settings.max_rps,
        lease_ttl=lease_ttl,
        prefix=prefix,
        explicit_limits=True,  # the run's limits are its job's
    )


@dataclass(slots=True)
class _Pumped:
    """What the pump copied into the ledger."""

    by_status: Counter[Status] = field(default_factory=Counter)
    #: HTTP requests the copied items spent (their ``attempts``)
    requests: int = 0


def drive_job(
    settings: RunSettings, redis_url: str, out: Progress, *, prefix: str, lease_ttl: float
) -> ExitCode:
    """Run (publish, work on, and record) the job through Redis; see the module docstring.

    As `bulkrt.shell.runner.run_job` ends a run: a SIGINT/SIGTERM that stopped nothing (every
    item of the job has its line in the ledger) ends it as done, with its summary; signals are
    then ignored until the process exits (`bulkrt run` exits with the code returned)."""
    late = LateSignals()
    try:
        return _drive_job(settings, redis_url, out, prefix=prefix, lease_ttl=lease_ttl, late=late)
    finally:
        late.restore(ignore=True)


def _drive_job(
    settings: RunSettings,
    redis_url: str,
    out: Progress,
    *,
    prefix: str,
    lease_ttl: float,
    late: LateSignals,
) -> ExitCode:
    recover_write_back(settings.accounts)
    accounts = load_accounts(settings.accounts)
    anyio.run(_reachable, redis_url, backend="asyncio")  # before the ledger exists, if new
    # As `bulkrt.shell.runner.run_job`: the ledger is read before its lock (bad input takes no
    # lock), the validation pass plans the resume, and under the lock the ledger is checked to
    # be as it was read.
    finished = finished_keys(settings.ledger)
    with open_jobs(settings.jobs, fmt=settings.fmt, campaign=settings.campaign) as files:
        check, resume = check_and_plan(settings, files, accounts, finished, out)
        with LedgerWriter(settings.ledger, secrets=accounts.secrets()) as ledger:
            finished, resume = resume_under_lock(
                ledger,
                finished,
                resume,
                lambda: read_items(files, accounts, check),
                users=user_ids(accounts),
                accounts_file=settings.accounts,
            )
            journal = SentJournal(settings.ledger)
            journal.open(finished=finished)
            journal.close()  # its evidence is loaded; the pump appends to its file from now on
            start = resume.start(check.items, (account for account, _ in check.counts))
            drive = _Drive(settings, accounts, ledger, prefix, lease_ttl, start, late)
            numbered = _Numbered(read_items(files, accounts, check))
            remaining = resume.remaining(numbered)
            payloads = (
                (
                    numbered.serial,
                    item.account,
                    item.key,
                    item_payload(
                        item,
                        _evidence(journal.evidence(item.key), lost_job=drive.lost_job),
                        journal.made(item),
                        superseded=item.key in remaining.superseded,
                    ),
                )
                for item in remaining
            )
            failure: LedgerError | None = None
            try:
                stopped = anyio.run(drive.run, redis_url, payloads, backend="asyncio")
            except LedgerError as exc:  # a journal mark, written outside the pump
                failure, stopped = exc, None
            finally:
                late.arm()  # from here until the outcome is printed
            failure = failure or drive.failure
            if failure is None:
                try:
                    ledger.sync()  # the last lines: failing here, the run has sent
                except LedgerError as exc:
                    failure = exc
            if failure is not None:
                with contextlib.suppress(LedgerError):  # its close syncs on the same disk
                    ledger.close()
                tally = drive.tally()
                where = (
                    f"{tally.finished} of {tally.total} items have their lines in the ledger; the "
                    f"results of the others wait in Redis (workers may go on with the job). Free "
                    f"space (or fix the disk), then run the same command to write them and finish "
                    f"the job"
                )
                return storage_failed(failure, tally, out, settings, where=where)
    tally = replace(drive.tally(), undone_by_rollback=resume.undone)
    # The ledger is closed: every line it got is synced. A stop that came once every item of
    # the job had its line stopped nothing: the run reports what it did.
    stopped = stopped or late.first
    if stopped is not None and not all_written(tally):
        out.stopped(tally, stopped.name, resume_command(settings))
        return ExitCode.INTERRUPTED if stopped is signal.SIGINT else ExitCode.TERMINATED
    if stopped is not None:
        _log.info("run_stop_after_the_last_item", signal=stopped.name, items=tally.total)
    out.summary(tally, settings.ledger, api_base=settings.api_base)
    unfinished = tally.total - tally.finished
    if unfinished > 0:
        # The job in Redis did not hold them: it was lost (Redis's data), or the job files
        # changed since it was published. The ledger knows what is left.
        click.echo(
            f"bulkrt run: {unfinished} item(s) of the job files were not run: the job in Redis "
            f"did not hold them (its data was lost, or the files changed since it was "
            f"published); run the same command again to send them:\n  " + resume_command(settings),
            err=True,
        )
        return ExitCode.ITEMS_FAILED
    failed = tally.count(Status.REJECTED) + tally.count(Status.ERROR) + tally.skipped_rejected
    # finished retweets a later rollback took back: not in the state the job asks for
    return ExitCode.ITEMS_FAILED if failed or resume.undone else ExitCode.OK


def _evidence(earlier: Evidence, *, lost_job: bool) -> Evidence:
    """What an item is published with: the journal's evidence of its earlier attempts, and,
    when the job that ran it before was lost with Redis's data, that any may have been applied.

    >>> _evidence(Evidence(), lost_job=True)
    Evidence(possible=True, made=False, owner=False)
    """
    return replace(earlier, possible=True) if lost_job else earlier


class _Numbered:
    """The job's items, each numbered in the order read (finished ones too): a restarted
    driver publishing again gives each item the same serial, so the store skips what it has."""

    def __init__(self, items: Iterator[Item]) -> None:
        self._items = items
        #: the number of the item yielded last
        self.serial = 0

    def __iter__(self) -> Iterator[Item]:
        for item in self._items:
            self.serial += 1
            yield item


class _Drive:
    """The async part of a driven run."""

    def __init__(
        self,
        settings: RunSettings,
        accounts: Accounts,
        ledger: LedgerWriter,
        prefix: str,
        lease_ttl: float,
        start: RunStats,
        late: LateSignals,
    ) -> None:
        self.settings = settings
        self.accounts = accounts
        self.ledger = ledger
        self.prefix = prefix
        self.lease_ttl = lease_ttl
        self.start = start
        #: the job's name in Redis (`_name_job`)
        self.job = ""
        #: set when the journal names a job Redis no longer has (its data was lost): what that
        #: job had in flight is unknown, so every item is published as possibly attempted
        self.lost_job = False
        self.pumped = _Pumped()
        self.journal_file = journal_path(settings.ledger)
        self.stopped: list[signal.Signals] = []
        #: the signals once the watch ends (`_watch_signals`)
        self.late = late
        self._pumping: anyio.CancelScope | None = None
        #: the ledger or journal write that failed: the pump stopped, and the driver's worker
        #: with it, as for a signal (its requests in flight are answered, their results kept)
        self.failure: LedgerError | None = None
        #: the accounts whose credentials need the operator, as the driver's own worker found
        #: them (the summary's "needs attention" lines; other workers' findings are in their logs)
        self.reauthorize: dict[str, str] = {}

    def tally(self) -> RunStats:
        """What the run did: where it started, plus what the pump copied into the ledger."""
        return replace(
            self.start,
            by_status=dict(self.pumped.by_status),
            requests=self.pumped.requests,
            reauthorize=dict(self.reauthorize),
        )

    async def run(self, url: str, payloads: Iterable[_Published]) -> signal.Signals | None:
        redis = await connect(url)
        try:
            return await self._run(redis, payloads)
        finally:
            await redis.aclose()

    async def _run(self, redis: Redis, payloads: Iterable[_Published]) -> signal.Signals | None:
        store = FleetStore(redis, self.prefix)
        await self._name_job(store)
        meta = JobMeta(
            self.job,
            str(self.settings.ledger.resolve()),
            socket.gethostname(),
            os.getpid(),
            self.start.total - self.start.skipped,
            time.time(),
            limits_document(self.settings.model()),
        )
        worker = FleetWorker(
            redis,
            self.accounts,
            worker_settings(self.settings, self.prefix, self.lease_ttl),
            info={"host": socket.gethostname(), "pid": str(os.getpid()), "role": "driver"},
        )
        self.reauthorize = worker.reauthorize
        # counted by the waiting workers before the accounts are theirs to claim: each claims
        # its fair share, this one included, all at once
        await worker.announce()
        if await patiently(lambda: store.register_job(meta), what="registering the job"):
            await self._publish(store, payloads)
        else:
            _log.info("job_found", job=self.job, detail="published by an earlier run; resuming")
            status = await patiently(partial(store.job_meta, self.job), what="the job's state")
            if status is not None and not status.published:
                await self._publish(store, payloads)  # the earlier driver died publishing it

        async def job_done() -> bool:
            status = await patiently(partial(store.job_meta, self.job), what="the job's state")
            return status is None or (status.published and status.queued == 0)

        finished = anyio.Event()
        async with anyio.create_task_group() as helpers:
            await helpers.start(self._watch_signals, worker)  # started, as in the runner
            async with anyio.create_task_group() as pumping:
                self._pumping = pumping.cancel_scope
                pumping.start_soon(self._pump_until_it_fails, store, finished, worker)
                await worker.run(until=job_done)
                finished.set()
            helpers.cancel_scope.cancel()
        if worker.abandoned:  # a second signal: stop at once, Redis reachable or not
            return self.stopped[0]
        # the job's accounts may have had their tokens rotated by other machines
        await worker.bring_accounts_file_up_to_date(sorted(set(self.start.accounts)))
        if self.failure is not None:
            return None  # what the pump could not copy waits in Redis for the next run
        status = await patiently(partial(store.job_meta, self.job), what="the job's state")
        # every item finished and copied into the ledger (also when a stop came as the last
        # ones finished; a result handed over after the last pump waits for the next run)
        if status is not None and status.published and not status.queued:
            if status.results_waiting:
                return self.stopped[0] if self.stopped else None
            self._journal_mark(_JOB_DONE)  # before Redis forgets it: never taken for lost
            await patiently(lambda: store.finish_job(self.job), what="forgetting the job")
        return self.stopped[0] if self.stopped else None

    async def _name_job(self, store: FleetStore) -> None:
        """The job's name: the one the ledger's journal names, while Redis has it (a driver run
        again, on this machine or another with the ledger and its journal); else a new one,
        written to the journal before anything is published."""
        recorded = None
        with contextlib.suppress(FileNotFoundError), self.journal_file.open("rb") as lines:
            for raw in lines:
                if b'"e":"fleet-job' in raw:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        doc = json.loads(raw)
                        recorded = None if doc["e"] == _JOB_DONE else str(doc["job"])
        if recorded is not None:
            if await patiently(partial(store.job_meta, recorded), what="the job's state"):
                self.job = recorded
                return
            self.lost_job = True
            _log.warning(
                "job_lost",
                job=recorded,
                detail="the journal names a job Redis no longer holds (its data was lost?): "
                "publishing what the ledger has not finished again, each item as possibly "
                "attempted (a retweet found in place is of undecidable origin, never the owner's)",
            )
        self.job = secrets.token_hex(8)
        self._journal_mark(_JOB)

    def _journal_mark(self, event: str) -> None:
        line = json.dumps({"e": event, "job": self.job}, separators=(",", ":")) + "\n"
        self._append_journal(line.encode())

    async def _publish(self, store: FleetStore, payloads: Iterable[_Published]) -> None:
        batch: list[tuple[int, str, str, str]] = []
        published = 0
        for serial, account, key, payload in payloads:
            published += 1
            batch.append((serial, self.accounts[account].user_id, key, payload))
            if len(batch) >= _PUBLISH_BATCH:
                await patiently(
                    partial(store.publish, self.job, batch, available=False), what="publishing"
                )
                batch = []
                if published % _AVAILABLE_EVERY == 0:  # a large job: let the workers start
                    await patiently(partial(store.make_available, self.job), what="publishing")
        if batch:
            await patiently(
                partial(store.publish, self.job, batch, available=False), what="publishing"
            )
        await patiently(partial(store.make_available, self.job), what="publishing")
        await patiently(lambda: store.finish_publishing(self.job), what="publishing")
        _log.info("job_published", job=self.job, items=published)

    async def _pump_until_it_fails(
        self, store: FleetStore, finished: anyio.Event, worker: FleetWorker
    ) -> None:
        """`_pump_forever`, and when the ledger or its journal cannot be written, the driver's
        worker stopped as for a signal: no new request, and those in flight answered with their
        results kept in Redis (cut off, they would be applied but unrecorded, and sent again)."""
        try:
            await self._pump_forever(store, finished)
        except LedgerError as exc:
            self.failure = exc
            _log.error("run_stopping", cause=str(exc), grace=self.settings.grace)
            worker.stop()

    async def _pump_forever(self, store: FleetStore, finished: anyio.Event) -> None:
        """Copy results and journal lines until the worker is done, then once more."""
        last_journal = self._last_journal_entry()
        tail = self._ledger_tail()
        beat = 0.0
        while True:
            ending = finished.is_set()
            if time.monotonic() - beat >= 1.0:  # for `bulkrt status --redis`
                beat = time.monotonic()
                await patiently(partial(store.driver_beat, self.job), what="the driver's beat")
            copied = await self._pump_journal(store, last_journal)
            if copied:
                last_journal = copied
            lines = await self._pump_results(store, tail)
            tail = set()
            if ending:
                return
            # found none: look again a little later; found some: let more gather first (fewer,
            # larger ledger writes, each with its fsync and its trip to the writing thread)
            with anyio.move_on_after(_PUMP_GATHER if lines else _PUMP_IDLE):
                await finished.wait()

    async def _pump_results(self, store: FleetStore, tail: set[str]) -> int:
        total = 0
        while True:
            entries = await patiently(
                lambda: store.results(self.job, count=_PUMP_BATCH), what="reading results"
            )
            if not entries:
                return total
            records = [LedgerRecord.from_json(line) for _, line in entries]
            # copied before a crash that came before its deletion: not again
            if tail:
                records = [record for record in records if record.to_json() not in tail]
            # the writes and their fsync in a thread: this event loop also runs the driver's
            # own worker, whose requests would wait behind the disk
            await anyio.to_thread.run_sync(self._write_ledger, records)
            for record in records:
                self.pumped.by_status[record.status] += 1
                self.pumped.requests += record.attempts
            ids = [entry for entry, _ in entries]
            await patiently(partial(store.drop_results, self.job, ids), what="dropping results")
            total += len(entries)

    async def _pump_journal(self, store: FleetStore, last: str | None) -> str | None:
        """Append the shared journal's new lines to ``<ledger>.sent``; the id of the last."""
        newest = None
        while True:
            entries = await patiently(
                lambda: store.journal_lines(self.job, count=_PUMP_BATCH), what="reading journal"
            )
            if not entries:
                return newest
            data = []
            for entry, line in entries:
                if last is not None and _entry_order(entry) <= _entry_order(last):
                    continue  # copied before a crash that came before its deletion
                # the line is a compact JSON object (`journal_line`): the field goes before its
                # closing brace, as json.dumps would write the object with it
                fleet = json.dumps(f"{self.job}/{entry}", ensure_ascii=False)
                data.append(f'{line[:-1]},"fleet":{fleet}}}\n')
                newest = entry
            if data:
                encoded = "".join(data).encode("utf-8", "surrogatepass")
                await anyio.to_thread.run_sync(self._append_journal, encoded)  # as the ledger
            ids = [entry for entry, _ in entries]
            await patiently(partial(store.drop_journal, self.job, ids), what="dropping journal")

    def _write_ledger(self, records: list[LedgerRecord]) -> None:
        """Append ``records`` to the ledger and fsync it (run in a worker thread, the pump's
        only: nothing else writes the ledger meanwhile)."""
        for record in records:
            self.ledger.write(record)
        self.ledger.sync()

    def _append_journal(self, data: bytes) -> None:
        try:
            fd = os.open(self.journal_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(
                self.journal_file, f"cannot open the journal: {exc.strerror}"
            ) from None
        try:
            append_lines(fd, self.journal_file, data)
        finally:
            os.close(fd)

    def _last_journal_entry(self) -> str | None:
        """The id of the last shared journal line of this job already in the file."""
        last = None
        prefix = f'"fleet":"{self.job}/'
        with contextlib.suppress(FileNotFoundError), self.journal_file.open("rb") as lines:
            for raw in lines:
                text = raw.decode("utf-8", "replace")
                start = text.find(prefix)
                if start >= 0:
                    last = text[start + len(prefix) :].split('"', 1)[0]
        return last

    def _ledger_tail(self) -> set[str]:
        """The ledger's last lines (at most one pump batch can have been copied twice)."""
        path = self.settings.ledger
        with contextlib.suppress(FileNotFoundError), path.open("rb") as ledger:
            size = ledger.seek(0, os.SEEK_END)
            ledger.seek(max(0, size - 2_000_000))
            return {line.decode("utf-8", "replace").rstrip("\n") for line in ledger.readlines()}
        return set()

    async def _watch_signals(
        self, worker: FleetWorker, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The first SIGINT/SIGTERM stops the driver's worker cleanly; a second one stops at
        once. When the watch ends (the job is done), `late` takes the signals over at once, as
        in `bulkrt.shell.runner` (Python's default handlers, which the receiver puts back,
        ended the run with a KeyboardInterrupt). Started (`task_status`) once the receiver is
        open: until then a signal meets the start-up's handler."""
        try:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                async for signum in signals:
                    if self.stopped:
                        _log.warning("run_stopping_now", signal=signum.name)
                        worker.abandon()
                        if self._pumping is not None:
                            self._pumping.cancel()  # what is not copied yet waits in Redis
                        continue
                    self.stopped.append(signum)
                    _log.warning("run_stopping", signal=signum.name, grace=self.settings.grace)
                    worker.stop()
        finally:
            self.late.arm()  # no checkpoint since the receiver ended


def _entry_order(entry: str) -> tuple[int, int]:
    """A stream entry id as a comparable pair.

    >>> _entry_order("1700000000000-2") < _entry_order("1700000000001-0")
    True
    """
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)
