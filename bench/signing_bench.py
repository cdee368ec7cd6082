"""Benchmark: microseconds per OAuth 1.0a signature, oauthlib against bulkrt's signer, side by side
in one run (not a test).

Run by hand::

    .venv/bin/python bench/signing_bench.py --signatures 20000 --rounds 5

Each round signs the same requests (retweets and undos of ``--accounts`` accounts over loopback
HTTPS, a new URL each time) three ways, in turn: oauthlib as bulkrt used it (a ``Client`` per
request, then ``sign``), bulkrt's authorizer (`OAuth1Signer.authorization`: a fresh nonce and the
wall clock's second, then the signature) and the bare signature (`OAuth1Key.authorization` with a
given nonce and timestamp). The median and best round of each are printed, with the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import string
import time
from collections.abc import Callable

from oauthlib.oauth1 import Client as OAuth1Client

from bulkrt.shell.accounts import OAuth1
from bulkrt.shell.credentials import OAuth1Signer
from bulkrt.shell.oauth1_signature import OAuth1Key

_ALPHABET = string.ascii_letters + string.digits
BASE = "https://127.0.0.1:8443"


def _random(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(_ALPHABET, k=n))


def requests(count: int, accounts: int, seed: int) -> list[tuple[int, str, str]]:
    """``count`` (account, method, URL) triples: retweets and undos with real-sized ids."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        account = n % accounts
        user_id = str(1036518367961300000 + account)
        tweet_id = str(rng.randint(10**18, 2 * 10**18))
        if rng.random() < 0.5:
            out.append((account, "POST", f"{BASE}/2/users/{user_id}/retweets"))
        else:
            out.append((account, "DELETE", f"{BASE}/2/users/{user_id}/retweets/{tweet_id}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signatures", type=int, default=20000, help="per round and way")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    credentials = [
        OAuth1(
            _random(rng, 25),
            _random(rng, 50),
            f"{1036518367961300000 + n}-{_random(rng, 30)}",
            _random(rng, 45),
        )  # fmt: skip
        for n in range(args.accounts)
    ]
    work = requests(args.signatures, args.accounts, args.seed)
    signers = [OAuth1Signer(c) for c in credentials]
    keys = [
        OAuth1Key(c.consumer_key, c.consumer_secret, c.access_token, c.access_token_secret)
        for c in credentials
    ]
    nonce, timestamp = "0123456789abcdef0123456789abcdef", int(time.time())

    def oauthlib() -> None:
        for account, method, url in work:
            c = credentials[account]
            client = OAuth1Client(
                c.consumer_key, c.consumer_secret, c.access_token, c.access_token_secret
            )
            client.sign(url, method)  # type: ignore[arg-type]  # stubs want a Literal

    def authorizer() -> None:
        for account, method, url in work:
            # driven by hand: the coroutine never awaits, so no event loop turn is timed
            coroutine = signers[account].authorization(method, url)
            with contextlib.suppress(StopIteration):
                coroutine.send(None)

    def bare() -> None:
        for account, method, url in work:
            keys[account].authorization(method, url, nonce, timestamp)

    ways: dict[str, Callable[[], None]] = {
        "oauthlib Client.sign": oauthlib,
        "OAuth1Signer.authorization": authorizer,
        "OAuth1Key.authorization": bare,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append((time.perf_counter() - start) / args.signatures * 1e6)
    print(f"{args.signatures} signatures per round and way, {args.rounds} rounds, "
          f"{args.accounts} accounts")  # fmt: skip
    print(f"{'way':<28} {'median us':>10} {'best us':>10}")
    for name, values in times.items():
        print(f"{name:<28} {statistics.median(values):>10.1f} {min(values):>10.1f}")
    reference = statistics.median(times["oauthlib Client.sign"])
    for name in list(ways)[1:]:
        print(f"oauthlib / {name}: {reference / statistics.median(times[name]):.1f}x (median)")


if __name__ == "__main__":
    main()
