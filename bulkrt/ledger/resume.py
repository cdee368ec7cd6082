"""Resuming a job on its ledger: everything a resumed run needs from the ledger, in one place.

A resume reads the job twice, as a first run does, in memory that does not grow with the job:

- `finished_keys`: the keys the ledger holds as finished (``ok``, ``rejected`` or
  ``superseded``), each with the identity of the row it was finished for (`FinishedKeys`).
  The scan reads lines in `LedgerRecord.to_json`'s exact shape fast, as
  `bulkrt.ledger.reader` does, and parses any other line in full.
- `ResumeScan`, fed every row by the validation pass (`bulkrt.jobs.loader.check_jobs`), before
  anything is sent: every finished key is checked against its row (an ``id`` reused for another
  row is an input error, never a silent skip), the finished items are counted per account and
  action (so the estimate of what is left needs no pass of its own, `ResumePlan.left`), and so
  are the unfinished items a later finished one has overtaken (*superseded*), per account. For
  each (account, Tweet) the ledger finished something on, it keeps where in the job its last
  finished item stands.
- `ResumePlan.remaining`, over the items of the second pass (the one that sends): the items not
  finished, each unfinished item before the last finished one on its (account, Tweet) marked
  superseded as it passes.

`plan_resume` is the scan over items whose keys are known (a list, in the simulation).

`FinishedKeys` keeps one 64-bit hash of each finished key's JSON text in a sorted
``array('q')``, and one of (key, row identity), and one of its (account, Tweet); a derived key
one more, of its row identity: 24 to 32 bytes a finished line. Only (account, Tweet) pairs with an
``ok`` undo cost a dict entry, and the ``ok`` retweet lines on them after an undo another
(`FinishedKeys.made_stands`). The scan adds 16 bytes a line.

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
>>> job = [item("1", "20"), item("2", "20"), item("3", "21")]
>>> resume = plan_resume(job, finished, ledger)
>>> resume.superseded, resume.left({("acme", Action.RETWEET): 3})
({'acme': 1}, {('acme', <Action.RETWEET: 'retweet'>): 2})
>>> remaining = resume.remaining(job)
>>> [item.key for item in remaining], remaining.superseded
(['1', '3'], {'1'})
"""

from __future__ import annotations

import bisect
import json
import os
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from bulkrt.core.items import Action, Item, Status
from bulkrt.core.run_stats import RunStats
from bulkrt.errors import JobInputError, Problem
from bulkrt.jobs.keys import derived_key
from bulkrt.jobs.rows import Row
from bulkrt.ledger.reader import (
    KEY_HEAD,
    STATUS_FIELD,
    LedgerLine,
    LedgerStamp,
    open_ledger,
    read_ledger,
    warn_skipped,
)
from bulkrt.ledger.record import FINISHED, LedgerRecord, encoded_key

__all__ = [
    "FinishedKeys",
    "Remaining",
    "ResumePlan",
    "ResumeScan",
    "finished_keys",
    "identity",
    "ledger_notices",
    "plan_resume",
]

#: what follows the key in a line `LedgerRecord.to_json` wrote: the row's identity
_IDENT = re.compile(
    rb'"campaign":("[^"\\]*(?:\\.[^"\\]*)*"),"account":("[^"\\]*(?:\\.[^"\\]*)*"),'
    rb'"user_id":"([^"\\]*)","tweet_id":"([^"\\]*)","action":"([a-z]+)",'
)
#: how a rollback campaign's name ends inside a line (JSON text: the closing quote)
_ROLLBACK_END = b'-rollback"'
_RETWEET = b"retweet"
_UNDO = b"undo"
_OK = b'ok"'
_REJECTED = b'rejected"'
_SUPERSEDED = b'superseded"'
#: how a derived key (`bulkrt.jobs.keys.derived_key`, a JSON array) starts inside a line
_DERIVED = b'"['


