"""What a ledger says about its items: counts per status, action, account, and kinds of error.

Items are counted by their *latest* line (README "The ledger": the latest line of a key is its
state), so an item that failed and then succeeded on resume counts once, as ``ok``. Error kinds
are counted over items whose latest status is not ``ok``, by `ErrorDetail.kind`.

Like resume, this runs in memory that barely grows with the ledger: a first pass notes every
key's hash in `bulkrt.jobs.keys.RepeatFinder` (a fixed bitmap), a second counts lines whose key
occurs once directly and keeps only the keys that may repeat until the end. Both passes stop
at the size the ledger had when the summary began, so a run appending meanwhile cannot skew
the counts.

Only the second pass reads lines into their fields (`RecordFields`), each once, and hands each
to a caller's ``each``: the report builds its model from the same pass. The first takes only
each line's key (`bulkrt.ledger.record.line_key`: orjson's parse of the line in C, checking and
building nothing, measured faster than finding the key's bytes in Python). The ledger is read
twice because one pass cannot count items by their latest line in fixed memory: at a key's
first line it would have to know whether another follows, so it would keep every key to the
end (memory that grows with the ledger's items).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bulkrt.core.items import Action, Status
from bulkrt.errors import LedgerError
from bulkrt.jobs.keys import RepeatFinder
from bulkrt.ledger.reader import read_blocks, warn_skipped
from bulkrt.ledger.record import RecordFields, line_key

__all__ = ["LedgerSummary", "StatusTally", "summarise_ledger"]

#: what one item contributes to the counts: (status, action, account, error kind or None)
_Entry = tuple[Status, Action, str, str | None]


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

    def add(self, entry: _Entry) -> None:
        """Count one item by its latest state."""
        status, action, account, kind = entry
        self._status[status] += 1
        self._action[action][status] += 1
        self._account[account][status] += 1
        if kind is not None and status is not Status.OK:
            self._errors[kind] += 1

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
    path: Path | str, *, each: Callable[[RecordFields], object] | None = None
) -> LedgerSummary:
    """Summarise the ledger at ``path``, handing each readable line's fields to ``each`` too,
    in ledger order; raise `LedgerError` if it cannot be read."""
    try:
        limit = Path(path).stat().st_size
    except OSError as exc:
        raise LedgerError(path, f"cannot read the ledger: {exc.strerror or exc}") from None
    repeated = _repeated_keys(path, limit)
    tally = StatusTally()
    latest: dict[str, _Entry] = {}
    parse, ok, add = RecordFields.from_json, Status.OK, tally.add
    lines = 0
    for block in read_blocks(path, limit):
        for index, data in enumerate(block.lines):
            if not data.endswith(b"}"):
                data = data.rstrip(b"\r")
                if not data.strip(b" \t\x00"):
                    continue
            try:
                fields = parse(data)
            except ValueError as exc:
                tally.unreadable += 1
                warn_skipped(path, block.line(index), str(exc))
                continue
            lines += 1
            if each is not None:
                each(fields)
            status, error = fields.status, fields.error
            if status is ok and fields.preexisting is None:
                tally.undecided += 1
            entry = (status, fields.action, fields.account, None if error is None else error.kind)
            if repeated and hash(fields.key) in repeated:
                latest[fields.key] = entry
            else:
                add(entry)
    tally.lines = lines
    for entry in latest.values():
        add(entry)
    return tally.summary(str(path))


def _repeated_keys(path: Path | str, limit: int) -> frozenset[int]:
    """The hashes of the keys that may have more than one line (a first, lighter pass)."""
    finder = RepeatFinder()
    note = finder.add_hash
    for block in read_blocks(path, limit):
        for data in block.lines:
            key = line_key(data)
            if key is not None:
                note(hash(key))
    return finder.repeated()


def _all_statuses(counts: Counter[Status]) -> dict[str, int]:
    return {status.value: counts[status] for status in Status}
