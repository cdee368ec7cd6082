"""`bulkrt run` from settings to exit code: check the input, plan or take the ledger's lock,
skip what the ledger holds as finished, dispatch the rest, and report.

The order matters for resume. The job is read twice: the validation pass, which also plans the
resume (`bulkrt.ledger.resume.ResumeScan`) from the finished keys read just before it, and the
pass that sends. Bad input takes no lock, so those keys are read before the ledger's lock is
taken; under the lock, the ledger is checked to be exactly as it was read (`LedgerWriter.found`),
and read and planned again if another run wrote to it in between, so no second run can finish an
item unseen. Nothing is sent before every input check passed.
"""

from __future__ import annotations

import gc
import json
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import click
import structlog
from anyio.abc import TaskStatus

from bulkrt.core.first_answers import FirstAnswers
from bulkrt.core.items import Action, Item, Status
from bulkrt.core.plan import Plan, Timing, plan, rate_bound
from bulkrt.core.retry_policy import ParkPolicy, RetryPolicy, park_policy_for
from bulkrt.core.run_stats import RunStats
from bulkrt.core.scheduler import Scheduler
from bulkrt.core.tiers import PAYG_PRICES, LimitModel, Prices, Tier, limit_model
from bulkrt.errors import JobInputError, LedgerError, StorageError
from bulkrt.exitcodes import ExitCode
from bulkrt.jobs.loader import JobCheck, JobFile, JobFormat, check_jobs, open_jobs, read_items
from bulkrt.ledger.journal import SentJournal
from bulkrt.ledger.resume import (
    FinishedKeys,
    Remaining,
    ResumePlan,
    ResumeScan,
    finished_keys,
    ledger_notices,
)
from bulkrt.ledger.writer import LedgerWriter
from bulkrt.logs import register_secrets
from bulkrt.redaction import masked_command
from bulkrt.shell.accounts import Accounts, load_accounts, user_ids
from bulkrt.shell.accounts_file import recover_write_back, require_write_back
from bulkrt.shell.client import Timeouts, XClient
from bulkrt.shell.credentials import authorizer_for
from bulkrt.shell.dispatcher import Dispatcher, DispatchSettings
from bulkrt.shell.file_store import FileCredentialStore
from bulkrt.shell.progress import Progress, summary_json
from bulkrt.shell.sender import HttpSender

__all__ = [
    "LateSignals",
    "RunSettings",
    "all_written",
    "check_and_plan",
    "few_collections",
    "resume_command",
    "resume_under_lock",
    "run_job",
    "storage_failed",
]

_log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything `bulkrt run` was asked to do."""

    jobs: tuple[str, ...]
    accounts: Path
    ledger: Path
    api_base: str = "https://api.x.com"
    tier: Tier = Tier.PRO
    limit: int | None = None
    window: float | None = None
    concurrency: int = 32
    max_attempts: int = 5
    #: backoff between attempts: seconds before the first retry, and the most between two
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_rps: float | None = None
    dry_run: bool = False
    campaign: str | None = None
    fmt: JobFormat | None = None
    timeouts: Timeouts = Timeouts()
    price_retweet: Decimal | None = None
    price_undo: Decimal | None = None
    lookahead: int = 50_000
    grace: float = 20.0
    #: when a dry run's requests may go (the commands pass the simulation's), None: no estimate
    estimate: Callable[[Mapping[str, Sequence[Action]], LimitModel], Timing | None] | None = None

    def model(self) -> LimitModel:
        prices = None
        if self.price_retweet is not None or self.price_undo is not None:
            base = PAYG_PRICES if self.tier is Tier.PAYG else Prices()
            prices = Prices(
                self.price_retweet if self.price_retweet is not None else base.retweet,
                self.price_undo if self.price_undo is not None else base.undo,
                note="prices given on the command line",
            )
        return limit_model(self.tier, limit=self.limit, window=self.window, prices=prices)

    def park_policy(self) -> ParkPolicy:
        """Hidden-limit parks: minutes on the real API, a few windows on a short sandbox one."""
        return park_policy_for(self.window)


def check_and_plan(
    settings: RunSettings,
    files: Sequence[JobFile],
    accounts: Accounts,
    finished: FinishedKeys,
    out: Progress,
) -> tuple[JobCheck, ResumePlan]:
    """The validation pass, which also plans the resume against the ledger read before: every
    input problem and every disagreement with the ledger (a reused id, another user id for an
    account) raised together as one `JobInputError`; the ledger's notices printed as warnings."""
    scan = ResumeScan(
        finished, settings.ledger, users=user_ids(accounts), accounts_file=settings.accounts
    )
    try:
        check = check_jobs(files, accounts, on_warning=out.warning, on_row=scan.add_row)
    except JobInputError as exc:
        raise scan.joined(exc) from None  # the ledger's problems with the input, too
    resume = scan.plan()
    for notice in ledger_notices(finished, resume, settings.ledger):
        out.warning(notice)
    return check, resume


