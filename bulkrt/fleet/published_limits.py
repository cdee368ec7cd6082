"""The limit model a job is published with: the driver's ``--tier``, ``--limit`` and ``--window``,
so that every worker runs the job's items under the limits its operator gave, not under its own
defaults. A worker started without those options (as the README's example shows) kept the pro
tier's 50 per 15 minutes while a driver and the API used 30 per second: its scheduler, and the
shared budget's log of 15 minutes, held an account for 13 minutes after a few seconds of work.

The model is stored as a small JSON document in the job's hash (``limits``): the tier, each
endpoint's window, and where the limits come from (for messages); the caps no header shows
follow from the tier, as `bulkrt.core.tiers.limit_model` makes them.

>>> model = limit_model("pro", limit=30, window=1)
>>> published_model(limits_document(model)) == model
True
>>> published_model("") is None
True
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from bulkrt.core.tiers import LimitModel, Tier, WindowLimit, limit_model

__all__ = ["limits_document", "published_model", "same_limits", "strictest"]


def limits_document(model: LimitModel) -> str:
    """``model`` as the job's ``limits`` field."""
    return json.dumps(
        {
            "tier": model.tier.value,
            "retweet": [model.retweet.limit, model.retweet.period],
            "undo": [model.undo.limit, model.undo.period],
            "source": model.source,
        },
        separators=(",", ":"),
    )


def published_model(document: str) -> LimitModel | None:
    """The model a job was published with; None when it was published without one (or with
    one this version cannot read: the worker's own model applies)."""
    if not document:
        return None
    try:
        doc = json.loads(document)
        tier = Tier(doc["tier"])
        retweet = WindowLimit(int(doc["retweet"][0]), float(doc["retweet"][1]))
        undo = WindowLimit(int(doc["undo"][0]), float(doc["undo"][1]))
        source = str(doc.get("source", ""))
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    base = limit_model(tier, limit=retweet.limit, window=retweet.period)
    return LimitModel(tier, retweet, undo, caps=base.caps, prices=base.prices, source=source)


def same_limits(one: LimitModel, other: LimitModel) -> bool:
    """Whether two models limit requests alike (their prices and wording aside).

    >>> same_limits(limit_model("pro"), limit_model("launch"))
    False
    >>> same_limits(limit_model("pro", limit=50), limit_model("pro"))
    True
    """
    return (one.retweet, one.undo, one.caps) == (other.retweet, other.undo, other.caps)


def strictest(models: Iterable[LimitModel]) -> LimitModel:
    """Of several models, the one allowing the fewest requests per second on retweets (then on
    undos; then the longer window): what two jobs on the same accounts disagree on is run under
    the lower pace, which overspends neither's idea of the account's budget.

    >>> strictest([limit_model("pro", limit=30, window=1), limit_model("pro")]).source
    'the pro tier limits (50 per 15 min per account and endpoint)'
    """

    def pace(model: LimitModel) -> tuple[float, float, float]:
        retweet, undo = model.retweet, model.undo
        return (retweet.limit / retweet.period, undo.limit / undo.period, -retweet.period)

    return min(models, key=pace)
