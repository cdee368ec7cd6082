"""The fleet store against a real redis-server: jobs, publishing, leases with fencing, expiry and
reaping, completion into the results stream, the journal, workers, and a randomised interleaving
of several workers checked against a model. Run many seeds by hand with
``BULKRT_FLEET_SEEDS=1000 pytest tests/test_fleet_store.py``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest
import redis.asyncio
from redis.exceptions import ResponseError

from bulkrt.fleet.store import FleetStore, JobMeta, Lease
from tests.redis_server import RedisServer

#: seeds of the randomised interleaving test: 0-19 and 31 in CI, where every kind of step is met
#: (counted over seeds 0-19: a complete, renew, release and expiry by a worker that unknowingly
#: lost one of its leases in 10, 7, 11 and 6 of them, a reap that freed expired leases in 15;
#: a release of a lease whose account another worker has claimed since only in seeds 31, 40 and
#: 45 of 0-49, so 31 is added); run more by hand (see the module docstring)
FLEET_SEEDS = (
    range(int(os.environ["BULKRT_FLEET_SEEDS"]))
    if "BULKRT_FLEET_SEEDS" in os.environ
    else [*range(20), 31]
)

Stores = Callable[[int], AbstractAsyncContextManager[list[FleetStore]]]


@pytest.fixture(params=[False, True], ids=["bytes", "decoded"])
def stores(redis_server: RedisServer, request: pytest.FixtureRequest) -> Stores:
    """`n` stores on the test's redis-server, each on its own client (as separate workers are),
    on clients that return bytes and on clients that decode responses."""
    return stores_on(redis_server, decode_responses=request.param)


@pytest.fixture(scope="module")
def unsaved_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server without an append-only file for every seed of the randomised test: it
    writes thousands of times and restarts nothing, so it skips the fsync of every write; each
    seed keeps to its own key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), aof=False).start()
    try:
        yield server
    finally:
        server.kill()


def stores_on(
    redis_server: RedisServer, prefix: str = "bulkrt:", *, decode_responses: bool = False
) -> Stores:
    """Opens `n` stores under `prefix`, each on its own client, and closes their clients."""

    @asynccontextmanager
    async def open_stores(n: int) -> AsyncIterator[list[FleetStore]]:
        clients = [
            redis.asyncio.Redis.from_url(redis_server.url, decode_responses=decode_responses)
            for _ in range(n)
        ]
        try:
            yield [FleetStore(client, prefix) for client in clients]
        finally:
            for client in clients:
                await client.aclose()

    return open_stores


def meta(job_id: str, total: int = 0) -> JobMeta:
    return JobMeta(job_id, f"/ledgers/{job_id}.jsonl", "driver-host", 4242, total, 1764000000.0)


def item(serial: int, user_id: str, job_id: str = "spring") -> tuple[int, str, str, str]:
    """One item to publish: its key and payload name the job, serial and account."""
    key = f"{job_id}-{serial}"
    return serial, user_id, key, json.dumps({"key": key, "user_id": user_id})


def line(job_id: str, item_key: str) -> str:
    return json.dumps({"key": item_key, "job": job_id, "status": "done"})


async def expire(store: FleetStore, lease: Lease) -> None:
    """Let the lease run out as a stalled worker's would: renewed for 2 ms, then not again."""
    assert await store.renew([lease], ttl=0.002) == set()
    await asyncio.sleep(0.01)


async def all_results(store: FleetStore, job_id: str) -> list[str]:
    return [text for _, text in await store.results(job_id, count=100_000)]


async def test_accounts_published_unavailable_wait_to_be_made_available(stores: Stores) -> None:
    """A driver publishing a large job keeps its accounts from being claimed half-published:
    until `make_available`, no account is claimed; then every account with items queued and no
    lease is, and an account leased meanwhile is not made available twice."""
    async with stores(1) as (store,):
        assert await store.register_job(meta("spring", total=3))
        await store.publish("spring", [item(0, "101"), item(1, "202")], available=False)
        assert await store.claim("w1", n=5, ttl=30) == []
        assert await store.make_available("spring") == 2
        (first,) = await store.claim("w1", n=1, ttl=30)
        await store.publish("spring", [item(2, first.user_id)], available=False)
        assert await store.make_available("spring") == 0  # one leased, the other waits already
        (second,) = await store.claim("w2", n=5, ttl=30)
        assert {first.user_id, second.user_id} == {"101", "202"}


