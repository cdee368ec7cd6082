"""The durable record of what a campaign's retweets did: ``<ledger>.sent``, a sidecar of the ledger.

The ledger says how items ended; this journal says, per retweet item, what its attempts may
have done to the account -- the evidence `bulkrt.core.attribution` needs -- and it is written so
that it survives what the ledger may not (a line lost in a crash or by damage, an older backup).

One JSON object a line, appended, never rewritten::

    {"e":"sent","key":"k1","campaign":"spring","account":"acme","tweet_id":"20"}

Events (``e``), in the order they happened for a key:

* ``sent`` -- a request for the key may leave from now on. It is on disk (fsynced) *before* the
  request leaves; keys are grouped, one fsync per batch (a flusher task writes whatever
  accumulated while the previous fsync ran, and releases those requests together; a run lets a
  batch gather for a few milliseconds more while other requests are out, see `SentJournal`). A
  ``sent`` that no later event closes is an attempt that may have been applied (a crash in
  flight).
* ``none`` -- the answers since the last ``sent`` prove those attempts had no effect (429,
  401, 403, a refused connection, a refresh that failed before sending); the next attempt
  writes ``sent`` again.
* ``maybe`` -- an attempt's answer left it possibly applied (a timeout, a reset, a 5xx). Sticky.
* ``made`` / ``owner`` / ``undecided`` -- the retweet exists and its origin was settled: the
  campaign made it, the account's owner had it before, or the evidence cannot decide.
* ``undone`` -- an undo item (its key) ended ``ok``: the account's retweet of the Tweet is gone,
  whoever made it. What the campaign made of the pair, and what the pair's retweet items'
  attempts before this line may have done, no longer stand: an "already retweeted" heard later
  is a retweet made since (the owner's, or an attempt's after this line). Written within a
  quarter of a second like the others; if a crash drops it, the ledger's ``ok`` undo line (when
  it was synced) still ends the campaign's earlier retweet for finished items
  (`bulkrt.ledger.resume.FinishedKeys.made_stands`).

The journal is never compacted while the campaign's retweets are recorded in it: it is the
record `bulkrt.ledger.undo` trusts, beside the ledger, for who made each retweet (`read_origins`).
A later run reads the state of every key the ledger does not hold as finished (`KeyState`), so
a retweet whose ledger line was lost is settled by the journal's evidence, not by a guess.

Legacy lines (a bare key, written by earlier versions before a first send) read as ``sent``
when they come before any JSON line (a bare line after one is damage).

Reading tolerates a torn line (its request never left: the fsync comes first) and the
multi-machine mode's own marks (``{"e":"fleet-job",...}``, no key). Any other line it cannot read
(damage, binary bytes) is skipped with a ``journal_lines_skipped`` warning naming the journal, the
lines and their count, before a run sends anything: what such a line said of its retweet is lost,
so an "already retweeted" for it would be taken for the owner's. A compressed journal (an archive
put back under its own name) is refused with `LedgerError` and the command that decompresses it:
read as text it says nothing, and a run's plain lines appended after the compressed stream would
spoil the archive too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Container, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import anyio
import orjson
import structlog

from bulkrt.core.attribution import Evidence, Origin
from bulkrt.core.items import Action, Item
from bulkrt.errors import LedgerError
from bulkrt.ledger.reader import unreadable_journal
from bulkrt.ledger.resume import FinishedKeys

__all__ = [
    "JournalEvent",
    "JournalReading",
    "KeyState",
    "PairEvidence",
    "SentJournal",
    "append_lines",
    "journal_line",
    "journal_origins",
    "journal_path",
    "read_origins",
]

_log = structlog.get_logger()
#: how many skipped line numbers a warning names (the rest are counted)
_NAMED_LINES = 10


class JournalEvent(StrEnum):
    """One journal line's event (see the module docstring)."""

    SENT = "sent"
    NONE = "none"
    MAYBE = "maybe"
    MADE = "made"
    OWNER = "owner"
    UNDECIDED = "undecided"
    UNDONE = "undone"


