"""The ledger's lines as records, and reading a ledger back: every record, or the finished keys.

A ledger line (CONTRACT "The ledger") is a `LedgerRecord` serialised by `LedgerRecord.to_json`,
fields in CONTRACT order, ``schema`` first. Reading tolerates what a crash can leave behind: a
torn last line (no newline, not valid JSON) is skipped with a warning, and so is an unreadable
line inside the file (a torn line that a later run closed with a newline before appending).

Resume (`finished_keys`) must scan a million lines in well under three seconds, so it does not
parse whole lines: for lines in the exact shape `to_json` writes, it picks out ``key`` and
``status`` with two regular expressions (JSON escapes every ``"`` inside a string, so
``"status":"`` can only match the real field) and parses fully only lines of another shape.
It keeps one 64-bit hash per finished key in a sorted ``array('q')``: 8 bytes a key.
"""

from __future__ import annotations

import bisect
import json
import re
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from bulkrt.errors import LedgerError
from bulkrt.items import Action, Status

__all__ = [
    "SCHEMA",
    "FINISHED",
    "ErrorInfo",
    "FinishedKeys",
    "LedgerRecord",
    "LedgerLine",
    "finished_keys",
    "key_and_status",
    "read_ledger",
    "scan_ledger",
    "warn_skipped",
]

#: the ``schema`` of the lines this version writes
SCHEMA = 1
#: statuses that end an item for good: resume skips keys with a line in one of these
FINISHED = frozenset({Status.OK, Status.REJECTED})

_log = structlog.get_logger()
_OWN_SHAPE = b'{"schema":1,'
_KEY = re.compile(rb'"key":("(?:[^"\\]|\\.)*")')
_STATUS = re.compile(rb'"status":"(ok|rejected|error)"')
_FINISHED_BYTES = frozenset({b"ok", b"rejected"})


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why an item did not end ``ok``: the API's problem body, or a local description."""

    #: the problem type URI (``https://api.twitter.com/2/problems/...``) or a local kind
    type: str
    title: str | None = None
    detail: str | None = None

    @property
    def kind(self) -> str:
        """The short name `bulkrt status` groups errors by: the last segment of ``type``."""
        return self.type.rstrip("/").rsplit("/", 1)[-1] or self.type


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One finished attempt-chain of an item, exactly as one ledger line holds it.

    >>> line = record.to_json()          # one line, no newline
    >>> LedgerRecord.from_json(line) == record
    True
    """

    ts: str
    run: str
    key: str
    campaign: str
    account: str
    user_id: str
    tweet_id: str
    action: Action
    status: Status
    retweeted: bool | None
    preexisting: bool
    http: int | None
    error: ErrorInfo | None
    attempts: int
    schema: int = SCHEMA

    def to_json(self) -> str:
        """The ledger line for this record, without its newline."""
        fields = asdict(self)
        ordered = {"schema": fields.pop("schema"), **fields}
        return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str | bytes) -> LedgerRecord:
        """Parse one ledger line; raise ValueError saying what is wrong with it."""
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unknown schema {data.get('schema')!r}")
        try:
            return cls(
                ts=_str(data, "ts"),
                run=_str(data, "run"),
                key=_str(data, "key"),
                campaign=_str(data, "campaign"),
                account=_str(data, "account"),
                user_id=_str(data, "user_id"),
                tweet_id=_str(data, "tweet_id"),
                action=Action(data["action"]),
                status=Status(data["status"]),
                retweeted=data["retweeted"],
                preexisting=bool(data["preexisting"]),
                http=data["http"],
                error=_error(data["error"]),
                attempts=int(data["attempts"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad field: {exc}") from None


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One raw line of a ledger: its number, its bytes, and whether it ended with a newline."""

    number: int
    data: bytes
    complete: bool
    #: the byte offset just past this line in the file
    end: int


def scan_ledger(path: Path | str) -> Iterator[LedgerLine]:
    """Yield the non-blank lines of a ledger; raise `LedgerError` if it cannot be read."""
    end = 0
    with _open(path) as stream:
        for number, raw in enumerate(stream, start=1):
            end += len(raw)
            complete = raw.endswith(b"\n")
            data = raw.rstrip(b"\r\n")
            if data.strip(b" \t\x00"):
                yield LedgerLine(number, data, complete, end)


def _open(path: Path | str) -> BinaryIO:
    try:
        return Path(path).open("rb")
    except OSError as exc:
        raise LedgerError(path, f"cannot read the ledger: {exc.strerror or exc}") from None


def read_ledger(path: Path | str) -> Iterator[LedgerRecord]:
    """Yield every readable record of a ledger in order, warning about lines it skips."""
    for line in scan_ledger(path):
        try:
            yield LedgerRecord.from_json(line.data)
        except ValueError as exc:
            warn_skipped(path, line, str(exc))


class FinishedKeys:
    """The keys a ledger holds as finished (``ok`` or ``rejected``), as sorted 64-bit hashes.

    Membership is exact up to a hash collision: with a million finished keys the chance that
    some other key is taken for finished is about 3 in 100 million.
    """

    __slots__ = ("_hashes",)

    def __init__(self, hashes: array[int]) -> None:
        self._hashes = array("q", sorted(set(hashes)))

    def __contains__(self, key: object) -> bool:
        h = hash(key)
        i = bisect.bisect_left(self._hashes, h)
        return i < len(self._hashes) and self._hashes[i] == h

    def __len__(self) -> int:
        return len(self._hashes)


def finished_keys(path: Path | str) -> FinishedKeys:
    """The keys the ledger at ``path`` holds as finished; none when it does not exist yet."""
    hashes: array[int] = array("q")
    if not Path(path).exists():
        return FinishedKeys(hashes)
    for line in scan_ledger(path):
        key, status = key_and_status(line)
        if key is None:
            try:
                record = LedgerRecord.from_json(line.data)
            except ValueError as exc:
                warn_skipped(path, line, str(exc))
                continue
            key, finished = record.key, record.status in FINISHED
        else:
            finished = status in _FINISHED_BYTES
        if finished:
            hashes.append(hash(key))
    return FinishedKeys(hashes)


def key_and_status(line: LedgerLine) -> tuple[str | None, bytes | None]:
    """The key and status of a line in `to_json`'s shape, without parsing it; Nones otherwise."""
    data = line.data
    if not (line.complete and data.startswith(_OWN_SHAPE) and data.endswith(b"}")):
        return None, None
    key_match = _KEY.search(data)
    status_match = _STATUS.search(data)
    if key_match is None or status_match is None:
        return None, None
    quoted = key_match.group(1)
    try:
        key = quoted[1:-1].decode() if b"\\" not in quoted else json.loads(quoted)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, None
    return key, status_match.group(1)


def warn_skipped(path: Path | str, line: LedgerLine, reason: str) -> None:
    """Log that a line was skipped, saying whether it was torn (the last, without a newline)."""
    event = "ledger_line_skipped" if line.complete else "ledger_torn_line_skipped"
    _log.warning(event, ledger=str(path), line=line.number, reason=reason)


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def _error(value: object) -> ErrorInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise TypeError("error must be an object with a type")
    return ErrorInfo(value["type"], value.get("title"), value.get("detail"))
