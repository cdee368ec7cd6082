"""A request's admission in the multi-machine mode: one Redis step takes its place in every log it
counts against (the endpoint's window, the account's caps, the app's caps) and writes its sent
mark, so the mark is durable before the request leaves and absent when the budget refuses it;
and the app's cap is one budget for every process on the same Redis."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest
from redis.asyncio import Redis

from bulkrt.core.attribution import Evidence
from bulkrt.core.credential_refresh import RefreshReport, RefreshVerdict
from bulkrt.core.items import Action, Item
from bulkrt.core.scheduler import Scheduler
from bulkrt.core.tiers import LimitModel, Tier, WindowLimit
from bulkrt.fleet.budget import BudgetLog, SharedBudget
from bulkrt.fleet.connection import connect
from bulkrt.fleet.leased_sender import LeasedSender
from bulkrt.fleet.shared_journal import SharedJournal, event_codes, load_journal_state
from bulkrt.fleet.shared_results import SharedResults
from bulkrt.fleet.store import FleetStore, JobMeta, Lease
from bulkrt.ledger.journal import JournalEvent, journal_line
from bulkrt.redaction import Redactor
from bulkrt.shell.client import Exchange
from bulkrt.shell.dispatcher import Dispatcher
from tests.redis_server import RedisServer
from tests.test_fleet_run import driver_args, workers
from tests.test_run import ACCOUNTS, MakeWorld, eventually, fork_cli, rows

PREFIX = "bulkrt:"
JOB = "spring"
UID = "1001"
MODEL = LimitModel(Tier.PRO, retweet=WindowLimit(50, 900.0), undo=WindowLimit(50, 900.0))


def items(count: int) -> list[Item]:
    return [
        Item(f"k{n}", "spring", "acme", str(20 + n), Action.RETWEET, "job.csv", n + 2)
        for n in range(count)
    ]


def aof(server: RedisServer) -> bytes:
    """Everything Redis's append-only files hold on disk now."""
    return b"".join(path.read_bytes() for path in sorted(server.dir.rglob("*.aof")))


class AofWitness:
    """A `Sender` (the seam the HTTP one speaks) that, as each request leaves, reads Redis's
    append-only file from disk and notes whether the request's sent mark is already in it."""

    def __init__(self, server: RedisServer, lines: dict[str, str]) -> None:
        self._server = server
        #: Tweet id -> its item's sent line
        self._lines = lines
        #: Tweet id -> whether its sent mark was on disk when its request left
        self.seen: dict[str, bool] = {}

    @property
    def user_id(self) -> str:
        return UID

    @property
    def refreshable(self) -> bool:
        return False

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        self.seen[tweet_id] = self._lines[tweet_id].encode() in aof(self._server)
        await anyio.lowlevel.checkpoint()
        headers = {"x-rate-limit-limit": "50", "x-rate-limit-remaining": "40"}
        return Exchange(200, headers, b'{"data":{"retweeted":true}}', "application/json")

    async def refresh(self) -> RefreshReport:
        return RefreshReport(RefreshVerdict.UNSUPPORTED)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


async def claimed(store: FleetStore, queued: list[Item]) -> Lease:
    """The account's lease, once the job's ``queued`` items are published for it."""
    await store.register_job(JobMeta(JOB, "l.jsonl", "h", 1, len(queued), 0.0))
    await store.publish(JOB, [(n, UID, item.key, "{}") for n, item in enumerate(queued)])
    (lease,) = await store.claim("w1", 1, 60)
    return lease


async def journal_codes(redis: Redis, key: str) -> list[JournalEvent]:
    codes = await redis.hget(f"{PREFIX}jstate:{JOB}", key)
    return event_codes(str(codes or ""))


async def test_a_retweet_leaves_only_once_its_sent_mark_is_in_the_append_only_file(
    redis: Redis, redis_server: RedisServer
) -> None:
    """A worker session's dispatcher sends five retweets through the shared journal and the
    leased sender: as each request leaves, its sent mark is already in Redis's append-only file
    on disk (``appendfsync always``), and the journal holds each item's sent then made, in that
    order, once."""
    store, budget = FleetStore(redis, PREFIX), SharedBudget(redis, PREFIX)
    job_items = items(5)
    lease = await claimed(store, job_items)
    jobs = {item.key: JOB for item in job_items}
    journal = SharedJournal(redis, PREFIX, jobs, {}, ())
    sent_lines = {item.tweet_id: journal_line(item, JournalEvent.SENT) for item in job_items}
    witness = AofWitness(redis_server, sent_lines)
    lost: list[Lease] = []
    sender = LeasedSender(
        witness, budget, lease, MODEL, park=60, on_lost=lost.append, marks=journal.marks("acme")
    )
    sink = SharedResults(
        store, {"acme": lease}, jobs, {"acme": 5}, Redactor(), on_done=lambda _: None,
        on_lost=lost.append,
    )  # fmt: skip
    dispatcher = Dispatcher(
        Scheduler(MODEL, concurrency=8), {"acme": sender}, sink, run_id="w1", journal=journal
    )
    with anyio.fail_after(20):
        async with anyio.create_task_group() as background:
            background.start_soon(sink.flush_forever)
            stats = await dispatcher.run(iter(job_items))
            await sink.drain()
            await journal.close()
            background.cancel_scope.cancel()
    assert stats.requests == 5 and lost == []
    assert witness.seen == {item.tweet_id: True for item in job_items}
    for item in job_items:
        assert await journal_codes(redis, item.key) == [JournalEvent.SENT, JournalEvent.MADE]
    stream = [line for _, line in await store.journal_lines(JOB)]
    assert sorted(line for line in stream if line in sent_lines.values()) == sorted(
        sent_lines.values()
    )
    assert len(stream) == 10


