"""The `bulkrt` console script (and ``python -m bulkrt``): the clean stop for SIGINT and SIGTERM
is installed before anything else loads, then the command line (`bulkrt.cli.main`) runs.

A command that sends installs its own handlers while it sends (a clean stop with the resume
command, 130 or 143). Before that (while click, the command's modules and its files load), SIGINT
would print a KeyboardInterrupt traceback or click's "Aborted!" with exit 1, which scripts read
as "some items failed", and SIGTERM would kill the process silently: here both end it with one
line and the documented code instead. Only the interpreter's own start-up comes before this.

A standard output whose reader went away (``bulkrt status L | head -1``) is not an error: what is
left to print is dropped (the descriptor is pointed at /dev/null, as Python's documentation on
SIGPIPE advises) and the command ends as it would have, with its own exit code. A command that
writes files or a ledger (``rollback``, ``run``) so still finishes its work, rather than stopping
half-way at its first line of output.

A standard output that cannot be written (``--json > out.json`` on a full disk, an I/O error) is
another matter: what the command printed is incomplete, and a script reading it must know. The
command still finishes its work (a run completes its ledger, which holds every outcome), then
says on stderr that its output is incomplete and what its own exit code was, and exits 74.

Standard error is treated the same way: its log lines and messages are the operator's, not the
command's work, so one that cannot be written stops nothing (a run still sends every item and
writes every ledger line). A reader that left (``2>&1 | head -2``) changes nothing else; a full
disk or an I/O error ends the command with exit 74 (never 1, which says "some item failed"), with
no message, as there is nowhere left to write it. A standard output or error closed before the
command started (``2>&-``) is pointed at /dev/null first, so no file the command opens (the
ledger, its lock) takes its descriptor and receives lines meant for it, and the first line
written to it counts as one that could not be written.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
from types import FrameType
from typing import TextIO

__all__ = ["main", "stopped"]


def main() -> None:
    """Stop cleanly on SIGINT/SIGTERM from here on, then run the command line."""
    sys.unraisablehook = _exit_when_a_stop_was_ignored
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stopped)
    _fill_closed_descriptors()
    sys.stdout = _ReaderMayLeave.guarding(sys.stdout, 1)
    sys.stderr = _ReaderMayLeave.guarding(sys.stderr, 2)
    from bulkrt.cli import main as command_line  # after the handlers: click loads here

    try:
        command_line()
    except SystemExit as end:
        code = end.code
    else:
        code = 0
    stdout, stderr = sys.stdout, sys.stderr
    if isinstance(stdout, _ReaderMayLeave):
        stdout.flush()
        if stdout.failure is not None:
            stderr.write(
                f"bulkrt: standard output could not be written ({stdout.failure}): what the "
                f"command printed is incomplete; its own exit code was {code or 0}, exit 74 "
                f"instead\n"
            )
            code = 74  # EX_IOERR, as for a ledger that cannot be written
    if isinstance(stderr, _ReaderMayLeave):
        stderr.flush()
        if stderr.failure is not None:
            code = 74  # what the command said is lost: not its own code, and never 1
    sys.exit(code)


def _fill_closed_descriptors() -> None:
    """Point each of descriptors 0, 1 and 2 that is closed at /dev/null, so that no file the
    command opens gets it (a ledger on descriptor 2 would receive the log lines)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: ``fd``
            if devnull != fd:  # pragma: no cover - only if a lower one was closed meanwhile
                os.dup2(devnull, fd)
                os.close(devnull)


def stopped(signum: int, frame: FrameType | None) -> None:
    """A signal before a command sends: one line on stderr, exit 128 + the signal's number."""
    name = signal.Signals(signum).name
    sys.stderr.write(f"bulkrt: stopped by {name}; the same command can be run again\n")
    raise _Stopped(128 + signum)


class _Stopped(SystemExit):
    """The exit `stopped` raises: told apart from others where Python cannot raise it."""


def _exit_when_a_stop_was_ignored(unraisable: sys.UnraisableHookArgs) -> None:
    """Python runs a signal's handler wherever the main thread is, also inside a finalizer or a
    callback (an import's module-lock callback, a collection's), where an exception cannot
    propagate: it is printed and ignored ("Exception ignored in"), and the command would go on
    after saying it stopped. Such a stop ends the process at once, with its exit code; what
    unwinding would have cleaned (a spooled standard input in the temporary directory) is left."""
    if isinstance(unraisable.exc_value, _Stopped):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(unraisable.exc_value.code if isinstance(unraisable.exc_value.code, int) else 1)
    sys.__unraisablehook__(unraisable)


class _ReaderMayLeave(io.TextIOWrapper):
    """Standard output that drops what it cannot write once its reader is gone (a closed pipe),
    instead of raising `BrokenPipeError` (which click turns into a silent exit 1)."""

    #: the standard output it replaced, on the same buffer
    wrapped: io.TextIOWrapper
    #: why standard output could not be written (not a closed pipe), once it could not
    failure: str | None = None
    #: why every write fails (its descriptor was closed at start), if it does
    unwritable: str | None = None

    @classmethod
    def guarding(cls, stream: TextIO | None, fd: int) -> TextIO:
        """``stream`` (``sys.stdout`` or ``sys.stderr``, on descriptor ``fd``) wrapped; if it
        was closed when the interpreter started (``None``), a stream on ``fd`` (now /dev/null)
        whose first write fails as a write on a closed descriptor does; anything else (a test's
        capture) as it is."""
        if isinstance(stream, io.TextIOWrapper):
            return cls.wrapping(stream)
        if stream is not None:
            return stream
        wrapper = cls(open(fd, "wb", closefd=False), encoding="utf-8", line_buffering=True)  # noqa: SIM115
        wrapper.unwritable = os.strerror(errno.EBADF)
        return wrapper

    @classmethod
    def wrapping(cls, stream: io.TextIOWrapper) -> _ReaderMayLeave:
        """The same descriptor and buffer as ``stream``, written the same way. ``stream`` is
        kept: freed, it would close the buffer they share."""
        stream.flush()
        wrapper = cls(
            stream.buffer,
            encoding=stream.encoding,
            errors=stream.errors,
            line_buffering=stream.line_buffering,
            write_through=stream.write_through,
        )
        wrapper.wrapped = stream
        return wrapper

    def write(self, text: str) -> int:
        if self.unwritable is not None and self.failure is None and text:
            self.failure = self.unwritable
        try:
            return super().write(text)
        except BrokenPipeError:
            self._reader_gone()
        except OSError as error:
            self._cannot_write(error)
        return len(text)

    def flush(self) -> None:
        try:
            super().flush()
        except BrokenPipeError:
            self._reader_gone()
        except OSError as error:
            self._cannot_write(error)

    def _cannot_write(self, error: OSError) -> None:
        """Remember why (the first cause), then drop the rest as for a reader that left."""
        if self.failure is None:
            self.failure = error.strerror or str(error)
        self._reader_gone()

    def _reader_gone(self) -> None:
        """From now on write to /dev/null (what is buffered too), so nothing raises again."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.fileno())
        os.close(devnull)
        super().flush()
