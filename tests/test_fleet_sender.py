"""The leased sender of the multi-machine mode, in-process against a real redis-server: what a
worker may send for an account it holds, whoever held it before (the shared budget, hidden caps
included, and the lease's fence). The inner sender is a scripted `Sender`, the seam the real
HTTP one speaks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bulkrt.core.credential_refresh import RefreshReport, RefreshVerdict
from bulkrt.core.items import Action
from bulkrt.core.tiers import HiddenCap, LimitModel, Tier, WindowLimit
from bulkrt.fleet.budget import SharedBudget
from bulkrt.fleet.connection import connect
from bulkrt.fleet.leased_sender import LeasedSender
from bulkrt.fleet.store import FleetStore, JobMeta, Lease
from bulkrt.shell.client import Exchange
from tests.redis_server import RedisServer

PREFIX = "bulkrt-test:"
#: a window of 50, and a cap no header shows of 3 retweets per 900 s
MODEL = LimitModel(
    Tier.PRO,
    retweet=WindowLimit(50, 900.0),
    undo=WindowLimit(50, 900.0),
    caps=(HiddenCap("post-cap", WindowLimit(3, 900.0), frozenset({Action.RETWEET})),),
)


class ScriptedSender:
    """Answers 200 to everything and counts what it sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[Action, str]] = []

    @property
    def user_id(self) -> str:
        return "42"

    @property
    def refreshable(self) -> bool:
        return False

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        self.sent.append((action, tweet_id))
        body = b'{"data":{"retweeted":%s}}' % (b"true" if action is Action.RETWEET else b"false")
        headers = {"x-rate-limit-limit": "50", "x-rate-limit-remaining": "40"}
        return Exchange(200, headers, body, "application/json")

    async def refresh(self) -> RefreshReport:
        return RefreshReport(RefreshVerdict.UNSUPPORTED)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


async def publish_one(store: FleetStore, serial: int) -> None:
    await store.register_job(JobMeta(f"job{serial}", "l.jsonl", "h", 1, 1, 0.0))
    await store.publish(f"job{serial}", [(serial, "42", f"k{serial}", "{}")])


async def test_a_cap_no_header_shows_is_shared_across_a_handoff(redis: Redis) -> None:
    """Worker A sends two retweets for the account, then its lease goes to worker B: B may send
    one more, and the next is held (never sent) until the cap's window frees, although B's own
    process never counted A's requests."""
    store, budget = FleetStore(redis, PREFIX), SharedBudget(redis, PREFIX)
    await publish_one(store, 1)
    (first,) = await store.claim("A", 1, 30)
    inner_a, lost = ScriptedSender(), list[Lease]()
    a = LeasedSender(inner_a, budget, first, MODEL, park=60, on_lost=lost.append)
    for tweet in ("1", "2"):
        assert (await a.send(Action.RETWEET, tweet)).http == 200
    await store.release(first)
    (second,) = await store.claim("B", 1, 30)
    inner_b = ScriptedSender()
    b = LeasedSender(inner_b, budget, second, MODEL, park=60, on_lost=lost.append)
    assert (await b.send(Action.RETWEET, "3")).http == 200
    held = await b.send(Action.RETWEET, "4")
    assert held.http is None and held.held_until is not None
    assert 800 < held.held_until - time.time() <= 900  # until A's first retweet leaves the cap
    assert inner_b.sent == [(Action.RETWEET, "3")] and lost == []
    assert (await b.send(Action.UNDO, "1")).http == 200  # the cap counts retweets only


async def test_a_worker_whose_lease_moved_on_sends_nothing(redis: Redis) -> None:
    """A worker whose lease expired and went to another (it stalled) is refused at its next
    request: nothing is sent, and it is told the lease is lost."""
    store, budget = FleetStore(redis, PREFIX), SharedBudget(redis, PREFIX)
    await publish_one(store, 1)
    (stale,) = await store.claim("A", 1, 30)
    await store.release(stale)
    await publish_one(store, 2)
    (current,) = await store.claim("B", 1, 30)
    assert current.fence > stale.fence
    inner, lost = ScriptedSender(), list[Lease]()
    zombie = LeasedSender(inner, budget, stale, MODEL, park=60, on_lost=lost.append)
    refused = await zombie.send(Action.RETWEET, "9")
    assert refused.http is None and refused.held_until is not None
    assert inner.sent == [] and lost == [stale]


async def test_a_lease_not_renewed_in_time_sends_nothing_even_once_admitted(
    redis: Redis,
) -> None:
    """A process that stalled past its lease's renewal (by its own clock) is admitted by the
    budget (Redis still holds its lease) but sends nothing: the lease may already be another's
    by the time the request would land."""
    store, budget = FleetStore(redis, PREFIX), SharedBudget(redis, PREFIX)
    await publish_one(store, 1)
    (lease,) = await store.claim("A", 1, 30)
    inner, lost = ScriptedSender(), list[Lease]()
    stalled = LeasedSender(
        inner, budget, lease, MODEL, park=60, on_lost=lost.append, valid=lambda: False
    )
    held = await stalled.send(Action.RETWEET, "5")
    assert held.http is None and held.held_until is not None
    assert inner.sent == [] and lost == [lease]
