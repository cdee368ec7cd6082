"""The real `Dispatcher` driven in-process: a scripted `Sender` (the same Protocol `HttpSender`
speaks) answers each request, the ledger is a real `LedgerWriter`, and the event loop's clock is
virtual (`looptime`), so stop, grace, `--max-rps`, refresh retries and a slow disk (answers
waiting for their ledger lines) take no wall time.

What is asserted is what an operator sees: the ledger's lines, the published `RunStats`, and
what the fake sender was asked to do and when.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import looptime
import pytest

from bulkrt.core.credential_refresh import REFRESH_RETRY, RefreshReport, RefreshVerdict
from bulkrt.core.first_answers import FirstAnswers
from bulkrt.core.items import Action, Item, Status
from bulkrt.core.retry_policy import RetryPolicy
from bulkrt.core.scheduler import Scheduler
from bulkrt.core.tiers import limit_model
from bulkrt.errors import LedgerError
from bulkrt.ledger import journal as journal_module
from bulkrt.ledger.journal import SentJournal
from bulkrt.ledger.reader import read_ledger
from bulkrt.ledger.record import LedgerRecord
from bulkrt.ledger.writer import LedgerWriter
from bulkrt.shell.client import Exchange
from bulkrt.shell.dispatcher import Dispatcher, DispatchSettings
from bulkrt.shell.sender import Sender
from bulkrt.simulation.virtual_time import RESOLUTION

pytestmark = pytest.mark.virtual_time


JSON = "application/json"


def ok(action: Action = Action.RETWEET) -> Exchange:
    body = {"data": {"retweeted": action is Action.RETWEET}}
    return Exchange(200, {}, json.dumps(body).encode(), JSON)


def unauthorized() -> Exchange:
    body = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
    return Exchange(401, {}, json.dumps(body).encode(), JSON)


Answer = Callable[[Action, str], Exchange]


@dataclass
class FakeSender:
    """A scripted `Sender`: each send takes the next scripted answer (then ``ok``) and gives it
    after its delay (then ``latency``) in virtual seconds; each refresh the next scripted report
    (then refreshed)."""

    user_id: str = "1"
    refreshable: bool = True
    latency: float = 0.0
    answers: list[Exchange] = field(default_factory=list)
    refreshes: list[RefreshReport] = field(default_factory=list)
    #: (virtual time, tweet id) of every send, and the virtual time of every refresh
    sent: list[tuple[float, str]] = field(default_factory=list)
    refreshed_at: list[float] = field(default_factory=list)
    on_send: Callable[[], None] | None = None
    #: per send, how long its answer takes (then ``latency``)
    delays: list[float] = field(default_factory=list)

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        self.sent.append((asyncio.get_running_loop().time(), tweet_id))
        if self.on_send is not None:
            self.on_send()
        answer = self.answers.pop(0) if self.answers else ok(action)  # in the order sent
        await asyncio.sleep(self.delays.pop(0) if self.delays else self.latency)
        return answer

    async def refresh(self) -> RefreshReport:
        self.refreshed_at.append(asyncio.get_running_loop().time())
        if self.refreshes:
            return self.refreshes.pop(0)
        return RefreshReport(RefreshVerdict.REFRESHED)


def items(accounts: dict[str, int]) -> Iterator[Item]:
    for account, n in accounts.items():
        for i in range(n):
            yield Item(f"{account}-{i}", "c", account, str(100 + i), Action.RETWEET, "job.csv", i)


def scheduler(*, limit: int = 1000, concurrency: int = 8) -> Scheduler:
    return Scheduler(
        limit_model("pro", limit=limit, window=900),
        concurrency=concurrency,
        retry=RetryPolicy(max_attempts=3, initial=1.0, maximum=4.0, jitter=0.0),
    )


def dispatcher(
    ledger: LedgerWriter,
    senders: dict[str, FakeSender],
    settings: DispatchSettings | None = None,
    sched: Scheduler | None = None,
    journal: SentJournal | None = None,
) -> Dispatcher:
    seam: dict[str, Sender] = dict(senders)
    return Dispatcher(
        sched or scheduler(),
        seam,
        ledger,
        run_id="r1",
        journal=journal,
        settings=settings,
        clock=asyncio.get_running_loop().time,
    )


def lines(path: Path) -> list[LedgerRecord]:
    return list(read_ledger(path))


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "run.ledger.jsonl"


async def test_every_item_is_counted_once_its_line_is_written(ledger_path: Path) -> None:
    """A run writes one line per item, and its published stats count exactly the lines written."""
    senders = {"a": FakeSender(latency=0.5), "b": FakeSender(latency=0.5)}
    with LedgerWriter(ledger_path) as ledger:
        d = dispatcher(ledger, senders)
        seen: list[tuple[int, int]] = []
        for sender in senders.values():
            # at each send, what the stats say is finished never exceeds the lines on disk
            sender.on_send = lambda: seen.append((d.stats().finished, ledger.lines))
        stats = await d.run(items({"a": 5, "b": 3}))
    written = lines(ledger_path)
    assert sorted(r.key for r in written) == sorted(i.key for i in items({"a": 5, "b": 3}))
    assert stats.count(Status.OK) == len(written) == 8
    assert stats.requests == 8 and stats.finished == 8
    assert all(finished <= on_disk for finished, on_disk in seen)


async def test_stop_sends_nothing_new_and_records_what_finished(ledger_path: Path) -> None:
    """After `stop`, no new request goes out; the requests in flight finish within the grace
    period and get their lines; the rest stay unrecorded for the resume."""
    sender = FakeSender(latency=1.0)
    loop = asyncio.get_running_loop()
    with LedgerWriter(ledger_path) as ledger:
        d = dispatcher(ledger, {"a": sender}, sched=scheduler(concurrency=2))
        stopped_at = loop.time() + 1.5
        loop.call_at(stopped_at, d.stop)
        stats = await d.run(items({"a": 20}))
    written = lines(ledger_path)
    # sent at 0, then two at 1 (slow start probes one request first); none after the stop
    assert [t for t, _ in sender.sent] == [0.0, 1.0, 1.0]
    assert {r.key for r in written} == {"a-0", "a-1", "a-2"}
    assert stats.finished == 3 and loop.time() == stopped_at + 0.5


async def test_requests_in_flight_are_abandoned_after_the_grace_period(ledger_path: Path) -> None:
    """A request that does not answer within the grace period after a stop is abandoned: the run
    ends at the grace period's end and the item has no line (it is resent on resume)."""
    sender = FakeSender(latency=1000.0)
    loop = asyncio.get_running_loop()
    with LedgerWriter(ledger_path) as ledger:
        d = dispatcher(ledger, {"a": sender}, DispatchSettings(grace=5.0))
        loop.call_later(2.0, d.stop)
        start = loop.time()
        stats = await d.run(items({"a": 3}))
        ended = loop.time() - start
    assert len(sender.sent) == 1
    assert lines(ledger_path) == [] and stats.finished == 0
    assert 7.0 <= ended < 8.0  # stopped at 2 s, abandoned 5 s later, not after 1000 s


