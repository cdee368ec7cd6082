"""The job's limit model travels with the job: a `bulkrt worker` started without ``--tier``,
``--limit`` or ``--window`` runs a job's items under the model its driver was given (published
with the job), and one given other limits on purpose keeps them and says so once, naming both.
Real CLI processes, a real `redis-server`, the sandbox on a real socket; every assertion is on
what an operator sees (exit codes, the ledger, stderr, the sandbox's recorded requests)."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from bulkrt.fleet.connection import connect
from tests.redis_server import RedisServer
from tests.test_fleet_run import assert_campaign_done, driver_args, worker_args
from tests.test_run import ACCOUNTS, CliChild, MakeWorld, World, fork_cli, rows, run_cli


def without_limits(args: list[str]) -> list[str]:
    """``args`` less their ``--limit N`` and ``--window S`` (a worker started as the README's
    example shows)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--limit", "--window"):
            skip = True
        else:
            kept.append(arg)
    return kept


@asynccontextmanager
async def worker(world: World, redis: RedisServer, args: list[str]) -> AsyncIterator[CliChild]:
    """One worker process with ``args``, up (it has beat once) when the block starts, stopped
    with SIGTERM when it ends."""
    process = CliChild(args)
    try:
        client = await connect(redis.url)
        try:
            with anyio.fail_after(30):
                while True:  # polling another process's state
                    if await client.zcard("bulkrt:workers"):
                        break
                    await anyio.sleep(0.05)
        finally:
            await client.aclose()
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(30):
            await process.wait()
        process.close()


async def test_a_worker_without_limits_runs_the_job_under_its_drivers_model(
    make_world: MakeWorld, redis_server: RedisServer
) -> None:
    """Drivers given 30 per 1 s (the sandbox's windows), a worker given no limits (the pro
    tier's 50 per 15 min by default): a first job of 60 retweets per account, then a second job
    on the same accounts, both finish within the drivers' windows (seconds, where the worker's
    default model counted the first job's requests for 15 minutes and held its accounts that
    long), exit 0, every item once in its ledger and ok, no 429, each job shared by both
    processes, and the worker warns of nothing."""
    world = await make_world(limit=30, window=1.0)
    first = world.job(rows(ACCOUNTS, 60), name="first.csv")
    second = world.job(rows(ACCOUNTS, 10, first=500), name="second.csv")
    other = world.dir / "second.jsonl"
    runs: list[set[str]] = []
    async with worker(
        world, redis_server, without_limits(worker_args(world, redis_server, 0))
    ) as proc:
        for job, ledger in ((first, world.ledger), (second, other)):
            args = [a if a != str(world.ledger) else str(ledger) for a in driver_args(
                world, job, redis_server
            )]  # fmt: skip
            with anyio.fail_after(60):  # each job needs two or three of the drivers' windows
                done = await run_cli(args)
            assert done.returncode == 0, done.stderr.decode()
            lines = [json.loads(line) for line in ledger.read_text().splitlines()]
            assert {line["status"] for line in lines} == {"ok"}
            assert (
                len({line["key"] for line in lines})
                == len(lines)
                == 6 * (60 if job is first else 10)
            )
            runs.append({line["run"] for line in lines})
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await proc.wait()
        err = proc.stderr().decode()
    assert "429" not in world.sandbox.state.stats()["by_status"]
    for account in ACCOUNTS:
        assert len(world.retweets(account)) == 70
    assert [len(names) for names in runs] == [2, 2]
    assert "warning" not in err, err


async def test_a_worker_given_other_limits_keeps_them_and_says_so_once_naming_both(
    make_world: MakeWorld, redis_server: RedisServer
) -> None:
    """Driver given 5 per 2 s, worker given --limit 4 --window 2 on purpose: the worker runs its
    share under its own limits, and its stderr says once that the job was published with the
    driver's limits, naming both; the run ends ok with no 429."""
    world = await make_world()
    job = world.job(rows(ACCOUNTS, 8))
    args = [*without_limits(worker_args(world, redis_server, 0)), "--limit", "4", "--window", "2"]
    async with (
        worker(world, redis_server, args) as proc,
        fork_cli(driver_args(world, job, redis_server)) as driver,
    ):
        with anyio.fail_after(60):
            await driver.wait()
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await proc.wait()
        err = proc.stderr().decode()
    assert driver.returncode == 0, driver.stderr().decode()
    assert_campaign_done(world, ACCOUNTS, 8)
    assert "429" not in world.sandbox.state.stats()["by_status"]
    warned = [line for line in err.splitlines() if "worker_limits_differ" in line]
    assert len(warned) == 1, err
    assert "--limit 5 per --window 2 s" in warned[0] and "--limit 4 per --window 2 s" in warned[0]
