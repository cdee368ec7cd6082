"""Which answers may teach rate limits: only those that can only have come from the API's own
rate limiter, so a gateway's or an emulator's static headers cannot stall a run.

Trusted: a 2xx the API answered in its own shape (an item ``ok`` or ``rejected``), a 4xx carrying
the API's problem body (the already-retweeted 400, a rejection), and a 429 with a problem body
whose headers agree with it (nothing remaining, a reset).
Not trusted: any 5xx (X's own emulator sends ``limit 15 / remaining 14 / reset now+900`` on every
500, and a 5xx may come from a gateway), a 401 (the answer of an auth layer), an answer that is
not the API's (`FailureKind.NOT_API`), an unreadable one, and a failure without an answer.
Untrusted headers are dropped: the request still counts in bulkrt's own log of requests.

>>> from bulkrt.core.items import Action
>>> from bulkrt.core.outcome import classify
>>> static = {"x-rate-limit-limit": "15", "x-rate-limit-remaining": "14",
...           "x-rate-limit-reset": "1900000000"}
>>> teachable(classify(Action.RETWEET, 500, static, b"{}", "application/json"))
RateLimitSnapshot(window=None, user_day=None, app_day=None, date=None)
>>> ok = b'{"data":{"retweeted":true}}'
>>> teachable(classify(Action.RETWEET, 200, static, ok, "application/json")).window.limit
15
"""

from __future__ import annotations

from bulkrt.core.outcome import Decision, FailureKind, Outcome
from bulkrt.core.ratelimits import RateLimitSnapshot

__all__ = ["LEARN_FACTOR", "learned_limit", "teachable"]

#: how far below the model's limit (the tier's or --limit) a limit learned from headers may go:
#: at most this factor; above it, a trusted header's limit is taken as it is
LEARN_FACTOR = 10

_UNTRUSTED_KINDS = frozenset({FailureKind.NOT_API, FailureKind.BAD_RESPONSE})
_NOTHING = RateLimitSnapshot()


def teachable(outcome: Outcome) -> RateLimitSnapshot:
    """The rate-limit headers of ``outcome`` that may teach limits (empty when none may)."""
    http = outcome.http
    if http is None or http >= 500 or http == 401 or http < 200:
        return _NOTHING
    if outcome.error is not None and outcome.error.type in _UNTRUSTED_KINDS:
        return _NOTHING
    if outcome.decision in (Decision.RETRY, Decision.HIDDEN_LIMIT):
        return _NOTHING  # unreadable, or a 429 whose headers contradict it (room left)
    return outcome.limits


def learned_limit(model: int, reported: int) -> int:
    """The limit a trusted header's ``reported`` limit sets: never below the ``model``'s divided
    by `LEARN_FACTOR`, so one odd answer cannot stall a run; a higher limit is taken as it is.

    >>> learned_limit(50, 15), learned_limit(100_000, 15), learned_limit(5, 900)
    (15, 10000, 900)
    """
    return max(reported, max(1, model // LEARN_FACTOR))