def identity(campaign: str, account: str, tweet_id: str, action: str) -> int:
    """The hash of what a key stands for: its row's campaign, account, Tweet and action."""
    return hash((encoded_key(campaign), encoded_key(account), tweet_id.encode(), action.encode()))


def _record_identity(record: LedgerRecord) -> int:
    return identity(record.campaign, record.account, record.tweet_id, record.action.value)


class _RolledBack(IntEnum):
    """Whether a rollback campaign's ``ok`` undo of a pair is the ledger's last word on it so
    far (another campaign's undo leaves the word as it was; a retweet after it takes it back)."""

    NEVER = 0
    UNDONE = 1
    REDONE = 2


#: the low bits of a `FinishedKeys` undo entry: its `_RolledBack` word
_WORD = 3


def _pair(account: bytes, tweet_id: bytes) -> int:
    """The hash of an (account, Tweet), the account as a line holds it (JSON text): the items
    on one pair undo or redo one another."""
    return hash((account, tweet_id))


class FinishedKeys:
    """The keys a ledger holds as finished (``ok``, ``rejected`` or ``superseded``), for
    ``key in finished``, with the identity of the row each was finished for (`same_row`), the
    (account, Tweet) pairs something was finished on (`pair_slot`), and the row identities a
    finished derived key was made from (`derived_from`).

    Exact up to a 64-bit hash collision: with a million finished keys, the chance that some
    unfinished key is taken for finished is about 3 in 100 million.
    """

    __slots__ = (
        "_derived",
        "_encoded",
        "_hashes",
        "_pairs",
        "_rejected",
        "_rows",
        "_since",
        "_undos",
        "retweet_lines",
        "stamp",
        "users",
    )

    def __init__(
        self,
        hashes: array[int],
        rejected: array[int] | None = None,
        rows: array[int] | None = None,
        *,
        pairs: array[int] | None = None,
        derived: array[int] | None = None,
        stamp: LedgerStamp = None,
        users: Mapping[str, frozenset[str]] | None = None,
        undos: Mapping[int, int] | None = None,
        since: array[int] | None = None,
        retweet_lines: bool = False,
    ) -> None:
        # sorted() makes a transient list of the hashes; the arrays then hold 16 bytes a key.
        self._hashes = array("q", sorted(hashes))
        #: per finished line, the hash of (its key's hash, its row's `identity`); None: unknown
        self._rows = array("q", sorted(rows)) if rows is not None else None
        #: the subset that ended ``rejected`` (few, in practice)
        self._rejected = array("q", sorted(rejected or ()))
        #: per finished line, its (account, Tweet) (`_pair`)
        self._pairs = array("q", sorted(pairs or ()))
        #: per finished line with a derived key, its row's `identity`
        self._derived = array("q", sorted(derived or ()))
        #: campaign and account names as a line holds them (few: one per name)
        self._encoded: dict[str, bytes] = {}
        #: the ledger as it was read (`LedgerStamp`)
        self.stamp = stamp
        #: per account name, the user id(s) the ledger's lines give it (any status)
        self.users: Mapping[str, frozenset[str]] = users or {}
        #: per (account, Tweet) (`_pair`) with an ``ok`` undo (any campaign's), the number of
        #: the last such line, shifted left by two, with its `_RolledBack` word in the low bits
        self._undos: Mapping[int, int] = undos or {}
        #: per ``ok`` retweet line after an ``ok`` undo on its pair, the hash of (its key's hash,
        #: the number of that pair's last undo before it) (`made_stands`)
        self._since = array("q", sorted(since or ()))
        #: whether the ledger holds any retweet line (so its journal should sit beside it)
        self.retweet_lines = retweet_lines

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

    def derived_from(self, row: Row) -> bool:
        """Whether some finished key was derived from a row with ``row``'s values (so its key
        must be worked out to know whether it is finished)."""
        code, action = self._code, row.action.value
        h = hash((code(row.campaign), code(row.account), row.tweet_id.encode(), action.encode()))
        return _holds(self._derived, h)

    def pair_slot(self, account: str, tweet_id: str) -> int:
        """Where (account, Tweet) stands among the finished lines' pairs; -1: not there."""
        h = _pair(self._code(account), tweet_id.encode())
        i = bisect.bisect_left(self._pairs, h)
        return i if i < len(self._pairs) and self._pairs[i] == h else -1

    def undone_later(self, account: str, tweet_id: str) -> bool:
        """Whether a rollback's undo is the ledger's last word on (account, Tweet): a finished
        retweet on it no longer stands."""
        if not self._undos:
            return False
        word = self._undos.get(_pair(self._code(account), tweet_id.encode()), 0)
        return word & _WORD == _RolledBack.UNDONE

    def made_stands(self, key: str, account: str, tweet_id: str) -> bool:
        """Whether a retweet of (account, Tweet) that the finished item ``key`` made may still
        stand: no ``ok`` undo of the pair (whoever's) came after ``key``'s line. (Unlike
        `undone_later`, a later line of another key on the pair, an owner's retweet found in
        place, does not bring it back.)"""
        if not self._undos:
            return True
        word = self._undos.get(_pair(self._code(account), tweet_id.encode()))
        return word is None or _holds(self._since, hash((hash(encoded_key(key)), word >> 2)))

    def _code(self, name: str) -> bytes:
        """``name`` as a line holds it (`encoded_key`), remembered: a name recurs on many rows."""
        code = self._encoded.get(name)
        if code is None:
            code = self._encoded[name] = encoded_key(name)
        return code

    @property
    def pair_slots(self) -> int:
        """How many slots `pair_slot` answers from (one per finished line)."""
        return len(self._pairs)

    def __len__(self) -> int:
        """How many finished lines were found (a key finished twice counts twice)."""
        return len(self._hashes)


