"""Reading one job file, CSV or JSONL (maybe gzip), as a stream of raw rows and file-level problems.

Lines are read as bytes and decoded one at a time, so memory does not grow with the file and an
invalid UTF-8 byte is reported at its line. A UTF-8 BOM at the start and CRLF line endings are
accepted; blank lines are skipped.

CSV: the first non-blank row is the header (names are stripped and lower-cased). A missing
required column or a repeated column stops that file with a problem on the header line. A
row with more or fewer values than the header has columns is a problem. JSONL: every
non-blank line must be one JSON object.

Unknown columns (CSV) and keys (JSONL) are *not* errors: they are reported once per file, as
warnings, and ignored, so operators can keep notes beside the fields bulkrt reads.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, cast

from bulkrt.errors import BulkrtError, Problem
from bulkrt.jobs.json_keys import first_repeat, loads_noting_repeats
from bulkrt.jobs.rows import KNOWN_FIELDS, REQUIRED_FIELDS, has_lone_surrogate
from bulkrt.redaction import shown

__all__ = [
    "COMPRESSORS",
    "JOURNAL_GIVEN_AS_JOB",
    "LEDGER_GIVEN_AS_JOB",
    "SUFFIXES",
    "Compressor",
    "JobFile",
    "JobFormat",
    "RawRow",
    "format_of",
    "gzip_start",
    "read_raw_rows",
]


@dataclass(frozen=True, slots=True)
class Compressor:
    """A tool that compresses a file: the first bytes of what it writes, its name, the suffix it
    gives the file, and the command that gives the file back under the name without it."""

    magic: bytes
    tool: str
    suffix: str
    decompress: str


#: the compressors an archived file (a job, a ledger, its journal) may have gone through
COMPRESSORS = (
    Compressor(b"\x1f\x8b", "gzip", ".gz", "gzip -d"),
    Compressor(b"BZh", "bzip2", ".bz2", "bzip2 -d"),
    Compressor(b"\xfd7zXZ\x00", "xz", ".xz", "xz -d"),
    Compressor(b"\x28\xb5\x2f\xfd", "zstd", ".zst", "zstd -d --rm"),
)


def gzip_start(data: bytes, limit: int) -> bytes | None:
    """What ``data`` inflates to (at most ``limit`` bytes) when it begins a gzip stream, also
    one cut short (an interrupted copy), to tell what was compressed; None when it is not gzip,
    and ``b""`` when the stream is damaged.

    >>> import gzip
    >>> gzip_start(gzip.compress(b"account,tweet_id")[:30], 7), gzip_start(b"plain", 7)
    (b'account', None)
    """
    if not data.startswith(COMPRESSORS[0].magic):
        return None
    try:
        return zlib.decompressobj(wbits=31).decompress(data, limit)
    except zlib.error:
        return b""


class JobFormat(StrEnum):
    """How a job file is written."""

    #: comma-separated values with a header row
    CSV = "csv"
    #: one JSON object per line
    JSONL = "jsonl"


#: the names a job file may have, and the format each means (``.gz`` may follow any of them)
SUFFIXES: Mapping[str, JobFormat] = {
    ".csv": JobFormat.CSV,
    ".jsonl": JobFormat.JSONL,
    ".ndjson": JobFormat.JSONL,
}


def is_journal(path: Path) -> bool:
    """Whether ``path``'s first line (through gzip, if it is compressed: an archived journal)
    is a line of a ledger's sent journal (``<ledger>.sent``), which is JSONL that no job file's
    name announces."""
    try:
        with path.open("rb") as stream:
            first = stream.readline(4096)
        if first.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as stream:
                first = stream.readline(4096)
    except _GZIP_ERRORS:
        return False
    return first.startswith(b'{"e":') and b'"key":' in first


def format_of(name: str) -> JobFormat | None:
    """The format a job file's name says, or None for a name of neither kind.

    >>> format_of("spring.ndjson.gz"), format_of("spring.txt")
    (<JobFormat.JSONL: 'jsonl'>, None)
    """
    name = name.removesuffix(".gz")
    return next((fmt for suffix, fmt in SUFFIXES.items() if name.endswith(suffix)), None)


@dataclass(frozen=True, slots=True)
class JobFile:
    """A job file ready to read: its bytes, its name in messages, its format and its campaign."""

    #: the bytes to read (standard input is first spooled to a temporary file)
    path: Path
    #: the file as the operator named it, used in every message
    name: str
    fmt: JobFormat
    #: the campaign of rows that name none
    campaign: str


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row as read, before its fields are checked (`bulkrt.jobs.rows.check_row` makes it a
    `bulkrt.jobs.rows.Row`)."""

    line: int
    fields: dict[str, object]


#: receives a warning (an unknown column, for instance) that does not stop the job
WarningSink = Callable[[Problem], None]

