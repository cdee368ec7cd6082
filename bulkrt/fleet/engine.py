"""The worker of the multi-machine mode: it takes leases on accounts with queued items, runs
their items through the same `Scheduler` and `Dispatcher` as the embedded mode, and hands every
finished item to the job's results in Redis. ``bulkrt worker`` is one of these until stopped; a
``bulkrt run --redis`` runs one beside its ledger pump.

The loop, once a second or when a session ends:

* it beats (``workers``), renews its leases, and reaps the leases of workers that died
  (`bulkrt.fleet.store.FleetStore.reap`: they come back after a quiet period);
* it claims accounts up to its fair share (accounts with work / live workers) and starts a
  *session* on them: their queued items, in order, through a fresh scheduler and dispatcher, with
  a `LeasedSender` per account (the shared budget, the lease's fence), a `SharedResults` sink
  and a `SharedJournal`;
* ``--max-rps`` holds for the process: one `Pace` for all its sessions (each session's
  dispatcher has none of its own, which would let k sessions send k x R per second);
* an account whose items are all finished is released at once (its later items, if a job
  published more meanwhile, go to whoever claims it next).

A lease that is lost (this process stalled past its TTL, or Redis lost it) abandons the whole
session at once: nothing more is sent or recorded for its accounts, whose items stay queued for
the next holder (at least once: at most the requests in flight are sent twice). SIGINT/SIGTERM
(`stop`) stop every session cleanly: requests in flight finish within the grace period, their
results are handed over, the leases are released, and what was not sent stays queued.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial

import anyio
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bulkrt.core.attribution import Evidence
from bulkrt.core.items import Action, Item
from bulkrt.core.retry_policy import ParkPolicy, RetryPolicy, park_policy_for
from bulkrt.core.run_stats import RunStats
from bulkrt.core.scheduler import Scheduler
from bulkrt.core.tiers import LimitModel
from bulkrt.fleet.account_wait import AccountWait, why_waiting
from bulkrt.fleet.budget import SharedBudget
from bulkrt.fleet.connection import patiently
from bulkrt.fleet.credentials_store import RedisCredentialStore
from bulkrt.fleet.leased_sender import LeasedSender
from bulkrt.fleet.published_limits import published_model, same_limits, strictest
from bulkrt.fleet.shared_journal import SharedJournal, load_journal_state
from bulkrt.fleet.shared_results import SharedResults
from bulkrt.fleet.store import FleetStore, Lease
from bulkrt.logs import register_secrets
from bulkrt.redaction import Redactor
from bulkrt.shell.accounts import Accounts
from bulkrt.shell.client import Authorizer, Timeouts, XClient
from bulkrt.shell.credentials import authorizer_for
from bulkrt.shell.dispatcher import Dispatcher, DispatchSettings
from bulkrt.shell.pace import Pace
from bulkrt.shell.sender import HttpSender

__all__ = ["FleetWorker", "WorkerSettings", "item_payload", "payload_item", "worker_name"]

_log = structlog.get_logger()
#: how long one wait for a wake message lasts (shorter than the connection's answer timeout)
_LISTEN = 10.0
#: how often (seconds) a worker works out why its accounts wait, for `bulkrt status --redis`
#: (a walk over every account it holds), and how many of them its heartbeat names
_WAITS_EVERY = 5.0
_WAITS_NAMED = 10


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker behaves (``bulkrt worker``'s options, or ``bulkrt run --redis``'s)."""

    #: the limits of this worker's own (``--tier``, ``--limit``, ``--window``); a job published
    #: with a model of its own runs under that one instead, unless ``explicit_limits``
    model: LimitModel
    api_base: str = "https://api.x.com"
    concurrency: int = 32
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    park: ParkPolicy = field(default_factory=ParkPolicy)
    timeouts: Timeouts = Timeouts()
    grace: float = 20.0
    #: the most requests per second of this process, all sessions together; None for no cap
    max_rps: float | None = None
    #: seconds a lease lives without renewal (renewed every third of it)
    lease_ttl: float = 15.0
    #: how often the loop beats, renews, reaps and claims
    tick: float = 1.0
    #: most accounts one session takes
    session_accounts: int = 1000
    prefix: str = "bulkrt:"
    #: the operator gave this worker its limits on purpose: they apply to every job's items,
    #: and a job published with other limits is warned about once (a driver's own worker runs
    #: under its job's limits, so its are always explicit)
    explicit_limits: bool = False


