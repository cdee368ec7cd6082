"""Reading a ledger back: every record (`read_ledger`), or the keys resume skips (`finished_keys`).

Reading tolerates what a crash can leave behind. A torn last line (no newline, not valid JSON)
is skipped with a ``ledger_torn_line_skipped`` warning; an unreadable line inside the file (a
torn line that a later run closed with a newline before appending) with ``ledger_line_skipped``.

Resume (README "The ledger"): an item is skipped when its key has an ``ok`` or ``rejected``
line. The scan must take a million lines in well under three seconds, so it does not parse lines
in the exact shape `LedgerRecord.to_json` writes: one anchored regular expression takes the key's
JSON text, and ``"status":"`` is found after it (JSON escapes every ``"`` inside a string, so that
text can only be the real field). Lines of any other shape are parsed in full. `FinishedKeys`
keeps one 64-bit hash of each finished key's JSON text in a sorted ``array('q')``: 8 bytes a key.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import structlog

from bulkrt.core.items import Status
from bulkrt.errors import LedgerError
from bulkrt.ledger.record import FINISHED, LedgerRecord, encoded_key

__all__ = [
    "FinishedKeys",
    "LedgerLine",
    "finished_keys",
    "identity",
    "quick_key",
    "read_ledger",
    "scan_ledger",
    "warn_skipped",
]

_log = structlog.get_logger()
#: the start of a line `LedgerRecord.to_json` wrote, up to and including the key's JSON text
_HEAD = re.compile(
    # A JSON string is written as "[^"\\]*(?:\\.[^"\\]*)*" ("unrolled"): much faster in `re`
    # than the equivalent alternation (?:[^"\\]|\\.)*, which backtracks character by character.
    rb'\{"schema":1,"ts":"[^"\\]*","run":"[^"\\]*(?:\\.[^"\\]*)*",'
    rb'"key":("[^"\\]*(?:\\.[^"\\]*)*"),'
)
#: what follows the key in a line `LedgerRecord.to_json` wrote: the row's identity
_IDENT = re.compile(
    rb'"campaign":("[^"\\]*(?:\\.[^"\\]*)*"),"account":("[^"\\]*(?:\\.[^"\\]*)*"),'
    rb'"user_id":"[^"\\]*","tweet_id":"([^"\\]*)","action":"([a-z]+)",'
)
_STATUS = b'"status":"'
_OK = b'ok"'
_REJECTED = b'rejected"'
_SUPERSEDED = b'superseded"'


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
    with _open(path) as stream:
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
    head = _HEAD.match(data) if line.complete and data.endswith(b"}") else None
    if head is None:
        return None
    at = data.find(_STATUS, head.end())
    if at < 0:
        return None
    start = at + len(_STATUS)
    status = data[start : data.find(b'"', start)]
    key = head.group(1)
    if b"\\u" in key or b"\\/" in key:
        return None
    return key, status


def identity(campaign: str, account: str, tweet_id: str, action: str) -> int:
    """The hash of what a key stands for: its row's campaign, account, Tweet and action."""
    return hash((encoded_key(campaign), encoded_key(account), tweet_id.encode(), action.encode()))


def _record_identity(record: LedgerRecord) -> int:
    return identity(record.campaign, record.account, record.tweet_id, record.action.value)


class FinishedKeys:
    """The keys a ledger holds as finished (``ok``, ``rejected`` or ``superseded``), for
    ``key in finished``, with the identity of the row each was finished for (`same_row`).

    Exact up to a 64-bit hash collision: with a million finished keys, the chance that some
    unfinished key is taken for finished is about 3 in 100 million.
    """

    __slots__ = ("_hashes", "_rejected", "_rows")

    def __init__(
        self,
        hashes: array[int],
        rejected: array[int] | None = None,
        rows: array[int] | None = None,
    ) -> None:
        # sorted() makes a transient list of the hashes; the arrays then hold 16 bytes a key.
        self._hashes = array("q", sorted(hashes))
        #: per finished line, the hash of (its key's hash, its row's `identity`); None: unknown
        self._rows = array("q", sorted(rows)) if rows is not None else None
        #: the subset that ended ``rejected`` (few, in practice)
        self._rejected = array("q", sorted(rejected or ()))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _holds(self._hashes, hash(encoded_key(key)))

    def rejected(self, key: str) -> bool:
        """Whether ``key`` ended ``rejected`` (so a resumed job cannot end all ``ok``)."""
        return _holds(self._rejected, hash(encoded_key(key)))

    def same_row(self, key: str, row: int) -> bool:
        """Whether a finished ``key`` was finished for the row of `identity` ``row``."""
        if self._rows is None:
            return True
        return _holds(self._rows, hash((hash(encoded_key(key)), row)))

    def __len__(self) -> int:
        """How many finished lines were found (a key finished twice counts twice)."""
        return len(self._hashes)


def _holds(hashes: array[int], h: int) -> bool:
    i = bisect.bisect_left(hashes, h)
    return i < len(hashes) and hashes[i] == h


def finished_keys(path: Path | str) -> FinishedKeys:
    """The keys the ledger at ``path`` holds as finished; none when it does not exist yet."""
    hashes: array[int] = array("q")
    rows: array[int] = array("q")
    rejected: array[int] = array("q")
    if not Path(path).exists():
        return FinishedKeys(hashes)
    finished = {status.value for status in FINISHED}
    # The loop reads lines in the usual shape by pattern, not JSON: this is the hot path of resume.
    append, head_match, ident_match = hashes.append, _HEAD.match, _IDENT.match
    add_row = rows.append
    end = 0
    with _open(path) as stream:
        for number, raw in enumerate(stream, start=1):
            end += len(raw)
            head = head_match(raw)
            if head is not None and raw.endswith(b"}\n"):
                ident = ident_match(raw, head.end())
                at = raw.find(_STATUS, head.end()) + len(_STATUS)
                key = head.group(1)
                if (
                    ident is not None
                    and at >= len(_STATUS)
                    and b"\\u" not in key
                    and b"\\/" not in key
                ):
                    if raw.startswith(_OK, at) or raw.startswith(_SUPERSEDED, at):
                        append(h := hash(key))
                        add_row(hash((h, hash(ident.groups()))))
                    elif raw.startswith(_REJECTED, at):
                        append(h := hash(key))
                        add_row(hash((h, hash(ident.groups()))))
                        rejected.append(h)
                    continue
            data = raw.rstrip(b"\r\n")
            if not data.strip(b" \t\x00"):
                continue
            try:
                record = LedgerRecord.from_json(data)
            except ValueError as exc:
                warn_skipped(path, LedgerLine(number, data, raw.endswith(b"\n"), end), str(exc))
                continue
            if record.status.value in finished:
                append(h := hash(encoded_key(record.key)))
                add_row(hash((h, _record_identity(record))))
                if record.status is Status.REJECTED:
                    rejected.append(h)
    return FinishedKeys(hashes, rejected, rows)


def warn_skipped(path: Path | str, line: LedgerLine, reason: str) -> None:
    """Log that a line was skipped, saying whether it was torn (the last, without a newline)."""
    event = "ledger_line_skipped" if line.complete else "ledger_torn_line_skipped"
    _log.warning(event, ledger=str(path), line=line.number, reason=reason)


def _open(path: Path | str) -> BinaryIO:
    try:
        return Path(path).open("rb")
    except OSError as exc:
        raise LedgerError(path, f"cannot read the ledger: {exc.strerror or exc}") from None