@pytest.mark.parametrize("rps", [2.0, 4.0])
async def test_max_rps_caps_the_requests_per_second(ledger_path: Path, rps: float) -> None:
    """With ``--max-rps R`` no 1-second window of the run, the first one included, holds more
    than R requests across all accounts."""
    senders = {name: FakeSender() for name in "abcdef"}
    with LedgerWriter(ledger_path) as ledger:
        d = dispatcher(ledger, senders, DispatchSettings(max_rps=rps))
        await d.run(items(dict.fromkeys("abcdef", 10)))
    times = sorted(t for s in senders.values() for t, _ in s.sent)
    assert len(times) == 60 == len(lines(ledger_path))
    cap = int(rps)
    # any R + 1 consecutive sends span at least a second: a window [t, t + 1) holds at most R
    assert all(times[i + cap] - times[i] >= 1.0 - 1e-6 for i in range(60 - cap))
    assert times[-1] - times[0] >= 59 / rps - 1e-6


async def test_a_request_waiting_for_its_max_rps_turn_is_not_sent_after_a_stop(
    ledger_path: Path,
) -> None:
    """Requests held back by ``--max-rps`` when the run stops are not sent: nothing leaves after
    the stop, the run ends at once (not when the last wait would have ended), and the items
    unsent have no line and no attempt left open in the journal (the resume sends them as
    never tried)."""
    senders = {name: FakeSender(latency=0.1) for name in "abcdefgh"}
    loop = asyncio.get_running_loop()
    with LedgerWriter(ledger_path) as ledger:
        journal = SentJournal(ledger_path, inline=True)
        journal.open(finished=set())
        d = Dispatcher(
            scheduler(concurrency=8),
            dict[str, Sender](senders),
            ledger,
            run_id="r1",
            journal=journal,
            settings=DispatchSettings(max_rps=1.0),
            clock=loop.time,
        )
        stopped_at = loop.time() + 3.5
        loop.call_at(stopped_at, d.stop)
        stats = await d.run(items(dict.fromkeys("abcdefgh", 10)))
        ended = loop.time()
        journal.close()
    sent = sorted(t for s in senders.values() for t, _ in s.sent)
    assert sent and max(sent) < stopped_at
    assert ended < stopped_at + 0.5  # the answer of the last request sent, then nothing
    written = {r.key for r in lines(ledger_path)}
    assert len(written) == len(sent) == stats.finished
    again = SentJournal(ledger_path)
    again.open(finished=written)
    unsent = [i.key for i in items(dict.fromkeys("abcdefgh", 10)) if i.key not in written]
    assert unsent and not any(again.evidence(key).possible for key in unsent)
    again.close()