def worker_name() -> str:
    """A name unique to this process: host, pid and a random suffix (the ledger's ``run``)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def item_payload(item: Item, evidence: Evidence, made: bool, *, superseded: bool = False) -> str:
    """An item as published for the workers, with what earlier runs' journal says of it, and
    whether it is superseded (recorded so, never sent: `bulkrt.ledger.resume`)."""
    return json.dumps(
        {
            "key": item.key,
            "campaign": item.campaign,
            "account": item.account,
            "tweet_id": item.tweet_id,
            "action": item.action.value,
            "source": item.source,
            "line": item.line,
            "evidence": [evidence.possible, evidence.made, evidence.owner],
            "made": made,
            "superseded": superseded,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def payload_item(payload: str) -> tuple[Item, Evidence, bool, bool]:
    """The inverse of `item_payload`: the item, its evidence, made, superseded.

    >>> item = Item("k", "c", "acme", "20", Action.UNDO, "job.csv", 3)
    >>> payload_item(item_payload(item, Evidence(possible=True), False)) == (
    ...     item, Evidence(possible=True), False, False)
    True
    """
    doc = json.loads(payload)
    possible, made, owner = doc["evidence"]
    item = Item(
        doc["key"],
        doc["campaign"],
        doc["account"],
        doc["tweet_id"],
        Action(doc["action"]),
        doc["source"],
        doc["line"],
    )
    return item, Evidence(possible, made, owner), bool(doc["made"]), bool(doc["superseded"])


@dataclass(slots=True)
class _Session:
    """Accounts taken together, and the dispatcher that runs their items."""

    leases: dict[str, Lease]
    #: until when (monotonic) the leases surely live: one TTL after the claim or the last
    #: renewal *began*, less a margin; no request leaves after it (a process that stalled there
    #: cannot send behind the next holder's back)
    valid_until: float = 0.0
    dispatcher: Dispatcher | None = None
    sink: SharedResults | None = None
    #: the accounts' senders (what the shared budget last refused each: `LeasedSender.hold`)
    senders: _Senders | None = None
    lost: bool = False
    #: the user ids of the accounts let go (released, or never usable here)
    released: set[str] = field(default_factory=set)

    def held(self) -> list[Lease]:
        """The leases still held."""
        return [lease for lease in self.leases.values() if lease.user_id not in self.released]

    def valid(self) -> bool:
        return not self.lost and time.monotonic() < self.valid_until


class _Senders(Mapping[str, LeasedSender]):
    """A session's senders by account, each made when the dispatcher first asks for it (its
    account's first request): made all at once, a hundred accounts' credentials and budgets
    held the session's first request back by the time they took."""

    def __init__(self, names: Iterable[str], make: Callable[[str], LeasedSender]) -> None:
        self._names = frozenset(names)
        self._make = make
        self._made: dict[str, LeasedSender] = {}

    def __getitem__(self, name: str) -> LeasedSender:
        sender = self._made.get(name)
        if sender is None:
            if name not in self._names:
                raise KeyError(name)
            sender = self._made[name] = self._make(name)
        return sender

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def made(self, name: str) -> LeasedSender | None:
        """The account's sender if it was made (its account has sent), without making it."""
        return self._made.get(name)


