"""How long `bulkrt` takes to start: wall and CPU of short commands, beside importing tweepy.

    .venv/bin/python bench/startup_bench.py [--before REV] [--runs 10]

Each command runs as ``python -m bulkrt ...`` in a fresh interpreter, ``--runs`` times; reported
is the median wall time (from start to exit, as this script sees it) and the median CPU time
(user + system of that child alone, from ``os.wait4``), in milliseconds:

- ``--help``;
- ``validate`` of a small job (6 rows over 3 OAuth 1.0a accounts);
- ``status`` of a small ledger (60 lines);
- ``run --dry-run`` of the same job (the plan, simulated in virtual time; sends nothing).

Beside them: ``python -c pass`` (the interpreter alone) and ``python -c "import tweepy"`` (the
goal for ``--help`` and ``validate``), when tweepy is installed. Last, ``until handlers``: the wall
time from start until the process catches SIGTERM (read from ``/proc/PID/status`` every 2 ms),
that is until `bulkrt.launch.main` has installed its SIGINT and SIGTERM handlers; a signal before
then ends the process with Python's own traceback instead of bulkrt's one line.

With ``--before REV`` the same commands also run from that commit's source (``git archive``,
first on ``PYTHONPATH``), the two alternating run by run so that the machine's load falls on both
alike: a before/after table. Every process runs in a scratch directory, so neither tree shadows
the other.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bulkrt.core.items import Action, Status
from bulkrt.ledger.record import LedgerRecord

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = ("acct001", "acct002", "acct003")


@dataclass(frozen=True)
class Timing:
    """One process: wall and CPU milliseconds, and its exit code."""

    wall_ms: float
    cpu_ms: float
    code: int


def _environment(pythonpath: Path | None) -> dict[str, str]:
    """This environment, with ``PYTHONPATH`` set to ``pythonpath`` alone (or unset)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def timed(argv: list[str], *, cwd: Path, pythonpath: Path | None) -> Timing:
    """Run ``argv`` to its end, its output discarded; its wall and CPU time."""
    env = _environment(pythonpath)
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Timing(wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000, process.returncode)


def until_handlers(argv: list[str], *, cwd: Path, pythonpath: Path | None) -> float:
    """Milliseconds from starting ``argv`` until it catches SIGTERM; the process is then killed."""
    env = _environment(pythonpath)
    start = time.perf_counter()
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as process:  # fmt: skip
        while not _catches_sigterm(process.pid) and process.poll() is None:
            time.sleep(0.002)
        waited = time.perf_counter() - start
        process.kill()
    return waited * 1000


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def write_inputs(workdir: Path) -> dict[str, list[str]]:
    """A small job, its accounts file and a small ledger; the bulkrt commands to time."""
    job = workdir / "job.csv"
    rows = [f"{account},{2_000_000_000 + n},retweet\n" for n in range(2) for account in ACCOUNTS]
    job.write_text("account,tweet_id,action\n" + "".join(rows))
    keys = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
    accounts = workdir / "accounts.json"
    oauth1 = {key: f"{key}-value" for key in keys}
    document = {
        name: {"user_id": str(1001 + n), "oauth1": oauth1} for n, name in enumerate(ACCOUNTS)
    }
    accounts.write_text(json.dumps({"accounts": document}))
    accounts.chmod(0o600)
    ledger = workdir / "ledger.jsonl"
    record = LedgerRecord(
        ts="2026-11-26T01:00:00Z", run="run-1", key="k", campaign="job", account="acct001",
        user_id="1001", tweet_id="20", action=Action.RETWEET, status=Status.OK, retweeted=True,
        preexisting=False, http=200, error=None, attempts=1,
    )  # fmt: skip
    lines = [
        replace(record, key=f"k{n}", account=ACCOUNTS[n % 3], tweet_id=str(2_000_000_000 + n))
        for n in range(60)
    ]
    ledger.write_text("".join(line.to_json() + "\n" for line in lines))
    common = ["--accounts", str(accounts)]
    return {
        "--help": ["--help"],
        "validate": ["validate", str(job), *common],
        "status": ["status", str(ledger)],
        "run --dry-run": [
            "run",
            str(job),
            *common,
            "--ledger",
            str(workdir / "new.jsonl"),
            "--dry-run",
        ],  # fmt: skip
    }


def export(rev: str, into: Path) -> Path:
    """The source of commit ``rev`` (its ``bulkrt`` package) in ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "bulkrt"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def tweepy_installed() -> bool:
    """Whether this interpreter can import tweepy."""
    found = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(bool(u.find_spec('tweepy')))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="also time this commit's source")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bulkrt-startup-bench-") as scratch:
        workdir = Path(scratch)
        commands = write_inputs(workdir)
        trees = {"after": ROOT}
        if args.before:
            trees = {"before": export(args.before, workdir / "before"), **trees}
        rows: dict[str, list[str]] = {
            name: [sys.executable, "-m", "bulkrt", *argv] for name, argv in commands.items()
        }
        reference = {"python -c pass": [sys.executable, "-c", "pass"]}
        if tweepy_installed():
            reference["import tweepy"] = [sys.executable, "-c", "import tweepy"]
        samples: dict[tuple[str, str], list[Timing]] = {}
        # `run` reading a job from a standard input that stays open: it waits there, handlers on
        waiting = [sys.executable, "-m", "bulkrt", "run", "-", "--format", "csv",
                   *commands["validate"][2:], "--ledger", str(workdir / "never.jsonl")]  # fmt: skip
        handlers: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for tree, path in trees.items():
                handlers.setdefault(tree, []).append(
                    until_handlers(waiting, cwd=workdir, pythonpath=path)
                )
            for name, argv in rows.items():
                for tree, path in trees.items():
                    samples.setdefault((name, tree), []).append(
                        timed(argv, cwd=workdir, pythonpath=path)
                    )
            for name, argv in reference.items():
                samples.setdefault((name, ""), []).append(timed(argv, cwd=workdir, pythonpath=None))
    print(f"median of {args.runs} runs, milliseconds (wall / CPU); exit codes in brackets")
    header = f"{'command':<16}" + "".join(f"{tree:>22}" for tree in trees)
    print(header)
    for name in rows:
        cells = []
        for tree in trees:
            got = samples[(name, tree)]
            wall = statistics.median(t.wall_ms for t in got)
            cpu = statistics.median(t.cpu_ms for t in got)
            codes = ",".join(sorted({str(t.code) for t in got}))
            cells.append(f"{wall:7.0f} / {cpu:5.0f} [{codes}]")
        print(f"{name:<16}" + "".join(f"{cell:>22}" for cell in cells))
    cells = [f"{statistics.median(handlers[tree]):7.0f}" for tree in trees]
    print(f"{'until handlers':<16}" + "".join(f"{cell:>22}" for cell in cells))
    for name in reference:
        got = samples[(name, "")]
        wall = statistics.median(t.wall_ms for t in got)
        cpu = statistics.median(t.cpu_ms for t in got)
        print(f"{name:<16}{wall:9.0f} / {cpu:5.0f}")


if __name__ == "__main__":
    main()