async def test_making_accounts_available_wakes_the_idle_workers(stores: Stores) -> None:
    """Accounts made available are announced on the wake channel with how many there are, so
    idle workers claim at once; making none available announces nothing."""
    async with stores(1) as (store,):
        async with store.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(store.keys.wake)
            assert await store.register_job(meta("spring", total=2))
            await store.publish("spring", [item(0, "101"), item(1, "202")], available=False)
            assert await store.make_available("spring") == 2
            assert await store.make_available("spring") == 0
            await store.redis.publish(store.keys.wake, "end")  # marks the end of what came
            messages: list[str | bytes] = []
            with anyio.fail_after(10):
                while not messages or messages[-1] not in ("end", b"end"):
                    message = await pubsub.get_message(timeout=1)
                    if message is not None:  # None: nothing yet, or a subscription's answer
                        messages.append(message["data"])
        assert messages in (["2", "end"], [b"2", b"end"])


async def test_publish_claim_complete_round_trip(stores: Stores) -> None:
    """Published items reach a worker through a lease and their ledger lines the results stream."""
    async with stores(1) as (store,):
        assert await store.register_job(meta("spring", total=3))
        assert await store.publish("spring", [item(0, "101"), item(1, "202"), item(2, "101")]) == 3
        await store.finish_publishing("spring")

        leases = await store.claim("w1", n=5, ttl=30)
        assert sorted((lease.user_id, lease.fence) for lease in leases) == [("101", 1), ("202", 1)]
        assert {lease.quiet_until for lease in leases} == {0.0}
        assert await store.claim("w2", n=5, ttl=30) == []
        for lease in leases:
            queued = await store.queued(lease.user_id)
            for job_id, key, payload in queued:
                assert json.loads(payload)["user_id"] == lease.user_id
                assert await store.complete(lease, job_id, key, line(job_id, key))
            assert await store.queued(lease.user_id) == []
            await store.release(lease)

        assert sorted(json.loads(t)["key"] for t in await all_results(store, "spring")) == [
            "spring-0",
            "spring-1",
            "spring-2",
        ]
        status = await store.job_meta("spring")
        assert status is not None
        assert (status.published, status.total, status.done, status.queued) == (True, 3, 3, 0)
        assert status.results_waiting == 3
        assert (status.ledger, status.host, status.pid) == (
            "/ledgers/spring.jsonl",
            "driver-host",
            4242,
        )
        waiting = await store.waiting()
        assert (waiting.available, waiting.leased, waiting.quiet) == (0, 0, 0)


async def test_a_job_registers_once(stores: Stores) -> None:
    """A restarted driver's registration is refused and leaves the job as it was."""
    async with stores(1) as (store,):
        assert await store.register_job(meta("spring", total=2))
        await store.publish("spring", [item(0, "101")])
        assert not await store.register_job(meta("spring", total=99))
        assert await store.register_job(meta("autumn", total=1))
        jobs = await store.jobs()
        assert [(j.job_id, j.total, j.queued, j.published) for j in jobs] == [
            ("spring", 2, 1, False),
            ("autumn", 1, 0, False),
        ]
        assert await store.job_meta("winter") is None
        with pytest.raises(ResponseError, match="not registered"):
            await store.publish("winter", [item(0, "101", "winter")])


async def test_concurrent_claims_never_share_an_account(stores: Stores) -> None:
    """Four workers claiming at once get every available account exactly once between them."""
    async with stores(4) as workers:
        await workers[0].register_job(meta("spring"))
        await workers[0].publish("spring", [item(n, f"u{n}") for n in range(40)])

        async def claim_all(index: int) -> list[Lease]:
            got: list[Lease] = []
            while batch := await workers[index].claim(f"w{index}", n=3, ttl=30):
                got += batch
            return got

        claimed = [
            lease for got in await asyncio.gather(*map(claim_all, range(4))) for lease in got
        ]
        assert sorted(lease.user_id for lease in claimed) == sorted(f"u{n}" for n in range(40))
        waiting = await workers[0].waiting()
        assert (waiting.available, waiting.leased) == (0, 40)