async def test_without_max_rps_instant_answers_take_no_time(ledger_path: Path) -> None:
    """The cap is what slows the run above: without it, the same instant answers all go out at
    virtual time zero."""
    senders = {name: FakeSender() for name in "abcdef"}
    loop = asyncio.get_running_loop()
    start = loop.time()
    with LedgerWriter(ledger_path) as ledger:
        await dispatcher(ledger, senders).run(items(dict.fromkeys("abcdef", 10)))
    assert max(t for s in senders.values() for t, _ in s.sent) - start < 0.5


@dataclass
class PassesSender(FakeSender):
    """A `FakeSender` whose answers take a random number of event-loop passes (0 to 3) and no
    time, so that answers interleave with the dispatching loop in every order."""

    passes: random.Random = field(default_factory=random.Random)

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        self.sent.append((asyncio.get_running_loop().time(), tweet_id))
        if self.on_send is not None:
            self.on_send()
        for _ in range(self.passes.randint(0, 3)):
            await asyncio.sleep(0)
        return ok(action)


@pytest.mark.parametrize("seed", range(5))
async def test_the_sender_pool_never_grows_past_the_concurrency(
    ledger_path: Path, seed: int
) -> None:
    """However answers interleave with the loop, the pool of sender tasks grows to the
    scheduler's concurrency and never past it (a sender is free again as soon as the scheduler
    has its answer), and every item gets its line."""
    passes = random.Random(seed)
    senders: dict[str, FakeSender] = {name: PassesSender(passes=passes) for name in "abcd"}
    pool: list[int] = []

    def count_senders() -> None:
        tasks = asyncio.all_tasks()
        pool.append(sum("Dispatcher._serve" in task.get_name() for task in tasks))

    for sender in senders.values():
        sender.on_send = count_senders
    with LedgerWriter(ledger_path) as ledger:
        d = dispatcher(ledger, senders, sched=scheduler(concurrency=2))
        stats = await d.run(items(dict.fromkeys("abcd", 30)))
    assert max(pool) == 2
    assert stats.finished == len(lines(ledger_path)) == 120


async def test_a_401_is_refreshed_once_then_resent(ledger_path: Path) -> None:
    """A 401 makes the dispatcher refresh the account's credentials once and resend the item,
    which then ends ``ok`` with two attempts."""
    sender = FakeSender(answers=[unauthorized()])
    with LedgerWriter(ledger_path) as ledger:
        stats = await dispatcher(ledger, {"a": sender}).run(items({"a": 2}))
    written = {r.key: r for r in lines(ledger_path)}
    assert len(sender.refreshed_at) == 1
    assert [tweet for _, tweet in sender.sent] == ["100", "100", "101"]
    assert written["a-0"].status is Status.OK and written["a-0"].attempts == 2
    assert stats.count(Status.OK) == 2 and stats.reauthorize == {}


