"""`bulkrt run` from settings to exit code: check the input, plan or take the ledger's lock,
skip what the ledger holds as finished, dispatch the rest, and report.

The order matters for resume: the ledger's lock is taken *before* the finished keys are read, so
no second run can finish an item in between; nothing is sent before every input check passed.
"""

from __future__ import annotations

import secrets
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import anyio
import click
import structlog

from bulkrt.core.first_answers import FirstAnswers
from bulkrt.core.items import Action, Item, Status
from bulkrt.core.plan import Plan, Timing, plan
from bulkrt.core.retry_policy import ParkPolicy, RetryPolicy
from bulkrt.core.scheduler import Scheduler
from bulkrt.core.tiers import PAYG_PRICES, LimitModel, Prices, Tier, limit_model
from bulkrt.errors import InputError, LedgerError, Problem, StorageError
from bulkrt.exitcodes import ExitCode
from bulkrt.jobs.loader import JobCheck, JobFile, JobFormat, check_jobs, open_jobs, read_items
from bulkrt.ledger.journal import SentJournal
from bulkrt.ledger.reader import FinishedKeys, finished_keys, identity, read_ledger
from bulkrt.ledger.writer import LedgerWriter
from bulkrt.logs import register_secrets
from bulkrt.shell.accounts import Accounts, load_accounts
from bulkrt.shell.accounts_file import recover_write_back
from bulkrt.shell.client import Authorizer, Timeouts, XClient
from bulkrt.shell.credentials import authorizer_for
from bulkrt.shell.dispatcher import Dispatcher, DispatchSettings, RunTally
from bulkrt.shell.file_store import FileCredentialStore
from bulkrt.shell.progress import Progress

__all__ = ["RunSettings", "run_job"]

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
    #: None: a live display on a terminal, log lines otherwise
    progress: bool | None = None
    #: when pending requests may go (the commands pass the simulation's), None: no estimate
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
        if self.window is not None and self.window < 60:
            return ParkPolicy(base=max(1.0, 2 * self.window), maximum=max(10.0, 20 * self.window))
        return ParkPolicy()


def run_job(settings: RunSettings, out: Progress) -> ExitCode:
    """Run (or plan) the job; raises `bulkrt.errors.InputError`/`LedgerError` for bad input."""
    if not settings.dry_run:
        recover_write_back(settings.accounts)  # a crash's rotated tokens; each note is logged
    accounts = load_accounts(settings.accounts)
    with open_jobs(settings.jobs, fmt=settings.fmt, campaign=settings.campaign) as files:
        check = check_jobs(files, accounts, on_warning=out.warning)
        model = settings.model()
        if settings.dry_run:
            finished = finished_keys(settings.ledger)
            pending = read_items(files, accounts, check)
            out.plan(_dry_run(pending, finished, model, settings.estimate), check.items)
            return ExitCode.OK
        with LedgerWriter(settings.ledger, secrets=accounts.secrets()) as ledger:
            finished = finished_keys(settings.ledger)  # read under the lock
            journal = SentJournal(settings.ledger)
            journal.open(finished=finished)
            superseded = _resume_pass(
                read_items(files, accounts, check) if len(finished) else iter(()),
                finished,
                settings.ledger,
            )
            tally = RunTally(total=check.items, accounts=sorted({a for a, _ in check.counts}))
            run = _Run(
                settings=settings,
                accounts=accounts,
                check=check,
                ledger=ledger,
                journal=journal,
                tally=tally,
                superseded=superseded,
                run_id=secrets.token_hex(6),
                expected=_expected_duration(files, accounts, check, finished, settings),
                out=out,
            )
            items = _unfinished(read_items(files, accounts, check), finished, tally)
            try:
                stopped = anyio.run(_dispatch, run, items, backend="asyncio")
            except StorageError as exc:
                journal.close()
                return _storage_failed(exc, tally, out)
            journal.close()
            if journal.failure is not None:
                return _storage_failed(journal.failure, tally, out)
    if stopped is not None:
        out.stopped(tally, stopped.name, shlex.join(["bulkrt", *sys.argv[1:]]))
        return ExitCode.INTERRUPTED if stopped is signal.SIGINT else ExitCode.TERMINATED
    out.summary(tally, settings.ledger, api_base=settings.api_base)
    if tally.misconfiguration is not None:
        return ExitCode.MISCONFIGURED
    failed = (
        tally.by_status[Status.REJECTED] + tally.by_status[Status.ERROR] + tally.skipped_rejected
    )
    return ExitCode.ITEMS_FAILED if failed else ExitCode.OK


def _resume_pass(items: Iterator[Item], finished: FinishedKeys, ledger: Path) -> set[str]:
    """Before a resumed run sends anything: check every finished key against its row, and find
    the unfinished items a later item on the same (account, Tweet) has overtaken.

    A key the ledger holds as finished for another row (another campaign, account, Tweet or
    action: an ``id`` reused) is an input error, never a silent skip. An unfinished item
    followed, in job order, by a finished one on the same account and Tweet is *superseded*:
    sending it now would reverse the job's later word on that Tweet, so it is recorded as
    ``superseded`` and not sent.
    """
    superseded: set[str] = set()
    waiting: dict[tuple[str, str], list[str]] = {}
    for item in items:
        pair = (item.account, item.tweet_id)
        if item.key not in finished:
            waiting.setdefault(pair, []).append(item.key)
            continue
        row = identity(item.campaign, item.account, item.tweet_id, item.action.value)
        if not finished.same_row(item.key, row):
            raise InputError([_reused_key(item, ledger)])
        superseded.update(waiting.pop(pair, ()))
    return superseded


