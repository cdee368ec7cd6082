"""Where bulkrt's CPU per item goes beyond the floor: the throughput comparison of
`bench.run_bench` with two more clients between bulkrt and tweepy, in the same rounds.

    .venv/bin/python -m bench.floor_bench [--items 10000] [--rounds 4] [--concurrency 64]

One HTTPS ``bulkrt sandbox --no-limits`` (as `bench.run_bench`'s throughput part) serves every
side; each side is a subprocess given its own Tweets (every request a 200), over the 50 OAuth 1.0a
accounts, ``--concurrency`` requests in flight. The sides:

- ``floor``: the least a client with bulkrt's durability does: aiohttp on uvloop, one session,
  each request signed by bulkrt's own OAuth 1.0a signer (`bulkrt.shell.oauth1_signature`), its
  answer read whole, one ledger-like line written per item with one ``os.write`` and an fsync
  every 100 lines; ``concurrency`` worker coroutines over one iterator of the job's rows;
- ``http-path``: the same loop, each request sent through bulkrt's own HTTP seam
  (`bulkrt.shell.sender.HttpSender` over `bulkrt.shell.client.XClient`) and its answer
  classified by `bulkrt.core.outcome.classify`, as `bulkrt run` does;
- ``bulkrt``: ``bulkrt run`` itself (the job file validated and read, the scheduler, the sent
  journal, the ledger, the whole process);
- ``tweepy``: the baseline of `bench.run_bench`.

So ``http-path`` minus ``floor`` is what bulkrt's request seam and classification cost, and
``bulkrt`` minus ``http-path`` what the engine around them costs (job validation, scheduling,
the journal's fsyncs, the ledger's records). Reported per round and side: client CPU ms per item,
user and system apart (``resource.getrusage(RUSAGE_CHILDREN)`` deltas), and items per second;
then each side's median and its ratio to tweepy's. The machine is shared and noisy: compare sides
within one invocation, over several rounds (the order of the sides alternates).
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run_bench import (
    BULKRT_TWEETS,
    bulkrt_run,
    sandbox,
    tls_sandbox_options,
    write_job,
)

SIDES = ("floor", "http-path", "bulkrt", "tweepy")
#: a ledger-like line is fsynced every this many lines, as `bulkrt.ledger.writer` does
SYNC_LINES = 100


@dataclass(frozen=True, slots=True)
class Cpu:
    """A client subprocess's exit code, CPU seconds (user, system) and wall seconds."""

    returncode: int
    user: float
    system: float
    seconds: float