_ORIGIN_EVENTS = {
    JournalEvent.MADE: Origin.CAMPAIGN,
    JournalEvent.OWNER: Origin.OWNER,
    JournalEvent.UNDECIDED: Origin.UNDECIDED,
}


@dataclass(slots=True)
class KeyState:
    """What the journal knows of one key, folded over its events in order.

    >>> state = KeyState()
    >>> for event in (JournalEvent.SENT, JournalEvent.NONE, JournalEvent.SENT):
    ...     state.apply(event)
    >>> state.evidence()
    Evidence(possible=True, made=False, owner=False)
    """

    #: a ``sent`` not closed by ``none`` or an origin: an attempt that may have been applied
    open: bool = False
    possible: bool = False
    origin: Origin | None = None

    def apply(self, event: JournalEvent) -> None:
        if event is JournalEvent.UNDONE:
            return  # an undo item's own line: it says nothing of a retweet item's attempts
        if event is JournalEvent.SENT:
            # a ``sent`` while one is open: a run ended (a crash) with that attempt unanswered
            self.possible = self.possible or self.open
            self.open = True
        elif event is JournalEvent.NONE:
            self.open = False
        elif event is JournalEvent.MAYBE:
            self.possible = True
        else:
            self.origin = _ORIGIN_EVENTS[event]
            self.open = False

    def evidence(self) -> Evidence:
        """The evidence these events give `bulkrt.core.attribution.origin`."""
        return Evidence(
            possible=self.possible or self.open or self.origin is Origin.UNDECIDED,
            made=self.origin is Origin.CAMPAIGN,
            owner=self.origin is Origin.OWNER,
        )


class PairEvidence:
    """What a run knows of who may have made each (account, Tweet)'s retweet, for
    `bulkrt.core.attribution.settled_origin`: per key, what earlier runs' attempts did
    (`KeyState`); per pair, the campaigns that made its retweet and whether an attempt of this
    run may have; all of it ended by an ``ok`` undo of the pair (`forget`). `SentJournal` and
    the multi-machine mode's journal keep one each."""

    __slots__ = ("_earlier", "_made", "_maybe", "_pair_keys")

    def __init__(self) -> None:
        #: what earlier attempts did, per key not finished
        self._earlier: dict[str, KeyState] = {}
        #: per (account, Tweet), the keys of `_earlier` on it
        self._pair_keys: dict[tuple[str, str], list[str]] = {}
        #: per (account, Tweet), the campaigns that made its retweet, with no ``ok`` undo since
        self._made: dict[tuple[str, str], set[str]] = {}
        #: the (account, Tweet) pairs an attempt of this run may have retweeted (``maybe``)
        self._maybe: set[tuple[str, str]] = set()

    def earlier(self, key: str, pair: tuple[str, str]) -> KeyState:
        """``key``'s state of earlier attempts, on ``pair``: made empty the first time."""
        state = self._earlier.get(key)
        if state is None:
            state = self._earlier[key] = KeyState()
            self._pair_keys.setdefault(pair, []).append(key)
        return state

    def adopt(self, key: str, pair: tuple[str, str] | None, state: KeyState) -> None:
        """``key``'s state of earlier attempts, on ``pair`` (None: not known, so no undo of
        this run forgets it), as another reader folded it."""
        self._earlier[key] = state
        if pair is not None:
            self._pair_keys.setdefault(pair, []).append(key)

    def evidence(self, key: str) -> Evidence:
        """What earlier attempts of ``key`` prove."""
        state = self._earlier.get(key)
        return state.evidence() if state is not None else _NO_EVIDENCE

    def made_by(self, pair: tuple[str, str], campaign: str) -> None:
        """``campaign`` made ``pair``'s retweet (in this run or an earlier one)."""
        self._made.setdefault(pair, set()).add(campaign)

    def note(self, item: Item, event: JournalEvent) -> None:
        """``event`` happened to ``item`` in this run."""
        if event is JournalEvent.MADE:
            self.made_by((item.account, item.tweet_id), item.campaign)
        elif event is JournalEvent.MAYBE:
            self._maybe.add((item.account, item.tweet_id))

    def made(self, item: Item) -> bool:
        """Whether ``item``'s campaign made the retweet of its (account, Tweet)."""
        return item.campaign in self._made.get((item.account, item.tweet_id), ())

    def forget(self, pair: tuple[str, str]) -> None:
        """An ``ok`` undo of ``pair``: what was made of it, and its keys' evidence, go."""
        self._made.pop(pair, None)
        self._maybe.discard(pair)
        for key in self._pair_keys.pop(pair, ()):
            self._earlier.pop(key, None)

    def pair_possible(self, item: Item) -> bool:
        """Whether an attempt of another key on ``item``'s (account, Tweet), in this run or an
        earlier one, may have retweeted it since the pair's last ``ok`` undo: then an "already
        retweeted" for ``item`` may be that attempt's, not the owner's."""
        pair = (item.account, item.tweet_id)
        if pair in self._maybe:
            return True
        earlier = self._earlier
        return any(
            key != item.key and earlier[key].evidence().possible
            for key in self._pair_keys.get(pair, ())
        )