async def test_a_401_to_credentials_older_than_the_refresh_costs_no_second_refresh(
    ledger_path: Path,
) -> None:
    """Two requests in flight under the same credentials both get 401: the first makes the one
    refresh; the second, answered after it, was sent under the old credentials (the scheduler
    owns the credential generation), so it is resent, not refreshed again nor paused."""
    sender = FakeSender(
        answers=[ok(), unauthorized(), unauthorized()],
        delays=[0.0, 1.0, 5.0],  # item 0 ends slow start; items 1 and 2 go out together
    )
    with LedgerWriter(ledger_path) as ledger:
        stats = await dispatcher(ledger, {"a": sender}).run(items({"a": 3}))
    assert len(sender.refreshed_at) == 1
    assert sender.sent[1][0] == sender.sent[2][0]  # both under the first credentials
    assert [r.status for r in lines(ledger_path)] == [Status.OK] * 3
    assert stats.reauthorize == {}


async def test_a_refused_refresh_pauses_only_its_account(ledger_path: Path) -> None:
    """A refresh the token endpoint refuses pauses the account: its items end ``error`` with the
    operator's advice in the stats, and another account's items are unaffected."""
    refused = RefreshReport(RefreshVerdict.REFUSED, "account a: the refresh token was refused")
    a = FakeSender(answers=[unauthorized()], refreshes=[refused])
    b = FakeSender(latency=0.1)
    with LedgerWriter(ledger_path) as ledger:
        stats = await dispatcher(ledger, {"a": a, "b": b}).run(items({"a": 3, "b": 3}))
    by_account: dict[str, set[Status]] = {}
    for record in lines(ledger_path):
        by_account.setdefault(record.account, set()).add(record.status)
    assert by_account == {"a": {Status.ERROR}, "b": {Status.OK}}
    assert len(a.sent) == 1 and len(a.refreshed_at) == 1
    assert stats.reauthorize == {"a": "account a: the refresh token was refused"}
    assert stats.count(Status.ERROR) == 3 and stats.count(Status.OK) == 3


async def test_oauth1_has_nothing_to_refresh(ledger_path: Path) -> None:
    """An OAuth 1.0a account answered 401 is paused at once with the advice to check its keys."""
    sender = FakeSender(refreshable=False, answers=[unauthorized()])

    async def unsupported() -> RefreshReport:
        sender.refreshed_at.append(asyncio.get_running_loop().time())
        return RefreshReport(RefreshVerdict.UNSUPPORTED)

    sender.refresh = unsupported  # type: ignore[method-assign]
    with LedgerWriter(ledger_path) as ledger:
        stats = await dispatcher(ledger, {"a": sender}).run(items({"a": 2}))
    written = lines(ledger_path)
    assert [r.status for r in written] == [Status.ERROR, Status.ERROR]
    assert written[0].error is not None and "OAuth 1.0a" in (written[0].error.detail or "")
    assert "OAuth 1.0a credentials" in stats.reauthorize.get("a", "")


async def test_a_failed_refresh_is_retried_per_the_core_policy(ledger_path: Path) -> None:
    """A refresh that fails (no answer, a 5xx) is tried `REFRESH_RETRY.max_attempts` times, as
    far apart as the policy says, then the account is paused with the failure's message."""
    failed = RefreshReport(RefreshVerdict.FAILED, "account a: refreshing failed: HTTP 503")
    sender = FakeSender(answers=[unauthorized()], refreshes=[failed] * 5)
    with LedgerWriter(ledger_path) as ledger:
        stats = await dispatcher(ledger, {"a": sender}).run(items({"a": 2}))
    at = sender.refreshed_at
    assert len(at) == REFRESH_RETRY.max_attempts
    gaps = [round(later - earlier, 6) for earlier, later in zip(at, at[1:], strict=False)]
    assert gaps == [REFRESH_RETRY.delay(n) for n in range(1, len(at))]
    assert {r.status for r in lines(ledger_path)} == {Status.ERROR}
    assert stats.reauthorize == {"a": failed.message}


