"""The `bulkrt` command line: a thin adapter that loads each subcommand from `bulkrt.commands`.

Each subcommand lives in its own module `bulkrt/commands/<name>.py` that defines `command`, a
`click.Command`. A module is imported only when its command runs (or shows its own ``--help``):
`bulkrt --help` lists the commands from `COMMANDS` alone, so it imports none of them, `bulkrt
sandbox` never imports the runner and `bulkrt run` never imports the sandbox's server.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass

import click

__all__ = ["COMMANDS", "Listed", "main"]


@dataclass(frozen=True)
class Listed:
    """A subcommand as the CLI knows it before importing it: where it is and how `--help`
    lists it (``tests/test_startup.py`` checks the listing against the command itself).

    >>> Listed("bulkrt.commands.demo", "Run the example campaign.", logs=True).module
    'bulkrt.commands.demo'
    """

    #: the module that defines it as ``command``
    module: str
    #: the first paragraph of its help: what `bulkrt --help` shortens to a line
    summary: str
    #: whether it logs (imports structlog), see `_import_structlog`
    logs: bool


#: subcommand name -> what it is, in the order `--help` lists them
COMMANDS: dict[str, Listed] = {
    "run": Listed(
        "bulkrt.commands.run",
        "Run the items of JOB files (CSV or JSONL, '.gz', '-' for stdin) against the X API.",
        logs=True,
    ),
    "validate": Listed(
        "bulkrt.commands.validate",
        "Check JOB files (CSV or JSONL, '.gz', '-' for stdin) and the accounts file; send nothing.",
        logs=True,
    ),
    "status": Listed(
        "bulkrt.commands.status",
        "Summarise LEDGER: items per status, action and account, and the kinds of error; or, "
        "with --redis, the live progress of every job and worker on that Redis.",
        logs=True,
    ),
    "rollback": Listed(
        "bulkrt.commands.rollback",
        "Write an undo job for every (account, Tweet) the campaign(s) left retweeted.",
        logs=True,
    ),
    "expand": Listed(
        "bulkrt.commands.expand",
        "Write the job of every (account, Tweet) pair: each Tweet across every account.",
        logs=True,
    ),
    "report": Listed(
        "bulkrt.commands.report",
        "Write an HTML report of LEDGER: totals, requests over time against the rate-limit "
        "windows, per-account progress, the kinds of error with an example each, and the runs.",
        logs=True,
    ),
    "sandbox": Listed(
        "bulkrt.commands.sandbox",
        "Serve a local, stateful emulator of the X API v2 retweet endpoints until SIGINT/SIGTERM.",
        logs=False,
    ),
    "demo": Listed(
        "bulkrt.commands.demo",
        "Run the example campaign against an in-process sandbox, then roll it back.",
        logs=True,
    ),
    "worker": Listed(
        "bulkrt.commands.worker",
        "Work on the jobs published on a Redis, until SIGINT/SIGTERM.",
        logs=True,
    ),
}


class _Listing(click.Group):
    """The commands as `--help` lists them: stand-ins holding only their summaries, in the
    order of `COMMANDS` (a plain `click.Group` sorts them by name)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's documented
    "LazyGroup" pattern), listed by `--help` without importing any."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, item in COMMANDS.items() if importlib.util.find_spec(item.module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        listed = COMMANDS.get(cmd_name)
        if listed is None or importlib.util.find_spec(listed.module) is None:
            return None
        if listed.logs:
            _import_structlog()
        command = importlib.import_module(listed.module).command
        assert isinstance(command, click.Command), listed.module
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listing = _Listing(
            commands=[
                click.Command(name, help=COMMANDS[name].summary) for name in self.list_commands(ctx)
            ]
        )
        listing.format_commands(ctx, formatter)


def _import_structlog() -> None:
    """Import structlog without rich, unless rich is loaded already.

    structlog imports rich (its traceback and pretty-printer, about as long to load as the rest
    of a small command) when it is installed, only to render exceptions, which bulkrt never logs
    and renders plainly when it does (`bulkrt.logs.configure`). An entry of None in
    ``sys.modules`` makes an import fail as if the module were missing; it is removed at once,
    so a command that draws with rich (`status`, `run`'s display) imports it as usual.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("structlog")
    finally:
        del sys.modules["rich"]


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
# the version is read from the installed package only when asked (click's package_name)
@click.version_option(package_name="bulkrt", prog_name="bulkrt")
def main() -> None:
    """Run retweet and undo-retweet jobs on the X API v2 across many authorised accounts.

    Operators must hold each account owner's authorisation and follow the platform's
    automation rules; bulkrt stays inside the published rate limits and never hides automation.
    """
