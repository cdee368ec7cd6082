"""The sent journal of the multi-machine mode: the same events as `bulkrt.ledger.journal` (the
evidence `bulkrt.core.attribution` needs to tell the campaign's retweets from the owners'), kept
in Redis because any worker may send a job's retweets, and a later holder of an account must see
what an earlier one (killed mid-request) may have done.

Per job, one Lua call appends a batch of events atomically to:

* ``journal:<job>``, a stream of the journal's own lines, which the driving ``bulkrt run`` copies
  into ``<ledger>.sent`` (then deletes), so `bulkrt rollback` reads the same file as ever;
* ``jstate:<job>``, per item key the events so far as one letter each, which a worker loads when
  it takes an account over (what this job's earlier holders did, on top of the earlier runs'
  evidence the driver published with each item);
* ``madeby:<job>``, per (account, Tweet) pair, the campaigns that made its retweet in this job,
  after a ``!`` when an ``ok`` undo of the pair in this job came first (which ends, for a later
  holder, what earlier runs made of it, as it ends the campaigns' made retweets since).

A ``sent`` is not written by this journal's own calls: `SharedJournal.before_send` hands it to the
account's sender (`SharedJournal.marks`), which writes it in the Lua step that admits the request
into the shared budget (`bulkrt.fleet.budget.SharedBudget.admit`). So it is in Redis before the
request leaves, in the same round trip as the admission, and a request the budget refuses leaves
none (an attempt whose earlier events are not written yet has them written first, so the journal
keeps each key's events in order). With ``appendfsync always`` it survives a Redis crash too;
with ``everysec`` the last second's marks may not, and an attempt in flight at that moment could
then be taken for the owner's (the README says to run Redis with ``appendfsync always``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import anyio
from redis.asyncio import Redis

from bulkrt.core.attribution import Evidence
from bulkrt.core.items import Action, Item
from bulkrt.errors import LedgerError
from bulkrt.fleet.budget import SentMark, SentMarks
from bulkrt.fleet.connection import patiently
from bulkrt.ledger.journal import JournalEvent, KeyState, PairEvidence, journal_line

__all__ = ["SharedJournal", "event_codes", "load_journal_state"]

_CODE = {
    JournalEvent.SENT: "s",
    JournalEvent.NONE: "n",
    JournalEvent.MAYBE: "m",
    JournalEvent.MADE: "M",
    JournalEvent.OWNER: "o",
    JournalEvent.UNDECIDED: "u",
    JournalEvent.UNDONE: "U",
}
_EVENT = {code: event for event, code in _CODE.items()}

# KEYS: stream, state hash, madeby hash; ARGV: per event (key, code, line, pair, campaign), five
# each; an ``undone`` (U, an undo item's) has no state: it resets its pair's word to '!' and
# clears the state of the pair's other keys, named in place of the campaign (NUL-separated)
_APPEND = """
for i = 1, #ARGV, 5 do
  local code = ARGV[i + 1]
  redis.call('XADD', KEYS[1], '*', 'line', ARGV[i + 2])
  if code == 'U' then
    redis.call('HSET', KEYS[3], ARGV[i + 3], '!')
    for other in string.gmatch(ARGV[i + 4], '[^%z]+') do
      redis.call('HDEL', KEYS[2], other)
    end
  else
    local was = redis.call('HGET', KEYS[2], ARGV[i]) or ''
    redis.call('HSET', KEYS[2], ARGV[i], was .. code)
    if code == 'M' then
      local by = redis.call('HGET', KEYS[3], ARGV[i + 3]) or ''
      redis.call('HSET', KEYS[3], ARGV[i + 3], by .. '\\0' .. ARGV[i + 4])
    end
  end
