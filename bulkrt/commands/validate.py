"""`bulkrt validate`: check job files and the accounts file without sending anything.

Every problem is printed on stderr as ``FILE:LINE: field: what is wrong``, then a one-line
summary; the exit code is 2 if there was any problem, else 0 with the item counts on stdout.
When the accounts file itself is broken, the job files are still checked (all but the
``account`` column) so one run shows everything that needs fixing.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import NoReturn

import click

from bulkrt import logs
from bulkrt.accounts import load_accounts
from bulkrt.commands.options import (
    accounts_option,
    campaign_option,
    format_option,
    jobs_argument,
)
from bulkrt.errors import AccountsError, JobInputError, LedgerError, Problem
from bulkrt.exitcodes import ExitCode
from bulkrt.ledger_reader import finished_keys
from bulkrt.loader import JobCheck, JobFile, JobFormat, check_jobs, open_jobs, read_items

__all__ = ["command"]


class _AnyAccount:
    """Stands in for the accounts when their file is broken: every name passes."""

    def __contains__(self, name: object) -> bool:
        return True


@click.command("validate")
@jobs_argument
@accounts_option
@format_option
@campaign_option
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also count the items this ledger already holds as finished (read only).",
)
def command(
    jobs: tuple[str, ...],
    accounts_path: Path,
    fmt: str | None,
    campaign: str | None,
    ledger: Path | None,
) -> None:
    """Check JOB files (CSV or JSONL, '.gz', '-' for stdin) and the accounts file; send nothing.

    Prints every problem as FILE:LINE: field: what is wrong, and exits 2 if there is any;
    otherwise prints the items per account and action and exits 0.
    """
    logs.configure()
    problems = 0

    def report(problem: Problem) -> None:
        nonlocal problems
        problems += 1
        click.echo(str(problem), err=True)

    def warn(problem: Problem) -> None:
        click.echo(f"warning: {problem}", err=True)

    accounts: Container[str] = _AnyAccount()
    try:
        accounts = load_accounts(accounts_path)
    except AccountsError as exc:
        for problem in exc.problems:
            report(problem)
    try:
        with open_jobs(jobs, fmt=JobFormat(fmt) if fmt else None, campaign=campaign) as files:
            try:
                check = check_jobs(files, accounts, on_problem=report, on_warning=warn)
            except JobInputError:
                _fail(problems, len(jobs))  # every problem was printed as it was found
            if problems:
                _fail(problems, len(jobs))
            finished = _finished(files, accounts, check, ledger)
    except JobInputError as exc:  # files missing, unknown format, or changed while read
        for problem in exc.problems:
            report(problem)
        _fail(problems, len(jobs))
    except LedgerError as exc:
        click.echo(f"bulkrt validate: {exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    _print_counts(check, len(jobs), finished, ledger)


def _finished(
    files: list[JobFile], accounts: Container[str], check: JobCheck, ledger: Path | None
) -> int | None:
    if ledger is None:
        return None
    if ledger.exists() and not ledger.is_file():
        raise LedgerError(ledger, "not a file")
    done = finished_keys(ledger)
    return sum(1 for item in read_items(files, accounts, check) if item.key in done)


def _fail(problems: int, files: int) -> NoReturn:
    plural = "" if problems == 1 else "s"
    click.echo(
        f"bulkrt validate: {problems} problem{plural} in {files} job file(s) or the accounts "
        "file; nothing was sent",
        err=True,
    )
    raise SystemExit(ExitCode.BAD_INPUT)


def _print_counts(check: JobCheck, files: int, finished: int | None, ledger: Path | None) -> None:
    click.echo(f"ok: {check.items} items in {files} job file(s)")
    width = max((len(account) for account, _ in check.counts), default=7)
    for (account, action), n in sorted(check.counts.items()):
        click.echo(f"  {account:<{width}}  {action.value:<7}  {n}")
    if finished is not None:
        click.echo(
            f"{ledger}: {finished} of these items already finished; "
            f"{check.items - finished} to send"
        )
