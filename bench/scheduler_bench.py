"""How the scheduler's cost grows with the number of accounts: `Scheduler` alone, in virtual time.

Run by hand::

    .venv/bin/python -m bench.scheduler_bench [--accounts 1000 10000 100000 1000000]
        [--per-account 5] [--concurrency 64] [--lookahead 50000] [--api batch|single]
        [--gc default|run] [--profile cprofile|memory] [--top 25]

No shell and no I/O: each N runs in a fresh subprocess that builds a `Scheduler` with
``limit_model("pro")`` (50 retweets per 15 minutes per account) and feeds it N accounts x 5
retweets in job order (every account's first Tweet, then every account's second, ...), lazily,
keeping at most ``lookahead`` items in the scheduler as the dispatcher does. A ``Dispatch`` is
answered at the same virtual ``now`` with the `Outcome` that `classify` gives a 200
``retweeted: true`` (no rate-limit headers); up to ``concurrency`` requests are in flight and are
answered, oldest first, when the scheduler says ``Idle``. ``Wait(until)`` moves ``now`` to
``until``. Every item must come back exactly once, as ``ok``. ``--api batch`` (the default) makes
one call per batch (`Scheduler.add_many`, ``next_batch``, ``on_responses``); ``--api single``
one call per item (``add``, ``next``, ``on_response``), as the dispatcher does today.

Reported per N: wall seconds (feeding, items' creation included), microseconds per item, peak
RSS of the subprocess, bytes per account (peak RSS less the RSS before the run, over N), the
seconds the cyclic garbage collector took (timed with ``gc.callbacks``) with its count of full
(generation-2) collections, and CPU microseconds per item (less sensitive than wall time to
other processes on a shared machine). The load average is printed first. ``--gc run`` plays
under the cycle collector's settings of a real run while it sends (`shell.runner.few_collections`:
start-up's objects frozen, the young generation collected every 10,000 allocations); the default
keeps Python's.
``--profile cprofile`` prints the ``--top`` (25) costliest functions; ``--profile memory`` prints
the 15 largest tracemalloc sites at the peak (slower; memory figures are then tracemalloc's).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from itertools import islice, repeat
from operator import attrgetter

from bulkrt.core.items import Action, Item, Status
from bulkrt.core.outcome import Outcome, classify
from bulkrt.core.scheduler import Dispatch, Done, Refresh, Scheduler, Ticket, Wait
from bulkrt.core.tiers import limit_model

OK_BODY = b'{"data": {"retweeted": true}}'
_STATUS = attrgetter("status")


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class _GcTimer:
    """Time spent in the cyclic garbage collector, and its full collections, while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        self.full += info["generation"] == 2


def _items(accounts: int, per: int) -> Iterator[Item]:
    for n in range(per):
        tweet = str(10**12 + n)
        for a in range(accounts):
            name = f"user{a}"
            yield Item(f"{name}:{tweet}", "bench", name, tweet, Action.RETWEET, "job.csv", 2 + a)


class _Driver:
    """The dispatcher's loop without I/O: lazy feeding, instant answers, a virtual clock; one call
    per item (``single``: `Scheduler.add`, `next`, `on_response`), or one call per batch
    (``batch``: `Scheduler.add_many`, `next_batch`, `on_responses`)."""

    def __init__(self, accounts: int, per: int, concurrency: int, lookahead: int) -> None:
        self.ok: Outcome = classify(Action.RETWEET, 200, {}, OK_BODY, "application/json")
        assert self.ok.status is Status.OK, self.ok
        self.scheduler = Scheduler(limit_model("pro"), concurrency=concurrency)
        self.items = _items(accounts, per)
        self.lookahead = lookahead
        self.pending = self.finished = 0
        self.exhausted = False
        self.flying: deque[Ticket] = deque()
        self.now = 0.0

    def feed(self) -> None:
        """Add up to 1000 items, keeping at most ``lookahead`` in the scheduler."""
        for _ in range(max(0, min(1000, self.lookahead - self.pending))):
            item = next(self.items, None)
            if item is None:
                self.exhausted = True
                return
            self.pending += 1
            if self.scheduler.add(item, self.now):
                raise AssertionError("an item ended on being added")

    def feed_batch(self) -> None:
        """`feed`, in one call."""
        wanted = max(0, min(1000, self.lookahead - self.pending))
        batch = list(islice(self.items, wanted))
        self.exhausted = len(batch) < wanted
        self.pending += len(batch)
        if self.scheduler.add_many(batch, self.now):
            raise AssertionError("an item ended on being added")

    def answer(self) -> None:
        """Answer every request in flight, oldest first, with a 200."""
        flying, on_response, now, ok = self.flying, self.scheduler.on_response, self.now, self.ok
        finished = 0
        while flying:
            for result in on_response(flying.popleft(), now, ok):
                if result.status is not Status.OK:
                    raise AssertionError(result)
                finished += 1
        self.finished += finished
        self.pending -= finished

    def answer_batch(self) -> None:
        """`answer`, in one call (the pairs made and the statuses checked in C, not per item in
        Python: the driver's own cost stays out of the figures as far as it can)."""
        results = self.scheduler.on_responses(zip(self.flying, repeat(self.ok)), self.now)
        self.flying.clear()
        if set(map(_STATUS, results)) - {Status.OK}:
            raise AssertionError(next(r for r in results if r.status is not Status.OK))
        self.finished += len(results)
        self.pending -= len(results)

    def run(self) -> None:
        """Until every item came back, one call per item."""
        scheduler, flying = self.scheduler, self.flying
        while True:
            if not self.exhausted and self.pending < self.lookahead:
                self.feed()
            step = scheduler.next(self.now)
            if isinstance(step, Dispatch):
                flying.append(step.ticket)
            elif isinstance(step, Done):
                if self.exhausted:
                    return
            elif isinstance(step, Refresh):
                raise AssertionError("no 401 is ever answered")
            else:
                if isinstance(step, Wait):
                    self.now = max(self.now, step.until)
                self.answer()

    def run_batch(self) -> None:
        """Until every item came back, one call per batch."""
        scheduler, flying = self.scheduler, self.flying
        limit = scheduler.concurrency
        while True:
            if not self.exhausted and self.pending < self.lookahead:
                self.feed_batch()
            tickets, step = scheduler.next_batch(self.now, limit)
            flying.extend(tickets)
            if step is None:
                continue
            if isinstance(step, Done):
                if self.exhausted:
                    return
            elif isinstance(step, Refresh | Dispatch):
                raise AssertionError(f"no 401 is ever answered, no ticket comes alone: {step}")
            else:
                if isinstance(step, Wait):
                    self.now = max(self.now, step.until)
                self.answer_batch()


