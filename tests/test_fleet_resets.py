"""Rate-limit resets in the multi-machine mode (``--redis``) that come from another clock or
another process, against a real ``redis-server``: the shared budget judges a reset as the
embedded mode does (`bulkrt.core.ratelimits.reset_horizon`: a reset further ahead than a window
can reset is another clock's, counted as one window from the answer's arrival, never waited for),
and a 429 its headers explain (another process outside this Redis took the window) holds the
account until that reset for every worker, with a note that says so, not a park. End-to-end
tests run the real CLI on the sandbox (its clock advanced, or a run without ``--redis`` beside
the fleet) and check what the operator sees: exit codes, ledgers, logs, the sandbox's state."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from bulkrt.commands.sandbox import write_accounts_file
from bulkrt.core.credential_refresh import RefreshReport, RefreshVerdict
from bulkrt.core.items import Action
from bulkrt.core.tiers import limit_model
from bulkrt.fleet.budget import Refusal, SharedBudget
from bulkrt.fleet.connection import connect
from bulkrt.fleet.leased_sender import LeasedSender
from bulkrt.fleet.store import FleetStore, JobMeta, Lease
from bulkrt.sandbox import OffsetClock
from bulkrt.shell.client import Exchange
from tests.redis_server import RedisServer
from tests.test_adv21_out import waited_twice
from tests.test_fleet_budget import overfull_window, redis_now
from tests.test_fleet_run import driver_args, workers
from tests.test_run import MakeWorld, eventually, fork_cli, run_cli

PREFIX = "bulkrt:"
#: seeds of the randomised test with resets from another clock: 30 in CI;
#: ``BULKRT_FLEET_SEEDS=500`` runs more
RESET_SEEDS = int(os.environ.get("BULKRT_FLEET_SEEDS", "30"))
#: how far ahead of every clock the sandbox's is moved (the finding's 8000 s: 2 h 13 min)
AHEAD = 8000.0


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


async def hold_of(budget: SharedBudget, redis: Redis, uid: str, holder: str) -> Any:
    """What the budget answers a request of ``holder`` (``worker|fence``, now the lease)."""
    await redis.set(f"{PREFIX}u:{{{uid}}}:lease", holder)
    worker, fence = holder.split("|")
    return await budget.acquire(
        uid, Action.RETWEET, limit=5, window=0.5, lease=(worker, int(fence))
    )


async def assert_every_holder_blocked_until(
    budget: SharedBudget, redis: Redis, uid: str, until: float
) -> None:
    """Both a worker that learned the 429 and another one are blocked on ``uid`` until ``until``."""
    for holder in ("w1|1", "w2|2"):
        held = await hold_of(budget, redis, uid, holder)
        assert held.reason is Refusal.BLOCKED
        assert held.at + held.retry_after == pytest.approx(until, abs=0.01)


class TestResetFromAnotherClock:
    """Finding P2 with ``--redis``: a reset far ahead of Redis's clock (the API's clock ahead)."""

    async def test_a_spent_window_resetting_hours_ahead_holds_the_others_one_window(
        self, redis: Redis
    ) -> None:
        """A 200 saying nothing remains, resetting 8000 s ahead (beyond two windows of at least
        30 minutes), learnt by ``w1|1`` for a 0.5 s window: the next holder ``w2|2`` is held
        one window from the answer, not 8000 s (before: until the reset), and admitted after."""
        budget = SharedBudget(redis, PREFIX)
        reset = await redis_now(redis) + AHEAD
        await budget.learn(
            "61", Action.RETWEET, status=200, limit=5, remaining=0, reset=reset, window=0.5,
            park=60, lease=("w1", 1),
        )  # fmt: skip
        held = await hold_of(budget, redis, "61", "w2|2")
        assert held.reason in (Refusal.BLOCKED, Refusal.BUDGET)
        assert 0 < held.retry_after <= 0.5
        await anyio.sleep(held.retry_after + 0.05)
        assert (await hold_of(budget, redis, "61", "w2|2")).ok

    async def test_a_plausible_reset_is_still_waited_for_by_every_other_holder(
        self, redis: Redis
    ) -> None:
        """The same answer with a reset 20 minutes ahead (within the 30-minute floor): the next
        holder is held until that reset, as the API says."""
        budget = SharedBudget(redis, PREFIX)
        reset = await redis_now(redis) + 1200
        await budget.learn(
            "62", Action.RETWEET, status=200, limit=5, remaining=0, reset=reset, window=0.5,
            park=60, lease=("w1", 1),
        )  # fmt: skip
        held = await hold_of(budget, redis, "62", "w2|2")
        assert held.reason is Refusal.BLOCKED
        assert held.retry_after == pytest.approx(reset - held.at, abs=0.01)

    async def test_a_429_resetting_hours_ahead_blocks_for_the_park_not_the_reset(
        self, redis: Redis
    ) -> None:
        """A 429 saying nothing remains, resetting 8000 s ahead: every holder, the learner
        included, is blocked for the park given (0.8 s, as a 429 no header explains), not for
        8000 s; the placeholders it leaves count one window from its arrival."""
        budget = SharedBudget(redis, PREFIX)
        before = await redis_now(redis)
        until = await budget.learn(
            "63", Action.RETWEET, status=429, limit=5, remaining=0, reset=before + AHEAD,
            window=0.5, park=0.8, lease=("w1", 1),
        )  # fmt: skip
        assert until is not None
        assert before + 0.79 <= until <= await redis_now(redis) + 0.81
        await assert_every_holder_blocked_until(budget, redis, "63", until)
        await anyio.sleep(until - await redis_now(redis) + 0.05)
        assert (await hold_of(budget, redis, "63", "w2|2")).ok

    async def test_a_second_run_on_a_sandbox_hours_ahead_ends_in_seconds(
        self, make_world: MakeWorld, redis_server: RedisServer
    ) -> None:
        """A sandbox whose clock is 8000 s ahead: two ``--redis`` runs, one after the other on
        the same Redis and account, each spending a whole window (5 per 2 s), both end ok within
        seconds with no 429 (the second held one window at most; before: it waited 2 h 13 min
        for the first's last reset), and each names the reset it did not wait for once."""
        world = await make_world()
        assert isinstance(world.sandbox.clock, OffsetClock)
        world.sandbox.clock.advance(AHEAD)
        expires = world.sandbox.clock.now() + world.sandbox.config.token_ttl
        write_accounts_file(
            world.accounts, world.sandbox.state.world.accounts_file(expires_at=expires)
        )
        for first in (700, 710):
            job = world.job([("acct002", str(first + n), "retweet") for n in range(5)])
            with anyio.fail_after(60):  # before: the second run waited 8000 s
                answer = await run_cli(driver_args(world, job, redis_server))
            err = answer.stderr.decode()
            assert answer.returncode == 0, err
            assert err.count("clock_skew_suspected") == 1, err
            assert "beyond what a window takes: not waited for" in err
            assert "run_waiting" not in err, err  # no wait of five minutes or more
        assert [line["status"] for line in world.lines()] == ["ok"] * 10
        assert world.retweets("acct002") == {str(t) for t in (*range(700, 705), *range(710, 715))}
        assert "429" not in world.sandbox.state.stats()["by_status"]


async def mix_with_clocks(seed: int, clients: list[SharedBudget], redis: Redis) -> int:
    """Clients interleave admissions and lessons (200s and 429s whose resets lie in the window,
    in the past, or hours ahead: another clock's) on one account; no trailing window ever holds
    more than ``limit`` admissions on Redis's clock. Returns the number of admissions."""
    chance = random.Random(seed)
    uid = str(5000 + seed)
    limit = chance.randint(1, 6)
    window_ms = chance.randint(40, 200)
    window = window_ms / 1000
    admitted: list[int] = []

    async def client(budget: SharedBudget, rng: random.Random) -> None:
        for _ in range(rng.randint(10, 30)):
            if rng.random() < 0.75:
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
                    remaining=rng.choice([0, 0, rng.randint(0, limit + 2)]),
                    reset=rng.choice(
                        [now + rng.uniform(-0.05, window * 1.5), now + AHEAD, now - AHEAD]
                    ),
                    window=window,
                    park=rng.uniform(0.001, window),
                )
            await anyio.sleep(rng.uniform(0, window / 4))

    async with anyio.create_task_group() as group:
        for budget in clients:
            group.start_soon(client, budget, random.Random(chance.random()))
    bad = overfull_window(admitted, limit, window_ms)
    assert bad is None, f"seed {seed}: more than {limit} admissions in the window ending {bad}"
    return len(admitted)


