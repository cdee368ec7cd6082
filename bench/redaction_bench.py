"""Benchmark: `bulkrt validate` with a large accounts file whose tokens share long prefixes,
against one with random tokens, in the same run (not a test).

Run by hand::

    .venv/bin/python bench/redaction_bench.py --accounts 100000

OAuth 1.0a access tokens begin with the user id, and ids made near each other share their leading
digits, so an accounts file of many such accounts holds secrets that share long prefixes. Masking
must not cost more for them: the goal is the prefixed file within 1.5x the random one's time. Each
file is validated in a subprocess (the real CLI), best of ``--repeat`` runs; both times and their
ratio are printed.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ALPHABET = string.ascii_letters + string.digits


def _random(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(_ALPHABET, k=n))


def write_accounts(path: Path, accounts: int, *, shared_prefixes: bool, seed: int) -> None:
    """An accounts file of OAuth 1.0a accounts; with ``shared_prefixes`` the access tokens are
    ``<user id>-<random>`` for consecutive 19-digit ids, else wholly random of the same length."""
    rng = random.Random(seed)
    consumer_key, consumer_secret = _random(rng, 25), _random(rng, 50)
    entries = {}
    for n in range(accounts):
        user_id = str(1036518367961300000 + n)
        token = f"{user_id}-{_random(rng, 30)}" if shared_prefixes else _random(rng, 50)
        entries[f"acct{n:06d}"] = {
            "user_id": user_id,
            "oauth1": {
                "consumer_key": consumer_key,
                "consumer_secret": consumer_secret,
                "access_token": token,
                "access_token_secret": (
                    f"{user_id}{_random(rng, 26)}" if shared_prefixes else _random(rng, 45)
                ),
            },
        }
    path.write_text(json.dumps({"accounts": entries}))
    path.chmod(0o600)


def time_validate(job: Path, accounts: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bulkrt", "validate", str(job), "--accounts", str(accounts)],
            check=True,
            capture_output=True,
        )
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        job = directory / "job.csv"
        job.write_text("account,tweet_id,action\nacct000000,20,retweet\n")
        prefixed, plain = directory / "prefixed.json", directory / "random.json"
        write_accounts(prefixed, args.accounts, shared_prefixes=True, seed=1)
        write_accounts(plain, args.accounts, shared_prefixes=False, seed=1)
        random_s = time_validate(job, plain, args.repeat)
        prefixed_s = time_validate(job, prefixed, args.repeat)
    print(f"accounts: {args.accounts}")
    print(f"validate, random tokens:          {random_s:.2f} s")
    print(f"validate, tokens sharing prefixes: {prefixed_s:.2f} s")
    ratio = prefixed_s / random_s
    print(f"ratio: {ratio:.2f} (goal: at most 1.5) -> {'ok' if ratio <= 1.5 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
