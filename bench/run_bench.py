"""How close `bulkrt run` comes to the rate-limit bound, and what it costs per item without limits.

    .venv/bin/python bench/run_bench.py [--part makespan|throughput|both] [--items 10000]
        [--concurrency 64] [--rounds 3] [--tweepy-first] [--profile FILE] [--sample FILE]

Every process runs on this machine and talks over 127.0.0.1 only; every subprocess this script
starts is terminated and waited for, also on errors.

**Makespan** (issue 4: within 5% of the theoretical minimum, zero 429s). Starts
``bulkrt sandbox --users 20 --limit 5 --window 3`` (fixed windows per user and endpoint, opened by
the user's first request), writes a job of 60 retweets (distinct Tweet ids) for each of
``acct001`` ... ``acct020``, rows interleaved by account, and runs ``bulkrt run JOB --tier pro
--limit 5 --window 3 --concurrency 16 --no-progress`` as a subprocess. Then it reads the
sandbox's request log (``ts`` is when the sandbox processed the request, on its own clock) and
keeps the retweet requests. For an account with ``n`` items at ``L`` per ``W``-second window the
last request cannot go before the start of window ``ceil(n/L)``, that is
``(ceil(n/L) - 1) * W`` seconds after the account's first request (here 11 * 3 = 33 s). Reported:

- makespan: the latest last request of any account minus the run's first request;
- theoretical minimum: ``(ceil(n/L) - 1) * W`` for the largest account, measured from the run's
  first request (so the spread of the accounts' first requests counts against bulkrt);
- ratio makespan / minimum (the goal is at most 1.05), and per account the worst
  ``(last - first) / minimum``;
- per-window lateness: for the worst account, when the first request of each of its server
  windows went, minus ``first + k * W`` (how much each window cost beyond the bound);
- 429s (from ``/__sandbox/stats``), the exit code and the ledger's statuses.

**Throughput, limits off.** One ``bulkrt sandbox --no-limits --users 100`` serving HTTPS with a
trustme certificate for ``api.twitter.com`` and ``127.0.0.1``; only the 50 OAuth 1.0a accounts
(odd-numbered) are used, on both sides, each side with its own Tweet ids so both see 200s:

- bulkrt: ``bulkrt run`` on ``--items`` retweets spread evenly over those accounts,
  ``--concurrency 64``, limits set far beyond reach (``--limit 1000000 --window 1``), trusting the
  test CA through ``SSL_CERT_FILE``;
- tweepy: this script, re-run as a subprocess, drives ``tweepy.asynchronous.AsyncClient`` (one
  client per account, all sharing one aiohttp session whose resolver sends every host to the
  sandbox and whose SSL context trusts the test CA) with ``asyncio.gather`` over every item under
  ``asyncio.Semaphore(64)``.

For each side: wall seconds of the whole client process (start-up and loading included), items
per second, client CPU ms per item (user + system of that child alone, from
``resource.getrusage(RUSAGE_CHILDREN)`` deltas around it), the span from its first to its last
request in the sandbox log (the request phase alone), the sandbox's CPU ms per item (``/proc``),
and the sandbox's status counts for that side's requests. ``lead`` is the time from the
client's start to its first request and ``tail`` from its last request to its exit (the log's
``ts`` and this script's ``time.time()`` share this host's clock). Both sides run in the same
invocation because the machine is noisy: ``--rounds`` rounds (3), alternating which side goes
first (bulkrt in the first round; ``--tweepy-first`` swaps), each round with Tweets of its own;
the medians of CPU per item and items per second close the table, with bulkrt's over tweepy's.
bulkrt's bytecode is compiled first, as an install does (tweepy's is, being installed), so
neither side compiles its code on every run. ``--profile FILE`` adds one bulkrt run under
cProfile timed in process CPU seconds (the machine is shared: wall time would count other
processes' turns), not counted in the table, saved to FILE and summarised as own time by
library, bulkrt module and standard-library module. cProfile inflates the cost of Python calls;
``--sample FILE`` samples one more run with py-spy instead (``pip install py-spy`` in the venv;
it is no dependency of bulkrt), counting a sample while a thread holds the GIL (on a loaded
machine that includes time the process waited for a core), and summarises it alike.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import csv
import json
import math
import os
import pstats
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bulkrt.sandbox.loopback import LoopbackResolver

BULKRT = [sys.executable, "-m", "bulkrt"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

MAKESPAN_USERS, MAKESPAN_ITEMS, LIMIT, WINDOW, MAKESPAN_CONCURRENCY = 20, 60, 5, 3.0, 16
THROUGHPUT_USERS = 100
BULKRT_TWEETS, TWEEPY_TWEETS = 2_000_000_000, 3_000_000_000


# -- processes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A running `bulkrt sandbox` subprocess."""

    url: str
    pid: int
    accounts_file: Path
    context: ssl.SSLContext | None

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path)
        # no ProxyHandler settings: urllib would otherwise honour *_proxy variables
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if self.context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.context))
        with urllib.request.build_opener(*handlers).open(request, timeout=30) as response:
            return json.load(response)

    def accounts(self) -> dict[str, dict[str, Any]]:
        accounts: dict[str, dict[str, Any]] = json.loads(self.accounts_file.read_text())["accounts"]
        return accounts

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def stop(process: subprocess.Popen[str]) -> None:
    """Terminate a subprocess and wait for it (kill it if SIGTERM is not enough)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def sandbox(
    workdir: Path, *options: str, context: ssl.SSLContext | None = None
) -> Iterator[Sandbox]:
    """Start `bulkrt sandbox` on a free loopback port; stop it on leaving, whatever happens."""
    accounts_file = workdir / "accounts.json"
    argv = [*BULKRT, "sandbox", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--accounts-out", str(accounts_file), *options]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        url = line.split("listening on ", 1)[1].strip()
        yield Sandbox(url, process.pid, accounts_file, context)
    finally:
        stop(process)


@dataclass(frozen=True, slots=True)
class Measured:
    """A client subprocess that ran to its end."""

    returncode: int
    #: wall-clock (epoch) start and end, comparable with the sandbox log's ``ts`` on this host
    started: float
    ended: float
    seconds: float
    cpu: float
    stdout: str
    stderr: str


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a child to completion (killed on timeout or error); its wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, wall = time.time(), time.perf_counter()
    completed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    seconds, ended = time.perf_counter() - wall, time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(
        completed.returncode, started, ended, seconds, cpu, completed.stdout, completed.stderr
    )


def bulkrt_run(
    sandbox: Sandbox, workdir: Path, job: Path, *options: str, wrap: tuple[str, ...] = ()
) -> Measured:
    """`bulkrt run` of ``job`` against ``sandbox`` (``wrap``: the interpreter and its options
    instead of plain ``python``, e.g. to profile it)."""
    ledger = workdir / f"{job.stem}.ledger.jsonl"
    command = [*wrap, "-m", "bulkrt"] if wrap else BULKRT
    argv = [*command, "run", str(job), "--accounts", str(sandbox.accounts_file)]
    argv += ["--ledger", str(ledger), "--api-base", sandbox.url, "--no-progress", *options]
    env = dict(os.environ)
    if sandbox.context is not None:
        env["SSL_CERT_FILE"] = str(workdir / "ca.pem")
    measured = run_measured(argv, env)
    if measured.returncode != 0:
        print(f"bulkrt run exited {measured.returncode}; stderr tail:", file=sys.stderr)
        print(measured.stderr[-2000:], file=sys.stderr)
    return measured


def ledger_statuses(path: Path) -> dict[str, int]:
    with path.open() as lines:
        return dict(Counter(json.loads(line)["status"] for line in lines if line.strip()))


def write_job(path: Path, rows: list[tuple[str, int]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["account", "tweet_id", "action"])
        writer.writerows((account, str(tweet), "retweet") for account, tweet in rows)


def status_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    counts = Counter(after["by_status"])
    counts.subtract(before["by_status"])
    return {status: n for status, n in sorted(counts.items()) if n}


# -- part 1: makespan --------------------------------------------------------------------------


def per_window_lateness(times: list[float], limit: int, window: float) -> list[float]:
    """For each batch of ``limit`` requests, how late its first went past ``first + k*window``."""
    return [
        times[k * limit] - (times[0] + k * window) for k in range(math.ceil(len(times) / limit))
    ]


def makespan(workdir: Path) -> bool:
    """Run part 1 and print its figures; True when the goal is met."""
    options = ["--users", str(MAKESPAN_USERS), "--limit", str(LIMIT), "--window", str(WINDOW)]
    with sandbox(workdir, *options) as box:
        accounts = box.accounts()
        names = sorted(accounts)
        job = workdir / "makespan.csv"
        # Rows interleaved by account: the campaign's Tweets one after another.
        write_job(
            job,
            [(name, 1_000_000_000 + i) for i in range(MAKESPAN_ITEMS) for name in names],
        )
        measured = bulkrt_run(
            box,
            workdir,
            job,
            *("--tier", "pro", "--limit", str(LIMIT), "--window", str(WINDOW)),
            *("--concurrency", str(MAKESPAN_CONCURRENCY)),
        )
        stats = box.get("/__sandbox/stats")
        log = box.get("/__sandbox/log?since=0")["entries"]
    times = retweet_times(log, accounts, names)
    start = min(t[0] for t in times.values() if t)
    end = max(t[-1] for t in times.values() if t)
    bound = max((math.ceil(len(t) / LIMIT) - 1) * WINDOW for t in times.values())
    ratios = {
        name: (t[-1] - t[0]) / ((math.ceil(len(t) / LIMIT) - 1) * WINDOW)
        for name, t in times.items()
        if len(t) > LIMIT
    }
    worst = max(ratios, key=lambda name: ratios[name])
    lateness = per_window_lateness(times[worst], LIMIT, WINDOW)
    firsts = [t[0] - start for t in times.values() if t]
    too_many = stats["by_status"].get("429", 0)
    ratio = (end - start) / bound
    print(f"== makespan: {MAKESPAN_USERS} accounts x {MAKESPAN_ITEMS} items, ", end="")
    print(f"{LIMIT} per {WINDOW:g} s window, concurrency {MAKESPAN_CONCURRENCY}")
    print(f"exit code               {measured.returncode}")
    print(f"ledger                  {ledger_statuses(workdir / 'makespan.ledger.jsonl')}")
    print(f"sandbox statuses        {stats['by_status']}  (429s: {too_many})")
    print(f"process wall            {measured.seconds:.2f} s")
    print(f"makespan                {end - start:.3f} s (run's first to last request)")
    print(f"theoretical minimum     {bound:.3f} s")
    print(f"ratio                   {ratio:.4f}")
    print(f"first requests spread   {max(firsts):.3f} s")
    print(f"worst account           {worst}: (last - first) / minimum = {ratios[worst]:.4f}")
    print("  its windows' lateness  " + " ".join(f"{x:.3f}" for x in lateness))
    met = measured.returncode == 0 and too_many == 0 and ratio <= 1.05
    print(f"goal (<= 1.05, no 429)  {'met' if met else 'NOT met'}")
    return met


# -- part 2: throughput ------------------------------------------------------------------------


async def tweepy_retweets(spec: dict[str, Any]) -> dict[str, int]:
    """The baseline: tweepy's AsyncClient, ``asyncio.gather`` under a semaphore."""
    from tweepy.asynchronous import AsyncClient

    context = ssl.create_default_context(cafile=spec["ca"])
    connector = aiohttp.TCPConnector(
        resolver=LoopbackResolver(spec["port"]), ssl=context, limit=spec["concurrency"]
    )
    outcomes: Counter[str] = Counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        clients = []
        for account in spec["accounts"]:
            client = AsyncClient(**account["oauth1"])
            client.session = session
            clients.append(client)
        semaphore = asyncio.Semaphore(spec["concurrency"])

        async def retweet(client: Any, tweet: str) -> None:
            async with semaphore:
                await client.retweet(tweet)

        results = await asyncio.gather(
            *(
                retweet(clients[n % len(clients)], str(spec["first_tweet"] + n))
                for n in range(spec["items"])
            ),
            return_exceptions=True,
        )
    for result in results:
        outcomes["ok" if result is None else type(result).__name__] += 1
    return dict(outcomes)