def journal_line(item: Item, event: JournalEvent) -> str:
    """The journal's line for ``event`` of ``item``, without its newline."""
    return _encoded(item, event).decode("utf-8", "surrogatepass")


def _encoded(item: Item, event: JournalEvent, option: int = 0) -> bytes:
    """`journal_line` as UTF-8 bytes (with ``orjson.OPT_APPEND_NEWLINE``, its newline too):
    orjson writes what json.dumps(ensure_ascii=False, separators=(",", ":")) writes."""
    doc = {
        "e": event,
        "key": item.key,
        "campaign": item.campaign,
        "account": item.account,
        "tweet_id": item.tweet_id,
    }
    try:
        return orjson.dumps(doc, option=option)
    except orjson.JSONEncodeError:  # a lone surrogate: json's text, encoded as before
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        newline = "\n" if option & orjson.OPT_APPEND_NEWLINE else ""
        return (text + newline).encode("utf-8", "surrogatepass")


#: what makes appended lines durable: their data and the file's new size, without the times
#: ``fsync`` flushes too (about a tenth less CPU, half the wait); ``fsync`` where it is missing
_sync_data = getattr(os, "fdatasync", os.fsync)
#: what the journal knows of a key no earlier run recorded (immutable: shared)
_NO_EVIDENCE = Evidence()


def append_lines(fd: int, path: Path, data: bytes) -> None:
    """Append whole journal lines to the open journal ``fd`` and sync them; on failure, cut
    what was written of them (no torn line stays behind) and raise `LedgerError`."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        _sync_data(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise LedgerError(path, f"cannot write the journal: {exc.strerror}") from None


def journal_path(ledger: Path) -> Path:
    """The journal of ``ledger``: beside the file the ledger's name resolves to."""
    real = ledger.resolve()
    return real.with_name(real.name + ".sent")


@dataclass(frozen=True, slots=True)
class _Line:
    event: JournalEvent
    key: str
    campaign: str = ""
    account: str = ""
    tweet_id: str = ""


def _parse(raw: str) -> _Line | None:
    text = raw.rstrip("\n")
    if not text or not raw.endswith("\n"):
        return None  # a torn last line: its request never left (the fsync came first)
    if not text.startswith("{"):
        if "\ufffd" in text or "\x00" in text:
            return None  # not UTF-8 text (binary bytes, zero-filled): no key of a legacy line
        return _Line(JournalEvent.SENT, text)
    try:
        doc = json.loads(text)
        return _Line(
            JournalEvent(doc["e"]),
            str(doc["key"]),
            str(doc.get("campaign", "")),
            str(doc.get("account", "")),
            str(doc.get("tweet_id", "")),
        )
    except (ValueError, KeyError, TypeError, RecursionError):  # the last: nested too deeply
        return None


