"""Who made a retweet the API calls "already retweeted": the campaign, the account's owner, or
nobody can tell. Pure: the evidence goes in, a verdict comes out.

Every attempt of a retweet leaves one kind of evidence (`effect_of`):

* ``NONE`` -- the attempt provably changed nothing: no byte of the request left the machine
  (the connection was refused or never made, the credentials could not be refreshed), or the
  API answered with a refusal that is not applied: 429 (a window or a hidden cap), 401, 403 and
  every other 4xx (except 408 and "already retweeted").
* ``POSSIBLE`` -- the request may have been applied and the answer does not say: a timeout or a
  broken connection after the request was sent, a 408 or a 5xx, a 2xx the client cannot read,
  an answer that is not the API's (an HTML gateway page, an empty 504), a 1xx or 3xx.
* ``ANSWERED`` -- the API said what the state is now (a 2xx with ``retweeted``, or "already
  retweeted"); the item is finished.

A 2xx ``retweeted: true`` to a retweet proves the Tweet was *not* retweeted just before (the
API answers "already retweeted" otherwise), so the campaign made it, whatever came before.

The hard case is an "already retweeted" answer ``A``. Assume, as the whole tool does, that
nobody but the campaign touches the account's retweets of the campaign's Tweets while it runs.
Then the retweet seen by ``A`` existed before the campaign's first attempt, or one of the
campaign's earlier attempts made it. So (`origin`):

* an earlier attempt is *known* applied (its 2xx ``retweeted: true`` was recorded in the
  journal, even if its ledger line was lost): the campaign's (``CAMPAIGN``);
* an earlier run already decided the account's owner made it (journal ``owner``): still the
  owner's, since a retweet of a retweeted Tweet changes nothing (``OWNER``);
* every earlier attempt -- in this run and, through the journal, in earlier ones -- is proved
  ``NONE``: the retweet existed before the campaign (``OWNER``);
* otherwise some attempt was ``POSSIBLE`` and none is known applied. Both histories -- "the
  owner had it" and "that attempt applied it" -- produce exactly the same answers, and the API
  offers no request that tells them apart (it records neither when nor through which app a
  retweet was made). That is truly *undecidable*: ``UNDECIDED``, written to the ledger as
  ``"preexisting": null``. Guessing either way would, for some operator, undo what an owner made
  or leave behind what the campaign made.

An attempt in flight when a run was killed counts as ``POSSIBLE``: its key was made durable in
the journal before it was sent, and no answer closed it.

>>> evidence = Evidence(possible=True)
>>> origin(evidence), preexisting(origin(evidence))
(<Origin.UNDECIDED: 'undecided'>, None)
>>> origin(Evidence()), origin(Evidence(possible=True, made=True))
(<Origin.OWNER: 'owner'>, <Origin.CAMPAIGN: 'campaign'>)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from bulkrt.core.items import Status
from bulkrt.core.outcome import Decision, FailureKind, Outcome

__all__ = ["Effect", "Evidence", "Origin", "effect_of", "origin", "preexisting", "settled_origin"]


class Effect(StrEnum):
    """What one attempt may have done to the account's retweets."""

    #: provably nothing
    NONE = "none"
    #: maybe applied; the answer does not say
    POSSIBLE = "possible"
    #: the API said what the state is now
    ANSWERED = "answered"


class Origin(StrEnum):
    """Who made a retweet the campaign found in place."""

    CAMPAIGN = "campaign"
    OWNER = "owner"
    UNDECIDED = "undecided"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the earlier attempts of one retweet item (this run and earlier ones) prove."""

    #: some earlier attempt may have been applied
    possible: bool = False
    #: some earlier attempt is known applied (a 2xx ``retweeted: true``)
    made: bool = False
    #: an earlier run found the retweet already there with every attempt proved without effect
    owner: bool = False


def effect_of(outcome: Outcome) -> Effect:
    """The evidence one exchange leaves about its own attempt (see the module docstring)."""
    if outcome.unsent:
        return Effect.NONE
    if outcome.decision is Decision.DONE and outcome.retweeted is not None:
        return Effect.ANSWERED
    if outcome.status is Status.REJECTED:
        return Effect.NONE  # refused for good (a 4xx, or a 200 carrying only errors)
    http = outcome.http
    if http is None:
        return Effect.POSSIBLE  # a timeout or a broken connection after the request left
    if outcome.error is not None and outcome.error.type == FailureKind.BAD_RESPONSE:
        return Effect.POSSIBLE  # not the API's answer (a gateway page, an empty body)
    if 400 <= http < 500 and http != 408:
        return Effect.NONE
    return Effect.POSSIBLE


def origin(evidence: Evidence) -> Origin:
    """Who made a retweet answered "already retweeted", given the earlier attempts' evidence."""
    if evidence.made:
        return Origin.CAMPAIGN
    if evidence.owner or not evidence.possible:
        return Origin.OWNER
    return Origin.UNDECIDED


def preexisting(verdict: Origin) -> bool | None:
    """The ledger's ``preexisting`` for a verdict: true, false, or null when undecidable."""
    return {Origin.OWNER: True, Origin.CAMPAIGN: False, Origin.UNDECIDED: None}[verdict]


def settled_origin(found: bool | None, earlier: Evidence, *, made: bool) -> Origin:
    """Who made the retweet an ``ok`` retweet item ends with, settled with the journal's evidence
    of earlier runs: ``found`` is the item's ``preexisting`` as this run saw it (False: a 2xx
    ``retweeted: true``, the campaign made it; None: an attempt of this run may have been
    applied), ``earlier`` what the journal holds of earlier attempts, ``made`` whether the journal
    knows an attempt applied.

    >>> settled_origin(False, Evidence(owner=True), made=False)
    <Origin.CAMPAIGN: 'campaign'>
    >>> settled_origin(None, Evidence(), made=False), settled_origin(True, Evidence(), made=False)
    (<Origin.UNDECIDED: 'undecided'>, <Origin.OWNER: 'owner'>)
    """
    if found is False:
        return Origin.CAMPAIGN
    evidence = replace(
        earlier, possible=earlier.possible or found is None, made=earlier.made or made
    )
    return origin(evidence)
