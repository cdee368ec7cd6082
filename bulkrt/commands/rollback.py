"""`bulkrt rollback`: write the undo job for what a ledger's campaign(s) retweeted."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from bulkrt import logs
from bulkrt.commands.outputs import UNDO_JOB, not_a_ledger, refusal
from bulkrt.errors import LedgerError
from bulkrt.exitcodes import ExitCode
from bulkrt.ledger.undo import RollbackError, plan_rollback, write_undo_job

__all__ = ["command"]


#: shown at the end of `--help`
_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt rollback spring.jsonl --out undo.csv",
        "  bulkrt rollback spring.jsonl --campaign spring --account acct003 --out undo.csv",
        "  bulkrt run undo.csv --accounts accounts.json --ledger spring.jsonl",
    ]
)


@click.command("rollback", epilog=_EXAMPLES)
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
@click.option(
    "--leave-undecided",
    is_flag=True,
    help="Leave alone the retweets of undecidable origin (preexisting: null) instead of undoing "
    "them; they are listed either way.",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists (never a ledger or job).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON, for scripts.")
def command(
    ledger: Path,
    out: Path,
    campaigns: tuple[str, ...],
    accounts: tuple[str, ...],
    include_preexisting: bool,
    leave_undecided: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Write an undo job for every (account, Tweet) the campaign(s) left retweeted.

    A campaign's rollback (NAME-rollback) is part of it: undos it already made are not repeated.
    Retweets that existed before the campaign are left alone unless --include-preexisting.
    With nothing to undo, OUT is not written (an earlier undo job there is kept, exit 0).
    A rollback campaign cannot itself be rolled back. Exit 2 when the ledger cannot be read or
    holds nothing to select. Run the job with `bulkrt run OUT --ledger LEDGER ...` to record
    the undos in the same ledger.
    """
    logs.configure()
    wrong = not_a_ledger(ledger)
    if wrong is not None:
        click.echo(f"bulkrt rollback: {ledger} {wrong}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT)
    refused = refusal(out, force=force, inputs={"the ledger's own file": ledger}, writes=UNDO_JOB)
    if refused is not None:
        click.echo(f"bulkrt rollback: --out {out} {refused}; nothing written", err=True)
        raise SystemExit(ExitCode.BAD_INPUT)
    try:
        plan = plan_rollback(
            ledger,
            campaigns=campaigns,
            accounts=accounts,
            include_preexisting=include_preexisting,
            leave_undecided=leave_undecided,
        )
        if plan.undo:
            write_undo_job(out, plan.undo, ledger=ledger)
    except (RollbackError, LedgerError) as exc:
        click.echo(f"bulkrt rollback: {exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    except OSError as exc:
        click.echo(f"bulkrt rollback: cannot write {out}: {exc.strerror or exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    kept = not plan.undo and out.exists()
    if as_json:
        document = {
            "out": str(out),
            "written": bool(plan.undo),
            "campaigns": list(plan.campaigns),
            "undo": len(plan.undo),
            "left_alone": {
                "preexisting": plan.kept_preexisting,
                "already_undone": plan.already_undone,
                "never_retweeted": plan.never_retweeted,
                "unknown": plan.unknown,
            },
            "next": shlex.join(
                ["bulkrt", "run", str(out), "--accounts", "FILE", "--ledger", str(ledger)]
            )
            if plan.undo
            else None,
        }
        click.echo(json.dumps(document, sort_keys=True))
        return
    label = str(out) if plan.undo else f"{out} (not written)"
    lines = plan.summary(label, include_preexisting=include_preexisting)
    click.echo("bulkrt rollback: " + "\n".join(lines))
    if plan.undo:
        command = shlex.join(
            ["bulkrt", "run", str(out), "--accounts", "FILE", "--ledger", str(ledger)]
        )
        click.echo(f"to undo them: {command}")
    else:
        click.echo("nothing to undo")
        if kept:
            click.echo(f"the existing {out} was kept as it was (not replaced)")
