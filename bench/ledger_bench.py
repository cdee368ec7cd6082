"""Benchmark: the resume scan (`finished_keys`) and `bulkrt status` on a large ledger (not a test).

Run by hand::

    .venv/bin/python bench/ledger_bench.py --lines 1000000 [--status]

It writes a ledger in `LedgerRecord.to_json`'s exact shape (90% ``ok``, 5% ``rejected``, 5%
``error``; keys in the derived JSON-array form, so every key needs JSON unescaping, the slow
case), ending in a torn line, then times `finished_keys` and prints the peak RSS. With
``--status`` it also times `summarise_ledger`.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from bulkrt.core.items import Action, ErrorDetail, Status
from bulkrt.jobs.keys import derived_key
from bulkrt.ledger.counts import summarise_ledger
from bulkrt.ledger.record import LedgerRecord
from bulkrt.ledger.resume import finished_keys


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _key(n: int) -> str:
    return derived_key("bench", f"acct{n % 6 + 1:03d}", "retweet", str(10**18 + n), 0)


def _write_ledger(path: Path, lines: int) -> None:
    error = ErrorDetail("https://api.twitter.com/2/problems/resource-not-found", "Not Found", "x")
    template = LedgerRecord(
        ts="2026-11-26T01:00:00Z",
        run="run-1",
        key="@KEY@",
        campaign="bench",
        account="@ACCOUNT@",
        user_id="1001",
        tweet_id="@TWEET@",
        action=Action.RETWEET,
        status=Status.OK,
        retweeted=True,
        preexisting=False,
        http=200,
        error=None,
        attempts=1,
    )
    shapes = {
        status: LedgerRecord(
            **{
                **{name: getattr(template, name) for name in LedgerRecord.__dataclass_fields__},
                "status": status,
                "error": None if status is Status.OK else error,
            }
        ).to_json()
        for status in Status
    }
    with path.open("w", encoding="utf-8") as out:
        for n in range(lines):
            status = (
                Status.OK if n % 20 < 18 else (Status.REJECTED if n % 20 == 18 else Status.ERROR)
            )
            key = _key(n).replace('"', '\\"')
            out.write(
                shapes[status]
                .replace("@KEY@", key)
                .replace("@ACCOUNT@", f"acct{n % 6 + 1:03d}")
                .replace("@TWEET@", str(10**18 + n))
                + "\n"
            )
        out.write('{"schema":1,"ts":"2026-11-26T01:00:00Z","run":"run-1","ke')  # torn by a crash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--status", action="store_true", help="also time summarise_ledger")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.jsonl"
        started = time.perf_counter()
        _write_ledger(path, args.lines)
        print(
            f"wrote {args.lines} lines ({path.stat().st_size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - started:.1f} s; peak RSS so far {_peak_rss_mb():.1f} MB"
        )

        started = time.perf_counter()
        finished = finished_keys(path)
        scanned = time.perf_counter() - started
        print(
            f"finished_keys: {len(finished)} finished keys in {scanned:.2f} s, "
            f"peak RSS {_peak_rss_mb():.1f} MB"
        )
        assert _key(0) in finished and _key(19) not in finished

        started = time.perf_counter()
        hits = sum(1 for n in range(args.lines) if _key(n) in finished)
        print(
            f"membership: {args.lines} look-ups ({hits} finished) in "
            f"{time.perf_counter() - started:.2f} s (includes building the keys)"
        )

        if args.status:
            started = time.perf_counter()
            summary = summarise_ledger(path)
            print(
                f"summarise_ledger: {summary.items} items in {time.perf_counter() - started:.1f}"
                f" s, peak RSS {_peak_rss_mb():.1f} MB"
            )
    print(f"peak RSS of the whole process: {_peak_rss_mb():.1f} MB")


if __name__ == "__main__":
    main()
