"""The multi-machine mode (``--redis``) against the rate-limit bound, and what it costs per item
without limits, beside the embedded mode.

    .venv/bin/python -m bench.fleet_bench [--part makespan|throughput|both]
        [--users 300] [--per-account 20] [--limit 5] [--window 3] [--modes fleet embedded]
        [--items 6000] [--rounds 2] [--concurrency 64] [--keep] [--verbose]

Every process runs on this machine and talks over 127.0.0.1 only: a real ``redis-server``
started on a free loopback port (append-only file, ``appendfsync always``, as docs/fleet.md asks
operators to run it) and ``bulkrt sandbox`` on another. ``--keep`` keeps the work directory
(ledgers, every process's stderr) and ``--verbose`` gives the makespan's processes ``-v``, to
see where the time went. Every subprocess this script starts is
terminated and waited for, also on errors. Each worker gets its own copy of the accounts file
(its own machine); every fleet process is given the same ``--tier``, ``--limit``, ``--window``
and ``--concurrency`` (the concurrency is per process).

**Makespan** (goal: within 1.05x the theoretical minimum, zero 429s). A fresh
``bulkrt sandbox --users 300 --limit 5 --window 3`` per mode (``--users``, ``--limit``,
``--window``), and a job of ``--per-account`` (20: four windows) retweets for each account, rows
interleaved by account. 300 accounts at 5 per 3 s need 500 requests/s to keep pace, which the
table's title states: on a small machine the client and the sandbox may not keep it up, in
either mode, whatever the pacing (a longer ``--window`` asks less). The
fleet: two ``bulkrt worker`` processes are started and have said they started, then
``bulkrt run JOB --redis URL`` drives (three processes in all); the workers are stopped once
the driver exits. Beside it the same job in the embedded mode (``bulkrt run JOB``). The figures
are run_bench's, from the sandbox's request log: makespan is the latest last retweet request of
any account minus the run's first request; the theoretical minimum is ``(ceil(n/L) - 1) * W``
(here 3 * 3 = 9 s), measured from the run's first request, so the spread of the accounts' first
requests counts against bulkrt. Also reported: that spread, the worst account's own
``(last - first) / minimum`` and its windows' lateness (how late the first request of each
window went past ``first + k * W``), 429s, the exit code, the ledger's statuses and how many
worker processes (the ledger's ``run``) finished items, and per such process when its accounts'
first requests went (its first, and its accounts' last first request: where each process's
start went). The sandbox's request log is written to ``sandbox-log.json`` in the mode's work
directory (kept with ``--keep``).

**Throughput, limits off.** One ``bulkrt sandbox --no-limits --users 100`` serving HTTPS with a
trustme certificate (as run_bench), ``--items`` retweets spread over its 50 OAuth 1.0a accounts,
limits set beyond reach (``--limit 1000000 --window 1``). Four setups, in ``--rounds``
alternating rounds (the machine is noisy), each run with its own Tweet ids, ledger and a flushed
Redis: the embedded ``bulkrt run``, and ``bulkrt run --redis`` with 0, 1 and 3 workers (1, 2 and
4 processes). For each: wall seconds of the driver process (start-up, publishing and the last
pump included; workers are started, and have said so, before it), items per second, client CPU
ms per item summed over every bulkrt process (the driver's from ``os.wait4``, each worker's from
``/proc/<pid>/stat`` read the moment the driver exits, so its start-up is included and its
shutdown is not), and Redis's work per item over the driver's run: round trips (the delta of
``total_reads_processed``, the socket reads the server did: one per request, or per pipeline
chunk), Lua scripts (EVALSHA and EVAL calls in ``INFO commandstats``) and commands
(``total_commands_processed``, which counts every command a script runs as well). All three
include the workers' idle ticks (beat, renew, reap, claim) over the run, and the sandbox's
statuses show requests sent twice (``400``: already retweeted, after an account changed hands).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.run_bench import (
    BULKRT,
    Sandbox,
    cpu_seconds,
    ledger_statuses,
    per_window_lateness,
    retweet_times,
    sandbox,
    status_delta,
    stop,
    tls_sandbox_options,
    write_job,
)
from tests.redis_server import RedisServer

LIMITS_OFF = ("--tier", "pro", "--limit", "1000000", "--window", "1")
#: how long a worker may take to say it started
WORKER_START = 30.0


# -- processes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fleet:
    """Where the bulkrt processes send and share: the sandbox, and Redis (None: embedded)."""

    box: Sandbox
    redis_url: str | None
    workdir: Path
    env: dict[str, str]


@contextmanager
def workers(fleet: Fleet, count: int, options: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` `bulkrt worker` processes, each with its own accounts file, started and waited
    for until each says it started; SIGTERM (then SIGKILL) and waited for on leaving."""
    processes: list[subprocess.Popen[str]] = []
    logs: list[Path] = []
    try:
        for n in range(count):
            accounts = fleet.workdir / f"worker{n}-accounts.json"
            shutil.copy(fleet.box.accounts_file, accounts)
            accounts.chmod(0o600)
            log = fleet.workdir / f"worker{n}.log"
            logs.append(log)
            argv = [*BULKRT, "worker", "--redis", str(fleet.redis_url)]
            argv += ["--accounts", str(accounts), "--api-base", fleet.box.url, *options]
            with log.open("w") as err:
                processes.append(
                    subprocess.Popen(
                        argv, stdout=subprocess.DEVNULL, stderr=err, text=True, env=fleet.env
                    )
                )
        deadline = time.monotonic() + WORKER_START
        for process, log in zip(processes, logs, strict=True):
            while "started" not in log.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            stop(process)


