"""The multi-machine driver's ledger on a failing disk: what was sent is said, and the results
that could not be written wait in Redis for the same command run again (the real CLI forked, a
real `redis-server`, the sandbox on a real socket)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tests.test_fleet_run import driver_args
from tests.test_run import ACCOUNTS, MakeWorld, World, rows, run_cli


def fsync_failing_after(
    world: World, good: int, *, path: Path | None = None, real: Callable[[int], None] = os.fsync
) -> Callable[[int], None]:
    """A sync (``real``: `os.fsync` unless given) that fails with EIO for ``path`` (the world's
    ledger unless given) after its first ``good`` syncs (a disk dying under the run); every
    other file syncs as usual."""
    target = str(path or world.ledger)
    synced: list[int] = []

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == target:
            synced.append(fd)  # in the forked driver's memory
            if len(synced) > good:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    return fsync


@pytest.mark.parametrize("good", [0, 1])
async def test_a_ledger_that_cannot_be_synced_stops_the_driver_with_exit_74_and_the_resume(
    make_world: MakeWorld, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, good: int
) -> None:
    """The driver's ledger cannot be synced, from its first write (``good`` 0) or after one:
    exit 74 naming the ledger, the cause and the command to run again, never exit 2 "nothing
    was sent" (items were sent) nor a traceback; run again on a sound disk, the same command
    writes every item's line once and sends no item twice."""
    world = await make_world()
    job = world.job(rows(ACCOUNTS[:2], 3))
    monkeypatch.setattr(os, "fsync", fsync_failing_after(world, good))  # the fork inherits it
    answer = await run_cli(driver_args(world, job, redis_server))
    monkeypatch.undo()
    err = answer.stderr.decode()
    assert answer.returncode == 74, err
    assert "nothing was sent" not in err
    assert "Traceback" not in err
    assert f"cannot write {world.ledger}" in err
    assert "Input/output error" in err
    assert "--redis" in err.rsplit("run the same command", 1)[-1]  # the resume is the command
    sent = world.sandbox.state.requests
    assert sent > 0
    again = await run_cli(driver_args(world, job, redis_server))
    assert again.returncode == 0, again.stderr.decode()
    keys = [line["key"] for line in world.lines()]
    assert len(keys) == len(set(keys)) == 6
    assert world.sandbox.state.requests == 6  # nothing sent twice: the results waited in Redis


async def test_requests_in_flight_when_the_ledger_fails_are_finished_not_sent_again(
    make_world: MakeWorld, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger fails at the driver's first write while its own worker has requests in flight
    (two at a time, each answered after 0.5 s): the worker stops as for a signal, so those are
    answered and their results wait in Redis (before: cut off, their retweets applied but
    unrecorded, sent again by the next run, which took them for of undecidable origin). The same
    command then writes every item once, each the campaign's, with one request per item."""
    world = await make_world(latency_ms=500.0, limit=50)
    job = world.job(rows(ACCOUNTS[:2], 6))
    monkeypatch.setattr(os, "fsync", fsync_failing_after(world, 0))  # the fork inherits it
    answer = await run_cli(driver_args(world, job, redis_server, "--concurrency", "2"))
    monkeypatch.undo()
    assert answer.returncode == 74, answer.stderr.decode()
    again = await run_cli(driver_args(world, job, redis_server))
    assert again.returncode == 0, again.stderr.decode()
    lines = world.lines()
    assert sorted(line["key"] for line in lines) == sorted({line["key"] for line in lines})
    assert len(lines) == 12
    assert {line["preexisting"] for line in lines} == {False}
    assert world.sandbox.state.requests == 12
