"""The dry-run plan: request counts, expected duration under the limit model, and cost."""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from decimal import Decimal

import pytest
from click.testing import CliRunner

from bulkrt.cli import main
from bulkrt.core.items import Action
from bulkrt.core.plan import Timing, plan, rate_bound
from bulkrt.core.tiers import Prices, Tier, limit_model
from bulkrt.sandbox import FaultKind
from bulkrt.sandbox.faults import ScriptedFault
from bulkrt.simulation.estimate import estimate
from tests.test_run import MakeWorld

RT, UNDO = Action.RETWEET, Action.UNDO


@pytest.mark.parametrize(
    ("actions", "tier", "limit", "window", "low", "high"),
    [
        ([RT] * 60, "basic", 5, 3.0, 33.0, 34.0),  # the start of window 12
        ([RT] * 5, "basic", 5, 3.0, 0.0, 1.0),
        ([RT] * 3, "free", None, None, 1800.0, 1801.0),
        ([RT] * 51, "pro", None, None, 900.0, 901.0),
        ([RT] * 6 + [UNDO] * 5, "basic", 5, 3.0, 3.0, 4.0),  # file order: undos wait behind
        ([RT] * 301, "launch", None, None, 10_800.0, 10_801.0),  # the 3-hour cap, not window 7
    ],
)
def test_estimate_waits_for_the_window_with_room(
    actions: list[Action], tier: str, limit: int | None, window: float | None, low: float,
    high: float,
) -> None:  # fmt: skip
    """The simulated last request goes at the start of the window that has room for it (within
    the scheduler's margin of a second)."""
    timing = estimate({"acme": actions}, limit_model(tier, limit=limit, window=window))
    assert low <= timing.duration < high
    assert timing.last_request == {"acme": timing.duration}


#: random jobs of the rate-bound test in CI; more by hand
BOUND_SEEDS = int(os.environ.get("BULKRT_BOUND_SEEDS", "30"))


@pytest.mark.parametrize("seed", range(BOUND_SEEDS))
def test_a_runs_expected_finish_is_the_limits_bound_the_simulation_never_beats(seed: int) -> None:
    """A real run's expected finish (`rate_bound`, arithmetic on the counts) is never later than
    the simulated makespan of the same job, and equals it for a job of retweets alone with
    ample concurrency: the bound is the limits' own, not a guess."""
    r = random.Random(seed)
    tier = r.choice(["pro", "basic", "launch"])
    model = limit_model(tier, limit=r.randint(1, 6), window=r.choice([1.0, 2.0, 3.0]))
    mixed = r.random() < 0.5
    actions = list(Action) if mixed else [RT]
    pending = {
        f"a{n}": [r.choice(actions) for _ in range(r.randint(0, 14))]
        for n in range(r.randint(1, 6))
    }
    counts = Counter((account, a) for account, each in pending.items() for a in each)
    max_rps = r.choice([None, None, 4.0])
    simulated = estimate(pending, model, concurrency=32, max_rps=max_rps).duration
    bound = rate_bound(counts, model, max_rps=max_rps)
    assert bound <= simulated + 1e-9, (pending, bound, simulated)
    if not mixed and max_rps is None:
        assert simulated == pytest.approx(bound, abs=1e-6), (pending, bound, simulated)


def test_plan_counts_duration_and_cost() -> None:
    """Per-account and total counts, the slowest account's duration, and pay-per-use cost."""
    result = plan(
        {"acme": [RT] * 60 + [UNDO] * 10, "beta": [UNDO] * 4},
        limit_model("payg", limit=5, window=3),
        done={"beta": 2, "gamma": 7},
        timing=Timing({"acme": 36.0, "beta": 0.0}, 36.0),
    )
    assert [a.account for a in result.accounts] == ["acme", "beta", "gamma"]
    acme, beta, gamma = result.accounts
    assert (acme.retweets, acme.undos, acme.already_done) == (60, 10, 0)
    assert acme.last_request_at == 36.0
    assert (beta.requests, beta.already_done, beta.last_request_at) == (4, 2, 0.0)
    assert (gamma.requests, gamma.already_done) == (0, 7)
    assert (result.requests, result.retweets, result.undos, result.already_done) == (
        74,
        60,
        14,
        9,
    )
    assert result.duration == 36.0
    assert result.cost == Decimal("0.900") + Decimal("0.140")
    assert result.tier is Tier.PAYG and "pay-per-use" in result.price_note


