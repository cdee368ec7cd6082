"""The multi-machine mode end to end: the real CLI (`bulkrt run --redis`, `bulkrt worker`) in
subprocesses, a real `redis-server`, the sandbox on a real socket with short windows. Every
assertion is on what an operator sees: exit codes, the ledger, the sandbox's recorded state."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from bulkrt.fleet.connection import connect
from bulkrt.sandbox import FaultKind
from tests.redis_server import RedisServer
from tests.test_exactness import readable_lines
from tests.test_invariants import CONCURRENCY, TWEETS, Chaos, assert_restored, roll_back
from tests.test_run import ACCOUNTS, CliChild, MakeWorld, World, eventually, fork_cli, rows, run_cli

#: seeded fleets of the invariant test (`BULKRT_FLEET_SEEDS=20` runs more by hand)
FLEET_SEEDS = int(os.environ.get("BULKRT_FLEET_CHAOS_SEEDS", "1"))
#: short enough that a killed worker's accounts come back within a few seconds
FLEET_OPTIONS = ("--lease-seconds", "2", "--read-timeout", "2", "--connect-timeout", "1")


def driver_args(world: World, job: Path, redis: RedisServer, *extra: str) -> list[str]:
    """`bulkrt run --redis` against the world's sandbox."""
    return world.run_args(job, "--redis", redis.url, *FLEET_OPTIONS, *extra)


async def leased_to(redis: RedisServer, pid: int) -> set[str]:
    """The user ids whose lease the worker of process ``pid`` holds (its name holds the pid)."""
    client = await connect(redis.url)
    try:
        held = set()
        async for key in client.scan_iter(match="bulkrt:u:*:lease"):
            if f"-{pid}-" in (await client.get(key) or ""):
                held.add(key.split("{", 1)[1].split("}", 1)[0])
        return held
    finally:
        await client.aclose()


def worker_args(world: World, redis: RedisServer, n: int, *extra: str) -> list[str]:
    """`bulkrt worker` number ``n``, with its own copy of the accounts file (its own machine)."""
    accounts = world.dir / f"worker{n}-accounts.json"
    if not accounts.exists():
        shutil.copy(world.accounts, accounts)
        accounts.chmod(0o600)
    config = world.sandbox.config
    return [
        sys.executable, "-m", "bulkrt", "worker", "--redis", redis.url,
        "--accounts", str(accounts), "--api-base", world.sandbox.url,
        "--limit", str(config.limit), "--window", str(config.window), *FLEET_OPTIONS, *extra,
    ]  # fmt: skip