def drive(
    accounts: int,
    per: int,
    concurrency: int,
    lookahead: int,
    api: str = "batch",
    collector_settings: str = "default",
) -> dict[str, float]:
    """Play one run; returns its figures."""
    driver = _Driver(accounts, per, concurrency, lookahead)
    play = driver.run_batch if api == "batch" else driver.run
    total = accounts * per
    rss_before = _current_rss_bytes()
    collector = _GcTimer()
    gc.callbacks.append(collector)
    settings: AbstractContextManager[None] = nullcontext()
    if collector_settings == "run":
        from bulkrt.shell.runner import few_collections  # the shell: only when asked

        settings = few_collections()
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        with settings:
            play()
    finally:
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        gc.callbacks.remove(collector)
    if driver.finished != total:
        raise AssertionError(f"{driver.finished} of {total} items came back")
    peak = _rss_bytes()
    return {
        "accounts": accounts,
        "items": total,
        "seconds": seconds,
        "us_per_item": seconds * 1e6 / total,
        "cpu_us_per_item": cpu * 1e6 / total,
        "peak_rss_mb": peak / 2**20,
        "bytes_per_account": (peak - rss_before) / accounts,
        "virtual_end": driver.now,
        "gc_seconds": collector.seconds,
        "gc_full": collector.full,
    }


def child(args: argparse.Namespace) -> None:
    """One N in this process; prints its figures as JSON (and a profile on stderr)."""
    n = args.accounts[0]
    if args.profile == "cprofile":
        profile = cProfile.Profile()
        figures = profile.runcall(
            drive, n, args.per_account, args.concurrency, args.lookahead, args.api, args.gc
        )
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(args.top)
    elif args.profile == "memory":
        tracemalloc.start()
        figures = drive(n, args.per_account, args.concurrency, args.lookahead, args.api, args.gc)
        snapshot = tracemalloc.take_snapshot()
        _, peak = tracemalloc.get_traced_memory()
        figures["tracemalloc_peak_mb"] = peak / 2**20
        figures["tracemalloc_now_bytes_per_account"] = (
            sum(s.size for s in snapshot.statistics("filename")) / n
        )
        for stat in snapshot.statistics("lineno")[:15]:
            print(stat, file=sys.stderr)
    else:
        figures = drive(n, args.per_account, args.concurrency, args.lookahead, args.api, args.gc)
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1000, 10_000, 100_000, 10**6])
    parser.add_argument("--per-account", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--lookahead", type=int, default=50_000)
    parser.add_argument("--api", choices=("batch", "single"), default="batch")
    parser.add_argument("--gc", choices=("default", "run"), default="default")
    parser.add_argument("--profile", choices=("cprofile", "memory"))
    parser.add_argument("--top", type=int, default=25, help="functions --profile cprofile prints")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    load = "load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(load, f"(api: {args.api}, gc: {args.gc})")
    print(
        f"{'accounts':>9} {'items':>9} {'wall s':>8} {'us/item':>8} {'peak RSS MB':>11} "
        f"{'B/account':>10} {'gc s':>6} {'gc full':>7} {'cpu us/item':>11}"
    )
    for n in args.accounts:
        argv = [sys.executable, "-m", "bench.scheduler_bench", "--child", "--accounts", str(n)]
        argv += ["--per-account", str(args.per_account), "--concurrency", str(args.concurrency)]
        argv += ["--lookahead", str(args.lookahead), "--api", args.api, "--gc", args.gc]
        if args.profile:
            argv += ["--profile", args.profile, "--top", str(args.top)]
        out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout
        f = json.loads(out.strip().splitlines()[-1])
        print(
            f"{f['accounts']:>9} {f['items']:>9} {f['seconds']:>8.2f} {f['us_per_item']:>8.2f} "
            f"{f['peak_rss_mb']:>11.1f} {f['bytes_per_account']:>10.0f} "
            f"{f['gc_seconds']:>6.2f} {f['gc_full']:>7} {f['cpu_us_per_item']:>11.2f}",
            flush=True,
        )
        if args.profile == "memory":
            print(f"  tracemalloc: {f}", flush=True)


if __name__ == "__main__":
    main()