@dataclass(frozen=True, slots=True)
class Side:
    """One client's figures in the throughput comparison."""

    name: str
    items: int
    measured: Measured
    #: the sandbox's times of the side's first and last request
    first: float
    last: float
    sandbox_cpu: float
    statuses: dict[str, int]
    outcomes: dict[str, int]


def measure_side(box: Sandbox, name: str, items: int, client: Any) -> Side:
    """Run ``client()`` (which returns a Measured and its outcomes) and read the sandbox."""
    stats = box.get("/__sandbox/stats")
    since = stats["requests"]  # the log's index, while it holds fewer than 100,000 entries
    cpu = box.cpu_seconds()
    measured, outcomes = client()
    sandbox_cpu = box.cpu_seconds() - cpu
    entries = box.get(f"/__sandbox/log?since={since}")["entries"]
    first, last = (entries[0]["ts"], entries[-1]["ts"]) if entries else (math.nan, math.nan)
    statuses = status_delta(stats, box.get("/__sandbox/stats"))
    return Side(name, items, measured, first, last, sandbox_cpu, statuses, outcomes)


def retweet_times(
    log: list[dict[str, Any]], accounts: dict[str, Any], names: list[str]
) -> dict[str, list[float]]:
    """Per account of ``names``, when the sandbox processed each of its retweet requests (its
    request log's ``ts``, in log order)."""
    by_user = {account["user_id"]: name for name, account in accounts.items()}
    times: dict[str, list[float]] = {name: [] for name in names}
    for entry in log:
        if entry["method"] == "POST" and entry["path"].endswith("/retweets"):
            times[by_user[entry["user_id"]]].append(entry["ts"])
    return times


