"""The multi-machine mode's Redis connection and shared rate-limit budget, against a real
``redis-server``: the connection waits out a killed and restarted server and says so once, with
its password masked; the budget admits exactly ``limit`` per window across OS processes, a 429
learned by one process holds back all of them, a lapsed lease is refused, and a seeded mix of
acquires and learns never lets a trailing window hold more than ``limit`` admissions on Redis's
own clock."""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from redis.asyncio import Redis
from structlog.testing import capture_logs

from bulkrt.core.items import Action
from bulkrt.errors import RedisUnavailable
from bulkrt.fleet.budget import Refusal, SharedBudget
from bulkrt.fleet.connection import address_of, connect, patiently
from tests.redis_server import RedisServer
from tests.test_run import run_cli

PREFIX = "bulkrt:"
#: seeds of the randomised budget test: fifty in CI; ``BULKRT_FLEET_SEEDS=500`` runs more
FLEET_SEEDS = int(os.environ.get("BULKRT_FLEET_SEEDS", "50"))

#: one OS process of the cross-process tests (forked from the test's, `tests.test_run.CliChild`:
#: its own Redis connection and event loop): connects, says it is ready, waits for the go, then
#: asks for ``count`` admissions at once and prints each answer as a JSON line
_ACQUIRER = """
import asyncio, json, sys
from bulkrt.core.items import Action
from bulkrt.fleet.budget import SharedBudget
from bulkrt.fleet.connection import connect

async def main(url, uid, limit, window, count, go):
    redis = await connect(url)
    budget = SharedBudget(redis, "bulkrt:")
    await redis.incr(go + ":ready")
    await redis.blpop([go], timeout=60)
    answers = await asyncio.gather(*(
        budget.acquire(uid, Action.RETWEET, limit=limit, window=window, lease=None)
        for _ in range(count)
    ))
    for a in answers:
        print(json.dumps([a.ok, a.at, a.retry_after, a.reason]))
    await redis.aclose()

url, uid, limit, window, count, go = sys.argv[1:]
asyncio.run(main(url, uid, int(limit), float(window), int(count), go))
"""


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


async def acquire_in_processes(
    redis: Redis,
    url: str,
    *,
    processes: int,
    each: int,
    limit: int,
    window: float,
    go: str,
    when_ready: Callable[[], Awaitable[object]] | None = None,
) -> list[list[Any]]:
    """``processes`` OS processes ask for ``each`` admissions at once, all started together
    (after ``when_ready``, once every one is connected and waiting); returns every answer as
    ``[ok, at, retry_after, reason]``."""
    args = [sys.executable, "-c", _ACQUIRER, url, "42", str(limit), str(window), str(each), go]
    answers: list[list[Any]] = []

    async def one() -> None:
        done = await run_cli(args)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        answers.extend(json.loads(line) for line in done.stdout.decode().splitlines())

    async with anyio.create_task_group() as group:
        for _ in range(processes):
            group.start_soon(one)
        with anyio.fail_after(60):
            # the count is kept by other processes, in Redis: no event to wait on
            while int(await redis.get(go + ":ready") or 0) < processes:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        if when_ready is not None:
            await when_ready()
        await redis.rpush(go, *["go"] * processes)
    assert len(answers) == processes * each
    return answers


