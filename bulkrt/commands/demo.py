"""`bulkrt demo`: the whole cycle against an in-process sandbox, with no credentials and no
network: a campaign from ``jobs/`` across six accounts (one of which had already retweeted one
of its Tweets), its resume, then its rollback, checked against the sandbox's own state."""

from __future__ import annotations

import asyncio
import logging
import shlex
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import click

from bulkrt import logs
from bulkrt.commands.sandbox import write_accounts_file
from bulkrt.core.tiers import Tier
from bulkrt.exitcodes import ExitCode
from bulkrt.ledger.counts import summarise_ledger
from bulkrt.ledger.undo import plan_rollback, write_undo_job
from bulkrt.sandbox import Sandbox, SandboxConfig
from bulkrt.shell.progress import Progress
from bulkrt.shell.runner import RunSettings, run_job

__all__ = ["command"]

#: the example job: package data in a wheel (see pyproject.toml), ``jobs/`` in a source checkout
_PACKAGED = resources.files("bulkrt") / "examples" / "example-campaign.csv"
_JOB = (
    Path(str(_PACKAGED))
    if _PACKAGED.is_file()
    else Path(__file__).resolve().parents[2] / "jobs" / "example-campaign.csv"
)
#: the file that marks a directory the demo made, and the files it writes there
MARKER = ".bulkrt-demo"
_OWN_FILES = (
    "accounts.json",
    "ledger.jsonl",
    "ledger.jsonl.lock",
    "ledger.jsonl.sent",
    "undo.csv",
)
#: the demo's short windows: 5 requests per 3 seconds per account and endpoint
LIMIT, WINDOW = 5, 3.0


@contextmanager
def _sandbox_thread(config: SandboxConfig) -> Iterator[Sandbox]:
    """A sandbox served from its own thread and event loop; runs in this thread use their own."""
    started = threading.Event()
    stop: list[asyncio.Event] = []
    holder: list[Sandbox] = []
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        async with Sandbox(config) as sandbox:
            holder.append(sandbox)
            stop.append(asyncio.Event())
            started.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the sandbox did not start")
    try:
        yield holder[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
        loop.close()


def _prepare(workdir: Path) -> str | None:
    """Make ``workdir`` ready for the demo, or say why it cannot be used.

    A missing or empty directory is taken (and marked as the demo's); one the demo made before
    loses only the files the demo writes; any other directory is refused, never emptied.
    """
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            return (
                f"--dir {workdir} is not empty and was not made by `bulkrt demo`; the demo never "
                f"deletes files it did not write: name a new directory, e.g. --dir bulkrt-demo"
            )
        for name in _OWN_FILES:
            (workdir / name).unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by `bulkrt demo`; it rewrites its own files here\n")
    return None


def _retweets(sandbox: Sandbox) -> dict[str, frozenset[str]]:
    return {u.name: frozenset(sandbox.state.retweets[u.user_id]) for u in sandbox.state.world.users}


#: shown at the end of `--help`
_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt demo",
        "  bulkrt demo --dir /tmp/bulkrt-demo",
    ]
)


@click.command("demo", epilog=_EXAMPLES)
@click.option(
    "--dir",
    "workdir",
    default="bulkrt-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo writes its accounts file, ledger and undo job: a new or empty "
    "directory, or one an earlier demo made (its files are rewritten, nothing else is touched).",
)
@click.option(
    "--job",
    default=str(_JOB),
    show_default=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The campaign job to run.",
)
def command(workdir: Path, job: str) -> None:
    """Run the example campaign against an in-process sandbox, then roll it back.

    Needs no credentials and no network: the sandbox is a local emulator of the X API.
    """
    logs.configure(level=logging.WARNING)
    try:
        refused = _prepare(workdir)
    except OSError as exc:
        refused = f"--dir {workdir}: {exc.strerror or exc}"
    if refused is not None:
        click.echo(f"bulkrt demo: {refused}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT)
    accounts, ledger, undo = (
        workdir / "accounts.json",
        workdir / "ledger.jsonl",
        workdir / "undo.csv",
    )
    with _sandbox_thread(SandboxConfig(users=6, limit=LIMIT, window=WINDOW)) as sandbox:
        write_accounts_file(
            accounts, sandbox.state.world.accounts_file(expires_at=sandbox.clock.now() + 7200)
        )
        # acct003 had retweeted one of the campaign's Tweets before the campaign
        acct003 = sandbox.state.world.users[2]
        sandbox.state.retweets[acct003.user_id].add("1861359704022656025")
        before = _retweets(sandbox)
        click.echo(
            f"sandbox at {sandbox.url}: 6 accounts, {LIMIT} requests per {WINDOW:g} s window"
        )
        click.echo(
            f"before the campaign: {sum(map(len, before.values()))} retweet(s) (acct003 has one)"
        )

        def run(job_path: Path | str, title: str) -> ExitCode:
            shown = shlex.join(
                ["bulkrt", "run", str(job_path), "--accounts", str(accounts), "--ledger",
                 str(ledger), "--api-base", sandbox.url, "--limit", str(LIMIT), "--window",
                 f"{WINDOW:g}"]
            )  # fmt: skip
            click.echo(f"\n== {title}: {shown}")
            settings = RunSettings(
                jobs=(str(job_path),),
                accounts=accounts,
                ledger=ledger,
                api_base=sandbox.url,
                tier=Tier.PRO,
                limit=LIMIT,
                window=WINDOW,
                concurrency=16,
            )
            return run_job(settings, Progress())

        code = run(job, "the campaign")
        after = _retweets(sandbox)
        click.echo(f"after the campaign: {sum(map(len, after.values()))} retweet(s)")
        code = max(code, run(job, "the same command again (resume: nothing left to send)"))
        plan = plan_rollback(ledger)
        written = write_undo_job(undo, plan.undo)
        click.echo(
            f"\n== rollback: {shlex.join(['bulkrt', 'rollback', str(ledger), '--out', str(undo)])}"
            "\n"
            f"{written} undo item(s); {plan.kept_preexisting} retweet made before the campaign "
            f"left alone"
        )
        code = max(code, run(undo, "the rollback"))
        restored = _retweets(sandbox) == before
    summary = summarise_ledger(ledger)
    click.echo(f"\nledger {ledger}: {summary.lines} lines; `bulkrt status {ledger}` shows more")
    click.echo(
        f"every account's retweets are as before the campaign: {'yes' if restored else 'NO'}"
    )
    click.echo(
        "the demo's sandbox stopped with it; to run the commands above yourself, serve one in "
        "another terminal with "
        + shlex.join(
            [
                "bulkrt",
                "sandbox",
                "--users",
                "6",
                "--limit",
                str(LIMIT),
                "--window",
                f"{WINDOW:g}",
                "--accounts-out",
                str(accounts),
                "--force",
            ]
        )  # fmt: skip
        + " and give --api-base http://127.0.0.1:8787"
    )
    if not restored:
        raise SystemExit(ExitCode.ITEMS_FAILED)
    raise SystemExit(code)
