"""`bulkrt rollback`: write the undo job for what a ledger's campaign(s) retweeted."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
from collections.abc import Iterable
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
    Retweets that existed before the campaign are left alone unless --include-preexisting
    (which cannot go with --leave-undecided: exit 2).
    With nothing to undo, OUT is not written (an earlier undo job there is kept, exit 0).
    A rollback campaign cannot itself be rolled back. Exit 2 when the ledger cannot be read or
    holds nothing to select. Run the job with `bulkrt run OUT --ledger LEDGER ...` to record
    the undos in the same ledger.
    """
    logs.configure()
    if include_preexisting and leave_undecided:
        click.echo(
            "bulkrt rollback: --include-preexisting and --leave-undecided contradict each other: "
            "with --include-preexisting the accounts' own retweets are undone too, so a retweet "
            "of undecidable origin (the account's or the campaign's) is undone either way; drop "
            "one of them",
            err=True,
        )
        raise SystemExit(ExitCode.BAD_INPUT)
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
    writer = _writing_run(ledger)
    busy = (
        None
        if writer is None
        else f"{ledger} is being written by a run ({writer}): this undo job covers only the "
        f"items finished so far; roll back again when it ends"
    )
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
                "other_campaign": plan.other_campaigns,
                "undecided": len(plan.undecided) if plan.undecided_left else 0,
            },
            "undecided": _pairs((row.account, row.tweet_id) for row in plan.undecided),
            "undecided_left": plan.undecided_left,
            "unknown": _pairs(plan.unknown_pairs),
            "refused_before": _pairs((row.account, row.tweet_id) for row in plan.refused_before),
            "from_journal": _pairs((row.account, row.tweet_id) for row in plan.from_journal),
            "owners_undone": _pairs(plan.owners_undone),
            "ledger_in_use": busy,
            "next": shlex.join(
                ["bulkrt", "run", str(out), "--accounts", "FILE", "--ledger", str(ledger)]
            )
            if plan.undo
            else None,
        }
        click.echo(json.dumps(document, sort_keys=True))
        if busy is not None:
            click.echo(f"bulkrt rollback: warning: {busy}", err=True)
        return
    if busy is not None:
        click.echo(f"bulkrt rollback: warning: {busy}", err=True)
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


def _pairs(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"account": account, "tweet_id": tweet_id} for account, tweet_id in pairs]


def _writing_run(ledger: Path) -> str | None:
    """Who holds the ledger's lock (a `bulkrt run` writing it: its lock file's text, such as
    ``pid 7 on host since ...``), or None when no process holds it. The lock is only tested
    (a shared lock, released at once), never created."""
    real = ledger.resolve()
    try:
        fd = os.open(real.with_name(real.name + ".lock"), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