def measured(argv: list[str], env: dict[str, str]) -> Cpu:
    """Run a client to its end; its CPU time from this process's children's usage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        print(f"{argv[:4]} exited {done.returncode}:\n{done.stderr[-2000:]}", file=sys.stderr)
    return Cpu(
        done.returncode,
        after.ru_utime - before.ru_utime,
        after.ru_stime - before.ru_stime,
        seconds,
    )


# -- the two clients between bulkrt and tweepy (run as ``--client SIDE SPEC``) ------------------


async def floor_client(spec: dict[str, Any], through_bulkrt: bool) -> int:
    """Send the spec's retweets; ``through_bulkrt``: through `HttpSender` and `classify`.
    Returns how many were answered 200 (classified ok)."""
    import aiohttp
    import orjson

    from bulkrt.core.items import Action
    from bulkrt.core.outcome import classify
    from bulkrt.shell.accounts import OAuth1
    from bulkrt.shell.client import XClient
    from bulkrt.shell.credentials import OAuth1Signer
    from bulkrt.shell.oauth1_signature import OAuth1Key, fresh_nonce
    from bulkrt.shell.sender import HttpSender

    base, accounts = spec["base"], spec["accounts"]
    rows = iter(
        (accounts[n % len(accounts)], str(spec["first_tweet"] + n)) for n in range(spec["items"])
    )
    fd = os.open(spec["ledger"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ok = lines = 0
    context = ssl.create_default_context(cafile=spec["ca"])
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=10, sock_read=30)

    def line(account: dict[str, Any], tweet: str, status: object, body: bytes) -> None:
        nonlocal lines
        record = {"account": account["user_id"], "tweet_id": tweet, "status": str(status)}
        os.write(fd, orjson.dumps({**record, "body": body.decode()}) + b"\n")
        lines += 1
        if lines % SYNC_LINES == 0:
            os.fsync(fd)

    async def plain(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        keys = {
            a["user_id"]: OAuth1Key(*(a["oauth1"][k] for k in _OAUTH1_FIELDS)) for a in accounts
        }
        for account, tweet in rows:
            url = f"{base}/2/users/{account['user_id']}/retweets"
            headers = {
                "Authorization": keys[account["user_id"]].authorization(
                    "POST", url, fresh_nonce(), int(time.time())
                ),
                "Content-Type": "application/json",
            }
            body = orjson.dumps({"tweet_id": tweet})
            async with session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                answer = await response.read()
            ok += response.status == 200
            line(account, tweet, response.status, answer)

    async def seam(senders: dict[str, HttpSender]) -> None:
        nonlocal ok
        for account, tweet in rows:
            exchange = await senders[account["user_id"]].send(Action.RETWEET, tweet)
            outcome = classify(
                Action.RETWEET,
                exchange.http,
                exchange.headers,
                exchange.body,
                exchange.content_type,
                exchange.failure,
                lower_names=True,
            )
            ok += str(outcome.status) == "ok"
            line(account, tweet, outcome.status, exchange.body)

    try:
        if through_bulkrt:
            async with XClient(base, max_connections=spec["concurrency"]) as client:
                senders = {
                    a["user_id"]: HttpSender(
                        client,
                        OAuth1Signer(OAuth1(**{k: a["oauth1"][k] for k in _OAUTH1_FIELDS})),
                        a["user_id"],
                    )
                    for a in accounts
                }
                await asyncio.gather(*(seam(senders) for _ in range(spec["concurrency"])))
        else:
            connector = aiohttp.TCPConnector(limit=spec["concurrency"], ssl=context)
            async with aiohttp.ClientSession(connector=connector) as session:
                await asyncio.gather(*(plain(session) for _ in range(spec["concurrency"])))
        os.fsync(fd)
    finally:
        os.close(fd)
    return ok


_OAUTH1_FIELDS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")


def run_client(side: str, spec_path: str) -> None:
    import uvloop

    spec = json.loads(Path(spec_path).read_text())
    ok = uvloop.run(floor_client(spec, through_bulkrt=side == "http-path"))
    if ok != spec["items"]:
        sys.exit(f"{side}: {ok} of {spec['items']} answered ok")


# -- the rounds -----------------------------------------------------------------------------------


def compare(workdir: Path, items: int, rounds: int, concurrency: int) -> None:
    # bulkrt's code loaded as installed, from bytecode compiled once (see `bench.run_bench`)
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "bulkrt"), quiet=1)
    options, context = tls_sandbox_options(workdir)
    env = dict(os.environ, SSL_CERT_FILE=str(workdir / "ca.pem"))
    cpu: dict[str, list[Cpu]] = {side: [] for side in SIDES}
    with sandbox(workdir, *options, context=context) as box:
        accounts = box.accounts()
        oauth1 = sorted(name for name, account in accounts.items() if "oauth1" in account)
        first = BULKRT_TWEETS * 2
        print(f"== {items} retweets a side over {len(oauth1)} OAuth 1.0a accounts, HTTPS, ", end="")
        print(f"{concurrency} in flight, {rounds} rounds")
        print(
            f"{'round':>5} {'side':10} {'exit':>4} {'CPU ms/item':>11} {'user':>6} {'sys':>6} ",
            end="",
        )
        print(f"{'items/s':>8}")
        for round_ in range(rounds):
            order = SIDES if round_ % 2 == 0 else tuple(reversed(SIDES))
            for side in order:
                first += items
                spec = {
                    "base": box.url,
                    "ca": str(workdir / "ca.pem"),
                    "port": int(box.url.rsplit(":", 1)[1].rstrip("/")),
                    "concurrency": concurrency,
                    "items": items,
                    "first_tweet": first,
                    "accounts": [accounts[name] for name in oauth1],
                    "ledger": str(workdir / f"{side}-{round_}.jsonl"),
                }
                spec_path = workdir / "spec.json"
                spec_path.write_text(json.dumps(spec))
                if side == "bulkrt":
                    job = workdir / f"floor-{round_}.csv"
                    write_job(job, [(oauth1[n % len(oauth1)], first + n) for n in range(items)])
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    run = bulkrt_run(
                        box,
                        workdir,
                        job,
                        *("--tier", "pro", "--limit", "1000000", "--window", "1"),
                        *("--concurrency", str(concurrency)),
                    )
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    got = Cpu(
                        run.returncode,
                        after.ru_utime - before.ru_utime,
                        after.ru_stime - before.ru_stime,
                        run.seconds,
                    )
                elif side == "tweepy":
                    argv = [sys.executable, "-m", "bench.run_bench", "--tweepy-worker"]
                    got = measured([*argv, str(spec_path)], env)
                else:
                    argv = [sys.executable, "-m", "bench.floor_bench", "--client", side]
                    got = measured([*argv, str(spec_path)], env)
                cpu[side].append(got)
                total = (got.user + got.system) * 1000 / items
                print(
                    f"{round_ + 1:5d} {side:10} {got.returncode:4d} {total:11.3f} "
                    f"{got.user * 1000 / items:6.3f} {got.system * 1000 / items:6.3f} "
                    f"{items / got.seconds:8.0f}",
                    flush=True,
                )
    per_item = {
        side: statistics.median((c.user + c.system) * 1000 / items for c in runs)
        for side, runs in cpu.items()
    }
    print(f"median over {rounds} rounds, CPU ms/item (ratio to tweepy's):")
    for side in SIDES:
        print(f"  {side:10} {per_item[side]:.3f} ({per_item[side] / per_item['tweepy']:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--client", nargs=2, metavar=("SIDE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        run_client(*args.client)
        return
    with tempfile.TemporaryDirectory(prefix="bulkrt-floor-") as tmp:
        compare(Path(tmp), args.items, args.rounds, args.concurrency)


if __name__ == "__main__":
    main()