def tls_sandbox_options(workdir: Path) -> tuple[list[str], ssl.SSLContext]:
    """The throughput sandbox's options (limits off, HTTPS with a test CA's certificate for
    ``api.twitter.com`` and ``127.0.0.1``, written to ``workdir``) and a context trusting it."""
    import trustme

    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(workdir / "ca.pem"))
    certificate = authority.issue_cert("api.twitter.com", "127.0.0.1")
    certificate.private_key_pem.write_to_path(str(workdir / "key.pem"))
    certificate.private_key_and_cert_chain_pem.write_to_path(str(workdir / "chain.pem"))
    options = ["--no-limits", "--users", str(THROUGHPUT_USERS)]
    options += ["--tls-cert", str(workdir / "chain.pem"), "--tls-key", str(workdir / "key.pem")]
    return options, ssl.create_default_context(cafile=str(workdir / "ca.pem"))


def throughput(
    workdir: Path,
    items: int,
    concurrency: int,
    tweepy_first: bool,
    rounds: int = 3,
    profile: Path | None = None,
    sample: Path | None = None,
) -> None:
    """Run part 2 (``rounds`` rounds, alternating which side goes first) and print its figures;
    with ``profile``, one more bulkrt run under cProfile, written there and summarised; with
    ``sample``, one more under py-spy, likewise."""
    # Both sides load their code as installed: from bytecode compiled once (an install compiles
    # it; under PYTHONDONTWRITEBYTECODE a checkout would compile bulkrt on every run).
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "bulkrt"), quiet=1)
    options, context = tls_sandbox_options(workdir)
    with sandbox(workdir, *options, context=context) as box:
        accounts = box.accounts()
        oauth1 = sorted(name for name, account in accounts.items() if "oauth1" in account)

        def run_bulkrt(round_: int, *wrap: str) -> tuple[Measured, dict[str, int]]:
            # each round its own Tweets, job and ledger: every request of every round is a 200
            first = BULKRT_TWEETS + round_ * items
            job = workdir / f"throughput-{round_}.csv"
            write_job(job, [(oauth1[n % len(oauth1)], first + n) for n in range(items)])
            ledger = workdir / f"throughput-{round_}.ledger.jsonl"
            measured = bulkrt_run(
                box,
                workdir,
                job,
                *("--tier", "pro", "--limit", "1000000", "--window", "1"),
                *("--concurrency", str(concurrency)),
                wrap=wrap,
            )
            return measured, ledger_statuses(ledger) if ledger.exists() else {}

        def run_tweepy(round_: int) -> tuple[Measured, dict[str, int]]:
            spec = {
                "ca": str(workdir / "ca.pem"),
                "port": int(box.url.rsplit(":", 1)[1].rstrip("/")),
                "concurrency": concurrency,
                "items": items,
                "first_tweet": TWEEPY_TWEETS + round_ * items,
                "accounts": [accounts[name] for name in oauth1],
            }
            (workdir / "tweepy.json").write_text(json.dumps(spec))
            argv = [sys.executable, __file__, "--tweepy-worker", str(workdir / "tweepy.json")]
            measured = run_measured(argv)
            if measured.returncode != 0:
                print(measured.stderr[-2000:], file=sys.stderr)
                return measured, {}
            return measured, dict(json.loads(measured.stdout))

        sides: list[tuple[int, Side]] = []
        for round_ in range(rounds):
            order = [("bulkrt", run_bulkrt), ("tweepy", run_tweepy)]
            if tweepy_first != (round_ % 2 == 1):
                order.reverse()
            for name, client in order:
                sides.append((round_, measure_side(box, name, items, partial(client, round_))))
        if profile is not None:
            run_bulkrt(rounds, sys.executable, __file__, _CPU_PROFILE, str(profile))
        if sample is not None:
            spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--gil", "-r", "250"]
            run_bulkrt(rounds + 1, *spy, "-f", "raw", "-o", str(sample), "--", sys.executable)
    print(f"== throughput, limits off: {items} retweets over {len(oauth1)} OAuth 1.0a ", end="")
    print(f"accounts, {concurrency} in flight, HTTPS, {rounds} alternating rounds")
    print(
        f"{'round':>5} {'client':8} {'items':>6} {'exit':>4} {'wall s':>7} {'items/s':>8} "
        f"{'CPU ms/item':>11} {'lead s':>6} {'req span s':>10} {'req/s':>6} {'tail s':>6} "
        f"{'srv CPU ms/item':>15}"
    )
    for round_, side in sides:
        m, span = side.measured, side.last - side.first
        print(
            f"{round_ + 1:5d} {side.name:8} {side.items:6d} {m.returncode:4d} {m.seconds:7.2f} "
            f"{side.items / m.seconds:8.0f} {m.cpu * 1000 / side.items:11.3f} "
            f"{side.first - m.started:6.2f} {span:10.2f} {side.items / span:6.0f} "
            f"{m.ended - side.last:6.2f} {side.sandbox_cpu * 1000 / side.items:15.3f}"
        )
    for round_, side in sides:
        print(f"round {round_ + 1} {side.name:8} sandbox statuses {side.statuses}; ", end="")
        print(f"client outcomes {side.outcomes}")
    cpu = {n: [s.measured.cpu * 1000 / s.items for _, s in sides if s.name == n] for n in NAMES}
    rate = {n: [s.items / s.measured.seconds for _, s in sides if s.name == n] for n in NAMES}
    print(
        f"median over {rounds} rounds: CPU ms/item bulkrt {statistics.median(cpu['bulkrt']):.3f}, "
        f"tweepy {statistics.median(cpu['tweepy']):.3f} (ratio "
        f"{statistics.median(cpu['bulkrt']) / statistics.median(cpu['tweepy']):.2f}); items/s "
        f"bulkrt {statistics.median(rate['bulkrt']):.0f}, tweepy "
        f"{statistics.median(rate['tweepy']):.0f} (ratio "
        f"{statistics.median(rate['bulkrt']) / statistics.median(rate['tweepy']):.2f})"
    )
    print_profiles(profile, sample)


