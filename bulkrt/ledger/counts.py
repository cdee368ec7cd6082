"""What a ledger says about its items: counts per status, action, account, and kinds of error.

Items are counted by their *latest* line (README "The ledger": the latest line of a key is its
state), so an item that failed and then succeeded on resume counts once, as ``ok``. Error kinds
are counted over items whose latest status is not ``ok``, by `ErrorDetail.kind`.

The ledger is read once, each line decoded once (`bulkrt.ledger.record.read_fields`'s rules:
msgspec in C for lines in the writer's exact types, a whole block in one call when each of its
lines is one object, `LedgerRecord.from_json` for the rest), in memory that barely grows. Each
line adds one to the count of its *entry* (status, action, account, error kind): lines per
entry, not yet items. Counting items by their latest line needs, for a
key with several lines, the entries of its earlier lines; one pass cannot know at a key's first
line whether another follows, and keeping every key would take memory that grows with the
ledger. So each line also notes its key's hash in a fixed bitmap (a hash met again may repeat:
`bulkrt.jobs.keys.RepeatFinder`'s scheme) and appends (key hash, entry, byte offset) to a log,
24 bytes a line, kept in a temporary file past 1.5 MB. When no key may repeat, the counts are
final. Otherwise the log is read back: lines whose hash may repeat and occurs more than once
are read again from the ledger by offset (only those lines) for their key, and each such key's
lines are taken off and its latest line's entry counted once: exact, whatever hashes collide.

The pass hands each block of read lines to a caller's ``each`` too: the report builds its model
from the same pass. It stops at the size the ledger had when the summary began, so a run
appending meanwhile cannot skew the counts.
"""

from __future__ import annotations

import json
import struct
import tempfile
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

from bulkrt.core.items import Action, Status
from bulkrt.errors import LedgerError
from bulkrt.jobs.keys import RepeatFinder
from bulkrt.ledger.reader import LineBlock, open_ledger, read_blocks, warn_skipped
from bulkrt.ledger.record import (
    FAST_LINE,
    FIELDS_REFUSED,
    LedgerRecord,
    LineFields,
    decode_fields,
    decode_lines,
    read_fields,
    utf8,
)

__all__ = ["LedgerSummary", "StatusTally", "summarise_ledger"]

#: what one item contributes to the counts: (status, action, account, error kind or None)
_Entry = tuple[Status | str, Action | str, str, str | None]
#: what ``each`` is handed: the readable lines of a block, in ledger order
Lines = Sequence[LineFields | LedgerRecord]


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """The counts `bulkrt status` shows; `to_json` is the stable form for scripts."""

    ledger: str
    #: readable lines, including earlier lines of resumed items
    lines: int
    #: lines skipped because they could not be read (torn by a crash)
    unreadable: int
    #: items, counted by their latest line
    items: int
    by_status: dict[str, int]
    #: action -> status -> items
    by_action: dict[str, dict[str, int]]
    #: account -> status -> items
    by_account: dict[str, dict[str, int]]
    #: error kind -> items whose latest line is ``rejected`` or ``error`` with that kind
    errors: dict[str, int] = field(default_factory=dict)
    #: ok retweets of undecidable origin (``preexisting: null``): rollback undoes them unless
    #: told to leave them alone
    undecided: int = 0

    def to_json(self) -> str:
        """Sorted, indented JSON with every status present (zero when no item has it)."""
        return json.dumps(
            {
                "ledger": self.ledger,
                "lines": self.lines,
                "unreadable_lines": self.unreadable,
                "items": self.items,
                "by_status": self.by_status,
                "by_action": self.by_action,
                "by_account": self.by_account,
                "errors": self.errors,
                "undecided_origin": self.undecided,
            },
            indent=2,
            sort_keys=True,
            ensure_ascii=False,
        )


class StatusTally:
    """Adds items up into a `LedgerSummary` (pure: no files)."""

    def __init__(self) -> None:
        self.lines = 0
        self.unreadable = 0
        self._status: Counter[Status] = Counter()
        self._action: defaultdict[Action, Counter[Status]] = defaultdict(Counter)
        self._account: defaultdict[str, Counter[Status]] = defaultdict(Counter)
        self._errors: Counter[str] = Counter()
        self.undecided = 0

    def add(self, entry: _Entry, count: int = 1) -> None:
        """Count ``count`` items whose latest state is ``entry``."""
        status, action, account, kind = entry
        status, action = Status(status), Action(action)
        self._status[status] += count
        self._action[action][status] += count
        self._account[account][status] += count
        if kind is not None and status is not Status.OK:
            self._errors[kind] += count

    def summary(self, ledger: str) -> LedgerSummary:
        """The counts so far, every status listed in each breakdown."""
        return LedgerSummary(
            ledger=ledger,
            lines=self.lines,
            unreadable=self.unreadable,
            items=self._status.total(),
            by_status=_all_statuses(self._status),
            by_action={a.value: _all_statuses(c) for a, c in sorted(self._action.items())},
            by_account={a: _all_statuses(c) for a, c in sorted(self._account.items())},
            errors=dict(sorted(self._errors.items(), key=lambda kv: (-kv[1], kv[0]))),
            undecided=self.undecided,
        )


