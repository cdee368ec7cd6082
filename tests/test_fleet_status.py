"""``bulkrt status --redis``: per job done/total, per worker, and the accounts that wait and why,
read from the real command's output while real ``bulkrt worker`` processes work (a real
`redis-server`, the sandbox on a real socket); the jobs are published the way a driver publishes
them (`tests.test_fleet_pace.publish`), so that the test chooses which worker holds which
account. Where a state lasts only seconds (a dead worker's leases), the terminal form is checked
on the very snapshot the command printed as JSON (`render_fleet_status`, which the command's
terminal form is). The reasons themselves are pinned case by case on `why_waiting`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import pytest

from bulkrt.core.scheduler import AccountEvent, AccountState, EventKind
from bulkrt.fleet.account_wait import Hold, WaitReason, why_waiting
from bulkrt.fleet.connection import connect
from bulkrt.fleet.live_status import render_fleet_status
from bulkrt.fleet.store import FleetStore
from bulkrt.sandbox.config import Endpoint
from tests.redis_server import RedisServer
from tests.test_fleet_pace import publish, sent_for
from tests.test_fleet_run import worker_args
from tests.test_run import ACCOUNTS, CliChild, MakeWorld, eventually, run_cli

#: a dead worker's leases outlive it this long, and the quiet period after them (the live
#: worker's connect + 2 x read timeout) lasts about twice that: time enough to see both
DEAD_LEASE = "8"
QUIET = ("--read-timeout", "8")


async def status(redis: RedisServer, *json_flag: str) -> str:
    """What ``bulkrt status --redis URL`` prints."""
    args = [sys.executable, "-m", "bulkrt", "status", "--redis", redis.url, *json_flag]
    done = await run_cli(args)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def status_until(
    redis: RedisServer,
    wanted: dict[str, int],
    also: Callable[[dict[str, Any]], bool] = lambda shown: True,
) -> dict[str, Any]:
    """``bulkrt status --redis --json``, again until its accounts waiting per reason include
    ``wanted`` and ``also`` holds of it (the workers say why every few seconds, and a loaded
    machine may make a live one late)."""
    shown: dict[str, Any] = {}
    with anyio.move_on_after(60):
        while True:
            shown = json.loads(await status(redis, "--json"))
            waiting = shown["accounts"]["waiting"]
            if all(waiting.get(reason, 0) == n for reason, n in wanted.items()) and also(shown):
                return shown
            await anyio.sleep(0.5)
    pytest.fail(f"status never showed {wanted}; last: {json.dumps(shown, indent=1)}")


async def text_until(redis: RedisServer, needle: str) -> str:
    """``bulkrt status --redis``'s terminal form, again until it shows ``needle``."""
    text = ""
    with anyio.move_on_after(60):
        while needle not in text:
            text = await status(redis)
    return text


def named_for(shown: dict[str, Any], reason: str) -> dict[str, str]:
    """The user ids the snapshot names as waiting for ``reason``, with their worker."""
    return {
        w["user_id"]: w["worker"]
        for w in shown["accounts"]["waiting_accounts"]
        if w["why"] == reason
    }


