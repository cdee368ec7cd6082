"""The fleet's shared state in Redis: registered jobs, their queued items and finished results,
account leases with fencing, the journal, and the workers' heartbeats.

`FleetStore` is the one reader and writer of these keys (their names are in
`bulkrt.fleet.keyspace`). A driver registers a job, publishes its items per account in file
order and pumps the results stream into its ledger; workers claim accounts, renew their leases,
read the account's queued items and complete them, each completion fenced by the lease. Every
step that touches several keys is one Lua script (`bulkrt.fleet.store_scripts` argues why that
is safe), and every time comes from Redis ``TIME``, so workers on different machines never
compare clocks. The scripts build keys from the prefix as they go, so they need one Redis
server (or one shard), not a cluster spread over slots. Redis must never evict keys
(``maxmemory-policy noeviction``, its default): an evicted lease would read as an expired one.

Times returned here are epoch seconds as Redis saw them.

    store = FleetStore(redis.asyncio.Redis.from_url(url))
    if await store.register_job(meta):
        await store.publish(meta.job_id, rows)
        await store.finish_publishing(meta.job_id)
    for lease in await store.claim("host-1:4242", n=8, ttl=10.0):
        for job_id, item_key, payload in await store.queued(lease.user_id):
            ...
            await store.complete(lease, job_id, item_key, ledger_line)
        await store.release(lease)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import redis.asyncio
from redis.commands.core import AsyncScript

from bulkrt.fleet import store_scripts
from bulkrt.fleet.keyspace import KeySpace
from bulkrt.fleet.script_calls import run_scripts

__all__ = [
    "AccountsWaiting",
    "FleetStore",
    "JobMeta",
    "JobStatus",
    "Lease",
    "WorkerStatus",
]

#: the most expired leases one `FleetStore.reap` call returns to the available accounts
REAP_LIMIT = 1000
#: how many of the longest waiting accounts `FleetStore.waiting` names
LONGEST_WAITING = 5


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's claim on one account: it alone sends for the account while the lease lives.
    ``quiet_until`` (epoch seconds, 0.0 when none) is when the previous holder's lease expired
    plus the quiet period: nothing may be sent for the account before it."""

    user_id: str
    worker: str
    fence: int
    quiet_until: float

    @property
    def value(self) -> str:
        """What the lease key holds while this lease is live."""
        return f"{self.worker}|{self.fence}"


