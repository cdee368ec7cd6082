"""How `bulkrt run --redis` ends when it is stopped, as the embedded run ends: a SIGINT that
stopped nothing (every item already has its line in the ledger) ends the run as done, and a
driver that read its job from standard input says, when stopped, to pipe the same job again.
Real CLI processes, a real `redis-server`, the sandbox on a real socket; the assertions are on
what an operator sees (exit code, stdout, the ledger, `bulkrt status --redis`)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio

from tests.redis_server import RedisServer
from tests.test_fleet_run import driver_args
from tests.test_operator_mistakes3 import _hold, drained
from tests.test_run import MakeWorld, eventually, fork_cli, run_cli


async def test_a_signal_after_the_last_item_is_written_ends_the_driven_run_as_done(
    make_world: MakeWorld, redis_server: RedisServer
) -> None:
    """SIGINT arriving once every item's line is in the ledger (the driver held stopped at that
    moment, then let go) ends the run as done: exit 0 and the summary, no resume hint; the
    ledger holds every item once, and the job is gone from Redis (`bulkrt status --redis`:
    no job is running)."""
    world = await make_world()
    caught = 0
    for attempt in range(5):  # the process may exit before it can be held: try again
        job = world.job([("acct001", str(7000 + 10 * attempt + n), "retweet")
                         for n in range(3)], name=f"late{attempt}.csv")  # fmt: skip
        ledger = world.dir / f"late{attempt}.jsonl"
        args = driver_args(world, job, redis_server, "--ledger", str(ledger))
        async with fork_cli(args) as driver:
            with anyio.fail_after(30):  # another process's file: polled, every 1 ms
                while not ledger.exists() or ledger.read_bytes().count(b"\n") < 3:  # noqa: ASYNC110
                    await anyio.sleep(0.001)
            held = _hold(driver.pid)
            driver.send_signal(signal.SIGINT)
            os.kill(driver.pid, signal.SIGCONT)
            with anyio.fail_after(30):
                await driver.wait()
            out, err = driver.stdout().decode(), driver.stderr().decode()
        assert driver.returncode == 0, (held, out, err)
        assert "3 items: 3 ok" in out and "To resume" not in out, out
        assert len(ledger.read_text().splitlines()) == 3
        caught += held
        if caught:
            break
    assert caught, "the driver always exited before the signal: nothing was tested"
    status = await run_cli([sys.executable, "-m", "bulkrt", "status", "--redis", redis_server.url])
    assert "no job is running" in status.stdout.decode()


async def test_a_stdin_driver_stopped_says_to_pipe_the_same_job_again(
    make_world: MakeWorld, redis_server: RedisServer
) -> None:
    """A driver reading its job from standard input, stopped by SIGINT with items left, exits
    130 and its resume hint says the same job must be piped to it again."""
    world = await make_world(limit=1, window=10.0)
    job = world.job([("acct001", str(100 + n), "retweet") for n in range(3)])
    args = driver_args(world, Path("-"), redis_server, "--format", "csv")
    async with await anyio.open_process(args) as process:
        assert process.stdin is not None
        await process.stdin.send(job.read_bytes())
        await process.stdin.aclose()
        await eventually(lambda: len(world.lines()) >= 1)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            await process.wait()
        out, err = await drained(process)
    assert process.returncode == 130, err
    assert "To resume, run the same command again" in out
    assert " run - " in out
    assert "# with the same job piped to it again (it was read from standard input)" in out
