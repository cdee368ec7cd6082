"""``bulkrt status --redis URL``: the live progress of every job and worker on a Redis, from what
the store keeps (`bulkrt.fleet.store`): per job, finished / total and the results waiting for its
driver; per worker, the accounts it holds and what it did; and the accounts that wait, and why.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import anyio

from bulkrt.fleet.connection import connect
from bulkrt.fleet.store import FleetStore

__all__ = ["fleet_status", "render_fleet_status"]

#: a worker unseen for longer than this (seconds) is not listed: it stopped or died (a live one
#: beats every second)
_LIVE_WITHIN = 20.0


def fleet_status(url: str, prefix: str) -> dict[str, object]:
    """A JSON-ready snapshot of the jobs, workers and waiting accounts on the Redis at ``url``."""

    async def read() -> dict[str, object]:
        redis = await connect(url)
        try:
            store = FleetStore(redis, prefix)
            jobs = await store.jobs()
            workers = await store.workers(live_within=_LIVE_WITHIN)
            waiting = await store.waiting()
        finally:
            await redis.aclose()
        now = time.time()
        return {
            "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            "jobs": [
                {
                    "job": job.job_id,
                    "ledger": job.ledger,
                    "driver": f"{job.host}:{job.pid}",
                    "total": job.total,
                    "done": job.done,
                    "queued": job.queued,
                    "published": job.published,
                    "results_waiting": job.results_waiting,
                }
                for job in jobs
            ],
            "workers": [
                {
                    "worker": worker.worker,
                    "host": worker.host,
                    "pid": worker.pid,
                    "seen_seconds_ago": round(max(0.0, now - worker.last_seen), 1),
                    "accounts_held": worker.leases,
                    "stats": json.loads(worker.stats),
                }
                for worker in workers
            ],
            "accounts": {
                "waiting_for_a_worker": waiting.available,
                "held_by_workers": waiting.leased,
                "quiet_after_a_dead_worker": waiting.quiet,
                "longest_waiting": [
                    {"user_id": user, "seconds": round(seconds, 1)}
                    for user, seconds in waiting.longest
                ],
            },
        }

    return anyio.run(read, backend="asyncio")


def render_fleet_status(status: dict[str, object]) -> str:
    """The snapshot as a few lines for a terminal."""
    lines = [f"bulkrt on Redis, {status['at']}"]
    jobs = status["jobs"]
    assert isinstance(jobs, list)
    if not jobs:
        lines.append("no job is running")
    for job in jobs:
        share = f"{job['done']}/{job['total']}"
        note = "" if job["published"] else " (still publishing)"
        lines.append(
            f"job {job['job']}: {share} finished, {job['queued']} queued, "
            f"{job['results_waiting']} result(s) waiting for the ledger {job['ledger']} "
            f"(driver {job['driver']}){note}"
        )
    workers = status["workers"]
    assert isinstance(workers, list)
    lines.append(f"{len(workers)} worker(s):")
    for worker in workers:
        lines.append(
            f"  {worker['worker']}: {worker['accounts_held']} account(s) held, seen "
            f"{worker['seen_seconds_ago']} s ago, {worker['stats']}"
        )
    accounts = status["accounts"]
    assert isinstance(accounts, dict)
    lines.append(
        f"accounts: {accounts['held_by_workers']} held by a worker, "
        f"{accounts['waiting_for_a_worker']} waiting for one, "
        f"{accounts['quiet_after_a_dead_worker']} quiet after their worker died"
    )
    return "\n".join(lines)
