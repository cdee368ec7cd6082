"""A ledger line as a record: `LedgerRecord` (its error is `bulkrt.core.items.ErrorDetail`),
serialised one line per record; and what counting and the report read of a line without
building its record (`LineFields`: msgspec decodes and checks the line in one call, in C;
`LedgerRecord.from_json` decides every line that is not in the writer's exact types).

A ledger line (README "The ledger") is `LedgerRecord.to_json`: compact JSON, fields in the
README's order with ``schema`` first, UTF-8 without ASCII escaping. `bulkrt.ledger.reader`
relies on that exact shape to scan a ledger fast; `bulkrt.ledger.writer` appends the lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import orjson

from bulkrt.core.items import Action, ErrorDetail, Item, Status

__all__ = [
    "FINISHED",
    "SCHEMA",
    "LedgerRecord",
    "LineFields",
    "encoded_key",
    "read_fields",
    "utf8",
]

#: the ``schema`` of the lines this version writes
SCHEMA = 1
#: statuses that end an item for good: resume skips keys with a line in one of these
FINISHED = frozenset({Status.OK, Status.REJECTED, Status.SUPERSEDED})


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One finished attempt-chain of an item, exactly as one ledger line holds it.

    >>> record = LedgerRecord(
    ...     ts="2026-11-26T01:00:00.000Z", run="r1", key="k1", campaign="c", account="acme",
    ...     user_id="1001", tweet_id="20", action=Action.RETWEET, status=Status.OK,
    ...     retweeted=True, preexisting=False, http=200, error=None, attempts=1,
    ... )
    >>> line = record.to_json()  # one line, no newline
    >>> line[:40]
    '{"schema":1,"ts":"2026-11-26T01:00:00.00'
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
    #: an ok retweet found the Tweet already retweeted: true when the account had made it,
    #: false when the campaign had, None (``null``) when the evidence cannot decide
    #: (`bulkrt.core.attribution`)
    preexisting: bool | None
    http: int | None
    error: ErrorDetail | None
    attempts: int
    schema: int = SCHEMA
    #: when the item's last request was sent (optional, after ``attempts``; older lines lack it)
    sent: str | None = None

    @classmethod
    def of(
        cls,
        item: Item,
        *,
        run: str,
        user_id: str,
        at: datetime,
        status: Status,
        retweeted: bool | None,
        preexisting: bool | None = False,
        http: int | None = None,
        error: ErrorDetail | None = None,
        attempts: int,
        sent: datetime | None = None,
    ) -> LedgerRecord:
        """The record of ``item``'s outcome, known at ``at`` (a timezone-aware time)."""
        return cls(
            ts=_stamp(at),
            run=run,
            key=item.key,
            campaign=item.campaign,
            account=item.account,
            user_id=user_id,
            tweet_id=item.tweet_id,
            action=item.action,
            status=status,
            retweeted=retweeted,
            preexisting=preexisting,
            http=http,
            error=error,
            attempts=attempts,
            sent=None if sent is None else _stamp(sent),
        )

    def to_json(self) -> str:
        """The ledger line for this record, without its newline."""
        return self.to_line()[:-1].decode()

    def to_line(self) -> bytes:
        """The ledger line for this record, with its newline, as the UTF-8 bytes written."""
        error = self.error
        # Built by hand rather than with dataclasses.asdict, which deep-copies every value:
        # this runs once per item. orjson writes what json.dumps(ensure_ascii=False,
        # separators=(",", ":")) writes, byte for byte, enums as their values.
        ordered = {
            "schema": self.schema,
            "ts": self.ts,
            "run": self.run,
            "key": self.key,
            "campaign": self.campaign,
            "account": self.account,
            "user_id": self.user_id,
            "tweet_id": self.tweet_id,
            "action": self.action,
            "status": self.status,
            "retweeted": self.retweeted,
            "preexisting": self.preexisting,
            "http": self.http,
            "error": None if error is None else {
                "type": error.type, "title": error.title, "detail": error.detail
            },
            "attempts": self.attempts,
        }  # fmt: skip
        if self.sent is not None:
            ordered["sent"] = self.sent
        try:
            return orjson.dumps(ordered, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:
            # what orjson refuses (a lone surrogate, an integer beyond 64 bits) is json's to say
            text = json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))
            return (text + "\n").encode()

    @classmethod
    def from_json(cls, line: str | bytes) -> LedgerRecord:
        """Parse one ledger line; raise ValueError saying what is wrong with it."""
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        except RecursionError:  # valid JSON, but nested deeper than json's recursion allows
            raise ValueError("not a ledger line: JSON nested too deeply to read") from None
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
                preexisting=_preexisting(data["preexisting"]),
                http=data["http"],
                error=_error(data["error"]),
                attempts=int(data["attempts"]),
                sent=data["sent"] if isinstance(data.get("sent"), str) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad field: {exc}") from None