def _damaged(raw: str) -> bool:
    """Whether ``raw``, a line `_parse` could not read, was something it should have read: not
    blank, not a torn line (the last, or one a later run ended with a newline: an object cut
    short, whose batch's requests never left), not a mark of the multi-machine mode (an ``e``
    of its own, no key)."""
    text = raw.rstrip("\n")
    if not text.strip() or not raw.endswith("\n"):
        return False
    if text.startswith('{"e":"') and not text.endswith("}"):
        return False
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return True
    if not isinstance(doc, dict) or not isinstance(doc.get("e"), str) or "key" in doc:
        return True
    return doc["e"] in JournalEvent.__members__.values()


def _lines(path: Path) -> Iterator[_Line]:
    """The events of the journal ``path`` (none if it is missing), warning once about the lines
    it skips; raise `LedgerError` for a compressed journal."""
    unreadable = unreadable_journal(path)
    if unreadable is not None:
        raise LedgerError(path, unreadable)
    skipped: list[int] = []
    with (
        contextlib.suppress(FileNotFoundError),
        path.open("r", encoding="utf-8", errors="replace") as lines,
    ):
        legacy = True  # bare keys (the oldest lines) come before any JSON line, never after
        for number, raw in enumerate(lines, start=1):
            line = _parse(raw)
            if line is None:
                if _damaged(raw):
                    skipped.append(number)
            elif raw[0] == "{":
                legacy = False
                yield line
            elif legacy:
                yield line
            else:
                skipped.append(number)  # text after JSON lines: damage, not a legacy key
    if skipped:
        named = ", ".join(map(str, skipped[:_NAMED_LINES]))
        more = f" and {len(skipped) - _NAMED_LINES} more" if len(skipped) > _NAMED_LINES else ""
        _log.warning(
            "journal_lines_skipped",
            journal=str(path),
            count=len(skipped),
            lines=f"{named}{more}",
            detail="these lines cannot be read (damaged?): what they said of their retweets is "
            "lost, so a retweet of theirs answered 'already retweeted' is taken for the "
            "account's own, and a rollback leaves it; stop now (Ctrl-C) and restore the journal "
            "from a backup, unless it is truly lost",
        )


def read_origins(ledger: Path) -> dict[tuple[str, str, str], Origin]:
    """Per (campaign, account, Tweet), who made its retweet as far as the journal knows
    (`journal_origins`, without what it says of undos)."""
    return journal_origins(ledger).origins


@dataclass(frozen=True, slots=True)
class JournalReading:
    """What `journal_origins` read."""

    #: per (campaign, account, Tweet), who made its retweet, since the pair's last ``undone``
    origins: dict[tuple[str, str, str], Origin]
    #: per (account, Tweet) with an ``undone``, the last one's undo key: every verdict on the
    #: pair came after that undo, whatever the ledger's lines say
    last_undone: dict[tuple[str, str], str]
    #: the key of every ``undone``
    undone_keys: set[str]
    #: every (campaign, account) a retweet item's line names, undone since or not
    named: set[tuple[str, str]]