def summarise_ledger(
    path: Path | str, *, each: Callable[[Lines], object] | None = None
) -> LedgerSummary:
    """Summarise the ledger at ``path``, handing each block's readable lines to ``each`` too,
    in ledger order; raise `LedgerError` if it cannot be read."""
    try:
        limit = Path(path).stat().st_size
    except OSError as exc:
        raise LedgerError(path, f"cannot read the ledger: {exc.strerror or exc}") from None
    reading = _Reading(path)
    try:
        for block in read_blocks(path, limit):
            lines = reading.block(block)
            if each is not None:
                each(lines)
        tally = StatusTally()
        tally.lines, tally.unreadable = sum(reading.counts), reading.unreadable
        tally.undecided = reading.undecided
        if reading.maybe:
            _settle(path, limit, reading.log, frozenset(reading.maybe), reading.counts)
    finally:
        reading.log.close()
    for entry, code in reading.codes.items():
        if reading.counts[code]:
            tally.add(entry, reading.counts[code])
    return tally.summary(str(path))


class _Reading:
    """The one pass over a ledger: lines per entry, the key log, unreadable and undecided lines."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        #: entry -> its code, an index in ``counts``
        self.codes: dict[_Entry, int] = {}
        #: per entry code: its lines, then (after `_settle`) its items
        self.counts: list[int] = []
        self.log = _LineLog()
        # `RepeatFinder.add_hash`, inlined: a key hash met again may repeat
        self.bits = bytearray(RepeatFinder.BITS // 8)
        self.maybe: set[int] = set()
        self.unreadable = 0
        self.undecided = 0

    def block(self, block: LineBlock) -> Lines:
        """Count a block's lines; return those read."""
        log = self.log
        lengths = list(map(len, block.lines))
        # every line's offset, blank and unreadable ones too (logged with no key: `NO_KEY`)
        _extend(log.starts, accumulate(map(_ONE_MORE, lengths[:-1]), initial=block.offset))
        whole = _decode_whole(block, lengths)
        lines = self._read(block) if whole is None else whole
        codes, counts, bits, add, mask, bit_of = (
            self.codes, self.counts, self.bits, self.maybe.add, RepeatFinder.BITS // 8 - 1, _BIT
        )  # fmt: skip
        # gathered in lists, then moved to the log's arrays at once (`_extend`)
        logged_hashes: list[int] = []
        logged_codes: list[int] = []
        hashes, entries = logged_hashes.append, logged_codes.append
        undecided = 0
        for fields in lines:
            if fields is None:
                hashes(NO_KEY)
                entries(NO_KEY)
                continue
            status, error = fields.status, fields.error
            if status == "ok" and fields.preexisting is None:
                undecided += 1
            entry: _Entry = (
                status, fields.action, fields.account, None if error is None else error.kind
            )  # fmt: skip
            code = codes.get(entry)
            if code is None:
                code = codes[entry] = len(counts)
                counts.append(0)
            # `RepeatFinder.add_hash`: bit ``h & 7`` of byte ``h >> 3`` of the bitmap
            h = hash(fields.key)
            byte, bit = h >> 3 & mask, bit_of[h & 7]
            seen = bits[byte]
            if seen & bit:
                add(h)
            else:
                bits[byte] = seen | bit
            hashes(h)
            entries(code)
        self.undecided += undecided
        for code, lines_of in Counter(logged_codes).items():
            if code != NO_KEY:
                counts[code] += lines_of
        _extend(log.hashes, logged_hashes)
        _extend(log.codes, logged_codes)
        log.spill()
        return whole if whole is not None else [f for f in lines if f is not None]

    def _read(self, block: LineBlock) -> list[LineFields | LedgerRecord | None]:
        """Each line of a block read alone: its fields, or None (blank, or unreadable and
        warned about)."""
        decode, refused, fast = decode_fields, FIELDS_REFUSED, FAST_LINE
        lines: list[LineFields | LedgerRecord | None] = []
        keep = lines.append
        for index, data in enumerate(block.lines):
            if len(data) <= fast and (data.isascii() or utf8(data)):  # see `read_fields`
                try:
                    keep(decode(data))
                    continue
                except refused:
                    pass
            keep(self._fallback(block, index, data))
        return lines

    def _fallback(self, block: LineBlock, index: int, data: bytes) -> LedgerRecord | None:
        """A line msgspec did not read: json's record of it, or None (blank or unreadable,
        warned about)."""
        data = data.rstrip(b"\r")
        if not data.strip(b" \t\x00"):
            return None
        try:
            return LedgerRecord.from_json(data)
        except ValueError as exc:
            self.unreadable += 1
            warn_skipped(self.path, block.line(index), str(exc))
            return None