end
return #ARGV / 5
"""


def event_codes(codes: str) -> list[JournalEvent]:
    """The events of a key's ``jstate`` letters, in order.

    >>> event_codes("snsM")
    [<JournalEvent.SENT: 'sent'>, <JournalEvent.NONE: 'none'>, <JournalEvent.SENT: 'sent'>, \
<JournalEvent.MADE: 'made'>]
    """
    return [_EVENT[code] for code in codes]


def _pair(item: Item) -> str:
    return f"{item.account}\x00{item.tweet_id}"


def _made_here(word: bytes | str | None, campaign: str, made_before: bool) -> bool:
    """Whether ``campaign`` made the retweet of a pair whose ``madeby`` word in this job is
    ``word`` (None: this job has none), given whether an earlier run did (``made_before``).

    >>> _made_here(None, "C", True), _made_here(b"!", "C", True), _made_here(b"!\\0C", "C", False)
    (True, False, True)
    >>> _made_here(b"\\0D", "C", False), _made_here(b"\\0D", "C", True)
    (False, True)
    """
    if word is None:
        return made_before
    text = word.decode() if isinstance(word, bytes) else word
    campaigns = text.partition("\x00")[2]
    return campaign in campaigns.split("\x00") or (made_before and not _undone_here(word))


def _loaded_state(
    earlier: Evidence, codes: bytes | str | None, word: bytes | str | None
) -> KeyState:
    """A key's state for its next holder: the earlier runs' ``earlier`` evidence (unless an
    undo of its pair in this job, per the pair's ``madeby`` ``word``, voided it), then this job's
    events since (``codes``, its ``jstate``: an undo cleared those before it)."""
    state = KeyState()
    if not _undone_here(word):
        state.possible = earlier.possible
        if earlier.made:
            state.apply(JournalEvent.MADE)
        elif earlier.owner:
            state.apply(JournalEvent.OWNER)
    for event in event_codes(codes.decode() if isinstance(codes, bytes) else codes or ""):
        state.apply(event)
    return state


def _undone_here(word: bytes | str | None) -> bool:
    """Whether a pair's ``madeby`` word says an ``ok`` undo of it came in this job."""
    return word is not None and (word[:1] == b"!" or word[:1] == "!")


def _keys(prefix: str, job: str) -> list[str]:
    return [f"{prefix}journal:{job}", f"{prefix}jstate:{job}", f"{prefix}madeby:{job}"]


async def load_journal_state(
    redis: Redis, prefix: str, items: Sequence[tuple[str, Item, Evidence, bool]]
) -> tuple[dict[str, KeyState], set[tuple[str, str, str]]]:
    """What a worker taking accounts over must know of their items: per key, the earlier runs'
    evidence (published with the item) with this job's events since folded on top; and the
    triples whose retweet the campaign made (earlier runs, or this job on any worker).

    ``items`` are (job, item, earlier evidence, made by an earlier run)."""
    states: dict[str, KeyState] = {}
    made: set[tuple[str, str, str]] = set()
    if not items:
        return states, made
    # two commands per job, whatever its number of items: the keys' events, and the words of their
    # pairs' retweets the campaigns made in this job
    by_job: dict[str, list[Item]] = {}
    for job, item, _, _ in items:
        by_job.setdefault(job, []).append(item)

    async def read() -> list[Any]:
        # a pipeline per attempt: one that failed has emptied itself
        async with redis.pipeline(transaction=False) as pipe:
            for job, its in by_job.items():
                _, state_key, made_key = _keys(prefix, job)
                pipe.hmget(state_key, [item.key for item in its])
                pipe.hmget(made_key, [_pair(item) for item in its])
            return await pipe.execute()

    answers = iter(await patiently(read, what="loading the shared journal"))
    found: dict[tuple[str, str], tuple[str | None, bytes | None]] = {}
    for job, its in by_job.items():
        codes_of, words = next(answers), next(answers)
        for item, codes, word in zip(its, codes_of, words, strict=True):
            found[job, item.key] = codes, word
    for job, item, earlier, made_before in items:
        codes, word = found[job, item.key]
        states[item.key] = _loaded_state(earlier, codes, word)
        if _made_here(word, item.campaign, made_before):
            made.add((item.campaign, item.account, item.tweet_id))
    return states, made


class _AccountMarks:
    """`SharedJournal.marks` of one account (`bulkrt.fleet.budget.SentMarks`)."""

    __slots__ = ("_account", "_journal")

    def __init__(self, journal: SharedJournal, account: str) -> None:
        self._journal = journal
        self._account = account

    def __call__(self, action: Action, tweet_id: str) -> SentMark | None:
        return self._journal._handed.pop((self._account, action, tweet_id), None)

    def written(self, mark: SentMark) -> None:
        self._journal._written(mark)


class SharedJournal:
    """The `bulkrt.shell.dispatcher.Journal` of one worker session (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        jobs: Mapping[str, str],
        earlier: Mapping[str, KeyState],
        made: Iterable[tuple[str, str, str]],
        pairs: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        #: item key -> its job
        self._jobs = jobs
        #: what earlier holders and runs did, and what was made of each pair (`PairEvidence`)
        self._known = PairEvidence()
        pairs = pairs or {}
        for key, state in earlier.items():
            self._known.adopt(key, pairs.get(key), state)
        for campaign, account, tweet_id in made:
            self._known.made_by((account, tweet_id), campaign)
        #: per (account, Tweet), every queued key on it (``pairs``)
        self._queued_on: dict[tuple[str, str], list[str]] = {}
        for key, pair in pairs.items():
            self._queued_on.setdefault(pair, []).append(key)
        #: per undo key journaled ``undone``: the pair's other queued keys, whose events so far
        #: its write clears from ``jstate`` (a later holder must not load them)
        self._forget: dict[str, str] = {}
        self._open: set[str] = set()
        self._batch: list[tuple[str, Item, JournalEvent]] = []
        #: item key -> its events recorded and not written yet (a next attempt's sent mark,
        #: written by its admission, must come after them)
        self._unwritten: dict[str, int] = {}
        #: (account, action, Tweet) -> the sent mark of the request about to leave, for the
        #: account's sender to write in its admission (`marks`)
        self._handed: dict[tuple[str, Action, str], SentMark] = {}
        #: item keys whose attempt's sent mark was handed over and not (yet) written by an
        #: admission: a `none` for such an attempt closes nothing (`record`)
        self._unwritten_marks: set[str] = set()
        self._kick: anyio.Event | None = None
        # one write at a time: `close` must wait for a batch the flusher has taken and not
        # written yet (cancelling the flusher then would lose those events)
        self._writing = anyio.Lock()
        self._script = redis.register_script(_APPEND)

    @property
    def failure(self) -> LedgerError | None:
        """Never set: while Redis cannot be reached, the journal (and the sends) wait."""
        return None

    def evidence(self, key: str) -> Evidence:
        return self._known.evidence(key)

    def made(self, item: Item) -> bool:
        return self._known.made(item)

    def undone(self, item: Item) -> None:
        """As `bulkrt.ledger.journal.SentJournal.undone`, and for a later holder of the account
        too: with the next batch, the pair's word in ``madeby`` is reset and the events of its
        other queued keys are cleared from ``jstate``."""
        pair = (item.account, item.tweet_id)
        self._known.forget(pair)
        others = (key for key in self._queued_on.get(pair, ()) if key != item.key)
        self._forget[item.key] = "\x00".join(others)
        self.record(item, JournalEvent.UNDONE)

    def ended_before(self, item: Item) -> JournalEvent | None:
        """Never: a worker does not know which items an earlier run's file journal recorded as
        ended (an item whose ledger line an older backup lost is sent again, as it always was)."""
        return None

    def pair_possible(self, item: Item) -> bool:
        """`bulkrt.ledger.journal.PairEvidence.pair_possible`: this session's attempts, and
        what earlier holders and runs left on the pair's queued keys."""
        return self._known.pair_possible(item)

    def record(self, item: Item, event: JournalEvent) -> None:
        if item.key in self._unwritten_marks:
            self._unwritten_marks.discard(item.key)
            if event is JournalEvent.NONE:
                # The attempt's sent mark was never written (the budget refused its admission,
                # or it never reached the budget): there is no attempt to close, and a `none`
                # would close an earlier holder's open one as if it had had no effect.
                self._open.discard(item.key)
                self._handed.pop((item.account, item.action, item.tweet_id), None)
                return
        self._known.note(item, event)
        if event is JournalEvent.SENT:
            self._open.add(item.key)
        elif event is not JournalEvent.MAYBE:
            self._open.discard(item.key)
        self._batch.append((self._jobs[item.key], item, event))
        self._unwritten[item.key] = self._unwritten.get(item.key, 0) + 1
        if event is JournalEvent.SENT and self._kick is not None:
            self._kick.set()

    def flush(self) -> None:
        if self._batch and self._kick is not None:
            self._kick.set()

    async def before_send(self, item: Item) -> bool:
        """Hand the attempt's sent mark to the account's sender, which writes it in the same
        Redis step as the request's admission (`marks`): there, durable, before the request
        leaves, and never for a request the budget refuses. An attempt whose previous one is
        still open (its answer left it possibly applied) needs no new mark."""
        if item.key in self._open:
            return True
        if self._unwritten.get(item.key):
            # the previous attempt's closing events go first, in the journal's order
            await self._write(self._take())
        self._open.add(item.key)
        job = self._jobs[item.key]
        stream, state, _ = _keys(self._prefix, job)
        self._handed[(item.account, item.action, item.tweet_id)] = SentMark(
            stream, journal_line(item, JournalEvent.SENT), state, item.key, _CODE[JournalEvent.SENT]
        )
        self._unwritten_marks.add(item.key)
        return True

    def marks(self, account: str) -> SentMarks:
        """What ``account``'s sender calls as its request starts: the sent mark `before_send`
        handed over for that request (one request per account and Tweet is in flight), or None
        (an undo, or an attempt whose previous one is still open); and, once its admission wrote
        the mark, ``written``."""
        return _AccountMarks(self, account)

    def _written(self, mark: SentMark) -> None:
        self._unwritten_marks.discard(mark.field)  # the field of a sent mark is its item's key

    async def flush_forever(self) -> None:
        self._kick = anyio.Event()
        while True:
            await self._kick.wait()
            self._kick = anyio.Event()
            await self._write(self._take())

    async def close(self) -> None:
        """Write what is queued (the session's last events)."""
        await self._write(self._take())

    def _take(self) -> list[tuple[str, Item, JournalEvent]]:
        batch, self._batch = self._batch, []
        return batch

    async def _write(self, batch: list[tuple[str, Item, JournalEvent]]) -> None:
        async with self._writing:
            await self._append(batch)

    async def _append(self, batch: list[tuple[str, Item, JournalEvent]]) -> None:
        by_job: dict[str, list[str]] = {}
        for job, item, event in batch:
            code, line = _CODE[event], journal_line(item, event)
            last = self._forget.pop(item.key, "") if event is JournalEvent.UNDONE else item.campaign
            by_job.setdefault(job, []).extend((item.key, code, line, _pair(item), last))
        for job, args in by_job.items():
            keys = _keys(self._prefix, job)
            await patiently(
                partial(self._script, keys=keys, args=args),
                what="writing the shared journal",
            )
        for _, item, _ in batch:
            left = self._unwritten[item.key] - 1
            if left:
                self._unwritten[item.key] = left
            else:
                del self._unwritten[item.key]