@dataclass(frozen=True, slots=True)
class Driven:
    """A driver (`bulkrt run`, with or without ``--redis``) that ran to its end."""

    returncode: int
    seconds: float
    #: CPU seconds of the driver, and of each worker up to the driver's exit
    driver_cpu: float
    worker_cpu: list[float]
    stdout: str
    stderr: str
    #: Redis's counters over the run (see `redis_counters`)
    redis: Counter[str]


def redis_counters(url: str | None) -> Counter[str]:
    """Redis's ``reads`` (``total_reads_processed``: socket reads, about one per round trip),
    ``scripts`` (EVALSHA and EVAL calls) and ``commands`` (``total_commands_processed``, which
    counts the commands a script runs too); empty without Redis."""
    counters = Counter[str]()
    if url is None:
        return counters
    with redis.Redis.from_url(url) as client:
        info: dict[str, Any] = client.info("stats")
        calls: dict[str, Any] = client.info("commandstats")
    counters["reads"] = int(info["total_reads_processed"])
    counters["commands"] = int(info["total_commands_processed"])
    counters["scripts"] = sum(
        int(calls.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )
    return counters


def drive(
    fleet: Fleet,
    job: Path,
    ledger: Path,
    options: list[str],
    worker_pids: list[int],
    timeout: float = 600.0,
) -> Driven:
    """Run `bulkrt run JOB` (``--redis`` when the fleet has one) to its end, measured."""
    argv = [*BULKRT, "run", str(job), "--accounts", str(fleet.box.accounts_file)]
    argv += ["--ledger", str(ledger), "--api-base", fleet.box.url, "--no-progress", *options]
    if fleet.redis_url is not None:
        argv += ["--redis", fleet.redis_url]
    out, err = ledger.with_suffix(".out"), ledger.with_suffix(".err")
    before = [cpu_seconds(pid) for pid in worker_pids]
    counters = redis_counters(fleet.redis_url)
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=fleet.env, text=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"bulkrt run did not finish within {timeout:g} s")
            time.sleep(0.01)
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if process.returncode is None:
            stop(process)
    seconds = time.perf_counter() - started
    worker_cpu = [cpu_seconds(pid) - b for pid, b in zip(worker_pids, before, strict=True)]
    counters_after = redis_counters(fleet.redis_url)
    counters_after.subtract(counters)
    if fleet.redis_url is not None:  # less this script's own two INFO commands
        counters_after.subtract({"reads": 2, "commands": 2})
    driven = Driven(
        process.returncode,
        seconds,
        usage.ru_utime + usage.ru_stime,
        worker_cpu,
        out.read_text(),
        err.read_text(),
        counters_after,
    )
    if driven.returncode != 0:
        print(f"bulkrt run exited {driven.returncode}; stderr tail:", file=sys.stderr)
        print(driven.stderr[-2000:], file=sys.stderr)
    return driven


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """A `redis-server` on a free loopback port, stopped on leaving, whatever happens."""
    server = RedisServer(workdir / "redis")
    try:
        yield server.start()
    finally:
        server.stop()


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushall()


# -- part 1: makespan --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """The makespan job: accounts, retweets per account, and the limit per window."""

    users: int
    per_account: int
    limit: int
    window: float

    @property
    def rate(self) -> float:
        """Requests per second the whole job needs to keep pace with every window."""
        return self.users * self.limit / self.window