async def test_a_refresh_that_fails_once_then_works_recovers(ledger_path: Path) -> None:
    """One failed refresh attempt followed by a good one resends the item, which ends ``ok``."""
    failed = RefreshReport(RefreshVerdict.FAILED, "account a: refreshing failed: HTTP 503")
    sender = FakeSender(answers=[unauthorized()], refreshes=[failed])
    with LedgerWriter(ledger_path) as ledger:
        stats = await dispatcher(ledger, {"a": sender}).run(items({"a": 1}))
    assert len(sender.refreshed_at) == 2
    assert [r.status for r in lines(ledger_path)] == [Status.OK]
    assert stats.reauthorize == {}


async def test_credentials_that_cannot_be_refreshed_ahead_keep_the_item_unsent(
    ledger_path: Path,
) -> None:
    """A send the sender could not make (its credentials' refresh ahead of expiry failed) counts
    no request; the item is retried, and ends ``error`` when the failure lasts."""
    report = RefreshReport(RefreshVerdict.FAILED, "account a: refreshing failed: no answer")
    sender = FakeSender(answers=[Exchange(None, sent=False, credentials=report)] * 3)
    with LedgerWriter(ledger_path) as ledger:
        stats = await dispatcher(ledger, {"a": sender}).run(items({"a": 1}))
    (record,) = lines(ledger_path)
    assert record.status is Status.ERROR and record.error is not None
    assert record.error.title == "Refresh failed"
    assert len(sender.sent) == 3 and stats.requests == 0


class FailingLedger(LedgerWriter):
    """A real ledger whose disk fills after ``room`` lines."""

    room = 3

    def write(self, record: LedgerRecord) -> None:
        if self.lines >= self.room:
            raise LedgerError(self.path, "No space left on device")
        super().write(record)


async def test_a_ledger_that_cannot_be_written_stops_the_run(ledger_path: Path) -> None:
    """When a ledger line cannot be written the dispatcher keeps the first cause, sends nothing
    more, and the stats count only the lines that were written."""
    sender = FakeSender(latency=1.0)
    with FailingLedger(ledger_path) as ledger:
        d = dispatcher(ledger, {"a": sender}, sched=scheduler(concurrency=1))
        stats = await d.run(items({"a": 10}))
    assert d.failure is not None and "No space left" in d.failure.message
    assert len(lines(ledger_path)) == 3 == stats.finished
    assert len(sender.sent) <= 5  # the failing line's item, at most one more in flight


