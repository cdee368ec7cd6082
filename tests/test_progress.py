"""The live display: what one frame shows of a run's accounts, read from the scheduler's overview
and the run's stats (rendered by rich into text, as a terminal would show it)."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping

from rich.console import Console

from bulkrt.core.items import Action, Item, Status
from bulkrt.core.outcome import classify
from bulkrt.core.run_stats import RunStats
from bulkrt.core.scheduler import AccountEvent, Dispatch, Scheduler
from bulkrt.core.tiers import limit_model
from bulkrt.shell.progress import Progress

HIDDEN = b'{"title":"Too Many Requests","type":"about:blank","status":429,"detail":"hidden"}'


class Run:
    """A run as the display reads it (the `RunView` the dispatcher offers)."""

    def __init__(self, scheduler: Scheduler, stats: RunStats) -> None:
        self._scheduler, self._stats = scheduler, stats

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    @property
    def last_event(self) -> Mapping[str, AccountEvent]:
        return {}

    def stats(self) -> RunStats:
        return self._stats


def frame(run: Run) -> str:
    """One frame of the live display, as text."""
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(Progress(live=True)._render(run, time.time() + 60))
    return console.export_text()


def test_a_frame_counts_every_account_and_names_the_parked_one() -> None:
    """With 3,000 accounts, one parked after a 429 its headers do not explain and one whose
    credentials failed, the frame counts each state over every account and names both."""
    now = time.time()
    scheduler = Scheduler(limit_model("pro"), concurrency=8)
    names = [f"acct{n:05d}" for n in range(3000)]
    for n, name in enumerate(names):
        scheduler.add(Item(f"k{n}", "c", name, str(100 + n), Action.RETWEET, "job.csv", n), now)
    step = scheduler.next(now)
    assert isinstance(step, Dispatch)
    parked = step.ticket.item.account
    scheduler.on_response(step.ticket, now, classify(Action.RETWEET, 429, {}, HIDDEN, None))
    stats = RunStats(total=3000, accounts=tuple(names), reauthorize={"acct02999": "reauthorize"})
    text = frame(Run(scheduler, stats))
    assert "0/3000 items" in text
    assert "accounts: ready 2999  parked 1" in text
    assert parked in text and "parked" in text
    assert "acct02999" in text
    assert stats.count(Status.OK) == 0