@dataclass(frozen=True, slots=True)
class Makespan:
    """One mode's figures against the bound."""

    mode: str
    processes: int
    driven: Driven
    statuses: dict[str, int]
    runs: int
    too_many: int
    sandbox_statuses: dict[str, int]
    #: retweet requests the sandbox saw, and the accounts it saw more than their items for
    requests: int
    repeated: int
    makespan: float
    bound: float
    spread: float
    worst: str
    worst_ratio: float
    lateness: list[float]
    #: over every account's windows after its first: seconds from the previous window's reset
    #: (as the sandbox's headers gave it) to the window's first request, and from that first
    #: request to the window's last (the burst)
    after_reset: list[float]
    burst: list[float]
    #: per process that finished items (the ledger's ``run``): its accounts, and the seconds
    #: from the run's first request to its own first request and to its accounts' last first
    #: request (where each process's start-up went)
    starts: dict[str, tuple[int, float, float]]

    @property
    def ratio(self) -> float:
        return self.makespan / self.bound

    @property
    def met(self) -> bool:
        return self.driven.returncode == 0 and self.too_many == 0 and self.ratio <= 1.05


def makespan_run(
    workdir: Path,
    mode: str,
    extra_workers: int,
    shape: Shape,
    concurrency: int,
    verbose: bool = False,
) -> Makespan:
    """One mode on a fresh sandbox (and a fresh Redis for the fleet)."""
    workdir.mkdir()
    per_account, limit, window = shape.per_account, shape.limit, shape.window
    limits = ["--limit", str(limit), "--window", f"{window:g}"]
    options = ["--tier", "pro", *limits, "--concurrency", str(concurrency)]
    options += ["-v"] if verbose else []
    with ExitStack() as stack:
        box = stack.enter_context(sandbox(workdir, "--users", str(shape.users), *limits))
        url = stack.enter_context(redis_server(workdir)).url if mode == "fleet" else None
        fleet = Fleet(box, url, workdir, dict(os.environ))
        accounts = box.accounts()
        names = sorted(accounts)
        job = workdir / "makespan.csv"
        write_job(job, [(name, 1_000_000_000 + i) for i in range(per_account) for name in names])
        ledger = workdir / "makespan.ledger.jsonl"
        procs = stack.enter_context(workers(fleet, extra_workers, options))
        driven = drive(fleet, job, ledger, options, [p.pid for p in procs])
        stats = box.get("/__sandbox/stats")
        log = box.get("/__sandbox/log?since=0")["entries"]
    times = retweet_times(log, accounts, names)
    sent = {name: t for name, t in times.items() if t}
    start = min(t[0] for t in sent.values())
    end = max(t[-1] for t in sent.values())
    bound = max((math.ceil(len(t) / limit) - 1) * window for t in sent.values())
    ratios = {
        name: (t[-1] - t[0]) / ((math.ceil(len(t) / limit) - 1) * window)
        for name, t in sent.items()
        if len(t) > limit
    }
    worst = max(ratios, key=lambda name: ratios[name])
    after_reset, burst = window_delays(sent.values(), limit, window)
    run_of: dict[str, str] = {}
    with ledger.open() as lines:
        for line in lines:
            if line.strip():
                record = json.loads(line)
                run_of[record["account"]] = record["run"]
    runs = len(set(run_of.values()))
    firsts: dict[str, list[float]] = defaultdict(list)
    for name, t in sent.items():
        firsts[run_of.get(name, "?")].append(t[0] - start)
    (workdir / "sandbox-log.json").write_text(json.dumps(log))
    return Makespan(
        mode=mode,
        processes=1 + extra_workers,
        driven=driven,
        statuses=ledger_statuses(ledger),
        runs=runs,
        too_many=stats["by_status"].get("429", 0),
        sandbox_statuses=stats["by_status"],
        requests=sum(len(t) for t in sent.values()),
        repeated=sum(len(t) > per_account for t in sent.values()),
        makespan=end - start,
        bound=bound,
        spread=max(t[0] for t in sent.values()) - start,
        worst=worst,
        worst_ratio=ratios[worst],
        lateness=per_window_lateness(sent[worst], limit, window),
        after_reset=after_reset,
        burst=burst,
        starts={run: (len(t), min(t), max(t)) for run, t in sorted(firsts.items())},
    )


def window_delays(
    accounts: Iterable[list[float]], limit: int, window: float
) -> tuple[list[float], list[float]]:
    """Where each window's time goes: from the previous window's reset (the sandbox opens a
    window at its first request and reports ``ceil(first + window)``) to the window's first
    request, and from its first request to its last."""
    after_reset: list[float] = []
    burst: list[float] = []
    for times in accounts:
        starts = times[::limit]
        for k, start in enumerate(starts):
            burst.append(times[min(len(times), (k + 1) * limit) - 1] - start)
            if k:
                after_reset.append(start - math.ceil(starts[k - 1] + window))
    return after_reset, burst