class FleetWorker:
    """One worker process's engine (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        accounts: Accounts,
        settings: WorkerSettings,
        *,
        name: str | None = None,
        info: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name or worker_name()
        self._redis = redis
        self._accounts = accounts
        self._settings = settings
        self._store = FleetStore(redis, settings.prefix)
        self._budget = SharedBudget(redis, settings.prefix)
        self._by_user = {account.user_id: name for name, account in accounts.items()}
        #: every account's OAuth 2.0 tokens, shared through Redis (one store for all of them)
        self._credentials = RedisCredentialStore(
            redis, settings.prefix, accounts.path, {n: a.user_id for n, a in accounts.items()}
        )
        self._info = dict(info or {})
        self._sessions: list[_Session] = []
        self._authorizers: dict[str, Authorizer] = {}
        self._redactor = Redactor(accounts.secrets())
        self._stopping = False
        #: ``--max-rps``, for all the sessions of this process together
        self._pace = Pace(settings.max_rps) if settings.max_rps else None
        self._wake = anyio.Event()
        self._unknown_warned: set[str] = set()
        self.started = time.time()
        #: items this worker finished (lines handed to Redis), requests it sent
        self.finished = 0
        self.requests = 0
        #: the accounts this worker has held
        self.served: set[str] = set()
        #: set by `abandon`: the worker stopped at once, handing nothing over
        self.abandoned = False
        self._scope: anyio.CancelScope | None = None
        #: why the accounts held wait (per reason, and the longest waits), and when it was
        #: worked out (monotonic)
        self._waits: tuple[dict[str, int], list[dict[str, object]]] = ({}, [])
        self._waits_at = -float("inf")
        #: account -> what the operator must do about its credentials (the "needs attention"
        #: lines of a run's summary), as this worker's sessions found it
        self.reauthorize: dict[str, str] = {}
        #: job -> the limit model it was published with (None: none), read once per job
        self._job_models: dict[str, LimitModel | None] = {}
        #: the jobs (or sets of jobs) whose differing limits were warned about
        self._limits_warned: set[str] = set()

    def stop(self) -> None:
        """Stop cleanly: no new claim, sessions finish their requests in flight and hand over."""
        self._stopping = True
        if self._pace is not None:
            self._pace.stop()
        for session in self._sessions:
            if session.dispatcher is not None:
                session.dispatcher.stop()
        self._wake.set()

    def abandon(self) -> None:
        """Stop at once, also while Redis cannot be reached: requests in flight are abandoned
        and nothing more is handed over (their items stay queued; the leases expire)."""
        self.stop()
        self.abandoned = True
        for session in self._sessions:
            if session.dispatcher is not None:
                session.dispatcher.abandon()
        if self._scope is not None:
            self._scope.cancel()

    @property
    def held(self) -> int:
        """Accounts this worker holds now."""
        return sum(len(s.held()) for s in self._sessions if not s.lost)

    async def run(self, *, until: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Work until `stop` (or until ``await until()`` says so while no session runs), or
        until `abandon`."""
        with anyio.CancelScope() as self._scope:
            await self._work(until)
            await patiently(lambda: self._store.leave(self.name), what="leaving the worker list")

    async def _work(self, until: Callable[[], Awaitable[bool]] | None) -> None:
        async with anyio.create_task_group() as listening:
            listening.start_soon(self._listen)
            await self._serve(until)
            listening.cancel_scope.cancel()

    async def _listen(self) -> None:
        """Wake the loop as soon as a driver makes accounts available (`KeySpace.wake`), so that
        every idle worker claims its share at once. Only a shortcut: the loop's own look (every
        quarter tick when idle) finds the accounts anyway, so a message lost while Redis cannot
        be reached costs a quarter tick at most."""
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._store.keys.wake)
                    while True:
                        if await pubsub.get_message(timeout=_LISTEN):
                            self._wake.set()
            except (RedisError, OSError):
                await anyio.sleep(self._settings.tick)

    async def _serve(self, until: Callable[[], Awaitable[bool]] | None) -> None:
        settings = self._settings
        async with (
            XClient(
                settings.api_base, timeouts=settings.timeouts, max_connections=settings.concurrency
            ) as client,
            anyio.create_task_group() as sessions,
        ):
            while not self._stopping:
                await self._tend()
                if not self._stopping:
                    began = time.monotonic()
                    leases = await self._claim()
                    if leases:
                        # counted as held at once (the loop may claim again before the
                        # session has started)
                        claimed = {self._by_user.get(ls.user_id, ls.user_id): ls for ls in leases}
                        session = _Session(claimed, valid_until=self._valid_until(began))
                        self._sessions.append(session)
                        sessions.start_soon(self._session, session, leases, client)
                        continue
                if until is not None and not self._sessions and await until():
                    break
                # an idle worker looks for work four times a tick: a job just published
                # is taken up within a quarter of a tick
                with anyio.move_on_after(settings.tick if self._sessions else settings.tick / 4):
                    await self._wake.wait()
                self._wake = anyio.Event()
            self.stop()

    async def announce(self) -> None:
        """Beat once now: the workers claiming their fair share count this one from then on (a
        driver announces its worker before it lets anyone claim its job's accounts, so that the
        workers already waiting leave it its share)."""
        await self._beat()

    async def _tend(self) -> None:
        """Beat, renew the leases held, and reap the leases of workers that died."""
        settings = self._settings
        await self._beat()
        for session in self._sessions:
            held = session.held()
            if session.lost or not held:
                continue
            began = time.monotonic()
            lost = await patiently(
                partial(self._store.renew, held, settings.lease_ttl),
                what="renewing leases",
            )
            session.valid_until = self._valid_until(began)
            # an account released while the renewal was on its way is not lost: it was let go
            if lost - session.released:
                self._lost(session, f"{len(lost - session.released)} lease(s) lost at renewal")
        await patiently(lambda: self._store.reap(self._quiet()), what="reaping expired leases")

    async def _beat(self) -> None:
        """Say this worker is alive, with its counts (for `bulkrt status --redis`)."""
        settings = self._settings
        live = [s for s in self._sessions if s.dispatcher is not None and s.sink is not None]
        stats: dict[str, object] = {
            "finished": self.finished + sum(s.sink.lines for s in live if s.sink),
            "requests": self.requests
            + sum(s.dispatcher.stats().requests for s in live if s.dispatcher),
            "held": self.held,
        }
        if time.monotonic() - self._waits_at >= _WAITS_EVERY:
            self._waits_at = time.monotonic()
            self._waits = self._waiting(time.time())
        stats["waiting"], stats["waiting_accounts"] = self._waits
        info = {**self._info, "stats": json.dumps(stats), "started": str(self.started)}
        await patiently(
            lambda: self._store.beat(self.name, info, 3 * settings.tick + settings.lease_ttl),
            what="the worker's heartbeat",
        )

    def _waiting(self, now: float) -> tuple[dict[str, int], list[dict[str, object]]]:
        """Why the accounts held wait: how many per `WaitReason`, and the longest waits (those
        with no end first)."""
        waits: list[AccountWait] = []
        for session in self._sessions:
            dispatcher = session.dispatcher
            if session.lost or dispatcher is None:
                continue
            scheduler = dispatcher.scheduler
            for lease in session.held():
                name = self._by_user.get(lease.user_id)
                if name is None or session.senders is None:
                    continue
                sender = session.senders.made(name)
                head = scheduler.work.head(name)
                window_at = (
                    None
                    if head is None
                    else scheduler.limiter.ready_at(name, head.item.action, now)
                )
                why = why_waiting(
                    scheduler.state(name, now),
                    scheduler.resumes_at(name, now),
                    dispatcher.last_event.get(name),
                    None if sender is None else sender.hold,
                    now,
                    window_at=window_at,
                )
                if why is not None:
                    waits.append(AccountWait(name, lease.user_id, why[0], why[1], self.name))
        counts: dict[str, int] = {}
        for wait in waits:
            counts[wait.reason.value] = counts.get(wait.reason.value, 0) + 1
        waits.sort(key=lambda wait: -math.inf if wait.until is None else -wait.until)
        return counts, [wait.to_json() for wait in waits[:_WAITS_NAMED]]

    def _valid_until(self, began: float) -> float:
        """Until when leases claimed or renewed by a call that began at ``began`` surely live."""
        ttl = self._settings.lease_ttl
        return began + ttl - min(self._settings.tick, ttl / 4)

    def _quiet(self) -> float:
        """After a lease expired, how long its account waits: a request the dead holder sent
        before it died (so before the lease expired) lands or times out within the request
        timeout, so the next holder's cannot overtake it."""
        return self._settings.timeouts.total

    async def _claim(self) -> list[Lease]:
        """Claim accounts up to this worker's fair share of those with work."""
        settings = self._settings
        waiting = await patiently(self._store.waiting, what="counting accounts with work")
        if not waiting.available:
            return []
        live = await patiently(
            lambda: self._store.workers(live_within=3 * settings.tick + settings.lease_ttl),
            what="listing live workers",
        )
        share = math.ceil((waiting.available + waiting.leased) / max(1, len(live)))
        room = min(settings.session_accounts, max(1, share) - self.held)
        if room <= 0:
            return []
        return await patiently(
            lambda: self._store.claim(self.name, room, settings.lease_ttl),
            what="claiming accounts",
        )

    def _lost(self, session: _Session, why: str) -> None:
        if session.lost:
            return
        session.lost = True
        _log.warning("worker_leases_lost", worker=self.name, detail=why)
        if session.dispatcher is not None:
            session.dispatcher.abandon()

    async def _session(self, session: _Session, leases: list[Lease], client: XClient) -> None:
        try:
            await self._run_session(session, leases, client)
        finally:
            self._sessions.remove(session)
            self._wake.set()

    async def _usable(self, session: _Session, leases: list[Lease]) -> list[Lease]:
        """The leases of accounts this worker has credentials for; the others are released."""
        usable: list[Lease] = []
        for lease in leases:
            if lease.user_id in self._by_user:
                usable.append(lease)
                continue
            session.released.add(lease.user_id)  # let go, not lost (see `_tend`)
            if lease.user_id not in self._unknown_warned:
                self._unknown_warned.add(lease.user_id)
                _log.error(
                    "worker_lacks_account",
                    user_id=lease.user_id,
                    detail="a job has items for this user, whose credentials this worker's "
                    "accounts file does not hold; left to the other workers",
                )
            await self._release(lease)
        return usable

    async def _queued(
        self, session: _Session, leases: list[Lease]
    ) -> tuple[list[tuple[str, Item, Evidence, bool]], set[str]]:
        """The leased accounts' queued items in order, as (job, item, evidence, made), and the
        keys of those published as superseded."""
        queued: list[tuple[str, Item, Evidence, bool]] = []
        superseded: set[str] = set()
        every = await patiently(
            partial(self._store.queued_many, [lease.user_id for lease in leases]),
            what="reading queued items",
        )
        for lease, rows in zip(leases, every, strict=True):
            items = [payload_item(payload) + (job,) for job, _, payload in rows]
            name = self._by_user[lease.user_id]
            if any(item.account != name for item, *_ in items):
                await self._mismatched(session, lease, {item.account for item, *_ in items})
                continue
            for item, evidence, made, overtaken, job in items:
                queued.append((job, item, evidence, made))
                if overtaken:
                    superseded.add(item.key)
        return queued, superseded

    async def _mismatched(self, session: _Session, lease: Lease, names: set[str]) -> None:
        """The job names the account otherwise than this worker's accounts file does (the files
        disagree on whose user id is whose): leave it to the other workers."""
        session.released.add(lease.user_id)
        del session.leases[self._by_user[lease.user_id]]
        if lease.user_id not in self._unknown_warned:
            self._unknown_warned.add(lease.user_id)
            _log.error(
                "worker_accounts_file_disagrees",
                user_id=lease.user_id,
                detail=f"the job names this user {', '.join(sorted(names))}; this worker's "
                f"accounts file names it {self._by_user[lease.user_id]}: left to the other "
                "workers (give every machine the same accounts file)",
            )
        await self._release(lease)

    async def _run_session(self, session: _Session, leases: list[Lease], client: XClient) -> None:
        settings = self._settings
        usable = await self._usable(session, leases)
        session.leases = {self._by_user[lease.user_id]: lease for lease in usable}
        self.served.update(session.leases)
        if not usable:
            return
        queued, superseded = await self._queued(session, usable)
        if not session.leases:
            return
        jobs = {item.key: job for job, item, _, _ in queued}
        remaining: dict[str, int] = {name: 0 for name in session.leases}
        for _, item, _, _ in queued:
            remaining[item.account] = remaining.get(item.account, 0) + 1
        model = await self._session_model({job for job, _, _, _ in queued})
        park = settings.park if model is settings.model else park_policy_for(model.retweet.period)
        earlier, made = await load_journal_state(self._redis, settings.prefix, queued)
        pairs = {item.key: (item.account, item.tweet_id) for _, item, _, _ in queued}
        journal = SharedJournal(self._redis, settings.prefix, jobs, earlier, made, pairs)

        def done(lease: Lease) -> None:
            if lease.user_id not in session.released:
                session.released.add(lease.user_id)
                releases.start_soon(self._release, lease)

        session.sink = sink = SharedResults(
            self._store,
            session.leases,
            jobs,
            remaining,
            self._redactor,
            on_done=done,
            on_lost=lambda lease: self._lost(session, f"the lease of {lease.user_id} was lost"),
        )
        for name, left in remaining.items():
            if not left:
                session.released.add(session.leases[name].user_id)
                await self._release(session.leases[name])
        scheduler = Scheduler(
            model, concurrency=settings.concurrency, retry=settings.retry, park=park
        )
        session.senders = senders = _Senders(
            session.leases,
            lambda name: self._sender(
                name, session.leases[name], client, session, journal, model, park.base
            ),
        )
        session.dispatcher = dispatcher = Dispatcher(
            scheduler,
            senders,
            sink,
            run_id=self.name,
            journal=journal,
            superseded=superseded,
            stats=RunStats(total=len(queued), accounts=tuple(sorted(session.leases))),
            # no --max-rps of its own: the worker's `Pace` holds it for all its sessions
            settings=DispatchSettings(grace=settings.grace, api_base=client.base_url),
        )
        if self._stopping:
            dispatcher.stop()
        _log.info(
            "worker_session",
            worker=self.name,
            accounts=len(usable),
            items=len(queued),
            users=[lease.user_id for lease in usable[:20]],
            fences=[lease.fence for lease in usable[:20]],
        )
        async with anyio.create_task_group() as releases:
            async with anyio.create_task_group() as background:
                background.start_soon(sink.flush_forever)
                stats = await dispatcher.run(iter([item for _, item, _, _ in queued]))
                if not session.lost:
                    await sink.drain()
                    await journal.close()
                background.cancel_scope.cancel()
            self.requests += stats.requests
            self.finished += sink.lines
            session.sink = None  # counted in the worker's totals from now on
            self.reauthorize.update(stats.reauthorize)
            if not session.lost:
                for lease in session.held():
                    session.released.add(lease.user_id)
                    releases.start_soon(self._release, lease)

    async def _session_model(self, jobs: set[str]) -> LimitModel:
        """The limits a session's items run under: the model their jobs were published with
        (the strictest, should jobs on the same accounts disagree), or this worker's own when
        the operator gave it limits on purpose or no job published any. Each disagreement is
        warned about once, naming both."""
        own = self._settings.model
        unread = sorted(job for job in jobs if job not in self._job_models)
        if unread:
            documents = await patiently(
                partial(self._store.job_limits, unread), what="reading the jobs' limits"
            )
            for job, document in documents.items():
                self._job_models[job] = published_model(document)
        published = {
            job: model for job in sorted(jobs) if (model := self._job_models[job]) is not None
        }
        if self._settings.explicit_limits or not published:
            for job, model in published.items():
                if not same_limits(model, own) and job not in self._limits_warned:
                    self._limits_warned.add(job)
                    _log.warning(
                        "worker_limits_differ",
                        worker=self.name,
                        job=job,
                        detail=f"job {job} was published with {model.source}; this worker "
                        f"was given {own.source}: its items run under this worker's limits "
                        "here (start the worker without --tier, --limit and --window to run "
                        "each job under the limits its driver was given)",
                    )
            return own
        chosen = strictest(published.values())
        differing = sorted(
            job for job, model in published.items() if not same_limits(model, chosen)
        )
        if differing and ",".join(sorted(published)) not in self._limits_warned:
            self._limits_warned.add(",".join(sorted(published)))
            _log.warning(
                "jobs_limits_differ",
                worker=self.name,
                jobs=sorted(published),
                detail="jobs on the same accounts were published with different limits ("
                + "; ".join(f"{job}: {model.source}" for job, model in published.items())
                + f"): their items run under the strictest, {chosen.source}",
            )
        return chosen

    async def bring_accounts_file_up_to_date(self, names: Iterable[str]) -> None:
        """Copy the newest OAuth 2.0 tokens Redis holds for ``names`` into this machine's
        accounts file (another process may have rotated them), so that the file works on its own
        again, with or without Redis."""
        for name in names:
            if self._accounts[name].oauth2 is not None:
                async with self._credentials.lease(name):
                    pass  # taking the lease reads Redis's tokens and writes them to the file

    async def _release(self, lease: Lease) -> None:
        await patiently(lambda: self._store.release(lease), what="releasing an account")
        self._wake.set()

    def _sender(
        self,
        name: str,
        lease: Lease,
        client: XClient,
        session: _Session,
        journal: SharedJournal,
        model: LimitModel,
        park: float,
    ) -> LeasedSender:
        authorizer = self._authorizers.get(name)
        if authorizer is None:

            def learn(values: list[str | None]) -> None:
                register_secrets(values)
                self._redactor.add(values)

            authorizer = self._authorizers[name] = authorizer_for(
                self._accounts[name],
                token_endpoint=client.token,
                store=self._credentials,
                clock=time.time,
                on_secret=learn,
            )
        inner = HttpSender(client, authorizer, self._accounts[name].user_id)
        return LeasedSender(
            inner,
            self._budget,
            lease,
            model,
            park=park,
            on_lost=lambda lost: self._lost(session, f"the lease of {lost.user_id} was lost"),
            valid=session.valid,
            turn=None if self._pace is None else partial(self._turn, self._pace, session),
            departure=None if self._pace is None else self._pace.departure,
            marks=journal.marks(name),
            account=name,
        )

    @staticmethod
    async def _turn(pace: Pace, session: _Session) -> bool:
        """A request's ``--max-rps`` turn; False when the worker or the session stopped first
        (a dispatcher also stops on its own, when the API base proves wrong)."""
        granted = await pace.turn()
        return granted and (session.dispatcher is None or not session.dispatcher.stopping)