def run_job(settings: RunSettings, out: Progress, *, until_exit: bool = False) -> ExitCode:
    """Run (or plan) the job; raises `bulkrt.errors.InputError`/`LedgerError` for bad input.

    SIGINT/SIGTERM once the sending ended stop nothing if every item has its line: they are
    noted until the function returns. With ``until_exit`` (`bulkrt run`, which exits with the
    code returned), they are then ignored until the process exits (the interpreter's own
    teardown would otherwise die of the default handler it puts back)."""
    late = _LateSignals()
    try:
        return _run_job(settings, out, late)
    finally:
        late.restore(ignore=until_exit)


def _run_job(settings: RunSettings, out: Progress, late: _LateSignals) -> ExitCode:
    if not settings.dry_run:
        # a crash's rotated tokens, or those saved beside the ledger; each note is logged
        recover_write_back(settings.accounts, rescue_dirs=[settings.ledger.parent])
    accounts = load_accounts(settings.accounts)
    # Read before the ledger's lock (bad input takes no lock), so that the validation pass also
    # plans the resume; under the lock, the ledger is checked to be as it was read.
    finished = finished_keys(settings.ledger)
    with open_jobs(settings.jobs, fmt=settings.fmt, campaign=settings.campaign) as files:
        check, resume = check_and_plan(settings, files, accounts, finished, out)
        model = settings.model()
        if not settings.dry_run:
            require_write_back(accounts.path, _oauth2_used(accounts, check))
        if settings.dry_run:
            remaining = resume.remaining(read_items(files, accounts, check))
            out.plan(_dry_run(remaining, resume, model, settings.estimate), check.items)
            return ExitCode.OK
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
            start = resume.start(check.items, (account for account, _ in check.counts))
            remaining = resume.remaining(read_items(files, accounts, check))
            run = _Run(
                settings=settings,
                accounts=accounts,
                check=check,
                ledger=ledger,
                journal=journal,
                start=start,
                superseded=remaining.superseded,
                run_id=secrets.token_hex(6),
                expected=_expected_duration(check, resume, settings),
                out=out,
            )
            ended: list[RunStats] = []
            try:
                with few_collections():
                    stopped = anyio.run(
                        _dispatch,
                        run,
                        iter(remaining),
                        ended,
                        late,
                        backend="asyncio",
                        backend_options=_loop_options(),
                    )
            except StorageError as exc:
                journal.close()
                _close_after_failure(ledger)
                return _storage_failed(exc, ended[0] if ended else start, out, settings)
            finally:
                late.arm()  # from here until the outcome is printed
            journal.close()
            tally = replace(ended[0], undone_by_rollback=resume.undone)
            if journal.failure is not None:
                _close_after_failure(ledger)
                return _storage_failed(journal.failure, tally, out, settings)
            try:
                ledger.sync()  # the last lines: failing here, the run has sent; not bad input
            except LedgerError as exc:
                return _storage_failed(exc, tally, out, settings)
    # The ledger is closed: every line it got is synced. A stop that came once every item of
    # the job had its line (none in flight) stopped nothing: the run reports what it did.
    stopped = stopped or late.first
    if stopped is not None and not _all_written(tally):
        out.stopped(tally, stopped.name, _resume_command(settings))
        return ExitCode.INTERRUPTED if stopped is signal.SIGINT else ExitCode.TERMINATED
    if stopped is not None:
        _log.info("run_stop_after_the_last_item", signal=stopped.name, items=tally.total)
    out.summary(tally, settings.ledger, api_base=settings.api_base)
    if tally.misconfiguration is not None:
        return ExitCode.MISCONFIGURED
    failed = tally.count(Status.REJECTED) + tally.count(Status.ERROR) + tally.skipped_rejected
    # finished retweets a later rollback took back: not in the state the job asks for
    return ExitCode.ITEMS_FAILED if failed or resume.undone else ExitCode.OK