def makespan(
    workdir: Path, shape: Shape, concurrency: int, modes: list[str], verbose: bool
) -> bool:
    """Run part 1 (fleet of three, then embedded) and print its table; True when met."""
    results = [
        makespan_run(workdir / mode, mode, 2 if mode == "fleet" else 0, shape, concurrency, verbose)
        for mode in modes
    ]
    print(
        f"\n## Makespan: {shape.users} accounts x {shape.per_account} retweets, {shape.limit} "
        f"per {shape.window:g} s window ({shape.rate:.0f} requests/s to keep pace), "
        f"concurrency {concurrency} per process\n"
    )
    print(
        "| mode | processes | exit | wall s | makespan s | minimum s | ratio | first-request "
        "spread s | worst account ratio | 429s | CPU ms/item | Redis round trips/item | ledger | "
        "processes that finished items |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        d = r.driven
        cpu = (d.driver_cpu + sum(d.worker_cpu)) * 1000 / r.requests
        trips = f"{d.redis['reads'] / r.requests:.2f}" if r.mode == "fleet" else "-"
        print(
            f"| {r.mode} | {r.processes} | {d.returncode} | {d.seconds:.2f} | "
            f"{r.makespan:.3f} | {r.bound:.3f} | {r.ratio:.4f} | {r.spread:.3f} | "
            f"{r.worst_ratio:.4f} | {r.too_many} | {cpu:.2f} | {trips} | {r.statuses} | "
            f"{r.runs} |"
        )
    print()
    for r in results:
        lateness = " ".join(f"{x:.3f}" for x in r.lateness)
        print(f"- {r.mode}: worst account {r.worst}, its windows' lateness (s): {lateness}")
        print(
            f"- {r.mode}: sandbox statuses {r.sandbox_statuses}; {r.requests} retweet requests, "
            f"{r.repeated} account(s) with more requests than items"
        )
        for what, values in (
            ("reset to next window's first request", r.after_reset),
            ("window's first to last request", r.burst),
        ):
            print(f"- {r.mode}: {what} (s): {quantiles(values)}")
        for run, (count, first, last) in r.starts.items():
            print(
                f"- {r.mode}: process {run}: {count} accounts, first request at +{first:.3f} s, "
                f"its accounts' last first request at +{last:.3f} s"
            )
        print(f"- {r.mode}: goal (<= 1.05, no 429): {'met' if r.met else 'NOT met'}")
    return all(r.met for r in results)


def quantiles(values: list[float]) -> str:
    """Median, 90th percentile and maximum of ``values``."""
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=10)
    return f"median {statistics.median(values):.3f}, p90 {cuts[-1]:.3f}, max {max(values):.3f}"


# -- part 2: throughput ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    """One configuration of the throughput part."""

    name: str
    fleet: bool
    extra_workers: int


SETUPS = (
    Setup("embedded", False, 0),
    Setup("redis, 1 process", True, 0),
    Setup("redis, 2 processes", True, 1),
    Setup("redis, 4 processes", True, 3),
)


@dataclass(frozen=True, slots=True)
class Measured:
    """One setup's run in one round."""

    setup: Setup
    items: int
    driven: Driven
    statuses: dict[str, int]
    sandbox_statuses: dict[str, int]

    @property
    def cpu(self) -> float:
        return self.driven.driver_cpu + sum(self.driven.worker_cpu)


def throughput_run(
    box: Sandbox,
    server: RedisServer,
    workdir: Path,
    setup: Setup,
    oauth1: list[str],
    items: int,
    first_tweet: int,
    concurrency: int,
) -> Measured:
    """One setup on its own Tweet ids, ledger and a flushed Redis."""
    workdir.mkdir()
    flush(server.url)
    env = dict(os.environ, SSL_CERT_FILE=str(workdir.parent / "ca.pem"))
    fleet = Fleet(box, server.url if setup.fleet else None, workdir, env)
    job = workdir / "job.csv"
    write_job(job, [(oauth1[n % len(oauth1)], first_tweet + n) for n in range(items)])
    ledger = workdir / "ledger.jsonl"
    options = [*LIMITS_OFF, "--concurrency", str(concurrency)]
    stats = box.get("/__sandbox/stats")
    with workers(fleet, setup.extra_workers, options) as procs:
        driven = drive(fleet, job, ledger, options, [p.pid for p in procs])
    statuses = ledger_statuses(ledger) if ledger.exists() else {}
    return Measured(
        setup, items, driven, statuses, status_delta(stats, box.get("/__sandbox/stats"))
    )


