"""The client-side limit model of each ``--tier``: windows per endpoint, hidden caps, prices.

The model seeds the scheduler until response headers say otherwise (docs/api.md §4.1).

>>> model = limit_model(Tier.BASIC, limit=5, window=3)
>>> model.window_for(Action.RETWEET)
WindowLimit(limit=5, period=3.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from bulkrt.core.items import Action

__all__ = [
    "FIFTEEN_MINUTES",
    "FLAT_PRICES",
    "LAUNCH_APP_POST_CAP",
    "LAUNCH_POST_CAP",
    "PAYG_PRICES",
    "CapScope",
    "HiddenCap",
    "LimitModel",
    "Prices",
    "Tier",
    "WindowLimit",
    "limit_model",
]

#: the 15-minute window every tier uses for these endpoints
FIFTEEN_MINUTES = 900.0


class Tier(StrEnum):
    """A rate-limit preset (``--tier``)."""

    #: 1 request per 15 min per user and endpoint (tier table 2024-12 to 2025-12)
    FREE = "free"
    #: 5 per 15 min
    BASIC = "basic"
    #: 50 per 15 min
    PRO = "pro"
    #: pay-per-use: 50 per 15 min, billed per request
    PAYG = "payg"
    #: launch-era plan: 50 per 15 min plus 300 POSTs per 3 h per user and per app
    LAUNCH = "launch"


class CapScope(StrEnum):
    """Whose requests a hidden cap counts."""

    #: each account has its own cap
    USER = "user"
    #: one cap for every account of the app
    APP = "app"


@dataclass(frozen=True, slots=True)
class WindowLimit:
    """At most ``limit`` requests in ``period`` seconds."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if self.limit < 1 or not self.period > 0:
            raise ValueError(f"a window needs limit >= 1 and period > 0, got {self!r}")


@dataclass(frozen=True, slots=True)
class HiddenCap:
    """A limit that no header reports, modelled so that it is never hit."""

    #: a short name, used in budget keys and messages
    name: str
    window: WindowLimit
    #: the actions the cap counts
    actions: frozenset[Action]
    scope: CapScope = CapScope.USER


#: launch-era "300 requests per 3-hour window (per user, per app)" on POST retweets, shared
#: with posting (docs/api.md §4.1): one cap for each account ...
LAUNCH_POST_CAP = HiddenCap(
    name="post-3h",
    window=WindowLimit(300, 10_800.0),
    actions=frozenset({Action.RETWEET}),
)
#: ... and one for the whole app (the sandbox's launch preset enforces both)
LAUNCH_APP_POST_CAP = HiddenCap(
    name="app-post-3h",
    window=WindowLimit(300, 10_800.0),
    actions=frozenset({Action.RETWEET}),
    scope=CapScope.APP,
)


@dataclass(frozen=True, slots=True)
class Prices:
    """Per-request prices in US dollars, for the dry-run cost estimate."""

    retweet: Decimal = Decimal(0)
    undo: Decimal = Decimal(0)
    #: where the prices come from, shown next to the estimate
    note: str = ""


#: docs/api.md §4.1 pricing page: "User Interaction: Create" $0.015, "Interaction: Delete" $0.010
PAYG_PRICES = Prices(
    Decimal("0.015"),
    Decimal("0.010"),
    note="pay-per-use list prices; which SKU X bills for retweets is not documented",
)
FLAT_PRICES = Prices(note="a flat monthly plan: requests are not billed one by one")


@dataclass(frozen=True, slots=True)
class LimitModel:
    """What the client assumes about the limits of one tier."""

    tier: Tier
    retweet: WindowLimit
    undo: WindowLimit
    caps: tuple[HiddenCap, ...] = ()
    prices: Prices = field(default=FLAT_PRICES)
    #: where the limits come from, for the operator (`limit_model` says)
    source: str = ""

    def window_for(self, action: Action) -> WindowLimit:
        """The per-user window of the endpoint that ``action`` calls."""
        return self.retweet if action is Action.RETWEET else self.undo

    def caps_for(self, action: Action) -> tuple[HiddenCap, ...]:
        """The hidden caps that a request of ``action`` counts against."""
        return tuple(cap for cap in self.caps if action in cap.actions)


_PER_WINDOW = {Tier.FREE: 1, Tier.BASIC: 5, Tier.PRO: 50, Tier.PAYG: 50, Tier.LAUNCH: 50}


def limit_model(
    tier: Tier | str,
    *,
    limit: int | None = None,
    window: float | None = None,
    prices: Prices | None = None,
) -> LimitModel:
    """The model of ``tier``; ``limit``/``window`` override its per-endpoint window.

    The override (``--limit N --window SECONDS``) replaces the window of both endpoints; the
    launch caps stay at 300 per 3 h, since no header ever reports them.
    """
    tier = Tier(tier)
    per_window = WindowLimit(
        limit if limit is not None else _PER_WINDOW[tier],
        float(window) if window is not None else FIFTEEN_MINUTES,
    )
    if prices is None:
        prices = PAYG_PRICES if tier is Tier.PAYG else FLAT_PRICES
    caps = (LAUNCH_POST_CAP, LAUNCH_APP_POST_CAP) if tier is Tier.LAUNCH else ()
    source = _source(tier, per_window, limit=limit is not None, window=window is not None)
    return LimitModel(
        tier=tier, retweet=per_window, undo=per_window, caps=caps, prices=prices, source=source
    )


def _source(tier: Tier, per_window: WindowLimit, *, limit: bool, window: bool) -> str:
    """Where the model's limits come from, e.g. ``--limit 5 per --window 3 s``.

    >>> _source(Tier.PRO, WindowLimit(50, 900.0), limit=False, window=False)
    'the pro tier limits (50 per 15 min per account and endpoint)'
    >>> _source(Tier.PRO, WindowLimit(5, 3.0), limit=True, window=True)
    '--limit 5 per --window 3 s (per account and endpoint)'
    """
    seconds = per_window.period
    span = f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"
    count = f"--limit {per_window.limit}" if limit else f"{per_window.limit}"
    length = f"--window {span}" if window else span
    if not limit and not window:
        return f"the {tier} tier limits ({count} per {length} per account and endpoint)"
    if limit and window:
        return f"{count} per {length} (per account and endpoint)"
    return f"{count} per {length} (the rest from the {tier} tier; per account and endpoint)"