@asynccontextmanager
async def workers(
    world: World, redis: RedisServer, count: int, *extra: str
) -> AsyncIterator[list[CliChild]]:
    """``count`` worker processes, up (each has beat once, so a driver started now shares the
    work with them) when the block starts, and stopped (SIGTERM, then killed) when it ends."""
    processes = [CliChild(worker_args(world, redis, n, *extra)) for n in range(count)]
    try:
        if count:
            client = await connect(redis.url)
            try:
                with anyio.fail_after(30):
                    while True:  # polling another process's state
                        if await client.zcard("bulkrt:workers") >= count:
                            break
                        await anyio.sleep(0.05)
            finally:
                await client.aclose()
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(30):
            for process in processes:
                await process.wait()
        for process in processes:
            process.close()


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
        """Six accounts x 12 retweets at 5 per 2 s, OAuth 2.0 tokens expiring every 2 s, run by a
        driver and two workers (each with its own accounts file): exit 0, every item once in
        the ledger and ok, nothing sent twice, no 429 (the sandbox answers one to any request
        over a window's limit), the tokens refreshed by whoever held the account without losing
        one, and each of the three processes (the driver's own worker too) did its fair share:
        the items of two accounts. `bulkrt status --redis` shows the job and
        the workers live; afterwards the job is gone from Redis, stopped workers leave the list,
        and a later run without Redis works from the driver's accounts file (brought up to date
        with the tokens other processes rotated)."""
        world = await make_world(token_ttl=2.0)
        job = world.job(rows(ACCOUNTS, 12))
        status = [sys.executable, "-m", "bulkrt", "status", "--redis", redis.url, "--json"]
        async with (
            workers(world, redis, 2),
            fork_cli(driver_args(world, job, redis)) as driver,
        ):
            await eventually(lambda: len(world.lines()) >= 1)
            shown = json.loads((await run_cli(status)).stdout)
            with anyio.fail_after(60):
                await driver.wait()
            out = driver.stdout().decode()
        assert driver.returncode == 0
        assert "72 ok, 0 rejected, 0 error" in out
        assert_campaign_done(world, ACCOUNTS, 12)
        stats = world.sandbox.state.stats()
        assert "429" not in stats["by_status"]
        assert stats["requests"] == 72  # nothing killed: nothing sent twice
        assert stats["refreshes"] >= 2
        shares: dict[str, set[str]] = {}
        for line in world.lines():
            shares.setdefault(line["run"], set()).add(line["account"])
        assert sorted(len(accounts) for accounts in shares.values()) == [2, 2, 2], shares
        (listed,) = shown["jobs"]
        assert (listed["total"], listed["ledger"]) == (72, str(world.ledger.resolve()))
        assert 1 <= listed["done"] < 72
        assert len(shown["workers"]) == 3
        assert sum(w["accounts_held"] for w in shown["workers"]) <= 6
        text = (await run_cli(status[:-1])).stdout.decode()
        assert "no job is running" in text and "0 worker(s)" in text
        later = world.job(rows(ACCOUNTS, 1, first=300), name="later.csv")
        again = await world.run(later)  # without Redis: the accounts file works on its own
        assert again.returncode == 0, again.stderr.decode()
        assert all("300" in world.retweets(account) for account in ACCOUNTS)

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
            fork_cli(driver_args(world, job, redis)) as driver,
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
            fork_cli(driver_args(world, job, redis)) as driver,
        ):
            await eventually(lambda: len(world.lines()) >= 6)
            await anyio.to_thread.run_sync(lambda: redis.restart(pause=1.0))
            with anyio.fail_after(90):
                await driver.wait()
            err = driver.stderr().decode()
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
        world = await make_world()
        undone, kept = ["700", "701"], ["710", "711"]
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
            fork_cli(driver_args(world, job, redis)) as driver,
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
                done = await run_cli(args)
                results.append(done.returncode)

            both.start_soon(run, args_one)
            both.start_soon(run, args_two)
        assert results == [0, 0]
        assert "429" not in world.sandbox.state.stats()["by_status"]
        assert world.sandbox.state.stats()["requests"] == 72, world.sandbox.state.stats()
        for account in ACCOUNTS:
            assert len(world.retweets(account)) == 12

    async def test_a_driver_killed_and_started_again_elsewhere_writes_every_result_once(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """The driver SIGKILLed mid-run while a worker goes on: its results wait in Redis. The
        same command, run with the ledger and its journal moved to another directory (another
        machine), finds the job through the journal, copies the results into the ledger,
        finishes the job, and no item has two lines; only the accounts the driver's own worker
        held (it works on its share too) saw requests again, no more than its concurrency."""
        world = await make_world()
        job = world.job(rows(ACCOUNTS, 6))
        async with workers(world, redis, 1):
            async with fork_cli(driver_args(world, job, redis)) as driver:
                await eventually(lambda: len(world.lines()) >= 4)
                driver.kill()
                await driver.wait()
            held = await leased_to(redis, driver.pid)  # its leases live on for their TTL
            elsewhere = world.dir / "elsewhere"
            elsewhere.mkdir()
            for name in ("ledger.jsonl", "ledger.jsonl.sent"):
                shutil.copy(world.dir / name, elsewhere / name)
            moved = World(world.sandbox, elsewhere, world.mode)
            shutil.copy(world.accounts, moved.accounts)
            again = await run_cli(driver_args(moved, job, redis))
        assert again.returncode == 0, again.stderr.decode()
        assert "job_lost" not in again.stderr.decode()
        assert_campaign_done(moved, ACCOUNTS, 6)
        stats = world.sandbox.state.stats()
        assert {user for user, n in stats["by_user"].items() if n > 6} <= held
        assert stats["requests"] <= 36 + 32  # the driver's concurrency bounds its unfinished

    async def test_a_job_lost_with_redis_data_is_sent_again_never_taken_for_the_owners(
        self, make_world: MakeWorld, redis: RedisServer
    ) -> None:
        """Redis's data lost mid-run (FLUSHALL): the driver exits 1, saying items were not run;
        the same command publishes again what the ledger has not finished, every item as
        possibly attempted, so a retweet the lost job made is found in place as of undecidable
        origin (preexisting: null), never the owner's, and rollback undoes it."""
        world = await make_world()
        job = world.job(rows(ACCOUNTS, 8))
        args = driver_args(world, job, redis)
        async with fork_cli(args) as driver:
            await eventually(lambda: len(world.lines()) >= 6)
            client = await connect(redis.url)
            await client.flushall()
            await client.aclose()
            with anyio.fail_after(60):
                await driver.wait()
            err = driver.stderr().decode()
        assert driver.returncode == 1, err
        assert "were not run" in err
        again = await run_cli(args)
        assert again.returncode == 0, again.stderr.decode()
        assert "job_lost" in again.stderr.decode()
        assert_campaign_done(world, ACCOUNTS, 8)
        assert not [line for line in world.lines() if line["preexisting"] is True]


async def fleet_until_done(
    world: World, job: str, redis: RedisServer, rng: random.Random, chaos: Chaos
) -> None:
    """Run ``job`` through a driver and 0-2 workers again and again, killing at random the
    driver, a worker (SIGKILL) or Redis (restarted from its append-only file), until no item is
    left in error."""
    args = driver_args(world, world.dir / job, redis, "--concurrency", str(CONCURRENCY))
    for _ in range(30):
        count = rng.randint(0, 2)
        async with workers(world, redis, count, "--concurrency", str(CONCURRENCY)) as procs:
            if chaos.kills < 3 and rng.random() < 0.6:
                async with fork_cli(args) as driver:
                    await anyio.sleep(rng.uniform(0.6, 2.5))
                    victim = rng.choice(["driver", "worker", "redis"])
                    if victim == "redis":
                        await anyio.to_thread.run_sync(lambda: redis.restart(pause=0.5))
                        chaos.damages.append("redis restart")
                    elif driver.returncode is None and (victim == "driver" or not procs):
                        driver.kill()
                        chaos.kills += 1
                    elif procs and procs[0].returncode is None:
                        procs[0].kill()
                        chaos.kills += 1
                    with anyio.fail_after(120):
                        await driver.wait()
                    code = driver.returncode
                    out = b""
            else:
                done = await run_cli(args)
                code, out = done.returncode, done.stdout
        if code == 0 or b" 0 error in this run" in out:
            return
    pytest.fail(f"{job} did not finish in 30 runs")


@pytest.mark.parametrize("seed", range(FLEET_SEEDS))
async def test_campaign_then_rollback_restores_every_account_across_a_fleet(
    make_world: MakeWorld, redis: RedisServer, seed: int
) -> None:
    """The embedded mode's invariant (tests/test_invariants.py), in the multi-machine mode:
    whatever faults a seeded campaign meets, and whatever is killed meanwhile (the driver, a
    worker, Redis), after resume, rollback and the rollback's run every account's retweets are
    as before, except pairs of undecidable origin, no more of them than attempts that may have
    been applied."""
    rng = random.Random(seed)
    rates = {kind: rng.choice((0.0, 0.02, 0.05)) for kind in FaultKind}
    accounts = ACCOUNTS[:4]
    world = await make_world(
        users=len(accounts), limit=50, window=1.0, fault_rates=rates, seed=seed, stall_seconds=1.0
    )
    for account in accounts:
        own = {tweet for tweet in TWEETS if rng.random() < 0.3}
        world.sandbox.state.retweets[world.user_id(account)].update(own)
    before = {account: world.retweets(account) for account in accounts}
    job_rows = [(a, t, "retweet") for a in accounts for t in TWEETS if rng.random() < 0.7]
    rng.shuffle(job_rows)
    world.job(job_rows)
    chaos = Chaos()
    await fleet_until_done(world, "campaign.csv", redis, rng, chaos)

    keys = Counter(line["key"] for line in readable_lines(world) if line["status"] == "ok")
    assert max(keys.values()) == 1  # no item finished twice
    undecided, undos = await roll_back(world, rates, seed)
    if undos:
        await fleet_until_done(world, "undo.csv", redis, rng, chaos)

    after = {account: world.retweets(account) for account in accounts}
    faults = world.sandbox.state.stats()["by_fault"]
    assert_restored(seed, chaos, before, after, faults, undecided)


async def test_rediss_with_a_password_works_and_the_password_never_shows(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    """A Redis served over TLS only (``rediss://``, its CA trusted through SSL_CERT_FILE) that
    requires a password: with it in the URL a driver and a worker run the job and no output shows
    it; with a wrong one, `run` exits 69 before sending anything, naming the Redis with the
    password masked."""
    secret = "s3cret-redis-password"
    server = RedisServer(tmp_path / "redis", password=secret, tls=True).start()
    env = {**os.environ, "SSL_CERT_FILE": str(server.ca_file)}
    try:
        world = await make_world()
        job = world.job(rows(ACCOUNTS[:2], 4))
        async with fork_cli(worker_args(world, server, 0), env=env) as worker:
            done = await run_cli(driver_args(world, job, server), env=env)
            worker.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await worker.wait()
        assert done.returncode == 0, done.stderr.decode()
        assert worker.returncode == 143  # it connected and worked until stopped (69 otherwise)
        assert server.url.startswith("rediss://")
        assert secret not in (done.stdout + done.stderr).decode()
        assert_campaign_done(world, ACCOUNTS[:2], 4)
        sent = world.sandbox.state.stats()["requests"]
        wrong = server.url.replace(secret, "not-the-password")
        args = [a if a != server.url else wrong for a in driver_args(world, job, server)]
        refused = await run_cli(args, env=env)
        err = refused.stderr.decode()
        assert refused.returncode == 69, err
        assert "not-the-password" not in err and "***" in err
        assert world.sandbox.state.stats()["requests"] == sent
    finally:
        server.stop()


async def test_a_worker_whose_accounts_file_disagrees_leaves_those_accounts_alone(
    make_world: MakeWorld, redis: RedisServer
) -> None:
    """A worker whose accounts file gives two accounts each other's user ids: it says so, leaves
    those accounts to the others, and keeps working; the job ends ok, nothing sent twice."""
    world = await make_world()
    job = world.job(rows(ACCOUNTS[:2], 4))
    swapped = world.dir / "swapped.json"
    doc = json.loads(world.accounts.read_text())
    first, second = doc["accounts"]["acct001"], doc["accounts"]["acct002"]
    first["user_id"], second["user_id"] = second["user_id"], first["user_id"]
    swapped.write_text(json.dumps(doc))
    swapped.chmod(0o600)
    args = worker_args(world, redis, 0)
    args[args.index("--accounts") + 1] = str(swapped)
    async with fork_cli(args) as worker:
        await anyio.sleep(1.0)  # the worker is up and claiming before the job is published
        done = await run_cli(driver_args(world, job, redis))
        alive = worker.returncode is None
        worker.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await worker.wait()
        err = worker.stderr().decode()
    assert done.returncode == 0, done.stderr.decode()
    assert alive and worker.returncode == 143, err
    assert_campaign_done(world, ACCOUNTS[:2], 4)
    assert world.sandbox.state.stats()["requests"] == 8