def _reused_key(item: Item, ledger: Path) -> Problem:
    """The problem of a key the ledger finished for another row, naming both rows."""
    earlier = next((r for r in read_ledger(ledger) if r.key == item.key), None)
    then = (
        f"campaign {earlier.campaign!r}, account {earlier.account}, {earlier.action} of Tweet "
        f"{earlier.tweet_id}"
        if earlier is not None
        else "another row"
    )
    now = (
        f"campaign {item.campaign!r}, account {item.account}, {item.action} of Tweet "
        f"{item.tweet_id}"
    )
    return Problem(
        item.source,
        item.line,
        "id",
        f"{item.key!r} is already finished in the ledger {ledger} for {then}; this row is "
        f"{now}. Give each item its own id (or use another ledger)",
    )


def _storage_failed(exc: LedgerError, tally: RunTally, out: Progress) -> ExitCode:
    """One message for a ledger or journal that could not be written, and the resume command."""
    command = shlex.join(["bulkrt", *sys.argv[1:]])
    del out  # the message goes to stderr whatever the display
    click.echo(
        f"bulkrt run: stopped: cannot write {exc.path}: {exc.message}. Nothing more was sent "
        f"after {tally.finished} of {tally.total} items; free space (or fix the disk), then "
        f"resume with the same command:\n  {command}",
        err=True,
    )
    return ExitCode.STORAGE_FAILED


def _expected_duration(
    files: list[JobFile],
    accounts: Accounts,
    check: JobCheck,
    finished: FinishedKeys,
    settings: RunSettings,
) -> float:
    """How long the limit model expects the run to take: over the whole job on a first run, and
    over what is left (one more pass over the job files) when resuming."""
    model, estimate = settings.model(), settings.estimate
    if not len(finished):
        return _dry_run(iter(()), finished, model, estimate, counts=check.counts).duration
    return _dry_run(read_items(files, accounts, check), finished, model, estimate).duration


def _unfinished(items: Iterator[Item], finished: FinishedKeys, tally: RunTally) -> Iterator[Item]:
    for item in items:
        if item.key in finished:
            tally.skipped += 1
            tally.skipped_rejected += finished.rejected(item.key)
            continue
        yield item


def _dry_run(
    items: Iterator[Item],
    finished: FinishedKeys,
    model: LimitModel,
    estimate: Callable[[Mapping[str, Sequence[Action]], LimitModel], Timing | None] | None,
    *,
    counts: Mapping[tuple[str, Action], int] | None = None,
) -> Plan:
    """The plan of the items not finished yet (or, given ``counts``, of all of them)."""
    pending: dict[str, list[Action]] = {}
    done: dict[str, int] = {}
    for item in items:
        if item.key in finished:
            done[item.account] = done.get(item.account, 0) + 1
        else:
            pending.setdefault(item.account, []).append(item.action)
    for (account, action), n in (counts or {}).items():
        pending.setdefault(account, []).extend([action] * n)
    return plan(pending, model, done=done, timing=estimate(pending, model) if estimate else None)


@dataclass(frozen=True, slots=True)
class _Run:
    """What the async part of a run works with."""

    settings: RunSettings
    accounts: Accounts
    check: JobCheck
    ledger: LedgerWriter
    journal: SentJournal
    tally: RunTally
    #: keys not to send (`_resume_pass`)
    superseded: set[str]
    run_id: str
    #: seconds the limit model expects the run to take
    expected: float
    out: Progress


async def _dispatch(run: _Run, items: Iterator[Item]) -> signal.Signals | None:
    """The async part of a run; returns the signal that stopped it, if one did."""
    settings, accounts, check, tally, run_id = (
        run.settings, run.accounts, run.check, run.tally, run.run_id
    )  # fmt: skip
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
    stopped: list[signal.Signals] = []
    async with XClient(
        settings.api_base, timeouts=settings.timeouts, max_connections=settings.concurrency
    ) as client:
        authorizers = _authorizers(accounts, used, client, run.ledger)
        dispatcher = Dispatcher(
            scheduler,
            client,
            authorizers,
            {name: accounts[name].user_id for name in used},
            run.ledger,
            run_id=run_id,
            tally=tally,
            journal=run.journal,
            superseded=run.superseded,
            settings=DispatchSettings(
                lookahead=settings.lookahead, grace=settings.grace, max_rps=settings.max_rps
            ),
            first_answers=FirstAnswers(used),
        )
        async with anyio.create_task_group() as helpers:
            helpers.start_soon(_watch_signals, dispatcher, stopped)
            helpers.start_soon(run.out.follow, dispatcher, run.expected)
            _log.info("run_started", run=run_id, items=check.items, accounts=len(used))
            await dispatcher.run(items)
            helpers.cancel_scope.cancel()
        if dispatcher.failure is not None:
            raise dispatcher.failure
    _log.info("run_finished", run=run_id, requests=tally.requests)
    return stopped[0] if stopped else None


def _authorizers(
    accounts: Accounts, used: Sequence[str], client: XClient, ledger: LedgerWriter
) -> dict[str, Authorizer]:
    store = FileCredentialStore(accounts.path)

    def learn(values: list[str | None]) -> None:
        """Every token issued during the run is masked from the moment it exists."""
        register_secrets(values)
        ledger.learn(values)

    return {
        name: authorizer_for(
            accounts[name],
            token_endpoint=client.token,
            store=store,
            clock=time.time,
            on_secret=learn,
        )
        for name in used
    }


async def _watch_signals(dispatcher: Dispatcher, stopped: list[signal.Signals]) -> None:
    """The first SIGINT/SIGTERM stops dispatching cleanly; a second one stops at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stopped:
                _log.warning("run_stopping_now", signal=signum.name)
                dispatcher.abandon()
                continue
            stopped.append(signum)
            _log.warning("run_stopping", signal=signum.name, grace=dispatcher.grace)
            dispatcher.stop()