@dataclass(frozen=True, slots=True)
class JobMeta:
    """What a driver registers about its job: its ledger, where the driver runs, how many items
    the job holds, when it was created (epoch seconds), and the limit model its items run under
    (`bulkrt.fleet.published_limits`; empty for none)."""

    job_id: str
    ledger: str
    host: str
    pid: int
    total: int
    created: float
    limits: str = ""


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A registered job as Redis holds it now: ``published`` once every item is published,
    ``done`` items completed, ``queued`` still waiting to be sent, ``results_waiting`` lines not
    yet written to the ledger by the driver, ``driver_seen`` the driver's last beat (epoch s)."""

    job_id: str
    ledger: str
    host: str
    pid: int
    total: int
    published: bool
    done: int
    queued: int
    results_waiting: int
    driver_seen: float


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A worker that beat recently: where it runs, since when (``started``, as it reported it),
    its last beat (epoch s), how many live leases it holds, and its stats JSON."""

    worker: str
    host: str
    pid: int
    started: float
    last_seen: float
    leases: int
    stats: str


@dataclass(frozen=True, slots=True)
class AccountsWaiting:
    """Accounts across the fleet: ``available`` (items queued, no lease), ``leased``, ``quiet``
    (an expired lease's quiet period not over yet, and no new holder), and ``longest``: the
    available accounts that have waited longest, as (user id, seconds waited), longest first.
    ``orphaned`` leases are held by a worker that stopped beating (or expired, not yet reaped):
    their accounts wait for the lease to expire; ``orphans`` names some of them, as (user id,
    worker, expiry in epoch s), and ``quieted`` accounts in their quiet period, as (user id,
    until epoch s)."""

    available: int
    leased: int
    quiet: int
    longest: tuple[tuple[str, float], ...]
    orphaned: int = 0
    orphans: tuple[tuple[str, str, float], ...] = ()
    quieted: tuple[tuple[str, float], ...] = ()


def _text(value: Any) -> str:
    """A reply value as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _triples(flat: Sequence[Any]) -> list[tuple[str, str, str]]:
    """A script's flat answer as consecutive (job id, item key, item JSON)."""
    return [
        (_text(flat[i]), _text(flat[i + 1]), _text(flat[i + 2])) for i in range(0, len(flat), 3)
    ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class FleetStore:
    """The fleet's jobs, items, leases, results, journal and workers in one Redis."""

    def __init__(self, redis: redis.asyncio.Redis, prefix: str = "bulkrt:") -> None:
        self.redis = redis
        self.keys = KeySpace(prefix)
        register = redis.register_script
        self._register_job = register(store_scripts.REGISTER_JOB)
        self._publish = register(store_scripts.PUBLISH)
        self._finish_publishing = register(store_scripts.FINISH_PUBLISHING)
        self._driver_beat = register(store_scripts.DRIVER_BEAT)
        self._make_available = register(store_scripts.MAKE_AVAILABLE)
        self._claim = register(store_scripts.CLAIM)
        self._renew = register(store_scripts.RENEW)
        self._release = register(store_scripts.RELEASE)
        self._reap = register(store_scripts.REAP)
        self._queued = register(store_scripts.QUEUED)
        self._complete = register(store_scripts.COMPLETE)
        self._job_status = register(store_scripts.JOB_STATUS)
        self._finish_job = register(store_scripts.FINISH_JOB)
        self._worker_beat = register(store_scripts.WORKER_BEAT)
        self._workers = register(store_scripts.WORKERS)
        self._waiting = register(store_scripts.WAITING)

    async def _run(self, script: AsyncScript, *args: str | int | float) -> Any:
        """Run one of the scripts, which all take the key prefix first."""
        return await script(keys=[], args=[self.keys.prefix, *args])

    async def _pipelined(
        self, script: AsyncScript, calls: Sequence[Sequence[str | int | float]]
    ) -> list[Any]:
        """Run ``script`` once per argument list of ``calls``, in one pipeline (one round trip),
        each call atomic on its own; their answers in order (`run_scripts`: a Redis that has
        not the script loads it once)."""
        answers = await run_scripts(self.redis, [(script, (), args) for args in calls])
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        return answers

    # -- jobs --------------------------------------------------------------------------------
    async def register_job(self, meta: JobMeta) -> bool:
        """Register a job; False when it is already registered (a driver that restarted: it
        does not publish again but resumes pumping its results)."""
        fields = (meta.ledger, meta.host, meta.pid, meta.total, repr(meta.created), meta.limits)
        return bool(await self._run(self._register_job, meta.job_id, *fields))

    async def publish(
        self,
        job_id: str,
        items: Iterable[tuple[int, str, str, str]],
        batch: int = 1000,
        *,
        available: bool = True,
    ) -> int:
        """Queue a registered job's items, given as (serial, user id, item key, item JSON) in
        increasing serial (file) order, one script call per `batch` items; returns how many
        were newly queued. Publishing again after a partial publish queues only what the first
        did not (the items it did publish may have been completed since); items out of serial
        order are refused with `redis.exceptions.ResponseError`, before anything of their batch
        is written. With ``available=False`` the accounts wait for `make_available` before any
        worker may claim them."""
        added = 0
        rows = iter(items)
        while chunk := list(islice(rows, batch)):
            args = [field for item in chunk for field in item]
            added += int(await self._run(self._publish, job_id, "1" if available else "0", *args))
        return added

    async def make_available(self, job_id: str) -> int:
        """Let workers claim the accounts the job has published items for (those with items
        queued and no lease); how many became available."""
        return int(await self._run(self._make_available, job_id))

    async def finish_publishing(self, job_id: str) -> None:
        """Mark every item of the job published."""
        await self._run(self._finish_publishing, job_id)

    async def driver_beat(self, job_id: str) -> None:
        """Record that the job's driver is alive (`JobStatus.driver_seen`)."""
        await self._run(self._driver_beat, job_id)

    async def job_meta(self, job_id: str) -> JobStatus | None:
        """The job's status, or None when it is not registered."""
        found = await self._statuses(job_id)
        return found[0] if found else None

    async def jobs(self) -> list[JobStatus]:
        """Every registered job, in the order they were registered."""
        return await self._statuses()

    async def _statuses(self, *job_ids: str) -> list[JobStatus]:
        rows = await self._run(self._job_status, *job_ids)
        return [
            JobStatus(
                job_id=_text(row[0]),
                ledger=_text(row[1]),
                host=_text(row[2]),
                pid=int(row[3]),
                total=int(row[4]),
                published=_text(row[5]) == "1",
                done=int(row[6]),
                queued=int(row[8]),
                results_waiting=int(row[9]),
                driver_seen=int(row[7]) / 1000,
            )
            for row in rows
        ]

    async def job_limits(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The ``limits`` each of ``job_ids`` was registered with, in one round trip ("" for a
        job registered without, or no longer registered)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "limits")
            answers = await pipe.execute()
        return {
            job_id: "" if answer is None else _text(answer)
            for job_id, answer in zip(job_ids, answers, strict=True)
        }

    async def finish_job(self, job_id: str) -> None:
        """Delete everything about the job: once its driver has written every result to its
        ledger, or to abandon it (items still queued are dropped)."""
        await self._run(self._finish_job, job_id)

    # -- leases ------------------------------------------------------------------------------
    async def claim(self, worker: str, n: int, ttl: float) -> list[Lease]:
        """Lease up to `n` available accounts to `worker` for `ttl` seconds, those waiting
        longest first, each with a new fence."""
        flat = await self._run(self._claim, worker, n, _ms(ttl))
        return [
            Lease(_text(flat[i]), worker, int(flat[i + 1]), int(flat[i + 2]) / 1000)
            for i in range(0, len(flat), 3)
        ]

    async def renew(self, leases: Sequence[Lease], ttl: float) -> set[str]:
        """Extend the leases still held to `ttl` seconds from now; returns the user ids of
        those lost (expired, or claimed since by another worker): stop sending for them."""
        if not leases:
            return set()
        args = [field for lease in leases for field in (lease.user_id, lease.value)]
        return {_text(uid) for uid in await self._run(self._renew, _ms(ttl), *args)}

    async def release(self, lease: Lease) -> None:
        """Give the account back, with no quiet period: call it only with no request in flight
        for the account. The account is available again if it still has queued items. A lease
        no longer held releases nothing."""
        await self._run(self._release, lease.user_id, lease.value)

    async def reap(self, quiet: float) -> list[str]:
        """Return accounts whose lease expired to the available ones, with `quiet` seconds
        before anything may be sent for them; returns their user ids. Any worker calls it
        every second or so; concurrent calls reap each account once."""
        return [_text(uid) for uid in await self._run(self._reap, _ms(quiet), REAP_LIMIT)]

    # -- items and results -------------------------------------------------------------------
    async def queued(self, user_id: str) -> list[tuple[str, str, str]]:
        """The account's queued items as (job id, item key, item JSON), by job registration
        order, then file order."""
        return _triples(await self._run(self._queued, user_id))

    async def queued_many(self, user_ids: Sequence[str]) -> list[list[tuple[str, str, str]]]:
        """`queued` for several accounts in one round trip, in the order given."""
        answers = await self._pipelined(
            self._queued, [[self.keys.prefix, user_id] for user_id in user_ids]
        )
        return [_triples(flat) for flat in answers]

    async def complete(self, lease: Lease, job_id: str, item_key: str, line: str) -> bool:
        """Finish one item: append its ledger line to the job's results and drop it from the
        queue, only if `lease` is still held; False (nothing changed) when it is not."""
        return await self.complete_many(lease, [(job_id, item_key, line)])

    async def complete_many(self, lease: Lease, done: Sequence[tuple[str, str, str]]) -> bool:
        """`complete` for several (job id, item key, ledger line) of the lease's account in one
        script call: all or nothing. An item no longer queued (completed already) is skipped,
        so no line is appended twice."""
        args = [field for item in done for field in item]
        return int(await self._run(self._complete, lease.user_id, lease.value, *args)) >= 0

    async def complete_each(
        self, batches: Sequence[tuple[Lease, Sequence[tuple[str, str, str]]]]
    ) -> list[bool]:
        """`complete_many` for several accounts' batches in one round trip (a pipeline, each
        batch its own script call, all or nothing per account), in the order given."""
        calls: list[list[str | int | float]] = []
        for lease, done in batches:
            args: list[str | int | float] = [self.keys.prefix, lease.user_id, lease.value]
            args += [field for item in done for field in item]
            calls.append(args)
        return [int(answer) >= 0 for answer in await self._pipelined(self._complete, calls)]

    async def results(
        self, job_id: str, after: str = "0-0", count: int = 1000
    ) -> list[tuple[str, str]]:
        """Up to `count` result entries after entry id `after`: (entry id, ledger line)."""
        return await self._stream(self.keys.results(job_id), after, count)

    async def drop_results(self, job_id: str, ids: Sequence[str]) -> None:
        """Delete result entries the driver has written to its ledger and fsynced."""
        if ids:
            await self.redis.xdel(self.keys.results(job_id), *ids)

    # -- journal -----------------------------------------------------------------------------
    async def journal(self, job_id: str, lines: Sequence[str]) -> None:
        """Append journal lines to the job's journal, all or none."""
        if not lines:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for line in lines:
                pipe.xadd(self.keys.journal(job_id), {"line": line})
            await pipe.execute()

    async def journal_lines(
        self, job_id: str, after: str = "0-0", count: int = 1000
    ) -> list[tuple[str, str]]:
        """Up to `count` journal entries after entry id `after`: (entry id, journal line)."""
        return await self._stream(self.keys.journal(job_id), after, count)

    async def drop_journal(self, job_id: str, ids: Sequence[str]) -> None:
        """Delete journal entries no longer needed."""
        if ids:
            await self.redis.xdel(self.keys.journal(job_id), *ids)

    async def _stream(self, key: str, after: str, count: int) -> list[tuple[str, str]]:
        entries = await self.redis.xrange(key, min=f"({after}", max="+", count=count) or []
        found = []
        for entry_id, fields in entries:
            by_name = {_text(name): _text(value) for name, value in (fields or {}).items()}
            found.append((_text(entry_id), by_name.get("line", "")))
        return found

    # -- workers -----------------------------------------------------------------------------
    async def beat(self, worker: str, info: Mapping[str, str], ttl: float) -> None:
        """Record that `worker` is alive, with its details (``host``, ``pid``, ``started``,
        ``stats``), kept for `ttl` seconds unless it beats again."""
        fields = [field for pair in info.items() for field in pair]
        await self._run(self._worker_beat, worker, _ms(ttl), *fields)

    async def workers(self, live_within: float) -> list[WorkerStatus]:
        """The workers that beat within the last `live_within` seconds, least recent first."""
        rows = await self._run(self._workers, _ms(live_within))
        found = []
        for worker, last_ms, held, flat in rows:
            info = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
            found.append(
                WorkerStatus(
                    worker=_text(worker),
                    host=info.get("host", ""),
                    pid=int(info.get("pid", "0")),
                    started=float(info.get("started", "0")),
                    last_seen=float(_text(last_ms)) / 1000,
                    leases=int(held),
                    stats=info.get("stats", "{}"),
                )
            )
        return found

    async def leave(self, worker: str) -> None:
        """Forget a worker that stops (release its leases first)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.workers, worker)
            pipe.delete(self.keys.worker(worker))
            await pipe.execute()

    async def waiting(self, live_within: float | None = None) -> AccountsWaiting:
        """How many accounts are available, leased and quiet, who waits longest, and (given
        ``live_within``: a walk over every lease, for ``bulkrt status``) which leases are held
        by a worker that has not beat within ``live_within`` seconds."""
        live = 0 if live_within is None else _ms(live_within)
        answer = await self._run(self._waiting, LONGEST_WAITING, live)
        available, leased, quiet, now_ms, flat, orphaned, orphans, quieted = answer
        longest = tuple(
            (_text(flat[i]), (int(now_ms) - float(_text(flat[i + 1]))) / 1000)
            for i in range(0, len(flat), 2)
        )
        return AccountsWaiting(
            int(available),
            int(leased),
            int(quiet),
            longest,
            orphaned=int(orphaned),
            orphans=tuple(
                (_text(orphans[i]), _text(orphans[i + 1]), float(_text(orphans[i + 2])) / 1000)
                for i in range(0, len(orphans), 3)
            ),
            quieted=tuple(
                (_text(quieted[i]), float(_text(quieted[i + 1])) / 1000)
                for i in range(0, len(quieted), 2)
            ),
        )
