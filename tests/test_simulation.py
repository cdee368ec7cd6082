"""The whole run in virtual time (`bulkrt.simulation`): deterministic from a seed, faithful to
the sandbox's faults, and the source of the dry run's estimate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bulkrt.core.attribution import effect_of
from bulkrt.core.items import Action, Item
from bulkrt.core.outcome import classify
from bulkrt.core.tiers import Tier, limit_model
from bulkrt.sandbox.config import FaultKind, SandboxConfig
from bulkrt.sandbox.faults import ScriptedFault
from bulkrt.sandbox.state import SandboxState
from bulkrt.shell.client import Exchange, StaticAuthorization, Timeouts, XClient
from bulkrt.simulation.estimate import estimate
from bulkrt.simulation.harness import SimSettings, Simulation
from bulkrt.simulation.sim_sender import SimSender
from tests.sandbox.conftest import MakeApi, make_api  # noqa: F401  # the sandbox-over-HTTP fixture
from tests.test_mistakes import bulkrt

ACCOUNTS = ["acct001", "acct002", "acct003"]
FAULTS = {kind: 0.03 for kind in FaultKind}


def items(tweets: int = 12) -> list[Item]:
    """Every account retweets ``tweets`` Tweets."""
    return [
        Item(f"{a}-{t}", "spring", a, str(500 + t), Action.RETWEET, "job.csv", t + 2)
        for a in ACCOUNTS
        for t in range(tweets)
    ]


def simulated_ledger(directory: Path, seed: int) -> bytes:
    """The ledger of a faulty campaign killed once and resumed, simulated from ``seed``."""
    config = SandboxConfig(users=3, limit=5, window=2.0, fault_rates=FAULTS, seed=seed)
    settings = SimSettings(latency=0.05, read_timeout=0.5)
    sim = Simulation(config, seed=seed, settings=settings)
    ledger = directory / "l.jsonl"
    first = sim.run(items(), ledger, crash_after=3.3)
    assert first.crashed
    second = sim.run(items(), ledger)
    assert not second.crashed and second.requests > 0
    return ledger.read_bytes() + b"--journal--\n" + (directory / "l.jsonl.sent").read_bytes()


def test_the_same_seed_gives_the_same_ledger_and_another_seed_another(tmp_path: Path) -> None:
    """A seeded simulation (faults, a kill, a resume) writes byte-identical ledgers and journals
    each time, and a different seed writes different ones."""
    runs = []
    for n, seed in enumerate((7, 7, 8)):
        (tmp_path / str(n)).mkdir()
        runs.append(simulated_ledger(tmp_path / str(n), seed))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_a_crash_keeps_only_what_was_synced(tmp_path: Path) -> None:
    """A simulated kill leaves the ledger at its last fsync: every line whole, and fewer lines
    than items; the resumed run finishes every item exactly once more."""
    sim = Simulation(SandboxConfig(users=3, limit=5, window=2.0), settings=SimSettings())
    ledger = tmp_path / "l.jsonl"
    killed = sim.run(items(), ledger, crash_after=2.5)
    kept = ledger.read_bytes().splitlines(keepends=True)
    assert killed.crashed and all(line.endswith(b"\n") for line in kept)
    assert len(kept) < len(items())
    sim.run(items(), ledger)
    keys = [json.loads(line)["key"] for line in ledger.read_bytes().splitlines()]
    assert sorted(set(keys)) == sorted(i.key for i in items())
    retweeted = {u: len(sim.state.retweets[sim.user_ids[u]]) for u in ACCOUNTS}
    assert retweeted == dict.fromkeys(ACCOUNTS, 12)


def test_known_limits_mean_no_429(tmp_path: Path) -> None:
    """Simulated with the sandbox's own limits, a fresh run meets no 429 and its makespan is the
    windows it needs (12 items at 5 per 2 s: the third window)."""
    sim = Simulation(SandboxConfig(users=3, limit=5, window=2.0))
    run = sim.run(items(), tmp_path / "l.jsonl")
    assert run.throttled == 0 and run.requests == len(items())
    assert 4.0 <= run.makespan < 5.0


def dry_run(tmp_path: Path, per_account: int, *options: str) -> dict[str, Any]:
    """`bulkrt run --dry-run --json --tier basic` of ``per_account`` retweets on each of
    `ACCOUNTS` (OAuth 1.0a credentials that are never used), with ``options``."""
    accounts = {
        "accounts": {a: {"user_id": str(100 + n), "oauth1": {
            "consumer_key": "ck", "consumer_secret": "cs", "access_token": f"{100 + n}-t",
            "access_token_secret": "ts"}} for n, a in enumerate(ACCOUNTS)}
    }  # fmt: skip
    (tmp_path / "accounts.json").write_text(json.dumps(accounts))
    job = tmp_path / "spring.csv"
    job.write_text("account,tweet_id,action\n" + "".join(
        f"{i.account},{i.tweet_id},retweet\n" for i in items(per_account)))  # fmt: skip
    done = bulkrt(
        "run", str(job), "--accounts", str(tmp_path / "accounts.json"), "--ledger",
        str(tmp_path / "l.jsonl"), "--dry-run", "--json", "--tier", "basic", *options, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan: dict[str, Any] = json.loads(done.stdout)
    return plan


def test_the_dry_run_estimate_is_the_simulated_makespan(tmp_path: Path) -> None:
    """``bulkrt run --dry-run`` prints as its duration the makespan of the same job simulated
    against the same limits."""
    plan = dry_run(tmp_path, 17, "--limit", "5", "--window", "2")
    sim = Simulation(SandboxConfig(users=3, tier=Tier.BASIC, limit=5, window=2.0))
    run = sim.run(items(17), tmp_path / "sim.jsonl")
    assert plan["duration_seconds"] == round(run.makespan, 3)
    assert plan["requests"] == run.requests == 51
    timing = estimate({a: [Action.RETWEET] * 17 for a in ACCOUNTS}, limit_model("basic", limit=5,
                      window=2))  # fmt: skip
    assert timing.duration == run.makespan


def test_the_dry_run_honours_max_rps(tmp_path: Path) -> None:
    """With ``--max-rps 5`` the dry run's duration is what the app-wide cap makes it: 120
    requests, the first at once and then one every 0.2 s (23.8 s), not the windows' 0 s; and the
    estimate finishes (a virtual clock must not stall on the limiter's waits)."""
    capped = dry_run(tmp_path, 40, "--limit", "50", "--window", "1", "--max-rps", "5")
    free = dry_run(tmp_path, 40, "--limit", "50", "--window", "1")
    assert capped["requests"] == free["requests"] == 120
    assert capped["duration_seconds"] == 23.8
    assert free["duration_seconds"] < 5


def meaning(exchange: Exchange) -> tuple[object, ...]:
    """What an exchange means to bulkrt: the classification, the failure kind, whether it may
    have been sent, and the attribution effect."""
    outcome = classify(
        Action.RETWEET, exchange.http, exchange.headers, exchange.body, exchange.content_type,
        exchange.failure,
    )  # fmt: skip
    error = outcome.error.type if outcome.error is not None else None
    failure = exchange.failure.kind if exchange.failure is not None else None
    window = outcome.limits.window
    return (outcome.decision, outcome.status, outcome.http, error, failure, exchange.sent,
            effect_of(outcome), window and (window.limit, window.remaining))  # fmt: skip


@pytest.mark.parametrize("kind", [None, *FaultKind])
async def test_each_fault_means_to_bulkrt_what_it_means_over_http(
    make_api: MakeApi,  # noqa: F811  # the fixture imported above
    kind: FaultKind | None,
) -> None:
    """For every fault kind the sandbox injects (and none), the simulated answer means to
    bulkrt exactly what the real client reads from the sandbox over HTTP, and leaves the
    retweet applied or not alike."""
    api = await make_api(stall_seconds=0.4)
    user = api.users[1]
    auth = StaticAuthorization(f"Bearer {user.oauth2_access_token}")
    state = SandboxState(SandboxConfig(users=3, stall_seconds=0.4), now=api.now())
    if kind is not None:
        api.sandbox.state.faults.script(ScriptedFault(kind))
        state.faults.script(ScriptedFault(kind))
    timeouts = Timeouts(connect=1.0, read=0.2, total=5.0)
    async with XClient(api.sandbox.url, timeouts=timeouts) as client:
        real = await client.retweet(auth, user.user_id, "20")
    sender = SimSender(state, clock=api.now, read_timeout=0.2)
    simulated = await sender.retweet(auth, user.user_id, "20")
    assert meaning(simulated) == meaning(real)
    assert state.retweets[user.user_id] == api.sandbox.state.retweets[user.user_id]


def test_a_seeded_simulation_replays_in_another_process(tmp_path: Path) -> None:
    """The same seed gives the same ledger and journal in interpreters with different string
    hashing (nothing in the run depends on the order of a set)."""
    script = (
        "import hashlib, sys, pathlib\n"
        "from tests.test_simulation import simulated_ledger\n"
        "print(hashlib.sha256(simulated_ledger(pathlib.Path(sys.argv[1]), 11)).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        directory = tmp_path / hash_seed
        directory.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", script, str(directory)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        digests.add(done.stdout.strip())
    assert len(digests) == 1 and "" not in digests
