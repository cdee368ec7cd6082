"""The dry-run plan: request counts, expected duration under the limit model, and cost."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bulkrt.core.items import Action
from bulkrt.core.plan import Timing, plan
from bulkrt.core.tiers import Prices, Tier, limit_model
from bulkrt.simulation.estimate import estimate

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