async def test_a_journal_that_cannot_be_written_stops_the_run_and_the_answers_in_flight_get_lines(
    ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the journal's disk fails (its fifth batch cannot be synced) the run stops: nothing
    more is sent, the failure names the journal, and every request that went out before has its
    answer's line in the (still writable) ledger, counted once written: resent on resume, each
    would find its own retweet with no journal line to say whose it is."""
    syncs = [0]
    real = journal_module._sync_data

    def disk(fd: int) -> None:
        syncs[0] += 1
        if syncs[0] >= 5:
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(journal_module, "_sync_data", disk)
    senders = {f"a{n}": FakeSender(latency=0.5 + n / 10) for n in range(4)}
    journal = SentJournal(ledger_path, inline=True)
    journal.open(finished=set())
    with LedgerWriter(ledger_path) as ledger:
        d = dispatcher(ledger, senders, sched=scheduler(concurrency=4), journal=journal)
        stats = await d.run(items(dict.fromkeys(senders, 5)))
    journal.close()
    written = lines(ledger_path)
    sent = sum(len(sender.sent) for sender in senders.values())
    assert d.failure is not None and d.failure.path == str(journal.path)
    assert "No space left" in d.failure.message
    assert 4 < sent < 20  # some sent after the first batches, none after the failure
    assert len(written) == sent == stats.finished == len({r.key for r in written})
    assert all(r.status is Status.OK for r in written)


async def test_a_token_endpoint_that_is_not_the_apis_stops_the_run(ledger_path: Path) -> None:
    """When the first refresh (ahead of any request) gets an answer no token endpoint gives, the
    API base is proved wrong: the run stops with that proof, blames no account, and leaves the
    item unfinished for the next run."""
    report = RefreshReport(
        RefreshVerdict.FAILED,
        "account a: refreshing the OAuth 2.0 token failed: HTTP 404 with an HTML page",
        "HTTP 404 with an HTML page (text/html)",
        http=404,
        not_api=True,
    )
    sender = FakeSender(answers=[Exchange(None, sent=False, credentials=report)])
    with LedgerWriter(ledger_path) as ledger:
        d = Dispatcher(
            scheduler(),
            {"a": sender},
            ledger,
            run_id="r1",
            clock=asyncio.get_running_loop().time,
            first_answers=FirstAnswers(["a"]),
        )
        stats = await d.run(items({"a": 3}))
    assert stats.misconfiguration is not None
    assert "HTML page" in stats.misconfiguration.detail
    assert stats.reauthorize == {} and stats.requests == 0
    assert len(sender.sent) == 1 and lines(ledger_path) == []


class SlowDisk(LedgerWriter):
    """A real ledger on a disk whose fsync takes ``stall`` seconds. The write is synchronous, so
    a slow fsync holds the event loop as it would in a real run: the virtual clock moves on by
    ``stall`` meanwhile (as the wall clock would), and every answer due in that time lands at
    once when the loop runs again. ``waiting`` samples, at each write, the answers given back
    that have no line yet (the one being written included); ``stalls`` counts the fsyncs."""

    def __init__(self, path: Path, answered: list[int], stall: float) -> None:
        super().__init__(path, clock=asyncio.get_running_loop().time)
        self.answered = answered
        self.stall = stall
        self.waiting: list[int] = []
        self.stalls = 0
        self.on_write: Callable[[], None] | None = None

    def sync(self) -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, looptime.LoopTimeEventLoop)  # the virtual loop
        loop.setup_looptime(start=loop.time() + self.stall, noop_cycles=1, resolution=RESOLUTION)
        self.stalls += 1
        super().sync()

    def write(self, record: LedgerRecord) -> None:
        self.waiting.append(self.answered[0] - self.lines)
        if self.on_write is not None:
            self.on_write()
        super().write(record)


@dataclass
class CountingSender(FakeSender):
    """A `FakeSender` that counts, in the list it shares with the others, the answers it gave."""

    answered: list[int] = field(default_factory=lambda: [0])

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        answer = await super().send(action, tweet_id)
        self.answered[0] += 1
        return answer


async def test_answers_landing_after_a_slow_fsync_get_their_lines_at_once_and_none_is_lost(
    ledger_path: Path,
) -> None:
    """When the ledger's fsync is slow (2 s), the hundreds of answers due meanwhile land at once:
    each gets its line as it is taken, before the next answer is (no backlog of answers without
    lines forms), none is counted before its line is written, a stop just after a stall sends
    nothing new, and every answer given back has its line when the run ends (none is lost)."""
    loop = asyncio.get_running_loop()
    answered = [0]
    latency = random.Random(13)
    senders: dict[str, FakeSender] = {
        f"a{n}": CountingSender(
            answered=answered, delays=[latency.uniform(0.2, 1.0) for _ in range(4)]
        )
        for n in range(300)
    }
    counted: list[tuple[int, int]] = []  # (finished in the stats, lines written)
    sent_before_the_stop: list[int] = []
    stop_asked: list[float] = []

    def sends() -> int:
        return sum(len(sender.sent) for sender in senders.values())

    ledger = SlowDisk(ledger_path, answered, stall=2.0)
    with ledger:
        d = dispatcher(ledger, senders, sched=scheduler(concurrency=300))

        def watch() -> None:
            counted.append((d.stats().finished, ledger.lines))

        def stop() -> None:
            sent_before_the_stop.append(sends())
            d.stop()

        def stop_after_a_stall() -> None:
            watch()
            if ledger.stalls and not stop_asked:
                stop_asked.append(loop.time())
                loop.call_soon(stop)

        ledger.on_write = stop_after_a_stall
        for sender in senders.values():
            sender.on_send = watch
        stats = await d.run(items(dict.fromkeys(senders, 4)))
    written = lines(ledger_path)
    assert ledger.stalls >= 1 and stop_asked  # the disk did stall the run
    assert max(ledger.waiting) == 1  # each answer's line was written as it was taken
    assert all(finished <= on_disk for finished, on_disk in counted)
    assert sent_before_the_stop == [sends()]  # nothing new after the stop
    assert len(written) == answered[0] == stats.finished == len({r.key for r in written})
    assert answered[0] < 1200  # the stop left items unsent, for the resume
