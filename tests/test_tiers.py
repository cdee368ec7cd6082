"""The limit model of each tier, its overrides and its prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bulkrt.core.items import Action
from bulkrt.core.tiers import (
    LAUNCH_APP_POST_CAP,
    LAUNCH_POST_CAP,
    CapScope,
    Prices,
    Tier,
    WindowLimit,
    limit_model,
)


@pytest.mark.parametrize(
    ("tier", "limit"),
    [(Tier.FREE, 1), (Tier.BASIC, 5), (Tier.PRO, 50), (Tier.PAYG, 50), (Tier.LAUNCH, 50)],
)
def test_tier_windows(tier: Tier, limit: int) -> None:
    """Each tier allows its documented requests per 15 minutes on both endpoints."""
    model = limit_model(tier)
    for action in Action:
        assert model.window_for(action) == WindowLimit(limit, 900.0)


def test_launch_has_the_hidden_post_caps_on_retweets_only() -> None:
    """Launch adds 300 per 3 hours per user and per app on POST retweets, not on undo."""
    model = limit_model("launch")
    assert model.caps_for(Action.RETWEET) == (LAUNCH_POST_CAP, LAUNCH_APP_POST_CAP)
    assert LAUNCH_POST_CAP.window == LAUNCH_APP_POST_CAP.window == WindowLimit(300, 10_800.0)
    assert LAUNCH_POST_CAP.scope is CapScope.USER
    assert LAUNCH_APP_POST_CAP.scope is CapScope.APP
    assert model.caps_for(Action.UNDO) == ()
    assert limit_model("pro").caps == ()


def test_limit_and_window_override_the_preset() -> None:
    """--limit/--window replace both endpoints' window; the launch cap stays."""
    model = limit_model("launch", limit=5, window=3)
    assert model.window_for(Action.RETWEET) == WindowLimit(5, 3.0)
    assert model.window_for(Action.UNDO) == WindowLimit(5, 3.0)
    assert model.caps == (LAUNCH_POST_CAP, LAUNCH_APP_POST_CAP)
    assert limit_model("basic", window=60).window_for(Action.UNDO) == WindowLimit(5, 60.0)


@pytest.mark.parametrize(("limit", "window"), [(0, 3.0), (5, 0.0), (5, -1.0)])
def test_invalid_override_is_refused(limit: int, window: float) -> None:
    """A window needs at least one request and a positive length."""
    with pytest.raises(ValueError, match="window needs"):
        limit_model("basic", limit=limit, window=window)


def test_unknown_tier_is_refused() -> None:
    """A tier name outside the presets raises ValueError."""
    with pytest.raises(ValueError, match="enterprise"):
        limit_model("enterprise")


def test_prices() -> None:
    """Pay-per-use bills list prices per request; flat tiers bill nothing, with a note."""
    payg = limit_model("payg").prices
    assert (payg.retweet, payg.undo) == (Decimal("0.015"), Decimal("0.010"))
    flat = limit_model("pro").prices
    assert flat.retweet == flat.undo == 0 and "flat" in flat.note
    custom = Prices(Decimal("0.02"), Decimal("0.01"), note="contract")
    assert limit_model("payg", prices=custom).prices is custom