async def test_a_stale_fence_changes_nothing(stores: Stores) -> None:
    """After its lease expired and another worker claimed the account, the first worker can
    neither complete, release nor renew; the new holder, with a higher fence, can."""
    async with stores(2) as (first, second):
        await first.register_job(meta("spring"))
        await first.publish("spring", [item(0, "101"), item(1, "101")])
        (old,) = await first.claim("w1", n=1, ttl=30)
        await expire(first, old)

        before = time.time()
        assert await second.reap(quiet=30) == ["101"]
        assert await first.reap(quiet=30) == []
        (new,) = await second.claim("w2", n=1, ttl=30)
        assert (new.user_id, new.fence) == ("101", old.fence + 1)
        assert new.quiet_until >= before + 29

        assert not await first.complete(old, "spring", "spring-0", line("spring", "spring-0"))
        await first.release(old)
        assert await first.renew([old], ttl=30) == {"101"}
        assert await all_results(first, "spring") == []
        assert [key for _, key, _ in await second.queued("101")] == ["spring-0", "spring-1"]
        assert await second.renew([new], ttl=30) == set()
        assert (await second.waiting()).leased == 1
        assert await second.complete(new, "spring", "spring-0", line("spring", "spring-0"))
        assert len(await all_results(second, "spring")) == 1


async def test_an_expired_lease_is_reaped_with_a_quiet_period_and_nothing_is_lost(
    stores: Stores,
) -> None:
    """A worker that stops renewing loses its accounts to the reaper; the next holder gets a
    higher fence, the quiet period, and every item the first left unfinished."""
    async with stores(2) as (dead, alive):
        await dead.register_job(meta("spring"))
        await dead.publish("spring", [item(n, "101") for n in range(5)])
        (lease,) = await dead.claim("dead", n=1, ttl=30)
        for _, key, _ in (await dead.queued("101"))[:2]:
            assert await dead.complete(lease, "spring", key, line("spring", key))
        assert await alive.reap(quiet=5) == []
        await expire(dead, lease)

        assert await alive.claim("alive", n=1, ttl=30) == []
        assert await alive.reap(quiet=5) == ["101"]
        waiting = await alive.waiting()
        assert (waiting.available, waiting.leased, waiting.quiet) == (1, 0, 1)
        assert [uid for uid, _ in waiting.longest] == ["101"]
        (taken,) = await alive.claim("alive", n=1, ttl=30)
        assert taken.fence == lease.fence + 1
        assert taken.quiet_until > time.time() + 3
        assert [key for _, key, _ in await alive.queued("101")] == [
            f"spring-{n}" for n in (2, 3, 4)
        ]


async def test_items_come_in_job_then_file_order(stores: Stores) -> None:
    """An account's queued items list the earlier registered job first, each in serial order."""
    async with stores(1) as (store,):
        await store.register_job(meta("spring"))
        await store.register_job(meta("autumn"))
        await store.publish(
            "autumn", [item(n, "101" if n % 2 else "202", "autumn") for n in range(6)]
        )
        await store.publish("spring", [item(n, "101", "spring") for n in (3, 7, 10)])
        assert [(job, key) for job, key, _ in await store.queued("101")] == [
            ("spring", "spring-3"),
            ("spring", "spring-7"),
            ("spring", "spring-10"),
            ("autumn", "autumn-1"),
            ("autumn", "autumn-3"),
            ("autumn", "autumn-5"),
        ]


async def test_publishing_again_queues_each_item_once(stores: Stores) -> None:
    """A driver that publishes again after a partial publish adds only what was missing, even
    when items of the first part have been completed meanwhile."""
    async with stores(1) as (store,):
        await store.register_job(meta("spring"))
        every = [item(n, f"u{n % 3}") for n in range(10)]
        assert await store.publish("spring", every[:4], batch=2) == 4
        (lease,) = await store.claim("w1", n=1, ttl=30)
        first_key = (await store.queued(lease.user_id))[0][1]
        assert await store.complete(lease, "spring", first_key, line("spring", first_key))

        assert await store.publish("spring", every, batch=3) == 6
        assert await store.publish("spring", every, batch=10) == 0
        queued = [key for uid in ("u0", "u1", "u2") for _, key, _ in await store.queued(uid)]
        assert sorted(queued + [first_key]) == sorted(key for _, _, key, _ in every)
        assert len(set(queued)) == len(queued) == 9

        with pytest.raises(ResponseError, match="out of serial order"):
            await store.publish("spring", [item(12, "u0"), item(11, "u1")])
        status = await store.job_meta("spring")
        assert status is not None
        assert status.queued == 9


