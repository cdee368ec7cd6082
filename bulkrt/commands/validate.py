"""`bulkrt validate`: check job files and the accounts file without sending anything.

Every problem is printed on stderr as ``FILE:LINE: field: what is wrong``, then a one-line
summary; the exit code is 2 if there was any problem, else 0 with the item counts on stdout.
When the accounts file itself is broken, the job files are still checked (all but the
``account`` column) so one run shows everything that needs fixing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from bulkrt import logs
from bulkrt.commands.options import (
    JSON_PROBLEMS,
    accounts_option,
    campaign_option,
    format_option,
    jobs_argument,
    problems_document,
)
from bulkrt.commands.outputs import ledger_refusal
from bulkrt.errors import AccountsError, JobInputError, LedgerError, Problem
from bulkrt.exitcodes import ExitCode
from bulkrt.jobs.loader import JobCheck, JobFormat, check_jobs, open_jobs
from bulkrt.shell.accounts import load_accounts, user_ids

if TYPE_CHECKING:
    from bulkrt.ledger.resume import ResumeScan

__all__ = ["command"]


class _AnyAccount:
    """Stands in for the accounts when their file is broken: every name passes."""

    def __contains__(self, name: object) -> bool:
        return True


#: shown at the end of `--help`
_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt validate spring.csv --accounts accounts.json",
        "  bulkrt validate spring.csv --accounts accounts.json --ledger spring.jsonl --json",
    ]
)


@click.command("validate", epilog=_EXAMPLES)
@jobs_argument
@accounts_option
@format_option
@campaign_option
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also count the items this ledger already holds as finished (read only).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result (the counts, or every problem) as one JSON object on stdout.",
)
def command(
    jobs: tuple[str, ...],
    accounts_path: Path,
    fmt: str | None,
    campaign: str | None,
    ledger: Path | None,
    as_json: bool,
) -> None:
    """Check JOB files (CSV or JSONL, '.gz', '-' for stdin) and the accounts file; send nothing.

    Prints every problem as FILE:LINE: field: what is wrong, and exits 2 if there is any;
    otherwise prints the items per account and action and exits 0.
    """
    logs.configure()
    problems = _Problems(files=len(jobs), as_json=as_json)
    report, fail, warn = problems.report, problems.fail, problems.warn

    if ledger is not None:
        refused = ledger_refusal(
            ledger,
            inputs={
                **{f"the job {job}": Path(job) for job in jobs if job != "-"},
                "the accounts file": accounts_path,
            },
        )
        if refused is not None:
            report(Problem(str(ledger), None, "--ledger", refused))
            ledger = None  # not read: what it is was reported
    accounts: Container[str] = _AnyAccount()
    users = None
    try:
        accounts = load_accounts(accounts_path)
        users = user_ids(accounts)
    except AccountsError as exc:
        for problem in exc.problems:
            report(problem)
    try:
        scan = _scan(ledger, users, accounts_path)
        with open_jobs(jobs, fmt=JobFormat(fmt) if fmt else None, campaign=campaign) as files:
            try:
                on_row = scan.add_row if scan is not None else None
                check = check_jobs(
                    files, accounts, on_problem=report, on_warning=warn, on_row=on_row
                )
            except JobInputError:
                _report_scan(scan, report)
                fail()  # every problem was printed as it was found
            _report_scan(scan, report)
            if problems.count:
                fail()
            finished = _finished(scan)
    except JobInputError as exc:  # files missing, unknown format, or changed while read
        for problem in exc.problems:
            report(problem)
        fail()
    except LedgerError as exc:
        click.echo(f"bulkrt validate: {exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    if as_json:
        document = _counts_json(check, len(jobs), finished)
        document["warnings"] = problems.warnings
        click.echo(json.dumps(document, sort_keys=True))
        return
    _print_counts(check, len(jobs), finished, ledger)


class _Problems:
    """Every problem found, printed on stderr as found; ``fail`` ends the command (exit 2)."""

    def __init__(self, *, files: int, as_json: bool) -> None:
        self.count = 0
        self._files = files
        self._as_json = as_json
        self._kept: list[Problem] = []
        #: the first warnings, as printed (for ``--json``)
        self.warnings: list[str] = []

    def report(self, problem: Problem) -> None:
        self.count += 1
        click.echo(str(problem), err=True)
        if self._as_json and len(self._kept) < JSON_PROBLEMS:
            self._kept.append(problem)

    def warn(self, problem: Problem) -> None:
        click.echo(f"warning: {problem}", err=True)
        if len(self.warnings) < JSON_PROBLEMS:
            self.warnings.append(str(problem))

    def fail(self) -> NoReturn:
        if self._as_json:
            click.echo(json.dumps(problems_document(self.count, self._kept), sort_keys=True))
        _fail(self.count, self._files)


def _scan(
    ledger: Path | None, users: Mapping[str, str] | None, accounts_path: Path
) -> ResumeScan | None:
    """The run's resume scan over ``ledger`` (None: no ``--ledger``), to ride on the
    validation pass: it checks the ledger's user ids against the accounts file's and every
    finished key against its row, and counts what the run would skip."""
    if ledger is None:
        return None
    from bulkrt.ledger.resume import ResumeScan, finished_keys  # only with --ledger

    if ledger.exists() and not ledger.is_file():
        raise LedgerError(ledger, "not a regular file")
    return ResumeScan(finished_keys(ledger), ledger, users=users, accounts_file=accounts_path)


def _report_scan(scan: ResumeScan | None, report: Callable[[Problem], None]) -> None:
    """Report every problem the ledger finds with the input (`ResumeScan.problems`)."""
    if scan is None:
        return
    found, total = scan.problems()
    for problem in found:
        report(problem)
    if total > len(found):
        click.echo(f"... and {total - len(found)} more rows with a reused id", err=True)


def _finished(scan: ResumeScan | None) -> tuple[int, int] | None:
    """The job's items the ledger has finished and those it supersedes (the run's resume pass
    counts both; neither is sent)."""
    if scan is None:
        return None
    resume = scan.plan()
    return resume.skipped, sum(resume.superseded.values())


def _fail(problems: int, files: int) -> NoReturn:
    plural = "" if problems == 1 else "s"
    click.echo(
        f"bulkrt validate: {problems} problem{plural} in {files} job file(s) or the accounts "
        "file; nothing was sent",
        err=True,
    )
    raise SystemExit(ExitCode.BAD_INPUT)


def _counts_json(check: JobCheck, files: int, resumed: tuple[int, int] | None) -> dict[str, object]:
    finished, superseded = resumed or (None, None)
    by_account: dict[str, dict[str, int]] = {}
    for (account, action), n in sorted(check.counts.items()):
        by_account.setdefault(account, {})[action.value] = n
    return {
        "ok": True,
        "items": check.items,
        "files": files,
        "by_account": by_account,
        "finished": finished,
        "superseded": superseded,
        "to_send": None if resumed is None else check.items - sum(resumed),
    }


def _print_counts(
    check: JobCheck, files: int, resumed: tuple[int, int] | None, ledger: Path | None
) -> None:
    click.echo(f"ok: {check.items} items in {files} job file(s)")
    width = max((len(account) for account, _ in check.counts), default=7)
    for (account, action), n in sorted(check.counts.items()):
        click.echo(f"  {account:<{width}}  {action.value:<7}  {n}")
    if resumed is not None:
        finished, superseded = resumed
        click.echo(
            f"{ledger}: {finished} of these items already finished; "
            + (f"{superseded} superseded (not sent); " if superseded else "")
            + f"{check.items - finished - superseded} to send"
        )
