"""A campaign as the cross product of accounts and Tweets (`expand`), from names and IDs checked
the way job files are; `bulkrt.jobs.job_writer` writes the rows.

The lists come from the command line (comma-separated) or from files (one entry a line; blank
lines and ``#`` comments skipped; for accounts, an accounts JSON file gives all its names).
Every problem is a `Problem` at its place (``FILE:LINE: field: what``, or ``--tweets:3: ...``
for the third entry of a list), all of them, not just the first.

>>> entries = enumerate(["https://x.com/a/status/20", "21", "20"], start=1)
>>> tweets, problems = read_tweets(entries, source="--tweets", unit="entry")
>>> tweets, [str(p) for p in problems]
(['20', '21'], ['--tweets:3: tweet_id: repeats entry 1 (Tweet 20)'])
>>> [(r.account, r.tweet_id) for r in expand(["acme", "beta"], ["20"], Action.RETWEET, "spring")]
[('acme', '20'), ('beta', '20')]
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Sequence

from bulkrt.core.items import Action
from bulkrt.errors import Problem
from bulkrt.jobs.rows import Row, has_control, has_lone_surrogate
from bulkrt.jobs.tweet_ids import parse_tweet_id
from bulkrt.redaction import shown

__all__ = [
    "ROLLBACK_SUFFIX",
    "expand",
    "read_accounts",
    "read_tweets",
    "rollback_retweet",
    "split_entries",
]

#: how the campaign of a rollback's undo job ends (`bulkrt.ledger.undo`)
ROLLBACK_SUFFIX = "-rollback"


def split_entries(text: str) -> list[tuple[int, str]]:
    """The entries of a file's text (numbered by line) without blanks and ``#`` comments."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            entries.append((number, entry))
    return entries


def read_accounts(
    entries: Iterable[tuple[int | None, str]],
    *,
    source: str,
    unit: str = "line",
    known: Container[str] | None = None,
) -> tuple[list[str], list[Problem]]:
    """Account names in order, and every problem: invalid UTF-8 (an undecodable byte given on
    the command line), a control character, a repeat, or (with
    ``known``, the accounts file's names) a name the accounts file lacks. ``unit`` names what
    the entries' numbers count in messages (``line``, or ``entry`` of a list)."""
    names: list[str] = []
    problems: list[Problem] = []
    first: dict[str, int | None] = {}
    for number, name in entries:
        if has_lone_surrogate(name):
            problems.append(Problem(source, number, "account", "invalid UTF-8"))
        elif has_control(name):
            problems.append(
                Problem(source, number, "account", f"control character in {shown(name)}")
            )
        elif name in first:
            problems.append(
                Problem(source, number, "account", f"{shown(name)} repeats {unit} {first[name]}")
            )
        elif known is not None and name not in known:
            problems.append(
                Problem(
                    source,
                    number,
                    "account",
                    f"unknown account {shown(name)} (not in the accounts file)",
                )
            )
        else:
            first[name] = number
            names.append(name)
    return names, problems


def read_tweets(
    entries: Iterable[tuple[int, str]], *, source: str, unit: str = "line"
) -> tuple[list[str], list[Problem]]:
    """Tweet IDs (post URLs normalised) in order, and every problem: not an ID, or a repeat."""
    ids: list[str] = []
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for number, text in entries:
        try:
            tweet_id = parse_tweet_id(text)
        except ValueError as exc:
            problems.append(Problem(source, number, "tweet_id", str(exc)))
            continue
        if tweet_id in first:
            message = f"repeats {unit} {first[tweet_id]} (Tweet {tweet_id})"
            problems.append(Problem(source, number, "tweet_id", message))
            continue
        first[tweet_id] = number
        ids.append(tweet_id)
    return ids, problems


def expand(
    accounts: Sequence[str], tweets: Sequence[str], action: Action, campaign: str
) -> Iterator[Row]:
    """Every (account, Tweet) pair: Tweet by Tweet, each across every account."""
    for tweet_id in tweets:
        for account in accounts:
            yield Row(campaign, account, tweet_id, action)


def rollback_retweet(row: Row, *, named: bool) -> Problem | None:
    """The problem with a ``retweet`` row in a campaign ending ``-rollback``, if it is one:
    `bulkrt rollback` writes only undos there and never undoes a rollback campaign, so such a
    retweet could never be rolled back. ``named`` says whether the row names its campaign (else
    it is ``--campaign``'s, or the job file's name without extensions).

    >>> row = Row("spring-rollback", "acme", "20", Action.RETWEET, source="spring-rollback.csv",
    ...           line=2)
    >>> print(rollback_retweet(row, named=False))  # doctest: +ELLIPSIS
    spring-rollback.csv:2: campaign: a retweet in campaign 'spring-rollback', ...
    >>> rollback_retweet(Row("spring-rollback", "acme", "20", Action.UNDO), named=True) is None
    True
    """
    if row.action is not Action.RETWEET or not row.campaign.endswith(ROLLBACK_SUFFIX):
        return None
    where = (
        "the row's campaign"
        if named
        else "the job's campaign (--campaign, else the file's name without extensions)"
    )
    return Problem(
        row.source,
        row.line,
        "campaign",
        f"a retweet in campaign {shown(row.campaign)}, {where}: a campaign ending "
        f"{ROLLBACK_SUFFIX!r} is a rollback's undo job, which `bulkrt rollback` never undoes; "
        f"name the campaign otherwise (--campaign NAME for rows that name none)",
    )