async def test_results_wait_until_dropped(stores: Stores) -> None:
    """Result entries stay, page by page, until the driver drops the ones it has written."""
    async with stores(1) as (store,):
        await store.register_job(meta("spring"))
        await store.publish("spring", [item(n, "101") for n in range(5)])
        (lease,) = await store.claim("w1", n=1, ttl=30)
        done = [("spring", f"spring-{n}", line("spring", f"spring-{n}")) for n in range(5)]
        assert await store.complete_many(lease, done)
        assert await store.complete_many(lease, done)  # already completed: nothing appended twice

        page = await store.results("spring", count=2)
        assert [json.loads(t)["key"] for _, t in page] == ["spring-0", "spring-1"]
        rest = await store.results("spring", after=page[-1][0])
        assert [json.loads(t)["key"] for _, t in rest] == ["spring-2", "spring-3", "spring-4"]
        await store.drop_results("spring", [entry_id for entry_id, _ in page])
        assert [entry_id for entry_id, _ in await store.results("spring")] == [e for e, _ in rest]
        status = await store.job_meta("spring")
        assert status is not None
        assert (status.done, status.results_waiting) == (5, 3)


async def test_the_journal_keeps_lines_until_dropped(stores: Stores) -> None:
    """Journal lines come back in order after an entry id, and go when dropped."""
    async with stores(2) as (one, other):
        await one.journal("spring", ["a", "b"])
        await other.journal("spring", ["c"])
        lines = await one.journal_lines("spring")
        assert [text for _, text in lines] == ["a", "b", "c"]
        assert [t for _, t in await one.journal_lines("spring", after=lines[0][0], count=1)] == [
            "b"
        ]
        await other.drop_journal("spring", [lines[1][0]])
        assert [text for _, text in await one.journal_lines("spring")] == ["a", "c"]


async def test_redis_restarted_loses_nothing(stores: Stores, redis_server: RedisServer) -> None:
    """A redis-server killed and restarted (append-only file, fsync always) still has every
    published item, the live lease, the results, the journal and the fences; the lease keeps
    working."""
    async with stores(1) as (store,):
        await store.register_job(meta("spring"))
        await store.publish("spring", [item(n, "101") for n in range(3)])
        await store.publish("spring", [item(n, "202") for n in range(3, 5)])
        (lease,) = await store.claim("w1", n=1, ttl=60)
        key = (await store.queued(lease.user_id))[0][1]
        assert await store.complete(lease, "spring", key, line("spring", key))
        await store.journal("spring", ["sent"])
        queued_before = {uid: await store.queued(uid) for uid in ("101", "202")}

    redis_server.restart()

    async with stores(1) as (store,):
        assert {uid: await store.queued(uid) for uid in ("101", "202")} == queued_before
        assert [json.loads(t)["key"] for t in await all_results(store, "spring")] == [key]
        assert [t for _, t in await store.journal_lines("spring")] == ["sent"]
        assert await store.renew([lease], ttl=60) == set()
        (other,) = await store.claim("w2", n=1, ttl=60)
        assert other.user_id != lease.user_id
        next_key = queued_before[lease.user_id][0][1]
        assert await store.complete(lease, "spring", next_key, line("spring", next_key))
        status = await store.job_meta("spring")
        assert status is not None
        assert (status.done, status.queued) == (2, 3)
        await expire(store, lease)
        assert await store.reap(quiet=0) == [lease.user_id]
        (again,) = await store.claim("w2", n=1, ttl=60)
        assert (again.user_id, again.fence) == (lease.user_id, lease.fence + 1)


async def test_workers_beat_hold_leases_and_leave(stores: Stores) -> None:
    """Workers are listed with their details and live leases while they beat, and not after
    they leave."""
    async with stores(1) as (store,):
        await store.register_job(meta("spring"))
        await store.publish("spring", [item(n, f"u{n}") for n in range(3)])
        for worker in ("w1", "w2"):
            info = {
                "host": f"{worker}.example",
                "pid": "7",
                "started": "1764000000.5",
                "stats": "{}",
            }
            await store.beat(worker, info, ttl=30)
        await store.claim("w2", n=2, ttl=30)

        seen = {w.worker: w for w in await store.workers(live_within=30)}
        assert sorted(seen) == ["w1", "w2"]
        assert (seen["w2"].host, seen["w2"].pid, seen["w2"].started) == (
            "w2.example",
            7,
            1764000000.5,
        )
        assert (seen["w1"].leases, seen["w2"].leases) == (0, 2)
        assert abs(seen["w1"].last_seen - time.time()) < 30
        await store.leave("w1")
        assert [w.worker for w in await store.workers(live_within=30)] == ["w2"]


