"""Benchmark: `bulkrt report` and `bulkrt status` (text and ``--json``) on a large ledger, this
tree's code side by side with an earlier commit's, in one run (not a test).

Run by hand::

    .venv/bin/python bench/report_bench.py [--lines 1000000] [--before 9395ff7] [--rounds 2]

It writes one ledger in `LedgerRecord.to_json`'s exact shape: ``--accounts`` accounts over three
campaigns, lines about 5 ms apart with a ``sent`` time, keys in the derived JSON-array form (the
slow case: every key needs JSON unescaping); 3% ``rejected``, 4% ``error`` that a second run
sends again (``ok``: those keys have two lines), 5% undos; one line torn inside the file and a
torn last line. ``--before`` is extracted with ``git archive`` into a temporary folder, and
this tree's ``bulkrt`` copied beside it; each side runs with its copy first on ``PYTHONPATH``
(from the temporary folder: ``python -m`` puts the working folder first). Each command runs
as its own process (``python -m bulkrt``), the two sides alternating, ``--rounds`` times;
reported per command and side: the best wall and CPU (user + system) seconds and the peak RSS
(``wait4``), and whether the two sides' outputs are byte-identical (the page's "made <time>"
stamp left out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bulkrt.jobs.keys import derived_key

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGNS = ("spring", "summer", "autumn")
ERROR = {"type": "network", "title": "connection reset", "detail": "peer closed"}
NOT_FOUND = {
    "type": "https://api.twitter.com/2/problems/resource-not-found",
    "title": "Not Found Error",
    "detail": "Could not find tweet with id: [900].",
}
START_MS = 1_795_000_000_000  # 2026-11-18, a whole second


def _stamp(ms: int) -> str:
    seconds, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"


def _line(n: int, run: str, ms: int, status: str, error: object, attempts: int) -> str:
    account = f"acct{n % ACCOUNTS:05d}"
    campaign = CAMPAIGNS[(n // 1000) % len(CAMPAIGNS)]
    action = "undo" if n % 20 == 7 else "retweet"
    tweet = str(10**18 + n)
    ok = status == "ok"
    return json.dumps(
        {
            "schema": 1,
            "ts": _stamp(ms + 40),
            "run": run,
            "key": derived_key(campaign, account, action, tweet, 0),
            "campaign": campaign,
            "account": account,
            "user_id": str(1000 + n % ACCOUNTS),
            "tweet_id": tweet,
            "action": action,
            "status": status,
            "retweeted": (action == "retweet") if ok else None,
            "preexisting": (n % 97 == 0) if ok and action == "retweet" else False,
            "http": 200 if ok else (404 if status == "rejected" else None),
            "error": error,
            "attempts": attempts,
            "sent": _stamp(ms),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


ACCOUNTS = 50


def write_ledger(path: Path, lines: int) -> None:
    """About ``lines`` lines: a first run, then a second that sends its errors again."""
    first = lines * 100 // 104
    retried: list[int] = []
    with path.open("w", encoding="utf-8") as out:
        for n in range(first):
            ms = START_MS + n * 5
            if n % 100 < 3:
                out.write(_line(n, "run-1", ms, "rejected", NOT_FOUND, 1) + "\n")
            elif n % 100 < 7:
                retried.append(n)
                out.write(_line(n, "run-1", ms, "error", ERROR, 5) + "\n")
            else:
                out.write(_line(n, "run-1", ms, "ok", None, 1 + (n % 50 == 0)) + "\n")
            if n == first // 2:
                out.write('{"schema":1,"ts":"2026-11-18T00:00:00.000Z","run":"ru\n')  # torn
        later = START_MS + first * 5 + 3_600_000
        for i, n in enumerate(retried[: lines - first]):
            out.write(_line(n, "run-2", later + i * 5, "ok", None, 1) + "\n")
        out.write('{"schema":1,"ts":"2026-11-18T00:00:00.000Z","run":"run-2","ke')  # torn


def _run(argv: list[str], pythonpath: str, cwd: Path) -> tuple[float, float, float, bytes]:
    """Wall seconds, CPU seconds (user + system), peak RSS in MB and stdout of one
    ``python -m bulkrt`` process."""
    env = {**os.environ, "PYTHONPATH": pythonpath, "COLUMNS": "100"}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bulkrt", *argv],
            stdout=out,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,  # not this tree: ``-m`` puts the working folder before PYTHONPATH
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    if process.returncode != 0:
        raise SystemExit(f"{argv} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output


def _extract(ref: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "bulkrt"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def main() -> None:
    global ACCOUNTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--before", default="9395ff7", help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ACCOUNTS = args.accounts
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        before = tmp / "before"
        before.mkdir()
        _extract(args.before, before)
        after = tmp / "after"
        shutil.copytree(
            ROOT / "bulkrt", after / "bulkrt"
        )  # a snapshot: edits meanwhile are not run
        sides = {f"before ({args.before})": str(before), "after (this tree)": str(after)}
        for side, path in sides.items():
            where = subprocess.run(
                [sys.executable, "-c", "import bulkrt; print(bulkrt.__file__)"],
                env={**os.environ, "PYTHONPATH": path},
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert where.startswith(path), (side, where)
        ledger = tmp / "ledger.jsonl"
        started = time.perf_counter()
        write_ledger(ledger, args.lines)
        with ledger.open("rb") as stream:  # not read whole: a child's peak RSS starts at ours
            count = sum(1 for _ in stream)
        print(
            f"ledger: {count} lines, {ledger.stat().st_size / 1e6:.0f} MB, {args.accounts} "
            f"accounts, written in {time.perf_counter() - started:.0f} s"
        )
        commands = {
            "report --html": ["report", str(ledger), "--html", str(tmp / "r.html"), "--force"],
            "status": ["status", str(ledger)],
            "status --json": ["status", str(ledger), "--json"],
        }
        best: dict[tuple[str, str], tuple[float, float, float]] = {}
        outputs: dict[tuple[str, str], bytes] = {}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                for side, path in sides.items():
                    wall, cpu, rss, output = _run(argv, path, tmp)
                    if name.startswith("report"):
                        page = (tmp / "r.html").read_bytes()
                        output += re.sub(rb"made \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", b"", page)
                    previous = best.get((name, side), (float("inf"), float("inf"), 0.0))
                    best[name, side] = (
                        min(previous[0], wall),
                        min(previous[1], cpu),
                        max(previous[2], rss),
                    )
                    outputs[name, side] = output
        names = list(sides)
        print(f"\n{'command':<16}" + "".join(f"{s:>40}" for s in names) + "   same output")
        print(f"{'':<16}" + f"{'wall s   CPU s   peak RSS':>40}" * len(names))
        for name in commands:
            cells = "".join(
                f"{best[name, s][0]:>24.2f} {best[name, s][1]:>7.2f} {best[name, s][2]:>6.0f} MB"
                for s in names
            )
            same = outputs[name, names[0]] == outputs[name, names[1]]
            print(f"{name:<16}{cells}   {'yes' if same else 'NO'}")
        print(
            f"\n(best wall and CPU of {args.rounds} round(s), highest peak RSS; each command run "
            f"as `python -m bulkrt <command>`; load average {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
