"""The records every stage shares: an item of work, its action, and the status it ends in."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Action", "Item", "Status"]


class Action(StrEnum):
    """What an item asks the API to do for one account and one Tweet."""

    #: ``POST /2/users/{id}/retweets``
    RETWEET = "retweet"
    #: ``DELETE /2/users/{id}/retweets/{source_tweet_id}``
    UNDO = "undo"


class Status(StrEnum):
    """How an item ended, as written to the ledger."""

    #: the API confirmed the wanted state
    OK = "ok"
    #: the API refused for good (deleted or protected Tweet, forbidden, invalid)
    REJECTED = "rejected"
    #: transient failures exhausted, or the account's credentials failed; retried on the next run
    ERROR = "error"
    #: never sent: a later item on the same account and Tweet finished in an earlier run, so
    #: sending this one would undo the job's last word on that Tweet
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class Item:
    """One row of a job file: an action for one account on one Tweet.

    ``key`` is the item's identity for resume (README "Job files": an item's key);
    ``source`` and ``line`` say where it was read, for messages.
    """

    key: str
    campaign: str
    account: str
    tweet_id: str
    action: Action
    source: str
    line: int
