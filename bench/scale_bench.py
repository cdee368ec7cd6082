"""How bulkrt's cost grows with the number of accounts: the same 50,000 items as 10,000 accounts
x 5 items and as 100 accounts x 500 items, side by side in one invocation.

    .venv/bin/python -m bench.scale_bench [--items-per-account-small 5] [--concurrency 64]

One ``bulkrt sandbox --no-limits --users 10000`` serves both runs (over 127.0.0.1 only). For each
shape, an accounts file holding exactly the accounts used is written (so the 100-account run does
not load 10,000 accounts), then ``bulkrt run JOB --limit 1000000 --window 1 --concurrency 64
--no-progress`` runs as a subprocess, waited for with ``os.wait4`` so its own peak RSS and CPU
time are read. Reported per shape: wall seconds (the whole process, start-up included), items per
second, client CPU ms per item, peak RSS, and the ledger's statuses.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.run_bench import BULKRT, sandbox

USERS = 10_000
SHAPES = ((10_000, 5), (100, 500))


def run_shape(
    url: str, accounts: dict[str, object], workdir: Path, users: int, per: int, concurrency: int
) -> str:
    """Run one shape; returns its report line."""
    names = sorted(accounts)[:users]
    accounts_file = workdir / f"accounts-{users}.json"
    accounts_file.write_text(json.dumps({"accounts": {n: accounts[n] for n in names}}))
    accounts_file.chmod(0o600)
    job = workdir / f"job-{users}x{per}.csv"
    first_tweet = 10**12 * users
    rows = (f"{name},{first_tweet + n},retweet" for n in range(per) for name in names)
    job.write_text("account,tweet_id,action\n" + "\n".join(rows) + "\n")
    ledger = workdir / f"ledger-{users}x{per}.jsonl"
    argv = [*BULKRT, "run", str(job), "--accounts", str(accounts_file), "--ledger", str(ledger)]
    argv += ["--api-base", url, "--limit", "1000000", "--window", "1"]
    argv += ["--concurrency", str(concurrency), "--no-progress"]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        if process.poll() is None:
            process.kill()
        if process.stderr is not None:
            process.stderr.close()
    seconds = time.perf_counter() - started
    items = users * per
    cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000 / items
    with ledger.open() as lines:
        statuses = dict(Counter(json.loads(line)["status"] for line in lines if line.strip()))
    code = os.waitstatus_to_exitcode(status)
    return (
        f"{users:>6} x {per:<4} {items:>7} {code:>4} {seconds:>8.2f} {items / seconds:>8.0f} "
        f"{cpu_ms:>11.3f} {usage.ru_maxrss / 1024:>10.1f}  {statuses}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bulkrt-scale-") as tmp:
        workdir = Path(tmp)
        with sandbox(workdir, "--no-limits", "--users", str(USERS)) as box:
            accounts = box.accounts()
            print(f"sandbox {box.url}; {USERS} users; concurrency {args.concurrency}")
            print(
                f"{'shape':>13} {'items':>7} {'exit':>4} {'wall s':>8} {'items/s':>8} "
                f"{'CPU ms/item':>11} {'peak RSS MB':>11}  statuses"
            )
            for users, per in SHAPES:
                print(
                    run_shape(box.url, dict(accounts), workdir, users, per, args.concurrency),
                    flush=True,
                )


if __name__ == "__main__":
    main()