def journal_origins(ledger: Path) -> JournalReading:
    """What the journal says of who made each retweet (`JournalReading`).

    The first settled origin of the pair's retweet items (the first says what was there before
    the campaign); else ``UNDECIDED`` when an attempt may have been applied and no answer
    settled it (the item ended ``rejected`` or ``error`` after a timeout, or a crash): the
    retweet may exist, made by the campaign or by the owner. An ``undone`` line starts the pair
    afresh: what came before it on the pair (every campaign's) is gone with the retweet.
    """
    states: dict[str, KeyState] = {}
    pairs: dict[str, tuple[str, str, str]] = {}
    origins: dict[tuple[str, str, str], Origin] = {}
    #: per (account, Tweet): its retweet keys, and the campaigns of its origins
    keys_on: dict[tuple[str, str], set[str]] = {}
    campaigns_on: dict[tuple[str, str], set[str]] = {}
    #: per (account, Tweet), the key of its last ``undone``
    undone: dict[tuple[str, str], str] = {}
    named: set[tuple[str, str]] = set()
    undone_keys: set[str] = set()
    for line in _lines(journal_path(ledger)):
        if not line.account:
            continue  # a legacy line: no pair to name
        pair = (line.account, line.tweet_id)
        if line.event is JournalEvent.UNDONE:
            for key in keys_on.pop(pair, ()):
                del states[key]
            for campaign in campaigns_on.pop(pair, ()):
                origins.pop((campaign, *pair), None)
            undone[pair] = line.key
            undone_keys.add(line.key)
            continue
        triple = (line.campaign, line.account, line.tweet_id)
        named.add((line.campaign, line.account))
        pairs[line.key] = triple
        keys_on.setdefault(pair, set()).add(line.key)
        campaigns_on.setdefault(pair, set()).add(line.campaign)
        states.setdefault(line.key, KeyState()).apply(line.event)
        verdict = _ORIGIN_EVENTS.get(line.event)
        if verdict is not None:
            origins.setdefault(triple, verdict)
    for key, state in states.items():
        if state.origin is None and (state.possible or state.open):
            origins.setdefault(pairs[key], Origin.UNDECIDED)
    return JournalReading(origins, undone, undone_keys, named)


def _none() -> int:
    return 0


#: how a key ended ``ok`` in the journal, and its row: (event, action, campaign, account, Tweet)
_Ending = tuple[JournalEvent, Action, str, str, str]


class _EndedBefore:
    """While a journal is read: the keys an earlier run's journal shows as ended ``ok`` (a
    retweet's origin, ``made``, ``owner`` or ``undecided``; an undo's ``undone``) that the ledger
    does not hold finished (an older backup put back, lines lost), each with that event and its
    row, when nothing else happened to their pair since: on each pair, only the keys of the
    journal's last events that all ended so, of one campaign (the rows of one job that a
    resume replays in order). A key followed on its pair by anything else (an attempt that
    ended no item, a finished key's line, another campaign's undo, a rollback's) is left out:
    the pair has moved on since, and what it did then is not what it did last.

    Memory grows with the journal's unfinished keys and their pairs, not with the finished
    ones: a finished key's events on a pair no unfinished key touched are not kept."""

    __slots__ = ("_ended", "_pairs")

    def __init__(self) -> None:
        #: key -> (event, action, campaign, account, Tweet) of its last ending
        self._ended: dict[str, _Ending] = {}
        #: per pair an unfinished key touched: its keys in the order of their events (a key's
        #: run of events once), ``None`` for a finished key's
        self._pairs: dict[tuple[str, str], list[str | None]] = {}

    def event(self, line: _Line, *, finished: bool) -> None:
        pair = (line.account, line.tweet_id)
        order = self._pairs.get(pair)
        if finished:
            if order is not None and order[-1] is not None:
                order.append(None)
            return
        if order is None:
            order = self._pairs[pair] = []
        if not order or order[-1] != line.key:
            order.append(line.key)
        action = _ENDINGS.get(line.event)
        if action is not None:
            self._ended[line.key] = (line.event, action, line.campaign, line.account, line.tweet_id)
        else:
            self._ended.pop(line.key, None)  # a later attempt of the key: not ended by it

    def keys(self) -> dict[str, _Ending]:
        """Per key that ended with nothing else on its pair since, how it ended and its row."""
        kept: dict[str, _Ending] = {}
        for order in self._pairs.values():
            campaign = None
            for key in reversed(order):
                ended = None if key is None else self._ended.get(key)
                if key is None or ended is None or campaign not in (None, ended[2]):
                    break
                campaign = ended[2]
                kept.setdefault(key, ended)
        return kept


