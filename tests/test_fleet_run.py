"""The multi-machine mode end to end: the real CLI (`bulkrt run --redis`, `bulkrt worker`) in
subprocesses, a real `redis-server`, the sandbox on a real socket with short windows. Every
assertion is on what an operator sees: exit codes, the ledger, the sandbox's recorded state."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from tests.redis_server import RedisServer
from tests.test_run import ACCOUNTS, MakeWorld, World, eventually, rows

#: short enough that a killed worker's accounts come back within a few seconds
FLEET_OPTIONS = ("--lease-seconds", "2", "--read-timeout", "2", "--connect-timeout", "1")


def driver_args(world: World, job: Path, redis: RedisServer, *extra: str) -> list[str]:
    """`bulkrt run --redis` against the world's sandbox."""
    return world.run_args(job, "--redis", redis.url, *FLEET_OPTIONS, *extra)


def worker_args(world: World, redis: RedisServer, n: int) -> list[str]:
    """`bulkrt worker` number ``n``, with its own copy of the accounts file (its own machine)."""
    accounts = world.dir / f"worker{n}-accounts.json"
    if not accounts.exists():
        shutil.copy(world.accounts, accounts)
        accounts.chmod(0o600)
    config = world.sandbox.config
    return [
        sys.executable, "-m", "bulkrt", "worker", "--redis", redis.url,
        "--accounts", str(accounts), "--api-base", world.sandbox.url,
        "--limit", str(config.limit), "--window", str(config.window), *FLEET_OPTIONS,
    ]  # fmt: skip