async def test_a_refused_admission_leaves_no_sent_mark(
    redis: Redis, redis_server: RedisServer
) -> None:
    """A retweet the shared budget refuses (another sender filled the window) is held and never
    sent, and Redis holds no sent mark for it (nothing a later holder or a rollback could take
    for an attempt), nor a `none` closing an attempt that was never written; admitted later,
    its mark is written with its admission."""
    store, budget = FleetStore(redis, PREFIX), SharedBudget(redis, PREFIX)
    (item,) = items(1)
    lease = await claimed(store, [item])
    one = LimitModel(Tier.PRO, retweet=WindowLimit(1, 900.0), undo=WindowLimit(1, 900.0))
    assert (await budget.acquire(UID, Action.RETWEET, limit=1, window=900, lease=None)).ok
    journal = SharedJournal(redis, PREFIX, {item.key: JOB}, {}, ())
    witness = AofWitness(redis_server, {})
    lost: list[Lease] = []
    sender = LeasedSender(
        witness, budget, lease, one, park=60, on_lost=lost.append, marks=journal.marks("acme")
    )
    assert await journal.before_send(item)
    held = await sender.send(Action.RETWEET, item.tweet_id)
    assert held.http is None and held.held_until is not None
    assert witness.seen == {} and lost == []
    journal.record(item, JournalEvent.NONE)  # what the dispatcher records for a held request
    await journal.close()
    assert JournalEvent.SENT not in await journal_codes(redis, item.key)
    lines = [line for _, line in await store.journal_lines(JOB)]
    assert journal_line(item, JournalEvent.SENT) not in lines
    await redis.delete(f"{PREFIX}u:{{{UID}}}:sw:retweet")  # the window frees
    assert await journal.before_send(item)
    mark = journal.marks("acme")(Action.RETWEET, item.tweet_id)
    assert mark is not None
    admitted = await budget.admit(UID, [BudgetLog("retweet", 1, 900.0)], lease=None, mark=mark)
    assert admitted.ok
    assert await journal_codes(redis, item.key) == [JournalEvent.SENT]


async def test_a_refused_admission_never_closes_an_earlier_holders_open_attempt(
    redis: Redis, redis_server: RedisServer
) -> None:
    """An earlier holder's attempt left open (its driver stopped with the request in flight:
    possibly applied), then this holder's attempt refused by the budget (held): the dispatcher's
    `none` for the held request is not written, so the key's evidence stays "possibly applied"
    for the next holder (a `none` after that open `sent` read as "the attempt had no effect", and
    a later "already retweeted" as the owner's)."""
    store, budget = FleetStore(redis, PREFIX), SharedBudget(redis, PREFIX)
    (item,) = items(1)
    lease = await claimed(store, [item])
    earlier = SharedJournal(redis, PREFIX, {item.key: JOB}, {}, ())
    earlier.record(item, JournalEvent.SENT)  # the earlier holder's attempt, never answered
    await earlier.close()
    states, _ = await load_journal_state(redis, PREFIX, [(JOB, item, Evidence(), False)])
    one = LimitModel(Tier.PRO, retweet=WindowLimit(1, 900.0), undo=WindowLimit(1, 900.0))
    assert (await budget.acquire(UID, Action.RETWEET, limit=1, window=900, lease=None)).ok
    journal = SharedJournal(redis, PREFIX, {item.key: JOB}, states, ())
    sender = LeasedSender(
        AofWitness(redis_server, {}), budget, lease, one, park=60, on_lost=lambda _: None,
        marks=journal.marks("acme"),
    )  # fmt: skip
    assert await journal.before_send(item)
    held = await sender.send(Action.RETWEET, item.tweet_id)
    assert held.http is None and held.held_until is not None
    journal.record(item, JournalEvent.NONE)  # what the dispatcher records for a held request
    await journal.close()
    assert await journal_codes(redis, item.key) == [JournalEvent.SENT]
    again, _ = await load_journal_state(redis, PREFIX, [(JOB, item, Evidence(), False)])
    assert again[item.key].evidence().possible


