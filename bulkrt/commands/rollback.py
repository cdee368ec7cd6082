"""`bulkrt rollback`: write the undo job for what a ledger's campaign(s) retweeted."""

from __future__ import annotations

from pathlib import Path

import click

from bulkrt import logs
from bulkrt.errors import LedgerError
from bulkrt.exitcodes import ExitCode
from bulkrt.rollback import RollbackError, plan_rollback, write_undo_job

__all__ = ["command"]


@click.command("rollback")
@click.argument("ledger", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The undo job to write (.csv or .jsonl, optionally .gz).",
)
@click.option(
    "--campaign",
    "campaigns",
    multiple=True,
    help="Roll back this campaign (repeatable; default: every campaign in the ledger).",
)
@click.option("--account", "accounts", multiple=True, help="Only this account (repeatable).")
@click.option(
    "--include-preexisting",
    is_flag=True,
    help="Also undo retweets the accounts had made before the campaign.",
)
def command(
    ledger: Path,
    out: Path,
    campaigns: tuple[str, ...],
    accounts: tuple[str, ...],
    include_preexisting: bool,
) -> None:
    """Write an undo job for every (account, Tweet) the campaign(s) left retweeted.

    Retweets that existed before the campaign are left alone unless --include-preexisting.
    Run the job with `bulkrt run OUT --ledger LEDGER ...` to record the undos in the same ledger.
    """
    logs.configure()
    try:
        plan = plan_rollback(
            ledger, campaigns=campaigns, accounts=accounts, include_preexisting=include_preexisting
        )
        written = write_undo_job(out, plan.undo)
    except (RollbackError, LedgerError) as exc:
        click.echo(f"bulkrt rollback: {exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    except OSError as exc:
        click.echo(f"bulkrt rollback: cannot write {out}: {exc.strerror or exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    click.echo(f"bulkrt rollback: {written} undo item(s) for {', '.join(plan.campaigns)} -> {out}")
    if plan.kept_preexisting:
        note = "" if include_preexisting else " (--include-preexisting undoes them too)"
        click.echo(f"  left alone: {plan.kept_preexisting} retweeted before the campaign{note}")
    if plan.already_undone:
        click.echo(f"  left alone: {plan.already_undone} no longer retweeted")
    if plan.unknown:
        click.echo(f"  left alone: {plan.unknown} whose state is unknown (no item ended ok)")