@asynccontextmanager
async def workers(world: World, redis: RedisServer, count: int) -> AsyncIterator[list[Process]]:
    """``count`` worker processes, stopped (SIGTERM, then killed) when the block ends."""
    processes = [await anyio.open_process(worker_args(world, redis, n)) for n in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(30):
            for process in processes:
                await process.wait()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


def assert_campaign_done(world: World, accounts: list[str], per_account: int) -> None:
    """Every item once in the ledger, ok, and every retweet in the sandbox."""
    lines = world.lines()
    keys = Counter(line["key"] for line in lines)
    assert len(keys) == len(accounts) * per_account
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    assert {line["status"] for line in lines} == {"ok"}
    for account in accounts:
        assert world.retweets(account) == {str(100 + n) for n in range(per_account)}


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    return redis_server


class TestFleet:
    async def test_a_driver_and_two_workers_share_the_job_within_every_window(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """Six accounts x 12 retweets at 5 per 2 s, run by a driver and two workers: exit 0, every
        item once in the ledger and ok, no 429 (the sandbox answers one to any request over a
        window's limit), and more than one process did the work."""
        world = await make_world()
        job = world.job(rows(ACCOUNTS, 12))
        async with workers(world, redis, 2):
            done = await anyio.run_process(driver_args(world, job, redis), check=False)
        assert done.returncode == 0, done.stderr.decode()
        assert "72 ok, 0 rejected, 0 error" in done.stdout.decode()
        assert_campaign_done(world, ACCOUNTS, 12)
        assert "429" not in world.sandbox.state.stats()["by_status"]
        assert len({line["run"] for line in world.lines()}) >= 2

    async def test_a_worker_killed_mid_run_loses_nothing(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """SIGKILL to a worker mid-run: its accounts are taken over after the lease and quiet
        period, every item ends once in the ledger, and the extra requests are no more than
        the killed worker could have had in flight."""
        world = await make_world()
        job = world.job(rows(ACCOUNTS, 8))
        async with (
            workers(world, redis, 2) as procs,
            await anyio.open_process(driver_args(world, job, redis)) as driver,
        ):
            await eventually(lambda: len(world.lines()) >= 6)
            procs[0].kill()
            with anyio.fail_after(90):
                await driver.wait()
        assert driver.returncode == 0
        assert_campaign_done(world, ACCOUNTS, 8)
        posts = world.sandbox.state.stats()["requests"]
        assert posts <= 48 + 32  # the killed worker's concurrency bounds what it had in flight
        assert "429" not in world.sandbox.state.stats()["by_status"]

    async def test_a_redis_restart_mid_run_loses_nothing(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """Redis killed and restarted (append-only file) mid-run: the processes say that they
        wait for it, wait, and go on; every item ends once in the ledger, ok."""
        world = await make_world()
        job = world.job(rows(ACCOUNTS, 8))
        async with (
            workers(world, redis, 1),
            await anyio.open_process(driver_args(world, job, redis)) as driver,
        ):
            await eventually(lambda: len(world.lines()) >= 6)
            await anyio.to_thread.run_sync(lambda: redis.restart(pause=1.0))
            assert driver.stderr is not None
            with anyio.fail_after(90):
                err = b"".join([chunk async for chunk in driver.stderr]).decode()
                await driver.wait()
        assert driver.returncode == 0, err
        assert "redis_unreachable" in err and "redis_back" in err  # said once each, and why
        assert_campaign_done(world, ACCOUNTS, 8)

    async def test_retweet_and_undo_of_one_tweet_keep_their_order_across_workers(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """Each account retweets and undoes some Tweets, and retweets, undoes and retweets others,
        on three processes with one killed mid-run: every account ends with exactly the Tweets
        whose last item is a retweet (an undo that overtook its retweet, or a retweet that
        overtook its undo, would leave another state), and every item is in the ledger once."""
        world = await make_world(limit=4)
        undone, kept = ["700", "701", "702"], ["710", "711", "712"]
        job_rows = [
            (account, tweet, action)
            for actions, tweets in (
                (("retweet", "undo"), undone),
                (("retweet", "undo", "retweet"), kept),
            )
            for action in actions
            for tweet in tweets
            for account in ACCOUNTS
        ]
        job = world.job(job_rows)
        async with (
            workers(world, redis, 2) as procs,
            await anyio.open_process(driver_args(world, job, redis)) as driver,
        ):
            await eventually(lambda: len(world.lines()) >= 10)
            procs[1].kill()
            with anyio.fail_after(90):
                await driver.wait()
        assert driver.returncode == 0
        for account in ACCOUNTS:
            assert world.retweets(account) == set(kept)
        keys = Counter(line["key"] for line in world.lines())
        assert len(keys) == len(job_rows) and max(keys.values()) == 1

    async def test_two_jobs_on_the_same_accounts_never_overspend_a_window(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """Two drivers (two ledgers) on the same accounts at once, with a worker: both end with
        every item ok, and the sandbox answered no 429 (no window went over its limit)."""
        world = await make_world(limit=4)
        first = world.job(rows(ACCOUNTS, 6), name="first.csv")
        second = world.job(rows(ACCOUNTS, 6, first=200), name="second.csv")
        other = world.dir / "second.jsonl"
        args_one = driver_args(world, first, redis)
        args_two = [
            a if a != str(world.ledger) else str(other) for a in driver_args(world, second, redis)
        ]
        async with workers(world, redis, 1), anyio.create_task_group() as both:
            results: list[int] = []

            async def run(args: list[str]) -> None:
                done = await anyio.run_process(args, check=False)
                results.append(done.returncode)

            both.start_soon(run, args_one)
            both.start_soon(run, args_two)
        assert results == [0, 0]
        assert "429" not in world.sandbox.state.stats()["by_status"]
        for account in ACCOUNTS:
            assert len(world.retweets(account)) == 12

    async def test_a_driver_killed_and_started_again_writes_every_result_once(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """The driver SIGKILLed mid-run while a worker goes on: its results wait in Redis; the
        same command again copies them into the ledger, finishes the job, and no item has two
        lines."""
        world = await make_world()
        job = world.job(rows(ACCOUNTS, 6))
        args = driver_args(world, job, redis)
        async with workers(world, redis, 1):
            async with await anyio.open_process(args) as driver:
                await eventually(lambda: len(world.lines()) >= 4)
                driver.kill()
                await driver.wait()
            again = await anyio.run_process(args, check=False)
        assert again.returncode == 0, again.stderr.decode()
        assert_campaign_done(world, ACCOUNTS, 6)

    async def test_tokens_rotated_by_any_worker_keep_every_account_working(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """OAuth 2.0 tokens that expire every 2 s, refreshed by whichever of three processes holds
        the account (each with its own accounts file): every item ends ok (no account paused by a
        refresh token another process spent), and a later run from the driver's machine still
        works with the tokens Redis holds."""
        world = await make_world(token_ttl=2.0)
        job = world.job(rows(ACCOUNTS, 10))
        async with workers(world, redis, 2):
            done = await anyio.run_process(driver_args(world, job, redis), check=False)
        assert done.returncode == 0, done.stderr.decode()
        assert_campaign_done(world, ACCOUNTS, 10)
        assert world.sandbox.state.stats()["refreshes"] >= 2
        later = world.job(rows(ACCOUNTS, 1, first=300), name="later.csv")
        again = await anyio.run_process(driver_args(world, later, redis), check=False)
        assert again.returncode == 0, again.stderr.decode()
        assert all("300" in world.retweets(account) for account in ACCOUNTS)

    async def test_status_shows_the_job_and_its_workers_live(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """`bulkrt status --redis` during a run lists the job (done out of total, its ledger) and
        the workers with the accounts they hold; once the job is done it is gone from Redis, and
        workers that stopped are gone from the list."""
        world = await make_world(limit=1)
        job = world.job(rows(ACCOUNTS[:2], 4))
        status = [sys.executable, "-m", "bulkrt", "status", "--redis", redis.url, "--json"]
        async with (
            workers(world, redis, 1),
            await anyio.open_process(driver_args(world, job, redis)) as driver,
        ):
            await eventually(lambda: len(world.lines()) >= 1)
            shown = json.loads((await anyio.run_process(status)).stdout)
            with anyio.fail_after(60):
                await driver.wait()
        (listed,) = shown["jobs"]
        assert (listed["total"], listed["ledger"]) == (8, str(world.ledger.resolve()))
        assert 1 <= listed["done"] < 8
        assert len(shown["workers"]) == 2 and sum(w["accounts_held"] for w in shown["workers"]) == 2
        text = (await anyio.run_process(status[:-1])).stdout.decode()
        assert "no job is running" in text and "0 worker(s)" in text  # stopped workers leave
        assert driver.returncode == 0