def _holds(hashes: array[int], h: int) -> bool:
    i = bisect.bisect_left(hashes, h)
    return i < len(hashes) and hashes[i] == h


class _FinishedLines:
    """The arrays `FinishedKeys` is made of, filled one finished line at a time."""

    __slots__ = (
        "derived",
        "hashes",
        "pairs",
        "rejected",
        "retweets",
        "rows",
        "since",
        "undos",
        "users",
    )

    def __init__(self) -> None:
        self.hashes: array[int] = array("q")
        self.rows: array[int] = array("q")
        self.rejected: array[int] = array("q")
        self.pairs: array[int] = array("q")
        self.derived: array[int] = array("q")
        #: (account as a line holds it, user id) of every line: few, one per account
        self.users: set[tuple[bytes, bytes]] = set()
        #: per pair with an ``ok`` undo: the number of its last one << 2 | its `_RolledBack`
        #: word so far (one dict for both: it holds an entry per undone pair)
        self.undos: dict[int, int] = {}
        #: per ``ok`` retweet line on such a pair after one, the hash of (its key's hash, that
        #: number): it still follows the pair's last undo while that number is the last
        #: (`FinishedKeys.made_stands`)
        self.since: array[int] = array("q")
        self.retweets = False

    def seen(self, account: bytes, user_id: bytes, action: bytes) -> None:
        """Any line, whatever its status: its account's user id, whether it is a retweet."""
        self.users.add((account, user_id))
        if action == _RETWEET:
            self.retweets = True

    def word(self, number: int, pair: int, key: int, campaign: bytes, action: bytes) -> None:
        """An ``ok`` line (number ``number``, its key's hash ``key``) on ``pair``: an undo
        leaves the pair undone (a rollback's, for `FinishedKeys.undone_later`), a later
        retweet puts it back."""
        if action == _UNDO:
            rolled = (
                _RolledBack.UNDONE
                if campaign.endswith(_ROLLBACK_END)
                else self.undos.get(pair, _RolledBack.NEVER) & _WORD
            )
            self.undos[pair] = number << 2 | rolled
        elif action == _RETWEET:
            word = self.undos.get(pair)
            if word is not None:
                self.since.append(hash((key, word >> 2)))
                if word & _WORD == _RolledBack.UNDONE:
                    self.undos[pair] = word & ~_WORD | _RolledBack.REDONE

    def add(self, key: int, row: int, pair: int, *, derived: bool, refused: bool) -> None:
        """One finished line: the hash of its key's JSON text, its row's `identity`, its
        (account, Tweet) (`_pair`), whether its key is derived and whether it was
        ``rejected``."""
        self.hashes.append(key)
        self.rows.append(hash((key, row)))
        self.pairs.append(pair)
        if derived:
            self.derived.append(row)
        if refused:
            self.rejected.append(key)

    def keys(self, stamp: LedgerStamp) -> FinishedKeys:
        return FinishedKeys(
            self.hashes,
            self.rejected,
            self.rows,
            pairs=self.pairs,
            derived=self.derived,
            stamp=stamp,
            users=_users(self.users),
            undos=self.undos,
            since=self.since,
            retweet_lines=self.retweets,
        )