async def test_a_next_holder_loads_what_earlier_holders_did_in_every_job(redis: Redis) -> None:
    """Events an earlier holder wrote to two jobs' journals come back, per item, folded on top
    of the evidence each item was published with: a retweet made is the campaign's (and its
    triple made), a sent never answered is possibly applied, an item with nothing written keeps
    its published evidence."""
    made, open_, untouched, earlier = items(4)
    jobs = {made.key: "j1", open_.key: "j1", untouched.key: "j2", earlier.key: "j2"}
    journal = SharedJournal(redis, PREFIX, jobs, {}, ())
    journal.record(made, JournalEvent.SENT)
    journal.record(made, JournalEvent.MADE)
    journal.record(open_, JournalEvent.SENT)
    await journal.close()
    states, triples = await load_journal_state(
        redis,
        PREFIX,
        [
            ("j1", made, Evidence(), False),
            ("j1", open_, Evidence(), False),
            ("j2", untouched, Evidence(), False),
            ("j2", earlier, Evidence(possible=True), False),
        ],
    )
    evidence = {key: state.evidence() for key, state in states.items()}
    assert evidence == {
        made.key: Evidence(made=True),
        open_.key: Evidence(possible=True),
        untouched.key: Evidence(),
        earlier.key: Evidence(possible=True),
    }
    assert triples == {(made.campaign, made.account, made.tweet_id)}


async def test_logs_admit_all_together_or_none(redis: Redis) -> None:
    """An admission into an endpoint's window, an account's cap and the app's cap takes a place
    in all three or in none: a full app cap (filled by another account) refuses the request
    without spending the account's window or cap, names the app's cap, and holds even the
    account's own lease holder (the app's log has no holder's exemption)."""
    budget = SharedBudget(redis, PREFIX)
    logs = [
        BudgetLog("retweet", 5, 900.0),
        BudgetLog("post-3h", 5, 900.0),
        BudgetLog("app-post-3h", 2, 900.0, app_wide=True),
    ]
    for uid in ("7", "8"):
        assert (await budget.admit(uid, logs, lease=None)).ok
    refused = await budget.admit("9", logs, lease=None)
    assert (refused.ok, refused.log) == (False, "app-post-3h")
    assert 899 < refused.retry_after <= 900
    assert await redis.zcard(f"{PREFIX}u:{{9}}:sw:retweet") == 0
    assert await redis.zcard(f"{PREFIX}u:{{9}}:sw:post-3h") == 0
    assert await redis.zcard(f"{PREFIX}app:sw:app-post-3h") == 2
    store = FleetStore(redis, PREFIX)
    await store.register_job(JobMeta(JOB, "l.jsonl", "h", 1, 1, 0.0))
    await store.publish(JOB, [(1, "7", "k1", "{}")])
    (lease,) = await store.claim("w1", 1, 60)
    own = await budget.admit("7", logs, lease=(lease.worker, lease.fence))
    assert (own.ok, own.log) == (False, "app-post-3h")


#: the launch preset's cap of the whole app (300 POSTs per 3 h), no header shows it
APP_CAP = 300

LAUNCH = ("--tier", "launch")


async def test_the_launch_app_cap_holds_across_every_process(
    make_world: MakeWorld, redis_server: RedisServer
) -> None:
    """Under the launch preset (its 15-minute window raised to 400), a driver and two workers
    run 6 accounts x 60 retweets, more than the app's hidden cap of 300 per 3 hours allows:
    the sandbox, which enforces the app's cap on every account's requests together, records
    exactly 300 retweets and no 429, though each process alone would have counted only its
    own accounts' requests; the other 60 wait, never sent, until the processes are stopped."""
    world = await make_world(tier="launch", limit=400, window=900.0)
    job = world.job(rows(ACCOUNTS, 60))
    async with (
        workers(world, redis_server, 2, *LAUNCH),
        fork_cli(driver_args(world, job, redis_server, *LAUNCH)) as driver,
    ):
        await eventually(lambda: len(world.lines()) >= APP_CAP, seconds=60)
        await anyio.sleep(1.0)  # time for any request over the cap to reach the sandbox
        stats = world.sandbox.state.stats()
        driver.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await driver.wait()
    assert stats["by_status"] == {"200": APP_CAP}
    assert sum(len(world.retweets(account)) for account in ACCOUNTS) == APP_CAP
    assert len({line["key"] for line in world.lines()}) == APP_CAP