def throughput(workdir: Path, items: int, rounds: int, concurrency: int) -> None:
    """Run part 2 and print its table."""
    options, context = tls_sandbox_options(workdir)
    results: dict[str, list[Measured]] = defaultdict(list)
    with sandbox(workdir, *options, context=context) as box, redis_server(workdir) as server:
        accounts = box.accounts()
        oauth1 = sorted(name for name, account in accounts.items() if "oauth1" in account)
        run = 0
        for round_ in range(rounds):
            order = SETUPS if round_ % 2 == 0 else tuple(reversed(SETUPS))
            for setup in order:
                run += 1
                measured = throughput_run(
                    box,
                    server,
                    workdir / f"run{run}",
                    setup,
                    oauth1,
                    items,
                    2_000_000_000 + run * 10_000_000,
                    concurrency,
                )
                results[setup.name].append(measured)
                d = measured.driven
                print(
                    f"round {round_ + 1} {setup.name}: exit {d.returncode}, {d.seconds:.2f} s, "
                    f"{items / d.seconds:.0f} items/s, CPU {measured.cpu:.2f} s "
                    f"(driver {d.driver_cpu:.2f}, workers "
                    f"{' '.join(f'{c:.2f}' for c in d.worker_cpu) or '-'}), "
                    f"Redis {dict(d.redis)}, ledger {measured.statuses}, "
                    f"sandbox {measured.sandbox_statuses}",
                    flush=True,
                )
    print(
        f"\n## Throughput, limits off: {items} retweets over {len(oauth1)} OAuth 1.0a accounts, "
        f"HTTPS, concurrency {concurrency} per process; median of {rounds} round(s) "
        "(min-max)\n"
    )
    print(
        "| setup | processes | wall s | items/s | CPU ms/item (all processes) | "
        "Redis round trips/item | Redis scripts/item | Redis commands/item | exits | ledger | "
        "sandbox statuses (all rounds) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for setup in SETUPS:
        runs = results[setup.name]
        walls = [m.driven.seconds for m in runs]
        rates = [items / w for w in walls]
        cpus = [m.cpu * 1000 / items for m in runs]
        statuses, answers = Counter[str](), Counter[str]()
        for m in runs:
            statuses.update(m.statuses)
            answers.update(m.sandbox_statuses)
        redis_columns = " | ".join(
            spread([m.driven.redis[what] / items for m in runs], ".2f") if setup.fleet else "-"
            for what in ("reads", "scripts", "commands")
        )
        print(
            f"| {setup.name} | {1 + setup.extra_workers} | {spread(walls, '.2f')} | "
            f"{spread(rates, '.0f')} | {spread(cpus, '.3f')} | {redis_columns} | "
            f"{sorted({m.driven.returncode for m in runs})} | {dict(statuses)} | "
            f"{dict(sorted(answers.items()))} |"
        )


def spread(values: list[float], fmt: str) -> str:
    """The median, and the range when there are several values."""
    median = format(statistics.median(values), fmt)
    if len(values) < 2:
        return median
    return f"{median} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["makespan", "throughput", "both"], default="both")
    parser.add_argument("--users", type=int, default=300, help="makespan accounts")
    parser.add_argument("--per-account", type=int, default=20, help="makespan items per account")
    parser.add_argument("--limit", type=int, default=5, help="makespan requests per window")
    parser.add_argument("--window", type=float, default=3.0, help="makespan window, seconds")
    parser.add_argument(
        "--modes", nargs="+", choices=["fleet", "embedded"], default=["fleet", "embedded"]
    )
    parser.add_argument("--items", type=int, default=6000, help="throughput items per setup")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds")
    parser.add_argument("--concurrency", type=int, default=64, help="in flight per process")
    parser.add_argument(
        "--verbose", action="store_true", help="makespan: every bulkrt process logs with -v"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (ledgers, process logs)"
    )
    args = parser.parse_args()
    met = True
    tmp = Path(tempfile.mkdtemp(prefix="bulkrt-fleet-bench-"))
    try:
        if args.part in ("makespan", "both"):
            (tmp / "makespan").mkdir()
            met = makespan(
                tmp / "makespan",
                Shape(args.users, args.per_account, args.limit, args.window),
                args.concurrency,
                args.modes,
                args.verbose,
            )
        if args.part in ("throughput", "both"):
            (tmp / "throughput").mkdir()
            throughput(tmp / "throughput", args.items, args.rounds, args.concurrency)
    finally:
        if args.keep:
            print(f"\nwork directory kept: {tmp}")
        else:
            shutil.rmtree(tmp)
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
