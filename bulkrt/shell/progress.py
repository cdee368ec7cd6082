"""What an operator sees while a run goes and when it ends: a live display on a terminal (done
of total, ok/rejected/error, requests, accounts waiting and until when, the expected finish from
the limit model), a log line every few seconds otherwise, and a plain summary on stdout."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
import click
import structlog

from bulkrt.core import waits
from bulkrt.core.items import Status
from bulkrt.core.limiter import WindowLimiter
from bulkrt.core.plan import Plan
from bulkrt.core.run_stats import RunStats
from bulkrt.core.scheduler import AccountEvent, AccountState, Scheduler
from bulkrt.errors import Problem

if TYPE_CHECKING:  # rich is loaded when a live display is drawn, not for a plain run
    from rich.console import Console, Group

__all__ = ["Progress", "RunView", "expected_finish", "summary_hints"]

_log = structlog.get_logger()
#: seconds between log lines when there is no terminal
LOG_EVERY = 5.0
#: accounts the live display lists by name: the soonest to send again
_SHOWN = 6


class RunView(Protocol):
    """What the display reads of a running run (the dispatcher has this shape)."""

    @property
    def scheduler(self) -> Scheduler: ...

    @property
    def last_event(self) -> Mapping[str, AccountEvent]: ...

    def stats(self) -> RunStats: ...


def _clock(epoch: float, now: float | None = None) -> str:
    """The time of ``epoch``, with its date when that is not today."""
    return waits.when(epoch, time.time() if now is None else now)


def expected_finish(
    planned: float,
    now: float,
    *,
    left: int,
    to_send: int,
    expected: float,
    resumes: list[float],
    slowdown: float = 1.0,
) -> float:
    """When the run should end, as it goes: the plan's finish, pushed later when the remaining
    share of the planned duration ends later (limits learned lower than the model's make items
    go slower: ``slowdown`` times the model's pace), and never before the last waiting account
    may send again.

    >>> expected_finish(100.0, 50.0, left=10, to_send=10, expected=100.0, resumes=[])
    150.0
    >>> expected_finish(100.0, 10.0, left=5, to_send=10, expected=100.0, resumes=[400.0])
    400.0
    """
    share = expected * left / to_send * max(1.0, slowdown) if to_send else 0.0
    return max([planned, now + share, *resumes]) if left else max(planned, now)


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return (
        f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
    )


def summary_hints(tally: RunStats, ledger: str) -> list[str]:
    """What the operator can do about what is left, one hint per kind of item left.

    >>> t = RunStats(total=3, skipped_rejected=2)
    >>> [hint.split(":")[0] for hint in summary_hints(t, "l.jsonl")]
    ['2 rejected item(s) are final (the API refused them)']
    """
    quoted = shlex.quote(ledger)
    hints = []
    error = tally.count(Status.ERROR)
    rejected = tally.count(Status.REJECTED) + tally.skipped_rejected
    if error:
        hints.append(
            f"{error} item(s) in error: the same command retries them (and only them); "
            f"`bulkrt status {quoted}` lists why they failed"
        )
    undone = sum(tally.undone_by_rollback.values())
    if undone:
        hints.append(
            f"{undone} retweet(s) of this job were undone by a later rollback: finished in the "
            f"ledger, so never sent again; to retweet them again, run the job with a new --ledger "
            f"or under a new campaign name"
        )
    if rejected:
        hints.append(
            f"{rejected} rejected item(s) are final (the API refused them): `bulkrt status "
            f"{quoted}` says why; fix the job and run it under a new campaign to try them again"
        )
    return hints


def summary_json(tally: RunStats, ledger: str, api_base: str) -> dict[str, object]:
    """The run's summary as `bulkrt run --json` prints it."""
    proof = tally.misconfiguration
    return {
        "ledger": ledger,
        "items": tally.total,
        "this_run": {status.value: tally.count(status) for status in Status},
        "finished_before": {"items": tally.skipped, "rejected": tally.skipped_rejected},
        "requests": tally.requests,
        "needs_attention": dict(sorted(tally.reauthorize.items())),
        "undone_by_rollback": dict(sorted(tally.undone_by_rollback.items())),
        "hints": summary_hints(tally, ledger),
        "stopped_early": None
        if proof is None
        else {"cause": proof.cause, "detail": proof.detail, "api_base": api_base},
    }


def plan_json(plan: Plan, items: int) -> dict[str, object]:
    """A dry run's plan as `bulkrt run --dry-run --json` prints it."""
    return {
        "items": items,
        "requests": plan.requests,
        "retweets": plan.retweets,
        "undos": plan.undos,
        "already_done": plan.already_done,
        "superseded": plan.superseded,
        "duration_seconds": round(plan.duration, 3),
        "limits": plan.limits_note,
        "cost_dollars": f"{plan.cost:f}",
        "prices": plan.price_note,
        "accounts": {
            a.account: {
                "retweets": a.retweets,
                "undos": a.undos,
                "already_done": a.already_done,
                "superseded": a.superseded,
                "last_request_seconds": round(a.last_request_at, 3),
            }
            for a in plan.accounts
        },
    }


class Progress:
    """Reports a run to the operator; ``live=None``: a live display if stderr is a terminal."""

    def __init__(self, *, live: bool | None = None, json: bool = False) -> None:
        #: rich's console, made when a live display may be drawn (rich takes a while to load)
        self._console: Console | None = None
        self.live = self._err.is_terminal if live is None else live
        #: summaries as one JSON object on stdout, for scripts
        self.json = json
        #: the limit model's duration of this run, and the items it plans to send (`follow`)
        self._expected = 0.0
        self._to_send = 0

    @property
    def _err(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    # -- before -------------------------------------------------------------------------------
    def warning(self, problem: Problem) -> None:
        click.echo(f"warning: {problem}", err=True)

    def plan(self, plan: Plan, items: int) -> None:
        """Print a dry run's plan: per account, totals, the duration and the cost."""
        if self.json:
            click.echo(json.dumps(plan_json(plan, items), sort_keys=True))
            return
        click.echo(f"dry run: {items} items; nothing is sent and the ledger is not written")
        click.echo(f"{'account':<16} {'retweets':>8} {'undos':>6} {'done':>6} {'last request':>14}")
        for account in plan.accounts:
            click.echo(
                f"{account.account:<16} {account.retweets:>8} {account.undos:>6} "
                f"{account.already_done:>6} {_duration(account.last_request_at):>14}"
            )
        click.echo(
            f"would send {plan.requests} requests ({plan.retweets} retweets, {plan.undos} undos); "
            f"{plan.already_done} items already finished in the ledger"
            + (
                f"; {plan.superseded} superseded (a later finished item on the same Tweet "
                f"overtook them: recorded, not sent)"
                if plan.superseded
                else ""
            )
        )
        click.echo(f"expected duration under {plan.limits_note}: {_duration(plan.duration)}")
        click.echo(f"estimated cost: ${plan.cost:.3f} ({plan.price_note})")

    # -- during -------------------------------------------------------------------------------
    async def follow(self, dispatcher: RunView, expected: float) -> None:
        """Show progress until cancelled."""
        finish = time.time() + expected
        self._expected = expected
        start = dispatcher.stats()
        self._to_send = max(0, start.total - start.skipped)
        if not self.live:
            while True:
                await anyio.sleep(LOG_EVERY)
                t = dispatcher.stats()
                _log.info(
                    "run_progress",
                    done=t.finished,
                    total=t.total,
                    ok=t.count(Status.OK),
                    rejected=t.count(Status.REJECTED),
                    error=t.count(Status.ERROR),
                    requests=t.requests,
                    in_flight=t.in_flight,
                )
        from rich.live import Live

        with Live(
            self._render(dispatcher, finish), console=self._err, refresh_per_second=4
        ) as live:
            try:
                while True:
                    await anyio.sleep(0.5)
                    live.update(self._render(dispatcher, finish))
            finally:  # cancelled when the run ends: leave the final counts on the screen
                live.update(self._render(dispatcher, finish), refresh=True)

    def _render(self, dispatcher: RunView, planned: float) -> Group:
        """One frame: its cost follows what changed since the last frame and the few accounts
        shown, not the number of accounts (`Scheduler.overview`)."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        t = dispatcher.stats()
        now = time.time()
        scheduler = dispatcher.scheduler
        limiter = scheduler.limiter
        overview = scheduler.overview(now, top=_SHOWN)
        finish = expected_finish(
            planned,
            now,
            left=t.total - t.finished,
            to_send=self._to_send,
            expected=self._expected,
            resumes=[] if overview.latest is None else [overview.latest],
            slowdown=limiter.slowdown() if isinstance(limiter, WindowLimiter) else 1.0,
        )
        head = Text.assemble(
            (f"{t.finished}/{t.total} items ", "bold"),
            (f"ok {t.count(Status.OK) + t.skipped - t.skipped_rejected}  ", "green"),
            (f"rejected {t.count(Status.REJECTED) + t.skipped_rejected}  ", "yellow"),
            (f"error {t.count(Status.ERROR)}  ", "red"),
            f"requests {t.requests}  in flight {t.in_flight}  ",
            f"expected finish {_clock(finish, now)} (limit model)",
        )
        notable = Table(box=None, show_header=False, padding=(0, 2))
        for until, account in overview.soonest:
            state = scheduler.state(account, now)
            long_wait = state is AccountState.WAITING and until > now + 5
            if state in (AccountState.PARKED, AccountState.PAUSED) or long_wait:
                event = dispatcher.last_event.get(account)
                notable.add_row(
                    Text(account),
                    state.value,
                    f"until {_clock(until, now)}",
                    Text(waits.reason(event) if event else ""),
                )
        for account in sorted(t.reauthorize)[: max(0, _SHOWN - notable.row_count)]:
            event = dispatcher.last_event.get(account)
            reason = waits.reason(event) if event else ""
            notable.add_row(Text(account), AccountState.PAUSED.value, "", Text(reason))
        summary = "  ".join(f"{state.value} {n}" for state, n in overview.counts if n)
        if overview.soonest:
            summary += f"  (next window opens {_clock(overview.soonest[0][0], now)})"
        return Group(head, Text(f"accounts: {summary}"), notable)

    # -- after --------------------------------------------------------------------------------
    def summary(self, tally: RunStats, ledger: Path, *, api_base: str = "") -> None:
        """The run's summary on stdout (one JSON object with ``--json``); when the first answers
        proved the API base wrong, why it stopped early and what to check."""
        if self.json:
            click.echo(json.dumps(summary_json(tally, str(ledger), api_base), sort_keys=True))
            return
        ok = tally.count(Status.OK)
        rejected = tally.count(Status.REJECTED)
        error = tally.count(Status.ERROR)
        superseded = tally.count(Status.SUPERSEDED)
        click.echo(
            f"bulkrt run: {tally.total} items: {ok} ok, {rejected} rejected, {error} error"
            + (f", {superseded} superseded" if superseded else "")
            + f" in this run; {tally.skipped} already finished before it "
            f"({tally.skipped_rejected} rejected); {tally.requests} requests"
        )
        for _, message in sorted(tally.reauthorize.items()):
            click.echo(f"  needs attention: {message}")
        for hint in summary_hints(tally, str(ledger)):
            click.echo(f"  {hint}")
        proof = tally.misconfiguration
        if proof is None:
            return
        click.echo(
            f"bulkrt run: stopped early: {proof.cause} at {api_base}\n"
            f"  {proof.detail}\n"
            f"  check --api-base (or BULKRT_API_BASE): the X API is https://api.x.com, a local "
            f"sandbox http://127.0.0.1:PORT as `bulkrt sandbox` prints it, with no /2 after it;\n"
            f"  nothing was marked finished ({tally.count(Status.ERROR)} item(s) answered "
            f"so far are `error`): the same command sends every unfinished item once the base "
            f"is right"
        )

    def stopped(self, tally: RunStats, signal_name: str, command: str) -> None:
        if self.json:
            document = {
                "stopped_by": signal_name,
                "finished": tally.finished,
                "total": tally.total,
                "resume": command,
            }
            click.echo(json.dumps(document, sort_keys=True))
            return
        click.echo(
            f"bulkrt run: stopped by {signal_name} after {tally.finished} of {tally.total} items; "
            f"the ledger is flushed. To resume, run the same command again:\n  {command}"
        )