def print_profiles(profile: Path | None, sample: Path | None) -> None:
    """Summarise the extra runs' cProfile and py-spy files, those that were asked for."""
    if profile is not None:
        print(f"== profile of one more bulkrt run ({profile}): own time by package")
        for share, seconds, where in profile_by_package(profile, top=25):
            print(f"{share:5.1f}% {seconds:7.2f} s  {where}")
    if sample is not None:
        print(f"== py-spy samples of one more bulkrt run ({sample}): own samples by package")
        for share, where in samples_by_package(sample, top=25):
            print(f"{share:5.1f}%  {where}")


#: the two sides of the throughput comparison
NAMES = ("bulkrt", "tweepy")


def profile_by_package(path: Path, top: int) -> list[tuple[float, float, str]]:
    """A cProfile file's own time summed by where the code lives: a library (its top package),
    a bulkrt module, a standard-library module, or a built-in; the ``top`` largest, with their
    share of the whole."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    totals: Counter[str] = Counter()
    for (filename, _, function), (_, _, own, _, _) in stats.items():
        if "site-packages/" in filename:
            where = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/bulkrt/" in filename:
            where = "bulkrt/" + filename.split("/bulkrt/", 1)[1]
        elif filename == "~":
            where = function
        else:
            where = "stdlib/" + Path(filename).name
        totals[where] += own
    whole = sum(totals.values()) or 1.0
    return [(100 * t / whole, t, where) for where, t in totals.most_common(top)]


def samples_by_package(path: Path, top: int) -> list[tuple[float, str]]:
    """A py-spy raw file's samples (``frame;frame;... count`` lines, sampled while the thread
    held the GIL) summed by where the innermost frame's code lives: a library (its top
    package), a bulkrt module, a standard-library module, or start-up's imports; the ``top``
    largest, as shares of the whole."""
    totals: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        filename = stack.rpartition(";")[2].rpartition(" (")[2].rpartition(":")[0]
        if filename.startswith("bulkrt/"):
            where = filename
        elif filename.startswith("<frozen"):
            where = "start-up (imports)"
        elif "/" in filename:
            where = filename.split("/", 1)[0]
        else:
            where = "stdlib/" + filename
        totals[where] += int(count)
    whole = sum(totals.values()) or 1
    return [(100 * n / whole, where) for where, n in totals.most_common(top)]


#: the first argument of this script re-run as ``bulkrt`` under a CPU-time profiler
_CPU_PROFILE = "--cpu-profile-worker"


def cpu_profiled(out: str, argv: list[str]) -> None:
    """Run ``python -m bulkrt ARGV...`` (``argv`` starts with ``-m bulkrt``) in this process
    under cProfile timed in process CPU seconds, and save the profile to ``out``."""
    import cProfile
    import runpy

    assert argv[:2] == ["-m", "bulkrt"], argv
    sys.argv = ["bulkrt", *argv[2:]]
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        runpy.run_module("bulkrt", run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
    else:
        code = 0
    finally:
        profiler.disable()
        profiler.dump_stats(out)
    sys.exit(code)


def main() -> None:
    if sys.argv[1:2] == [_CPU_PROFILE]:
        cpu_profiled(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["makespan", "throughput", "both"], default="both")
    parser.add_argument("--items", type=int, default=10_000, help="throughput items per side")
    parser.add_argument("--concurrency", type=int, default=64, help="throughput in flight")
    parser.add_argument("--tweepy-first", action="store_true", help="run the baseline first")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds, alternating")
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="also profile one bulkrt run into FILE"
    )
    parser.add_argument(
        "--sample",
        type=Path,
        metavar="FILE",
        help="also sample one bulkrt run with py-spy (installed apart) into FILE",
    )
    parser.add_argument("--tweepy-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tweepy_worker:
        spec = json.loads(Path(args.tweepy_worker).read_text())
        print(json.dumps(asyncio.run(tweepy_retweets(spec))))
        return
    met = True
    with tempfile.TemporaryDirectory(prefix="bulkrt-bench-") as tmp:
        if args.part in ("makespan", "both"):
            (Path(tmp) / "makespan").mkdir()
            met = makespan(Path(tmp) / "makespan")
        if args.part in ("throughput", "both"):
            (Path(tmp) / "throughput").mkdir()
            throughput(
                Path(tmp) / "throughput",
                args.items,
                args.concurrency,
                args.tweepy_first,
                args.rounds,
                args.profile,
                args.sample,
            )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
