"""Reading a ledger back: every record (`read_ledger`), or a block of lines at a time
(`read_blocks`, for counting); resume's `bulkrt.ledger.resume.finished_keys` reads keys and
statuses fast with `KEY_HEAD`.

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
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import structlog

from bulkrt.errors import LedgerError
from bulkrt.jobs.job_files import COMPRESSORS, Compressor
from bulkrt.ledger.record import LedgerRecord

__all__ = [
    "KEY_HEAD",
    "STATUS_FIELD",
    "LedgerLine",
    "LedgerStamp",
    "BLOCK",
    "LineBlock",
    "compressed_by",
    "decompress_in_place",
    "open_ledger",
    "read_blocks",
    "read_ledger",
    "scan_ledger",
    "unreadable_journal",
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


class LineBlock(NamedTuple):
    """Consecutive lines of a ledger, as `read_blocks` reads them."""

    #: the 1-based number of the first line
    first: int
    #: the byte offset of the first line in the file
    offset: int
    #: the lines without their newline (blank ones too)
    lines: list[bytes]
    #: whether the last line lacks its newline (torn, the ledger's last)
    torn: bool
    #: the lines as read, each with its newline (empty for a torn line)
    text: bytes = b""

    def line(self, index: int) -> LedgerLine:
        r"""The line at ``index`` in ``lines`` as `scan_ledger` yields it (``\r`` cut)."""
        end = self.offset + sum(len(data) + 1 for data in self.lines[: index + 1])
        complete = not (self.torn and index == len(self.lines) - 1)
        data = self.lines[index].rstrip(b"\r")
        return LedgerLine(self.first + index, data, complete, end - (not complete))


#: bytes `read_blocks` reads at a time
BLOCK = 1 << 20


def read_blocks(path: Path | str, limit: int) -> Iterator[LineBlock]:
    """The lines of the first ``limit`` bytes of a ledger, a block at a time: what the ledger
    held when it was ``limit`` bytes long (it is only appended to). A last line without its
    newline comes alone in a block with ``torn`` set, unless the ledger went on past
    ``limit`` (the line was being written). Raise `LedgerError` if it cannot be read."""
    first, offset, rest, left = 1, 0, b"", limit
    with open_ledger(path) as stream:
        while left > 0:
            chunk = stream.read(min(BLOCK, left))
            if not chunk:
                break
            left -= len(chunk)
            whole = rest + chunk if rest else chunk
            lines = whole.split(b"\n")
            rest = lines.pop()
            if lines:
                yield LineBlock(first, offset, lines, False, whole[: len(whole) - len(rest)])
                first += len(lines)
                offset += sum(map(len, lines)) + len(lines)
        if rest and not stream.read(1):
            yield LineBlock(first, offset, [rest], True)


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


def compressed_by(path: Path | str) -> Compressor | None:
    """The tool that compressed the file at ``path``, by its first bytes, or None: not
    compressed, or unreadable. A ledger and its journal are read and appended to only as plain
    text.

    >>> import gzip, tempfile, pathlib
    >>> journal = pathlib.Path(tempfile.mkdtemp()) / "spring.jsonl.sent"
    >>> _ = journal.write_bytes(gzip.compress(b'{"e":"sent","key":"k1"}\\n'))
    >>> compressed_by(journal).tool
    'gzip'
    """
    try:
        with Path(path).open("rb") as stream:
            head = stream.read(6)
    except OSError:
        return None
    return next((c for c in COMPRESSORS if head.startswith(c.magic)), None)


def decompress_in_place(path: Path | str, compressor: Compressor) -> str:
    """The shell command that turns the compressed file ``path`` back into plain text under
    its own name (the tool decompresses only a name ending in its suffix).

    >>> decompress_in_place("spring.jsonl.sent", COMPRESSORS[0])
    'mv spring.jsonl.sent spring.jsonl.sent.gz && gzip -d spring.jsonl.sent.gz'
    """
    name = shlex.quote(str(path))
    packed = shlex.quote(f"{path}{compressor.suffix}")
    return f"mv {name} {packed} && {compressor.decompress} {packed}"


def unreadable_journal(path: Path | str) -> str | None:
    """Why the journal ``path`` cannot be read at all (compressed), with the command that makes
    it readable, or None."""
    packed = compressed_by(path)
    if packed is None:
        return None
    return (
        f"is {packed.tool}-compressed: bulkrt reads and appends to a journal only as plain text, "
        f"and could not see who made the campaign's retweets (a retweet in flight would be taken "
        f"for the owner's); decompress it first (`{decompress_in_place(path, packed)}`)"
    )