async def test_a_finished_job_leaves_no_keys(stores: Stores) -> None:
    """Finishing a job deletes its items, queues, results and journal, and the accounts that had
    nothing else queued stop waiting."""
    async with stores(1) as (store,):
        await store.register_job(meta("spring"))
        await store.register_job(meta("autumn"))
        await store.publish("spring", [item(0, "101"), item(1, "202")])
        await store.publish("autumn", [item(0, "202", "autumn")])
        await store.journal("spring", ["sent"])
        await store.finish_job("spring")

        assert await store.job_meta("spring") is None
        assert await store.queued("101") == []
        assert [key for _, key, _ in await store.queued("202")] == ["autumn-0"]
        assert [uid for uid, _ in (await store.waiting()).longest] == ["202"]
        assert [key async for key in store.redis.scan_iter("*spring*")] == []


class FleetModel:
    """What the store must hold after each step of the randomised test: which items were
    published and completed, and which lease on each account is live."""

    def __init__(self, jobs: dict[str, list[tuple[int, str, str, str]]]) -> None:
        self.jobs = jobs
        self.published: dict[tuple[str, str], str] = {}  # (job, key) -> user id
        self.completed: set[tuple[str, str]] = set()
        self.live: dict[str, Lease] = {}  # user id -> its live lease
        self.expired: set[str] = set()  # user ids whose lease expired and was not reaped yet
        self.fences: dict[str, int] = {}
        self.held: dict[str, list[Lease]] = {}  # worker -> the leases it believes it holds

    def queued(self, user_id: str) -> set[tuple[str, str]]:
        return {item for item, uid in self.published.items() if uid == user_id} - self.completed


async def check(store: FleetStore, model: FleetModel, users: list[str]) -> None:
    """Every published item is either in the results once or still queued once, and the
    accounts waiting are exactly those with queued items and no lease."""
    results = [
        (job, json.loads(text)["key"])
        for job in model.jobs
        for text in await all_results(store, job)
    ]
    assert len(results) == len(set(results))
    assert set(results) == model.completed
    for uid in users:
        queued = [(job, key) for job, key, _ in await store.queued(uid)]
        assert len(queued) == len(set(queued))
        assert set(queued) == model.queued(uid)
    expected = {
        u for u in users if model.queued(u) and u not in model.live and u not in model.expired
    }
    waiting = await store.waiting()
    assert waiting.available == len(expected)
    assert waiting.leased == len(model.live) + len(model.expired)


async def step(rng: random.Random, stores: list[FleetStore], model: FleetModel) -> None:
    """One random action of one worker (or the driver), checked against the model."""
    w = rng.randrange(len(stores))
    store, worker = stores[w], f"w{w}"
    held = model.held.setdefault(worker, [])
    action = rng.choice(["publish", "claim", "claim", "complete", "complete", "complete",
                         "renew", "release", "expire", "reap"])  # fmt: skip
    if action == "publish":
        job = rng.choice(list(model.jobs))
        rows = model.jobs[job][: rng.randrange(len(model.jobs[job]) + 1)]
        await store.publish(job, rows, batch=rng.randint(1, 5))
        for _, uid, key, _ in rows:
            model.published[(job, key)] = uid
    elif action == "claim":
        for lease in await store.claim(worker, n=rng.randint(1, 3), ttl=60):
            assert lease.user_id not in model.live and lease.user_id not in model.expired
            assert lease.fence > model.fences.get(lease.user_id, 0)
            assert model.queued(lease.user_id)
            model.fences[lease.user_id] = lease.fence
            model.live[lease.user_id] = lease
            # a worker keeps one lease per account: the new one replaces one it lost unawares
            held[:] = [mine for mine in held if mine.user_id != lease.user_id] + [lease]
    elif action == "reap":
        assert set(await store.reap(quiet=rng.choice([0.0, 60.0]))) == model.expired
        model.expired.clear()
    elif held:
        await holder_step(action, rng, store, held, model)


async def holder_step(
    action: str, rng: random.Random, store: FleetStore, held: list[Lease], model: FleetModel
) -> None:
    """One action of a worker with leases (some maybe lost without its knowing)."""
    lease = rng.choice(held)
    live = model.live.get(lease.user_id) == lease
    if action == "complete":
        mine = sorted(k for k, uid in model.published.items() if uid == lease.user_id)
        done = rng.sample(mine, min(len(mine), rng.randint(1, 3)))
        accepted = await store.complete_many(lease, [(j, k, line(j, k)) for j, k in done])
        assert accepted == live
        if accepted:
            model.completed.update(done)
    elif action == "renew":
        lost = await store.renew(held, ttl=60)
        assert lost == {mine.user_id for mine in held if model.live.get(mine.user_id) != mine}
        held[:] = [mine for mine in held if mine.user_id not in lost]
    elif action == "release":
        held.remove(lease)
        await store.release(lease)
        if live:
            del model.live[lease.user_id]
    elif action == "expire" and live:
        await expire(store, lease)
        del model.live[lease.user_id]
        model.expired.add(lease.user_id)