def _users(seen: Iterable[tuple[bytes, bytes]]) -> dict[str, frozenset[str]]:
    """Per account name (decoded from a line's JSON text), the user ids its lines give it."""
    users: dict[str, set[str]] = {}
    for account, user_id in seen:
        try:
            name = json.loads(account)
        except ValueError:
            continue
        users.setdefault(name, set()).add(user_id.decode("utf-8", "replace"))
    return {name: frozenset(ids) for name, ids in users.items()}


def finished_keys(path: Path | str) -> FinishedKeys:
    """The keys the ledger at ``path`` holds as finished; none when it does not exist yet."""
    lines = _FinishedLines()
    if not Path(path).exists():
        return lines.keys(None)
    finished = {status.value for status in FINISHED}
    # Lines in the usual shape give their key and status to `KEY_HEAD` and a find, unparsed:
    # this is the hot path of resume.
    add, head_match, ident_match, pair = lines.add, KEY_HEAD.match, _IDENT.match, _pair
    seen, word = lines.seen, lines.word
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
                    campaign, account, user, tweet, action = ident.groups()
                    seen(account, user, action)
                    ok = raw.startswith(_OK, at)
                    done = ok or raw.startswith(_SUPERSEDED, at)
                    refused = not done and raw.startswith(_REJECTED, at)
                    if done or refused:
                        derived = key.startswith(_DERIVED)
                        where = pair(account, tweet)
                        code = hash(key)
                        if ok:
                            word(number, where, code, campaign, action)
                        add(
                            code,
                            hash((campaign, account, tweet, action)),
                            where,
                            derived=derived,
                            refused=refused,
                        )
                    continue
            data = raw.rstrip(b"\r\n")
            if not data.strip(b" \t\x00"):
                continue
            try:
                record = LedgerRecord.from_json(data)
            except ValueError as exc:
                warn_skipped(path, LedgerLine(number, data, raw.endswith(b"\n"), end), str(exc))
                continue
            account_code, action_code = encoded_key(record.account), record.action.value.encode()
            campaign_code = encoded_key(record.campaign)
            seen(account_code, record.user_id.encode(), action_code)
            if record.status.value in finished:
                where = pair(account_code, record.tweet_id.encode())
                code = hash(encoded_key(record.key))
                if record.status is Status.OK:
                    word(number, where, code, campaign_code, action_code)
                add(
                    code,
                    _record_identity(record),
                    where,
                    derived=record.key.startswith("["),
                    refused=record.status is Status.REJECTED,
                )
        info = os.fstat(stream.fileno())
    # ``end``, not the file's size: a line appended while the scan read makes them differ, and
    # then the stamp matches no later look at the ledger.
    return lines.keys((info.st_dev, info.st_ino, end, info.st_mtime_ns))


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What a resumed run learns from the validation pass over the items, before it sends."""

    #: items the ledger holds as finished (the run skips them), per (account, action)
    done: Mapping[tuple[str, Action], int] = field(default_factory=dict)
    #: how many of the finished items ended ``rejected`` (a resumed job cannot end all ``ok``)
    rejected: int = 0
    #: unfinished items a later finished item on the same (account, Tweet) overtook, per
    #: account: they are recorded ``superseded`` and not sent
    superseded: Mapping[str, int] = field(default_factory=dict)
    #: the ledger's finished keys the plan was made from
    finished: FinishedKeys = field(default_factory=lambda: FinishedKeys(array("q")), repr=False)
    #: per (account, Tweet) with a finished line (`FinishedKeys.pair_slot`), the place in the
    #: job (counted from 0) of its last finished item; -1: none in this job
    last_finished: array[int] = field(default_factory=lambda: array("q"), repr=False)
    #: finished retweets per account that a later rollback's undo in the ledger took back:
    #: the run skips them, and the accounts are not retweeting those Tweets
    undone: Mapping[str, int] = field(default_factory=dict)

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

    def start(self, total: int, accounts: Iterable[str]) -> RunStats:
        """What a run of a job of ``total`` items on ``accounts`` starts from: the items the
        ledger holds as finished."""
        return RunStats(
            total=total,
            accounts=tuple(sorted(set(accounts))),
            skipped=self.skipped,
            skipped_rejected=self.rejected,
        )

    def remaining(self, items: Iterable[Item]) -> Remaining:
        """The items of ``items`` (the same job, in order, read again) the ledger has not
        finished; see `Remaining`."""
        return Remaining(items, self)


class Remaining:
    """The second pass of a resume: iterating yields, in job order, each item the ledger does
    not hold as finished. A yielded item that a later finished item on its (account, Tweet)
    overtook has its key added to `superseded` just before it is yielded, so the run records
    it ``superseded`` rather than send it (`bulkrt.shell.dispatcher.Dispatcher` asks
    ``item.key in superseded`` as it takes each item)."""

    __slots__ = ("_items", "_plan", "superseded")

    def __init__(self, items: Iterable[Item], plan: ResumePlan) -> None:
        self._items = items
        self._plan = plan
        #: the keys of the superseded items yielded so far
        self.superseded: set[str] = set()

    def __iter__(self) -> Iterator[Item]:
        finished, last = self._plan.finished, self._plan.last_finished
        if not len(finished):
            yield from self._items
            return
        for place, item in enumerate(self._items):
            if item.key in finished:
                continue
            slot = finished.pair_slot(item.account, item.tweet_id)
            if slot >= 0 and last[slot] > place:
                self.superseded.add(item.key)
            yield item


class ResumeScan:
    """The resume's share of the validation pass: fed each row of the job in order (`add_row`,
    or `add` for an item whose key is known), it makes the `ResumePlan`.

    A row's key is its ``id``, else derived from its values and how many earlier rows had them
    (`bulkrt.jobs.keys`); the validation pass cannot number every row in fixed memory, so the
    scan numbers exactly the rows whose values some finished derived key was made from (the
    only rows that can be finished without an ``id``), in a dict as large as the ledger's
    share of them.
    """

    __slots__ = (
        "_done",
        "_finished",
        "_last",
        "_ledger",
        "_numbers",
        "_place",
        "_rejected",
        "_reused",
        "_reused_total",
        "_superseded",
        "_undone",
        "_users",
        "_waiting",
    )

    def __init__(
        self,
        finished: FinishedKeys,
        ledger: Path,
        *,
        users: Mapping[str, str] | None = None,
        accounts_file: Path | str | None = None,
    ) -> None:
        self._finished = finished
        self._ledger = ledger
        #: the accounts file's user id per account name, to check the ledger's lines against
        self._users = (users, accounts_file)
        self._place = 0
        #: rows met so far per row identity that some finished derived key was made from
        self._numbers: dict[tuple[str, ...], int] = {}
        #: per (account, Tweet) with a finished line: unfinished items met since the last
        #: finished one on it, and the place of that last finished one
        self._waiting = array("q", bytes(8 * finished.pair_slots))
        self._last = array("q", [-1]) * finished.pair_slots
        self._done: Counter[tuple[str, Action]] = Counter()
        self._rejected = 0
        self._superseded: Counter[str] = Counter()
        #: the rows whose key the ledger finished for another row (the first
        #: `_KEEP_REUSED`), and how many there are
        self._reused: list[tuple[str, Row | Item]] = []
        self._reused_total = 0
        #: finished retweets per account that a later rollback's undo took back
        self._undone: Counter[str] = Counter()

    def add_row(self, row: Row) -> None:
        """Note the next row of the job (the validation pass calls this for each valid row)."""
        if not len(self._finished):
            return
        if row.id is not None:
            key: str | None = row.id
        elif self._finished.derived_from(row):
            values = row.identity
            n = self._numbers.get(values, 0)
            self._numbers[values] = n + 1
            key = derived_key(row.campaign, row.account, row.action.value, row.tweet_id, n)
        else:
            key = None  # no finished key was derived from these values: not finished
        self._add(key, row)

    def add(self, item: Item) -> None:
        """Note the next item of the job."""
        if len(self._finished):
            self._add(item.key, item)

    def _add(self, key: str | None, row: Row | Item) -> None:
        place = self._place
        self._place += 1
        finished = self._finished
        slot = finished.pair_slot(row.account, row.tweet_id)
        if key is None or key not in finished:
            if slot >= 0:
                self._waiting[slot] += 1
            return
        if not finished.same_row(
            key, identity(row.campaign, row.account, row.tweet_id, row.action.value)
        ):
            self._reused_total += 1
            if len(self._reused) < _KEEP_REUSED:
                self._reused.append((key, row))
            return
        self._done[row.account, row.action] += 1
        self._rejected += finished.rejected(key)
        if row.action is Action.RETWEET and finished.undone_later(row.account, row.tweet_id):
            self._undone[row.account] += 1
        if slot >= 0:
            self._superseded[row.account] += self._waiting[slot]
            self._waiting[slot] = 0
            self._last[slot] = place

    def problems(self) -> tuple[list[Problem], int]:
        """What the ledger says is wrong with the input, and how many such problems there are:
        every account whose user id in the ledger is not the accounts file's (another accounts
        file with the same names), then every row whose key the ledger finished for another
        row (an ``id`` reused), naming both rows."""
        users, accounts_file = self._users
        found = _user_mismatches(self._finished, users, self._ledger, accounts_file)
        total = len(found) + self._reused_total
        if self._reused:
            found.extend(_reused_keys(self._reused, self._ledger))
        return found, total

    def joined(self, error: JobInputError) -> JobInputError:
        """``error`` (the validation pass's problems) with the scan's `problems` after them."""
        found, total = self.problems()
        if not total:
            return error
        return JobInputError([*error.problems, *found], error.total + total)

    def plan(self) -> ResumePlan:
        """The plan of the rows noted; raise `JobInputError` with every `problems`."""
        found, total = self.problems()
        if total:
            raise JobInputError(found, total)
        superseded = {account: n for account, n in self._superseded.items() if n}
        return ResumePlan(
            dict(self._done),
            self._rejected,
            superseded,
            self._finished,
            self._last,
            undone={account: n for account, n in self._undone.items() if n},
        )


def ledger_notices(finished: FinishedKeys, plan: ResumePlan, ledger: Path) -> list[Problem]:
    """What a run on ``ledger`` should tell the operator before it sends: finished retweets of
    the job that a later rollback took back (the run skips them: a re-run of a rolled-back job
    cannot retweet again), and a ledger holding retweet lines without its journal beside it, or
    with an empty one (a journal that cannot be read is refused before, or warned about by
    `bulkrt.ledger.journal.SentJournal.open` line by line)."""
    notices = []
    if plan.undone:
        n = sum(plan.undone.values())
        per = ", ".join(f"{account} {count}" for account, count in sorted(plan.undone.items()))
        notices.append(
            Problem(
                str(ledger),
                None,
                "ledger",
                f"{n} retweet(s) of this job are finished in this ledger, but a later rollback "
                f"undid them ({per}): this run skips them as finished, so those accounts stay "
                f"without those retweets and the run exits 1 (expected while retrying a "
                f"rollback's unknown items). To retweet again, run the job with a new --ledger, "
                f"or under a new campaign name (--campaign NAME, for rows that name none)",
            )
        )
    # Loaded here: the journal's module needs anyio, which loading and validating never do.
    from bulkrt.ledger.journal import journal_path

    journal = journal_path(ledger)
    if not finished.retweet_lines:
        return notices
    if not journal.exists() or not journal.stat().st_size:
        missing = (
            "is missing (moved or copied without it?)"
            if not journal.exists()
            else "is empty (truncated, or made anew after it was lost?)"
        )
        notices.append(
            Problem(
                str(ledger),
                None,
                "journal",
                f"the ledger holds retweets but its journal {journal} {missing}: a retweet "
                f"that was in flight when a run stopped will be "
                f"taken for the account's own, and a rollback will leave it. Stop now (Ctrl-C) "
                f"and put the journal back beside the ledger, unless it is truly lost",
            )
        )
    return notices


#: how many rows with a reused ``id`` are named (the rest are counted)
_KEEP_REUSED = 1000


def _user_mismatches(
    finished: FinishedKeys,
    users: Mapping[str, str] | None,
    ledger: Path,
    accounts_file: Path | str | None,
) -> list[Problem]:
    """One problem per account the ledger holds lines for under another user id than
    ``users`` (the accounts file's) gives it: resuming would take that user's items as
    finished, and an undo run would undo another user's retweets."""
    if not users or not finished.users:
        return []
    problems = []
    for name, ids in sorted(finished.users.items()):
        now = users.get(name)
        if now is None or ids == {now}:
            continue
        then = ", ".join(sorted(ids - {now})) or "?"
        problems.append(
            Problem(
                str(accounts_file),
                None,
                f"accounts.{name}",
                f"the ledger {ledger} holds lines for account {name} as user id {then}; this "
                f"accounts file gives {name} user id {now}. Is it the accounts file of that "
                f"ledger's runs? Give that accounts file, or use another --ledger for these "
                f"users; nothing was sent",
            )
        )
    return problems


def plan_resume(items: Iterable[Item], finished: FinishedKeys, ledger: Path) -> ResumePlan:
    """`ResumeScan` over ``items`` (the job in order, keys known): check every finished key
    against its row, count the finished and the superseded items. Raise `JobInputError` for a
    key the ledger finished for another row.

    An unfinished item followed, in job order, by a finished one on the same account and Tweet
    is *superseded*: sending it now would reverse the job's later word on that Tweet.

    A ledger with no finished key costs no pass: ``items`` is not read.
    """
    scan = ResumeScan(finished, ledger)
    if len(finished):
        for item in items:
            scan.add(item)
    return scan.plan()


def _reused_keys(reused: list[tuple[str, Row | Item]], ledger: Path) -> list[Problem]:
    """The problems of ``reused`` (each a key the ledger finished for another row, and the row
    of the job that has it), naming both rows; the ledger is read once."""
    wanted = {key for key, _ in reused}
    earlier: dict[str, LedgerRecord] = {}
    for record in read_ledger(ledger):
        if record.key in wanted and record.key not in earlier:
            earlier[record.key] = record
    return [_reused_key(key, item, ledger, earlier.get(key)) for key, item in reused]


def _reused_key(key: str, item: Row | Item, ledger: Path, earlier: LedgerRecord | None) -> Problem:
    """The problem of ``item``'s ``key``, which the ledger finished for another row
    (``earlier``, when the ledger still shows it), naming both rows."""
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
        f"{key!r} is already finished in the ledger {ledger} for {then}; this row is "
        f"{now}. Give each item its own id (or use another ledger)",
    )