#: fields of a ledger line that no job row has: a ledger given as a job is refused by name
_LEDGER_FIELDS = frozenset({"schema", "run", "key", "status"})
LEDGER_GIVEN_AS_JOB = (
    "this is a bulkrt ledger (outcomes of runs), not a job: nothing was read from it; give the "
    "campaign's job file, or `bulkrt rollback LEDGER --out undo.csv` to write the undo job"
)
#: the fields every line of a ledger's sent journal (``<ledger>.sent``) starts with
_JOURNAL_FIELDS = frozenset({"e", "key"})
JOURNAL_GIVEN_AS_JOB = (
    "this is a ledger's journal (<ledger>.sent: the requests runs sent), not a job: nothing was "
    "read from it; give the campaign's job file, or `bulkrt rollback LEDGER --out undo.csv` "
    "(it reads the journal beside its ledger)"
)
_GZIP_ERRORS = (EOFError, OSError, zlib.error)
#: the longest line read from a job file: a row is a few hundred bytes, and a longer line (a
#: gzip bomb of one line, a binary file) is refused where it starts, not read whole into memory
_MAX_LINE = 1 << 20
_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}
_JSON_KINDS[type(None)] = "null"


def read_raw_rows(job: JobFile, warn: WarningSink) -> Iterator[RawRow | Problem]:
    """Yield the rows of ``job`` in file order, with a `Problem` wherever one cannot be read."""
    lines = _Lines(job)
    rows = (
        _csv_rows(job, lines, warn) if job.fmt is JobFormat.CSV else _jsonl_rows(job, lines, warn)
    )
    try:
        yield from rows
    except _GZIP_ERRORS as exc:
        if lines.number == 0 and str(exc).startswith("Not a gzipped file"):
            # named .gz, but its bytes do not begin as gzip's (read by their name: see `_open`)
            detail = "named .gz but not gzip-compressed: rename it without .gz"
            yield Problem(job.name, 1, "file", detail)
        else:
            where = "cannot read" if lines.number == 0 else "cannot read past the line before"
            yield Problem(job.name, lines.number + 1, "file", f"{where}: {exc}")
    except _LineTooLong:
        detail = (
            f"a line longer than {_MAX_LINE // (1 << 20)} MiB: not a job's row; not read further"
        )
        yield Problem(job.name, lines.number + 1, "file", detail)


class _LineTooLong(BulkrtError):
    """A line of a job file is longer than `_MAX_LINE`."""


class _Lines:
    """The decoded lines of a file, counting them; undecodable bytes become lone surrogates."""

    def __init__(self, job: JobFile) -> None:
        self._job = job
        #: how many physical lines have been handed out
        self.number = 0
        #: line numbers that held invalid UTF-8
        self.undecodable: set[int] = set()
        #: whether the file starts with a UTF-16 byte order mark (Excel's "Unicode text")
        self.utf16 = False
        #: the last line handed out (what a CSV error was about)
        self.last = ""

    def __iter__(self) -> Iterator[str]:
        with _open(self._job.path) as stream:
            for raw in iter(lambda: stream.readline(_MAX_LINE + 1), b""):
                if len(raw) > _MAX_LINE:
                    raise _LineTooLong
                self.number += 1
                if self.number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                elif self.number == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                    self.utf16 = True
                try:
                    self.last = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.undecodable.add(self.number)
                    self.last = raw.decode("utf-8", errors="surrogateescape")
                yield self.last


def _open(path: Path) -> BinaryIO:
    """The bytes of a job file, through gzip when they begin as gzip does, whatever the name
    (``spring.csv`` that is ``spring.csv.gz`` renamed, ``.GZ``): no text file begins so, and
    read as they are, they would be reported as invalid UTF-8. The file is opened once (a file
    that is read once only, standard input or a FIFO, was spooled to a regular file first)."""
    stream = path.open("rb")
    try:
        compressed = stream.read(2) == b"\x1f\x8b"
        stream.seek(0)
    except OSError:
        stream.close()
        raise
    if compressed or path.name.endswith(".gz"):
        return cast(BinaryIO, _OwnedGzip(stream))
    return stream


