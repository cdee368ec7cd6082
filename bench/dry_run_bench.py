"""How close a real run's makespan on the sandbox comes to its ``--dry-run`` estimate (the goal
is within 5%).

    .venv/bin/python bench/dry_run_bench.py [--users 4] [--items 20] [--limit 5] [--window 2]

Starts ``bulkrt sandbox --users N --limit L --window W`` on loopback, writes a job of ``--items``
retweets (distinct Tweet ids) for each account, asks ``bulkrt run JOB --dry-run --json`` for the
expected duration (the job simulated against the limit model), then runs the job for real with
the same options. The real makespan is read from the sandbox's request log: the last retweet
request minus the first (``ts``, on the sandbox's clock). Reported: both makespans, their ratio,
the 429s and the ledger's statuses. Every subprocess is stopped and waited for, also on errors.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run_bench import BULKRT, bulkrt_run, ledger_statuses, sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--window", type=float, default=2.0)
    args = parser.parse_args()
    limits = ["--tier", "pro", "--limit", str(args.limit), "--window", str(args.window)]
    with tempfile.TemporaryDirectory(prefix="bulkrt-dry-run-bench-") as scratch:
        workdir = Path(scratch)
        with sandbox(workdir, "--users", str(args.users), *limits[2:]) as box:
            names = sorted(box.accounts())
            job = workdir / "job.csv"
            rows = [f"{name},{2_000_000_000 + n},retweet\n" for n in range(args.items)
                    for name in names]  # fmt: skip
            job.write_text("account,tweet_id,action\n" + "".join(rows))
            ledger = workdir / "job.ledger.jsonl"
            planned = subprocess.run(
                [*BULKRT, "run", str(job), "--accounts", str(box.accounts_file), "--ledger",
                 str(ledger), "--dry-run", "--json", *limits],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            estimate = json.loads(planned.stdout)["duration_seconds"]
            real = bulkrt_run(box, workdir, job, *limits)
            log = box.get("/__sandbox/log?since=0")["entries"]
            stats = box.get("/__sandbox/stats")
        times = [e["ts"] for e in log if e["method"] == "POST" and e["path"].endswith("/retweets")]
        makespan = max(times) - min(times)
        print(f"{args.users} accounts x {args.items} retweets, --limit {args.limit} "
              f"--window {args.window:g}")  # fmt: skip
        print(f"dry-run estimate  {estimate:8.3f} s")
        print(f"real makespan     {makespan:8.3f} s  (exit {real.returncode}, wall "
              f"{real.seconds:.2f} s)")  # fmt: skip
        print(f"ratio real/estimate {makespan / estimate:.3f}" if estimate else "ratio n/a")
        print(f"429s {stats['by_status'].get('429', 0)}; ledger {ledger_statuses(ledger)}")
    sys.exit(0 if real.returncode == 0 else 1)


if __name__ == "__main__":
    main()
