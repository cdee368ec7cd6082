"""The whole run in virtual time at scale: N accounts x 5 retweets through real 900-second pro
windows, simulated by `bulkrt.simulation` (the real scheduler, dispatcher, ledger writer and
journal against the sandbox's pure state, instant answers, no faults).

    .venv/bin/python bench/sim_scale_bench.py [--sizes 10000,100000,1000000] [--items 5]
        [--dir DIR]

Each size runs in a fresh subprocess (so peak RSS is its own). Reported per size: accounts,
items, wall seconds of the simulated run (the sandbox world's set-up apart, in ``setup s``),
µs per item, peak RSS, and bytes per account (peak RSS over the interpreter's baseline, divided
by the accounts). The ledger and journal go to ``--dir`` (default: ``/dev/shm`` when the machine
has it, so fsyncs cost nothing: the disk's speed is not what this measures) and are deleted
afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bulkrt.core.items import Action, Item


class Grid:
    """``accounts`` x ``per`` retweet items, rows interleaved by account, made on the fly."""

    def __init__(self, names: list[str], per: int) -> None:
        self.names, self.per = names, per

    def __iter__(self) -> Iterator[Item]:
        for t in range(self.per):
            tweet = str(1_000 + t)
            for n, name in enumerate(self.names):
                yield Item(f"{n}:{t}", "scale", name, tweet, Action.RETWEET, "grid", 2 + n)


def one(accounts: int, per: int, directory: Path) -> dict[str, float]:
    """Simulate one size in this process; what it measured."""
    import structlog
    from structlog.testing import capture_logs

    from bulkrt.sandbox.config import SandboxConfig, Tier
    from bulkrt.simulation.harness import Simulation

    del structlog
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    sim = Simulation(SandboxConfig(users=accounts, tier=Tier.PRO, log_size=1))
    setup = time.perf_counter() - started
    grid = Grid(list(sim.user_ids), per)
    started = time.perf_counter()
    with capture_logs():
        run = sim.run(grid, directory / "scale.ledger.jsonl")
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    items = accounts * per
    assert run.requests == items and run.throttled == 0, (run.requests, run.throttled)
    return {
        "accounts": accounts,
        "items": items,
        "setup_s": setup,
        "wall_s": wall,
        "us_per_item": wall / items * 1e6,
        "peak_rss_mb": peak / 2**20,
        "bytes_per_account": (peak - baseline) / accounts,
        "makespan_s": run.makespan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--items", type=int, default=5)
    shm = Path("/dev/shm")
    parser.add_argument("--dir", type=Path, default=shm if shm.is_dir() else None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
            print(json.dumps(one(args.child, args.items, Path(scratch))))
        return
    print(f"{'accounts':>9} {'items':>9} {'setup s':>8} {'wall s':>8} {'us/item':>8} "
          f"{'peak RSS':>9} {'B/account':>10} {'makespan':>9}")  # fmt: skip
    for size in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--child", str(size), "--items", str(args.items)]
        if args.dir is not None:
            command += ["--dir", str(args.dir)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{size:>9} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(done.stdout)
        print(f"{r['accounts']:>9} {r['items']:>9} {r['setup_s']:>8.1f} {r['wall_s']:>8.1f} "
              f"{r['us_per_item']:>8.1f} {r['peak_rss_mb']:>7.0f}MB "
              f"{r['bytes_per_account']:>10.0f} {r['makespan_s']:>8.1f}s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
