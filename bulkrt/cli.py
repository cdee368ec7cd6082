"""The `bulkrt` command line: a thin adapter that loads each subcommand from `bulkrt.commands`.

Each subcommand lives in its own module `bulkrt/commands/<name>.py` that defines `command`, a
`click.Command`. Modules are imported only when their command runs (or `--help` lists them), so
`bulkrt sandbox` never imports the runner and `bulkrt run` never imports the sandbox.
"""

from __future__ import annotations

import importlib
import importlib.util
import signal
import sys
from types import FrameType

import click

from bulkrt import __version__

__all__ = ["entry", "main"]

#: subcommand name -> module that defines it, in the order `--help` lists them
COMMANDS: dict[str, str] = {
    "run": "bulkrt.commands.run",
    "validate": "bulkrt.commands.validate",
    "status": "bulkrt.commands.status",
    "rollback": "bulkrt.commands.rollback",
    "expand": "bulkrt.commands.expand",
    "report": "bulkrt.commands.report",
    "sandbox": "bulkrt.commands.sandbox",
    "demo": "bulkrt.commands.demo",
    "worker": "bulkrt.commands.worker",
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, module in COMMANDS.items() if importlib.util.find_spec(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
        if module_name is None or importlib.util.find_spec(module_name) is None:
            return None
        command = importlib.import_module(module_name).command
        assert isinstance(command, click.Command), module_name
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulkrt")
def main() -> None:
    """Run retweet and undo-retweet jobs on the X API v2 across many authorised accounts.

    Operators must hold each account owner's authorisation and follow the platform's
    automation rules; bulkrt stays inside the published rate limits and never hides automation.
    """


def entry() -> None:
    """The console script (and ``python -m bulkrt``): `main`, stopped cleanly by a signal.

    A command that sends installs its own handlers while it sends (a clean stop with the
    resume command, 130 or 143). Outside that, before a command starts sending (while it loads
    and checks its files), SIGINT would print a traceback or click's "Aborted!" with exit 1,
    which scripts read as "some items failed", and SIGTERM would kill the process silently.
    Here both end it with one line and the documented code instead.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stopped)
    main()


def _stopped(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    click.echo(f"bulkrt: stopped by {name}; the same command can be run again", err=True)
    sys.exit(128 + signum)