async def test_resets_from_another_clock_never_overspend_a_window(
    redis_server: RedisServer,
) -> None:
    """For every seed (30 in CI; ``BULKRT_FLEET_SEEDS`` for more), three clients on their own
    connections mix admissions with answers whose resets lie hours ahead or behind: no trailing
    window holds more than ``limit`` admissions, and most seeds admit something."""
    connections = [await connect(redis_server.url) for _ in range(3)]
    clients = [SharedBudget(c, PREFIX) for c in connections]
    counts: list[int] = []
    try:
        for start in range(0, RESET_SEEDS, 10):
            async with anyio.create_task_group() as group:
                for seed in range(start, min(start + 10, RESET_SEEDS)):

                    async def one(seed: int = seed) -> None:
                        counts.append(await mix_with_clocks(seed, clients, connections[0]))

                    group.start_soon(one)
    finally:
        for c in connections:
            await c.aclose()
    assert len(counts) == RESET_SEEDS
    assert sum(1 for n in counts if n > 0) > RESET_SEEDS // 2


class Answers:
    """A `Sender` (the seam the HTTP one speaks) answering each request with the next of a
    list of (status, rate-limit headers), and counting what it sent."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers = answers
        self.sent: list[str] = []

    @property
    def user_id(self) -> str:
        return "42"

    @property
    def refreshable(self) -> bool:
        return False

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        self.sent.append(tweet_id)
        status, headers = self.answers.pop(0)
        body = b'{"data":{"retweeted":true}}' if status == 200 else b'{"title":"Too Many Requests"}'
        return Exchange(status, headers, body, "application/json")

    async def refresh(self) -> RefreshReport:
        return RefreshReport(RefreshVerdict.UNSUPPORTED)


def spent_until(reset: int, remaining: int = 0) -> dict[str, str]:
    """The rate-limit headers of an answer: ``remaining`` of 5 left until ``reset``."""
    return {
        "x-rate-limit-limit": "5",
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": str(reset),
    }


async def claim(store: FleetStore, worker: str, serial: int, uid: str = "42") -> Lease:
    """``worker`` takes the lease of user ``uid`` (a job of one item published for it first)."""
    await store.register_job(JobMeta(f"job{serial}", "l.jsonl", "h", 1, 1, 0.0))
    await store.publish(f"job{serial}", [(serial, uid, f"k{serial}", "{}")])
    (lease,) = await store.claim(worker, 1, 30)
    return lease


async def other_sender(budget: SharedBudget, uid: str) -> Any:
    """What the budget answers any other sender on the account (another worker, a job)."""
    return await budget.acquire(uid, Action.RETWEET, limit=5, window=2, lease=None)


class TestAnotherProcessOnTheAccount:
    """Finding P1 with ``--redis``: a process outside this Redis takes the account's windows."""

    async def test_an_explained_429_holds_every_worker_until_its_reset_and_says_why_once(
        self, redis: Redis
    ) -> None:
        """A worker meets a 429 its headers explain (nothing remaining, reset in 2-3 s), then,
        after that reset, another naming a later reset (the other process took the next window
        too): the worker and every other sender are held until each reset in turn (never the
        60 s park), and the worker logs once, naming the account, that a process outside this
        Redis may be using it."""
        store, budget = FleetStore(redis, PREFIX), SharedBudget(redis, PREFIX)
        model = limit_model("basic", limit=5, window=2)
        first = int(time.time()) + 3
        inner = Answers(
            [
                (429, spent_until(first)),
                (429, spent_until(first + 2)),
                (200, spent_until(first + 4, 4)),
            ]
        )
        lease = await claim(store, "A", 1)
        sender = LeasedSender(inner, budget, lease, model, park=60, on_lost=print, account="acme")
        with capture_logs() as logs:
            for reset in (first, first + 2):
                assert (await sender.send(Action.RETWEET, "1")).http == 429
                held = await sender.send(Action.RETWEET, "1")
                assert held.held_until == pytest.approx(reset, abs=0.1)
                other = await other_sender(budget, "42")
                assert other.reason is Refusal.BLOCKED
                assert other.at + other.retry_after == pytest.approx(reset, abs=0.01)
                await anyio.sleep(max(0.0, reset - time.time()) + 0.05)
            assert (await sender.send(Action.RETWEET, "1")).http == 200
        assert len(inner.sent) == 3
        notes = [entry for entry in logs if entry["event"] == "account_used_outside_redis"]
        assert len(notes) == 1 and notes[0]["account"] == "acme"
        assert (
            "another process outside this Redis may be using this account" in (notes[0]["reason"])
        )

    @pytest.mark.parametrize(
        "ahead", [(2, 3), (int(AHEAD), 0)], ids=["remaining-3", "reset-hours-ahead"]
    )
    async def test_a_429_no_header_explains_parks_and_is_not_blamed_on_another_process(
        self, redis: Redis, ahead: tuple[int, int]
    ) -> None:
        """A 429 while the headers say 3 remain (a cap no header shows), or one whose reset lies
        8000 s ahead: the account is blocked for the park (60 s) for every sender, and no note
        says another process is using it."""
        store, budget = FleetStore(redis, PREFIX), SharedBudget(redis, PREFIX)
        model = limit_model("basic", limit=5, window=2)
        seconds, remaining = ahead
        lease = await claim(store, "A", 1)
        inner = Answers([(429, spent_until(int(time.time()) + seconds, remaining))])
        sender = LeasedSender(inner, budget, lease, model, park=60, on_lost=print)
        with capture_logs() as logs:
            assert (await sender.send(Action.RETWEET, "1")).http == 429
        assert not [e for e in logs if e["event"] == "account_used_outside_redis"]
        other = await other_sender(budget, "42")
        assert other.reason is Refusal.BLOCKED and 55 < other.retry_after <= 60

    async def test_a_run_without_redis_beside_the_fleet_parks_nothing(
        self, make_world: MakeWorld, redis_server: RedisServer
    ) -> None:
        """A run without ``--redis`` takes two accounts' windows (5 per 2 s) while a ``--redis``
        run and a second worker work on other Tweets of the same accounts: every item of both
        ends ok and every retweet is made; the fleet meets 429s, waits for their resets (no
        account parked for a hidden limit), and says a process outside this Redis may be using
        the account."""
        world = await make_world()
        accounts = ["acct001", "acct002"]
        fleet_job = world.job([(a, str(800 + n), "retweet") for n in range(15) for a in accounts])
        outside_job = world.job(
            [(a, str(900 + n), "retweet") for n in range(15) for a in accounts], name="other.csv"
        )
        outside_ledger = world.dir / "outside.jsonl"
        alone_args = [
            part if part != str(world.ledger) else str(outside_ledger)
            for part in world.run_args(outside_job)
        ]
        with anyio.fail_after(120):
            async with fork_cli(alone_args) as alone:
                # the run without --redis spends the accounts' first window before the fleet starts
                await eventually(lambda: world.sandbox.state.requests >= 6)
                async with workers(world, redis_server, 1) as (worker,):
                    driver = await run_cli(driver_args(world, fleet_job, redis_server))
                code = await alone.wait()
        logs = driver.stderr.decode() + worker.stderr().decode()
        assert (code, driver.returncode) == (0, 0), logs + alone.stderr().decode()
        assert [line["status"] for line in world.lines()] == ["ok"] * 30
        outside = [json.loads(line)["status"] for line in outside_ledger.read_text().splitlines()]
        assert outside == ["ok"] * 30
        for account in accounts:
            assert world.retweets(account) >= {str(t) for t in (*range(800, 815), *range(900, 915))}
        assert world.sandbox.state.stats()["by_status"].get("429", 0) > 0
        assert "account_parked" not in logs
        # the premise of "no account parked": the fleet waited again after a wait (a 429 in the
        # window after it, naming a later reset), not only for its first 429
        assert waited_twice(driver.stderr.decode()) or waited_twice(worker.stderr().decode()), logs
        assert "another process outside this Redis may be using this account" in logs


