"""The `bulkrt` console script (and ``python -m bulkrt``): the clean stop for SIGINT and SIGTERM
is installed before anything else loads, then the command line (`bulkrt.cli.main`) runs.

A command that sends installs its own handlers while it sends (a clean stop with the resume
command, 130 or 143). Before that (while click, the command's modules and its files load), SIGINT
would print a KeyboardInterrupt traceback or click's "Aborted!" with exit 1, which scripts read
as "some items failed", and SIGTERM would kill the process silently: here both end it with one
line and the documented code instead. Only the interpreter's own start-up comes before this.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

__all__ = ["main", "stopped"]


def main() -> None:
    """Stop cleanly on SIGINT/SIGTERM from here on, then run the command line."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stopped)
    from bulkrt.cli import main as command_line  # after the handlers: click loads here

    command_line()


def stopped(signum: int, frame: FrameType | None) -> None:
    """A signal before a command sends: one line on stderr, exit 128 + the signal's number."""
    name = signal.Signals(signum).name
    sys.stderr.write(f"bulkrt: stopped by {name}; the same command can be run again\n")
    sys.exit(128 + signum)
