"""The ``--dry-run`` plan: requests per account, the expected duration and the cost.

Pure arithmetic over the limit model, starting from empty windows and assuming every request
succeeds at its first attempt with no latency (so it is the floor a real run approaches).
Each account sends in file order; its endpoint windows are fixed windows that start at their
first request, as X's are; a hidden cap (launch) is counted as a sliding window, as the
scheduler does. Accounts run side by side, so the run takes as long as its slowest account,
or, under an app-wide cap, at least as long as the cap needs for all accounts' requests
(an estimate: the two bounds are combined with ``max``).

>>> from bulkrt.core.tiers import limit_model
>>> p = plan({"acme": [Action.RETWEET] * 60}, limit_model("basic", limit=5, window=3))
>>> p.duration, p.requests
(33.0, 60)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bulkrt.core.items import Action
from bulkrt.core.tiers import CapScope, HiddenCap, LimitModel, Tier

__all__ = ["AccountPlan", "Plan", "app_cap_duration", "last_request_at", "plan"]


@dataclass(frozen=True, slots=True)
class AccountPlan:
    """What a run would send for one account."""

    account: str
    retweets: int
    undos: int
    #: items of the job already finished (``ok`` or ``rejected``) in the ledger: not sent
    already_done: int
    #: seconds from the start until the account's last request may go
    last_request_at: float
    cost: Decimal

    @property
    def requests(self) -> int:
        """Requests the account would send."""
        return self.retweets + self.undos


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole dry run."""

    tier: Tier
    accounts: tuple[AccountPlan, ...]
    #: seconds from the start until the last request of the run may go
    duration: float
    cost: Decimal
    #: where the prices come from
    price_note: str
    #: where the limits come from (the tier, or --limit/--window)
    limits_note: str = ""

    @property
    def requests(self) -> int:
        """Requests the run would send."""
        return sum(a.requests for a in self.accounts)

    @property
    def retweets(self) -> int:
        """Retweet requests of the run."""
        return sum(a.retweets for a in self.accounts)

    @property
    def undos(self) -> int:
        """Undo requests of the run."""
        return sum(a.undos for a in self.accounts)

    @property
    def already_done(self) -> int:
        """Items skipped because the ledger has them finished."""
        return sum(a.already_done for a in self.accounts)


def last_request_at(actions: Sequence[Action], model: LimitModel) -> float:
    """Seconds from the start until the last of ``actions`` (one account, file order) may go.

    >>> from bulkrt.core.tiers import limit_model
    >>> last_request_at([Action.RETWEET] * 11, limit_model("basic"))
    1800.0
    """
    now = 0.0
    windows: dict[Action, tuple[float, int]] = {}  # endpoint -> (window start, requests in it)
    caps: dict[str, list[float]] = {}  # hidden cap -> send times
    for action in actions:
        window = model.window_for(action)
        while True:
            start, used = windows.get(action, (now, 0))
            if now >= start + window.period:
                start, used = now, 0
            if used >= window.limit:
                now = start + window.period
                continue
            later = now
            for cap in _user_caps(model, action):
                sent = caps.setdefault(cap.name, [])
                if len(sent) >= cap.window.limit:
                    later = max(later, sent[-cap.window.limit] + cap.window.period)
            if later == now:
                break
            now = later
        windows[action] = (start, used + 1)
        for cap in _user_caps(model, action):
            caps[cap.name].append(now)
    return now


def _user_caps(model: LimitModel, action: Action) -> list[HiddenCap]:
    return [cap for cap in model.caps_for(action) if cap.scope is CapScope.USER]


def app_cap_duration(counts: Mapping[Action, int], model: LimitModel) -> float:
    """Seconds until the last request may go under the app-wide caps alone.

    >>> from bulkrt.core.tiers import limit_model
    >>> app_cap_duration({Action.RETWEET: 301}, limit_model("launch"))
    10800.0
    """
    longest = 0.0
    for cap in model.caps:
        if cap.scope is CapScope.APP:
            n = sum(counts.get(action, 0) for action in cap.actions)
            if n:
                longest = max(longest, ((n - 1) // cap.window.limit) * cap.window.period)
    return longest


def plan(
    pending: Mapping[str, Sequence[Action]],
    model: LimitModel,
    *,
    done: Mapping[str, int] | None = None,
) -> Plan:
    """The plan for ``pending`` (each account's unfinished items, in file order).

    ``done`` counts each account's items that the ledger already has as finished.
    """
    done = done or {}
    accounts = []
    for account in sorted(set(pending) | set(done)):
        actions = pending.get(account, ())
        retweets = sum(1 for a in actions if a is Action.RETWEET)
        undos = len(actions) - retweets
        cost = retweets * model.prices.retweet + undos * model.prices.undo
        last = last_request_at(actions, model) if actions else 0.0
        accounts.append(AccountPlan(account, retweets, undos, done.get(account, 0), last, cost))
    counts = {
        Action.RETWEET: sum(a.retweets for a in accounts),
        Action.UNDO: sum(a.undos for a in accounts),
    }
    slowest = max((a.last_request_at for a in accounts), default=0.0)
    return Plan(
        tier=model.tier,
        accounts=tuple(accounts),
        duration=max(slowest, app_cap_duration(counts, model)),
        cost=sum((a.cost for a in accounts), Decimal(0)),
        price_note=model.prices.note,
        limits_note=model.source or f"the {model.tier} limits",
    )