class TestResetJustPast:
    """A 429 whose headers explain it (nothing remaining) but whose reset has already passed on
    Redis's clock (the API's reset is whole seconds; its clock a little behind Redis's) blocks
    the endpoint for the embedded mode's short wait, not for the park period (before: every
    holder waited ``park``, 120 s by default, where the embedded mode waits 2 s)."""

    @pytest.mark.parametrize("past", [0.001, 0.9, 4.0])
    async def test_blocks_every_holder_briefly_not_for_the_park(
        self, redis: Redis, past: float
    ) -> None:
        budget = SharedBudget(redis, PREFIX)
        before = await redis_now(redis)
        until = await budget.learn(
            "64", Action.RETWEET, status=429, limit=5, remaining=0, reset=before - past,
            window=0.5, park=120, lease=("w1", 1),
        )  # fmt: skip
        assert until is not None
        assert before + 1.99 <= until <= await redis_now(redis) + 2.01
        await assert_every_holder_blocked_until(budget, redis, "64", until)

    async def test_a_past_reset_with_room_left_is_still_a_hidden_cap(self, redis: Redis) -> None:
        """The same 429 saying requests remain is not explained by its headers: parked."""
        budget = SharedBudget(redis, PREFIX)
        before = await redis_now(redis)
        until = await budget.learn(
            "65", Action.RETWEET, status=429, limit=5, remaining=3, reset=before - 0.5,
            window=0.5, park=120, lease=("w1", 1),
        )  # fmt: skip
        assert until is not None and until >= before + 119.9