def test_app_wide_cap_bounds_the_run() -> None:
    """On launch, 20 accounts x 20 retweets fit each account's windows at once, but the
    app-wide 300 per 3 h pushes the run's last request to the second 3-hour window."""
    timing = estimate({f"u{n}": [RT] * 20 for n in range(20)}, limit_model("launch"))
    assert 10_800.0 <= timing.duration < 10_801.0


def test_flat_tier_costs_nothing_and_prices_override() -> None:
    """Flat tiers estimate $0 with a note; configured prices replace the list."""
    assert plan({"a": [RT] * 10}, limit_model("pro")).cost == 0
    prices = Prices(Decimal("0.02"), Decimal("0.005"), note="negotiated")
    result = plan({"a": [RT] * 10 + [UNDO] * 2}, limit_model("pro", prices=prices))
    assert result.cost == Decimal("0.210") and result.price_note == "negotiated"


def test_empty_plan() -> None:
    """Nothing pending plans nothing: zero requests, zero duration."""
    result = plan({}, limit_model("pro"))
    assert (result.requests, result.duration, result.cost) == (0, 0.0, Decimal(0))
    assert result.accounts == ()


def _accounted(summary: str) -> tuple[int, int]:
    """The run's text summary: its item total and the items it accounts for."""
    found = re.search(
        r"(\d+) items: (\d+) ok, (\d+) rejected, (\d+) error(?:, (\d+) superseded)? in this "
        r"run; (\d+) already finished before it",
        summary,
    )
    assert found is not None, summary
    total, *parts = (int(n) if n else 0 for n in found.groups())
    return total, sum(parts)


async def test_superseded_items_are_planned_as_the_run_records_them(
    make_world: MakeWorld,
) -> None:
    """After a retweet ended error and its later undo ok, the dry run and `validate --ledger`
    plan 0 to send and 1 superseded, the real run sends nothing and its text summary accounts
    for every item, naming the superseded one."""
    world = await make_world()
    world.sandbox.state.faults.script(
        ScriptedFault(FaultKind.E500, count=1, user_id=world.user_id("acct001"))
    )
    job = world.job([("acct001", "100", "retweet"), ("acct001", "100", "undo")])
    assert (await world.run(job, "--max-attempts", "1")).returncode == 1
    dry = await world.run(job, "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    assert "would send 0 requests (0 retweets, 0 undos); 1 items already finished in the " \
        "ledger; 1 superseded" in dry.stdout.decode()  # fmt: skip
    document = json.loads((await world.run(job, "--dry-run", "--json")).stdout)
    assert (document["requests"], document["already_done"], document["superseded"]) == (0, 1, 1)
    assert document["accounts"]["acct001"]["superseded"] == 1
    validate = ["validate", str(job), "--accounts", str(world.accounts), "--ledger"]
    checked = CliRunner().invoke(main, [*validate, str(world.ledger)])
    assert checked.exit_code == 0, checked.output
    assert "1 of these items already finished; 1 superseded (not sent); 0 to send" in (
        checked.output
    )
    as_json = CliRunner().invoke(main, [*validate, str(world.ledger), "--json"])
    counts = json.loads(as_json.output)
    assert (counts["finished"], counts["superseded"], counts["to_send"]) == (1, 1, 0)
    requests = world.sandbox.state.requests
    real = await world.run(job)
    assert real.returncode == 0, real.stderr.decode()
    assert world.sandbox.state.requests == requests
    assert world.lines()[-1]["status"] == "superseded"
    out = real.stdout.decode()
    assert "1 superseded in this run" in out
    total, accounted = _accounted(out)
    assert total == accounted == 2