#: the longest a request waits for others to share its journal fsync (seconds): an fsync costs
#: about 0.1 ms of CPU, and answers that come one at a time made one fsync per request; a longer
#: wait saves more fsyncs but costs items per second when the answers come back fast
_JOURNAL_LINGER = 0.005

#: allocations between two collections of the youngest generation during a run (Python's 700
#: made collecting cycles cost about 5% of a run's CPU: every request leaves hundreds of
#: short-lived objects, each collection scans the survivors, and items held by the scheduler
#: were scanned again and again on their way to the oldest generation)
_YOUNG_COLLECTION = 10_000


@contextmanager
def few_collections() -> Iterator[None]:
    """Collect cycles rarely while the run sends: what start-up made (modules, accounts, the
    resume's keys) is set aside for good (`gc.freeze`) and the youngest generation is collected
    every `_YOUNG_COLLECTION` allocations. Both are undone on leaving (a test runs many runs in
    one process). Cyclic garbage waits longer, in memory that stays bounded."""
    thresholds = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0  # else someone else set objects aside: leave them be
    if freeze:
        gc.freeze()
    gc.set_threshold(_YOUNG_COLLECTION, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()


def _loop_options() -> dict[str, object]:
    """The event loop of a real run: uvloop's (libuv), which spends a fraction of asyncio's CPU
    per request, or asyncio's own where uvloop cannot be imported."""
    try:
        import uvloop
    except ImportError:
        return {}
    return {"loop_factory": uvloop.new_event_loop}


def resume_under_lock(
    ledger: LedgerWriter,
    finished: FinishedKeys,
    resume: ResumePlan,
    items: Callable[[], Iterator[Item]],
    *,
    users: Mapping[str, str],
    accounts_file: Path,
) -> tuple[FinishedKeys, ResumePlan]:
    """What to resume from once ``ledger``'s lock is held: the finished keys and the plan made
    before it, unless another run wrote to the ledger in between; then the ledger is read again
    and the job (``items()``) planned again: a third pass over it, in that case only. The new
    plan makes the first plan's checks against the ledger as it now is: a reused ``id``, and an
    account whose lines hold another user id than ``users`` (the accounts file's) gives it
    (`JobInputError`, nothing sent)."""
    if ledger.found == finished.stamp:
        return finished, resume
    finished = finished_keys(ledger.path)
    scan = ResumeScan(finished, ledger.path, users=users, accounts_file=accounts_file)
    if len(finished):  # no finished key: the job need not be read again
        for item in items():
            scan.add(item)
    return finished, scan.plan()


def _all_written(tally: RunStats) -> bool:
    """Whether every item of the job has its line in the ledger (this run's or an earlier
    one's) and none is in flight: after the last item, a stop has nothing left to stop."""
    return tally.finished == tally.total and tally.in_flight == 0


class _LateSignals:
    """SIGINT/SIGTERM after the sending ended (while the ledger is closed and the outcome
    printed): the first is noted (`first`) and decides the outcome only if items are left; a
    second one stops at once, as during the run."""

    def __init__(self) -> None:
        self.first: signal.Signals | None = None
        #: the handlers before the run (the run's own replaced them), put back by `restore`
        self._before: dict[signal.Signals, Any] = {
            signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        self._armed = False

    def arm(self) -> None:
        """Note the signals from now on."""
        self._armed = True
        for signum in self._before:
            signal.signal(signum, self._note)

    def restore(self, *, ignore: bool = False) -> None:
        """Put back the handlers of before the run, or (``ignore``) ignore the signals from
        now; nothing if never armed."""
        if self._armed:
            for signum, handler in self._before.items():
                put_back = handler if handler is not None else signal.SIG_DFL  # not Python's
                signal.signal(signum, signal.SIG_IGN if ignore else put_back)
            self._armed = False

    def _note(self, signum: int, frame: object) -> None:
        if self.first is not None:
            raise SystemExit(128 + signum)
        self.first = signal.Signals(signum)


def _resume_command(settings: RunSettings) -> str:
    """The command that resumes this run, as the operator can paste it; a run that read its
    job from standard input says that the same job must be piped to it again."""
    command = shlex.join(masked_command(["bulkrt", *sys.argv[1:]]))
    if "-" in settings.jobs:
        command += "   # with the same job piped to it again (it was read from standard input)"
    return command


def _close_after_failure(ledger: LedgerWriter) -> None:
    """Close ``ledger`` after a storage failure was met: a second failure (its last sync on the
    same broken disk) must not hide the first behind the message of a ledger that could not be
    opened ("nothing was sent")."""
    with suppress(LedgerError):
        ledger.close()


def _storage_failed(
    exc: LedgerError,
    tally: RunStats,
    out: Progress,
    settings: RunSettings,
    *,
    where: str | None = None,
) -> ExitCode:
    """One message for a ledger or journal that could not be written, and the resume command;
    with ``--json``, the run's summary object on stdout, with the failure in it. ``where``
    says where the run stands and what the command will do (the multi-machine driver's own)."""
    command = _resume_command(settings)
    if out.json:
        document = summary_json(tally, str(settings.ledger), settings.api_base)
        document["storage_failed"] = {"path": str(exc.path), "error": exc.message}
        document["resume"] = command
        click.echo(json.dumps(document, sort_keys=True))
    if where is None:
        where = (
            f"Nothing more was sent after {tally.finished} of {tally.total} items; free space "
            f"(or fix the disk), then resume with the same command"
        )
    click.echo(
        f"bulkrt run: stopped: cannot write {exc.path}: {exc.message}. {where}:\n  {command}",
        err=True,
    )
    return ExitCode.STORAGE_FAILED


def _oauth2_used(accounts: Accounts, check: JobCheck) -> list[str]:
    """The OAuth 2.0 accounts the job uses (their tokens are written back when refreshed)."""
    return sorted(a for a, _ in check.counts if a in accounts and accounts[a].oauth2 is not None)


def _expected_duration(check: JobCheck, resume: ResumePlan, settings: RunSettings) -> float:
    """How long the run should take, over what is left of the job (all of it on a first run):
    the limits' bound on the validation pass's counts, so the estimate reads no job file and
    costs nothing before the first request (the dry run simulates the job instead)."""
    return rate_bound(resume.left(check.counts), settings.model(), max_rps=settings.max_rps)


def _dry_run(
    remaining: Remaining,
    resume: ResumePlan,
    model: LimitModel,
    estimate: Callable[[Mapping[str, Sequence[Action]], LimitModel], Timing | None] | None,
) -> Plan:
    """The plan of the items the run would send: neither finished nor superseded."""
    pending: dict[str, list[Action]] = {}
    for item in remaining:
        if item.key not in remaining.superseded:
            pending.setdefault(item.account, []).append(item.action)
    timing = estimate(pending, model) if estimate else None
    return plan(
        pending, model, done=resume.done_per_account(), superseded=resume.superseded, timing=timing
    )


@dataclass(frozen=True, slots=True)
class _Run:
    """What the async part of a run works with."""

    settings: RunSettings
    accounts: Accounts
    check: JobCheck
    ledger: LedgerWriter
    journal: SentJournal
    #: what the run starts from
    start: RunStats
    #: keys not to send, filled as the items are read (`bulkrt.ledger.resume.Remaining`)
    superseded: Container[str]
    run_id: str
    #: seconds the limit model expects the run to take
    expected: float
    out: Progress


async def _dispatch(
    run: _Run, items: Iterator[Item], ended: list[RunStats], late: _LateSignals
) -> signal.Signals | None:
    """The async part of a run; returns the signal that stopped it, if one did, and puts what
    the run did in ``ended`` (also when the ledger could not be written). Once the sending
    ended, signals go to ``late``."""
    settings, accounts, check, run_id = run.settings, run.accounts, run.check, run.run_id
    used = sorted({account for account, _ in check.counts})
    scheduler = Scheduler(
        settings.model(),
        concurrency=settings.concurrency,
        retry=RetryPolicy(
            max_attempts=settings.max_attempts,
            initial=settings.backoff_initial,
            maximum=max(settings.backoff_initial, settings.backoff_max),
        ),
        park=settings.park_policy(),
    )
    # the journal's fsyncs in groups, each request held back a few milliseconds at most
    run.journal.gather(_JOURNAL_LINGER, lambda: scheduler.in_flight)
    stopped: list[signal.Signals] = []
    async with XClient(
        settings.api_base, timeouts=settings.timeouts, max_connections=settings.concurrency
    ) as client:
        dispatcher = Dispatcher(
            scheduler,
            _senders(accounts, used, client, run.ledger),
            run.ledger,
            run_id=run_id,
            stats=run.start,
            journal=run.journal,
            superseded=run.superseded,
            settings=DispatchSettings(
                lookahead=settings.lookahead,
                grace=settings.grace,
                max_rps=settings.max_rps,
                api_base=client.base_url,
            ),
            first_answers=FirstAnswers(used),
        )
        async with anyio.create_task_group() as helpers:
            # started, not only scheduled: until the receiver is open, a signal meets the
            # start-up's handler (`bulkrt.launch.stopped`), whose exit raised inside the
            # dispatcher's synchronous first feed (a resume skipping many finished items) became
            # a traceback through its task groups and exit 1
            await helpers.start(_watch_signals, dispatcher, stopped, late)
            helpers.start_soon(run.out.follow, dispatcher, run.expected)
            _log.info("run_started", run=run_id, items=check.items, accounts=len(used))
            stats = await dispatcher.run(items)
            helpers.cancel_scope.cancel()
        late.arm()  # armed already as the signal watch ended (see `_watch_signals`)
        ended.append(stats)
        if dispatcher.failure is not None:
            raise dispatcher.failure
        if dispatcher.store_failure is not None:
            raise dispatcher.store_failure
    _log.info("run_finished", run=run_id, requests=stats.requests)
    return stopped[0] if stopped else None


def _senders(
    accounts: Accounts, used: Sequence[str], client: XClient, ledger: LedgerWriter
) -> dict[str, HttpSender]:
    store = FileCredentialStore(accounts.path, rescue_dirs=[ledger.path.parent])

    def learn(values: list[str | None]) -> None:
        """Every token issued during the run is masked from the moment it exists."""
        register_secrets(values)
        ledger.learn(values)

    return {
        name: HttpSender(
            client,
            authorizer_for(
                accounts[name],
                token_endpoint=client.token,
                store=store,
                clock=time.time,
                on_secret=learn,
            ),
            accounts[name].user_id,
        )
        for name in used
    }


async def _watch_signals(
    dispatcher: Dispatcher,
    stopped: list[signal.Signals],
    late: _LateSignals,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """The first SIGINT/SIGTERM stops dispatching cleanly; a second one stops at once. When
    the watch ends, ``late`` takes the signals over at once: the receiver's end puts back
    Python's default handlers, and a SIGINT meeting those (while the task group winds down)
    raised KeyboardInterrupt ("Aborted!", exit 1) after the last item was written."""
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if stopped:
                    _log.warning("run_stopping_now", signal=signum.name)
                    dispatcher.abandon()
                    continue
                stopped.append(signum)
                _log.warning("run_stopping", signal=signum.name, grace=dispatcher.grace)
                dispatcher.stop()
    finally:
        late.arm()  # no checkpoint since the receiver ended


#: the multi-machine driver (`bulkrt.fleet.driver`) ends a run as this one does: the late
#: signals, the test of a job with every line written, the resume command and a storage failure
LateSignals = _LateSignals
all_written = _all_written
resume_command = _resume_command
storage_failed = _storage_failed