async def redis_now(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return float(seconds) + micros / 1e6


class TestConnection:
    async def test_a_url_that_is_not_redis_is_refused(self) -> None:
        """An ``http://`` URL is refused with a message naming it, before anything is sent."""
        with pytest.raises(RedisUnavailable, match="not a redis:// or rediss:// URL"):
            await connect("http://127.0.0.1:6379")

    async def test_a_wrong_password_is_refused_and_never_shown(self, tmp_path: Path) -> None:
        """A server that wants a password refuses a wrong one: `RedisUnavailable`, whose message
        masks the password given; with the right one it answers, and its address as logs show
        it holds no password."""
        server = RedisServer(tmp_path, password="right-password-123").start()
        try:
            url = f"redis://:wrong-password-456@127.0.0.1:{server.port}/0"
            with pytest.raises(RedisUnavailable) as refused:
                await connect(url)
            assert "wrong-password-456" not in str(refused.value)
            assert f"redis://:***@127.0.0.1:{server.port}/0" in str(refused.value)
            client = await connect(server.url)
            assert await client.ping()
            assert address_of(client) == f"redis://127.0.0.1:{server.port}/0"
            await client.aclose()
        finally:
            server.stop()

    async def test_operations_wait_out_a_killed_and_restarted_server(self, tmp_path: Path) -> None:
        """Redis is SIGKILLed under two waiting operations and started again 0.7 s later: both
        complete on the restarted server (which kept what its append-only file held), and the
        log holds one ``redis_unreachable`` naming what waits and one ``redis_back``, neither
        showing the password."""
        server = RedisServer(tmp_path, password="secret-password-789").start()
        client = await connect(server.url)
        log = structlog.get_logger()
        try:
            await client.set("kept", "1")
            server.kill()
            results: list[int] = []

            async def count() -> None:
                results.append(
                    await patiently(
                        lambda: client.incr("kept"), what="counting", log=log, url=server.url
                    )
                )

            with capture_logs() as logs:
                async with anyio.create_task_group() as group:
                    group.start_soon(count)
                    group.start_soon(count)
                    await anyio.sleep(0.7)
                    await anyio.to_thread.run_sync(server.start)
            assert sorted(results) == [2, 3]
            events = [entry["event"] for entry in logs]
            assert events == ["redis_unreachable", "redis_back"]
            assert logs[0]["waiting"] == "counting"
            assert logs[0]["redis"] == f"redis://:***@127.0.0.1:{server.port}/0"
            assert "secret-password-789" not in json.dumps(logs, default=str)
        finally:
            await client.aclose()
            server.stop()

    async def test_only_cancelling_stops_the_wait(self, redis_server: RedisServer) -> None:
        """With Redis down for good, a patient operation is still waiting after 1.5 s and ends
        only when its caller cancels it; no ``redis_back`` is logged."""
        client = await connect(redis_server.url)
        redis_server.kill()
        log = structlog.get_logger()
        with capture_logs() as logs:
            with anyio.move_on_after(1.5) as scope:
                await patiently(client.ping, what="a ping", log=log, url=redis_server.url)
            assert scope.cancelled_caught
        await client.aclose()
        assert [entry["event"] for entry in logs] == ["redis_unreachable"]


class TestAcrossProcesses:
    async def test_four_processes_admit_exactly_the_limit_per_window(
        self, redis: Redis, redis_server: RedisServer
    ) -> None:
        """Four processes ask for 200 admissions each at once on one account (limit 25 per 1.5 s):
        the batch's first window admits exactly 25, and no window more; every refusal says when
        room frees. Once the window has passed, the next such batch does the same."""
        limit, window = 25, 1.5
        window_ms = round(window * 1000)
        admitted: list[int] = []
        for go in ("go1", "go2"):
            if admitted:  # until the last admission has left the window, on Redis's clock
                left = (admitted[-1] + window_ms) / 1000 - await redis_now(redis) + 0.01
                await anyio.sleep(max(0.0, left))  # a loaded machine may be past it already
            batch = await acquire_in_processes(
                redis, redis_server.url, processes=4, each=200, limit=limit, window=window, go=go
            )
            asked = sorted(round(at * 1000) for _, at, _, _ in batch)
            ours = sorted(round(at * 1000) for ok, at, _, _ in batch if ok)
            # a loaded machine may spread the batch over more than one window: the first
            # window of it is the one that must fill, and it had far more than 25 askers
            assert sum(1 for at in asked if at < asked[0] + window_ms) > limit
            assert sum(1 for at in ours if at < asked[0] + window_ms) == limit
            refused = [answer for answer in batch if not answer[0]]
            assert {reason for *_, reason in refused} == {"budget"}
            assert all(0 < retry_after <= window for _, _, retry_after, _ in refused)
            admitted += ours
        assert overfull_window(admitted, limit, window_ms) is None

    async def test_a_429_learned_by_one_process_holds_back_every_process(
        self, redis: Redis, redis_server: RedisServer
    ) -> None:
        """Once three other processes are connected, this process learns a 429 whose reset is
        4 s away (room for a loaded machine): the three, asking at once, are all refused as
        blocked until about then;
        after the reset they are admitted."""
        budget = SharedBudget(redis, PREFIX)
        deadlines: list[tuple[float, float | None]] = []

        async def learn_429() -> None:
            reset = await redis_now(redis) + 4
            until = await budget.learn(
                "42", Action.RETWEET, status=429, limit=50, remaining=0, reset=reset,
                window=900, park=60,
            )  # fmt: skip
            deadlines.append((reset, until))

        held = await acquire_in_processes(
            redis, redis_server.url, processes=3, each=5, limit=50, window=900, go="go1",
            when_ready=learn_429,
        )  # fmt: skip
        [(reset, until)] = deadlines
        assert until == pytest.approx(reset, abs=0.002)
        assert {(ok, reason) for ok, _, _, reason in held} == {(False, "blocked")}
        assert all(0 < retry_after <= 4 for _, _, retry_after, _ in held)
        assert all(
            at + retry_after == pytest.approx(reset, abs=0.002) for _, at, retry_after, _ in held
        )
        await anyio.sleep(max(retry_after for _, _, retry_after, _ in held) + 0.05)
        later = await acquire_in_processes(
            redis, redis_server.url, processes=3, each=5, limit=50, window=900, go="go2"
        )
        assert all(ok for ok, *_ in later)


class TestLearning:
    async def test_a_later_deadline_is_never_shortened(self, redis: Redis) -> None:
        """A 429 resetting in 60 s, then one resetting in 5 s: the endpoint stays blocked for
        about 60 s; the other endpoint is not blocked at all."""
        budget = SharedBudget(redis, PREFIX)
        now = await redis_now(redis)
        for reset in (now + 60, now + 5):
            await budget.learn(
                "7", Action.UNDO, status=429, limit=50, remaining=0, reset=reset, window=900, park=1
            )
        held = await budget.acquire("7", Action.UNDO, limit=50, window=900, lease=None)
        assert (held.ok, held.reason) == (False, Refusal.BLOCKED)
        assert 59 < held.retry_after <= 60
        other = await budget.acquire("7", Action.RETWEET, limit=50, window=900, lease=None)
        assert other.ok

    async def test_a_429_the_headers_do_not_explain_parks_the_endpoint(self, redis: Redis) -> None:
        """A 429 while the headers say 10 remain (a cap no header shows) blocks for the park
        given, 30 s; a 429 with no headers at all does the same."""
        budget = SharedBudget(redis, PREFIX)
        now = await redis_now(redis)
        await budget.learn(
            "8", Action.RETWEET, status=429, limit=50, remaining=10, reset=now + 600,
            window=900, park=30,
        )  # fmt: skip
        await budget.learn(
            "9", Action.RETWEET, status=429, limit=None, remaining=None, reset=None,
            window=900, park=30,
        )  # fmt: skip
        for uid in ("8", "9"):
            held = await budget.acquire(uid, Action.RETWEET, limit=50, window=900, lease=None)
            assert held.reason is Refusal.BLOCKED and 29 < held.retry_after <= 30

    async def test_fewer_remaining_than_the_log_allows_tightens_the_log(self, redis: Redis) -> None:
        """Two admitted of 50, then an answer saying only 3 remain (something else spent 45):
        exactly 3 more are admitted, the 4th refused for the budget until the server's reset."""
        budget = SharedBudget(redis, PREFIX)
        for _ in range(2):
            assert (await budget.acquire("5", Action.RETWEET, limit=50, window=900, lease=None)).ok
        reset = await redis_now(redis) + 300
        await budget.learn(
            "5", Action.RETWEET, status=200, limit=50, remaining=3, reset=reset, window=900,
            park=60,
        )  # fmt: skip
        answers = [
            await budget.acquire("5", Action.RETWEET, limit=50, window=900, lease=None)
            for _ in range(4)
        ]
        assert [a.ok for a in answers] == [True, True, True, False]
        assert answers[3].reason is Refusal.BUDGET
        assert answers[3].retry_after == pytest.approx(reset - answers[3].at, abs=0.01)

    async def test_no_requests_remaining_holds_back_every_other_holder_until_the_reset(
        self, redis: Redis
    ) -> None:
        """A 200 saying 0 remain, resetting in 20 s, learnt by the lease ``w1|1``: another holder
        (``w2|2``, or one without a lease) is held back until the reset; the learner is not
        (its scheduler paces on that reset), though the log stays as full as the server says."""
        budget = SharedBudget(redis, PREFIX)
        reset = await redis_now(redis) + 20
        await budget.learn(
            "6", Action.RETWEET, status=200, limit=50, remaining=0, reset=reset, window=900,
            park=60, lease=("w1", 1),
        )  # fmt: skip
        for other in (("w2", 2), None):
            await redis.set(f"{PREFIX}u:{{6}}:lease", "w2|2")
            held = await budget.acquire("6", Action.RETWEET, limit=50, window=900, lease=other)
            assert held.reason is Refusal.BLOCKED
            assert held.retry_after == pytest.approx(reset - held.at, abs=0.01)
        await redis.set(f"{PREFIX}u:{{6}}:lease", "w1|1")
        own = await budget.acquire("6", Action.RETWEET, limit=50, window=900, lease=("w1", 1))
        assert own.reason is Refusal.BUDGET  # not blocked: the log (placeholders) decides


class TestLease:
    async def test_only_the_current_fence_is_admitted(self, redis: Redis) -> None:
        """With the lease held as ``w1|2``: fence 1 of the same worker, and another worker, are
        refused for the lease and spend nothing; fence 2 is admitted; with no lease key at all,
        a leased admission is refused."""
        budget = SharedBudget(redis, PREFIX)
        await redis.set(f"{PREFIX}u:{{3}}:lease", "w1|2")
        for stale in (("w1", 1), ("w2", 2)):
            refused = await budget.acquire("3", Action.RETWEET, limit=1, window=900, lease=stale)
            assert (refused.ok, refused.reason) == (False, Refusal.LEASE)
        held = await budget.acquire("3", Action.RETWEET, limit=1, window=900, lease=("w1", 2))
        assert held.ok
        await redis.delete(f"{PREFIX}u:{{3}}:lease")
        gone = await budget.acquire("3", Action.RETWEET, limit=1, window=900, lease=("w1", 2))
        assert gone.reason is Refusal.LEASE


def overfull_window(admitted: list[int], limit: int, window_ms: int) -> int | None:
    """The first admission (Redis ms) whose trailing window holds more than ``limit``, or None."""
    admitted = sorted(admitted)
    for n, at in enumerate(admitted):
        if n >= limit and admitted[n - limit] > at - window_ms:
            return at
    return None


async def random_mix(
    seed: int, clients: list[SharedBudget], redis: Redis, admissions: list[int]
) -> None:
    """Several clients interleave acquires and learns (200s with any remaining count, 429s with
    and without a reset) on one account for a seeded mix; no trailing window ever holds more
    than ``limit`` admissions. Adds the number of admissions to ``admissions``."""
    chance = random.Random(seed)
    uid = str(1000 + seed)
    limit = chance.randint(1, 6)
    window_ms = chance.randint(40, 200)
    window = window_ms / 1000
    admitted: list[int] = []

    async def client(budget: SharedBudget, rng: random.Random) -> None:
        for _ in range(rng.randint(10, 30)):
            if rng.random() < 0.8:
                answer = await budget.acquire(
                    uid, Action.RETWEET, limit=limit, window=window, lease=None
                )
                if answer.ok:
                    admitted.append(round(answer.at * 1000))
            else:
                now = await redis_now(redis)
                await budget.learn(
                    uid,
                    Action.RETWEET,
                    status=rng.choice([200, 200, 429]),
                    limit=rng.choice([None, limit, limit + 2]),
                    remaining=rng.choice([None, 0, rng.randint(0, limit + 2)]),
                    reset=rng.choice([None, now + rng.uniform(-0.05, window * 1.5)]),
                    window=window,
                    park=rng.uniform(0.001, window),
                )
            await anyio.sleep(rng.uniform(0, window / 4))

    async with anyio.create_task_group() as group:
        for budget in clients:
            group.start_soon(client, budget, random.Random(chance.random()))
    bad = overfull_window(admitted, limit, window_ms)
    assert bad is None, f"seed {seed}: more than {limit} admissions in the window ending {bad}"
    admissions.append(len(admitted))


async def test_no_trailing_window_ever_holds_more_than_the_limit(
    redis_server: RedisServer,
) -> None:
    """For every seed (50 in CI; ``BULKRT_FLEET_SEEDS`` for more), three clients on their own
    connections interleave acquires and learns on one account: no trailing window of the
    endpoint's length holds more than ``limit`` admissions, on the times Redis's own clock
    gave them."""
    connections = [await connect(redis_server.url) for _ in range(3)]
    clients = [SharedBudget(c, PREFIX) for c in connections]
    admissions: list[int] = []
    try:
        seeds = list(range(FLEET_SEEDS))
        for start in range(0, len(seeds), 10):
            async with anyio.create_task_group() as group:
                for seed in seeds[start : start + 10]:
                    group.start_soon(random_mix, seed, clients, connections[0], admissions)
    finally:
        for c in connections:
            await c.aclose()
    assert len(admissions) == FLEET_SEEDS
    # most mixes admit something and fill windows (else the check above would be vacuous)
    assert sum(1 for n in admissions if n > 0) > FLEET_SEEDS // 2


def test_the_checker_finds_an_overfull_window() -> None:
    """The invariant's checker is not vacuous: three admissions within 100 ms break a limit of
    2 per 100 ms, and pass once the third is 100 ms after the first."""
    assert overfull_window([0, 50, 99], 2, 100) == 99
    assert overfull_window([0, 50, 100], 2, 100) is None