@pytest.mark.parametrize("seed", FLEET_SEEDS)
async def test_random_interleavings_keep_every_item_exactly_once(
    unsaved_server: RedisServer, seed: int
) -> None:
    """Three workers and a driver interleaving publish, claim, renew, expiry, reaping, complete
    and release: no account ever has two live leases, only the current fence completes, and in
    the end every item of every job is in the results exactly once."""
    rng = random.Random(seed)
    users = [f"u{n}" for n in range(rng.randint(1, 5))]
    jobs = {
        job: [
            item(n, rng.choice(users), job)
            for n in sorted(rng.sample(range(60), rng.randint(1, 12)))
        ]
        for job in ("spring", "autumn")
    }
    model = FleetModel(jobs)
    async with stores_on(unsaved_server, f"bulkrt-seed-{seed}:")(3) as workers:
        for job in jobs:
            assert await workers[0].register_job(meta(job, total=len(jobs[job])))
        for _ in range(60):
            await step(rng, workers, model)
            await check(workers[0], model, users)

        finisher = workers[0]
        for job, rows in jobs.items():
            await finisher.publish(job, rows)
            model.published.update({(job, key): uid for _, uid, key, _ in rows})
            await finisher.finish_publishing(job)
        for lease in [lease for held in model.held.values() for lease in held]:
            await finisher.release(lease)
        model.live.clear()
        await finisher.reap(quiet=0)
        model.expired.clear()
        while leases := await finisher.claim("finisher", n=10, ttl=60):
            for lease in leases:
                todo = [(j, k, line(j, k)) for j, k, _ in await finisher.queued(lease.user_id)]
                assert await finisher.complete_many(lease, todo)
                model.completed.update((j, k) for j, k, _ in todo)
                await finisher.release(lease)
        await check(finisher, model, users)
        assert model.completed == {
            (job, key) for job, rows in jobs.items() for _, _, key, _ in rows
        }
        for job, rows in jobs.items():
            status = await finisher.job_meta(job)
            assert status is not None
            assert (status.published, status.done, status.queued) == (True, len(rows), 0)


async def test_queued_many_reads_several_accounts_as_queued_does(stores: Stores) -> None:
    """One round trip for several accounts gives each account's queue as `queued` does, in the
    order asked, an account with nothing queued included."""
    async with stores(1) as (store,):
        assert await store.register_job(meta("spring", total=3))
        await store.publish("spring", [item(0, "101"), item(1, "202"), item(2, "101")])
        many = await store.queued_many(["202", "303", "101"])
        assert many == [await store.queued("202"), [], await store.queued("101")]
        assert [key for _, key, _ in many[2]] == ["spring-0", "spring-2"]


async def test_a_redis_without_the_scripts_loads_each_once_for_a_whole_batch(
    stores: Stores,
) -> None:
    """A batch of script calls sent to a Redis that lacks the script (fresh, or restarted) is
    answered whole after one load of the script and one more pipeline, not one round trip per
    call: the server counts one SCRIPT LOAD and no EVAL."""
    users = [str(100 + n) for n in range(40)]
    async with stores(1) as (store,):
        assert await store.register_job(meta("spring", total=len(users)))
        await store.publish("spring", [item(n, uid) for n, uid in enumerate(users)])
        await store.redis.script_flush()
        await store.redis.config_resetstat()
        many = await store.queued_many(users)
        calls = await store.redis.info("commandstats")
    assert [[key for _, key, _ in rows] for rows in many] == [
        [f"spring-{n}"] for n in range(len(users))
    ]
    stats = {_name(name): int(stat["calls"]) for name, stat in calls.items()}
    assert stats.get("script|load") == 1
    assert "eval" not in stats
    assert stats.get("evalsha") == 2 * len(users)  # refused once each, then run


def _name(stat: str | bytes) -> str:
    """A ``commandstats`` entry's command (``cmdstat_script|load`` -> ``script|load``)."""
    text = stat.decode() if isinstance(stat, bytes) else stat
    return text.removeprefix("cmdstat_")
