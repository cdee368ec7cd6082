"""The ``--dry-run`` plan: requests per account, the expected duration and the cost.

Counts and prices are arithmetic over the job; the dry run's timing comes from simulating the job
against the limit model (`bulkrt.simulation.estimate`), so the estimate is what the real scheduler
does. A real run's expected finish is `rate_bound`: the limits' own bound, arithmetic over the
counts, so that a run never spends its start simulating itself.

>>> from bulkrt.core.tiers import limit_model
>>> p = plan({"acme": [Action.RETWEET] * 60}, limit_model("payg"), timing=Timing({"acme": 9}, 9))
>>> p.duration, p.requests, p.cost
(9, 60, Decimal('0.900'))
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bulkrt.core.items import Action
from bulkrt.core.tiers import CapScope, LimitModel, Tier, WindowLimit

__all__ = ["AccountPlan", "Plan", "Timing", "plan", "rate_bound"]


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
    #: unfinished items a later finished item on the same Tweet overtook: recorded
    #: ``superseded``, not sent (`bulkrt.ledger.resume.plan_resume`)
    superseded: int = 0

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

    @property
    def superseded(self) -> int:
        """Items recorded ``superseded`` and not sent."""
        return sum(a.superseded for a in self.accounts)


@dataclass(frozen=True, slots=True)
class Timing:
    """When a run's requests may go: each account's last one and the run's, in seconds from its
    start (the simulation of the job says, `bulkrt.simulation`)."""

    last_request: Mapping[str, float]
    duration: float


def plan(
    pending: Mapping[str, Sequence[Action]],
    model: LimitModel,
    *,
    done: Mapping[str, int] | None = None,
    superseded: Mapping[str, int] | None = None,
    timing: Timing | None = None,
) -> Plan:
    """The plan for ``pending`` (each account's items to send, in file order).

    ``done`` counts each account's items that the ledger already has as finished,
    ``superseded`` those a later finished item overtook (neither is in ``pending``); ``timing``
    says when the requests may go (None: no estimate, every time 0).
    """
    done = done or {}
    superseded = superseded or {}
    timing = timing or Timing({}, 0.0)
    accounts = []
    for account in sorted(set(pending) | set(done) | set(superseded)):
        actions = pending.get(account, ())
        retweets = sum(1 for a in actions if a is Action.RETWEET)
        undos = len(actions) - retweets
        cost = retweets * model.prices.retweet + undos * model.prices.undo
        last = timing.last_request.get(account, 0.0)
        accounts.append(
            AccountPlan(
                account, retweets, undos, done.get(account, 0), last, cost,
                superseded.get(account, 0),
            )
        )  # fmt: skip
    return Plan(
        tier=model.tier,
        accounts=tuple(accounts),
        duration=timing.duration,
        cost=sum((a.cost for a in accounts), Decimal(0)),
        price_note=model.prices.note,
        limits_note=model.source or f"the {model.tier} limits",
    )


def _windows_needed(requests: int, window: WindowLimit) -> float:
    """Seconds from the first of ``requests`` to the last under ``window``'s limit: the last
    cannot go before the start of the window that holds it."""
    return (math.ceil(requests / window.limit) - 1) * window.period if requests else 0.0


def rate_bound(
    counts: Mapping[tuple[str, Action], int], model: LimitModel, *, max_rps: float | None = None
) -> float:
    """The shortest time the limits allow for sending ``counts`` (requests per account and
    action): the slowest account's endpoint window or per-user cap, a cap shared by the app,
    or ``--max-rps``; a run that keeps every window full takes about this long.

    >>> from bulkrt.core.tiers import limit_model
    >>> m = limit_model("pro", limit=5, window=3)
    >>> rate_bound({("a", Action.RETWEET): 60, ("b", Action.UNDO): 5}, m)
    33.0
    >>> rate_bound({("a", Action.RETWEET): 60}, m, max_rps=1.0)
    59.0
    """
    bound = 0.0
    shared: Counter[str] = Counter()
    per_user: Counter[tuple[str, str]] = Counter()
    for (account, action), n in counts.items():
        bound = max(bound, _windows_needed(n, model.window_for(action)))
        for cap in model.caps_for(action):
            if cap.scope is CapScope.APP:
                shared[cap.name] += n
            else:
                per_user[account, cap.name] += n
    caps = {cap.name: cap.window for cap in model.caps}
    for (_, name), n in per_user.items():
        bound = max(bound, _windows_needed(n, caps[name]))
    for name, n in shared.items():
        bound = max(bound, _windows_needed(n, caps[name]))
    total = sum(counts.values())
    if max_rps and total:
        bound = max(bound, (total - 1) / max_rps)
    return bound
