"""How many API requests per second one sandbox process serves on this machine.

Starts `bulkrt sandbox --no-limits` in its own process, drives it from this process with aiohttp
(OAuth 2.0 bearer requests, then OAuth 1.0a signed ones), and reports requests per second and the
sandbox's CPU time per request (read from /proc, so a client-bound run still shows server cost).

    .venv/bin/python bench/sandbox_rps.py [--requests 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from oauthlib.oauth1 import Client as OAuth1Client

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def authorization(kind: str, account: dict[str, Any], method: str, url: str) -> str:
    if kind == "oauth2":
        return f"Bearer {account['oauth2']['access_token']}"
    creds = account["oauth1"]
    client = OAuth1Client(
        creds["consumer_key"],
        creds["consumer_secret"],
        creds["access_token"],
        creds["access_token_secret"],
    )
    _, headers, _ = client.sign(url, method)  # type: ignore[arg-type]
    return str(headers["Authorization"])


async def drive(
    base: str, accounts: list[dict[str, Any]], kind: str, total: int, concurrency: int
) -> tuple[float, Counter[int]]:
    """Send ``total`` retweets/undos, ``concurrency`` at once; returns seconds and statuses."""
    statuses: Counter[int] = Counter()
    counter = iter(range(total))

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in counter:
            account = accounts[n % len(accounts)]
            tweet = str(1_000_000 + n // 2)
            if n % 2 == 0:
                url = f"{base}/2/users/{account['user_id']}/retweets"
                headers = {"Authorization": authorization(kind, account, "POST", url)}
                request = session.post(url, json={"tweet_id": tweet}, headers=headers)
            else:
                url = f"{base}/2/users/{account['user_id']}/retweets/{tweet}"
                headers = {"Authorization": authorization(kind, account, "DELETE", url)}
                request = session.delete(url, headers=headers)
            async with request as response:
                await response.read()
                statuses[response.status] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        accounts_file = Path(tmp) / "accounts.json"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bulkrt",
                "sandbox",
                "--no-limits",
                "--port",
                "0",
                "--users",
                "100",
                "--accounts-out",
                str(accounts_file),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            base = server.stdout.readline().split("listening on ")[1].strip()
            accounts = json.loads(accounts_file.read_text())["accounts"]
            print(f"sandbox at {base}; {args.requests} requests per mode, ", end="")
            print(f"{args.concurrency} in flight")
            print(f"{'auth':8} {'requests/s':>11} {'sandbox CPU ms/request':>23}  statuses")
            for kind in ("oauth2", "oauth1"):
                chosen = [a for a in accounts.values() if kind in a]
                before = cpu_seconds(server.pid)
                seconds, statuses = asyncio.run(
                    drive(base, chosen, kind, args.requests, args.concurrency)
                )
                server_cpu = cpu_seconds(server.pid) - before
                print(
                    f"{kind:8} {args.requests / seconds:11.0f} "
                    f"{server_cpu * 1000 / args.requests:23.3f}  {dict(statuses)}"
                )
        finally:
            server.terminate()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()


if __name__ == "__main__":
    main()
