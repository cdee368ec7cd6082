"""The dry run's timing: the job simulated against the limit model, with no faults and instant
answers, through the same scheduler and dispatcher a real run uses (`bulkrt.simulation.harness`).

>>> from bulkrt.core.tiers import limit_model
>>> t = estimate({"acme": [Action.RETWEET] * 12}, limit_model("basic", limit=5, window=3))
>>> t.duration == t.last_request["acme"] and 6.0 <= t.duration < 7.0
True
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from structlog.testing import capture_logs

from bulkrt.core.items import Action, Item
from bulkrt.core.plan import Timing
from bulkrt.core.tiers import LimitModel
from bulkrt.sandbox.config import SandboxConfig
from bulkrt.simulation.harness import SimSettings, Simulation

__all__ = ["estimate"]


class _Job:
    """The pending items as the simulated accounts' items (iterable again, built lazily)."""

    def __init__(self, pending: Mapping[str, Sequence[Action]], names: Sequence[str]) -> None:
        self._pending = pending
        self._names = names

    def __iter__(self) -> Iterator[Item]:
        for (account, actions), name in zip(self._pending.items(), self._names, strict=False):
            for n, action in enumerate(actions):
                tweet = str(1_000 + n)
                yield Item(f"{account}:{n}", "dry-run", name, tweet, action, "dry-run", n + 2)


def estimate(
    pending: Mapping[str, Sequence[Action]],
    model: LimitModel,
    *,
    concurrency: int = 32,
    max_rps: float | None = None,
) -> Timing:
    """When the requests of ``pending`` (each account's actions, in file order) may go."""
    busy = {account: actions for account, actions in pending.items() if actions}
    if not busy:
        return Timing({}, 0.0)
    config = SandboxConfig(
        users=len(busy), tier=model.tier, limit=model.retweet.limit, window=model.retweet.period
    )
    settings = SimSettings(model=model, concurrency=concurrency, max_rps=max_rps)
    sim = Simulation(config, settings=settings)
    names = list(sim.user_ids)
    # The simulated run's log lines are not the operator's: they are captured and dropped.
    with capture_logs(), tempfile.TemporaryDirectory(prefix="bulkrt-dry-run-") as scratch:
        run = sim.run(_Job(busy, names), Path(scratch) / "simulated")
    by_name = dict(zip(names, busy, strict=False))
    last = {by_name[name]: seconds for name, seconds in run.last_request.items()}
    return Timing(last, run.makespan)
