"""`Simulation`: runs of a job through the real scheduler, dispatcher, ledger writer and sent
journal against one `SandboxState`, each run on its own virtual clock, the next starting where
the last one stopped, deterministically from a seed.

A run does what ``bulkrt run`` does with the same ledger (take the lock, read the finished keys,
open the journal, check the resume, skip what is finished, dispatch the rest), with the journal
flushed on the event loop instead of in a thread. ``crash_after`` kills it at a virtual moment:
what was not durable is lost (ledger lines after the last fsync, journal lines not flushed), and
requests in flight may or may not have reached the sandbox.

    sim = Simulation(SandboxConfig(users=4, fault_rates={FaultKind.E503: 0.05}), seed=7)
    first = sim.run(items, ledger, crash_after=12.5)   # killed 12.5 virtual seconds in
    second = sim.run(items, ledger)                    # the same command again: resume
    sim.state.retweets                                 # what the API holds now
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Coroutine, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from bulkrt.core.first_answers import FirstAnswers
from bulkrt.core.items import Item
from bulkrt.core.retry_policy import ParkPolicy, RetryPolicy
from bulkrt.core.run_stats import RunStats
from bulkrt.core.scheduler import Scheduler
from bulkrt.core.tiers import LimitModel, limit_model
from bulkrt.ledger.journal import SentJournal
from bulkrt.ledger.resume import finished_keys, plan_resume
from bulkrt.ledger.writer import LedgerWriter
from bulkrt.sandbox.config import Endpoint, SandboxConfig
from bulkrt.sandbox.state import SandboxState
from bulkrt.shell.client import Authorizer, StaticAuthorization
from bulkrt.shell.dispatcher import Dispatcher, DispatchSettings
from bulkrt.simulation.sim_sender import SimAccount, SimSender
from bulkrt.simulation.virtual_time import VirtualClock

__all__ = ["SimRun", "SimSettings", "Simulation", "simulate"]

#: the virtual epoch every simulation starts at (2027-01-15), so ledgers never hold today's date
EPOCH = 1_800_000_000.0
#: a token lifetime no simulation outlives: refreshing tokens is not simulated
_FOREVER = 10.0**9


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How the simulated ``bulkrt run`` behaves: its options, and the network's."""

    #: the client's limit model; None: the sandbox's own limits (tier, --limit, --window)
    model: LimitModel | None = None
    concurrency: int = 32
    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_rps: float | None = None
    lookahead: int = 50_000
    grace: float = 20.0
    #: seconds an answer takes, there and back
    latency: float = 0.0
    read_timeout: float = 30.0
    #: sandbox limits this short are parked for a few windows, as ``bulkrt run`` does
    park_base: float | None = None


@dataclass(frozen=True, slots=True)
class SimRun:
    """What one simulated run did."""

    ledger: Path
    journal: Path
    run_id: str
    #: virtual epoch seconds when the run started and when it ended (or was killed)
    started: float
    ended: float
    #: seconds from the start until the last request went (0 when none went)
    makespan: float
    #: requests that reached the simulated API, and how many of them it answered 429
    requests: int
    throttled: int
    #: the run was killed (``crash_after``) before it finished
    crashed: bool
    #: what the run did (items finished before it included)
    stats: RunStats
    #: per account, seconds from the start until its last request went
    last_request: dict[str, float]


