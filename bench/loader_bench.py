"""Benchmark: validate and stream a large job file, reporting seconds and peak RSS (not a test).

Run by hand::

    .venv/bin/python bench/loader_bench.py --rows 1000000 [--gzip] [--jsonl] [--ids]

It writes a job over six accounts (one row in a hundred repeats the row before it, so the
repeat counting is exercised; with ``--ids`` every row has its own ``id`` instead, which
exercises the duplicate-id pass) into a temporary directory, then runs `check_jobs` and
`read_items` as `bulkrt run` will, and prints the time of each pass and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import IO

from bulkrt.jobs.loader import JobFormat, check_jobs, open_jobs, read_items

ACCOUNTS = [f"acct{n:03d}" for n in range(1, 7)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_job(out: IO[str], rows: int, fmt: JobFormat, ids: bool) -> None:
    rng = random.Random(3)
    if fmt is JobFormat.CSV:
        out.write("account,tweet_id,action,campaign,id\n")
    previous = ""
    for n in range(rows):
        if n % 100 == 99 and not ids:
            out.write(previous)
            continue
        account = ACCOUNTS[n % len(ACCOUNTS)]
        tweet_id = str(rng.randrange(10**17, 2**63 - 1))
        item_id = f"row-{n}" if ids else ""
        if fmt is JobFormat.CSV:
            previous = f"{account},{tweet_id},retweet,bench,{item_id}\n"
        else:
            fields = {"account": account, "tweet_id": tweet_id, "action": "retweet"}
            if ids:
                fields["id"] = item_id
            previous = json.dumps(fields) + "\n"
        out.write(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--jsonl", action="store_true")
    parser.add_argument("--ids", action="store_true", help="give every row its own id")
    args = parser.parse_args()
    fmt = JobFormat.JSONL if args.jsonl else JobFormat.CSV

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench.{fmt.value}{'.gz' if args.gzip else ''}"
        started = time.perf_counter()
        with (
            gzip.open(path, "wt", encoding="utf-8")
            if args.gzip
            else path.open("w", encoding="utf-8")
        ) as out:
            _write_job(out, args.rows, fmt, args.ids)
        print(
            f"wrote {args.rows} rows ({path.stat().st_size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - started:.1f} s; peak RSS so far {_peak_rss_mb():.1f} MB"
        )

        accounts = frozenset(ACCOUNTS)
        with open_jobs([str(path)], fmt=None, campaign=None) as files:
            started = time.perf_counter()
            check = check_jobs(files, accounts)
            checked = time.perf_counter() - started
            print(
                f"check_jobs: {check.items} items, {len(check.repeated)} repeated identities, "
                f"{checked:.1f} s, peak RSS {_peak_rss_mb():.1f} MB"
            )

            started = time.perf_counter()
            count = 0
            repeats = 0
            for item in read_items(files, accounts, check):
                count += 1
                repeats += item.key.endswith(",1]")
            streamed = time.perf_counter() - started
            print(
                f"read_items: {count} items ({repeats} numbered 1), {streamed:.1f} s, "
                f"peak RSS {_peak_rss_mb():.1f} MB"
            )
    print(f"peak RSS of the whole process: {_peak_rss_mb():.1f} MB")


if __name__ == "__main__":
    main()
