"""Resuming a job on its ledger: everything a resumed run needs from the ledger, in one place.

- `finished_keys`: the keys the ledger holds as finished (``ok``, ``rejected`` or
  ``superseded``), each with the identity of the row it was finished for (`FinishedKeys`).
  The scan reads lines in `LedgerRecord.to_json`'s exact shape fast, as
  `bulkrt.ledger.reader` does, and parses any other line in full.
- `plan_resume`: one pass over the job's items, under the ledger's lock, before anything is
  sent: every finished key is checked against its row (an ``id`` reused for another row is an
  input error, never a silent skip), the unfinished items a later finished one has overtaken
  are found (*superseded*), and the finished items are counted per account and action, so the
  estimate of what is left needs no pass of its own (`ResumePlan.left`).

`FinishedKeys` keeps one 64-bit hash of each finished key's JSON text in a sorted
``array('q')``, and one of (key, row identity): 16 bytes a key.

>>> import tempfile
>>> from bulkrt.core.items import Item
>>> from bulkrt.ledger.record import LedgerRecord
>>> ledger = Path(tempfile.mkdtemp()) / "ledger.jsonl"
>>> def item(key: str, tweet: str) -> Item:
...     return Item(key, "spring", "acme", tweet, Action.RETWEET, "job.csv", int(key))
>>> done = LedgerRecord("t", "r", "2", "spring", "acme", "1", "20", Action.RETWEET, Status.OK,
...                     True, False, 200, None, 1)
>>> _ = ledger.write_text(done.to_json() + "\\n")
>>> finished = finished_keys(ledger)
>>> "2" in finished, "1" in finished
(True, False)
>>> resume = plan_resume([item("1", "20"), item("2", "20"), item("3", "21")], finished, ledger)
>>> sorted(resume.superseded), resume.left({("acme", Action.RETWEET): 3})
(['1'], {('acme', <Action.RETWEET: 'retweet'>): 2})
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bulkrt.core.items import Action, Item, Status
from bulkrt.errors import JobInputError, Problem
from bulkrt.ledger.reader import (
    KEY_HEAD,
    STATUS_FIELD,
    LedgerLine,
    open_ledger,
    read_ledger,
    warn_skipped,
)
from bulkrt.ledger.record import FINISHED, LedgerRecord, encoded_key

__all__ = ["FinishedKeys", "ResumePlan", "finished_keys", "identity", "plan_resume"]

#: what follows the key in a line `LedgerRecord.to_json` wrote: the row's identity
_IDENT = re.compile(
    rb'"campaign":("[^"\\]*(?:\\.[^"\\]*)*"),"account":("[^"\\]*(?:\\.[^"\\]*)*"),'
    rb'"user_id":"[^"\\]*","tweet_id":"([^"\\]*)","action":"([a-z]+)",'
)
_OK = b'ok"'
_REJECTED = b'rejected"'
_SUPERSEDED = b'superseded"'


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
    # The loop is `bulkrt.ledger.reader.quick_key` inlined for lines in the usual shape: this is
    # the hot path of resume.
    append, head_match, ident_match = hashes.append, KEY_HEAD.match, _IDENT.match
    add_row = rows.append
    end = 0
    with open_ledger(path) as stream:
        for number, raw in enumerate(stream, start=1):
            end += len(raw)
            head = head_match(raw)
            if head is not None and raw.endswith(b"}\n"):
                ident = ident_match(raw, head.end())
                at = raw.find(STATUS_FIELD, head.end()) + len(STATUS_FIELD)
                key = head.group(1)
                if (
                    ident is not None
                    and at >= len(STATUS_FIELD)
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


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What a resumed run learns from its one pass over the items before it sends anything."""

    #: unfinished keys that a later finished item on the same (account, Tweet) overtook: they
    #: are recorded ``superseded`` and not sent
    superseded: frozenset[str] = frozenset()
    #: items the ledger holds as finished (the run skips them), per (account, action)
    done: Mapping[tuple[str, Action], int] = field(default_factory=dict)
    #: how many of the finished items ended ``rejected`` (a resumed job cannot end all ``ok``)
    rejected: int = 0

    @property
    def skipped(self) -> int:
        """Items the ledger holds as finished: the run skips them."""
        return sum(self.done.values())

    def left(self, counts: Mapping[tuple[str, Action], int]) -> dict[tuple[str, Action], int]:
        """Items per (account, action) still to send, of a job holding ``counts`` (`JobCheck`)."""
        left = {pair: n - self.done.get(pair, 0) for pair, n in counts.items()}
        return {pair: n for pair, n in left.items() if n > 0}

    def done_per_account(self) -> dict[str, int]:
        """Finished items per account (what a plan shows as already done)."""
        done: Counter[str] = Counter()
        for (account, _), n in self.done.items():
            done[account] += n
        return dict(done)


def plan_resume(items: Iterable[Item], finished: FinishedKeys, ledger: Path) -> ResumePlan:
    """Check every finished key against its row and find the superseded items, in one pass
    over ``items`` (the job in order). Raise `JobInputError` for a key the ledger finished for
    another row (another campaign, account, Tweet or action: an ``id`` reused).

    An unfinished item followed, in job order, by a finished one on the same account and Tweet
    is *superseded*: sending it now would reverse the job's later word on that Tweet.

    A ledger with no finished key costs no pass: ``items`` is not read.
    """
    if not len(finished):
        return ResumePlan()
    superseded: set[str] = set()
    done: Counter[tuple[str, Action]] = Counter()
    rejected = 0
    waiting: dict[tuple[str, str], list[str]] = {}
    for item in items:
        pair = (item.account, item.tweet_id)
        if item.key not in finished:
            waiting.setdefault(pair, []).append(item.key)
            continue
        row = identity(item.campaign, item.account, item.tweet_id, item.action.value)
        if not finished.same_row(item.key, row):
            raise JobInputError([_reused_key(item, ledger)])
        done[item.account, item.action] += 1
        rejected += finished.rejected(item.key)
        superseded.update(waiting.pop(pair, ()))
    return ResumePlan(frozenset(superseded), dict(done), rejected)


def _reused_key(item: Item, ledger: Path) -> Problem:
    """The problem of a key the ledger finished for another row, naming both rows."""
    earlier = next((r for r in read_ledger(ledger) if r.key == item.key), None)
    then = (
        f"campaign {earlier.campaign!r}, account {earlier.account}, {earlier.action} of Tweet "
        f"{earlier.tweet_id}"
        if earlier is not None
        else "another row"
    )
    now = (
        f"campaign {item.campaign!r}, account {item.account}, {item.action} of Tweet "
        f"{item.tweet_id}"
    )
    return Problem(
        item.source,
        item.line,
        "id",
        f"{item.key!r} is already finished in the ledger {ledger} for {then}; this row is "
        f"{now}. Give each item its own id (or use another ledger)",
    )