class Simulation:
    """One sandbox world and the runs made against it (see the module docstring)."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        seed: int = 0,
        settings: SimSettings | None = None,
        start: float = EPOCH,
    ) -> None:
        self.config = replace(config, token_ttl=max(config.token_ttl, _FOREVER))
        self.state = SandboxState(self.config, now=start)
        self.settings = settings or SimSettings()
        self.seed = seed
        self.now = start
        self.runs = 0
        self._rng = random.Random(seed)
        users = self.state.world.users
        self.user_ids = {u.name: u.user_id for u in users}
        self._auth: dict[str, Authorizer] = {
            u.name: StaticAuthorization(f"Bearer {u.oauth2_access_token}") for u in users
        }

    def model(self) -> LimitModel:
        """The client's limit model: the settings', else the sandbox's own limits."""
        if self.settings.model is not None:
            return self.settings.model
        retweets = self.config.windows()[Endpoint.RETWEET]
        return limit_model(self.config.tier, limit=retweets.limit, window=retweets.seconds)

    def run(
        self,
        items: Iterable[Item],
        ledger: Path,
        *,
        crash_after: float | None = None,
        gap: float = 1.0,
        beside: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> SimRun:
        """Run ``items`` (a list, or anything iterable again: it is read up to three times)
        with ``ledger``, ``gap`` virtual seconds after the previous run ended; killed
        ``crash_after`` seconds in, if given. ``beside`` runs on the same virtual clock while
        the run lasts (what the account owners do meanwhile), and is cancelled when it ends."""
        self.runs += 1
        run_id = f"sim{self.seed}-{self.runs}"
        clock = VirtualClock(self.now + (gap if self.runs > 1 else 0.0))
        sender = SimSender(
            self.state,
            clock.now,
            latency=self.settings.latency,
            read_timeout=self.settings.read_timeout,
        )
        throttled = self.state.by_status["429"]
        with LedgerWriter(ledger, clock=clock.now) as writer:
            finished = finished_keys(ledger)
            journal = SentJournal(ledger, inline=True)
            journal.open(finished=finished)
            resume = plan_resume(items, finished, ledger)
            start = resume.start(sum(1 for _ in items), (item.account for item in items))
            remaining = resume.remaining(items)
            dispatcher = self._dispatcher(
                sender, clock, writer, journal, start, run_id, remaining.superseded
            )
            dispatcher_items = iter(remaining)

            async def main() -> bool:
                with anyio.move_on_after(crash_after) as scope:
                    async with anyio.create_task_group() as others:
                        if beside is not None:
                            others.start_soon(beside)
                        await dispatcher.run(dispatcher_items)
                        others.cancel_scope.cancel()
                return scope.cancelled_caught

            crashed = anyio.run(
                main, backend="asyncio", backend_options={"loop_factory": clock.new_loop}
            )
            if crashed:
                journal.crash()
                writer.crash()
            else:
                journal.close()
        self.now = clock.now()
        last = sender.last_at
        return SimRun(
            ledger=ledger,
            journal=journal.path,
            run_id=run_id,
            started=clock.start,
            ended=self.now,
            makespan=0.0 if last is None else last - clock.start,
            requests=sender.requests,
            throttled=self.state.by_status["429"] - throttled,
            crashed=crashed,
            stats=dispatcher.stats(),
            last_request={
                name: sender.last_by_user[uid] - clock.start
                for name, uid in self.user_ids.items()
                if uid in sender.last_by_user
            },
        )

    def _dispatcher(
        self,
        sender: SimSender,
        clock: VirtualClock,
        writer: LedgerWriter,
        journal: SentJournal,
        start: RunStats,
        run_id: str,
        superseded: Container[str],
    ) -> Dispatcher:
        s = self.settings
        park = ParkPolicy(rng=random.Random(self._rng.random()))
        if s.park_base is not None:
            park = ParkPolicy(base=s.park_base, maximum=10 * s.park_base, rng=park.rng)
        scheduler = Scheduler(
            self.model(),
            concurrency=s.concurrency,
            retry=RetryPolicy(
                max_attempts=s.max_attempts,
                initial=s.backoff_initial,
                maximum=max(s.backoff_initial, s.backoff_max),
                rng=random.Random(self._rng.random()),
            ),
            park=park,
        )
        senders = {
            name: SimAccount(sender, self._auth[name], user_id)
            for name, user_id in self.user_ids.items()
        }
        return Dispatcher(
            scheduler,
            senders,
            writer,
            run_id=run_id,
            journal=journal,
            settings=DispatchSettings(lookahead=s.lookahead, grace=s.grace, max_rps=s.max_rps),
            stats=start,
            clock=clock.now,
            superseded=superseded,
            first_answers=FirstAnswers(start.accounts),
        )


def simulate(
    items: Sequence[Item],
    ledger: Path,
    config: SandboxConfig,
    *,
    seed: int = 0,
    settings: SimSettings | None = None,
) -> SimRun:
    """One run of ``items`` from a fresh sandbox world (see `Simulation.run`)."""
    return Simulation(config, seed=seed, settings=settings).run(items, ledger)