#: the events that end an item ``ok``, with its action: a retweet's origin, an undo's ``undone``
_ENDINGS = {
    JournalEvent.MADE: Action.RETWEET,
    JournalEvent.OWNER: Action.RETWEET,
    JournalEvent.UNDECIDED: Action.RETWEET,
    JournalEvent.UNDONE: Action.UNDO,
}


@dataclass(slots=True)
class _Batch:
    lines: list[bytes] = field(default_factory=list)
    #: set once the lines are on disk; made by the first sender that waits for this batch
    durable: anyio.Event | None = None
    #: senders waiting for this batch
    waiting: int = 0


class SentJournal:
    """The journal of one ledger, for one run (call everything from the one event loop).

    Every batch costs an fsync (about 0.1 ms of CPU, most of it the kernel's, and a hand-over to
    the journal's thread), and a run's requests, once under way, leave one at a time as answers
    come back: one fsync each. Told by `gather` how long it may wait (``linger``, seconds) and
    how many requests the run has in flight (those waiting here included), a batch waits up to
    ``linger`` for more senders, until a quarter of the requests in flight wait for it; it goes
    at once when that many wait already (a lone request never lingers). So a request is held
    back by at most ``linger``, and the fsyncs come in groups even when the answers come one at
    a time. Without `gather` (a simulation in virtual time) a batch never waits.

    >>> import tempfile, pathlib
    >>> from bulkrt.core.items import Action
    >>> ledger = pathlib.Path(tempfile.mkdtemp()) / "l.jsonl"
    >>> item = Item("k1", "c", "acme", "20", Action.RETWEET, "job.csv", 2)
    >>> journal = SentJournal(ledger); journal.open(finished=set())
    >>> journal.record(item, JournalEvent.SENT); journal.close()
    >>> again = SentJournal(ledger); again.open(finished=set()); again.evidence("k1")
    Evidence(possible=True, made=False, owner=False)
    """

    def __init__(self, ledger: Path, *, inline: bool = False) -> None:
        self.path = journal_path(ledger)
        #: the flusher writes on the event loop instead of a worker thread (a simulation in
        #: virtual time, where a thread would make the run depend on the wall clock)
        self._inline = inline
        #: how long a batch may wait for more senders, and how many requests are in flight
        #: (`gather`; none by default)
        self._linger = 0.0
        self._in_flight: Callable[[], int] = _none
        #: set while the flusher lets a batch gather, when enough senders wait for it
        self._gathered: anyio.Event | None = None
        #: what earlier runs recorded of keys the ledger does not hold as finished, and what
        #: was made of each pair (`PairEvidence`)
        self._known = PairEvidence()
        #: keys with a ``sent`` not closed yet (this run)
        self._open: set[str] = set()
        #: keys an earlier run journaled as ended ``ok`` that the ledger does not hold finished,
        #: with that event and its row (`_EndedBefore`)
        self._ended_before: dict[str, _Ending] = {}
        #: the pairs of `_ended_before`'s keys
        self._ended_pairs: set[tuple[str, str]] = set()
        #: those of them an item of this run was sent on (`ended_before`): the job's order on
        #: them is replayed from there, nothing more recorded from the journal
        self._live: set[tuple[str, str]] = set()
        self._batch = _Batch()
        self._kick: anyio.Event | None = None
        self._failure: LedgerError | None = None
        self._fd = -1

    def open(self, *, finished: Container[str]) -> None:
        """Load what earlier runs recorded; call it under the ledger's lock."""
        # A retweet the campaign made whose item is finished and an ``ok`` undo of the pair
        # (whoever's) followed in the ledger: gone, so it cannot be what a later "already
        # retweeted" finds, whatever lines came since (an owner's retweet found in place does
        # not bring it back; a retweet the campaign makes again has a ``made`` of its own).
        stands = finished.made_stands if isinstance(finished, FinishedKeys) else None
        known, ended = self._known, _EndedBefore()
        for line in _lines(self.path):
            pair = (line.account, line.tweet_id)
            ended.event(line, finished=line.key in finished)
            if line.event is JournalEvent.UNDONE:
                known.forget(pair)
                continue
            if (
                line.event is JournalEvent.MADE
                and line.account
                and (
                    stands is None
                    or line.key not in finished
                    or stands(line.key, line.account, line.tweet_id)
                )
            ):
                known.made_by(pair, line.campaign)
            if line.key not in finished:
                known.earlier(line.key, pair).apply(line.event)
        self._ended_before = ended.keys()
        self._ended_pairs = {(account, tweet) for *_, account, tweet in self._ended_before.values()}
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                os.write(self._fd, b"\n")  # end a torn last line, so this run's lines stay whole
        except OSError as exc:
            raise LedgerError(self.path, f"cannot open the journal: {exc.strerror}") from None

    def gather(self, linger: float, in_flight: Callable[[], int]) -> None:
        """Let each batch wait up to ``linger`` seconds for more senders, with ``in_flight``
        saying how many requests the run has in flight (see the class docstring)."""
        self._linger = linger
        self._in_flight = in_flight

    @property
    def failure(self) -> LedgerError | None:
        """The error that stopped the journal's writes, if one did."""
        return self._failure

    def evidence(self, key: str) -> Evidence:
        """What earlier runs' attempts of ``key`` prove."""
        return self._known.evidence(key)

    def made(self, item: Item) -> bool:
        """Whether the campaign made the retweet of ``item``'s account and Tweet (another item
        of it, in this run or an earlier one): then an "already retweeted" for ``item`` is that
        retweet, not the owner's."""
        return self._known.made(item)

    def pair_possible(self, item: Item) -> bool:
        """`PairEvidence.pair_possible`."""
        return self._known.pair_possible(item)

    def ended_before(self, item: Item) -> JournalEvent | None:
        """How ``item`` ended ``ok`` in an earlier run, when its ledger line is gone since (an
        older backup put back) and nothing happened to its pair since but the endings of later
        rows of its campaign (`_EndedBefore`): the journal's ``made``, ``owner``, ``undecided``
        or ``undone``; else None, and the caller sends the item. Sent again, it would act on the
        pair as it is now, not as it was: an undo would remove a retweet made since by someone
        else (the owner's). Once an item of this run is sent on a pair, its later rows are sent
        too: the job's order on the pair is replayed from there. The journal's line must be of
        the same row: a key reused for another row (an ``id`` given to another Tweet) ended
        nothing of this one."""
        pair = (item.account, item.tweet_id)
        if pair not in self._ended_pairs:  # the usual case: no key of the pair to replay
            return None
        ended = self._ended_before.get(item.key)
        if ended is not None and pair not in self._live:
            event, *row = ended
            if row == [item.action, item.campaign, item.account, item.tweet_id]:
                return event
        self._live.add(pair)  # sent in this run: its later rows are sent too
        return None

    def undone(self, item: Item) -> None:
        """An ``ok`` undo ``item`` of this run: no retweet of its (account, Tweet) that any
        campaign made stands any more (as `bulkrt.ledger.resume.FinishedKeys.made_stands`
        judges it on the next run), so an "already retweeted" heard later is the owner's; and
        what earlier runs' attempts of the pair's unfinished keys may have done is undone too.
        Journaled as ``undone``, so a later run's reading ends them too, whatever the ledger
        has kept."""
        self._known.forget((item.account, item.tweet_id))
        self.record(item, JournalEvent.UNDONE)

    def record(self, item: Item, event: JournalEvent) -> None:
        """Queue ``event`` for ``item``; it is written with the next batch: at once for a
        ``sent`` (its request waits for it), within a quarter of a second for the others."""
        self._known.note(item, event)
        if event is JournalEvent.SENT:
            self._open.add(item.key)
        elif event is not JournalEvent.MAYBE:
            self._open.discard(item.key)
        self._batch.lines.append(_encoded(item, event, orjson.OPT_APPEND_NEWLINE))
        if event is JournalEvent.SENT and self._kick is not None:
            self._kick.set()  # a request waits for it; the others go with it or with `flush`

    def flush(self) -> None:
        """Have the flusher write what is queued (the run calls it four times a second)."""
        if self._batch.lines and self._kick is not None:
            self._kick.set()

    async def before_send(self, item: Item) -> bool:
        """Make ``item``'s ``sent`` durable before its request leaves; False: do not send."""
        if self._failure is not None:
            return False
        if item.key in self._open:
            return True
        self.record(item, JournalEvent.SENT)
        batch = self._batch
        batch.waiting += 1
        durable = batch.durable
        if durable is None:
            durable = batch.durable = anyio.Event()
        if self._kick is None:  # no flusher task (tests of the core): write at once
            self._flush_now()
        elif self._gathered is not None and self._enough(batch):
            self._gathered.set()
        await durable.wait()
        return self._failure is None

    def _enough(self, batch: _Batch) -> bool:
        """Whether ``batch`` has as many senders as it waits for (see the class docstring)."""
        return batch.waiting * 4 >= self._in_flight()

    async def _let_gather(self) -> None:
        """Let the batch gather senders for up to ``linger`` seconds (see the class docstring)."""
        batch = self._batch
        if batch.durable is None or self._enough(batch):
            return
        self._gathered = anyio.Event()
        try:
            with anyio.move_on_after(self._linger):
                await self._gathered.wait()
        finally:
            self._gathered = None

    async def flush_forever(self) -> None:
        """The flusher task: write and fsync each batch in a worker thread, then release it.

        The thread is the journal's own (a pool of one): handing it a batch costs a fraction of
        what `anyio.to_thread` costs, and a batch goes every few requests."""
        self._kick = anyio.Event()
        with ThreadPoolExecutor(1, thread_name_prefix="bulkrt-journal") as thread:
            loop = asyncio.get_running_loop()
            while True:
                await self._kick.wait()
                if self._linger:
                    await self._let_gather()
                self._kick = anyio.Event()
                # no checkpoint between taking a batch and handing it to the thread, and the wait
                # is shielded: a batch taken is written even if the run ends meanwhile (`close`
                # writes only what is still queued)
                batch, self._batch = self._batch, _Batch()
                if batch.lines and self._failure is None and self._inline:
                    self._write(b"".join(batch.lines))
                elif batch.lines and self._failure is None:
                    written = loop.run_in_executor(thread, self._write, b"".join(batch.lines))
                    with anyio.CancelScope(shield=True):  # a write once begun is waited for
                        await written
                if batch.durable is not None:
                    batch.durable.set()

    def _flush_now(self) -> None:
        batch, self._batch = self._batch, _Batch()
        if batch.lines and self._failure is None:
            self._write(b"".join(batch.lines))
        if batch.durable is not None:
            batch.durable.set()

    def _write(self, data: bytes) -> None:
        if self._fd < 0:
            return
        try:
            append_lines(self._fd, self.path, data)
        except LedgerError as exc:
            self._failure = exc

    def crash(self) -> None:
        """Close as a crash would (a simulation's kill): what is queued is never written."""
        self._batch = _Batch()
        self.close()

    def close(self) -> None:
        """Write what is queued and close; never raises (the failure stays in `failure`)."""
        if self._fd < 0:
            return
        self._flush_now()
        os.close(self._fd)
        self._fd = -1
