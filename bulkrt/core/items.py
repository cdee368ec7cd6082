"""The records every stage shares: an item of work, its action, the status it ends in, and why
it did not end ``ok``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

__all__ = ["Action", "ErrorDetail", "Item", "Status", "draft_class"]


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


@dataclass(frozen=True, slots=True, init=False)
class Item:
    """One row of a job file: an action for one account on one Tweet.

    ``key`` is the item's identity for resume (README "Job files": an item's key);
    ``source`` and ``line`` say where it was read, for messages.

    Built by ``__new__`` from a draft (`draft_class`) rather than by a frozen dataclass's
    ``__init__``: one is made per row of a job, and this costs a quarter as much. It is the same
    object (fields, equality, hash, repr, `dataclasses.replace`, pickling).

    >>> item = Item("k1", "c", "acme", "20", Action.RETWEET, source="job.csv", line=2)
    >>> item.account, item == Item("k1", "c", "acme", "20", Action.RETWEET, "job.csv", 2)
    ('acme', True)
    """

    key: str
    campaign: str
    account: str
    tweet_id: str
    action: Action
    source: str
    line: int

    def __new__(
        cls,
        key: str,
        campaign: str,
        account: str,
        tweet_id: str,
        action: Action,
        source: str,
        line: int,
    ) -> Item:
        draft = _ItemDraft()
        draft.key = key
        draft.campaign = campaign
        draft.account = account
        draft.tweet_id = tweet_id
        draft.action = action
        draft.source = source
        draft.line = line
        draft.__class__ = cls
        item: Item = draft
        return item

    def __reduce__(self) -> tuple[type[Item], tuple[str, str, str, str, Action, str, int]]:
        # ``__new__`` takes every field: copies and pickles rebuild the item through it
        fields = (self.key, self.campaign, self.account, self.tweet_id, self.action)
        return (Item, (*fields, self.source, self.line))


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """Why an item did not end ``ok``: the API's problem, or a local description. The classifier
    makes it, the scheduler keeps it for a paused account, and it is the ledger's ``error``.

    >>> ErrorDetail("https://api.twitter.com/2/problems/usage-capped", "Usage capped").kind
    'usage-capped'
    >>> ErrorDetail("network").kind
    'network'
    """

    #: the last path segment of the problem ``type`` URI (the classifier's form), a local kind
    #: (`bulkrt.core.outcome.FailureKind`), or, in older ledgers, the whole URI
    type: str
    #: None only when a ledger line holds ``null``
    title: str | None = None
    detail: str | None = None

    @property
    def kind(self) -> str:
        """The short name errors are grouped by: the last path segment of ``type``."""
        return self.type.rstrip("/").rsplit("/", 1)[-1] or self.type


def draft_class(cls: type) -> Any:
    """A plain class with the slots of the frozen, slotted dataclass ``cls``, for building its
    objects fast: fill a draft's slots with plain stores, then give it ``cls`` as its class
    (Python allows ``__class__`` assignment between classes of the same layout, and checks it).
    The object is the one ``cls(...)`` makes (its class, every field set, nothing else) at about
    a quarter of the cost: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``. The scheduler builds its per-item records so (`Ticket`, `ItemResult`,
    `Permit`); a builder must set every field.

    >>> Draft = draft_class(ErrorDetail)
    >>> draft = Draft(); draft.type, draft.title, draft.detail = "network", "Network error", None
    >>> draft.__class__ = ErrorDetail; draft == ErrorDetail("network", "Network error")
    True
    """
    names = tuple(f.name for f in fields(cls))
    if getattr(cls, "__slots__", None) != names:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass with the slots {names}")
    draft = type(f"{cls.__name__}Draft", (), {"__slots__": names, "__module__": cls.__module__})
    draft().__class__ = cls  # TypeError now if the layouts differ
    return draft


_ItemDraft = draft_class(Item)