async def test_status_shows_each_jobs_progress_and_why_accounts_wait(
    make_world: MakeWorld, redis_server: RedisServer
) -> None:
    """Worker A holds acct001-003 (4 retweets each, 2 per 60 s: two windows full; acct003's
    window spent beforehand by someone else, so a 429 taught its reset), worker B holds
    acct004-006 (three windows full) and is SIGKILLed: `bulkrt status --redis` shows both jobs
    with done/total, both workers, and the accounts waiting, why and until when; then B's leases
    as held by a worker that stopped beating (by user id; B's own word no longer counts); once
    they expire, their accounts as quiet after a dead worker."""
    world = await make_world(limit=2, window=60.0)
    now = world.sandbox.clock.now()
    for _ in range(2):  # another client spends acct003's window
        world.sandbox.state.limits.admit(world.user_id("acct003"), Endpoint.RETWEET, now)
    client = await connect(redis_server.url)
    store = FleetStore(client)
    started: list[CliChild] = []

    async def start(n: int, *extra: str) -> CliChild:
        """Worker ``n``, once it has beat (counted by the others when they take their share)."""
        started.append(CliChild(worker_args(world, redis_server, n, *extra)))
        with anyio.fail_after(30):
            while True:  # polling another process
                if await client.zcard("bulkrt:workers") > n:
                    break
                await anyio.sleep(0.05)
        return started[-1]

    try:
        await start(0, *QUIET)  # alone: it takes all of job0's accounts
        await publish(store, world, "job0", ACCOUNTS[0:3], per_account=4)
        for account in ACCOUNTS[0:3]:
            await eventually(partial(sent_for, world, account))
        second = await start(1, "--lease-seconds", DEAD_LEASE)  # its share: all of job1's
        await publish(store, world, "job1", ACCOUNTS[3:6], per_account=4)
        for account in ACCOUNTS[3:6]:
            await eventually(partial(sent_for, world, account))
        shown = await status_until(redis_server, {"window_full": 5, "rate_limited": 1})
        text = await text_until(redis_server, "5 window_full (")
        second.kill()
        await second.wait()
        b_users = {world.user_id(account) for account in ACCOUNTS[3:6]}
        dead = await status_until(
            redis_server,
            {"lease_held_by_dead_worker": 3},
            lambda shown: set(named_for(shown, "lease_held_by_dead_worker")) == b_users,
        )
        dead_text = render_fleet_status(dead)  # that very snapshot (the leases soon expire)
        quiet = await status_until(redis_server, {"quiet_after_dead_worker": 3})
        quiet_text = render_fleet_status(quiet)
    finally:
        await client.aclose()
        for worker in started:
            worker.close()
    named = {w["account"]: w for w in shown["accounts"]["waiting_accounts"]}
    live = named["acct001"]["worker"]
    jobs = {job["job"]: (job["done"], job["total"]) for job in shown["jobs"]}
    assert jobs["job0"] == (4, 12)  # acct001 and acct002 twice each, acct003 none
    assert jobs["job1"][1] == 12
    assert sorted(w["accounts_held"] for w in shown["workers"]) == [3, 3]
    for account in ("acct001", "acct002"):
        assert named[account]["why"] == "window_full" and named[account]["worker"] == live
        assert named[account]["until"] > now + 30  # the 60 s window opens again
    assert named["acct003"]["why"] == "rate_limited" and named["acct003"]["until"] > now + 30
    for account in ACCOUNTS[3:6]:
        assert named[account]["why"] == "window_full" and named[account]["worker"] != live
    assert "job job0: 4/12 finished" in text and "job job1: " in text
    assert "2 worker(s):" in text and f"{live}: 3 account(s) held" in text
    assert "5 window_full (rate-limit window full, waiting for it to open): acct00" in text
    assert "1 rate_limited (held until the reset a 429 (or a spent window) taught): acct003" in text
    held_by_dead = named_for(dead, "lease_held_by_dead_worker")
    assert len(set(held_by_dead.values())) == 1 and live not in held_by_dead.values()
    assert "3 lease_held_by_dead_worker (lease held by a worker that stopped beating" in dead_text
    assert quiet["accounts"]["waiting"].get("lease_held_by_dead_worker", 0) == 0
    assert "3 quiet_after_dead_worker (quiet period after its worker died" in quiet_text


@pytest.mark.parametrize(
    ("state", "resumes", "event", "hold", "window_at", "expected"),
    [
        # own pacing: the window's opening is what it waits for
        (AccountState.WAITING, 130.0, None, None, 130.0, (WaitReason.WINDOW_FULL, 130.0)),
        # a retry's backoff ends before the window would let it go
        (AccountState.WAITING, 105.0, None, None, 101.0, (WaitReason.RETRY, 105.0)),
        (AccountState.WAITING, 105.0, None, None, None, (WaitReason.RETRY, 105.0)),
        # a 429 taught the reset
        (
            AccountState.WAITING,
            160.0,
            AccountEvent(EventKind.RATE_LIMITED, "a", 99.0, 160.0),
            None,
            160.0,
            (WaitReason.RATE_LIMITED, 160.0),
        ),
        # what the shared budget refused wins over the scheduler's view
        (
            AccountState.WAITING,
            140.0,
            None,
            Hold(WaitReason.HIDDEN_CAP, 140.0),
            100.0,
            (WaitReason.HIDDEN_CAP, 140.0),
        ),
        (
            AccountState.WAITING,
            140.0,
            None,
            Hold(WaitReason.QUIET, 140.0),
            100.0,
            (WaitReason.QUIET, 140.0),
        ),
        # a hold that is over says nothing
        (AccountState.READY, None, None, Hold(WaitReason.WINDOW_FULL, 99.0), 100.0, None),
        # parked after a 429 no header explains
        (
            AccountState.PARKED,
            400.0,
            AccountEvent(EventKind.PARKED, "a", 99.0, 400.0),
            None,
            None,
            (WaitReason.HIDDEN_CAP, 400.0),
        ),
        (AccountState.REFRESHING, None, None, None, None, (WaitReason.REFRESHING, None)),
        (
            AccountState.PAUSED,
            None,
            AccountEvent(EventKind.PAUSED, "a", 99.0),
            None,
            None,
            (WaitReason.CREDENTIALS_REFUSED, None),
        ),
        (
            AccountState.PAUSED,
            None,
            AccountEvent(EventKind.GAVE_UP, "a", 99.0),
            None,
            None,
            (WaitReason.HIDDEN_CAP, None),
        ),
        # sending, or a response in flight: not waiting
        (AccountState.READY, None, None, None, 100.0, None),
        (AccountState.WAITING, None, None, None, None, None),
        (AccountState.FINISHED, None, None, None, None, None),
    ],
)
def test_why_an_account_waits(
    state: AccountState,
    resumes: float | None,
    event: AccountEvent | None,
    hold: Hold | None,
    window_at: float | None,
    expected: tuple[WaitReason, float | None] | None,
) -> None:
    """At 100.0, an account's state, its latest event, what the shared budget last refused it,
    and when its window lets it go say why it waits and until when (None: it does not wait)."""
    assert why_waiting(state, resumes, event, hold, 100.0, window_at=window_at) == expected
