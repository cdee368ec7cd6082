"""A worker session's results sink against a real redis-server: the end of a session waits for
every line, including a batch the background hand-over had taken but not yet written, before its
accounts can be released."""

from __future__ import annotations

import json
import signal
from dataclasses import replace

import anyio
import redis.asyncio
from anyio import wait_all_tasks_blocked

from bulkrt.core.items import Action, Status
from bulkrt.fleet.shared_results import SharedResults
from bulkrt.fleet.store import FleetStore, JobMeta, Lease
from bulkrt.ledger.record import LedgerRecord
from bulkrt.redaction import Redactor
from tests.redis_server import RedisServer

LINE = LedgerRecord(
    ts="2026-12-03T16:00:00.000Z", run="w1", key="k1", campaign="spring", account="acme",
    user_id="1001", tweet_id="20", action=Action.RETWEET, status=Status.OK, retweeted=True,
    preexisting=False, http=200, error=None, attempts=1,
)  # fmt: skip


async def test_drain_waits_for_the_batch_being_handed_over(redis_server: RedisServer) -> None:
    """Redis stops answering while the background task hands over both of an account's lines:
    `drain` (the session's last step before releasing its accounts) does not return until Redis
    answers again and both lines are in the job's results, the items off the queue."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    store = FleetStore(client, "bulkrt:")
    job = JobMeta("spring", "/ledgers/spring.jsonl", "driver-host", 4242, 2, 1764000000.0)
    await store.register_job(job)
    payload = json.dumps({"key": "k"})
    await store.publish("spring", [(1, "1001", "k1", payload), (2, "1001", "k2", payload)])
    await store.finish_publishing("spring")
    [lease] = await store.claim("w1", 1, 60)
    finished: list[Lease] = []
    sink = SharedResults(
        store,
        {"acme": lease},
        {"k1": "spring", "k2": "spring"},
        {"acme": 2},
        Redactor(),
        on_done=finished.append,
        on_lost=lambda lost: None,
    )
    assert redis_server.process is not None
    drained = anyio.Event()
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sink.flush_forever)
            await wait_all_tasks_blocked()
            redis_server.process.send_signal(signal.SIGSTOP)
            sink.write(LINE)
            sink.write(replace(LINE, key="k2", tweet_id="21"))
            sink.sync()
            await wait_all_tasks_blocked()  # the background task holds the batch, waiting

            async def drain() -> None:
                await sink.drain()
                drained.set()

            tasks.start_soon(drain)
            await wait_all_tasks_blocked()
            drained_while_stopped = drained.is_set()
            redis_server.process.send_signal(signal.SIGCONT)
            with anyio.fail_after(10):
                await drained.wait()
            tasks.cancel_scope.cancel()
        assert not drained_while_stopped
        keys = [json.loads(line)["key"] for _, line in await store.results("spring")]
        assert keys == ["k1", "k2"]
        assert finished == [lease]
        assert await store.queued("1001") == []
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
        await client.aclose()
