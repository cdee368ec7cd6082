"""Reading a ledger back: every record (`read_ledger`), or each line's key and status fast
(`quick_key`; resume's `bulkrt.ledger.resume.finished_keys` scans the same way).

Reading tolerates what a crash can leave behind. A torn last line (no newline, not valid JSON)
is skipped with a ``ledger_torn_line_skipped`` warning; an unreadable line inside the file (a
torn line that a later run closed with a newline before appending) with ``ledger_line_skipped``.

Resume (README "The ledger"): an item is skipped when its key has an ``ok`` or ``rejected``
line. The scan must take a million lines in well under three seconds, so it does not parse lines
in the exact shape `LedgerRecord.to_json` writes: one anchored regular expression (`KEY_HEAD`)
takes the key's JSON text, and ``"status":"`` is found after it (JSON escapes every ``"`` inside
a string, so that text can only be the real field). Lines of any other shape are parsed in full.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import structlog

from bulkrt.errors import LedgerError
from bulkrt.ledger.record import LedgerRecord

__all__ = [
    "KEY_HEAD",
    "STATUS_FIELD",
    "LedgerLine",
    "LedgerStamp",
    "open_ledger",
    "quick_key",
    "read_ledger",
    "scan_ledger",
    "warn_skipped",
]

_log = structlog.get_logger()
#: the start of a line `LedgerRecord.to_json` wrote, up to and including the key's JSON text
#: (group 1)
KEY_HEAD = re.compile(
    # A JSON string is written as "[^"\\]*(?:\\.[^"\\]*)*" ("unrolled"): much faster in `re`
    # than the equivalent alternation (?:[^"\\]|\\.)*, which backtracks character by character.
    rb'\{"schema":1,"ts":"[^"\\]*","run":"[^"\\]*(?:\\.[^"\\]*)*",'
    rb'"key":("[^"\\]*(?:\\.[^"\\]*)*"),'
)
#: a ledger as one look saw it: (device, inode, size, modification time in ns); None: no
#: ledger. Equal stamps mean nothing was written in between (a ledger is only appended to).
LedgerStamp = tuple[int, int, int, int] | None
#: what precedes the status in a line `LedgerRecord.to_json` wrote
STATUS_FIELD = b'"status":"'


class LedgerLine(NamedTuple):
    """One raw, non-blank line of a ledger (a NamedTuple: one is made per line, cheaply)."""

    #: 1-based line number
    number: int
    #: the line without its line ending
    data: bytes
    #: whether the line ended with a newline (a torn last line does not)
    complete: bool
    #: the byte offset just past this line in the file
    end: int


def scan_ledger(path: Path | str) -> Iterator[LedgerLine]:
    """Yield the non-blank lines of a ledger; raise `LedgerError` if it cannot be read."""
    end = 0
    with open_ledger(path) as stream:
        for number, raw in enumerate(stream, start=1):
            end += len(raw)
            data = raw.rstrip(b"\r\n")
            if data.strip(b" \t\x00"):
                yield LedgerLine(number, data, raw.endswith(b"\n"), end)


def read_ledger(path: Path | str) -> Iterator[LedgerRecord]:
    """Yield every readable record of a ledger in order, warning about lines it skips."""
    for line in scan_ledger(path):
        try:
            yield LedgerRecord.from_json(line.data)
        except ValueError as exc:
            warn_skipped(path, line, str(exc))


def quick_key(line: LedgerLine) -> tuple[bytes, bytes] | None:
    """The key's JSON text and the status of a whole line in `to_json`'s shape; else None."""
    data = line.data
    head = KEY_HEAD.match(data) if line.complete and data.endswith(b"}") else None
    if head is None:
        return None
    at = data.find(STATUS_FIELD, head.end())
    if at < 0:
        return None
    start = at + len(STATUS_FIELD)
    status = data[start : data.find(b'"', start)]
    key = head.group(1)
    if b"\\u" in key or b"\\/" in key:
        return None
    return key, status


def warn_skipped(path: Path | str, line: LedgerLine, reason: str) -> None:
    """Log that a line was skipped, saying whether it was torn (the last, without a newline)."""
    event = "ledger_line_skipped" if line.complete else "ledger_torn_line_skipped"
    _log.warning(event, ledger=str(path), line=line.number, reason=reason)


def open_ledger(path: Path | str) -> BinaryIO:
    """Open a ledger for reading bytes; raise `LedgerError` if it cannot be."""
    try:
        return Path(path).open("rb")
    except OSError as exc:
        raise LedgerError(path, f"cannot read the ledger: {exc.strerror or exc}") from None
