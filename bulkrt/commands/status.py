"""`bulkrt status LEDGER [--json]`: counts per status, action and account, and the kinds of error.

The terminal form is a few small tables; ``--json`` prints `LedgerSummary.to_json` (sorted keys,
every status present), the stable form for scripts. A missing or unreadable ledger exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bulkrt import logs
from bulkrt.commands.options import REDIS_PREFIX, redis_option
from bulkrt.commands.outputs import not_a_ledger
from bulkrt.core.items import Status
from bulkrt.errors import LedgerError, RedisUnavailable
from bulkrt.exitcodes import ExitCode
from bulkrt.ledger.counts import LedgerSummary, summarise_ledger

__all__ = ["command"]


#: shown at the end of `--help`
_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt status spring.jsonl",
        "  bulkrt status spring.jsonl --json",
        "  bulkrt status --redis redis://queue.internal:6379/0",
    ]
)


@click.command("status", epilog=_EXAMPLES)
@click.argument("ledger", type=click.Path(path_type=Path), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON, for scripts.")
@redis_option
def command(ledger: Path | None, as_json: bool, redis_url: str | None) -> None:
    """Summarise LEDGER: items per status, action and account, and the kinds of error; or, with
    --redis, the live progress of every job and worker on that Redis."""
    logs.configure()
    if redis_url is not None:
        # Loaded here: without --redis, redis-py never is.
        from bulkrt.fleet.live_status import fleet_status, render_fleet_status

        try:
            status = fleet_status(redis_url, REDIS_PREFIX)
        except RedisUnavailable as exc:
            click.echo(f"bulkrt status: cannot use --redis: {exc}", err=True)
            raise SystemExit(ExitCode.REDIS_UNAVAILABLE) from None
        click.echo(json.dumps(status, sort_keys=True) if as_json else render_fleet_status(status))
        return
    if ledger is None:
        raise click.UsageError("give a LEDGER, or --redis URL for the live progress")
    wrong = not_a_ledger(ledger)
    if wrong is not None:
        click.echo(f"bulkrt status: {ledger} {wrong}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT)
    try:
        if ledger.is_dir():
            raise LedgerError(ledger, "is a directory, not a ledger")
        summary = summarise_ledger(ledger)
    except LedgerError as exc:
        click.echo(f"bulkrt status: {exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    if as_json:
        click.echo(summary.to_json())
    else:
        # Ledger text (account names, error kinds, the path) is data, never rich markup.
        _render(summary, Console(highlight=False, markup=False, width=max(Console().width, 60)))


def _render(summary: LedgerSummary, console: Console) -> None:
    statuses = [s.value for s in Status if s is not Status.SUPERSEDED or summary.by_status[s.value]]
    counts = ", ".join(f"{summary.by_status[s]} {s}" for s in statuses)
    console.print(f"{summary.ledger}: {summary.items} items: {counts}", soft_wrap=True)
    if summary.unreadable:
        console.print(
            f"{summary.unreadable} unreadable line(s) skipped (torn by a crash?)", soft_wrap=True
        )
    if summary.undecided:
        console.print(
            f"{summary.undecided} retweet(s) of undecidable origin (preexisting: null): the "
            f"campaign or the account may have made them; `bulkrt rollback` undoes and lists "
            f"them unless --leave-undecided",
            soft_wrap=True,
        )
    for title, rows in (("action", summary.by_action), ("account", summary.by_account)):
        if rows:
            console.print(_table(title, statuses, rows))
    if summary.errors:
        errors = Table("error kind", "items", title="errors (items not ok)", title_justify="left")
        for kind, n in summary.errors.items():
            errors.add_row(Text(kind), str(n))
        console.print(errors)
    if summary.by_status[Status.ERROR]:
        console.print(
            "items in error are sent again when the same `bulkrt run` is re-run", soft_wrap=True
        )


def _table(title: str, statuses: list[str], rows: dict[str, dict[str, int]]) -> Table:
    table = Table(title, *statuses, "total", title=f"by {title}", title_justify="left")
    for name, counts in rows.items():
        table.add_row(Text(name), *(str(counts[s]) for s in statuses), str(sum(counts.values())))
    return table
