"""``bulkrt status --redis URL``: the live progress of every job and worker on a Redis, from what
the store keeps (`bulkrt.fleet.store`): per job, finished / total and the results waiting for its
driver; per worker, the accounts it holds and what it did; and the accounts that wait, and why:
what each worker said of the accounts it holds in its last beat (a full window, a reset a 429
taught, a cap no header shows, a retry, a credential refresh, credentials refused: see
`bulkrt.fleet.account_wait`), and what Redis alone knows (accounts no worker holds, accounts in
the quiet period after their worker died, leases a dead worker holds until they expire).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import anyio

from bulkrt.core.waits import when
from bulkrt.fleet.account_wait import AccountWait, WaitReason
from bulkrt.fleet.connection import connect
from bulkrt.fleet.store import AccountsWaiting, FleetStore, WorkerStatus

__all__ = ["fleet_status", "render_fleet_status"]

#: a worker unseen for longer than this (seconds) is not listed: it stopped or died (a live one
#: beats every second)
_LIVE_WITHIN = 20.0
#: a worker unseen for longer than this (five beats missed) has stopped beating: the leases it
#: holds are shown as waiting for their expiry
_STOPPED_BEATING = 5.0


def fleet_status(url: str, prefix: str) -> dict[str, object]:
    """A JSON-ready snapshot of the jobs, workers and waiting accounts on the Redis at ``url``."""

    async def read() -> dict[str, object]:
        redis = await connect(url)
        try:
            store = FleetStore(redis, prefix)
            jobs = await store.jobs()
            workers = await store.workers(live_within=_LIVE_WITHIN)
            waiting = await store.waiting(live_within=_STOPPED_BEATING)
        finally:
            await redis.aclose()
        now = time.time()
        counts, named = _waits(workers, waiting)
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
                "lease_held_by_dead_worker": waiting.orphaned,
                "waiting": counts,
                "waiting_accounts": named,
            },
        }

    return anyio.run(read, backend="asyncio")


def _waits(
    workers: list[WorkerStatus], waiting: AccountsWaiting
) -> tuple[dict[str, int], list[dict[str, object]]]:
    """Accounts waiting across the fleet, per `WaitReason`, and some of them named: what each
    worker said of the accounts it holds, then what Redis knows of the others."""
    counts: dict[str, int] = {}
    named: list[dict[str, object]] = []
    since = time.time()
    for worker in workers:
        if since - worker.last_seen > _STOPPED_BEATING:
            continue  # its leases are counted below, as held by a worker that stopped beating
        stats: dict[str, Any] = json.loads(worker.stats)
        for reason, n in dict(stats.get("waiting", {})).items():
            counts[reason] = counts.get(reason, 0) + int(n)
        named.extend(stats.get("waiting_accounts", []))
    fleet = (
        (WaitReason.NO_WORKER, waiting.available),
        (WaitReason.QUIET, waiting.quiet),
        (WaitReason.DEAD_HOLDER, waiting.orphaned),
    )
    for reason, n in fleet:
        if n:
            counts[reason.value] = counts.get(reason.value, 0) + n
    redis_named = (
        [AccountWait("", user, WaitReason.NO_WORKER, None) for user, _ in waiting.longest]
        + [AccountWait("", user, WaitReason.QUIET, until) for user, until in waiting.quieted]
        + [
            AccountWait("", user, WaitReason.DEAD_HOLDER, max(since, expiry), worker)
            for user, worker, expiry in waiting.orphans
        ]
    )
    named.extend(wait.to_json() for wait in redis_named)
    return counts, named


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
        stats = dict(worker["stats"])
        done = ", ".join(f"{stats.get(key, 0)} {key}" for key in ("finished", "requests"))
        lines.append(
            f"  {worker['worker']}: {worker['accounts_held']} account(s) held, seen "
            f"{worker['seen_seconds_ago']} s ago, {done}"
        )
    accounts = status["accounts"]
    assert isinstance(accounts, dict)
    lines.append(
        f"accounts: {accounts['held_by_workers']} held by a worker, "
        f"{accounts['waiting_for_a_worker']} waiting for one, "
        f"{accounts['quiet_after_a_dead_worker']} quiet after their worker died, "
        f"{accounts['lease_held_by_dead_worker']} held by a worker that died"
    )
    lines.extend(_render_waits(accounts))
    return "\n".join(lines)


def _render_waits(accounts: dict[str, Any]) -> list[str]:
    """The accounts waiting, per reason (most first), each with a few of them named."""
    counts: dict[str, int] = accounts["waiting"]
    if not counts:
        return []
    lines = ["accounts waiting, and why:"]
    now = time.time()
    for reason, n in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])):
        shown = [wait for wait in accounts["waiting_accounts"] if wait["why"] == reason]
        named = ", ".join(_named(wait, now) for wait in shown[:3])
        more = f" and {n - len(shown[:3])} more" if named and n > len(shown[:3]) else ""
        known = reason in WaitReason.__members__.values()
        text = WaitReason(reason).explained if known else "as a newer worker says"
        lines.append(f"  {n} {reason} ({text})" + (f": {named}{more}" if named else ""))
    return lines


def _named(wait: dict[str, Any], now: float) -> str:
    """One waiting account: its name (or user id), until when, and its worker."""
    who = wait["account"] or f"user {wait['user_id']}"
    parts = [f"until {when(wait['until'], now)}"] if wait["until"] else []
    if wait["worker"]:
        parts.append(f"worker {wait['worker']}")
    return f"{who} ({', '.join(parts)})" if parts else who