class _OwnedGzip(gzip.GzipFile):
    """A `gzip.GzipFile` reading an open file, which it closes with itself (a GzipFile given a
    file object leaves it open)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def _csv_rows(job: JobFile, lines: _Lines, warn: WarningSink) -> Iterator[RawRow | Problem]:
    reader = csv.reader(iter(lines))
    header: list[str] | None = None
    header_line = 0
    seen_rows = 0
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if lines.utf16:
                yield _utf16(job)
                return
            seen_rows += 1
            yield Problem(job.name, start, "row", f"not valid CSV: {_csv_error(exc, lines.last)}")
            continue
        if lines.utf16:
            yield _utf16(job)
            return
        if not "".join(values).strip():  # a blank row (one test, not one per value)
            continue
        if header is None:
            header, header_line = [v.strip().lower() for v in values], start
            problem = _check_header(job, header, header_line, warn)
            if problem is not None:
                yield problem
                return
            continue
        seen_rows += 1
        if len(values) != len(header):
            yield Problem(
                job.name,
                start,
                "row",
                f"{len(values)} values, but the header has {len(header)} columns",
            )
            continue
        yield RawRow(start, dict(zip(header, values, strict=False)))  # lengths checked above
    if header is None and seen_rows == 0:
        expected = "expected a header row: account,tweet_id,action"
        yield Problem(job.name, 1, "header", f"{_nothing(lines)}; {expected}")
    elif header is not None and seen_rows == 0:
        yield Problem(job.name, header_line, "file", "no items after the header")
    # no header but rows that were not CSV: those errors say what is wrong; the file is not empty


def _csv_error(exc: csv.Error, line: str) -> str:
    """A CSV error in the operator's words: lines ending in a lone carriage return (classic Mac
    OS, some exports) read as one line with new-lines inside, which Python's message words as
    advice to programmers ("open the file in universal-newline mode").

    >>> error = csv.Error("new-line character seen in unquoted field")
    >>> _csv_error(error, "a,b\\rc,d\\r").startswith("its lines end in a carriage return only")
    True
    >>> _csv_error(error, 'a,"b\\r\\n')
    'new-line character seen in unquoted field'
    """
    if "\r" in line.replace("\r\n", ""):
        return (
            "its lines end in a carriage return only (CR, as classic Mac OS and some exports "
            "write them): save it with LF or CRLF line ends"
        )
    return str(exc)


def _utf16(job: JobFile) -> Problem:
    """The problem of a UTF-16 job file (what a spreadsheet saves as Unicode text)."""
    return Problem(
        job.name,
        1,
        "file",
        'not UTF-8: the file is UTF-16 (Excel\'s "Unicode text"); save it as "CSV UTF-8"',
    )


def _check_header(job: JobFile, header: list[str], line: int, warn: WarningSink) -> Problem | None:
    # a ledger or its journal (JSONL) under a job's .csv name: named, not "missing column"
    for start, given in (('{"schema":', LEDGER_GIVEN_AS_JOB), ('{"e":', JOURNAL_GIVEN_AS_JOB)):
        if header[0].startswith(start):
            return Problem(job.name, line, "file", given)
    if any(has_lone_surrogate(name) for name in header):
        return Problem(job.name, line, "header", "invalid UTF-8")
    for name in header:
        if header.count(name) > 1:
            if not name:
                return Problem(
                    job.name,
                    line,
                    "header",
                    "more than one column has an empty name (trailing commas, as a spreadsheet "
                    "writes after empty columns?): remove the empty columns",
                )
            return Problem(job.name, line, name, "column appears more than once")
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing and len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        separator = "';'" if ";" in header[0] else "a tab"
        return Problem(
            job.name,
            line,
            missing[0],
            f"missing column: the header is one column holding {separator}: the file seems "
            f"separated by {separator} (a spreadsheet in some locales); save it separated "
            f"by commas",
        )
    if missing:
        return Problem(
            job.name,
            line,
            missing[0],
            f"missing column (header has: {', '.join(shown(name) for name in header)})",
        )
    for name in header:
        if name not in KNOWN_FIELDS:
            warn(Problem(job.name, line, name or "(empty)", "unknown column, ignored"))
    return None


def _jsonl_rows(job: JobFile, lines: _Lines, warn: WarningSink) -> Iterator[RawRow | Problem]:
    seen_rows = 0
    warned: set[str] = set()
    for text in lines:
        if not text.strip():
            continue
        seen_rows += 1
        line = lines.number
        if line in lines.undecodable:
            yield Problem(job.name, line, "row", "invalid UTF-8")
            continue
        try:
            value, repeated = loads_noting_repeats(text)
        except json.JSONDecodeError as exc:
            yield Problem(job.name, line, "row", f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        repeat = first_repeat(text) if repeated else None
        if repeat is not None:  # JSON keeps the last value: which one was meant?
            yield Problem(job.name, line, repeat.field, "field appears more than once in the row")
            continue
        if not isinstance(value, dict):
            kind = _JSON_KINDS.get(type(value), type(value).__name__)
            yield Problem(job.name, line, "row", f"must be a JSON object, not {kind}")
            continue
        if seen_rows == 1 and value.keys() >= _LEDGER_FIELDS:
            yield Problem(job.name, line, "file", LEDGER_GIVEN_AS_JOB)
            return
        if seen_rows == 1 and value.keys() >= _JOURNAL_FIELDS:
            yield Problem(job.name, line, "file", JOURNAL_GIVEN_AS_JOB)
            return
        for name in value.keys() - KNOWN_FIELDS - warned:
            warned.add(name)
            warn(Problem(job.name, line, name, "unknown field, ignored"))
        yield RawRow(line, value)
    if seen_rows == 0:
        yield Problem(job.name, 1, "file", f"no items ({_nothing(lines)})")


def _nothing(lines: _Lines) -> str:
    """What a file with no row holds: no line at all, or only blank lines (spaces, tabs, or
    characters that Python reads as white space: the ASCII separators 0x1C-0x1F, a no-break
    space), which a row of values never is."""
    if lines.number == 0:
        return "the file is empty"
    count = "its only line is" if lines.number == 1 else f"all {lines.number} of its lines are"
    return f"{count} blank (white space or control characters only)"