def _extend(values: array[int], more: Iterable[int]) -> None:
    """Append ``more`` to an array of ``q`` at once: `array.append` and `array.extend` parse
    each value as a call's argument, `struct.pack` converts them in C."""
    packed = tuple(more)
    values.frombytes(struct.pack(f"{len(packed)}q", *packed))


def _decode_whole(block: LineBlock, lengths: list[int]) -> list[LineFields] | None:
    """All the lines of a block decoded in one call, when each is one object in the writer's
    exact types (the usual case); else None.

    msgspec's ``decode_lines`` reads a stream of JSON values apart by any whitespace, so it is
    used only when every line starts with ``{`` and ends with ``}``: then no value can span two
    lines (after a ``}`` inside a value comes ``,``, ``}`` or ``]``, never ``{``), each line
    holds at least one, and as many values as lines means one per line.
    """
    lines, count = block.lines, len(block.lines)
    if (
        block.torn
        or 0 in lengths  # a blank line
        or bytes(map(_FIRST, lines)) != b"{" * count
        or bytes(map(_LAST, lines)) != b"}" * count
        or max(lengths) > FAST_LINE
    ):
        return None
    text = block.text
    if not (text.isascii() or utf8(text)):  # see `read_fields`
        return None
    try:
        whole = decode_lines(text)
    except FIELDS_REFUSED:
        return None
    return whole if len(whole) == count else None


#: a line's length plus its newline
_ONE_MORE = (1).__add__
#: a line's first and last byte
_FIRST, _LAST = itemgetter(0), itemgetter(-1)
#: the bit of each of a byte's 8 places
_BIT = (1, 2, 4, 8, 16, 32, 64, 128)
#: the key hash and entry code logged for a line without a key (`hash` never gives -1)
NO_KEY = -1


class _LineLog:
    """Each line's key hash, entry code and byte offset, in arrays until `SPILL` lines,
    then in a temporary file (or, when no temporary file can be made, still in the arrays):
    what `_settle` reads back."""

    #: lines kept in memory (24 bytes each) before they go to the file
    SPILL = 1 << 16

    def __init__(self) -> None:
        self.hashes: array[int] = array("q")
        self.codes: array[int] = array("q")
        self.starts: array[int] = array("q")
        self._file: BinaryIO | None = None
        self._chunks: list[int] = []
        self._no_file = False

    def spill(self) -> None:
        """Move the lines kept in memory to the file, if they are many."""
        if len(self.hashes) < self.SPILL or self._no_file:
            return
        if self._file is None:
            try:
                self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by `close`)
            except OSError:  # no writable temporary directory: 24 bytes a line in memory
                self._no_file = True
                return
        for values in (self.hashes, self.codes, self.starts):
            values.tofile(self._file)
        self._chunks.append(len(self.hashes))
        self.hashes, self.codes, self.starts = array("q"), array("q"), array("q")

    def chunks(self) -> Iterator[tuple[array[int], array[int], array[int]]]:
        """The lines logged, in order, a chunk of arrays at a time."""
        if self._file is not None:
            self._file.seek(0)
            for size in self._chunks:
                chunk = []
                for _ in range(3):
                    values: array[int] = array("q")
                    values.fromfile(self._file, size)
                    chunk.append(values)
                yield chunk[0], chunk[1], chunk[2]
        yield self.hashes, self.codes, self.starts

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _settle(
    path: Path | str, limit: int, log: _LineLog, maybe: frozenset[int], counts: list[int]
) -> None:
    """Turn ``counts`` of lines into counts of items: each key with several lines counts once,
    by its latest line (see the module's docstring)."""
    found: array[int] = array("q")  # (hash, code, offset) of each line whose hash may repeat
    for hashes, codes, starts in log.chunks():
        for index in compress(range(len(hashes)), map(maybe.__contains__, hashes)):
            found.extend((hashes[index], codes[index], starts[index]))
    seen = Counter(found[::3])
    latest: dict[str, int] = {}
    with open_ledger(path) as stream:
        for at in range(0, len(found), 3):
            if seen[found[at]] > 1:
                code = found[at + 1]
                counts[code] -= 1
                latest[_key_at(path, stream, found[at + 2], limit)] = code
    for code in latest.values():
        counts[code] += 1


def _key_at(path: Path | str, stream: BinaryIO, start: int, limit: int) -> str:
    """The key of the line read at offset ``start`` (the ledger is only appended to)."""
    stream.seek(start)
    data = stream.readline(limit - start).removesuffix(b"\n").rstrip(b"\r")
    try:
        return read_fields(data).key
    except ValueError:
        raise LedgerError(path, "changed while it was read") from None


def _all_statuses(counts: Counter[Status]) -> dict[str, int]:
    return {status.value: counts[status] for status in Status}
