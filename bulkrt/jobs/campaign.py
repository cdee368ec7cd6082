"""Building job files: a campaign as the cross product of accounts and Tweets (`expand`), from
names and IDs checked the way job files are, and writing any job file (`write_job`).

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

import csv
import json
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bulkrt.atomic import replacing
from bulkrt.core.items import Action
from bulkrt.errors import Problem
from bulkrt.jobs.tweet_ids import parse_tweet_id
from bulkrt.redaction import shown

__all__ = [
    "JOB_SUFFIXES",
    "JobRow",
    "expand",
    "read_accounts",
    "read_tweets",
    "split_entries",
    "write_job",
]

#: the names a job file may have (optionally ``.gz`` after them)
JOB_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@dataclass(frozen=True, slots=True)
class JobRow:
    """One row of a job file that bulkrt writes."""

    campaign: str
    account: str
    tweet_id: str
    action: Action


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
    """Account names in order, and every problem: a control character, a repeat, or (with
    ``known``, the accounts file's names) a name the accounts file lacks. ``unit`` names what
    the entries' numbers count in messages (``line``, or ``entry`` of a list)."""
    names: list[str] = []
    problems: list[Problem] = []
    first: dict[str, int | None] = {}
    for number, name in entries:
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
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
) -> Iterator[JobRow]:
    """Every (account, Tweet) pair: Tweet by Tweet, each across every account."""
    for tweet_id in tweets:
        for account in accounts:
            yield JobRow(campaign, account, tweet_id, action)


def write_job(path: Path, rows: Iterable[JobRow]) -> int:
    """Write ``rows`` as CSV or JSONL by the name (``.gz``: compressed), replacing ``path``
    atomically; returns the rows written. Raise ValueError for a name of neither kind."""
    name = path.name.removesuffix(".gz")
    if not name.endswith(JOB_SUFFIXES):
        raise ValueError(f"{path}: name the job .csv or .jsonl (optionally .gz)")
    count = 0
    with replacing(path, compress=path.name.endswith(".gz")) as stream:
        if name.endswith(".csv"):
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(["campaign", "account", "tweet_id", "action"])
            for row in rows:
                writer.writerow([row.campaign, row.account, row.tweet_id, row.action.value])
                count += 1
        else:
            for row in rows:
                entry = {"campaign": row.campaign, "account": row.account, "tweet_id": row.tweet_id}
                stream.write(json.dumps({**entry, "action": row.action.value}) + "\n")
                count += 1
    return count