class LineFields(msgspec.Struct, gc=False):
    """A ledger line in the writer's exact types, as msgspec decodes it (`read_fields`): what
    counting and the report read of a line, without building its `LedgerRecord` (`record`
    builds that). ``action`` and ``status`` are their enums' values (plain strings, compared
    with ``==``); ``retweeted`` and ``http`` are kept as their JSON text.

    >>> line = b'{"schema":1,"ts":"2026-11-26T01:00:00.000Z","run":"r1","key":"k1","campaign":"c",'
    >>> line += b'"account":"acme","user_id":"1001","tweet_id":"20","action":"retweet",'
    >>> line += b'"status":"ok","retweeted":true,"preexisting":false,"http":200,"error":null,'
    >>> line += b'"attempts":1}'
    >>> fields = read_fields(line)
    >>> fields.key, fields.status, fields.attempts, fields.record().tweet_id
    ('k1', 'ok', 1, '20')
    """

    schema: Literal[1]
    ts: str
    run: str
    key: str
    campaign: str
    account: str
    user_id: str
    tweet_id: str
    action: Literal["retweet", "undo"]
    status: Literal["ok", "rejected", "error", "superseded"]
    retweeted: msgspec.Raw
    preexisting: bool | None
    http: msgspec.Raw
    error: ErrorDetail | None
    attempts: int
    sent: str | None = None

    def record(self) -> LedgerRecord:
        """The whole record of the line, equal to `LedgerRecord.from_json`'s."""
        return LedgerRecord(
            ts=self.ts, run=self.run, key=self.key, campaign=self.campaign,
            account=self.account, user_id=self.user_id, tweet_id=self.tweet_id,
            action=Action(self.action), status=Status(self.status),
            # json's own reading of the values' text: what it reads inside the whole line
            retweeted=json.loads(bytes(self.retweeted)), preexisting=self.preexisting,
            http=json.loads(bytes(self.http)), error=self.error, attempts=self.attempts,
            sent=self.sent,
        )  # fmt: skip


_DECODER = msgspec.json.Decoder(LineFields)
#: decodes a line in the writer's exact types into `LineFields`, raising `FIELDS_REFUSED` else
decode_fields = _DECODER.decode
#: decodes whitespace-separated lines like `decode_fields`, into a list
decode_lines = _DECODER.decode_lines
#: what `decode_fields` raises on a line it does not read (RecursionError: nesting too deep)
FIELDS_REFUSED = (msgspec.MsgspecError, RecursionError)
#: lines longer than this are left to `LedgerRecord.from_json`: json refuses numbers of over
#: 4300 digits and nesting near Python's recursion limit, which msgspec reads; neither fits
#: in a line this short. The writer's lines are about 300-500 bytes.
FAST_LINE = 1024


def read_fields(line: bytes) -> LineFields | LedgerRecord:
    """The fields of one ledger line: `LineFields` when it is in the writer's exact types, else
    `LedgerRecord.from_json`'s record of it; raise ValueError as `LedgerRecord.from_json` would.

    msgspec refuses whatever json reads differently (NaN, lone surrogates, a byte-order mark,
    values of other types), so a line either reads the same both ways or falls to json; but it
    checks UTF-8 only in the strings it reads, not in what it skips (an unknown field, a value
    kept as its JSON text), where json refuses the whole line: a line is UTF-8 (`utf8`) first.
    """
    if len(line) <= FAST_LINE and (line.isascii() or utf8(line)):
        try:
            return decode_fields(line)
        except FIELDS_REFUSED:
            pass
    return LedgerRecord.from_json(line)


def utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 (strict: no encoded surrogates; see `read_fields`)."""
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _stamp(at: datetime) -> str:
    """A ledger timestamp: UTC, milliseconds, ``Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encoded_key(key: str) -> bytes:
    """The bytes that stand for ``key`` inside a line `LedgerRecord.to_json` writes."""
    return json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def _preexisting(value: object) -> bool | None:
    return None if value is None else bool(value)


def _error(value: object) -> ErrorDetail | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise TypeError("error must be an object with a type")
    return ErrorDetail(value["type"], value.get("title"), value.get("detail"))
